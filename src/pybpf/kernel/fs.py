"""The kernel's pseudo file systems pybpf relies on: bpffs, tracefs, CPU lists.

Mounting is done with mount(2) through ctypes when a file system is missing, so a
fresh container or VM works without a manual ``mount -t tracefs ...``.
"""

from __future__ import annotations

import ctypes
import os
from functools import cache

from ..errors import BPFError, KernelError
from .syscall import libc, permission_error, CAP_SYS_ADMIN

BPFFS = "/sys/fs/bpf"
TRACEFS = "/sys/kernel/tracing"
DEBUGFS_TRACING = "/sys/kernel/debug/tracing"

BPF_FS_MAGIC = 0xCAFE4A11
TRACEFS_MAGIC = 0x74726163


def _mount_type(path: str) -> str | None:
    """The file system type mounted exactly at ``path`` (last mount wins), or None."""
    found = None
    try:
        with open("/proc/self/mounts") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and parts[1] == path:
                    found = parts[2]
    except OSError:
        return None
    return found


def _mount(source: str, target: str, fstype: str, options: str | None = None) -> None:
    os.makedirs(target, exist_ok=True)
    data = options.encode() if options else None
    if libc.mount(source.encode(), target.encode(), fstype.encode(), ctypes.c_ulong(0), data) != 0:
        err = ctypes.get_errno()
        what = f"cannot mount {fstype} at {target}"
        if err in (1, 13):
            raise permission_error(err, what, (CAP_SYS_ADMIN,))
        raise KernelError(err, what)


def pin_name(name: str) -> str:
    """A file name bpffs accepts for an object called ``name``: bpffs refuses names with a dot
    (``prog.rodata``), so dots become underscores, as libbpf makes them."""
    return name.replace(".", "_")


def ensure_bpffs(path: str = BPFFS) -> str:
    """Make sure a bpf file system is mounted at ``path`` (mounting it if absent); returns path."""
    if _mount_type(path) != "bpf":
        _mount("bpf", path, "bpf", "mode=0700")
    return path


@cache
def _tracefs_root() -> str:
    if _mount_type(TRACEFS) == "tracefs":
        return TRACEFS
    if _mount_type(DEBUGFS_TRACING) == "tracefs" or os.path.exists(os.path.join(DEBUGFS_TRACING, "trace_pipe")):
        return DEBUGFS_TRACING
    try:
        _mount("tracefs", TRACEFS, "tracefs")
    except KernelError as exc:
        raise BPFError(
            f"tracefs is not mounted and {exc}; mount it with 'mount -t tracefs nodev {TRACEFS}'"
        ) from None
    return TRACEFS


def tracefs(*parts: str) -> str:
    """A path inside tracefs, which is mounted first if needed."""
    return os.path.join(_tracefs_root(), *parts)


def parse_cpu_list(text: str) -> list[int]:
    """'0-3,5,7-8' -> [0, 1, 2, 3, 5, 7, 8] (the kernel's cpulist format)."""
    cpus: list[int] = []
    for part in text.strip().split(","):
        if not part:
            continue
        if "-" in part:
            lo, hi = part.split("-")
            cpus.extend(range(int(lo), int(hi) + 1))
        else:
            cpus.append(int(part))
    return cpus


@cache
def possible_cpus() -> list[int]:
    """CPUs the kernel may ever bring up: per-CPU map values and perf buffers are sized by this."""
    with open("/sys/devices/system/cpu/possible") as f:
        return parse_cpu_list(f.read())


def possible_cpu_count() -> int:
    return max(possible_cpus()) + 1


def online_cpus() -> list[int]:
    with open("/sys/devices/system/cpu/online") as f:
        return parse_cpu_list(f.read())
