"""Instruction text as the kernel prints it (verifier log, ``bpftool prog dump xlated``).

``(bf) r6 = r1``, ``(85) call bpf_map_lookup_elem#1``, ``(15) if r0 == 0x0 goto
pc+2``: the format of the kernel's kernel/bpf/disasm.c (Linux 6.18), which
the verifier log uses and bpftool copies.  Like the kernel, the formatter
takes two hooks (like its ``bpf_insn_cbs``) so a caller that knows more can
name things: ``call_name`` for call targets (``bpf_obj_new_impl#123``,
``+5#subprog``) and ``imm_name`` for ld_imm64 (``map[id:5]``).  The default ``imm_name`` prints
what bpftool prints for maps and subprograms, so the text keeps src_reg.
"""

from __future__ import annotations

from typing import Callable

from .helpers import helper_name
from .instruction import Instruction
from .opcodes import (
    ADDR_SPACE_CAST_OFF, CLASS_MASK, LD_IMM64, MODE_MASK, OP_MASK, SIZE_MASK, AluOp, AtomicOp, Class, JmpOp, Mode,
    PseudoCall, PseudoLoad, Size, Source,
)

CallName = Callable[[Instruction], "str | None"]
ImmName = Callable[[Instruction], "str | None"]

_ALU = {
    AluOp.ADD: "+=", AluOp.SUB: "-=", AluOp.MUL: "*=", AluOp.DIV: "/=", AluOp.OR: "|=", AluOp.AND: "&=",
    AluOp.LSH: "<<=", AluOp.RSH: ">>=", AluOp.MOD: "%=", AluOp.XOR: "^=", AluOp.MOV: "=", AluOp.ARSH: "s>>=",
}
_SIGNED_ALU = {AluOp.DIV: "s/=", AluOp.MOD: "s%="}
_MOVSX = {8: "(s8)", 16: "(s16)", 32: "(s32)"}
_JMP = {
    JmpOp.JEQ: "==", JmpOp.JGT: ">", JmpOp.JLT: "<", JmpOp.JGE: ">=", JmpOp.JLE: "<=", JmpOp.JSET: "&",
    JmpOp.JNE: "!=", JmpOp.JSGT: "s>", JmpOp.JSLT: "s<", JmpOp.JSGE: "s>=", JmpOp.JSLE: "s<=",
}
_LDST = {Size.W: "u32", Size.H: "u16", Size.B: "u8", Size.DW: "u64"}
_LDSX = {Size.W: "s32", Size.H: "s16", Size.B: "s8"}
_ATOMIC_NAMES = {AtomicOp.ADD: "add", AtomicOp.AND: "and", AtomicOp.OR: "or", AtomicOp.XOR: "xor"}


def bpftool_imm_name(insn: Instruction) -> str | None:
    """ld_imm64 operands as ``bpftool prog dump xlated`` names them.

    bpftool prints src_reg 3 (BTF id) and 5 (map index) as plain numbers; pybpf
    names them ``btf_id[N]`` and ``map[idx:N]`` so that no src_reg is lost.
    """
    src, lo, hi = insn.src, insn.imm & 0xFFFFFFFF, insn.imm >> 32
    if src == PseudoLoad.MAP_FD:
        return f"map[id:{lo}]"
    if src == PseudoLoad.MAP_VALUE:
        return f"map[id:{lo}][0]+{hi}"
    if src == PseudoLoad.MAP_IDX_VALUE:
        return f"map[idx:{lo}]+{hi}"
    if src == PseudoLoad.FUNC:
        return f"subprog[{_s32(lo):+d}]"
    if src == PseudoLoad.MAP_IDX:
        return f"map[idx:{lo}]"
    if src == PseudoLoad.BTF_ID:
        return f"btf_id[{lo}]" + (f"[fd:{hi}]" if hi else "")
    return None


def _s32(value: int) -> int:
    return value - (1 << 32) if value & 0x80000000 else value


def _call_target(insn: Instruction) -> str:
    """The kernel's own text after "call " (its __func_get_name without a callback)."""
    if insn.src == PseudoCall.CALL:
        return f"{insn.imm:+d}"
    if insn.src == PseudoCall.HELPER:
        name = helper_name(insn.imm)
        return f"{name or 'unknown'}#{insn.imm}"
    return f"kernel-function#{insn.imm}"


def format_kernel(insn: Instruction, *, call_name: CallName | None = None,
                  imm_name: ImmName | None = bpftool_imm_name) -> str:
    """``(bf) r1 = r10``: one instruction as the verifier log prints it.

    ``call_name(insn)`` may return the text after ``call `` (``call pc`` for a
    bpf-to-bpf call): ``bpf_map_lookup_elem#1``, ``+5#subprog``; None keeps the
    kernel's own (helper names from the table, ``kernel-function#ID``,
    ``unknown#N``).  ``imm_name(insn)`` may return the operand of an ld_imm64;
    None keeps the number.
    """
    op, d, s, o, i = insn.opcode, insn.dst, insn.src, insn.off, insn.imm
    cls = op & CLASS_MASK
    code = f"({op:02x})"
    if cls in (Class.ALU, Class.ALU64):
        r = "w" if cls == Class.ALU else "r"
        alu = op & OP_MASK
        if alu == AluOp.END:
            if cls == Class.ALU64:
                return f"{code} r{d} = bswap{i} r{d}"
            return f"{code} r{d} = {'be' if op & Source.X else 'le'}{i} r{d}"
        if alu == AluOp.NEG:
            return f"{code} {r}{d} = -{r}{d}"
        if op == Class.ALU64 | AluOp.MOV | Source.X and o == ADDR_SPACE_CAST_OFF:
            return f"{code} r{d} = addr_space_cast(r{s}, {(i & 0xFFFFFFFF) >> 16}, {i & 0xFFFF})"
        symbol = _SIGNED_ALU[alu] if alu in _SIGNED_ALU and o == 1 else _ALU[alu]
        if op & Source.X:
            cast = _MOVSX.get(o, "") if alu == AluOp.MOV else ""
            return f"{code} {r}{d} {symbol} {cast}{r}{s}"
        return f"{code} {r}{d} {symbol} {i}"
    size = op & SIZE_MASK
    mode = op & MODE_MASK
    if cls == Class.STX:
        if mode == Mode.MEM:
            return f"{code} *({_LDST[size]} *)(r{d} {o:+d}) = r{s}"
        width = "64" if size == Size.DW else ""
        if i in _ATOMIC_NAMES:
            return f"{code} lock *({_LDST[size]} *)(r{d} {o:+d}) {_ALU[i]} r{s}"
        if i & 0xF0 in _ATOMIC_NAMES and i & ~0xF0 == 1:
            return (f"{code} r{s} = atomic{width}_fetch_{_ATOMIC_NAMES[i & 0xF0]}"
                    f"(({_LDST[size]} *)(r{d} {o:+d}), r{s})")
        if i == AtomicOp.CMPXCHG:
            return f"{code} r0 = atomic{width}_cmpxchg(({_LDST[size]} *)(r{d} {o:+d}), r0, r{s})"
        if i == AtomicOp.XCHG:
            return f"{code} r{s} = atomic{width}_xchg(({_LDST[size]} *)(r{d} {o:+d}), r{s})"
        if i == AtomicOp.LOAD_ACQ:
            return f"{code} r{d} = load_acquire(({_LDST[size]} *)(r{s} {o:+d}))"
        return f"{code} store_release(({_LDST[size]} *)(r{d} {o:+d}), r{s})"
    if cls == Class.ST:
        return f"{code} *({_LDST[size]} *)(r{d} {o:+d}) = {i}"
    if cls == Class.LDX:
        kind = _LDST[size] if mode == Mode.MEM else _LDSX[size]
        return f"{code} r{d} = *({kind} *)(r{s} {o:+d})"
    if cls == Class.LD:
        if mode == Mode.ABS:
            return f"{code} r0 = *({_LDST[size]} *)skb[{i}]"
        if mode == Mode.IND:
            return f"{code} r0 = *({_LDST[size]} *)skb[r{s} + {i}]"
        name = imm_name(insn) if imm_name is not None and op == LD_IMM64 else None
        return f"{code} r{d} = {name or f'{i:#x}'}"
    # JMP and JMP32
    jop = op & OP_MASK
    if jop == JmpOp.CALL:
        if op & Source.X:  # callx is not in the kernel's printer; follow its style
            return f"{code} callx r{d}"
        target = call_name(insn) if call_name is not None else None
        if not target:
            target = _call_target(insn)
        return f"{code} call pc{target}" if s == PseudoCall.CALL else f"{code} call {target}"
    if op == Class.JMP | JmpOp.JA:
        return f"{code} goto pc{o:+d}"
    if op == Class.JMP | JmpOp.JCOND:
        return f"{code} may_goto pc{o:+d}"
    if op == Class.JMP32 | JmpOp.JA:
        return f"{code} gotol pc{i:+d}"
    if jop == JmpOp.EXIT:
        return f"{code} exit"
    r = "w" if cls == Class.JMP32 else "r"
    if op & Source.X:
        return f"{code} if {r}{d} {_JMP[jop]} {r}{s} goto pc{o:+d}"
    return f"{code} if {r}{d} {_JMP[jop]} {i & 0xFFFFFFFF:#x} goto pc{o:+d}"
