"""What a program's ELF section name (its SEC()) means to the kernel, as libbpf reads it.

libbpf decides the program type, the expected attach type (which some hooks
check at load), whether the program needs a BTF attach target (fentry, lsm,
iterators...), and whether it is sleepable, from the section name alone.  The
loader does the same with :func:`section_def`, so every program of an object
written for libbpf loads the way libbpf would load it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ObjectError
from .uapi import AttachType as A
from .uapi import ProgFlags, ProgType as P


@dataclass(frozen=True)
class SectionDef:
    """One libbpf section definition: ``prefix`` matches the section exactly or, when
    ``takes_target``, also as ``prefix/anything``."""

    prefix: str
    prog_type: P
    expected_attach_type: A | None = None
    takes_target: bool = False     # 'kprobe/do_sys_open', 'fentry/vfs_read': the part after '/' says where
    btf_target: bool = False       # the target is a BTF id the loader resolves (fentry, lsm, iter, tp_btf...)
    sleepable: bool = False
    xdp_frags: bool = False

    @property
    def prog_flags(self) -> int:
        flags = ProgFlags.SLEEPABLE if self.sleepable else 0
        return int(flags | (ProgFlags.XDP_HAS_FRAGS if self.xdp_frags else 0))


def _d(prefix: str, ptype: P, eat: A | None = None, **kw) -> SectionDef:
    return SectionDef(prefix, ptype, eat, **kw)


_T = {"takes_target": True}
_BTF = {"takes_target": True, "btf_target": True}
_S = {"sleepable": True}

# Order matters where one name is a prefix of another ('xdp.frags/devmap' before 'xdp.frags' before 'xdp').
SECTION_DEFS: tuple[SectionDef, ...] = (
    _d("socket", P.SOCKET_FILTER),
    _d("sk_reuseport/migrate", P.SK_REUSEPORT, A.SK_REUSEPORT_SELECT_OR_MIGRATE),
    _d("sk_reuseport", P.SK_REUSEPORT, A.SK_REUSEPORT_SELECT),
    _d("kprobe", P.KPROBE, **_T), _d("kretprobe", P.KPROBE, **_T),
    _d("uprobe", P.KPROBE, **_T), _d("uretprobe", P.KPROBE, **_T),
    _d("uprobe.s", P.KPROBE, **_T, **_S), _d("uretprobe.s", P.KPROBE, **_T, **_S),
    _d("kprobe.multi", P.KPROBE, A.TRACE_KPROBE_MULTI, **_T), _d("kretprobe.multi", P.KPROBE, A.TRACE_KPROBE_MULTI, **_T),
    _d("kprobe.session", P.KPROBE, A.TRACE_KPROBE_SESSION, **_T),
    _d("uprobe.multi", P.KPROBE, A.TRACE_UPROBE_MULTI, **_T), _d("uretprobe.multi", P.KPROBE, A.TRACE_UPROBE_MULTI, **_T),
    _d("uprobe.multi.s", P.KPROBE, A.TRACE_UPROBE_MULTI, **_T, **_S),
    _d("uretprobe.multi.s", P.KPROBE, A.TRACE_UPROBE_MULTI, **_T, **_S),
    _d("uprobe.session", P.KPROBE, A.TRACE_UPROBE_SESSION, **_T),
    _d("ksyscall", P.KPROBE, **_T), _d("kretsyscall", P.KPROBE, **_T),
    _d("usdt", P.KPROBE, **_T), _d("usdt.s", P.KPROBE, **_T, **_S),
    _d("tc/ingress", P.SCHED_CLS, A.TCX_INGRESS), _d("tc/egress", P.SCHED_CLS, A.TCX_EGRESS),
    _d("tcx/ingress", P.SCHED_CLS, A.TCX_INGRESS), _d("tcx/egress", P.SCHED_CLS, A.TCX_EGRESS),
    _d("tc", P.SCHED_CLS), _d("classifier", P.SCHED_CLS), _d("action", P.SCHED_ACT),
    _d("netkit/primary", P.SCHED_CLS, A.NETKIT_PRIMARY), _d("netkit/peer", P.SCHED_CLS, A.NETKIT_PEER),
    _d("tracepoint", P.TRACEPOINT, **_T), _d("tp", P.TRACEPOINT, **_T),
    _d("raw_tracepoint", P.RAW_TRACEPOINT, **_T), _d("raw_tp", P.RAW_TRACEPOINT, **_T),
    _d("raw_tracepoint.w", P.RAW_TRACEPOINT_WRITABLE, **_T), _d("raw_tp.w", P.RAW_TRACEPOINT_WRITABLE, **_T),
    _d("tp_btf", P.TRACING, A.TRACE_RAW_TP, **_BTF),
    _d("fentry", P.TRACING, A.TRACE_FENTRY, **_BTF), _d("fmod_ret", P.TRACING, A.MODIFY_RETURN, **_BTF),
    _d("fexit", P.TRACING, A.TRACE_FEXIT, **_BTF),
    _d("fentry.s", P.TRACING, A.TRACE_FENTRY, **_BTF, **_S), _d("fmod_ret.s", P.TRACING, A.MODIFY_RETURN, **_BTF, **_S),
    _d("fexit.s", P.TRACING, A.TRACE_FEXIT, **_BTF, **_S),
    _d("freplace", P.EXT, **_BTF),
    _d("lsm", P.LSM, A.LSM_MAC, **_BTF), _d("lsm.s", P.LSM, A.LSM_MAC, **_BTF, **_S),
    _d("lsm_cgroup", P.LSM, A.LSM_CGROUP, **_BTF),
    _d("iter", P.TRACING, A.TRACE_ITER, **_BTF), _d("iter.s", P.TRACING, A.TRACE_ITER, **_BTF, **_S),
    _d("syscall", P.SYSCALL, **_S),
    _d("xdp.frags/devmap", P.XDP, A.XDP_DEVMAP, xdp_frags=True), _d("xdp/devmap", P.XDP, A.XDP_DEVMAP),
    _d("xdp.frags/cpumap", P.XDP, A.XDP_CPUMAP, xdp_frags=True), _d("xdp/cpumap", P.XDP, A.XDP_CPUMAP),
    _d("xdp.frags", P.XDP, A.XDP, xdp_frags=True), _d("xdp", P.XDP, A.XDP),
    _d("perf_event", P.PERF_EVENT),
    _d("lwt_in", P.LWT_IN), _d("lwt_out", P.LWT_OUT), _d("lwt_xmit", P.LWT_XMIT), _d("lwt_seg6local", P.LWT_SEG6LOCAL),
    _d("sockops", P.SOCK_OPS, A.CGROUP_SOCK_OPS),
    _d("sk_skb/stream_parser", P.SK_SKB, A.SK_SKB_STREAM_PARSER),
    _d("sk_skb/stream_verdict", P.SK_SKB, A.SK_SKB_STREAM_VERDICT),
    _d("sk_skb/verdict", P.SK_SKB, A.SK_SKB_VERDICT),
    _d("sk_skb", P.SK_SKB),
    _d("sk_msg", P.SK_MSG, A.SK_MSG_VERDICT),
    _d("lirc_mode2", P.LIRC_MODE2, A.LIRC_MODE2),
    _d("flow_dissector", P.FLOW_DISSECTOR, A.FLOW_DISSECTOR),
    _d("cgroup_skb/ingress", P.CGROUP_SKB, A.CGROUP_INET_INGRESS),
    _d("cgroup_skb/egress", P.CGROUP_SKB, A.CGROUP_INET_EGRESS),
    _d("cgroup/skb", P.CGROUP_SKB),
    _d("cgroup/sock_create", P.CGROUP_SOCK, A.CGROUP_INET_SOCK_CREATE),
    _d("cgroup/sock_release", P.CGROUP_SOCK, A.CGROUP_INET_SOCK_RELEASE),
    _d("cgroup/sock", P.CGROUP_SOCK, A.CGROUP_INET_SOCK_CREATE),
    _d("cgroup/post_bind4", P.CGROUP_SOCK, A.CGROUP_INET4_POST_BIND),
    _d("cgroup/post_bind6", P.CGROUP_SOCK, A.CGROUP_INET6_POST_BIND),
    _d("cgroup/bind4", P.CGROUP_SOCK_ADDR, A.CGROUP_INET4_BIND),
    _d("cgroup/bind6", P.CGROUP_SOCK_ADDR, A.CGROUP_INET6_BIND),
    _d("cgroup/connect4", P.CGROUP_SOCK_ADDR, A.CGROUP_INET4_CONNECT),
    _d("cgroup/connect6", P.CGROUP_SOCK_ADDR, A.CGROUP_INET6_CONNECT),
    _d("cgroup/connect_unix", P.CGROUP_SOCK_ADDR, A.CGROUP_UNIX_CONNECT),
    _d("cgroup/sendmsg4", P.CGROUP_SOCK_ADDR, A.CGROUP_UDP4_SENDMSG),
    _d("cgroup/sendmsg6", P.CGROUP_SOCK_ADDR, A.CGROUP_UDP6_SENDMSG),
    _d("cgroup/sendmsg_unix", P.CGROUP_SOCK_ADDR, A.CGROUP_UNIX_SENDMSG),
    _d("cgroup/recvmsg4", P.CGROUP_SOCK_ADDR, A.CGROUP_UDP4_RECVMSG),
    _d("cgroup/recvmsg6", P.CGROUP_SOCK_ADDR, A.CGROUP_UDP6_RECVMSG),
    _d("cgroup/recvmsg_unix", P.CGROUP_SOCK_ADDR, A.CGROUP_UNIX_RECVMSG),
    _d("cgroup/getpeername4", P.CGROUP_SOCK_ADDR, A.CGROUP_INET4_GETPEERNAME),
    _d("cgroup/getpeername6", P.CGROUP_SOCK_ADDR, A.CGROUP_INET6_GETPEERNAME),
    _d("cgroup/getpeername_unix", P.CGROUP_SOCK_ADDR, A.CGROUP_UNIX_GETPEERNAME),
    _d("cgroup/getsockname4", P.CGROUP_SOCK_ADDR, A.CGROUP_INET4_GETSOCKNAME),
    _d("cgroup/getsockname6", P.CGROUP_SOCK_ADDR, A.CGROUP_INET6_GETSOCKNAME),
    _d("cgroup/getsockname_unix", P.CGROUP_SOCK_ADDR, A.CGROUP_UNIX_GETSOCKNAME),
    _d("cgroup/sysctl", P.CGROUP_SYSCTL, A.CGROUP_SYSCTL),
    _d("cgroup/getsockopt", P.CGROUP_SOCKOPT, A.CGROUP_GETSOCKOPT),
    _d("cgroup/setsockopt", P.CGROUP_SOCKOPT, A.CGROUP_SETSOCKOPT),
    _d("cgroup/dev", P.CGROUP_DEVICE, A.CGROUP_DEVICE),
    _d("struct_ops", P.STRUCT_OPS, **_T), _d("struct_ops.s", P.STRUCT_OPS, **_T, **_S),
    _d("sk_lookup", P.SK_LOOKUP, A.SK_LOOKUP),
    _d("netfilter", P.NETFILTER, A.NETFILTER),
)


def section_def(section: str) -> SectionDef:
    """The definition libbpf would pick for SEC(``section``); ObjectError when it knows none."""
    for d in SECTION_DEFS:
        if section == d.prefix or (d.takes_target and section.startswith(d.prefix + "/")):
            return d
    near = sorted({d.prefix for d in SECTION_DEFS if d.prefix.split("/")[0] == section.split("/")[0]})
    hint = f" (known with this prefix: {', '.join(near)})" if near else ""
    raise ObjectError(f"SEC({section!r}) is not a program section libbpf knows{hint}")


def attach_target(section: str) -> str:
    """What follows the prefix: the function, tracepoint or hook ('fentry/vfs_read' -> 'vfs_read')."""
    d = section_def(section)
    return section[len(d.prefix) + 1:] if len(section) > len(d.prefix) else ""
