"""The SEC() table: program type, expected attach type, target and flags from section names."""

from __future__ import annotations

import pytest

import libbpf_ref
from conftest import compile_bpf
from pybpf.object import AttachType, ObjectSpec, ProgFlags, ProgType
from pybpf.object.sections import SECTION_DEFS, find_section_def
from pybpf.errors import ObjectError


def _sample_names() -> list[str]:
    names = []
    for d in SECTION_DEFS:
        p = d.pattern
        if p.endswith("+"):
            names += [p[:-1], p[:-1] + "/some_target"]
        elif p.endswith("/"):
            names.append(p + "some_target")
        else:
            names.append(p)
    return names


@pytest.mark.skipif(not libbpf_ref.available(), reason="libbpf.so.1 is not installed (apt-get install libbpf1)")
def test_table_agrees_with_libbpf_for_every_name_libbpf_knows():
    """libbpf 1.1 knows fewer names (newer ones return None there); where it knows one, we agree."""
    lib = libbpf_ref.LibBPF()
    known = 0
    for name in _sample_names() + ["sk_skb/stream_parser", "kprobe/do_sys_open+0x10", "uprobe//bin/bash:readline",
                                   "socket/2", "tp", "xdp.frags/devmap", "cgroup/sock", "lsm.s/file_open"]:
        ref = lib.section_type(name)
        d = find_section_def(name)
        if ref is None:
            continue
        known += 1
        assert d is not None, name
        assert (int(d.prog_type), int(d.attach_type or 0)) == ref, name
    assert known > 100


def test_unknown_names_and_matching_rules():
    assert find_section_def("socket/2") is None  # "socket" is exact
    assert find_section_def("kprobex") is None  # "kprobe+" needs end or '/'
    assert find_section_def("kprobe").prog_type == ProgType.KPROBE
    assert find_section_def("sk_reuseport/migrate").attach_type == AttachType.SK_REUSEPORT_SELECT_OR_MIGRATE
    assert find_section_def("sk_reuseport").attach_type == AttachType.SK_REUSEPORT_SELECT
    assert find_section_def("xdp.frags/cpumap").attach_type == AttachType.XDP_CPUMAP


PROGRAMS = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#define P(sec, name) SEC(sec) int name(void *ctx) { return 0; }
P("tracepoint/sched/sched_switch", tp1)
P("tp/syscalls/sys_enter_openat", tp2)
P("raw_tp/sched_wakeup", rtp)
P("raw_tracepoint.w/bpf_test_finish", rtpw)
P("tp_btf/sched_switch", tpbtf)
P("kprobe/do_unlinkat+0x10", kp)
P("kretprobe/do_unlinkat", krp)
P("ksyscall/openat", ks)
P("kretsyscall/openat", kretsys)
P("kprobe.multi/tcp_*", kpm)
P("kretprobe.multi/tcp_*", kretpm)
P("uprobe//usr/lib/x86_64-linux-gnu/libc.so.6:malloc+16", up)
P("uretprobe.s/bin/bash:readline", urp)
P("uprobe.multi//usr/bin/bash:read*", upm)
P("usdt/./libfoo.so:provider:probe", usdt)
P("fentry/do_unlinkat", fe)
P("fexit.s/do_unlinkat", fx)
P("fmod_ret/security_file_open", fmr)
P("freplace/handler", frep)
P("lsm/file_open", lsm1)
P("lsm.s/bprm_committed_creds", lsm2)
P("lsm_cgroup/socket_bind", lsmcg)
P("iter/task", it)
P("iter.s/task_file", its)
P("syscall", sysc)
P("xdp", x1)
P("xdp.frags", x2)
P("xdp/devmap", x3)
P("xdp.frags/cpumap", x4)
P("tc", tc1)
P("tc/ingress", tc2)
P("tcx/egress", tc3)
P("classifier", cls)
P("action", act)
P("netkit/primary", nk)
P("socket", sock)
P("sk_skb/stream_parser", sks1)
P("sk_skb/stream_verdict", sks2)
P("sk_skb/verdict", sks3)
P("sk_msg", skm)
P("sockops", sops)
P("sk_lookup", skl)
P("sk_reuseport/migrate", skr)
P("flow_dissector", fd)
P("lwt_xmit", lwt)
P("cgroup_skb/egress", cgskb)
P("cgroup/sock_create", cgs)
P("cgroup/connect4", cgc4)
P("cgroup/recvmsg_unix", cgru)
P("cgroup/sysctl", cgsys)
P("cgroup/getsockopt", cggso)
P("cgroup/dev", cgdev)
P("perf_event", pe)
P("struct_ops/ssthresh", sto)
P("netfilter", nf)
P("?tp/sched/sched_process_exit", optional)
P("my_custom_section", custom)
char LICENSE[] SEC("license") = "Dual BSD/GPL";
"""


@pytest.fixture(scope="module")
def sections_spec() -> ObjectSpec:
    return ObjectSpec.from_file(compile_bpf(PROGRAMS, name="sections"))


@pytest.mark.parametrize("name, ptype, atype, target", [
    ("tp1", ProgType.TRACEPOINT, None, "sched/sched_switch"),
    ("tp2", ProgType.TRACEPOINT, None, "syscalls/sys_enter_openat"),
    ("rtp", ProgType.RAW_TRACEPOINT, None, "sched_wakeup"),
    ("rtpw", ProgType.RAW_TRACEPOINT_WRITABLE, None, "bpf_test_finish"),
    ("tpbtf", ProgType.TRACING, AttachType.TRACE_RAW_TP, "sched_switch"),
    ("kp", ProgType.KPROBE, None, "do_unlinkat+0x10"),
    ("krp", ProgType.KPROBE, None, "do_unlinkat"),
    ("ks", ProgType.KPROBE, None, "openat"),
    ("kpm", ProgType.KPROBE, AttachType.TRACE_KPROBE_MULTI, "tcp_*"),
    ("up", ProgType.KPROBE, None, "/usr/lib/x86_64-linux-gnu/libc.so.6:malloc+16"),
    ("upm", ProgType.KPROBE, AttachType.TRACE_UPROBE_MULTI, "/usr/bin/bash:read*"),
    ("usdt", ProgType.KPROBE, None, "./libfoo.so:provider:probe"),
    ("fe", ProgType.TRACING, AttachType.TRACE_FENTRY, "do_unlinkat"),
    ("fx", ProgType.TRACING, AttachType.TRACE_FEXIT, "do_unlinkat"),
    ("fmr", ProgType.TRACING, AttachType.MODIFY_RETURN, "security_file_open"),
    ("frep", ProgType.EXT, None, "handler"),
    ("lsm1", ProgType.LSM, AttachType.LSM_MAC, "file_open"),
    ("lsmcg", ProgType.LSM, AttachType.LSM_CGROUP, "socket_bind"),
    ("it", ProgType.TRACING, AttachType.TRACE_ITER, "task"),
    ("sysc", ProgType.SYSCALL, None, None),
    ("x1", ProgType.XDP, AttachType.XDP, None),
    ("x3", ProgType.XDP, AttachType.XDP_DEVMAP, None),
    ("x4", ProgType.XDP, AttachType.XDP_CPUMAP, None),
    ("tc1", ProgType.SCHED_CLS, None, None),
    ("tc2", ProgType.SCHED_CLS, AttachType.TCX_INGRESS, None),
    ("tc3", ProgType.SCHED_CLS, AttachType.TCX_EGRESS, None),
    ("cls", ProgType.SCHED_CLS, None, None),
    ("act", ProgType.SCHED_ACT, None, None),
    ("nk", ProgType.SCHED_CLS, AttachType.NETKIT_PRIMARY, None),
    ("sock", ProgType.SOCKET_FILTER, None, None),
    ("sks1", ProgType.SK_SKB, AttachType.SK_SKB_STREAM_PARSER, None),
    ("sks3", ProgType.SK_SKB, AttachType.SK_SKB_VERDICT, None),
    ("skm", ProgType.SK_MSG, AttachType.SK_MSG_VERDICT, None),
    ("sops", ProgType.SOCK_OPS, AttachType.CGROUP_SOCK_OPS, None),
    ("skl", ProgType.SK_LOOKUP, AttachType.SK_LOOKUP, None),
    ("skr", ProgType.SK_REUSEPORT, AttachType.SK_REUSEPORT_SELECT_OR_MIGRATE, None),
    ("fd", ProgType.FLOW_DISSECTOR, AttachType.FLOW_DISSECTOR, None),
    ("lwt", ProgType.LWT_XMIT, None, None),
    ("cgskb", ProgType.CGROUP_SKB, AttachType.CGROUP_INET_EGRESS, None),
    ("cgs", ProgType.CGROUP_SOCK, AttachType.CGROUP_INET_SOCK_CREATE, None),
    ("cgc4", ProgType.CGROUP_SOCK_ADDR, AttachType.CGROUP_INET4_CONNECT, None),
    ("cgru", ProgType.CGROUP_SOCK_ADDR, AttachType.CGROUP_UNIX_RECVMSG, None),
    ("cgsys", ProgType.CGROUP_SYSCTL, AttachType.CGROUP_SYSCTL, None),
    ("cggso", ProgType.CGROUP_SOCKOPT, AttachType.CGROUP_GETSOCKOPT, None),
    ("cgdev", ProgType.CGROUP_DEVICE, AttachType.CGROUP_DEVICE, None),
    ("pe", ProgType.PERF_EVENT, None, None),
    ("sto", ProgType.STRUCT_OPS, None, "ssthresh"),
    ("nf", ProgType.NETFILTER, AttachType.NETFILTER, None),
])
def test_program_kinds(sections_spec, name, ptype, atype, target):
    prog = sections_spec.programs[name]
    assert (prog.type, prog.expected_attach_type, prog.attach_target) == (ptype, atype, target)
    assert prog.reason is None


def test_flags_sleepable_and_frags(sections_spec):
    p = sections_spec.programs
    assert p["fx"].flags == ProgFlags.SLEEPABLE and p["fx"].sleepable
    assert p["urp"].sleepable and p["lsm2"].sleepable and p["its"].sleepable and p["sysc"].sleepable
    assert p["x2"].flags == ProgFlags.XDP_HAS_FRAGS and p["x4"].flags == ProgFlags.XDP_HAS_FRAGS
    assert p["x1"].flags == ProgFlags(0) and not p["fe"].sleepable
    assert p["fe"].needs_btf_target and p["lsm1"].needs_btf_target and not p["kp"].needs_btf_target


def test_probe_targets_split_like_libbpf(sections_spec):
    p = sections_spec.programs
    assert (p["kp"].probe.function, p["kp"].probe.offset, p["kp"].probe.retprobe) == ("do_unlinkat", 16, False)
    assert p["krp"].probe.retprobe and p["kretsys"].probe.retprobe and p["kretpm"].probe.retprobe
    up = p["up"].probe
    assert (up.path, up.function, up.offset) == ("/usr/lib/x86_64-linux-gnu/libc.so.6", "malloc", 16)
    assert (p["urp"].probe.path, p["urp"].probe.function, p["urp"].probe.retprobe) == ("bin/bash", "readline", True)
    u = p["usdt"].probe
    assert (u.path, u.provider, u.function) == ("./libfoo.so", "provider", "probe")
    assert (p["tp1"].probe.category, p["tp1"].probe.function) == ("sched", "sched_switch")
    assert p["x1"].probe is None


def test_optional_and_unknown_sections(sections_spec):
    opt = sections_spec.programs["optional"]
    assert opt.section == "tp/sched/sched_process_exit" and not opt.autoload
    assert opt.type == ProgType.TRACEPOINT
    custom = ObjectSpec.from_file(sections_spec.path).programs["custom"]
    assert custom.type == ProgType.UNSPEC and "my_custom_section" in custom.reason
    custom.set_section("xdp.frags")
    assert (custom.type, custom.expected_attach_type, custom.flags, custom.reason) == (
        ProgType.XDP, AttachType.XDP, ProgFlags.XDP_HAS_FRAGS, None)
    with pytest.raises(ObjectError, match="not one libbpf knows"):
        custom.set_section("nonsense")


def test_retarget_and_autoload_are_plain_attributes():
    fe = ObjectSpec.from_file(compile_bpf(PROGRAMS, name="sections")).programs["fe"]
    fe.attach_target = "vfs_read"
    fe.autoload = False
    assert fe.attach_target == "vfs_read" and not fe.autoload


@pytest.mark.skipif(not libbpf_ref.available(), reason="libbpf.so.1 is not installed")
def test_program_list_matches_libbpf_for_names_it_knows(sections_spec):
    progs, _maps = libbpf_ref.LibBPF().details(sections_spec.path)
    assert set(progs) == set(sections_spec.programs)
    compared = 0
    for name, ref in progs.items():
        mine = sections_spec.programs[name]
        assert ref["section"] == mine.section  # libbpf drops the '?' too
        assert ref["autoload"] == mine.autoload
        if ref["type"] == 0:  # a name libbpf 1.1 does not know yet
            continue
        compared += 1
        assert (ref["type"], ref["attach_type"]) == (int(mine.type), int(mine.expected_attach_type or 0)), name
    assert compared > 40
