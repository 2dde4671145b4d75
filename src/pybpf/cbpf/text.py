"""tcpdump's three listings of a cBPF program: -d (bpf_image), -dd (C array), -ddd (decimal).

Byte-for-byte the same text as libpcap's bpf_image()/bpf_dump(), so output can
be diffed against `tcpdump -d` directly.
"""

from __future__ import annotations

from . import insn as I
from .insn import CInsn

# Linux ancillary loads (ld [SKF_AD_OFF + n]) are shown by name.
_ANCILLARY = {0: "proto", 4: "type", 8: "ifidx", 12: "nla", 16: "nlan", 20: "mark", 24: "queue", 28: "hatype",
              32: "rxhash", 36: "cpu", 40: "xor_x", 44: "vlan_tci", 48: "vlanp", 52: "poff", 56: "random",
              60: "vlan_tpid"}
_SKF_AD_OFF = I.SKF_AD_OFF & 0xFFFFFFFF
_SKF_AD_MAX = 64

_SIZE_NAMES = {I.W: "ld", I.H: "ldh", I.B: "ldb"}
_ALU_NAMES = {I.ADD: "add", I.SUB: "sub", I.MUL: "mul", I.DIV: "div", I.MOD: "mod", I.AND: "and", I.OR: "or",
              I.XOR: "xor", I.LSH: "lsh", I.RSH: "rsh"}
_JMP_NAMES = {I.JGT: "jgt", I.JGE: "jge", I.JEQ: "jeq", I.JSET: "jset"}


def _signed(k: int) -> int:
    return k - (1 << 32) if k & 0x80000000 else k


def _abs_operand(k: int) -> str:
    if _SKF_AD_OFF <= k < _SKF_AD_OFF + _SKF_AD_MAX and (k - _SKF_AD_OFF) in _ANCILLARY:
        return f"[{_ANCILLARY[k - _SKF_AD_OFF]}]"
    return f"[{_signed(k)}]"


def _op_operand(ins: CInsn, n: int) -> tuple[str, str]:
    code, k = ins.code, ins.k
    if code > 0xFF:
        return "unimp", f"0x{code:x}"
    cls = I.cls(code)
    if code == I.RET | I.K:
        return "ret", f"#{_signed(k)}"
    if code == I.RET | I.A:
        return "ret", ""
    if cls == I.LD:
        mode, size = I.mode(code), I.size(code)
        if mode == I.ABS and size in _SIZE_NAMES:
            return _SIZE_NAMES[size], _abs_operand(k)
        if mode == I.IND and size in _SIZE_NAMES:
            return _SIZE_NAMES[size], f"[x + {_signed(k)}]"
        if code == I.LD | I.W | I.LEN:
            return "ld", "#pktlen"
        if code == I.LD | I.IMM:
            return "ld", f"#0x{k:x}"
        if code == I.LD | I.MEM:
            return "ld", f"M[{_signed(k)}]"
    if code == I.LDX | I.IMM:
        return "ldx", f"#0x{k:x}"
    if code == I.LDX | I.MSH | I.B:
        return "ldxb", f"4*([{_signed(k)}]&0xf)"
    if code == I.LDX | I.MEM:
        return "ldx", f"M[{_signed(k)}]"
    if code == I.ST:
        return "st", f"M[{_signed(k)}]"
    if code == I.STX:
        return "stx", f"M[{_signed(k)}]"
    if code == I.JMP | I.JA:
        return "ja", f"{_signed((n + 1 + k) & 0xFFFFFFFF)}"
    if cls == I.JMP and I.op(code) in _JMP_NAMES and code == (I.JMP | I.op(code) | I.src(code)):
        return _JMP_NAMES[I.op(code)], ("x" if I.src(code) == I.X else f"#0x{k:x}")
    if cls == I.ALU:
        op = I.op(code)
        if code == I.ALU | I.NEG:
            return "neg", ""
        if op in _ALU_NAMES and code == (I.ALU | op | I.src(code)):
            if I.src(code) == I.X:
                return _ALU_NAMES[op], "x"
            if op in (I.AND, I.OR, I.XOR):
                return _ALU_NAMES[op], f"#0x{k:x}"
            return _ALU_NAMES[op], f"#{_signed(k)}"
    if code == I.MISC | I.TAX:
        return "tax", ""
    if code == I.MISC | I.TXA:
        return "txa", ""
    return "unimp", f"0x{code:x}"


def image(ins: CInsn, n: int) -> str:
    """One line of `tcpdump -d`: `(000) ldh      [12]`."""
    op, operand = _op_operand(ins, n)
    if I.cls(ins.code) == I.JMP and I.op(ins.code) != I.JA:
        return f"({n:03d}) {op:<8} {operand:<16} jt {n + 1 + ins.jt}\tjf {n + 1 + ins.jf}"
    return f"({n:03d}) {op:<8} {operand}"


def dump(program: list[CInsn], level: int = 1) -> str:
    """The whole listing: level 1 is -d, 2 is -dd, 3 is -ddd (each line newline-terminated)."""
    if level >= 3:
        lines = [str(len(program))] + [f"{i.code} {i.jt} {i.jf} {i.k}" for i in program]
    elif level == 2:
        lines = [f"{{ 0x{i.code:x}, {i.jt}, {i.jf}, 0x{i.k:08x} }}," for i in program]
    else:
        lines = [image(i, n) for n, i in enumerate(program)]
    return "".join(line + "\n" for line in lines)
