"""BTF loaded into the kernel (BPF_BTF_LOAD): the fd maps and programs refer to.

Parsing and writing BTF is :mod:`pybpf.btf`'s job; this module only hands bytes
to the kernel and reports its verdict with the kernel's BTF log.
"""

from __future__ import annotations

import ctypes
import struct
from dataclasses import dataclass

from ..errors import BTFLoadError
from .fd import FDObject
from .syscall import CAP_BPF, bpf_errno, fd_by_id, obj_info, permission_error
from .uapi import BTFInfoStruct, BTFLoadAttr, Cmd
from .verifier import run_with_log, summary


@dataclass(frozen=True)
class BTFInfo:
    id: int
    size: int
    name: str
    kernel_btf: bool


def btf_info(fd: int) -> BTFInfo:
    """BPF_OBJ_GET_INFO_BY_FD of a BTF fd (the fd stays the caller's)."""
    name = ctypes.create_string_buffer(64)

    def prepare(info: BTFInfoStruct) -> None:
        info.name = ctypes.addressof(name)
        info.name_len = len(name)

    info = obj_info(fd, BTFInfoStruct, "BTF object", prepare)
    return BTFInfo(info.id, info.btf_size, name.value.decode(), bool(info.kernel_btf))


class KernelBTF(FDObject):
    """A BTF object living in the kernel; pass it as ``btf=`` to Map.create / Program.load."""

    kind = "BTF"

    def __init__(self, fd: int, log: str = ""):
        super().__init__(fd)
        self.log = log
        self.name = ""

    @classmethod
    def load(cls, data: bytes | bytearray | memoryview, *, log_level: int = 0) -> "KernelBTF":
        """Load raw BTF (header, types, strings).  The kernel's log is kept in ``.log`` when asked for."""
        raw = bytes(data)
        buf = ctypes.create_string_buffer(raw, len(raw))

        def attempt(level: int, log_buf: int, log_size: int) -> tuple[int, int, int]:
            attr = BTFLoadAttr(btf=ctypes.addressof(buf), btf_size=len(raw), btf_log_buf=log_buf,
                               btf_log_size=log_size, btf_log_level=level)
            fd, err = bpf_errno(Cmd.BTF_LOAD, attr)
            return fd, err, attr.btf_log_true_size

        fd, err, log = run_with_log(attempt, log_level)
        if err in (1, 13) and not log:
            raise permission_error(err, "cannot load BTF into the kernel", (CAP_BPF,))
        if err:
            reason = summary(log) if log else "no log from the kernel"
            raise BTFLoadError(err, f"the kernel rejected BTF ({len(raw)} bytes): {reason}", log)
        return cls(fd, log)

    @classmethod
    def from_id(cls, btf_id: int) -> "KernelBTF":
        return cls(fd_by_id(Cmd.BTF_GET_FD_BY_ID, btf_id, "BTF object"))

    @classmethod
    def from_fd(cls, fd: int) -> "KernelBTF":
        """Take ownership of a BTF fd."""
        return cls(fd)

    def info(self) -> BTFInfo:
        return btf_info(self.fd)

    def data(self) -> bytes:
        """The raw BTF as the kernel holds it (for vmlinux or module BTF, fetched by id)."""
        size = self.info().size
        out = ctypes.create_string_buffer(size)

        def prepare(info: BTFInfoStruct) -> None:
            info.btf = ctypes.addressof(out)
            info.btf_size = size

        obj_info(self.fd, BTFInfoStruct, "BTF object", prepare)
        return out.raw

    @property
    def id(self) -> int:
        return self.info().id


# --- a minimal BTF blob, for feature probes and maps that insist on BTF ------

BTF_MAGIC = 0xEB9F
_KIND_INT, _KIND_STRUCT = 1, 4


def minimal_btf(value_size: int = 8) -> tuple[bytes, int, int]:
    """BTF with ``int`` (type 1) and ``struct value { int v[...] }`` (type 2) of ``value_size`` bytes.

    Storage maps (task/inode/sk/cgroup) refuse to exist without BTF key/value
    types; this blob is enough for probing them and for tests.  Returns
    (bytes, key type id, value type id).  ``value_size`` must be a multiple of 4.
    """
    strings = b"\0int\0value\0"
    int_name, struct_name = 1, 5
    members = value_size // 4
    types = struct.pack("<III", int_name, _KIND_INT << 24, 4) + struct.pack("<I", (1 << 24) | 32)
    types += struct.pack("<III", struct_name, (_KIND_STRUCT << 24) | members, value_size)
    for i in range(members):
        types += struct.pack("<III", 0, 1, i * 32)  # anonymous int members
    header = struct.pack("<HBBIIIII", BTF_MAGIC, 1, 0, 24, 0, len(types), len(types), len(strings))
    return header + types + strings, 1, 2
