"""Classic BPF instructions (struct sock_filter): the BSD packet filter's encoding.

Shared by the filter compiler, the validator and interpreter, the cBPF->eBPF
converter and seccomp, so it holds only the encoding and the constants.
"""

from __future__ import annotations

import ctypes
import struct
from typing import NamedTuple

# classes
LD, LDX, ST, STX, ALU, JMP, RET, MISC = 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07
# ld/ldx sizes
W, H, B = 0x00, 0x08, 0x10
# ld/ldx modes
IMM, ABS, IND, MEM, LEN, MSH = 0x00, 0x20, 0x40, 0x60, 0x80, 0xA0
# alu ops
ADD, SUB, MUL, DIV, OR, AND, LSH, RSH, NEG, MOD, XOR = 0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90, 0xA0
# jmp ops
JA, JEQ, JGT, JGE, JSET = 0x00, 0x10, 0x20, 0x30, 0x40
# operand source
K, X = 0x00, 0x08
# ret operand (besides K and X)
A = 0x10
# misc ops
TAX, TXA = 0x00, 0x80

MEMWORDS = 16  # scratch memory M[0..15]
MAXINSNS = 4096  # BPF_MAXINSNS in the kernel

# Linux ancillary data: ld [SKF_AD_OFF + n] loads metadata instead of packet bytes.
SKF_AD_OFF = -0x1000
SKF_NET_OFF = -0x100000
SKF_LL_OFF = -0x200000
SKF_AD = {
    "protocol": 0, "pkttype": 4, "ifindex": 8, "nlattr": 12, "nlattr_nest": 16, "mark": 20, "queue": 24,
    "hatype": 28, "rxhash": 32, "cpu": 36, "alu_xor_x": 40, "vlan_tci": 44, "vlan_avail": 48,
    "pay_offset": 52, "random": 56, "vlan_tpid": 60,
}

_STRUCT = struct.Struct("<HBBI")


def cls(code: int) -> int:
    return code & 0x07


def size(code: int) -> int:
    return code & 0x18


def mode(code: int) -> int:
    return code & 0xE0


def op(code: int) -> int:
    return code & 0xF0


def src(code: int) -> int:
    return code & 0x08


def rval(code: int) -> int:
    return code & 0x18


class CInsn(NamedTuple):
    """One struct sock_filter: 16-bit code, 8-bit jump offsets, 32-bit k (unsigned)."""

    code: int
    jt: int = 0
    jf: int = 0
    k: int = 0

    def encode(self) -> bytes:
        return _STRUCT.pack(self.code, self.jt, self.jf, self.k & 0xFFFFFFFF)

    @classmethod
    def decode(cls, data: bytes, offset: int = 0) -> "CInsn":
        return cls(*_STRUCT.unpack_from(data, offset))


def encode_program(insns: list[CInsn]) -> bytes:
    return b"".join(i.encode() for i in insns)


def decode_program(data: bytes) -> list[CInsn]:
    from ..errors import FormatError

    if len(data) % _STRUCT.size:
        raise FormatError(f"classic BPF program length {len(data)} is not a multiple of 8")
    return [CInsn.decode(data, off) for off in range(0, len(data), _STRUCT.size)]


def sock_fprog(insns: list[CInsn]) -> tuple[bytes, ctypes.Array]:
    """struct sock_fprog {len, filter} for SO_ATTACH_FILTER or seccomp(), and the array it points to.

    Keep the second value alive until the kernel has copied the program (the
    end of the setsockopt/seccomp call).
    """
    code = encode_program(insns)
    array = ctypes.create_string_buffer(code, len(code))
    return struct.pack("HL", len(insns), ctypes.addressof(array)), array
