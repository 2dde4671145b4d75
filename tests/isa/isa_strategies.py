"""Hypothesis strategies for valid eBPF instructions, drawn from the opcode table itself."""

from __future__ import annotations

from hypothesis import strategies as st

from pybpf.errors import InstructionError
from pybpf.isa import LD_IMM64, OPCODES, Instruction, Program
from pybpf.isa.opcodes import ANY

REGISTERS = st.integers(0, 10)
OFFSETS = st.one_of(st.sampled_from([0, 1, -1, 8, -8, 0x7FFF, -0x8000]), st.integers(-0x8000, 0x7FFF))
IMM32 = st.one_of(st.sampled_from([0, 1, -1, 0x7FFFFFFF, -0x80000000]), st.integers(-(1 << 31), (1 << 31) - 1))
IMM64 = st.one_of(st.sampled_from([0, 1, (1 << 64) - 1, 1 << 63, 0xFFFFFFFF, 1 << 32]), st.integers(0, (1 << 64) - 1))


def _field(allowed: object, any_values: st.SearchStrategy) -> st.SearchStrategy:
    if allowed is ANY:
        return any_values
    if allowed is None:
        return st.just(0)
    return st.sampled_from(sorted(allowed))


@st.composite
def instructions(draw, opcodes: list[int] | None = None) -> Instruction:
    """Any valid instruction: fields obey the table and its cross-field rules."""
    opcode = draw(st.sampled_from(opcodes or sorted(OPCODES)))
    info = OPCODES[opcode]
    dst = draw(_field(info.dst, REGISTERS))
    src = draw(_field(info.src, REGISTERS))
    off = draw(_field(info.off, OFFSETS))
    if opcode == LD_IMM64:
        imm = draw(IMM64)
        if src in (1, 4, 5):  # these pseudo loads keep the high word zero
            imm &= 0xFFFFFFFF
    else:
        imm = draw(_field(info.imm, IMM32))
    if info.check is not None and info.check(src, off, imm):
        if opcode == 0x85:  # call: only kfuncs have an offset
            off = 0
        elif opcode == 0xBF:  # addr_space_cast converts between spaces 0 and 1
            imm = draw(st.sampled_from([1, 1 << 16])) if off == 1 else 0
    try:
        return Instruction(opcode, dst, src, off, imm).validate()
    except InstructionError as exc:  # a rule the strategy does not know yet: say which
        raise AssertionError(f"strategy drew an invalid instruction: {exc}") from None


def programs(max_size: int = 40) -> st.SearchStrategy:
    return st.lists(instructions(), min_size=1, max_size=max_size).map(Program)
