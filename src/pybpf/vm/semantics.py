"""What each ALU and jump operation computes (RFC 9669 + Linux), as small pure functions.

The reference interpreter calls these; the compiler to Python emits inline code
that must agree with them, and the tests cross-check the two engines.  Values
are unsigned Python ints below 2**64 (2**32 for the 32-bit class).
"""

from __future__ import annotations

from ..isa.opcodes import AluOp, JmpOp

M64 = (1 << 64) - 1
M32 = (1 << 32) - 1
T64 = 1 << 64
T32 = 1 << 32


def s64(v: int) -> int:
    return v - T64 if v >> 63 else v


def s32(v: int) -> int:
    v &= M32
    return v - T32 if v >> 31 else v


def sext(v: int, bits: int) -> int:
    """Sign-extend the low ``bits`` of ``v`` to a Python int."""
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


def _tdiv(a: int, b: int) -> int:
    """C division: truncate toward zero."""
    q = abs(a) // abs(b)
    return -q if (a < 0) != (b < 0) else q


def _tmod(a: int, b: int) -> int:
    """C remainder: takes the sign of the dividend."""
    r = abs(a) % abs(b)
    return -r if a < 0 else r


def alu(op: int, a: int, b: int, off: int, bits: int) -> int:
    """dst = dst OP src in a ``bits``-wide register (64 for the ALU64 class, 32 for ALU).

    ``b`` is the (sign-extended) operand; the 32-bit class works on the low halves and
    its result is zero-extended, so one body serves both widths."""
    mask = (1 << bits) - 1
    a &= mask
    b &= mask
    if op == AluOp.ADD:
        return (a + b) & mask
    if op == AluOp.SUB:
        return (a - b) & mask
    if op == AluOp.MUL:
        return (a * b) & mask
    if op == AluOp.DIV:
        if b == 0:
            return 0
        return (_tdiv(sext(a, bits), sext(b, bits)) & mask) if off else a // b
    if op == AluOp.MOD:
        if b == 0:
            return a
        return (_tmod(sext(a, bits), sext(b, bits)) & mask) if off else a % b
    if op == AluOp.OR:
        return a | b
    if op == AluOp.AND:
        return a & b
    if op == AluOp.XOR:
        return a ^ b
    if op == AluOp.LSH:
        return (a << (b & (bits - 1))) & mask
    if op == AluOp.RSH:
        return a >> (b & (bits - 1))
    if op == AluOp.ARSH:
        return (sext(a, bits) >> (b & (bits - 1))) & mask
    if op == AluOp.MOV:
        return sext(b, off) & mask if off else b
    raise ValueError(f"not a binary ALU operation: {op:#x}")


def bswap(v: int, bits: int) -> int:
    return int.from_bytes((v & ((1 << bits) - 1)).to_bytes(bits // 8, "little"), "big")


def endian(to_big: bool, a: int, bits: int) -> int:
    """le16/32/64 truncate (the host is little-endian); be16/32/64 and bswap swap bytes."""
    return bswap(a, bits) if to_big else a & ((1 << bits) - 1)


def condition(op: int, a: int, b: int, wide: bool) -> bool:
    """Whether a conditional jump is taken; ``wide`` False compares the low 32 bits."""
    if not wide:
        a &= M32
        b &= M32
        sa, sb = s32(a), s32(b)
    else:
        sa, sb = s64(a), s64(b)
    if op == JmpOp.JEQ:
        return a == b
    if op == JmpOp.JNE:
        return a != b
    if op == JmpOp.JGT:
        return a > b
    if op == JmpOp.JGE:
        return a >= b
    if op == JmpOp.JLT:
        return a < b
    if op == JmpOp.JLE:
        return a <= b
    if op == JmpOp.JSET:
        return bool(a & b)
    if op == JmpOp.JSGT:
        return sa > sb
    if op == JmpOp.JSGE:
        return sa >= sb
    if op == JmpOp.JSLT:
        return sa < sb
    if op == JmpOp.JSLE:
        return sa <= sb
    raise ValueError(f"not a conditional jump: {op:#x}")


def atomic(op: int, old: int, value: int, size: int) -> int:
    """The new memory value of an atomic read-modify-write (add/or/and/xor/xchg)."""
    mask = M64 if size == 8 else M32
    base = op & ~1
    if op == 0xE1:  # xchg
        return value & mask
    if base == 0x00:
        return (old + value) & mask
    if base == 0x40:
        return old | (value & mask)
    if base == 0x50:
        return old & value
    if base == 0xA0:
        return old ^ (value & mask)
    raise ValueError(f"not an atomic operation: {op:#x}")
