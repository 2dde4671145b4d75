"""Global data as internal maps, typed variable access, __kconfig and __ksym externs."""

from __future__ import annotations

import gzip
import os

import pytest

import libbpf_ref
from conftest import compile_bpf
from pybpf.errors import ObjectError
from pybpf.isa import CALL, LD_IMM64, PseudoLoad
from pybpf.object import MapFlags, MapType, ObjectSpec
from pybpf.object.kconfig import kernel_version_code, running_kernel_version

SOURCE = r"""
#include <stdbool.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct cfg { int a; char name[8]; unsigned int flag: 1; unsigned int level: 3; };
enum mode { MODE_OFF, MODE_ON = 5 };

const volatile int target_pid = 0;
const volatile bool verbose = false;
const volatile enum mode mode = MODE_OFF;
const volatile char comm[16] = "bash";
const volatile struct cfg cfg = { .a = 1, .name = "x", .flag = 1, .level = 5 };
const volatile __u64 limits[3] = {1, 2, 3};
int counter = 5;
static volatile int hidden_counter = 2;
__u64 hits;
char buf[32];
int custom_val SEC(".data.custom") = 9;
const volatile int custom_ro SEC(".rodata.custom") = 11;

extern int LINUX_KERNEL_VERSION __kconfig;
extern bool CONFIG_BPF_SYSCALL __kconfig;
extern enum libbpf_tristate CONFIG_BPF_JIT __kconfig __weak;
extern char CONFIG_DEFAULT_HOSTNAME[32] __kconfig __weak;
extern unsigned int CONFIG_HZ __kconfig __weak;
extern int CONFIG_PYBPF_NOT_A_REAL_OPTION __kconfig __weak;
extern bool LINUX_HAS_BPF_COOKIE __kconfig __weak;

extern const int bpf_prog_active __ksym;
extern const void bpf_iter_task_new __ksym __weak;
extern void bpf_rcu_read_lock(void) __ksym __weak;
extern void pybpf_no_such_kfunc(void) __ksym __weak;

SEC("tp/syscalls/sys_enter_getpid")
int use_data(void *ctx)
{
    if (target_pid && verbose && mode == MODE_ON)
        return 1;
    counter += hidden_counter + cfg.a + comm[0] + limits[2] + custom_val + custom_ro;
    hits++;
    buf[1] = 2;
    return LINUX_KERNEL_VERSION + CONFIG_BPF_SYSCALL + CONFIG_BPF_JIT + CONFIG_DEFAULT_HOSTNAME[0] + CONFIG_HZ
           + CONFIG_PYBPF_NOT_A_REAL_OPTION + LINUX_HAS_BPF_COOKIE;
}

SEC("?tp_btf/sched_switch")
int use_ksyms(void *ctx)
{
    int *active = bpf_this_cpu_ptr(&bpf_prog_active);
    if (&pybpf_no_such_kfunc != 0)
        pybpf_no_such_kfunc();
    bpf_rcu_read_lock();
    return *active + (&bpf_iter_task_new != 0);
}

char LICENSE[] SEC("license") = "GPL";
"""


@pytest.fixture(scope="module")
def path():
    return compile_bpf(SOURCE, name="globals")


@pytest.fixture
def spec(path) -> ObjectSpec:
    return ObjectSpec.from_file(path, name="globals")


def test_internal_maps_are_named_like_libbpf(spec):
    internal = {m.internal: m.name for m in spec.maps.values() if m.is_internal}
    assert internal == {".rodata": "globals.rodata", ".data": "globals.data", ".bss": "globals.bss",
                        ".data.custom": ".data.custom", ".rodata.custom": ".rodata.custom",
                        ".kconfig": "globals.kconfig"}
    ro = spec.map_by_section(".rodata")
    assert ro.frozen and ro.readonly and ro.flags & MapFlags.MMAPABLE
    assert (ro.type, ro.key_size, ro.max_entries) == (MapType.ARRAY, 4, 1) and ro.value_size == len(ro.data)
    assert not spec.map_by_section(".data").readonly and spec.map_by_section(".bss").data == bytes(40)


def test_long_object_names_are_truncated_to_15_characters(path):
    spec = ObjectSpec.from_file(path, name="a_very_long_object_name")
    assert {m.name for m in spec.maps.values() if m.is_internal} >= {"a_very_l.rodata", "a_very_l.data",
                                                                        "a_very_.kconfig", ".rodata.custom"}
    assert all(len(m.name) <= 15 for m in spec.maps.values())


def test_typed_read_of_initial_values(spec):
    ro = spec.rodata
    assert ro["target_pid"] == 0 and ro["verbose"] is False and ro["mode"] == 0
    assert ro["comm"] == "bash" and ro["limits"] == [1, 2, 3]
    assert ro["cfg"]._asdict() == {"a": 1, "name": "x", "flag": 1, "level": 5} and ro["cfg"].level == 5
    assert spec.data["counter"] == 5 and spec.data["hidden_counter"] == 2
    assert spec.bss["hits"] == 0 and spec.bss["buf"] == ""
    assert spec.section_variables(".data.custom")["custom_val"] == 9
    assert spec.section_variables(".rodata.custom")["custom_ro"] == 11
    assert spec.variables["hidden_counter"].linkage == "static" and spec.variables["counter"].linkage == "global"


def test_typed_writes_land_in_the_map_bytes(spec):
    spec.rodata["target_pid"] = 1234
    spec.rodata["verbose"] = True
    spec.rodata["mode"] = "MODE_ON"
    spec.rodata["comm"] = "python3"
    spec.rodata["cfg"] = {"a": -7, "level": 3, "flag": 0}
    spec.rodata["limits"] = [9, 8, 7]
    spec.data["counter"] = -1
    v = spec.variables["target_pid"]
    assert spec.map_by_section(".rodata").data[v.offset:v.offset + 4] == (1234).to_bytes(4, "little")
    assert spec.rodata["mode"] == 5 and spec.rodata["comm"] == "python3" and spec.rodata["verbose"] is True
    assert spec.rodata["cfg"]._asdict() == {"a": -7, "name": "", "flag": 0, "level": 3}
    assert spec.rodata["limits"] == [9, 8, 7] and spec.data["counter"] == -1


@pytest.mark.parametrize("name, value, message", [
    ("target_pid", 1 << 40, "variable 'target_pid' \\(.rodata\\): cannot encode 1099511627776"),
    ("mode", "MODE_BOGUS", "'MODE_BOGUS' is not an enumerator .*MODE_OFF, MODE_ON"),
    ("comm", "x" * 17, "variable 'comm' .*17 bytes do not fit"),
    ("cfg", {"nope": 1}, "no member 'nope'"),
    ("target_pid", "12", "cannot encode '12'"),
])
def test_bad_values_are_refused(spec, name, value, message):
    with pytest.raises(ObjectError, match=message):
        spec.rodata[name] = value


def test_unknown_variable_names_list_the_known_ones(spec):
    with pytest.raises(KeyError, match="target_pid"):
        spec.rodata["nope"]


def test_kconfig_externs_layout_like_libbpf(spec):
    k = {e.name: e for e in spec.externs.values() if e.kind == "kconfig"}
    assert set(k) == {"LINUX_KERNEL_VERSION", "CONFIG_BPF_SYSCALL", "CONFIG_BPF_JIT", "CONFIG_DEFAULT_HOSTNAME",
                      "CONFIG_HZ", "CONFIG_PYBPF_NOT_A_REAL_OPTION", "LINUX_HAS_BPF_COOKIE"}
    assert (k["CONFIG_BPF_JIT"].kconfig_type, k["CONFIG_BPF_SYSCALL"].kconfig_type,
            k["CONFIG_DEFAULT_HOSTNAME"].kconfig_type, k["CONFIG_HZ"].kconfig_type) == (
        "tristate", "bool", "char_array", "int")
    assert not k["LINUX_KERNEL_VERSION"].weak and k["CONFIG_HZ"].weak
    # ordered by alignment (desc), size, name; packed without overlaps
    spans = sorted((e.offset, e.offset + e.size) for e in k.values())
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))
    assert all(e.offset % e.align == 0 for e in k.values())


def test_kconfig_from_given_config_text(spec):
    config = "\n".join(["# comment", "CONFIG_BPF_SYSCALL=y", "CONFIG_BPF_JIT=m", 'CONFIG_DEFAULT_HOSTNAME="box"',
                        "CONFIG_HZ=0x3e8"])
    data = spec.resolve_kconfig(config=config, probes={"LINUX_KERNEL_VERSION": lambda: kernel_version_code(5, 4, 300),
                                                        "LINUX_HAS_BPF_COOKIE": lambda: 1})
    kc = spec.kconfig
    assert (kc["CONFIG_BPF_SYSCALL"], kc["CONFIG_BPF_JIT"], kc["CONFIG_DEFAULT_HOSTNAME"], kc["CONFIG_HZ"]) == (
        True, 2, "box", 1000)
    assert kc["LINUX_KERNEL_VERSION"] == (5 << 16) + (4 << 8) + 255 and kc["LINUX_HAS_BPF_COOKIE"] is True
    assert kc["CONFIG_PYBPF_NOT_A_REAL_OPTION"] == 0 and data == bytes(spec.map_by_section(".kconfig").data)


@pytest.mark.parametrize("config, message", [
    ("CONFIG_BPF_SYSCALL=m", "implies a tristate"),
    ("CONFIG_BPF_SYSCALL=y\nCONFIG_HZ=abc", "isn't a valid integer"),
    ("CONFIG_BPF_SYSCALL=y\nCONFIG_HZ=y", "implies a bool"),
    ("CONFIG_HZ=100", "CONFIG_BPF_SYSCALL' \\(strong\\) is not set"),
    ("CONFIG_BPF_SYSCALL", "no '='"),
])
def test_bad_kconfig_values(spec, config, message):
    with pytest.raises(ObjectError, match=message):
        spec.resolve_kconfig(config=config)


def test_kconfig_of_the_running_kernel(spec):
    try:
        with gzip.open("/proc/config.gz", "rt") as f:
            text = f.read()
    except OSError:
        pytest.skip("/proc/config.gz is not available")
    spec.resolve_kconfig()
    want_hz = next(int(line.split("=")[1]) for line in text.splitlines() if line.startswith("CONFIG_HZ="))
    assert spec.kconfig["CONFIG_HZ"] == want_hz
    assert spec.kconfig["LINUX_KERNEL_VERSION"] == running_kernel_version()
    release = os.uname().release.split(".")
    assert running_kernel_version() >> 8 == (int(release[0]) << 8) + int(release[1])


def test_ksym_externs(spec):
    k = {e.name: e for e in spec.externs.values() if e.kind == "ksym"}
    assert k["bpf_prog_active"].typed and not k["bpf_prog_active"].is_function and not k["bpf_prog_active"].weak
    assert not k["bpf_iter_task_new"].typed and k["bpf_iter_task_new"].weak
    assert k["bpf_rcu_read_lock"].is_function and k["bpf_rcu_read_lock"].weak
    refs = spec.programs["use_ksyms"].extern_references
    assert {(r.extern, r.call) for r in refs} >= {("bpf_rcu_read_lock", True), ("bpf_prog_active", False),
                                                 ("pybpf_no_such_kfunc", True)}


def test_ksyms_resolve_against_the_running_kernel(spec):
    res = spec.resolve_ksyms()
    assert res["bpf_prog_active"].resolved and res["bpf_prog_active"].btf_id > 0
    assert res["bpf_rcu_read_lock"].resolved and res["bpf_rcu_read_lock"].module is None
    assert not res["pybpf_no_such_kfunc"].resolved
    prog = spec.link_instructions("use_ksyms", {m: 3 for m in spec.maps}, res)
    btf_loads = [i for i in prog if i.opcode == LD_IMM64 and i.src == PseudoLoad.BTF_ID]
    assert btf_loads and btf_loads[0].imm == res["bpf_prog_active"].btf_id
    poisoned = [i for i in prog if i.opcode == CALL and i.imm >= 2002000000]
    assert len(poisoned) == 1
    assert "kfunc 'pybpf_no_such_kfunc'" in spec.explain_poison("use_ksyms", 0, poisoned[0].imm)


@pytest.mark.kernel
@pytest.mark.skipif(not libbpf_ref.available(), reason="libbpf.so.1 is not installed")
def test_global_data_kconfig_and_instructions_match_libbpf(path):
    spec = ObjectSpec.from_file(path)  # named from the file, as libbpf names it
    lib = libbpf_ref.LibBPF()
    _progs, _maps, log, error = lib.view(spec.path, load=True)
    assert not error, "\n".join(log[-15:])
    spec.resolve_kconfig()
    ksyms = spec.resolve_ksyms()
    for m in spec.maps.values():
        if m.internal == ".kconfig":
            # LINUX_HAS_SYSCALL_WRAPPER aside (not used here), every value as libbpf computed it
            assert bytes(m.data) == lib.map_data[m.name]
        elif m.is_internal:
            assert bytes(m.data) == lib.map_data[m.name], m.name
    assert set(lib.instructions) == {"use_data"}
    assert spec.link_instructions("use_data", lib.map_fds, ksyms).encode() == lib.instructions["use_data"]
    # .ksyms ints and the dummy_ksym variable, .kconfig layout, DATASEC sizes/offsets: the same BTF bytes
    assert spec.kernel_btf().to_bytes() == lib.btf
