"""The ``bpf()`` and ``perf_event_open()`` system calls through ctypes, errno -> exceptions.

Every call into the kernel goes through :func:`bpf`, so errno handling lives in
one place: permission errors say which capability is missing, and the memlock
rlimit is raised once (as libbpf does) on kernels that still charge BPF memory
to it.  ctypes releases the GIL during the call, so a long BPF_PROG_TEST_RUN
does not stop other Python threads.
"""

from __future__ import annotations

import ctypes
import errno
import os
import resource
from typing import Iterator, TypeVar

from ..errors import BPFPermissionError, KernelError
from .uapi import Cmd, GetIdAttr, InfoAttr, ObjAttr

NR_BPF = 321  # x86-64
NR_PERF_EVENT_OPEN = 298

libc = ctypes.CDLL(None, use_errno=True)
_syscall = libc.syscall
_syscall.restype = ctypes.c_long

CAP_NET_ADMIN = 12
CAP_SYS_ADMIN = 21
CAP_PERFMON = 38
CAP_BPF = 39
_CAP_NAMES = {CAP_NET_ADMIN: "CAP_NET_ADMIN", CAP_SYS_ADMIN: "CAP_SYS_ADMIN", CAP_PERFMON: "CAP_PERFMON", CAP_BPF: "CAP_BPF"}

# Capabilities each command needs, beyond which the kernel answers EPERM.
_CMD_CAPS: dict[Cmd, tuple[int, ...]] = {
    Cmd.MAP_CREATE: (CAP_BPF,),
    Cmd.PROG_LOAD: (CAP_BPF,),
    Cmd.BTF_LOAD: (CAP_BPF,),
    Cmd.PROG_GET_FD_BY_ID: (CAP_SYS_ADMIN,),
    Cmd.MAP_GET_FD_BY_ID: (CAP_SYS_ADMIN,),
    Cmd.LINK_GET_FD_BY_ID: (CAP_SYS_ADMIN,),
    Cmd.BTF_GET_FD_BY_ID: (CAP_SYS_ADMIN,),
    Cmd.PROG_GET_NEXT_ID: (CAP_SYS_ADMIN,),
    Cmd.MAP_GET_NEXT_ID: (CAP_SYS_ADMIN,),
    Cmd.LINK_GET_NEXT_ID: (CAP_SYS_ADMIN,),
    Cmd.BTF_GET_NEXT_ID: (CAP_SYS_ADMIN,),
    Cmd.RAW_TRACEPOINT_OPEN: (CAP_BPF, CAP_PERFMON),
    Cmd.PROG_TEST_RUN: (CAP_BPF,),
    Cmd.LINK_CREATE: (CAP_BPF,),
    Cmd.PROG_ATTACH: (CAP_NET_ADMIN,),
}

_memlock_raised = False


def effective_capabilities() -> int:
    """The CapEff bit mask of this process (0 when /proc is unreadable)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return int(line.split()[1], 16)
    except OSError:
        pass
    return 0


def missing_capabilities(needed: tuple[int, ...]) -> list[str]:
    """Names of the capabilities in ``needed`` this process lacks (CAP_SYS_ADMIN covers CAP_BPF/CAP_PERFMON)."""
    have = effective_capabilities()
    missing = []
    for cap in needed:
        if have & (1 << cap):
            continue
        if cap in (CAP_BPF, CAP_PERFMON) and have & (1 << CAP_SYS_ADMIN):
            continue
        name = _CAP_NAMES[cap]
        missing.append(f"{name} (or CAP_SYS_ADMIN)" if cap in (CAP_BPF, CAP_PERFMON) else name)
    return missing


def permission_error(err: int, what: str, needed: tuple[int, ...] = ()) -> BPFPermissionError:
    """A BPFPermissionError that names what to grant, or what else may be refusing."""
    missing = missing_capabilities(needed)
    if missing:
        hint = f"missing {', '.join(missing)}; run as root or grant the capability (setcap, capsh, docker --cap-add)"
    else:
        soft, _ = resource.getrlimit(resource.RLIMIT_MEMLOCK)
        hint = "the process has the needed capabilities, so something else refused"
        hint += ": check /proc/sys/kernel/unprivileged_bpf_disabled, kernel lockdown (/sys/kernel/security/lockdown) or an LSM"
        if soft != resource.RLIM_INFINITY:
            hint += f", or the memlock limit ({soft} bytes; kernels before 5.11 charge BPF memory to it: ulimit -l unlimited)"
    return BPFPermissionError(err, f"{what}: permission denied; {hint}")


def _raise_memlock() -> bool:
    """Lift RLIMIT_MEMLOCK once, as libbpf does, for kernels before 5.11; True if it changed."""
    global _memlock_raised
    if _memlock_raised:
        return False
    _memlock_raised = True
    soft, hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    if soft == resource.RLIM_INFINITY:
        return False
    try:
        resource.setrlimit(resource.RLIMIT_MEMLOCK, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    except (ValueError, OSError):
        return False
    return True


def bpf_errno(cmd: int, attr: ctypes.Structure) -> tuple[int, int]:
    """Raw bpf(): (result, errno); errno is 0 on success.  For callers that branch on errno."""
    ret = _syscall(NR_BPF, int(cmd), ctypes.byref(attr), ctypes.sizeof(attr))
    if ret >= 0:
        return ret, 0
    err = ctypes.get_errno()
    if err == errno.EPERM and cmd in (Cmd.MAP_CREATE, Cmd.PROG_LOAD, Cmd.BTF_LOAD) and _raise_memlock():
        return bpf_errno(cmd, attr)
    return -1, err


def bpf(cmd: Cmd, attr: ctypes.Structure, what: str | None = None) -> int:
    """Call bpf(cmd, attr); raise KernelError (BPFPermissionError on EPERM/EACCES) on failure."""
    ret, err = bpf_errno(cmd, attr)
    if err:
        raise kernel_error(err, what or f"bpf({Cmd(cmd).name})", _CMD_CAPS.get(Cmd(cmd), ()))
    return ret


def kernel_error(err: int, what: str, needed: tuple[int, ...] = ()) -> KernelError:
    if err in (errno.EPERM, errno.EACCES):
        return permission_error(err, what, needed)
    return KernelError(err, what)


def perf_event_open(attr: ctypes.Structure, pid: int, cpu: int, group_fd: int = -1, flags: int = 0) -> tuple[int, int]:
    """Raw perf_event_open(): (fd, errno).  PERF_FLAG_FD_CLOEXEC is always added."""
    ret = _syscall(NR_PERF_EVENT_OPEN, ctypes.byref(attr), pid, cpu, group_fd, flags | 8)
    if ret >= 0:
        return ret, 0
    return -1, ctypes.get_errno()


# --- small wrappers shared by maps, programs, links and BTF -----------------


def c_path(path: str | os.PathLike) -> ctypes.Array:
    return ctypes.create_string_buffer(os.fsencode(path))


def obj_pin(fd: int, path: str | os.PathLike, what: str) -> None:
    if os.fspath(path).startswith("/sys/fs/bpf/"):
        from .fs import ensure_bpffs

        ensure_bpffs()
    name = c_path(path)
    attr = ObjAttr(pathname=ctypes.addressof(name), bpf_fd=fd)
    ret, err = bpf_errno(Cmd.OBJ_PIN, attr)
    if err == errno.EEXIST:
        raise KernelError(err, f"cannot pin {what} at {os.fspath(path)}: the path exists (unpin or remove it first)")
    if err == errno.ENOENT:
        raise KernelError(err, f"cannot pin {what} at {os.fspath(path)}: the directory does not exist")
    if err == errno.EPERM and not os.fspath(path).startswith("/sys/fs/bpf"):
        raise KernelError(err, f"cannot pin {what} at {os.fspath(path)}: pins must live on a bpf filesystem (/sys/fs/bpf)")
    if err:
        raise kernel_error(err, f"cannot pin {what} at {os.fspath(path)}", (CAP_BPF,))


def obj_get(path: str | os.PathLike, what: str, flags: int = 0) -> int:
    name = c_path(path)
    attr = ObjAttr(pathname=ctypes.addressof(name), file_flags=flags)
    ret, err = bpf_errno(Cmd.OBJ_GET, attr)
    if err == errno.ENOENT:
        raise KernelError(err, f"no pinned {what} at {os.fspath(path)}")
    if err:
        raise kernel_error(err, f"cannot open pinned {what} {os.fspath(path)}", (CAP_BPF,))
    return ret


def open_pinned(path: str | os.PathLike, kind: str, what: str, error: type[Exception] = KernelError) -> int:
    """The fd of the object pinned at ``path``, which must be a ``kind`` (see :func:`fd_kind`)."""
    fd = obj_get(path, what)
    found = fd_kind(fd)
    if found != kind:
        os.close(fd)
        raise error(f"{os.fspath(path)} is a pinned {found or 'object'}, not a {what}")
    return fd


def fd_by_id(cmd: Cmd, obj_id: int, what: str) -> int:
    attr = GetIdAttr(start_id=obj_id)
    ret, err = bpf_errno(cmd, attr)
    if err == errno.ENOENT:
        raise KernelError(err, f"no {what} with id {obj_id}")
    if err:
        raise kernel_error(err, f"cannot open {what} id {obj_id}", (CAP_SYS_ADMIN,))
    return ret


def next_ids(cmd: Cmd) -> Iterator[int]:
    """Ids of all kernel objects of one kind (MAP/PROG/LINK/BTF_GET_NEXT_ID), ascending."""
    attr = GetIdAttr()
    while True:
        ret, err = bpf_errno(cmd, attr)
        if err == errno.ENOENT:
            return
        if err:
            raise kernel_error(err, f"cannot list kernel objects ({cmd.name})", (CAP_SYS_ADMIN,))
        yield attr.next_id
        attr.start_id = attr.next_id


def map_ids() -> Iterator[int]:
    return next_ids(Cmd.MAP_GET_NEXT_ID)


def prog_ids() -> Iterator[int]:
    return next_ids(Cmd.PROG_GET_NEXT_ID)


def link_ids() -> Iterator[int]:
    return next_ids(Cmd.LINK_GET_NEXT_ID)


def btf_ids() -> Iterator[int]:
    return next_ids(Cmd.BTF_GET_NEXT_ID)


S = TypeVar("S", bound=ctypes.Structure)


def obj_info(fd: int, info_type: type[S], what: str, prepare=None) -> S:
    """BPF_OBJ_GET_INFO_BY_FD into a fresh ``info_type``; ``prepare(info)`` may set buffer pointers."""
    info = info_type()
    if prepare is not None:
        prepare(info)
    attr = InfoAttr(bpf_fd=fd, info_len=ctypes.sizeof(info), info=ctypes.addressof(info))
    bpf(Cmd.OBJ_GET_INFO_BY_FD, attr, f"cannot read information about {what}")
    return info


def fd_kind(fd: int) -> str | None:
    """'map', 'prog', 'link' or 'btf' for a BPF file descriptor, None otherwise."""
    try:
        target = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None
    return {
        "anon_inode:bpf-map": "map", "anon_inode:bpf-prog": "prog", "anon_inode:bpf_link": "link",
        "anon_inode:bpf-link": "link",  # the name a link opened from a pin gets
        "anon_inode:btf": "btf",
    }.get(target)


def close_fd(fd: int) -> None:
    """os.close that ignores an fd already gone (double close from a finalizer)."""
    try:
        os.close(fd)
    except OSError:
        pass
