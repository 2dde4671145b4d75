"""Instruction encode/decode/validate, the opcode table, programs and slots."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings

from isa_strategies import instructions, programs
from pybpf import InstructionError
from pybpf.isa import (
    CALL, EXIT, LD_IMM64, OPCODES, AluOp, Class, Group, Instruction, Program, Source, conformance_group, cpu_version,
)


def raw(op, regs, off=0, imm=0):
    return struct.pack("<BBhi", op, regs, off, imm)


@given(instructions())
@settings(max_examples=2000)
def test_decode_inverts_encode(insn):
    data = insn.encode()
    assert len(data) == 8 * insn.slots
    assert Instruction.decode(data) == insn


@given(programs())
@settings(max_examples=300)
def test_program_round_trip_and_slots(program):
    data = program.encode()
    assert Program.decode(data) == program
    assert program.slot_count * 8 == len(data)
    for index in range(len(program)):
        assert program.index_at_slot(program.slot_of(index)) == index


def test_ld_imm64_is_one_instruction_of_two_slots():
    insn = Instruction(LD_IMM64, 1, 0, 0, 0x1122334455667788)
    data = insn.encode()
    assert data == raw(0x18, 0x01, 0, 0x55667788) + raw(0, 0, 0, 0x11223344)
    program = Program([insn, Instruction(EXIT)])
    assert program.slot_of(1) == 2 and program.slot_count == 3
    with pytest.raises(KeyError):
        program.index_at_slot(1)  # the middle of the lddw


@pytest.mark.parametrize("data, message", [
    (raw(0x00, 0), "unknown opcode 0x00"),
    (raw(0x8f, 0), "unknown opcode 0x8f"),
    (raw(0x07, 0x10, 0, 1), "reserved field src must be 0"),
    (raw(0x0f, 0x21, 0, 5), "reserved field imm must be 0"),
    (raw(0x95, 0x01), "reserved field dst must be 0"),
    (raw(0x85, 0x00, 1, 1), "only allowed on kfunc calls"),
    (raw(0xbf, 0x21, 1, 0), "addr_space_cast"),
    (raw(0xbc, 0x21, 32), "off 32 is not one of 0, 8, 16"),
    (raw(0xd4, 0x01, 0, 8), "imm 8 is not one of 16, 32, 64"),
    (raw(0x07, 0x0b, 0, 1), "dst register r11 out of range"),
    (raw(0xdb, 0x21, 0, 0xe0), "imm 224 is not one of"),
    (raw(0x18, 0x01), "truncated lddw"),
    (raw(0x18, 0x11, 0, 3) + raw(0, 0, 0, 1), "high word must be 0"),
    (raw(0x18, 0x01) + raw(0x95, 0), "second slot must have opcode, registers and offset zero"),
    (b"\x95\x00\x00", "truncated instruction"),
])
def test_decode_rejects_bad_encodings(data, message):
    with pytest.raises(InstructionError, match=message):
        Instruction.decode(data, index=7)
    with pytest.raises(InstructionError, match="instruction 7"):
        Instruction.decode(data, index=7)


def test_program_decode_names_the_instruction():
    data = raw(0xb7, 0, 0, 1) + raw(0x18, 0x01) + raw(0, 0, 0, 0) + raw(0xff, 0)
    with pytest.raises(InstructionError, match=r"^instruction 3: unknown opcode 0xff"):
        Program.decode(data)
    with pytest.raises(InstructionError, match="not a multiple of 8"):
        Program.decode(data[:-1])


def test_encode_validates_ranges():
    for bad in (Instruction(0x07, 0, 0, 0, 1 << 31), Instruction(0x61, 0, 1, 0x8000), Instruction(0xb7, 12, 0)):
        with pytest.raises(InstructionError):
            bad.encode()
    with pytest.raises(InstructionError, match="instruction 1"):
        Program([Instruction(EXIT), Instruction(CALL, 1)]).encode()


def test_table_covers_rfc9669_and_linux():
    names = {info.name for info in OPCODES.values()}
    for name in ("add", "add32", "sub", "mul", "div", "or", "and", "lsh", "rsh", "neg", "mod", "xor", "mov", "arsh",
                 "le", "be", "bswap", "ja", "ja32", "jeq", "jgt", "jge", "jset", "jne", "jsgt", "jsge", "jlt", "jle",
                 "jslt", "jsle", "jeq32", "jsle32", "call", "callx", "exit", "may_goto", "lddw", "ldxb", "ldxdw",
                 "ldxsb", "ldxsh", "ldxsw", "stb", "stdw", "stxb", "stxdw", "lock", "ldabsw", "ldindb"):
        assert name in names
    # ALU 2x(12 ops x K,X + neg) + 3 byte swaps; JMP 11x2 + ja, call, callx, exit, may_goto; JMP32 11x2 + ja32;
    # ldx 4 + ldsx 3 + st 4 + stx 4 + atomic 4 + ld_abs 3 + ld_ind 3 + lddw
    assert len(OPCODES) == 53 + 27 + 23 + 26


def test_cpu_versions_and_groups():
    assert cpu_version(Class.ALU64 | AluOp.DIV | Source.X, off=1) == 4  # sdiv
    assert cpu_version(Class.ALU64 | AluOp.MOV | Source.X, off=8) == 4  # movsx
    assert cpu_version(0xd7, imm=16) == 4 and cpu_version(0x06) == 4 and cpu_version(0x81) == 4
    assert cpu_version(0x16) == 3 and cpu_version(0xdb, imm=0x41) == 3 and cpu_version(0xdb, imm=0) == 1
    assert cpu_version(0xa5) == 2 and cpu_version(0x15) == 1
    assert conformance_group(0x27) == Group.DIVMUL64 and conformance_group(0x24) == Group.DIVMUL32
    assert conformance_group(0x07) == Group.BASE64 and conformance_group(0x04) == Group.BASE32
    assert conformance_group(0xc3) == Group.ATOMIC32 and conformance_group(0xdb) == Group.ATOMIC64
    assert conformance_group(0x30) == Group.PACKET and conformance_group(0x8d) == Group.CALLX
    assert conformance_group(0xdc, imm=64) == Group.BASE64 and conformance_group(0xdc, imm=16) == Group.BASE32
