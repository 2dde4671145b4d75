"""Ownership of one kernel file descriptor: closed exactly once, by close(), `with`, or GC."""

from __future__ import annotations

import os
import weakref

from ..errors import BPFError


class FDObject:
    """Base of live kernel objects (maps, programs, links, BTF).

    The fd is closed by :meth:`close`, by leaving a ``with`` block, or when the
    object is garbage-collected or the interpreter exits; never twice, so a
    recycled fd number can not be closed by mistake.
    """

    kind = "object"

    def __init__(self, fd: int):
        self._fd = fd
        self._finalizer = weakref.finalize(self, os.close, fd)

    @property
    def fd(self) -> int:
        if self._fd < 0:
            raise BPFError(f"{self.describe()} is closed")
        return self._fd

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def describe(self) -> str:
        """How error messages name this object, e.g. ``map 'counts'``."""
        name = getattr(self, "name", "") or ""
        return f"{self.kind} {name!r}" if name else self.kind

    def close(self) -> None:
        if self._finalizer.alive:
            self._finalizer()
        self._fd = -1

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def fileno(self) -> int:
        return self.fd


class PinnableObject(FDObject):
    """Maps, programs and bpf_links: they have a kernel id (from their ``info()``, which each
    defines) and can be pinned on bpffs."""

    pinned_path: str | None = None  # set by pin() and from_pin()

    @property
    def id(self) -> int:
        return self.info().id

    def pin(self, path: str | os.PathLike) -> None:
        """Pin at ``path`` on bpffs: the object then outlives this process until unpinned (or rm'd)."""
        from .syscall import obj_pin

        obj_pin(self.fd, path, self.describe())
        self.pinned_path = os.fspath(path)

    def unpin(self) -> None:
        """Remove the pin this object made or was opened from (gone already: nothing to do)."""
        if self.pinned_path:
            try:
                os.unlink(self.pinned_path)
            except FileNotFoundError:
                pass
            self.pinned_path = None
