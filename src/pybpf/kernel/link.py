"""Links: a program attached somewhere.  Closing a link detaches it.

Every attachment pybpf makes is fd-owned (a bpf_link, a perf event, or a filter
on a socket), so a process that dies detaches everything it attached unless
a link was pinned on purpose.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
import ctypes
import errno
import fcntl
import io
import os
import socket
import weakref
from dataclasses import dataclass, field
from typing import Any, Sequence

from ..errors import BPFError, LinkError, NotSupportedError
from .fd import PinnableObject
from .perf import PERF_EVENT_IOC_DISABLE
from .syscall import bpf_errno, fd_by_id, fd_kind, kernel_error, obj_info, open_pinned
from .uapi import ENOTSUPP, Cmd, IterCreateAttr, LinkDetachAttr, LinkInfoStruct, LinkType, LinkUpdateAttr, ProgAttachAttr

SO_ATTACH_BPF = 50
SO_DETACH_BPF = 27


@dataclass(frozen=True)
class LinkInfo:
    """What the kernel says about a link: type, ids, and the per-type target in ``details``
    (ifindex and attach_type for tcx/xdp/netkit, cgroup_id, netns_ino, pf/hooknum/priority for
    netfilter, target_name and map_id for iterators, tp_name, file/func names of perf events...)."""

    type: LinkType | int
    id: int
    prog_id: int
    details: dict = field(default_factory=dict)

    @property
    def attach_type(self) -> int | None:
        return self.details.get("attach_type")

    @classmethod
    def of_fd(cls, fd: int, what: str = "link") -> "LinkInfo":
        i = obj_info(fd, LinkInfoStruct, what)
        try:
            ltype: LinkType | int = LinkType(i.type)
        except ValueError:
            ltype = i.type
        raw = bytes(i.extra)
        details = _link_details(ltype, raw)
        names = _NAMED_FIELDS.get((ltype, details.get("perf_type")))
        if names:
            # a second call with a buffer for the name the kernel copies out
            ptr_off, len_off, key = names
            buf = ctypes.create_string_buffer(4096)

            def prepare(info: LinkInfoStruct) -> None:
                words = bytearray(bytes(info.extra))
                words[ptr_off:ptr_off + 8] = ctypes.addressof(buf).to_bytes(8, "little")
                words[len_off:len_off + 4] = len(buf).to_bytes(4, "little")
                ctypes.memmove(info.extra, bytes(words), len(words))

            try:
                again = obj_info(fd, LinkInfoStruct, what, prepare)
                details = _link_details(ltype, bytes(again.extra))
                details[key] = buf.value.decode(errors="replace")
            except BPFError:
                pass
        return cls(ltype, i.id, i.prog_id, details)


# (link type, perf event kind) -> (offset of the name pointer, offset of its length, detail key), in the union
_NAMED_FIELDS = {
    (LinkType.RAW_TRACEPOINT, None): (0, 8, "tp_name"),
    (LinkType.ITER, None): (0, 8, "target_name"),
    (LinkType.PERF_EVENT, 1): (8, 16, "func_name"),      # kprobe
    (LinkType.PERF_EVENT, 2): (8, 16, "func_name"),      # kretprobe
    (LinkType.PERF_EVENT, 3): (8, 16, "file_name"),      # uprobe
    (LinkType.PERF_EVENT, 4): (8, 16, "file_name"),      # uretprobe
    (LinkType.PERF_EVENT, 5): (8, 16, "tp_name"),        # tracepoint
}
PERF_EVENT_KINDS = {0: "unspec", 1: "kprobe", 2: "kretprobe", 3: "uprobe", 4: "uretprobe", 5: "tracepoint", 6: "event"}


def _link_details(ltype: int, raw: bytes) -> dict:
    u32 = lambda off: int.from_bytes(raw[off:off + 4], "little")  # noqa: E731
    s32 = lambda off: int.from_bytes(raw[off:off + 4], "little", signed=True)  # noqa: E731
    u64 = lambda off: int.from_bytes(raw[off:off + 8], "little")  # noqa: E731
    if ltype == LinkType.RAW_TRACEPOINT:
        return {"cookie": u64(16)}
    if ltype == LinkType.TRACING:
        return {"attach_type": u32(0), "target_obj_id": u32(4), "target_btf_id": u32(8), "cookie": u64(16)}
    if ltype == LinkType.CGROUP:
        return {"cgroup_id": u64(0), "attach_type": u32(8)}
    if ltype == LinkType.ITER:
        return {"map_id": u32(12)}
    if ltype == LinkType.NETNS:
        return {"netns_ino": u32(0), "attach_type": u32(4)}
    if ltype == LinkType.XDP:
        return {"ifindex": u32(0)}
    if ltype == LinkType.STRUCT_OPS:
        return {"map_id": u32(0)}
    if ltype == LinkType.NETFILTER:
        return {"pf": u32(0), "hooknum": u32(4), "priority": s32(8), "flags": u32(12)}
    if ltype == LinkType.KPROBE_MULTI:
        return {"count": u32(8), "flags": u32(12), "missed": u64(16)}
    if ltype == LinkType.UPROBE_MULTI:
        return {"count": u32(36), "flags": u32(40), "pid": u32(44)}
    if ltype in (LinkType.TCX, LinkType.NETKIT):
        return {"ifindex": u32(0), "attach_type": u32(4)}
    if ltype == LinkType.SOCKMAP:
        return {"map_id": u32(0), "attach_type": u32(4)}
    if ltype == LinkType.PERF_EVENT:
        kind = u32(0)
        out: dict = {"perf_type": kind, "perf_kind": PERF_EVENT_KINDS.get(kind, str(kind))}
        if kind in (1, 2):
            out.update(offset=u32(20), addr=u64(24), missed=u64(32), cookie=u64(40))
        elif kind in (3, 4):
            out.update(offset=u32(20), cookie=u64(24), ref_ctr_offset=u64(32))
        elif kind == 5:
            out.update(cookie=u64(24))
        elif kind == 6:
            out.update(config=u64(8), type=u32(16), cookie=u64(24))
        return out
    return {}


class Link(ABC):
    """Base of all attachments: ``close()`` (or leaving ``with``) detaches."""

    kind = "link"
    description = ""
    program: Any = None

    @abstractmethod
    def close(self) -> None: ...

    @property
    @abstractmethod
    def closed(self) -> bool: ...

    def pin(self, path: str | os.PathLike) -> None:
        raise LinkError(f"{self.describe()} cannot be pinned: it is not a kernel bpf_link")

    def describe(self) -> str:
        return self.description or self.kind

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}{' closed' if self.closed else ''}>"

    # Opening existing kernel links (always bpf_links).
    @classmethod
    def from_fd(cls, fd: int) -> "BPFLink":
        if fd_kind(fd) != "link":
            raise LinkError(f"fd {fd} is not a BPF link")
        return BPFLink(fd)

    @classmethod
    def from_id(cls, link_id: int) -> "BPFLink":
        return cls.from_fd(fd_by_id(Cmd.LINK_GET_FD_BY_ID, link_id, "link"))

    @classmethod
    def from_pin(cls, path: str | os.PathLike) -> "BPFLink":
        link = BPFLink(open_pinned(path, "link", "link", LinkError), description=f"link pinned at {os.fspath(path)}")
        link.pinned_path = os.fspath(path)
        return link


class BPFLink(PinnableObject, Link):
    """A kernel bpf_link (raw tracepoint, tracing, XDP, perf event, tcx, ...)."""

    kind = "link"

    def __init__(self, fd: int, *, program: Any = None, description: str = ""):
        PinnableObject.__init__(self, fd)
        self.program = program
        self.description = description

    describe = Link.describe

    def info(self) -> LinkInfo:
        return LinkInfo.of_fd(self.fd, self.describe())

    def detach(self) -> None:
        """Detach now, even if the link is pinned or shared (BPF_LINK_DETACH), then close."""
        _, err = bpf_errno(Cmd.LINK_DETACH, LinkDetachAttr(link_fd=self.fd))
        if err in (errno.EOPNOTSUPP, ENOTSUPP):
            kind = self.info().type
            name = kind.name.lower() if isinstance(kind, LinkType) else f"type {kind}"
            raise NotSupportedError(f"detaching {name} links by force", reason="the kernel cannot detach this "
                                    "link type while it is pinned or shared: unpin it and close every fd")
        if err == errno.EINVAL:
            raise NotSupportedError("BPF_LINK_DETACH", "5.9")
        if err:
            raise kernel_error(err, f"cannot detach {self.describe()}")
        self.close()

    def update(self, program: Any) -> None:
        """Atomically replace the attached program (BPF_LINK_UPDATE)."""
        _, err = bpf_errno(Cmd.LINK_UPDATE, LinkUpdateAttr(link_fd=self.fd, new_prog_fd=program.fd))
        if err:
            raise kernel_error(err, f"cannot replace the program of {self.describe()}")
        self.program = program

    def __repr__(self) -> str:
        return Link.__repr__(self)


class PerfEventLink(BPFLink):
    """A program on a perf event (tracepoint, uprobe, sampling).

    Holds the perf event fd and, on kernels with BPF_LINK_CREATE for perf
    events (5.15+), a bpf_link over it; older kernels attach with an ioctl and
    the perf fd alone is the attachment (then ``pin`` is impossible).
    """

    def __init__(self, perf_fd: int, link_fd: int | None, *, program: Any = None, description: str = ""):
        BPFLink.__init__(self, link_fd if link_fd is not None else perf_fd, program=program, description=description)
        self.perf_fd = perf_fd
        self.has_bpf_link = link_fd is not None
        self._perf_finalizer = weakref.finalize(self, os.close, perf_fd) if link_fd is not None else None

    def pin(self, path: str | os.PathLike) -> None:
        if not self.has_bpf_link:
            raise LinkError(f"{self.describe()} was attached with the perf ioctl (kernel before 5.15): it cannot be pinned")
        BPFLink.pin(self, path)

    def close(self) -> None:
        if not self.has_bpf_link and not self.closed:
            try:
                fcntl.ioctl(self.perf_fd, PERF_EVENT_IOC_DISABLE, 0)
            except OSError:
                pass
        BPFLink.close(self)
        if self._perf_finalizer is not None and self._perf_finalizer.alive:
            self._perf_finalizer()


class SocketFilterLink(Link):
    """A socket filter program set on a socket (SO_ATTACH_BPF); close() removes it.

    Works on its own duplicate of the socket fd, so detaching works even if the
    caller's socket object is gone.  Raises OSError (and keeps nothing open)
    when ``sock_fd`` is not a socket or the kernel refuses the filter.
    """

    kind = "socket filter"

    def __init__(self, sock_fd: int, program: Any, *, description: str = ""):
        dup = os.dup(sock_fd)
        try:
            self._sock = socket.socket(fileno=dup)
        except BaseException:
            os.close(dup)
            raise
        try:
            self._sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_BPF, program.fd)
        except BaseException:
            self._sock.close()
            raise
        self.program = program
        self.description = description

    @property
    def closed(self) -> bool:
        return self._sock.fileno() < 0

    def close(self) -> None:
        if self.closed:
            return
        try:
            self._sock.setsockopt(socket.SOL_SOCKET, SO_DETACH_BPF, 0)
        except OSError:
            pass  # already detached (or replaced by someone else)
        self._sock.close()


class IterLink(BPFLink):
    """A BPF iterator: each :meth:`open` / :meth:`read` runs the program over the kernel objects again."""

    def open(self) -> io.BufferedReader:
        """A new read-only file whose content is what the program writes (BPF_ITER_CREATE)."""
        fd, err = bpf_errno(Cmd.ITER_CREATE, IterCreateAttr(link_fd=self.fd))
        if err:
            raise kernel_error(err, f"cannot start {self.describe()}")
        return io.open(fd, "rb", closefd=True)

    def read(self, text: bool = True) -> str | bytes:
        """Run the iterator to the end: the program's output as text (or bytes with ``text=False``)."""
        with self.open() as f:
            chunks = []
            while True:
                try:
                    chunk = f.read1(1 << 16)
                except OSError as exc:
                    raise kernel_error(exc.errno or errno.EIO, f"reading {self.describe()} failed") from None
                if not chunk:
                    break
                chunks.append(chunk)
        data = b"".join(chunks)
        return data.decode("utf-8", "replace") if text else data


class ProgAttachLink(Link):
    """A program attached with BPF_PROG_ATTACH (sockmap parsers and verdicts, cgroups on old kernels).

    Such attachments are not file descriptors, so this object keeps its own
    duplicates of the target and program fds and detaches (BPF_PROG_DETACH)
    on close; it also goes away with the target (the map or cgroup).
    """

    kind = "attachment"

    def __init__(self, target_fd: int, program: Any, attach_type: int, *, description: str = ""):
        self._target = os.dup(target_fd)
        try:
            self._prog = os.dup(program.fd)
        except BaseException:
            os.close(self._target)
            raise
        self.attach_type = attach_type
        self.program = program
        self.description = description
        self._closer = weakref.finalize(self, _prog_detach, self._target, self._prog, attach_type)

    @property
    def closed(self) -> bool:
        return not self._closer.alive

    def close(self) -> None:
        if self._closer.alive:
            self._closer()


def _prog_detach(target_fd: int, prog_fd: int, attach_type: int) -> None:
    try:
        bpf_errno(Cmd.PROG_DETACH, ProgAttachAttr(target_fd=target_fd, attach_bpf_fd=prog_fd, attach_type=attach_type))
    finally:
        os.close(target_fd)
        os.close(prog_fd)


class TCFilterLink(Link):
    """A cls_bpf filter in direct-action mode on a clsact qdisc (tc without tcx links).

    Holds the rtnetlink socket of the namespace it was made in; close() deletes
    the filter and, if this link created the clsact qdisc and no other filter
    is left on it, the qdisc too.  A filter is not an fd the kernel cleans up
    with the process, so the same happens when the link is garbage-collected
    or the interpreter exits (a SIGKILLed process leaves it: remove it with tc).
    """

    kind = "tc filter"

    def __init__(self, route: Any, ifindex: int, parent: int, handle: int, priority: int, created_qdisc: bool,
                 program: Any, *, description: str = ""):
        self.route = route
        self.ifindex = ifindex
        self.parent = parent
        self.handle = handle
        self.priority = priority
        self.created_qdisc = created_qdisc
        self.program = program
        self.description = description
        self._remover = weakref.finalize(self, _remove_tc_filter, route, ifindex, parent, handle, priority,
                                         created_qdisc)

    @property
    def closed(self) -> bool:
        return not self._remover.alive

    def close(self) -> None:
        if self._remover.alive:
            self._remover()


def _remove_tc_filter(route: Any, ifindex: int, parent: int, handle: int, priority: int, created_qdisc: bool) -> None:
    from .netlink import tc_parent

    gone = (errno.ENOENT, errno.ENODEV, errno.EINVAL)  # the filter, qdisc or device is already gone
    try:
        try:
            route.delete_filter(ifindex, parent, handle, priority)
        except BPFError as exc:
            if getattr(exc, "errno", None) not in gone:
                raise
        if created_qdisc:
            try:
                if not [m for d in ("ingress", "egress") for m in route.filters(ifindex, tc_parent(d))]:
                    route.delete_clsact(ifindex)
            except BPFError as exc:
                if getattr(exc, "errno", None) not in gone:
                    raise
    finally:
        route.close()


class LinkGroup(Link):
    """Several links that act as one (a sampling program on every CPU)."""

    kind = "link group"

    def __init__(self, links: Sequence[Link], *, program: Any = None, description: str = ""):
        self.links = list(links)
        self.program = program
        self.description = description

    @property
    def closed(self) -> bool:
        return all(link.closed for link in self.links)

    def close(self) -> None:
        errors = []
        for link in self.links:
            try:
                link.close()
            except BPFError as exc:
                errors.append(exc)
        if errors:
            raise errors[0]

    def pin(self, path: str | os.PathLike) -> None:
        """Pin each member as ``path/<index>`` (path becomes a directory on bpffs)."""
        os.makedirs(path, exist_ok=True)
        for i, link in enumerate(self.links):
            link.pin(os.path.join(path, str(i)))

    def __iter__(self):
        return iter(self.links)

    def __len__(self) -> int:
        return len(self.links)
