"""Instruction text in LLVM's BPF assembly syntax (what llvm-objdump prints).

Two views of the same syntax:

* :func:`objdump_text` reproduces ``llvm-objdump-19 -d`` exactly, working on raw
  fields because it must also show what LLVM does with odd encodings: it
  ignores some reserved fields, knows registers r0-r11, and prints
  ``<unknown>`` (None here) for what its default decoder lacks - 32-bit
  fetching atomics, load-acquire, src_reg of a call...
* :func:`format_llvm` is for valid :class:`Instruction` objects and is
  lossless: where objdump's text would be ambiguous or missing it writes a
  form pybpf's assembler maps back to the same bytes (``w2 =
  atomic_fetch_add((u32 *)(r1 + 0x0), w2)`` as ``--mattr=+alu32`` prints,
  ``call +0x3`` for a pc-relative call, ...).  Everything else is identical.

Both are table-driven: one formatter per opcode byte, built once.
"""

from __future__ import annotations

from typing import Callable

from .instruction import Instruction
from .opcodes import (
    ADDR_SPACE_CAST_OFF, CALL, CLASS_MASK, LD_IMM64, MODE_MASK, OP_MASK, SIZE_MASK, AluOp, AtomicOp, Class, JmpOp,
    Mode, PseudoCall, Size, Source,
)

# LLVM's BPF register file has r0-r11; a register field of 12-15 does not decode.
LLVM_REGISTERS = 12

ALU_SYMBOLS = {
    AluOp.ADD: "+=", AluOp.SUB: "-=", AluOp.MUL: "*=", AluOp.DIV: "/=", AluOp.OR: "|=", AluOp.AND: "&=",
    AluOp.LSH: "<<=", AluOp.RSH: ">>=", AluOp.MOD: "%=", AluOp.XOR: "^=", AluOp.ARSH: "s>>=", AluOp.MOV: "=",
}
SIGNED_ALU_SYMBOLS = {AluOp.DIV: "s/=", AluOp.MOD: "s%="}
JUMP_SYMBOLS = {
    JmpOp.JEQ: "==", JmpOp.JGT: ">", JmpOp.JGE: ">=", JmpOp.JSET: "&", JmpOp.JNE: "!=", JmpOp.JSGT: "s>",
    JmpOp.JSGE: "s>=", JmpOp.JLT: "<", JmpOp.JLE: "<=", JmpOp.JSLT: "s<", JmpOp.JSLE: "s<=",
}
SIZE_TYPES = {Size.W: "u32", Size.H: "u16", Size.B: "u8", Size.DW: "u64"}
SIGNED_SIZE_TYPES = {Size.W: "s32", Size.H: "s16", Size.B: "s8"}
MOVSX_CASTS = {8: "(s8)", 16: "(s16)", 32: "(s32)"}
ATOMIC_NAMES = {AtomicOp.ADD: "add", AtomicOp.OR: "or", AtomicOp.AND: "and", AtomicOp.XOR: "xor"}
ATOMIC_SYMBOLS = {AtomicOp.ADD: "+=", AtomicOp.OR: "|=", AtomicOp.AND: "&=", AtomicOp.XOR: "^="}


def hex_imm(value: int) -> str:
    """LLVM's formatImm with hex printing: 0x1f, -0x8."""
    return f"-{-value:#x}" if value < 0 else f"{value:#x}"


def branch(value: int) -> str:
    """A pc-relative operand as LLVM prints it: +0x2, -0x3."""
    return f"+{value:#x}" if value >= 0 else f"-{-value:#x}"


def memory(reg: int, off: int) -> str:
    """The address part of a memory operand: ``r1 + 0x8``, ``r10 - 0x4``."""
    return f"r{reg} + {off:#x}" if off >= 0 else f"r{reg} - {-off:#x}"


# A formatter takes (dst, src, off, imm) - off and imm signed - and returns the text or None.
Formatter = Callable[[int, int, int, int], "str | None"]


def _alu(cls: int, op: int, source: int) -> Formatter:
    r = "r" if cls == Class.ALU64 else "w"
    symbol = ALU_SYMBOLS[op]
    signed = SIGNED_ALU_SYMBOLS.get(op)
    if source == Source.K:
        def fmt(d, s, o, i):
            if d >= LLVM_REGISTERS:
                return None
            if o:
                if o != 1 or signed is None:
                    return None
                return f"{r}{d} {signed} {hex_imm(i)}"
            return f"{r}{d} {symbol} {hex_imm(i)}"
        return fmt
    if op == AluOp.MOV:
        offsets = (0, ADDR_SPACE_CAST_OFF, 8, 16, 32) if cls == Class.ALU64 else (0, 8, 16)

        def fmt(d, s, o, i):
            if d >= LLVM_REGISTERS or s >= LLVM_REGISTERS or o not in offsets:
                return None
            if o == ADDR_SPACE_CAST_OFF:
                return f"r{d} = addr_space_cast(r{s}, {(i >> 16) & 0xFFFF:#x}, {i & 0xFFFF:#x})"
            return f"{r}{d} = {MOVSX_CASTS.get(o, '')}{r}{s}"
        return fmt

    def fmt(d, s, o, i):
        if d >= LLVM_REGISTERS or s >= LLVM_REGISTERS:
            return None
        if o:
            if o != 1 or signed is None:
                return None
            return f"{r}{d} {signed} {r}{s}"
        return f"{r}{d} {symbol} {r}{s}"
    return fmt


def _neg(cls: int) -> Formatter:
    r = "r" if cls == Class.ALU64 else "w"
    return lambda d, s, o, i: f"{r}{d} = -{r}{d}" if d < LLVM_REGISTERS else None


def _end(name: str) -> Formatter:
    return lambda d, s, o, i: f"r{d} = {name}{i} r{d}" if i in (16, 32, 64) and d < LLVM_REGISTERS else None


def _cond_jump(cls: int, op: int, source: int) -> Formatter:
    r = "w" if cls == Class.JMP32 else "r"
    symbol = JUMP_SYMBOLS[op]
    if source == Source.K:
        return lambda d, s, o, i: (f"if {r}{d} {symbol} {hex_imm(i)} goto {branch(o)}"
                                   if d < LLVM_REGISTERS else None)
    return lambda d, s, o, i: (f"if {r}{d} {symbol} {r}{s} goto {branch(o)}"
                               if d < LLVM_REGISTERS and s < LLVM_REGISTERS else None)


def _load(type_name: str) -> Formatter:
    return lambda d, s, o, i: (f"r{d} = *({type_name} *)({memory(s, o)})"
                               if d < LLVM_REGISTERS and s < LLVM_REGISTERS else None)


def _store_imm(type_name: str) -> Formatter:
    return lambda d, s, o, i: f"*({type_name} *)({memory(d, o)}) = {hex_imm(i)}" if d < LLVM_REGISTERS else None


def _store_reg(type_name: str) -> Formatter:
    return lambda d, s, o, i: (f"*({type_name} *)({memory(d, o)}) = r{s}"
                               if d < LLVM_REGISTERS and s < LLVM_REGISTERS else None)


def _atomic32_compat(d, s, o, i):
    # LLVM's default decoder knows only the 32-bit add here, matched on imm bits 4-7 alone.
    if d >= LLVM_REGISTERS or s >= LLVM_REGISTERS or (i >> 4) & 0xF:
        return None
    return f"lock *(u32 *)({memory(d, o)}) += r{s}"


def _atomic64_compat(d, s, o, i):
    if d >= LLVM_REGISTERS or s >= LLVM_REGISTERS:
        return None
    op, fetch = i & 0xF0, (i & 0xF) == 1
    if op in ATOMIC_NAMES:
        if fetch:
            return f"r{s} = atomic_fetch_{ATOMIC_NAMES[op]}((u64 *)({memory(d, o)}), r{s})"
        return f"lock *(u64 *)({memory(d, o)}) {ATOMIC_SYMBOLS[op]} r{s}"
    if fetch and op == 0xE0:
        return f"r{s} = xchg_64({memory(d, o)}, r{s})"
    if fetch and op == 0xF0:
        return f"r0 = cmpxchg_64({memory(d, o)}, r0, r{s})"
    return None


def _build_objdump_table() -> dict[int, Formatter]:
    table: dict[int, Formatter] = {}
    for cls in (Class.ALU, Class.ALU64):
        for op in AluOp:
            if op == AluOp.NEG:
                table[cls | op] = _neg(cls)
            elif op == AluOp.END:
                if cls == Class.ALU:
                    table[cls | op | Source.K] = _end("le")
                    table[cls | op | Source.X] = _end("be")
                else:
                    table[cls | op | Source.K] = _end("bswap")
            else:
                for source in Source:
                    table[cls | op | source] = _alu(cls, op, source)
    for cls in (Class.JMP, Class.JMP32):
        for op in JUMP_SYMBOLS:
            for source in Source:
                table[cls | op | source] = _cond_jump(cls, op, source)
    table[Class.JMP | JmpOp.JA] = lambda d, s, o, i: f"goto {branch(o)}"
    table[Class.JMP32 | JmpOp.JA] = lambda d, s, o, i: f"gotol {branch(i)}"
    table[Class.JMP | JmpOp.JCOND] = lambda d, s, o, i: f"may_goto {branch(o)}"
    table[CALL] = lambda d, s, o, i: f"call {hex_imm(i)}"
    table[CALL | Source.X] = lambda d, s, o, i: f"callx r{d}" if d < LLVM_REGISTERS else None
    table[Class.JMP | JmpOp.EXIT] = lambda d, s, o, i: "exit" if i == 0 else None
    for size, type_name in SIZE_TYPES.items():
        table[Class.LDX | Mode.MEM | size] = _load(type_name)
        table[Class.ST | Mode.MEM | size] = _store_imm(type_name)
        table[Class.STX | Mode.MEM | size] = _store_reg(type_name)
        if size != Size.DW:
            table[Class.LDX | Mode.MEMSX | size] = _load(SIGNED_SIZE_TYPES[size])
            table[Class.LD | Mode.ABS | size] = (lambda t: lambda d, s, o, i: f"r0 = *({t} *)skb[{hex_imm(i)}]")(
                type_name)
            table[Class.LD | Mode.IND | size] = (lambda t: lambda d, s, o, i: (
                f"r0 = *({t} *)skb[r{s}]" if s < LLVM_REGISTERS else None))(type_name)
    table[Class.STX | Mode.ATOMIC | Size.W] = _atomic32_compat
    table[Class.STX | Mode.ATOMIC | Size.DW] = _atomic64_compat
    return table


_OBJDUMP: dict[int, Formatter] = _build_objdump_table()


def objdump_text(opcode: int, dst: int, src: int, off: int, imm: int, next_imm: int = 0) -> str | None:
    """What llvm-objdump-19 prints for these fields, or None for ``<unknown>``.

    ``off`` and ``imm`` are signed; for ld_imm64 (opcode 0x18) ``imm`` is the
    first slot's 32 bits and ``next_imm`` the second slot's.
    """
    if opcode == LD_IMM64:
        if off or dst >= LLVM_REGISTERS:
            return None
        lo = imm & 0xFFFFFFFF
        if src == 0:
            value = lo | (next_imm & 0xFFFFFFFF) << 32
            return f"r{dst} = {hex_imm(value - (1 << 64) if value >> 63 else value)} ll"
        return f"ld_pseudo\tr{dst}, {src:#x}, {lo:#x}"
    fmt = _OBJDUMP.get(opcode)
    return fmt(dst, src, off, imm) if fmt else None


def is_branch(opcode: int) -> bool:
    """Instructions llvm-objdump annotates with their target: jumps, gotol, may_goto (not calls)."""
    cls = opcode & CLASS_MASK
    if cls == Class.JMP:
        return opcode & OP_MASK not in (JmpOp.CALL, JmpOp.EXIT) and opcode in _OBJDUMP
    return cls == Class.JMP32 and opcode in _OBJDUMP


def branch_offset(opcode: int, off: int, imm: int) -> int:
    """The signed slot offset of a branch (imm for gotol, off otherwise)."""
    return imm if opcode == Class.JMP32 | JmpOp.JA else off


# --- lossless text for valid instructions ------------------------------------


def _atomic32_exact(insn: Instruction) -> str:
    d, s, o, i = insn.dst, insn.src, insn.off, insn.imm
    if i in ATOMIC_SYMBOLS:
        return f"lock *(u32 *)({memory(d, o)}) {ATOMIC_SYMBOLS[i]} w{s}"
    if i & ~0xF0 == 1 and i & 0xF0 in ATOMIC_NAMES:
        return f"w{s} = atomic_fetch_{ATOMIC_NAMES[i & 0xF0]}((u32 *)({memory(d, o)}), w{s})"
    if i == AtomicOp.XCHG:
        return f"w{s} = xchg32_32({memory(d, o)}, w{s})"
    return f"w0 = cmpxchg32_32({memory(d, o)}, w0, w{s})"


def _ordered_exact(insn: Instruction) -> str:
    size = insn.opcode & SIZE_MASK
    r = "r" if size == Size.DW else "w"
    address = f"({SIZE_TYPES[size]} *)({memory(insn.dst if insn.imm == AtomicOp.STORE_REL else insn.src, insn.off)})"
    if insn.imm == AtomicOp.LOAD_ACQ:
        return f"{r}{insn.dst} = load_acquire({address})"
    return f"store_release({address}, {r}{insn.src})"


def format_llvm(insn: Instruction) -> str:
    """One valid instruction in LLVM syntax; assembling the text gives the instruction back."""
    op, d, s, o, i = insn.opcode, insn.dst, insn.src, insn.off, insn.imm
    if op == LD_IMM64:
        if s == 0:
            return f"r{d} = {hex_imm(i - (1 << 64) if i >> 63 else i)} ll"
        text = f"ld_pseudo\tr{d}, {s:#x}, {i & 0xFFFFFFFF:#x}"
        return text + f", {i >> 32:#x}" if i >> 32 else text
    if op == CALL:
        if s == PseudoCall.CALL:
            return f"call {branch(i)}"
        if s == PseudoCall.KFUNC_CALL:
            return f"call kfunc {hex_imm(i)}" + (f" module {hex_imm(o)}" if o else "")
        if i < 0:
            return f"call helper {hex_imm(i)}"
    elif op & CLASS_MASK == Class.STX and op & MODE_MASK == Mode.ATOMIC:
        if i in (AtomicOp.LOAD_ACQ, AtomicOp.STORE_REL):
            return _ordered_exact(insn)
        if op & SIZE_MASK == Size.W and i != AtomicOp.ADD:
            return _atomic32_exact(insn)
    elif op & CLASS_MASK == Class.LD and op & MODE_MASK == Mode.IND and i:
        return f"r0 = *({SIZE_TYPES[op & SIZE_MASK]} *)skb[{memory(s, i)}]"
    return _OBJDUMP[op](d, s, o, i)
