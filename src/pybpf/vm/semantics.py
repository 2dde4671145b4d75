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


def alu64(op: int, a: int, b: int, off: int) -> int:
    """dst = dst OP src for the 64-bit class; ``b`` is the (sign-extended) operand."""
    if op == AluOp.ADD:
        return (a + b) & M64
    if op == AluOp.SUB:
        return (a - b) & M64
    if op == AluOp.MUL:
        return (a * b) & M64
    if op == AluOp.DIV:
        if b == 0:
            return 0
        return (_tdiv(s64(a), s64(b)) & M64) if off else a // b
    if op == AluOp.MOD:
        if b == 0:
            return a
        return (_tmod(s64(a), s64(b)) & M64) if off else a % b
    if op == AluOp.OR:
        return a | b
    if op == AluOp.AND:
        return a & b
    if op == AluOp.XOR:
        return a ^ b
    if op == AluOp.LSH:
        return (a << (b & 63)) & M64
    if op == AluOp.RSH:
        return a >> (b & 63)
    if op == AluOp.ARSH:
        return (s64(a) >> (b & 63)) & M64
    if op == AluOp.MOV:
        return sext(b, off) & M64 if off else b
    raise ValueError(f"not a binary ALU operation: {op:#x}")


def alu32(op: int, a: int, b: int, off: int) -> int:
    """dst = (u32)(dst OP src) for the 32-bit class; the result is zero-extended."""
    a &= M32
    b &= M32
    if op == AluOp.ADD:
        return (a + b) & M32
    if op == AluOp.SUB:
        return (a - b) & M32
    if op == AluOp.MUL:
        return (a * b) & M32
    if op == AluOp.DIV:
        if b == 0:
            return 0
        return (_tdiv(s32(a), s32(b)) & M32) if off else a // b
    if op == AluOp.MOD:
        if b == 0:
            return a
        return (_tmod(s32(a), s32(b)) & M32) if off else a % b
    if op == AluOp.OR:
        return a | b
    if op == AluOp.AND:
        return a & b
    if op == AluOp.XOR:
        return a ^ b
    if op == AluOp.LSH:
        return (a << (b & 31)) & M32
    if op == AluOp.RSH:
        return a >> (b & 31)
    if op == AluOp.ARSH:
        return (s32(a) >> (b & 31)) & M32
    if op == AluOp.MOV:
        return sext(b, off) & M32 if off else b
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
