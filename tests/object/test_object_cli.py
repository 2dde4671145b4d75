"""`pybpf object show|core` as users run it, and pybpf.compile()."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import CLANG, compile_bpf, run_cli
import pybpf
from pybpf.errors import CompileError

SOURCE = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
struct event { int pid; char comm[16]; };
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 64); __type(key, int); __type(value, struct event); } seen SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 4096); __type(value, struct event); } events SEC(".maps");
struct inner { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 2); __type(key, int); __type(value, int); };
struct { __uint(type, BPF_MAP_TYPE_HASH_OF_MAPS); __uint(max_entries, 4); __type(key, int);
         __uint(pinning, LIBBPF_PIN_BY_NAME); __array(values, struct inner); } outer SEC(".maps");
const volatile int target_pid = 42;
const volatile char who[8] = "root";
extern int LINUX_KERNEL_VERSION __kconfig;
static __noinline int helper(int x) { return x + target_pid; }
SEC("kprobe/do_unlinkat") int on_unlink(void *ctx) { int k = helper(LINUX_KERNEL_VERSION); return bpf_map_lookup_elem(&seen, &k) != 0; }
SEC("?xdp") int maybe(struct xdp_md *ctx) { return XDP_PASS; }
char LICENSE[] SEC("license") = "GPL";
"""


@pytest.fixture(scope="module")
def obj() -> Path:
    return compile_bpf(SOURCE, name="clishow")


def test_show_text(obj):
    proc = run_cli("object", "show", obj)
    assert proc.returncode == 0, proc.stderr.decode()
    out = proc.stdout.decode()
    for text in ("on_unlink", "kprobe/do_unlinkat", "kprobe", "do_unlinkat", "(+helper)", "maybe (not loaded)",
                 "seen", "hash", "4 (int)", "20 (struct event)", "ringbuf", "hash_of_maps", "by_name",
                 "array 4/4x2", "target_pid", ".rodata", "const volatile int", "42", "'root'",
                 "LINUX_KERNEL_VERSION", "kconfig", "strong", "license GPL"):
        assert text in out, (text, out)


def test_show_json(obj):
    proc = run_cli("object", "show", obj, "--json")
    assert proc.returncode == 0, proc.stderr.decode()
    data = json.loads(proc.stdout)
    progs = {p["name"]: p for p in data["programs"]}
    assert progs["on_unlink"]["type"] == "kprobe" and progs["on_unlink"]["attach_target"] == "do_unlinkat"
    assert progs["on_unlink"]["subprograms"] == ["helper"] and not progs["maybe"]["autoload"]
    assert progs["maybe"]["attach_type"] == "xdp"
    maps = {m["name"]: m for m in data["maps"]}
    assert maps["seen"]["value_type"] == "struct event" and maps["seen"]["value_size"] == 20
    assert maps["events"]["record_type"] == "struct event" and maps["events"]["value_size"] == 0
    assert maps["outer"]["inner"]["type"] == "array" and maps["outer"]["pinning"] == "by_name"
    variables = {v["name"]: v for v in data["variables"]}
    assert variables["target_pid"]["value"] == 42 and variables["who"]["value"] == "root"
    assert {"name": "LINUX_KERNEL_VERSION", "kind": "kconfig", "weak": False, "type": "int", "offset": 0,
            "size": 4} in data["externs"]


def test_core_json_for_an_object_without_relocations(obj):
    proc = run_cli("object", "core", obj, "--json")
    assert proc.returncode == 0
    assert json.loads(proc.stdout)["relocations"] == []


def test_help_teaches():
    proc = run_cli("object", "--help")
    assert proc.returncode == 0 and b"pybpf object show" in proc.stdout and b"libbpf" in proc.stdout


def test_missing_file():
    proc = run_cli("object", "show", "/nonexistent/x.o")
    assert proc.returncode == 1 and b"No such file" in proc.stderr


@pytest.mark.skipif(CLANG is None, reason="clang is not installed")
def test_compile_with_generated_vmlinux_h(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    src = tmp_path / "tool.bpf.c"
    src.write_text(r"""
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
const volatile pid_t target = 0;
SEC("tp/sched/sched_process_exec")
int on_exec(struct trace_event_raw_sched_process_exec *ctx)
{
    struct task_struct *t = (void *)bpf_get_current_task();
    return BPF_CORE_READ(t, real_parent, tgid) == target;
}
char LICENSE[] SEC("license") = "GPL";
""")
    spec = pybpf.compile(src)
    assert spec.name == "tool" and list(spec.programs) == ["on_exec"]
    assert spec.rodata["target"] == 0
    results = spec.apply_core()
    assert {r.local_spec.split(" (")[0] for r in results} == {"struct task_struct.real_parent",
                                                             "struct task_struct.tgid"}
    headers = list(tmp_path.glob("pybpf/vmlinux-*/vmlinux.h"))
    assert len(headers) == 1 and "struct task_struct {" in headers[0].read_text()
    again = pybpf.compile(src)  # cached object, same spec
    assert again.path == spec.path


@pytest.mark.skipif(CLANG is None, reason="clang is not installed")
def test_compile_errors_carry_clangs_message():
    with pytest.raises(CompileError, match="use of undeclared identifier 'nope'"):
        pybpf.compile("int f(void) { return nope; }\n", vmlinux=False)


def test_missing_clang_says_how_to_install(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("PYBPF_CLANG", raising=False)
    with pytest.raises(CompileError, match="apt-get install clang-19"):
        pybpf.compile("int f(void) { return 0; }\n", vmlinux=False)
