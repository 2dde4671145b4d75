"""Section names mean what libbpf says they mean: the same program types as bpftool (libbpf) picks
for one object holding a program per section, and each program loads from the table alone."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from conftest import compile_bpf
from kernel_testlib import PREAMBLE, load_c, vmlinux_btf_id

from pybpf.kernel import ensure_bpffs
from pybpf.object.sections import SectionFlags, attach_target, find_section_def
from pybpf.object.spec import _prog_flags

pytestmark = pytest.mark.kernel

# Sections libbpf 1.1 (the installed bpftool) knows and this kernel loads without a BTF target.
SECTIONS = [
    "socket", "sk_reuseport", "sk_reuseport/migrate", "kprobe/do_nanosleep", "kretprobe/do_nanosleep",
    "uprobe", "uretprobe", "uprobe.s", "ksyscall/getppid", "usdt", "tc", "classifier", "action",
    "tracepoint/syscalls/sys_enter_getppid", "tp/syscalls/sys_enter_getppid", "raw_tracepoint/sys_enter",
    "raw_tp/sys_enter", "raw_tp.w/sys_enter", "xdp", "xdp.frags", "xdp/devmap", "xdp/cpumap", "perf_event",
    "lwt_in", "lwt_out", "lwt_xmit", "lwt_seg6local", "sockops", "sk_skb/stream_parser", "sk_skb/stream_verdict",
    "sk_skb", "sk_msg", "flow_dissector", "cgroup_skb/ingress", "cgroup_skb/egress",
    "cgroup/skb", "cgroup/sock_create", "cgroup/sock_release", "cgroup/sock", "cgroup/post_bind4",
    "cgroup/post_bind6", "cgroup/bind4", "cgroup/bind6", "cgroup/connect4", "cgroup/connect6", "cgroup/sendmsg4",
    "cgroup/sendmsg6", "cgroup/recvmsg4", "cgroup/recvmsg6", "cgroup/getpeername4", "cgroup/getpeername6",
    "cgroup/getsockname4", "cgroup/getsockname6", "cgroup/sysctl", "cgroup/getsockopt", "cgroup/setsockopt",
    "cgroup/dev", "sk_lookup", "syscall",
]
# Newer than libbpf 1.1: loaded from the table only.
NEWER = ["sk_skb/verdict", "tcx/ingress", "tcx/egress", "tc/ingress", "tc/egress", "netfilter", "cgroup/connect_unix",
         "cgroup/sendmsg_unix", "cgroup/recvmsg_unix", "cgroup/getpeername_unix", "cgroup/getsockname_unix"]
# Return values every hook above accepts.
RETURNS = {"sk_lookup": 1, "sk_skb": 1, "sk_msg": 1, "cgroup": 1, "sockops": 1, "xdp": 2}


def _name(i: int) -> str:
    return f"prog_{i}"


def _source(sections: list[str] = SECTIONS) -> str:
    out = []
    for i, sec in enumerate(sections):
        ret = next((v for k, v in RETURNS.items() if sec.startswith(k)), 0)
        out.append(f'SEC("{sec}")\nint {_name(i)}(void *ctx) {{ return {ret}; }}\n')
    return "".join(out)


def test_program_types_match_libbpf():
    obj = compile_bpf(PREAMBLE + _source(), name="sections")
    root = os.path.join(ensure_bpffs(), f"pybpf_sections_{os.getpid()}")
    os.makedirs(root)
    try:
        subprocess.run(["bpftool", "prog", "loadall", str(obj), root], check=True, capture_output=True)
        for i, sec in enumerate(SECTIONS):
            shown = subprocess.run(["bpftool", "prog", "show", "pinned", f"{root}/{_name(i)}"], capture_output=True,
                                   text=True, check=True).stdout
            libbpf_type = re.match(r"\d+: (\S+)", shown).group(1)
            assert find_section_def(sec).prog_type.name.lower() == libbpf_type, sec
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.parametrize("sec", SECTIONS + NEWER)
def test_each_section_loads_from_its_definition(sec):
    d = find_section_def(sec)
    with load_c(_source(SECTIONS + NEWER), sec, d.prog_type, name="sections_all",
                expected_attach_type=d.attach_type, flags=_prog_flags(d)) as loaded:
        assert loaded.program.info().type == d.prog_type


def test_btf_targets_and_names():
    def target(section):
        return attach_target(find_section_def(section), section)

    assert target("fentry/vfs_read") == "vfs_read" and find_section_def("fentry/vfs_read").flags & SectionFlags.ATTACH_BTF
    assert target("tracepoint/syscalls/sys_enter_read") == "syscalls/sys_enter_read"
    assert target("xdp") is None and find_section_def("xdp.frags").flags & SectionFlags.XDP_FRAGS
    assert find_section_def("tcx/ingress").attach_type.name == "TCX_INGRESS"
    assert find_section_def("iter/task").flags & SectionFlags.ATTACH_BTF
    assert find_section_def("lsm.s/file_open").flags & SectionFlags.SLEEPABLE
    assert find_section_def("cgroup/connect5") is None and find_section_def("xdpx") is None
    # a BTF-target section loads once the loader resolves its target
    d = find_section_def("tp_btf/sys_enter")
    with load_c('SEC("tp_btf/sys_enter")\nint f(void *ctx) { return 0; }\n', "tp_btf/sys_enter", d.prog_type,
                name="tpbtf", expected_attach_type=d.attach_type,
                attach_btf_id=vmlinux_btf_id("btf_trace_" + target("tp_btf/sys_enter"), "TYPEDEF")) as loaded:
        assert loaded.program.info().type == d.prog_type
