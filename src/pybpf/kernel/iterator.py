"""BPF iterators: programs that walk kernel objects (tasks, maps, sockets, map elements...)
and write text or records that user space reads like a file.

``attach_iter`` makes the iterator link (BPF_LINK_CREATE with BPF_TRACE_ITER);
each ``link.read()`` runs the walk once more (BPF_ITER_CREATE + read to EOF).
Map-element iterators are bound to one map; task iterators may be limited to
one thread or process; cgroup iterators start at a cgroup and walk in an order.
"""

from __future__ import annotations

import ctypes
import errno
import os
from typing import Any

from ..errors import LinkError
from .attach import expect_type
from .link import IterLink
from .syscall import CAP_BPF, CAP_PERFMON, bpf_errno, kernel_error
from .uapi import AttachType, Cmd, LinkCreateAttr, ProgType

CGROUP_ORDERS = {"self": 1, "self_only": 1, "descendants_pre": 2, "pre": 2, "descendants_post": 3, "post": 3,
                 "ancestors_up": 4, "up": 4}


class IterLinkInfo(ctypes.Structure):
    """union bpf_iter_link_info, flattened: map_fd | cgroup (order, fd, id) | task (tid, pid, pid_fd)."""

    _fields_ = [("word0", ctypes.c_uint32), ("word1", ctypes.c_uint32), ("word2", ctypes.c_uint64)]


def attach_iter(prog: Any, *, map: Any = None, cgroup: Any = None, order: str = "self", tid: int | None = None,
                pid: int | None = None) -> IterLink:
    """Make an iterator link for ``prog`` (loaded for an ``iter/...`` target).

    ``map``: the map a bpf_map_elem / bpf_sk_storage_map / sockmap iterator walks.
    ``cgroup`` (path or fd) and ``order``: where a cgroup iterator starts and how it walks.
    ``tid`` / ``pid``: limit a task, task_file or task_vma iterator to one thread / process.
    """
    target = prog.section.split("/", 1)[1] if prog.section.startswith(("iter/", "iter.s/")) else ""
    what = f"iterator {target}" if target else "an iterator"
    expect_type(prog, what, ProgType.TRACING)
    eat = getattr(prog, "expected_attach_type", None)
    if eat is not None and eat != AttachType.TRACE_ITER:
        raise LinkError(f"cannot make {what} of {prog.describe()}: load it with expected_attach_type=TRACE_ITER")
    if sum(x is not None for x in (map, cgroup, tid, pid)) > 1:
        raise LinkError("an iterator takes at most one of map=, cgroup=, tid=, pid=")
    info = IterLinkInfo()
    cgroup_fd = -1
    if map is not None:
        if not hasattr(map, "fd"):
            raise LinkError(f"map= must be a Map, not {map!r}")
        info.word0 = map.fd
        what += f" over {map.describe()}"
    elif cgroup is not None:
        from .cgroup import open_cgroup

        if order not in CGROUP_ORDERS:
            raise LinkError(f"cgroup iterator order {order!r} is not one of {', '.join(CGROUP_ORDERS)}")
        cgroup_fd, label = open_cgroup(cgroup)
        info.word0, info.word1 = CGROUP_ORDERS[order], cgroup_fd
        what += f" from {label}"
    elif tid is not None or pid is not None:
        which = tid if tid is not None else pid
        if not os.path.exists(f"/proc/{which}"):
            raise LinkError(f"cannot make {what}: no process or thread {which}")
        if tid is not None:
            info.word0 = tid
        else:
            info.word1 = pid
        what += f" of {'thread' if tid is not None else 'process'} {which}"
    attr = LinkCreateAttr(prog_fd=prog.fd, attach_type=AttachType.TRACE_ITER)
    if map is not None or cgroup is not None or tid is not None or pid is not None:
        attr.target.iter.iter_info = ctypes.addressof(info)
        attr.target.iter.iter_info_len = ctypes.sizeof(info)
    try:
        fd, err = bpf_errno(Cmd.LINK_CREATE, attr)
    finally:
        if cgroup_fd >= 0:
            os.close(cgroup_fd)
    if not err:
        return IterLink(fd, program=prog, description=what)
    if err in (errno.EINVAL, errno.EBADF) and map is None and target in ("bpf_map_elem", "bpf_sk_storage_map",
                                                                          "sockmap"):
        raise LinkError(f"cannot make {what} of {prog.describe()}: this iterator walks one map; pass map=")
    if err == errno.EINVAL:
        raise LinkError(f"cannot make {what} of {prog.describe()}: the kernel refused (EINVAL); check that the "
                        "options suit the iterator target (map= only for map iterators, with key/value sizes "
                        "the program reads; cgroup= only for cgroup iterators; tid=/pid= for task iterators)")
    if err == errno.EACCES and map is not None:
        raise LinkError(f"cannot make {what} of {prog.describe()}: the program reads more of the key or value than "
                        f"{map.describe()} has")
    raise kernel_error(err, f"cannot make {what} of {prog.describe()}", (CAP_BPF, CAP_PERFMON))
