"""Tracing hooks: BPF iterators (tasks, map elements, TCP sockets), USDT probes read through
usdt.bpf.h, and the hooks this kernel refuses (kprobes, kprobe.multi, fentry/fexit/LSM) with
errors that name the cause."""

from __future__ import annotations

import os
import socket
import subprocess

import pytest

from kernel_testlib import (
    VMLINUX_PREAMBLE, build_c_binary, links_left, load_c, open_fds, vmlinux_btf_id, vmlinux_include,
)

from pybpf.errors import LinkError, NotSupportedError
from pybpf.isa import Instruction
from pybpf.kernel import AttachType, IntCodec, LinkType, Map, MapType, Program, ProgType, link_ids
from pybpf.kernel.usdt import REGISTER_OFFSETS, parse_argument, usdt_probes

pytestmark = pytest.mark.kernel

ITERATORS = r"""
SEC("iter/task")
int dump_task(struct bpf_iter__task *ctx)
{
    struct task_struct *task = ctx->task;
    if (task && task->pid == task->tgid)
        BPF_SEQ_PRINTF(ctx->meta->seq, "%d %s\n", task->tgid, task->comm);
    return 0;
}

SEC("iter/bpf_map_elem")
int dump_elem(struct bpf_iter__bpf_map_elem *ctx)
{
    __u32 *key = ctx->key;
    __u64 *value = ctx->value;
    if (key && value)
        BPF_SEQ_PRINTF(ctx->meta->seq, "%u=%llu\n", *key, *value);
    return 0;
}

SEC("iter/tcp")
int dump_tcp(struct bpf_iter__tcp *ctx)
{
    struct sock_common *skc = ctx->sk_common;
    if (skc)
        BPF_SEQ_PRINTF(ctx->meta->seq, "%u %u\n", skc->skc_num, skc->skc_state);
    return 0;
}
"""


def _iter_program(section: str, name: str):
    target = section.split("/", 1)[1]
    loaded = load_c(ITERATORS, section, ProgType.TRACING, name=name, preamble=VMLINUX_PREAMBLE,
                    cflags=vmlinux_include())
    assert loaded.program.info().attach_btf_id == vmlinux_btf_id(f"bpf_iter_{target}")  # found by the loader
    return loaded


def _proc_pids() -> set[int]:
    return {int(n) for n in os.listdir("/proc") if n.isdigit()}


def test_task_iterator_lists_the_processes_proc_shows():
    fds, links = open_fds(), set(link_ids())
    with _iter_program("iter/task", "it_task") as loaded:
        with loaded.program.attach() as link:
            assert link.info().type == LinkType.ITER and link.info().details["target_name"] == "task"
            before = _proc_pids()
            text = link.read()
            after = _proc_pids()
            rows = [line.split(" ", 1) for line in text.splitlines()]
            seen = {int(pid): comm for pid, comm in rows}
            # Linux 6.18's task iterator starts its walk at pid 2 (bpftool's 'iter pin' shows the same),
            # so init is left out; every other process that lived throughout must be there.
            stable = (before & after) - {1}
            assert stable <= set(seen) <= before | after
            assert seen[os.getpid()].startswith(("python", "pytest"))
            assert len(seen) == len(rows)  # each process once
            assert len(link.read().splitlines()) >= len(stable)  # each read runs the walk again
    assert open_fds() == fds and links_left(links) == set()


def test_map_element_iterator_walks_the_given_map():
    with _iter_program("iter/bpf_map_elem", "it_elem") as loaded, \
         Map.create(MapType.HASH, 4, 8, 64, name="walked", key_codec=IntCodec(4), value_codec=IntCodec(8)) as m:
        for k in range(20):
            m[k] = k * k + 1
        with loaded.program.attach_iter(map=m) as link:
            assert link.info().details["map_id"] == m.id
            pairs = dict(line.split("=") for line in link.read().splitlines())
        assert {int(k): int(v) for k, v in pairs.items()} == dict(m.items())
        with pytest.raises(LinkError, match="this iterator walks one map; pass map="):
            loaded.program.attach_iter()
        with Map.create(MapType.HASH, 4, 4, 4, name="small") as small, \
             pytest.raises(LinkError, match="reads more of the key or value than"):
            loaded.program.attach_iter(map=small)


def test_tcp_iterator_sees_our_listener():
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    try:
        with _iter_program("iter/tcp", "it_tcp") as loaded, loaded.program.attach_iter() as link:
            states = {int(p): int(s) for p, s in (line.split() for line in link.read().splitlines())}
        assert states.get(port) == 10  # TCP_LISTEN
    finally:
        listener.close()


# --- USDT -------------------------------------------------------------------------

USDT_TARGET = r"""
#define _SDT_HAS_SEMAPHORES 1
#include <sys/sdt.h>
#include <stdio.h>
#include <stdlib.h>
unsigned short pybpf_test_hit_semaphore __attribute__((section(".probes"))) = 0;
struct pt { long x; int y; };
static volatile int sink;
__attribute__((noinline)) void emit(int i, struct pt *p)
{
    long neg = -7L * i;
    unsigned char small = (unsigned char)(200 + i);
    short s = (short)(-300 - i);
    STAP_PROBE6(pybpf_test, hit, i, neg, small, s, p->y, 99);
    sink = i;
}
int main(int argc, char **argv)
{
    char line[16];
    if (argc > 2 && !fgets(line, sizeof line, stdin)) return 1;   /* wait until told to go */
    int n = atoi(argv[1]), enabled = 0;
    struct pt p = {1, 0};
    for (int i = 0; i < n; i++) {
        p.y = 1000 + i;
        if (pybpf_test_hit_semaphore) enabled++;
        emit(i, &p);
    }
    printf("%d\n", enabled);
    return 0;
}
"""

USDT_BPF = r"""
#include <stdbool.h>
#include <linux/ptrace.h>
#include <bpf/usdt.bpf.h>
struct rec { long a[6]; long cookie; long cnt; };
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 64); __type(key, int); __type(value, struct rec); } seen SEC(".maps");

SEC("usdt")
int on_hit(struct pt_regs *ctx)
{
    struct rec r = {};
    long v;
    bpf_usdt_arg(ctx, 0, &v); r.a[0] = v;
    bpf_usdt_arg(ctx, 1, &v); r.a[1] = v;
    bpf_usdt_arg(ctx, 2, &v); r.a[2] = v;
    bpf_usdt_arg(ctx, 3, &v); r.a[3] = v;
    bpf_usdt_arg(ctx, 4, &v); r.a[4] = v;
    bpf_usdt_arg(ctx, 5, &v); r.a[5] = v;
    r.cookie = bpf_usdt_cookie(ctx);
    r.cnt = bpf_usdt_arg_cnt(ctx);
    int key = (int)r.a[0];
    bpf_map_update_elem(&seen, &key, &r, BPF_ANY);
    return 0;
}
"""


@pytest.fixture(scope="module")
def usdt_binary():
    return build_c_binary(USDT_TARGET, "usdt-target")


@pytest.fixture
def usdt_program():
    from pybpf.kernel import StructCodec

    def make(has_cookie: bool = True):
        specs = Map.create(MapType.ARRAY, 4, 208, 256, name="__bpf_usdt_specs")
        ips = Map.create(MapType.HASH, 8, 4, 1024, name="__bpf_usdt_ip_to_spec_id")
        seen = Map.create(MapType.HASH, 4, 64, 64, name="seen", key_codec=IntCodec(4, signed=True),
                          value_codec=StructCodec("qqqqqqqq", ["a0", "a1", "a2", "a3", "a4", "a5", "cookie", "cnt"]))
        loaded = load_c(USDT_BPF, "usdt", ProgType.KPROBE, {"__bpf_usdt_specs": specs, "__bpf_usdt_ip_to_spec_id": ips,
                                                            "seen": seen},
                        name="usdt_hit", kconfig={"LINUX_HAS_BPF_COOKIE": int(has_cookie)})
        made.append((loaded, specs, ips, seen))
        return loaded.program, seen, ips

    made: list = []
    yield make
    for loaded, *maps in made:
        loaded.close()
        for m in maps:
            m.close()


def _expected(i: int) -> tuple:
    return (i, -7 * i, (200 + i) & 0xFF, -300 - i, 1000 + i, 99)


def test_usdt_notes_are_parsed_like_readelf(usdt_binary):
    (probe,) = usdt_probes(str(usdt_binary))
    notes = subprocess.run(["readelf", "-n", str(usdt_binary)], capture_output=True, text=True, check=True).stdout
    assert f"Provider: {probe.provider}" in notes and f"Name: {probe.name}" in notes
    assert f"Arguments: {probe.arguments}" in notes
    assert f"Semaphore: {probe.semaphore:#018x}" in notes
    args = probe.parsed_arguments()
    assert [(a.size, a.signed) for a in args] == [(4, True), (8, True), (1, False), (2, True), (4, True), (4, True)]
    deref = parse_argument("-4@8(%rsi)")
    assert (deref.register, deref.value) == ("rsi", 8) and REGISTER_OFFSETS["rsi"] == 104
    assert parse_argument("-4@$99").value == 99 and parse_argument("8@%r12").register == "r12"
    with pytest.raises(LinkError, match="addressing mode"):
        parse_argument("8@(%rax,%rbx,8)")


def test_usdt_arguments_and_semaphore_for_one_process(usdt_binary, usdt_program):
    prog, seen, _ = usdt_program()
    fds, links = open_fds(), set(link_ids())
    child = subprocess.Popen([str(usdt_binary), "6", "wait"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        with prog.attach_usdt(str(usdt_binary), "pybpf_test", "hit", pid=child.pid, cookie=0xC0FFEE) as link:
            assert "pid" in link.describe() and len(link.spec_ids) == 1
            out, _ = child.communicate(b"go\n", timeout=10)
        assert int(out) == 6  # the semaphore was raised through /proc/PID/mem: the program saw a listener
        for i in range(6):
            rec = seen[i]
            assert (rec.a0, rec.a1, rec.a2, rec.a3, rec.a4, rec.a5) == _expected(i)
            assert rec.cookie == 0xC0FFEE and rec.cnt == 6
    finally:
        child.kill()
        child.wait()
    assert open_fds() == fds and links_left(links) == set()


def test_usdt_for_all_processes_uses_kernel_semaphores(usdt_binary, usdt_program):
    prog, seen, _ = usdt_program()
    with prog.attach("usdt/" + str(usdt_binary) + ":pybpf_test:hit"):
        out = subprocess.run([str(usdt_binary), "4"], capture_output=True, check=True).stdout
    assert int(out) == 4  # the kernel raised the semaphore (uprobe ref_ctr_offset)
    assert sorted(seen.keys()) == [0, 1, 2, 3]
    assert seen[3][:6] == _expected(3)
    out = subprocess.run([str(usdt_binary), "3"], capture_output=True, check=True).stdout
    assert int(out) == 0  # detached: semaphore back to zero


def test_usdt_without_bpf_cookies_uses_the_ip_map(usdt_binary, usdt_program):
    prog, seen, ips = usdt_program(has_cookie=False)
    child = subprocess.Popen([str(usdt_binary), "3", "wait"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        with prog.attach_usdt(str(usdt_binary), "pybpf_test", "hit", pid=child.pid, cookie=7, use_bpf_cookie=False):
            assert ips.count() == 1
            child.communicate(b"go\n", timeout=10)
        assert ips.count() == 0  # removed on detach
    finally:
        child.kill()
        child.wait()
    assert [seen[i][:6] for i in range(3)] == [_expected(i) for i in range(3)]
    assert seen[0].cookie == 7


def test_usdt_errors(usdt_binary, usdt_program):
    prog, _, _ = usdt_program()
    fds, links = open_fds(), set(link_ids())
    with pytest.raises(LinkError, match=r"no USDT probe pybpf_test:hitt in .*did you mean pybpf_test:hit"):
        prog.attach_usdt(str(usdt_binary), "pybpf_test", "hitt")
    with pytest.raises(LinkError, match="has no USDT probes"):
        prog.attach_usdt("/bin/true", "x", "y")
    with pytest.raises(LinkError, match="no process with pid 999999999"):
        prog.attach_usdt(str(usdt_binary), "pybpf_test", "hit", pid=999999999)
    with Program.load(ProgType.KPROBE, [Instruction(0xB7, 0, 0, 0, 0), Instruction(0x95)], name="nousdt") as bare:
        with pytest.raises(LinkError, match="has no __bpf_usdt_specs map"):
            bare.attach_usdt(str(usdt_binary), "pybpf_test", "hit")
    with Program.load(ProgType.TRACEPOINT, [Instruction(0xB7, 0, 0, 0, 0), Instruction(0x95)], name="tp") as tp:
        with pytest.raises(LinkError, match="needs a KPROBE program"):
            tp.attach_usdt(str(usdt_binary), "pybpf_test", "hit")
    assert open_fds() == fds and links_left(links) == set()


# --- what this kernel refuses --------------------------------------------------------------

RET0 = [Instruction(0xB7, 0, 0, 0, 0), Instruction(0x95)]
HAS_KPROBE_PMU = os.path.exists("/sys/bus/event_source/devices/kprobe")


def test_kprobes_count_calls_or_name_why_not():
    with Program.load(ProgType.KPROBE, RET0, name="kp") as prog:
        if HAS_KPROBE_PMU:
            with prog.attach_kprobe("__x64_sys_getppid") as link:
                assert link.info().details["func_name"] == "__x64_sys_getppid"
            return
        with pytest.raises(NotSupportedError) as exc:
            prog.attach("kprobe/do_nanosleep")
        assert "no kprobe PMU at /sys/bus/event_source/devices/kprobe" in str(exc.value)
        assert "CONFIG_KPROBES is not set" in str(exc.value)
        with pytest.raises(NotSupportedError, match="kprobes"):
            prog.attach("ksyscall/getppid")


def test_kprobe_multi_names_the_missing_fprobe():
    with Program.load(ProgType.KPROBE, RET0, name="kpm", expected_attach_type=AttachType.TRACE_KPROBE_MULTI) as prog:
        try:
            link = prog.attach("kprobe.multi/do_nanosleep")
        except NotSupportedError as exc:
            assert "kprobe.multi links" in str(exc) and "CONFIG_FPROBE" in str(exc)
            pytest.skip(str(exc))
        link.close()
        with pytest.raises(LinkError, match="no kernel function matches 'pybpf_no_such_fn_\\*'"):
            prog.attach_kprobe_multi("pybpf_no_such_fn_*")


@pytest.mark.parametrize("kind, attach_type, target", [
    ("fentry", AttachType.TRACE_FENTRY, "do_nanosleep"),
    ("fexit", AttachType.TRACE_FEXIT, "do_nanosleep"),
    ("lsm", AttachType.LSM_MAC, "bpf_lsm_file_open"),
])
def test_trampoline_programs_load_or_name_the_cause(kind, attach_type, target):
    ptype = ProgType.LSM if kind == "lsm" else ProgType.TRACING
    try:
        prog = Program.load(ptype, RET0, name=kind, expected_attach_type=attach_type,
                            attach_btf_id=vmlinux_btf_id(target), section=f"{kind}/{target}")
    except NotSupportedError as exc:
        assert "the kernel refuses BPF trampolines here" in str(exc)
        assert "CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN are present" in str(exc)
        pytest.skip(str(exc))
    with prog, prog.attach() as link:
        assert link.info().type == LinkType.TRACING
