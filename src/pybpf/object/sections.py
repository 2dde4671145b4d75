"""libbpf's SEC() naming convention, as data.

A program's ELF section name says what it is: ``SEC("kprobe/do_unlinkat")`` is
a kprobe on do_unlinkat, ``SEC("xdp.frags")`` an XDP program that accepts
multi-buffer packets, ``SEC("?tp/...")`` a tracepoint that is not loaded unless
asked.  The table below follows current libbpf (libbpf.c ``section_defs``):
same names, same order (the first match wins), same program and expected
attach types, same flags.

Patterns: ``"name"`` matches exactly; ``"name+"`` matches ``name`` or
``name/anything``; ``"name/"`` needs ``name/anything``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import IntFlag

from .kinds import AttachType as A
from .kinds import ProgType as P


class SectionFlags(IntFlag):
    NONE = 0
    ATTACH_OPTIONAL = 1  # expected_attach_type may be dropped on kernels that do not know it
    ATTACHABLE = 2  # BPF_PROG_ATTACH-style program (informational, as in libbpf)
    ATTACH_BTF = 4  # the target is a BTF id (function, hook, tracepoint) named after the '/'
    SLEEPABLE = 8  # loaded with BPF_F_SLEEPABLE
    XDP_FRAGS = 16  # loaded with BPF_F_XDP_HAS_FRAGS
    USDT = 32  # USDT probe: uprobe_multi attach type where the kernel has it


F = SectionFlags
_OPT = F.ATTACHABLE | F.ATTACH_OPTIONAL


@dataclass(frozen=True, slots=True)
class SectionDef:
    """One row of the table."""

    pattern: str
    prog_type: P
    attach_type: A | None  # expected_attach_type; None = 0 for the kernel
    flags: SectionFlags = F.NONE
    attach: str | None = None  # how the program auto-attaches (libbpf's attach_* handler), None = needs arguments

    @property
    def prefix(self) -> str:
        return self.pattern.rstrip("+")

    def matches(self, section: str) -> bool:
        pat = self.pattern
        if pat.endswith("/"):
            return section.startswith(pat)
        if pat.endswith("+"):
            base = pat[:-1]
            return section == base or section.startswith(base + "/")
        return section == pat


def _d(pattern: str, prog_type: P, attach_type: A | None, flags: SectionFlags = F.NONE,
       attach: str | None = None) -> SectionDef:
    return SectionDef(pattern, prog_type, attach_type, flags, attach)


SECTION_DEFS: tuple[SectionDef, ...] = (
    _d("socket", P.SOCKET_FILTER, None),
    _d("sk_reuseport/migrate", P.SK_REUSEPORT, A.SK_REUSEPORT_SELECT_OR_MIGRATE, F.ATTACHABLE),
    _d("sk_reuseport", P.SK_REUSEPORT, A.SK_REUSEPORT_SELECT, F.ATTACHABLE),
    _d("kprobe+", P.KPROBE, None, attach="kprobe"),
    _d("uprobe+", P.KPROBE, None, attach="uprobe"),
    _d("uprobe.s+", P.KPROBE, None, F.SLEEPABLE, attach="uprobe"),
    _d("kretprobe+", P.KPROBE, None, attach="kprobe"),
    _d("uretprobe+", P.KPROBE, None, attach="uprobe"),
    _d("uretprobe.s+", P.KPROBE, None, F.SLEEPABLE, attach="uprobe"),
    _d("kprobe.multi+", P.KPROBE, A.TRACE_KPROBE_MULTI, attach="kprobe.multi"),
    _d("kretprobe.multi+", P.KPROBE, A.TRACE_KPROBE_MULTI, attach="kprobe.multi"),
    _d("kprobe.session+", P.KPROBE, A.TRACE_KPROBE_SESSION, attach="kprobe.session"),
    _d("uprobe.multi+", P.KPROBE, A.TRACE_UPROBE_MULTI, attach="uprobe.multi"),
    _d("uretprobe.multi+", P.KPROBE, A.TRACE_UPROBE_MULTI, attach="uprobe.multi"),
    _d("uprobe.session+", P.KPROBE, A.TRACE_UPROBE_SESSION, attach="uprobe.multi"),
    _d("uprobe.multi.s+", P.KPROBE, A.TRACE_UPROBE_MULTI, F.SLEEPABLE, attach="uprobe.multi"),
    _d("uretprobe.multi.s+", P.KPROBE, A.TRACE_UPROBE_MULTI, F.SLEEPABLE, attach="uprobe.multi"),
    _d("uprobe.session.s+", P.KPROBE, A.TRACE_UPROBE_SESSION, F.SLEEPABLE, attach="uprobe.multi"),
    _d("ksyscall+", P.KPROBE, None, attach="ksyscall"),
    _d("kretsyscall+", P.KPROBE, None, attach="ksyscall"),
    _d("usdt+", P.KPROBE, None, F.USDT, attach="usdt"),
    _d("usdt.s+", P.KPROBE, None, F.USDT | F.SLEEPABLE, attach="usdt"),
    _d("tc/ingress", P.SCHED_CLS, A.TCX_INGRESS),  # alias of tcx/ingress
    _d("tc/egress", P.SCHED_CLS, A.TCX_EGRESS),  # alias of tcx/egress
    _d("tcx/ingress", P.SCHED_CLS, A.TCX_INGRESS),
    _d("tcx/egress", P.SCHED_CLS, A.TCX_EGRESS),
    _d("tc", P.SCHED_CLS, None),  # legacy netlink cls_bpf
    _d("classifier", P.SCHED_CLS, None),  # legacy
    _d("action", P.SCHED_ACT, None),  # legacy
    _d("netkit/primary", P.SCHED_CLS, A.NETKIT_PRIMARY),
    _d("netkit/peer", P.SCHED_CLS, A.NETKIT_PEER),
    _d("tracepoint+", P.TRACEPOINT, None, attach="tracepoint"),
    _d("tp+", P.TRACEPOINT, None, attach="tracepoint"),
    _d("tracepoint.s+", P.TRACEPOINT, None, F.SLEEPABLE, attach="tracepoint"),
    _d("tp.s+", P.TRACEPOINT, None, F.SLEEPABLE, attach="tracepoint"),
    _d("raw_tracepoint+", P.RAW_TRACEPOINT, None, attach="raw_tracepoint"),
    _d("raw_tp+", P.RAW_TRACEPOINT, None, attach="raw_tracepoint"),
    _d("raw_tracepoint.s+", P.RAW_TRACEPOINT, None, F.SLEEPABLE, attach="raw_tracepoint"),
    _d("raw_tp.s+", P.RAW_TRACEPOINT, None, F.SLEEPABLE, attach="raw_tracepoint"),
    _d("raw_tracepoint.w+", P.RAW_TRACEPOINT_WRITABLE, None, attach="raw_tracepoint"),
    _d("raw_tp.w+", P.RAW_TRACEPOINT_WRITABLE, None, attach="raw_tracepoint"),
    _d("tp_btf+", P.TRACING, A.TRACE_RAW_TP, F.ATTACH_BTF, attach="trace"),
    _d("tp_btf.s+", P.TRACING, A.TRACE_RAW_TP, F.ATTACH_BTF | F.SLEEPABLE, attach="trace"),
    _d("fentry+", P.TRACING, A.TRACE_FENTRY, F.ATTACH_BTF, attach="trace"),
    _d("fmod_ret+", P.TRACING, A.MODIFY_RETURN, F.ATTACH_BTF, attach="trace"),
    _d("fexit+", P.TRACING, A.TRACE_FEXIT, F.ATTACH_BTF, attach="trace"),
    _d("fentry.s+", P.TRACING, A.TRACE_FENTRY, F.ATTACH_BTF | F.SLEEPABLE, attach="trace"),
    _d("fmod_ret.s+", P.TRACING, A.MODIFY_RETURN, F.ATTACH_BTF | F.SLEEPABLE, attach="trace"),
    _d("fexit.s+", P.TRACING, A.TRACE_FEXIT, F.ATTACH_BTF | F.SLEEPABLE, attach="trace"),
    _d("fsession+", P.TRACING, A.TRACE_FSESSION, F.ATTACH_BTF, attach="trace"),
    _d("fsession.s+", P.TRACING, A.TRACE_FSESSION, F.ATTACH_BTF | F.SLEEPABLE, attach="trace"),
    _d("fsession.multi+", P.TRACING, A.TRACE_FSESSION_MULTI, attach="tracing.multi"),
    _d("fsession.multi.s+", P.TRACING, A.TRACE_FSESSION_MULTI, F.SLEEPABLE, attach="tracing.multi"),
    _d("fentry.multi+", P.TRACING, A.TRACE_FENTRY_MULTI, attach="tracing.multi"),
    _d("fexit.multi+", P.TRACING, A.TRACE_FEXIT_MULTI, attach="tracing.multi"),
    _d("fentry.multi.s+", P.TRACING, A.TRACE_FENTRY_MULTI, F.SLEEPABLE, attach="tracing.multi"),
    _d("fexit.multi.s+", P.TRACING, A.TRACE_FEXIT_MULTI, F.SLEEPABLE, attach="tracing.multi"),
    _d("freplace+", P.EXT, None, F.ATTACH_BTF, attach="trace"),
    _d("lsm+", P.LSM, A.LSM_MAC, F.ATTACH_BTF, attach="lsm"),
    _d("lsm.s+", P.LSM, A.LSM_MAC, F.ATTACH_BTF | F.SLEEPABLE, attach="lsm"),
    _d("lsm_cgroup+", P.LSM, A.LSM_CGROUP, F.ATTACH_BTF),
    _d("iter+", P.TRACING, A.TRACE_ITER, F.ATTACH_BTF, attach="iter"),
    _d("iter.s+", P.TRACING, A.TRACE_ITER, F.ATTACH_BTF | F.SLEEPABLE, attach="iter"),
    _d("syscall", P.SYSCALL, None, F.SLEEPABLE),
    _d("xdp.frags/devmap", P.XDP, A.XDP_DEVMAP, F.XDP_FRAGS),
    _d("xdp/devmap", P.XDP, A.XDP_DEVMAP, F.ATTACHABLE),
    _d("xdp.frags/cpumap", P.XDP, A.XDP_CPUMAP, F.XDP_FRAGS),
    _d("xdp/cpumap", P.XDP, A.XDP_CPUMAP, F.ATTACHABLE),
    _d("xdp.frags", P.XDP, A.XDP, F.XDP_FRAGS),
    _d("xdp", P.XDP, A.XDP, _OPT),
    _d("perf_event", P.PERF_EVENT, None),
    _d("lwt_in", P.LWT_IN, None),
    _d("lwt_out", P.LWT_OUT, None),
    _d("lwt_xmit", P.LWT_XMIT, None),
    _d("lwt_seg6local", P.LWT_SEG6LOCAL, None),
    _d("sockops", P.SOCK_OPS, A.CGROUP_SOCK_OPS, _OPT),
    _d("sk_skb/stream_parser", P.SK_SKB, A.SK_SKB_STREAM_PARSER, _OPT),
    _d("sk_skb/stream_verdict", P.SK_SKB, A.SK_SKB_STREAM_VERDICT, _OPT),
    _d("sk_skb/verdict", P.SK_SKB, A.SK_SKB_VERDICT, _OPT),
    _d("sk_skb", P.SK_SKB, None),
    _d("sk_msg", P.SK_MSG, A.SK_MSG_VERDICT, _OPT),
    _d("lirc_mode2", P.LIRC_MODE2, A.LIRC_MODE2, _OPT),
    _d("flow_dissector", P.FLOW_DISSECTOR, A.FLOW_DISSECTOR, _OPT),
    _d("cgroup_skb/ingress", P.CGROUP_SKB, A.CGROUP_INET_INGRESS, _OPT),
    _d("cgroup_skb/egress", P.CGROUP_SKB, A.CGROUP_INET_EGRESS, _OPT),
    _d("cgroup/skb", P.CGROUP_SKB, None),
    _d("cgroup/sock_create", P.CGROUP_SOCK, A.CGROUP_INET_SOCK_CREATE, F.ATTACHABLE),
    _d("cgroup/sock_release", P.CGROUP_SOCK, A.CGROUP_INET_SOCK_RELEASE, F.ATTACHABLE),
    _d("cgroup/sock", P.CGROUP_SOCK, A.CGROUP_INET_SOCK_CREATE, _OPT),
    _d("cgroup/post_bind4", P.CGROUP_SOCK, A.CGROUP_INET4_POST_BIND, F.ATTACHABLE),
    _d("cgroup/post_bind6", P.CGROUP_SOCK, A.CGROUP_INET6_POST_BIND, F.ATTACHABLE),
    _d("cgroup/bind4", P.CGROUP_SOCK_ADDR, A.CGROUP_INET4_BIND, F.ATTACHABLE),
    _d("cgroup/bind6", P.CGROUP_SOCK_ADDR, A.CGROUP_INET6_BIND, F.ATTACHABLE),
    _d("cgroup/connect4", P.CGROUP_SOCK_ADDR, A.CGROUP_INET4_CONNECT, F.ATTACHABLE),
    _d("cgroup/connect6", P.CGROUP_SOCK_ADDR, A.CGROUP_INET6_CONNECT, F.ATTACHABLE),
    _d("cgroup/connect_unix", P.CGROUP_SOCK_ADDR, A.CGROUP_UNIX_CONNECT, F.ATTACHABLE),
    _d("cgroup/sendmsg4", P.CGROUP_SOCK_ADDR, A.CGROUP_UDP4_SENDMSG, F.ATTACHABLE),
    _d("cgroup/sendmsg6", P.CGROUP_SOCK_ADDR, A.CGROUP_UDP6_SENDMSG, F.ATTACHABLE),
    _d("cgroup/sendmsg_unix", P.CGROUP_SOCK_ADDR, A.CGROUP_UNIX_SENDMSG, F.ATTACHABLE),
    _d("cgroup/recvmsg4", P.CGROUP_SOCK_ADDR, A.CGROUP_UDP4_RECVMSG, F.ATTACHABLE),
    _d("cgroup/recvmsg6", P.CGROUP_SOCK_ADDR, A.CGROUP_UDP6_RECVMSG, F.ATTACHABLE),
    _d("cgroup/recvmsg_unix", P.CGROUP_SOCK_ADDR, A.CGROUP_UNIX_RECVMSG, F.ATTACHABLE),
    _d("cgroup/getpeername4", P.CGROUP_SOCK_ADDR, A.CGROUP_INET4_GETPEERNAME, F.ATTACHABLE),
    _d("cgroup/getpeername6", P.CGROUP_SOCK_ADDR, A.CGROUP_INET6_GETPEERNAME, F.ATTACHABLE),
    _d("cgroup/getpeername_unix", P.CGROUP_SOCK_ADDR, A.CGROUP_UNIX_GETPEERNAME, F.ATTACHABLE),
    _d("cgroup/getsockname4", P.CGROUP_SOCK_ADDR, A.CGROUP_INET4_GETSOCKNAME, F.ATTACHABLE),
    _d("cgroup/getsockname6", P.CGROUP_SOCK_ADDR, A.CGROUP_INET6_GETSOCKNAME, F.ATTACHABLE),
    _d("cgroup/getsockname_unix", P.CGROUP_SOCK_ADDR, A.CGROUP_UNIX_GETSOCKNAME, F.ATTACHABLE),
    _d("cgroup/sysctl", P.CGROUP_SYSCTL, A.CGROUP_SYSCTL, F.ATTACHABLE),
    _d("cgroup/getsockopt", P.CGROUP_SOCKOPT, A.CGROUP_GETSOCKOPT, F.ATTACHABLE),
    _d("cgroup/setsockopt", P.CGROUP_SOCKOPT, A.CGROUP_SETSOCKOPT, F.ATTACHABLE),
    _d("cgroup/dev", P.CGROUP_DEVICE, A.CGROUP_DEVICE, _OPT),
    _d("struct_ops+", P.STRUCT_OPS, None),
    _d("struct_ops.s+", P.STRUCT_OPS, None, F.SLEEPABLE),
    _d("sk_lookup", P.SK_LOOKUP, A.SK_LOOKUP, F.ATTACHABLE),
    _d("netfilter", P.NETFILTER, A.NETFILTER),
)

# Sections whose programs are entered on return (kretprobe & co.).
_RETURN_PREFIXES = ("kretprobe", "uretprobe", "kretsyscall")


def find_section_def(section: str) -> SectionDef | None:
    """The table row for an ELF section name (without libbpf's leading '?'), or None."""
    for sec_def in SECTION_DEFS:
        if sec_def.matches(section):
            return sec_def
    return None


def attach_target(sec_def: SectionDef | None, section: str) -> str | None:
    """What the section names as the attach point: the text after ``prefix/``.

    ``kprobe/do_unlinkat`` -> ``do_unlinkat``; ``uprobe//usr/lib/libc.so.6:malloc``
    -> ``/usr/lib/libc.so.6:malloc``; ``xdp`` -> None.  Only sections whose
    pattern takes an argument have a target; ``tcx/ingress`` says where, not whom.
    """
    if sec_def is None:
        return None
    pat = sec_def.pattern
    if pat.endswith("+"):
        base = pat[:-1]
        return section[len(base) + 1:] or None if len(section) > len(base) else None
    if pat.endswith("/"):
        return section[len(pat):] or None
    return None


def is_return_probe(section: str) -> bool:
    return section.startswith(_RETURN_PREFIXES)


@dataclass(frozen=True, slots=True)
class ProbeTarget:
    """A kprobe/uprobe/usdt/tracepoint target split into its parts."""

    function: str | None = None  # kprobe/uprobe function, syscall name, USDT probe name
    offset: int = 0  # +off after the function
    path: str | None = None  # uprobe binary or library, USDT binary
    provider: str | None = None  # USDT provider
    category: str | None = None  # tracepoint category
    retprobe: bool = False


_KPROBE = re.compile(r"^(?P<func>[^+\s]+?)(?:\+(?P<off>0x[0-9a-fA-F]+|\d+))?$")
_UPROBE = re.compile(r"^(?P<path>[^:]+):(?P<func>[^+]*?)(?:\+(?P<off>0x[0-9a-fA-F]+|\d+))?$")


def parse_probe_target(sec_def: SectionDef | None, section: str, target: str | None) -> ProbeTarget | None:
    """Split a probe-style target as libbpf's attach handlers do, or None if it is not one."""
    if sec_def is None or target is None:
        return None
    kind = sec_def.attach
    ret = is_return_probe(section) or section.startswith(("kretprobe.multi", "uretprobe.multi"))
    if kind == "kprobe":
        m = _KPROBE.match(target)
        if not m:
            return None
        return ProbeTarget(function=m["func"], offset=int(m["off"] or "0", 0), retprobe=ret)
    if kind == "ksyscall":
        return ProbeTarget(function=target, retprobe=ret)
    if kind in ("uprobe", "uprobe.multi"):
        m = _UPROBE.match(target)
        if not m:
            return None
        return ProbeTarget(function=m["func"] or None, offset=int(m["off"] or "0", 0), path=m["path"], retprobe=ret)
    if kind == "usdt":
        parts = target.split(":")
        if len(parts) != 3:
            return None
        return ProbeTarget(path=parts[0], provider=parts[1], function=parts[2])
    if kind == "tracepoint":
        category, sep, name = target.partition("/")
        if not sep or not name:
            return None
        return ProbeTarget(category=category, function=name)
    if kind in ("raw_tracepoint", "trace", "lsm", "iter", "kprobe.multi", "kprobe.session", "tracing.multi"):
        return ProbeTarget(function=target, retprobe=ret)
    return None


__all__ = [
    "SECTION_DEFS", "ProbeTarget", "SectionDef", "SectionFlags", "attach_target", "find_section_def",
    "is_return_probe", "parse_probe_target",
]
