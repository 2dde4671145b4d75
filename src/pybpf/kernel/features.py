"""Feature probes: does this kernel offer map type X, program type Y, helper Z?

Each probe creates the smallest possible object (a one-entry map, a two
instruction program) and looks at how the kernel answers; results are cached
for the life of the process.  Errors use them to tell "your kernel lacks this"
from "your arguments are wrong".
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
from functools import cache

from ..errors import NotSupportedError
from .syscall import bpf_errno, kernel_error, CAP_BPF
from .uapi import (
    ENOTSUPP, HELPER_IDS, HELPERS, MAP_TYPE_MIN_KERNEL, PROG_TYPE_MIN_KERNEL, AttachType, Cmd, MapCreateAttr,
    MapFlags, MapType, ProgFlags, ProgLoadAttr, ProgType,
)

_MOV_R0_0 = struct.pack("<BBhi", 0xB7, 0, 0, 0)
_EXIT = struct.pack("<BBhi", 0x95, 0, 0, 0)
_LICENSE = ctypes.create_string_buffer(b"GPL")

# Program types that only load with a specific expected attach type.
_PROBE_ATTACH = {
    ProgType.CGROUP_SOCK_ADDR: AttachType.CGROUP_INET4_CONNECT,
    ProgType.SK_LOOKUP: AttachType.SK_LOOKUP,
    ProgType.CGROUP_SOCKOPT: AttachType.CGROUP_GETSOCKOPT,
    ProgType.NETFILTER: AttachType.NETFILTER,
}
# Types that cannot load without a BTF attach target: a verifier log proves the type exists.
_NEEDS_TARGET = frozenset({ProgType.TRACING, ProgType.EXT, ProgType.LSM, ProgType.STRUCT_OPS})


def kernel_release() -> str:
    return os.uname().release


def kernel_version() -> tuple[int, int, int]:
    """(major, minor, patch) of the running kernel, from uname."""
    parts = []
    for piece in kernel_release().split("-")[0].split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    while len(parts) < 3:
        parts.append(0)
    return parts[0], parts[1], parts[2]


def kernel_version_code() -> int:
    """LINUX_VERSION_CODE of the running kernel (kprobe programs of old kernels check it)."""
    major, minor, patch = kernel_version()
    return (major << 16) | (minor << 8) | min(patch, 255)


def _probe_map_attr(map_type: MapType) -> tuple[MapCreateAttr, list]:
    keep: list = []
    attr = MapCreateAttr(map_type=int(map_type), key_size=4, value_size=4, max_entries=1)
    if map_type == MapType.LPM_TRIE:
        attr.key_size, attr.value_size, attr.map_flags = 8, 8, MapFlags.NO_PREALLOC
    elif map_type in (MapType.QUEUE, MapType.STACK, MapType.BLOOM_FILTER):
        attr.key_size = 0
    elif map_type in (MapType.RINGBUF, MapType.USER_RINGBUF):
        attr.key_size = attr.value_size = 0
        attr.max_entries = os.sysconf("SC_PAGE_SIZE")
    elif map_type == MapType.ARENA:
        attr.key_size = attr.value_size = 0
        attr.map_flags = MapFlags.MMAPABLE
    elif map_type == MapType.STACK_TRACE:
        attr.value_size = 8
    elif map_type in (MapType.CGROUP_STORAGE, MapType.PERCPU_CGROUP_STORAGE):
        attr.key_size, attr.value_size, attr.max_entries = 16, 8, 0
    elif map_type in (MapType.SK_STORAGE, MapType.INODE_STORAGE, MapType.TASK_STORAGE, MapType.CGRP_STORAGE):
        from .btf_object import KernelBTF, minimal_btf

        data, key_id, value_id = minimal_btf(8)
        btf = KernelBTF.load(data)
        keep.append(btf)
        attr.value_size, attr.max_entries, attr.map_flags = 8, 0, MapFlags.NO_PREALLOC
        attr.btf_fd, attr.btf_key_type_id, attr.btf_value_type_id = btf.fd, key_id, value_id
    elif map_type in (MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS):
        inner = MapCreateAttr(map_type=int(MapType.ARRAY), key_size=4, value_size=4, max_entries=1)
        fd, err = bpf_errno(Cmd.MAP_CREATE, inner)
        if err:
            raise kernel_error(err, "cannot probe map-in-map support", (CAP_BPF,))
        keep.append(fd)
        attr.inner_map_fd = fd
    elif map_type == MapType.STRUCT_OPS:
        attr.btf_vmlinux_value_type_id = 1
    return attr, keep


@cache
def supports_map_type(map_type: MapType) -> bool:
    """Whether BPF_MAP_CREATE knows ``map_type`` (creates a tiny map of it)."""
    attr, keep = _probe_map_attr(MapType(map_type))
    try:
        fd, err = bpf_errno(Cmd.MAP_CREATE, attr)
    finally:
        for k in keep:
            k.close() if hasattr(k, "close") else os.close(k)
    if fd >= 0:
        os.close(fd)
        return True
    if err in (errno.EPERM, errno.EACCES):
        raise kernel_error(err, f"cannot probe BPF_MAP_TYPE_{MapType(map_type).name}", (CAP_BPF,))
    if map_type == MapType.STRUCT_OPS:
        return err == ENOTSUPP  # it exists, but type id 1 is no struct_ops type
    return err not in (errno.EINVAL, errno.E2BIG, errno.EOPNOTSUPP, ENOTSUPP)


def _load(prog_type: int, insns: bytes, expected_attach_type: int = 0, flags: int = 0) -> tuple[int, int, str]:
    code = ctypes.create_string_buffer(insns, len(insns))
    log = ctypes.create_string_buffer(64 * 1024)
    attr = ProgLoadAttr(prog_type=prog_type, insn_cnt=len(insns) // 8, insns=ctypes.addressof(code),
                        license=ctypes.addressof(_LICENSE), log_level=1, log_size=len(log),
                        log_buf=ctypes.addressof(log), expected_attach_type=expected_attach_type, prog_flags=flags)
    fd, err = bpf_errno(Cmd.PROG_LOAD, attr)
    if fd >= 0:
        os.close(fd)
    return fd, err, log.value.decode(errors="replace")


def _probe_load(prog_type: ProgType, insns: bytes) -> tuple[int, int, str]:
    flags = ProgFlags.SLEEPABLE if prog_type == ProgType.SYSCALL else 0
    return _load(int(prog_type), insns, int(_PROBE_ATTACH.get(prog_type, 0)), int(flags))


@cache
def supports_prog_type(prog_type: ProgType) -> bool:
    """Whether BPF_PROG_LOAD knows ``prog_type`` (loads ``r0 = 0; exit``)."""
    fd, err, log = _probe_load(ProgType(prog_type), _MOV_R0_0 + _EXIT)
    if fd >= 0:
        return True
    if log:
        return True  # the verifier ran: the type exists (it only lacked an attach target)
    if err in (errno.EPERM, errno.EACCES) and prog_type not in _NEEDS_TARGET:
        raise kernel_error(err, f"cannot probe BPF_PROG_TYPE_{ProgType(prog_type).name}", (CAP_BPF,))
    return err not in (errno.EINVAL, errno.E2BIG, errno.EOPNOTSUPP, ENOTSUPP)


@cache
def supports_helper(prog_type: ProgType, helper: int | str) -> bool:
    """Whether programs of ``prog_type`` may call ``helper`` (a name like 'ringbuf_output' or an id)."""
    helper_id = HELPER_IDS[helper.removeprefix("bpf_")] if isinstance(helper, str) else helper
    call = struct.pack("<BBhi", 0x85, 0, 0, helper_id)
    fd, err, log = _probe_load(ProgType(prog_type), call + _MOV_R0_0 + _EXIT)
    if fd >= 0:
        return True
    return not ("invalid func " in log or "unknown func " in log or "program of this type cannot use helper" in log)


def require_map_type(map_type: MapType) -> None:
    if not supports_map_type(map_type):
        raise NotSupportedError(f"BPF_MAP_TYPE_{MapType(map_type).name} maps", MAP_TYPE_MIN_KERNEL.get(MapType(map_type)))


def require_prog_type(prog_type: ProgType) -> None:
    if not supports_prog_type(prog_type):
        raise NotSupportedError(f"BPF_PROG_TYPE_{ProgType(prog_type).name} programs",
                                PROG_TYPE_MIN_KERNEL.get(ProgType(prog_type)))


def helper_name(helper_id: int) -> str:
    return f"bpf_{HELPERS[helper_id]}" if 0 <= helper_id < len(HELPERS) else f"helper#{helper_id}"
