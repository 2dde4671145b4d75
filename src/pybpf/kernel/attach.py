"""Attaching programs to hooks; every function returns a Link and leaves nothing behind on error.

Inputs are checked before the kernel is asked (program type against hook,
interface, binary, symbol, pid), so a mistake gives one LinkError that names
the object and what was expected, and any fd opened on the way is closed.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import socket
from typing import Any, Iterable

from ..errors import LinkError, NotSupportedError
from .fs import online_cpus
from .link import BPFLink, Link, LinkGroup, PerfEventLink, SocketFilterLink
from .perf import (
    PERF_EVENT_IOC_ENABLE, PERF_EVENT_IOC_SET_BPF, PerfType, SoftwareEvent, open_sampling, open_tracepoint, open_uprobe,
)
from .symbols import resolve_binary, symbol_offset
from .syscall import CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON, bpf_errno, c_path, kernel_error
from .uapi import ENOTSUPP, AttachFlags, AttachType, Cmd, LinkCreateAttr, ProgType, RawTracepointAttr, XDPFlags

_TRACING_ATTACH = {
    AttachType.TRACE_RAW_TP: "tp_btf", AttachType.TRACE_FENTRY: "fentry", AttachType.TRACE_FEXIT: "fexit",
    AttachType.MODIFY_RETURN: "fmod_ret", AttachType.LSM_MAC: "lsm",
}


def expect_type(prog: Any, hook: str, *types: ProgType) -> None:
    """LinkError unless ``prog`` is of one of ``types`` (checked before the kernel is asked)."""
    if prog.type not in types:
        names = " or ".join(t.name for t in types)
        raise LinkError(f"cannot attach {prog.describe()} to {hook}: that hook needs a {names} program")


_expect = expect_type


def relative_target(before: Any = None, after: Any = None) -> tuple[int, int]:
    """(flags, relative fd or id) placing a program on a multi-program hook (tcx, netkit, cgroup).

    ``before``/``after`` is a Program, a BPFLink, a program id, or True (first / last).
    """
    if before is not None and after is not None:
        raise LinkError("give before= or after=, not both")
    anchor = before if before is not None else after
    if anchor is None or anchor is False:
        return 0, 0
    flags = AttachFlags.BEFORE if before is not None else AttachFlags.AFTER
    if anchor is True:
        return int(flags), 0
    if isinstance(anchor, BPFLink):
        return int(flags | AttachFlags.LINK), anchor.fd
    if isinstance(anchor, int):
        return int(flags | AttachFlags.ID), anchor
    if hasattr(anchor, "fd"):
        return int(flags), anchor.fd
    raise LinkError(f"cannot order against {anchor!r}: give a Program, a Link, a program id or True")


def attach_perf_fd(prog: Any, perf_fd: int, what: str = "", cookie: int = 0, *, use_ioctl: bool = False) -> PerfEventLink:
    """Attach ``prog`` to a perf event fd you opened; the link owns (and closes) ``perf_fd``.

    Uses BPF_LINK_CREATE (5.15+, pinnable, cookies) and falls back to the
    PERF_EVENT_IOC_SET_BPF ioctl on older kernels (or when ``use_ioctl``).
    ``perf_fd`` is closed on failure too.
    """
    what = what or f"perf event fd {perf_fd}"
    try:
        if not use_ioctl:
            attr = LinkCreateAttr(prog_fd=prog.fd, target_fd=perf_fd, attach_type=AttachType.PERF_EVENT)
            attr.target.perf_event_cookie = cookie
            fd, err = bpf_errno(Cmd.LINK_CREATE, attr)
            if not err:
                return PerfEventLink(perf_fd, fd, program=prog, description=what)
            if err not in (errno.EINVAL, errno.EOPNOTSUPP, ENOTSUPP, errno.EBADF):
                raise kernel_error(err, f"cannot attach {prog.describe()} to {what}", (CAP_BPF, CAP_PERFMON))
        if cookie:
            raise NotSupportedError("BPF cookies on perf event attachments", "5.15")
        # Kernels before 5.15: the perf ioctl; the perf fd alone keeps the program attached.
        try:
            fcntl.ioctl(perf_fd, PERF_EVENT_IOC_SET_BPF, prog.fd)
            fcntl.ioctl(perf_fd, PERF_EVENT_IOC_ENABLE, 0)
        except OSError as exc:
            raise kernel_error(exc.errno, f"cannot attach {prog.describe()} to {what}", (CAP_BPF, CAP_PERFMON)) from None
        return PerfEventLink(perf_fd, None, program=prog, description=what)
    except BaseException:
        os.close(perf_fd)
        raise


def attach_tracepoint(prog: Any, category: str, name: str | None = None, *, cookie: int = 0) -> PerfEventLink:
    """``category/name`` from tracefs events (``name`` may be given inside ``category``)."""
    if name is None:
        category, _, name = category.partition("/")
        if not name:
            raise LinkError(f"tracepoint {category!r} must be 'category/name', e.g. 'syscalls/sys_enter_read'")
    what = f"tracepoint {category}/{name}"
    _expect(prog, what, ProgType.TRACEPOINT)
    return attach_perf_fd(prog, open_tracepoint(category, name), what, cookie)


def attach_raw_tracepoint(prog: Any, name: str, *, cookie: int = 0) -> BPFLink:
    what = f"raw tracepoint {name}"
    _expect(prog, what, ProgType.RAW_TRACEPOINT, ProgType.RAW_TRACEPOINT_WRITABLE)
    return _raw_tp_open(prog, name, what, cookie)


def _raw_tp_open(prog: Any, name: str | None, what: str, cookie: int) -> BPFLink:
    buf = c_path(name) if name else None
    attr = RawTracepointAttr(name=ctypes.addressof(buf) if buf else 0, prog_fd=prog.fd, cookie=cookie)
    fd, err = bpf_errno(Cmd.RAW_TRACEPOINT_OPEN, attr)
    if err == errno.ENOENT:
        raise LinkError(f"cannot attach {prog.describe()}: the kernel has no {what}")
    if err == errno.E2BIG and cookie:
        raise NotSupportedError("BPF cookies on raw tracepoints", "6.10")
    if err:
        raise kernel_error(err, f"cannot attach {prog.describe()} to {what}", (CAP_BPF, CAP_PERFMON))
    return BPFLink(fd, program=prog, description=what)


def attach_tracing(prog: Any, *, cookie: int = 0) -> BPFLink:
    """tp_btf / fentry / fexit / fmod_ret / lsm: the target was fixed at load (attach_btf_id)."""
    _expect(prog, "a BTF-typed hook (tp_btf, fentry, fexit, fmod_ret, lsm)", ProgType.TRACING, ProgType.LSM, ProgType.EXT)
    kind = _TRACING_ATTACH.get(prog.expected_attach_type, "tracing")
    what = f"{kind} target btf id {prog.attach_btf_id}"
    return _raw_tp_open(prog, None, what, cookie)


def attach_uprobe(prog: Any, binary: str, symbol: str | int | None = None, *, offset: int = 0,
                  pid: int | None = None, retprobe: bool = False, cookie: int = 0) -> PerfEventLink:
    """A uprobe on ``symbol`` (+ ``offset``) of ``binary`` (path, executable or library name).

    ``symbol`` None (or an int) means ``offset`` is a file offset already.
    ``pid`` limits the probe to one process; None means every process.
    """
    kind = "uretprobe" if retprobe else "uprobe"
    _expect(prog, f"a {kind}", ProgType.KPROBE)
    path = resolve_binary(binary)
    if isinstance(symbol, int):
        offset, symbol = symbol + offset, None
    file_offset = symbol_offset(path, symbol) + offset if symbol else offset
    if pid is not None and pid != -1 and not os.path.exists(f"/proc/{pid}"):
        raise LinkError(f"cannot attach {kind} on {path}: no process with pid {pid}")
    what = f"{kind} {path}:{symbol or hex(file_offset)}" + (f"+{offset:#x}" if symbol and offset else "")
    if pid not in (None, -1):
        what += f" (pid {pid})"
    return attach_perf_fd(prog, open_uprobe(path, file_offset, pid, retprobe), what, cookie)


def attach_perf_event(prog: Any, *, frequency: int | None = None, period: int | None = None,
                      cpus: Iterable[int] | None = None, pid: int = -1, event: Any = None) -> LinkGroup:
    """Run ``prog`` on sampling events, one per CPU (default: software CPU clock, every online CPU).

    ``event`` is (perf type, config), e.g. ``(PerfType.HARDWARE, HardwareEvent.CPU_CYCLES)``.
    """
    _expect(prog, "perf events", ProgType.PERF_EVENT)
    if not frequency and not period:
        raise LinkError("attach_perf_event needs frequency= (samples per second) or period= (events per sample)")
    ptype, config = event if event is not None else (PerfType.SOFTWARE, SoftwareEvent.CPU_CLOCK)
    links: list[Link] = []
    try:
        for cpu in (list(cpus) if cpus is not None else online_cpus()):
            pfd = open_sampling(cpu, frequency=frequency, period=period, pid=pid, type=ptype, config=config)
            links.append(attach_perf_fd(prog, pfd, f"perf event on CPU {cpu}"))
    except BaseException:
        for link in links:
            link.close()
        raise
    rate = f"{frequency} Hz" if frequency else f"every {period} events"
    return LinkGroup(links, program=prog, description=f"perf event sampling at {rate} on {len(links)} CPUs")


_XDP_MODES = {None: 0, "generic": XDPFlags.SKB_MODE, "skb": XDPFlags.SKB_MODE, "native": XDPFlags.DRV_MODE,
              "driver": XDPFlags.DRV_MODE, "drv": XDPFlags.DRV_MODE, "offload": XDPFlags.HW_MODE, "hw": XDPFlags.HW_MODE}


def interface_index(interface: str | int) -> int:
    """ifindex of a network interface name (in this network namespace) or a number."""
    if isinstance(interface, int):
        try:
            socket.if_indextoname(interface)
        except OSError:
            raise LinkError(f"no network interface with index {interface} in this network namespace") from None
        return interface
    try:
        return socket.if_nametoindex(interface)
    except OSError:
        names = [n for _, n in socket.if_nameindex()]
        raise LinkError(f"no network interface {interface!r} in this network namespace "
                        f"(there are: {', '.join(names)})") from None


def attach_xdp(prog: Any, interface: str | int, *, mode: str | None = None, replace: bool = False) -> BPFLink:
    """XDP on ``interface``: mode 'generic' (SKB), 'native' (driver), 'offload', or None (best)."""
    if mode not in _XDP_MODES:
        raise LinkError(f"XDP mode {mode!r} is not one of generic, native, offload")
    ifindex = interface_index(interface)
    what = f"XDP on {interface}" + (f" ({mode} mode)" if mode else "")
    _expect(prog, what, ProgType.XDP)
    flags = _XDP_MODES[mode]
    attr = LinkCreateAttr(prog_fd=prog.fd, target_fd=ifindex, attach_type=AttachType.XDP, flags=int(flags))
    fd, err = bpf_errno(Cmd.LINK_CREATE, attr)
    if err == errno.EBUSY:
        raise LinkError(f"cannot attach {prog.describe()} to {what}: another XDP program is attached there "
                        "(detach it first, e.g. 'ip link set dev IFACE xdp off')")
    if err == errno.EOPNOTSUPP:
        raise LinkError(f"cannot attach {prog.describe()} to {what}: the driver does not support that XDP mode "
                        "(try mode='generic')")
    if err:
        raise kernel_error(err, f"cannot attach {prog.describe()} to {what}", (CAP_NET_ADMIN,))
    return BPFLink(fd, program=prog, description=what)


def attach_socket_filter(prog: Any, sock: Any) -> SocketFilterLink:
    """Filter packets a socket receives (SO_ATTACH_BPF); ``sock`` is a socket or an fd."""
    _expect(prog, "a socket", ProgType.SOCKET_FILTER, ProgType.SK_SKB)
    fd = sock if isinstance(sock, int) else sock.fileno()
    what = f"socket fd {fd}"
    try:
        return SocketFilterLink(fd, prog, description=f"socket filter on fd {fd}")
    except OSError as exc:
        if exc.errno in (errno.ENOTSOCK, errno.EBADF):
            raise LinkError(f"cannot attach {prog.describe()}: fd {fd} is not an open socket") from None
        raise kernel_error(exc.errno, f"cannot attach {prog.describe()} to {what}", (CAP_NET_ADMIN,)) from None


# --- by section name (libbpf conventions) -----------------------------------


def attach_by_section(prog: Any, section: str, **options: Any) -> Link:
    """Attach the way libbpf's auto-attach would for SEC(``section``), with ``options`` filling gaps."""
    if not section:
        raise LinkError(f"{prog.describe()} has no section name: say where to attach, e.g. "
                        "prog.attach('tracepoint/syscalls/sys_enter_read')")
    kind, _, rest = section.partition("/")
    if kind in ("tracepoint", "tp"):
        return attach_tracepoint(prog, rest, **options)
    if kind in ("raw_tracepoint", "raw_tp", "raw_tracepoint.w", "raw_tp.w"):
        if not rest and "name" not in options:
            raise LinkError(f"{prog.describe()}: a raw tracepoint needs its name, e.g. 'raw_tp/sched_switch'")
        return attach_raw_tracepoint(prog, rest or options.pop("name"), **options)
    if kind in ("tp_btf", "fentry", "fexit", "fmod_ret", "lsm", "fentry.s", "fexit.s", "lsm.s", "freplace"):
        return attach_tracing(prog, **options)
    if kind in ("uprobe", "uretprobe", "uprobe.s", "uretprobe.s"):
        retprobe = kind.startswith("uretprobe")
        if rest:
            binary, _, func = rest.rpartition(":")
            func, _, off = func.partition("+")
            return attach_uprobe(prog, binary, func or None, offset=int(off, 0) if off else 0,
                                 retprobe=retprobe, **options)
        if "binary" not in options:
            raise LinkError(f"{prog.describe()}: a {kind} needs binary= (and symbol=) or a section like 'uprobe//bin/bash:readline'")
        return attach_uprobe(prog, options.pop("binary"), options.pop("symbol", None), retprobe=retprobe, **options)
    if kind == "perf_event":
        return attach_perf_event(prog, **options)
    if kind in ("xdp", "xdp.frags"):
        if "interface" not in options:
            raise LinkError(f"{prog.describe()}: XDP needs interface= (a name like 'eth0' or an ifindex)")
        return attach_xdp(prog, **options)
    if kind in ("socket", "socket_filter"):
        if "sock" not in options:
            raise LinkError(f"{prog.describe()}: a socket filter needs sock= (a socket or its fd)")
        return attach_socket_filter(prog, options["sock"])
    return _attach_more(prog, section, kind, rest, options)


def _need(prog: Any, section: str, options: dict, name: str, example: str) -> Any:
    if name not in options:
        raise LinkError(f"{prog.describe()}: SEC({section!r}) needs {name}= ({example})")
    return options.pop(name)


def _attach_more(prog: Any, section: str, kind: str, rest: str, options: dict) -> Link:
    """Sections of the hooks in attach_net, cgroup, iterator, kprobe and usdt."""
    from . import attach_net, cgroup, iterator, kprobe, usdt

    if kind in ("tcx", "netkit") or (kind == "tc" and rest in ("ingress", "egress")):
        interface = _need(prog, section, options, "interface", "a name like 'eth0' or an ifindex")
        if kind == "netkit":
            return attach_net.attach_netkit(prog, interface, peer=rest == "peer", **options)
        if rest not in ("ingress", "egress"):
            raise LinkError(f"{prog.describe()}: SEC({section!r}) must end in /ingress or /egress")
        return attach_net.attach_tcx(prog, interface, rest, **options)
    if kind in ("tc", "classifier", "action"):
        interface = _need(prog, section, options, "interface", "a name like 'eth0' or an ifindex")
        return attach_net.attach_tc(prog, interface, options.pop("direction", "ingress"), **options)
    if kind in ("cgroup", "cgroup_skb") or section == "sockops":
        target = _need(prog, section, options, "cgroup", "a cgroup v2 path or fd")
        hook = section if section == "sockops" else rest
        if not hook or (kind == "cgroup" and hook == "skb"):
            hook = _need(prog, section, options, "hook", "'ingress' or 'egress'")
        return cgroup.attach_cgroup(prog, target, hook, **options)
    if kind in ("sk_msg", "sk_skb"):
        target = _need(prog, section, options, "map", "the SOCKMAP or SOCKHASH")
        return attach_net.attach_sockmap(prog, target, rest or options.pop("hook", None), **options)
    if kind == "sk_lookup":
        return attach_net.attach_sk_lookup(prog, options.pop("netns", None))
    if kind == "flow_dissector":
        return attach_net.attach_flow_dissector(prog, options.pop("netns", None))
    if kind == "netfilter":
        return attach_net.attach_netfilter(prog, **options)
    if kind in ("iter", "iter.s"):
        return iterator.attach_iter(prog, **options)
    if kind in ("kprobe", "kretprobe"):
        function, _, off = (rest or _need(prog, section, options, "function", "a kernel function")).partition("+")
        return kprobe.attach_kprobe(prog, function, int(off, 0) if off else 0, retprobe=kind == "kretprobe", **options)
    if kind in ("kprobe.multi", "kretprobe.multi"):
        return kprobe.attach_kprobe_multi(prog, rest or _need(prog, section, options, "functions", "a glob or names"),
                                          retprobe=kind.startswith("kretprobe"), **options)
    if kind in ("ksyscall", "kretsyscall"):
        return kprobe.attach_ksyscall(prog, rest or _need(prog, section, options, "syscall", "e.g. 'openat'"),
                                      retprobe=kind == "kretsyscall", **options)
    if kind in ("usdt", "usdt.s"):
        if rest:
            parts = rest.rsplit(":", 2)
            if len(parts) != 3:
                raise LinkError(f"{prog.describe()}: SEC({section!r}) must be usdt/BINARY:PROVIDER:NAME")
            return usdt.attach_usdt(prog, *parts, **options)
        return usdt.attach_usdt(prog, _need(prog, section, options, "binary", "a path or library name"),
                                _need(prog, section, options, "provider", "the USDT provider"),
                                _need(prog, section, options, "name", "the USDT probe name"), **options)
    raise LinkError(f"{prog.describe()}: pybpf cannot auto-attach section {section!r}; "
                    "use an attach_* method with explicit arguments")


__all__ = [
    "expect_type", "relative_target", "attach_perf_fd", "attach_tracepoint", "attach_raw_tracepoint", "attach_tracing", "attach_uprobe", "attach_perf_event",
    "attach_xdp", "attach_socket_filter", "attach_by_section", "interface_index",
]
