"""Links: a program attached somewhere.  Closing a link detaches it.

Every attachment pybpf makes is fd-owned (a bpf_link, a perf event, or a filter
on a socket), so a process that dies detaches everything it attached unless
a link was pinned on purpose.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
import errno
import fcntl
import os
import socket
import weakref
from dataclasses import dataclass
from typing import Any, Sequence

from ..errors import BPFError, LinkError
from .fd import FDObject
from .perf import PERF_EVENT_IOC_DISABLE
from .syscall import bpf_errno, fd_by_id, fd_kind, kernel_error, obj_get, obj_info, obj_pin
from .uapi import Cmd, LinkDetachAttr, LinkInfoStruct, LinkType, LinkUpdateAttr

SO_ATTACH_BPF = 50
SO_DETACH_BPF = 27


@dataclass(frozen=True)
class LinkInfo:
    type: LinkType | int
    id: int
    prog_id: int


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
        fd = obj_get(path, "link")
        if fd_kind(fd) != "link":
            kind = fd_kind(fd)
            os.close(fd)
            raise LinkError(f"{os.fspath(path)} is a pinned {kind or 'object'}, not a link")
        link = BPFLink(fd, description=f"link pinned at {os.fspath(path)}")
        link.pinned_path = os.fspath(path)
        return link


class BPFLink(FDObject, Link):
    """A kernel bpf_link (raw tracepoint, tracing, XDP, perf event, tcx, ...)."""

    kind = "link"

    def __init__(self, fd: int, *, program: Any = None, description: str = ""):
        FDObject.__init__(self, fd)
        self.program = program
        self.description = description
        self.pinned_path: str | None = None

    describe = Link.describe

    def info(self) -> LinkInfo:
        i = obj_info(self.fd, LinkInfoStruct, self.describe())
        try:
            ltype: LinkType | int = LinkType(i.type)
        except ValueError:
            ltype = i.type
        return LinkInfo(ltype, i.id, i.prog_id)

    @property
    def id(self) -> int:
        return self.info().id

    def pin(self, path: str | os.PathLike) -> None:
        """Pin on bpffs: the attachment then survives this process until unpinned."""
        obj_pin(self.fd, path, self.describe())
        self.pinned_path = os.fspath(path)

    def unpin(self) -> None:
        if self.pinned_path:
            try:
                os.unlink(self.pinned_path)
            except FileNotFoundError:
                pass
            self.pinned_path = None

    def detach(self) -> None:
        """Detach now, even if the link is pinned or shared (BPF_LINK_DETACH), then close."""
        _, err = bpf_errno(Cmd.LINK_DETACH, LinkDetachAttr(link_fd=self.fd))
        if err and err not in (errno.EOPNOTSUPP, errno.EINVAL):
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
