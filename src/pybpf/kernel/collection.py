"""A Collection: the maps, programs and links of one loaded object, closed together.

:meth:`Collection.attach_all` is libbpf's skeleton auto-attach made explicit:
every program whose section says where it goes is attached (tracepoints, raw
and BTF tracepoints, fentry/lsm, uprobes and USDT probes naming a binary);
programs that need a target only the caller knows get it from the keyword
arguments (``iface=`` for XDP and tc, ``cgroup=`` for cgroup hooks, ``freq=``
for perf events, ``sock=`` for socket filters) and are otherwise skipped with a
note in :attr:`Collection.skipped`, never an exception.  When an attach that
should work fails, everything attached so far is detached before the error
propagates: an object is never left half attached.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable

from ..errors import BPFError, LinkError
from .maps import Map, ProgArray
from .program import Program
from .uapi import AttachType, ProgType

if TYPE_CHECKING:  # links come with the first attach: loading an object needs none of them
    from .link import Link

_CGROUP_TYPES = frozenset({
    ProgType.CGROUP_SKB, ProgType.CGROUP_SOCK, ProgType.CGROUP_SOCK_ADDR, ProgType.SOCK_OPS,
    ProgType.CGROUP_DEVICE, ProgType.CGROUP_SYSCTL, ProgType.CGROUP_SOCKOPT,
})
# libbpf's auto-attach handlers that need nothing but the section's own target.
_BY_SECTION = frozenset({"tracepoint", "raw_tracepoint", "trace", "lsm", "kprobe", "ksyscall", "kprobe.multi"})


class Collection:
    """Live objects loaded together.

    ``maps`` and ``programs`` are dicts by name; links made through
    :meth:`attach` / :meth:`attach_all` are owned too.  ``close()`` (or leaving
    ``with``) detaches links, then unloads programs and maps; pinned objects
    stay in the kernel.
    """

    def __init__(self, maps: dict[str, Map] | None = None, programs: dict[str, Program] | None = None):
        self.maps: dict[str, Map] = dict(maps or {})
        self.programs: dict[str, Program] = dict(programs or {})
        self.links: list[Link] = []
        self.skipped: dict[str, str] = {}  # program -> why attach_all left it alone
        self.closed = False
        for m in self.maps.values():
            if isinstance(m, ProgArray) and m.programs is None:
                m.bind(self.programs)  # prog_array[i] = "program name" resolves here

    def program(self, name: str) -> Program:
        try:
            return self.programs[name]
        except KeyError:
            raise BPFError(f"no program {name!r} (there are: {', '.join(self.programs) or 'none'})") from None

    def map(self, name: str) -> Map:
        try:
            return self.maps[name]
        except KeyError:
            raise BPFError(f"no map {name!r} (there are: {', '.join(self.maps) or 'none'})") from None

    def attach(self, program: str, target: str | None = None, **options: Any) -> Link:
        """Attach one program (by name); the link is closed with the collection."""
        link = self.program(program).attach(target, **options)
        self.links.append(link)
        return link

    def attach_all(self, *, iface: str | int | None = None, cgroup: Any = None, pid: int | None = None,
                   freq: int | None = None, sock: Any = None) -> list[Link]:
        """Attach every program whose section (plus these targets) says where; returns the new links.

        ``iface``: XDP and tc/tcx programs; ``cgroup``: cgroup hooks (a cgroup v2
        path or fd); ``pid``: limits uprobes, USDT probes and perf events to one
        process; ``freq``: samples per second of perf_event programs; ``sock``:
        socket filters.  Programs left alone are listed in :attr:`skipped` with
        the reason (iterators, programs without a target, ...).
        """
        made: list[Link] = []
        self.skipped = {}
        try:
            for name, prog in self.programs.items():
                how = _plan(prog, iface=iface, cgroup=cgroup, pid=pid, freq=freq, sock=sock)
                if isinstance(how, str):
                    self.skipped[name] = how
                    continue
                try:
                    made.append(how())
                except BPFError as exc:
                    if repr(name) in str(exc):
                        raise
                    raise naming_program(exc, name, "attach") from exc
        except BaseException:
            _close_all(made)
            raise
        self.links.extend(made)
        return made

    def detach_all(self) -> None:
        _close_all(self.links)
        self.links.clear()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        errors = _close_all(self.links) + _close_all(self.programs.values()) + _close_all(self.maps.values())
        self.links.clear()
        if errors:
            raise errors[0]

    def __enter__(self) -> "Collection":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} maps={list(self.maps)} programs={list(self.programs)} "
                f"links={len(self.links)}{' closed' if self.closed else ''}>")


def _plan(prog: Program, *, iface: Any, cgroup: Any, pid: int | None, freq: int | None, sock: Any) -> Any:
    """How to attach ``prog``: a function making its link, or the reason it is skipped."""
    from ..object.sections import attach_target, find_section_def, parse_probe_target

    section = (prog.section or "").lstrip("?")
    sec_def = find_section_def(section) if section else None
    if sec_def is None:
        return f"section {section!r} does not say where to attach" if section else "no section name"
    kind = sec_def.attach
    target = attach_target(sec_def, section)
    ptype = prog.type
    if kind in _BY_SECTION:
        if sec_def.prog_type == ProgType.EXT:
            return "freplace programs replace a function of another program: use prog.attach_tracing()"
        if not target:
            return f"SEC({section!r}) names no target: attach it with prog.attach({kind!r}/...)"
        return lambda: prog.attach(section)
    if kind in ("uprobe", "usdt"):
        probe = parse_probe_target(sec_def, section, target)
        if probe is None or not probe.path:
            what = "binary:function" if kind == "uprobe" else "binary:provider:name"
            return f"SEC({section!r}) names no {what}: use prog.attach_{kind}(...)"
        if kind == "usdt":
            return lambda: prog.attach_usdt(probe.path, probe.provider, probe.function, pid=pid)
        return lambda: prog.attach_uprobe(probe.path, probe.function, offset=probe.offset, pid=pid,
                                          retprobe=probe.retprobe)
    if kind == "iter":
        return "iterators are read, not attached: use prog.attach_iter().read()"
    if ptype == ProgType.PERF_EVENT:
        if not freq:
            return "perf_event programs need a sampling frequency (freq=, --freq)"
        return lambda: prog.attach_perf_event(frequency=freq, pid=-1 if pid is None else pid)
    if ptype == ProgType.XDP and sec_def.attach_type in (AttachType.XDP, None):
        if iface is None:
            return "XDP programs need an interface (iface=, --iface)"
        return lambda: prog.attach_xdp(iface)
    if ptype == ProgType.SCHED_CLS:
        if iface is None:
            return "tc programs need an interface (iface=, --iface)"
        if sec_def.attach_type == AttachType.TCX_EGRESS:
            return lambda: prog.attach_tcx(iface, "egress")
        if sec_def.attach_type == AttachType.TCX_INGRESS:
            return lambda: prog.attach_tcx(iface, "ingress")
        if sec_def.attach_type is None:
            return lambda: prog.attach_tc(iface, "ingress")
        return f"SEC({section!r}) is not a tc hook pybpf attaches by itself"
    if ptype in _CGROUP_TYPES:
        if prog.expected_attach_type is None and ptype != ProgType.CGROUP_SOCK:
            return f"SEC({section!r}) does not say which cgroup hook: use prog.attach_cgroup(path, hook)"
        if cgroup is None:
            return "cgroup programs need a cgroup v2 directory (cgroup=, --cgroup)"
        return lambda: prog.attach_cgroup(cgroup)
    if ptype == ProgType.SOCKET_FILTER:
        if sock is None:
            return "socket filters need a socket (sock=)"
        return lambda: prog.attach_socket_filter(sock)
    return f"SEC({section!r}) programs need arguments only the caller knows: use the prog.attach_* methods"


def naming_program(exc: BPFError, name: str, action: str) -> BPFError:
    """The same kind of error, saying which program it is about (for errors raised without the name)."""
    from ..errors import BPFPermissionError, KernelError, NotSupportedError

    if isinstance(exc, NotSupportedError):
        return NotSupportedError(f"{exc.feature} (program {name!r})", exc.min_kernel, exc.reason)
    if type(exc) in (KernelError, BPFPermissionError):
        return type(exc)(exc.errno, f"cannot {action} program {name!r}: {exc.message}")
    if action == "attach":
        return LinkError(f"cannot attach program {name!r}: {exc}")
    return exc


def _close_all(objects: Iterable[Any]) -> list[BaseException]:
    errors: list[BaseException] = []
    for obj in list(objects):
        try:
            obj.close()
        except (BPFError, OSError) as exc:
            errors.append(exc)
    return errors


__all__ = ["Collection"]
