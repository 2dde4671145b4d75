"""Networking hooks: tc (tcx links or clsact/cls_bpf over netlink), netkit, netfilter,
sk_lookup and flow dissector (network namespace links), sockmap/sockhash programs.

Like the rest of attach.py, every function checks the program type and the
target first, returns a Link that detaches on close, and leaves nothing
attached when it fails.
"""

from __future__ import annotations

import errno
import os
from typing import Any

from ..errors import BPFError, KernelError, LinkError, NotSupportedError
from .attach import expect_type, interface_index, relative_target
from .features import config_cause, kernel_version
from .link import BPFLink, Link, ProgAttachLink, TCFilterLink
from .syscall import CAP_NET_ADMIN, bpf_errno, kernel_error
from .uapi import (
    ENOTSUPP, NETFILTER_IP_DEFRAG, NF_INET_HOOKS, NFPROTO_IPV4, NFPROTO_IPV6, AttachType, Cmd, LinkCreateAttr,
    MapType, ProgAttachAttr, ProgType,
)

_DIRECTIONS = {"ingress": AttachType.TCX_INGRESS, "egress": AttachType.TCX_EGRESS}


def _direction(direction: str) -> str:
    if direction not in _DIRECTIONS:
        raise LinkError(f"tc direction {direction!r} must be 'ingress' or 'egress'")
    return direction


def _create_link(prog: Any, attr: LinkCreateAttr) -> tuple[int, int]:
    attr.prog_fd = prog.fd
    return bpf_errno(Cmd.LINK_CREATE, attr)


# --- tc ---------------------------------------------------------------------------


def attach_tcx(prog: Any, interface: str | int, direction: str = "ingress", *, before: Any = None,
               after: Any = None, expected_revision: int = 0) -> BPFLink:
    """A tc program on ``interface`` through a tcx link (6.6+): several programs may share a hook,
    ordered with ``before``/``after`` (a Program, Link, or True for first/last)."""
    direction = _direction(direction)
    ifindex = interface_index(interface)
    what = f"tcx/{direction} of {interface}"
    expect_type(prog, what, ProgType.SCHED_CLS)
    flags, rel = relative_target(before, after)
    attr = LinkCreateAttr(target_fd=ifindex, attach_type=_DIRECTIONS[direction], flags=flags)
    attr.target.tcx.relative_fd = rel
    attr.target.tcx.expected_revision = expected_revision
    fd, err = _create_link(prog, attr)
    if not err:
        return BPFLink(fd, program=prog, description=what)
    if err == errno.EINVAL and kernel_version() < (6, 6, 0):
        raise NotSupportedError("tcx links", "6.6", reason="use attach_tc(), which falls back to a cls_bpf filter")
    if err == errno.ENOENT and flags:
        raise LinkError(f"cannot attach {prog.describe()} to {what}: the program or link to order against is not "
                        "attached there")
    if err == errno.ESTALE:
        raise LinkError(f"cannot attach {prog.describe()} to {what}: the hook changed (expected revision "
                        f"{expected_revision} is stale)")
    if err == errno.EEXIST:
        raise LinkError(f"cannot attach {prog.describe()} to {what}: it is attached there already")
    raise kernel_error(err, f"cannot attach {prog.describe()} to {what}", (CAP_NET_ADMIN,))


def attach_tc(prog: Any, interface: str | int, direction: str = "ingress", *, priority: int = 0, handle: int = 0,
              mode: str = "auto") -> Link:
    """A tc classifier on ``interface``: a tcx link where the kernel has them (``mode='auto'``/'tcx'),
    else (or with ``mode='netlink'``) a cls_bpf filter in direct-action mode on the clsact qdisc,
    which is created if absent and removed again on close if this link created it."""
    if mode not in ("auto", "tcx", "netlink"):
        raise LinkError(f"tc attach mode {mode!r} must be 'auto', 'tcx' or 'netlink'")
    direction = _direction(direction)
    if mode != "netlink":
        try:
            return attach_tcx(prog, interface, direction)
        except NotSupportedError:
            if mode == "tcx":
                raise
    return attach_tc_netlink(prog, interface, direction, priority=priority, handle=handle)


def attach_tc_netlink(prog: Any, interface: str | int, direction: str = "ingress", *, priority: int = 0,
                      handle: int = 0) -> TCFilterLink:
    """The pre-tcx way (what ``tc filter add dev IF ingress bpf da`` does), in pure Python."""
    from .netlink import RouteSocket, tc_parent

    direction = _direction(direction)
    ifindex = interface_index(interface)
    what = f"tc {direction} of {interface}"
    expect_type(prog, what, ProgType.SCHED_CLS, ProgType.SCHED_ACT)
    if not 0 <= priority <= 0xFFFF:
        raise LinkError(f"tc filter priority {priority} is not in 0..65535")
    route = RouteSocket()
    created = False
    try:
        created = route.add_clsact(ifindex)
        parent = tc_parent(direction)
        try:
            made = route.add_bpf_filter(ifindex, parent, prog.fd, prog.name or "pybpf", priority=priority,
                                        handle=handle)
        except KernelError as exc:
            if exc.errno == errno.EEXIST:
                raise LinkError(f"cannot attach {prog.describe()} to {what}: a filter with handle {handle:#x} and "
                                f"priority {priority} exists there") from None
            raise KernelError(exc.errno, f"cannot attach {prog.describe()} to {what}: {exc.message}") from None
        return TCFilterLink(route, ifindex, parent, made.handle, made.priority, created, prog,
                            description=f"{what} (cls_bpf handle {made.handle:#x} priority {made.priority})")
    except BaseException:
        try:
            if created:
                route.delete_clsact(ifindex)
        except BPFError:
            pass
        route.close()
        raise


def attach_netkit(prog: Any, interface: str | int, peer: bool = False, *, before: Any = None,
                  after: Any = None) -> BPFLink:
    """A program on a netkit device (6.7+): its primary side, or the peer with ``peer=True``."""
    ifindex = interface_index(interface)
    side = "peer" if peer else "primary"
    what = f"netkit/{side} of {interface}"
    expect_type(prog, what, ProgType.SCHED_CLS)
    flags, rel = relative_target(before, after)
    attr = LinkCreateAttr(target_fd=ifindex, attach_type=AttachType.NETKIT_PEER if peer else AttachType.NETKIT_PRIMARY,
                          flags=flags)
    attr.target.netkit.relative_fd = rel
    fd, err = _create_link(prog, attr)
    if not err:
        return BPFLink(fd, program=prog, description=what)
    if err == errno.EINVAL:
        cause = config_cause("NETKIT")
        if cause or kernel_version() < (6, 7, 0):
            raise NotSupportedError("netkit links", None if cause else "6.7", reason=cause)
    if err == errno.ENXIO:
        raise LinkError(f"cannot attach {prog.describe()}: {interface} is not a netkit device")
    raise kernel_error(err, f"cannot attach {prog.describe()} to {what}", (CAP_NET_ADMIN,))


# --- netfilter ----------------------------------------------------------------------

_FAMILIES = {"ipv4": NFPROTO_IPV4, "ip": NFPROTO_IPV4, "inet": NFPROTO_IPV4, "ipv6": NFPROTO_IPV6, "ip6": NFPROTO_IPV6}


def attach_netfilter(prog: Any, *, family: str | int = "ipv4", hook: str | int = "input", priority: int = 0,
                     defrag: bool = False) -> BPFLink:
    """A netfilter program (6.4+) on ``hook`` (prerouting, input, forward, output, postrouting) of
    ``family`` in this network namespace; ``defrag`` sees reassembled IP packets."""
    pf = _FAMILIES.get(family, family) if isinstance(family, str) else family
    hooknum = NF_INET_HOOKS.get(hook, hook) if isinstance(hook, str) else hook
    if not isinstance(pf, int) or pf not in (NFPROTO_IPV4, NFPROTO_IPV6):
        raise LinkError(f"netfilter family {family!r} must be 'ipv4' or 'ipv6'")
    if not isinstance(hooknum, int) or not 0 <= hooknum <= 4:
        raise LinkError(f"netfilter hook {hook!r} must be one of prerouting, input, forward, output, postrouting")
    names = {v: k for k, v in NF_INET_HOOKS.items() if k not in ("local_in", "local_out")}
    what = f"netfilter {'ipv4' if pf == NFPROTO_IPV4 else 'ipv6'} {names[hooknum]} priority {priority}"
    expect_type(prog, what, ProgType.NETFILTER)
    attr = LinkCreateAttr(attach_type=AttachType.NETFILTER)
    attr.target.netfilter.pf = pf
    attr.target.netfilter.hooknum = hooknum
    attr.target.netfilter.priority = priority
    attr.target.netfilter.flags = NETFILTER_IP_DEFRAG if defrag else 0
    fd, err = _create_link(prog, attr)
    if not err:
        return BPFLink(fd, program=prog, description=what)
    if err == errno.ERANGE or (err == errno.EINVAL and priority in (-2**31, 2**31 - 1)):
        raise LinkError(f"cannot attach {prog.describe()} to {what}: the priority must lie strictly between "
                        "NF_IP_PRI_FIRST and NF_IP_PRI_LAST")
    if err == errno.EBUSY:
        raise LinkError(f"cannot attach {prog.describe()} to {what}: another BPF program holds that priority")
    if err in (errno.EOPNOTSUPP, ENOTSUPP) and defrag:
        raise NotSupportedError("netfilter IP defragmentation for BPF links", "6.6")
    if err == errno.EINVAL and (cause := config_cause("NETFILTER_BPF_LINK")):
        raise NotSupportedError("netfilter BPF links", "6.4", reason=cause)
    raise kernel_error(err, f"cannot attach {prog.describe()} to {what}", (CAP_NET_ADMIN,))


# --- network namespace hooks ------------------------------------------------------


def _open_netns(netns: str | int | None) -> tuple[int, str]:
    if netns is None:
        return os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC), "this network namespace"
    if isinstance(netns, int):
        return os.dup(netns), f"network namespace fd {netns}"
    path = netns if "/" in netns else f"/run/netns/{netns}"
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC), f"network namespace {netns}"
    except FileNotFoundError:
        raise LinkError(f"no network namespace {netns!r} (looked for {path})") from None


def _attach_netns(prog: Any, netns: str | int | None, attach_type: AttachType, kind: str, ptype: ProgType) -> BPFLink:
    fd, label = _open_netns(netns)
    what = f"{kind} in {label}"
    try:
        expect_type(prog, what, ptype)
        attr = LinkCreateAttr(target_fd=fd, attach_type=attach_type)
        link_fd, err = _create_link(prog, attr)
    finally:
        os.close(fd)
    if not err:
        return BPFLink(link_fd, program=prog, description=what)
    if err == errno.EINVAL:
        raise LinkError(f"cannot attach {prog.describe()} to {what}: the kernel refused (EINVAL); is the target a "
                        "network namespace file (/proc/PID/ns/net, /run/netns/NAME) and was the program loaded with "
                        f"expected_attach_type={attach_type.name}?")
    if err == errno.E2BIG:
        raise LinkError(f"cannot attach {prog.describe()} to {what}: too many programs on that hook")
    if err == errno.EEXIST:
        raise LinkError(f"cannot attach {prog.describe()} to {what}: a program is attached there already")
    raise kernel_error(err, f"cannot attach {prog.describe()} to {what}", (CAP_NET_ADMIN,))


def attach_sk_lookup(prog: Any, netns: str | int | None = None) -> BPFLink:
    """An sk_lookup program (5.9+) for a network namespace (default: this one): it picks the
    listening socket for incoming connections (bpf_sk_assign)."""
    return _attach_netns(prog, netns, AttachType.SK_LOOKUP, "sk_lookup", ProgType.SK_LOOKUP)


def attach_flow_dissector(prog: Any, netns: str | int | None = None) -> BPFLink:
    return _attach_netns(prog, netns, AttachType.FLOW_DISSECTOR, "flow dissector", ProgType.FLOW_DISSECTOR)


# --- sockmap / sockhash ---------------------------------------------------------------

SOCKMAP_HOOKS = {
    "stream_parser": AttachType.SK_SKB_STREAM_PARSER,
    "stream_verdict": AttachType.SK_SKB_STREAM_VERDICT,
    "verdict": AttachType.SK_SKB_VERDICT,
    "msg_verdict": AttachType.SK_MSG_VERDICT,
}


def attach_sockmap(prog: Any, sockmap: Any, hook: str | None = None, *, use_link: bool = True) -> Link:
    """An sk_msg or sk_skb program on a SOCKMAP/SOCKHASH: it then runs for the sockets in that map.

    ``hook``: 'stream_parser', 'stream_verdict' or 'verdict' for sk_skb programs
    ('msg_verdict' is implied for sk_msg).  A sockmap link (6.10+) is used when
    the kernel has it, else BPF_PROG_ATTACH (detached on close).
    """
    if prog.type == ProgType.SK_MSG:
        hook = hook or "msg_verdict"
    elif prog.type == ProgType.SK_SKB:
        if hook is None:
            eat = getattr(prog, "expected_attach_type", None)
            hook = next((k for k, v in SOCKMAP_HOOKS.items() if eat is not None and v == eat), None)
        if hook is None:
            raise LinkError(f"{prog.describe()}: say which sk_skb hook: hook='stream_parser', 'stream_verdict' or 'verdict'")
    if hook not in SOCKMAP_HOOKS:
        raise LinkError(f"sockmap hook {hook!r} is not one of {', '.join(SOCKMAP_HOOKS)}")
    map_type = getattr(sockmap, "type", None)
    what = f"{hook} of {sockmap.describe() if hasattr(sockmap, 'describe') else sockmap}"
    expect_type(prog, what, ProgType.SK_MSG if hook == "msg_verdict" else ProgType.SK_SKB)
    if map_type not in (MapType.SOCKMAP, MapType.SOCKHASH):
        raise LinkError(f"cannot attach {prog.describe()} to {what}: the map must be a SOCKMAP or SOCKHASH")
    attach_type = SOCKMAP_HOOKS[hook]
    if use_link:
        fd, err = _create_link(prog, LinkCreateAttr(target_fd=sockmap.fd, attach_type=attach_type))
        if not err:
            return BPFLink(fd, program=prog, description=what)
        if err not in (errno.EINVAL, errno.EOPNOTSUPP, ENOTSUPP):
            raise _sockmap_error(err, prog, what)
    _, err = bpf_errno(Cmd.PROG_ATTACH, ProgAttachAttr(target_fd=sockmap.fd, attach_bpf_fd=prog.fd,
                                                        attach_type=attach_type))
    if err:
        raise _sockmap_error(err, prog, what)
    return ProgAttachLink(sockmap.fd, prog, attach_type, description=what)


def _sockmap_error(err: int, prog: Any, what: str) -> Exception:
    if err == errno.EBUSY:
        return LinkError(f"cannot attach {prog.describe()} to {what}: another program holds that hook")
    return kernel_error(err, f"cannot attach {prog.describe()} to {what}", (CAP_NET_ADMIN,))
