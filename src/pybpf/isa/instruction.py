"""One eBPF instruction, and programs as sequences of them.

An :class:`Instruction` is the unit every layer shares: the object loader
relocates them, the kernel backend encodes them, the VM pre-decodes them.
``ld_imm64`` is a single Instruction that occupies two 8-byte slots; its
``imm`` holds the whole 64-bit value (low word | high word << 32), so jump
offsets, which count slots, need :class:`Program` to map slots to indexes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence, overload

from ..errors import InstructionError
from .opcodes import ANY, LD_IMM64, OPCODES, Kind, OpInfo

_SLOT = struct.Struct("<BBhi")
SLOT_SIZE = 8
MAX_REGISTER = 10


@dataclass(frozen=True, slots=True)
class Instruction:
    """A decoded instruction; ``imm`` is signed 32-bit, or unsigned 64-bit for lddw."""

    opcode: int
    dst: int = 0
    src: int = 0
    off: int = 0
    imm: int = 0

    @property
    def info(self) -> OpInfo:
        try:
            return OPCODES[self.opcode]
        except KeyError:
            raise InstructionError(f"unknown opcode {self.opcode:#04x}") from None

    @property
    def kind(self) -> Kind:
        return self.info.kind

    @property
    def slots(self) -> int:
        """8-byte slots the instruction takes: 2 for ld_imm64, else 1."""
        return 2 if self.opcode == LD_IMM64 else 1

    @property
    def is_wide(self) -> bool:
        return self.opcode == LD_IMM64

    def validate(self, index: int | None = None) -> "Instruction":
        """Check every field against the opcode table; returns self for chaining."""
        info = OPCODES.get(self.opcode)
        if info is None:
            raise InstructionError(f"unknown opcode {self.opcode:#04x}", index)
        dst, src, off, imm = self.dst, self.src, self.off, self.imm
        for reg_name, reg in (("dst", dst), ("src", src)):
            if not 0 <= reg <= MAX_REGISTER:
                raise InstructionError(f"{info.name}: {reg_name} register r{reg} out of range r0-r10", index)
        if not -0x8000 <= off <= 0x7FFF:
            raise InstructionError(f"{info.name}: offset {off} out of the signed 16-bit range", index)
        if self.opcode == LD_IMM64:
            if not 0 <= imm < 1 << 64:
                raise InstructionError(f"lddw: immediate {imm:#x} out of the 64-bit range", index)
            fields = (("dst", dst, info.dst), ("src", src, info.src), ("off", off, info.off))
        else:
            if not -0x80000000 <= imm <= 0x7FFFFFFF:
                raise InstructionError(f"{info.name}: immediate {imm} out of the signed 32-bit range", index)
            fields = (("dst", dst, info.dst), ("src", src, info.src), ("off", off, info.off), ("imm", imm, info.imm))
        for name, value, allowed in fields:
            if allowed is not ANY and (value if allowed is None else value not in allowed):
                _field_error(info, name, value, allowed, index)
        if info.check is not None:
            problem = info.check(src, off, imm)
            if problem:
                raise InstructionError(f"{info.name} (opcode {info.opcode:#04x}): {problem}", index)
        return self

    def encode(self) -> bytes:
        """The instruction's 8 (or 16, for lddw) bytes, little-endian as Linux uses on x86."""
        self.validate()
        regs = self.dst | (self.src << 4)
        if self.opcode == LD_IMM64:
            lo = self.imm & 0xFFFFFFFF
            hi = self.imm >> 32
            return _SLOT.pack(self.opcode, regs, self.off, _s32(lo)) + _SLOT.pack(0, 0, 0, _s32(hi))
        return _SLOT.pack(self.opcode, regs, self.off, self.imm)

    @classmethod
    def decode(cls, data: bytes | memoryview, offset: int = 0, index: int | None = None) -> "Instruction":
        """Decode the instruction at byte ``offset``; strict about reserved fields."""
        if len(data) - offset < SLOT_SIZE:
            raise InstructionError(f"truncated instruction: {len(data) - offset} bytes left, need 8", index)
        opcode, regs, off, imm = _SLOT.unpack_from(data, offset)
        if opcode == LD_IMM64:
            if len(data) - offset < 2 * SLOT_SIZE:
                raise InstructionError("truncated lddw: the second half of the 16-byte instruction is missing", index)
            op2, regs2, off2, imm2 = _SLOT.unpack_from(data, offset + SLOT_SIZE)
            if op2 or regs2 or off2:
                raise InstructionError("lddw: the second slot must have opcode, registers and offset zero", index)
            imm = (imm & 0xFFFFFFFF) | ((imm2 & 0xFFFFFFFF) << 32)
        insn = cls(opcode, regs & 0x0F, regs >> 4, off, imm)
        return insn.validate(index)

    def replace(self, **changes: int) -> "Instruction":
        """A copy with some fields changed (relocation, patching)."""
        fields = {"opcode": self.opcode, "dst": self.dst, "src": self.src, "off": self.off, "imm": self.imm}
        fields.update(changes)
        return Instruction(**fields)

    def __repr__(self) -> str:
        info = OPCODES.get(self.opcode)
        name = info.name if info else "?"
        return (f"Instruction({name}: opcode={self.opcode:#04x}, dst={self.dst}, src={self.src}, "
                f"off={self.off}, imm={self.imm:#x})")


def _field_error(info: OpInfo, field: str, value: int, allowed: object, index: int | None) -> None:
    if allowed is None:
        raise InstructionError(f"{info.name} (opcode {info.opcode:#04x}): reserved field {field} must be 0, "
                               f"is {value}", index)
    choices = ", ".join(str(v) for v in sorted(allowed))
    raise InstructionError(f"{info.name} (opcode {info.opcode:#04x}): {field} {value} is not one of {choices}",
                           index)


def _s32(value: int) -> int:
    return value - (1 << 32) if value & 0x80000000 else value


class Program(Sequence[Instruction]):
    """An instruction sequence that knows ld_imm64 takes two slots.

    Indexes (``prog[i]``) count instructions; jump offsets and BTF line info
    count slots.  ``slot_of``/``index_at_slot`` convert between them.
    """

    __slots__ = ("_insns", "_slot_starts", "_index_by_slot")

    def __init__(self, instructions: Iterable[Instruction] = ()):
        self._insns: list[Instruction] = list(instructions)
        self._slot_starts: list[int] | None = None
        self._index_by_slot: dict[int, int] | None = None

    @classmethod
    def decode(cls, data: bytes | memoryview) -> "Program":
        if len(data) % SLOT_SIZE:
            raise InstructionError(f"bytecode length {len(data)} is not a multiple of 8")
        insns = []
        pos = 0
        while pos < len(data):
            insn = Instruction.decode(data, pos, index=pos // SLOT_SIZE)
            insns.append(insn)
            pos += insn.slots * SLOT_SIZE
        return cls(insns)

    def encode(self) -> bytes:
        out = bytearray()
        for i, insn in enumerate(self._insns):
            try:
                out += insn.encode()
            except InstructionError as exc:
                raise InstructionError(str(exc), i) from None
        return bytes(out)

    def _slots(self) -> list[int]:
        if self._slot_starts is None:
            starts, slot = [], 0
            for insn in self._insns:
                starts.append(slot)
                slot += insn.slots
            self._slot_starts = starts
        return self._slot_starts

    def slot_of(self, index: int) -> int:
        """Slot number where instruction ``index`` starts."""
        return self._slots()[index]

    def index_at_slot(self, slot: int) -> int:
        """Instruction index starting at ``slot``; KeyError in the middle of an lddw."""
        if self._index_by_slot is None:
            self._index_by_slot = {s: i for i, s in enumerate(self._slots())}
        return self._index_by_slot[slot]

    @property
    def slot_count(self) -> int:
        return sum(insn.slots for insn in self._insns)

    @overload
    def __getitem__(self, i: int) -> Instruction: ...
    @overload
    def __getitem__(self, i: slice) -> "Program": ...

    def __getitem__(self, i):
        if isinstance(i, slice):
            return Program(self._insns[i])
        return self._insns[i]

    def __len__(self) -> int:
        return len(self._insns)

    def __iter__(self) -> Iterator[Instruction]:
        return iter(self._insns)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Program):
            return self._insns == other._insns
        if isinstance(other, list):
            return self._insns == other
        return NotImplemented

    def __add__(self, other: Iterable[Instruction]) -> "Program":
        return Program([*self._insns, *other])

    def __repr__(self) -> str:
        return f"Program({len(self._insns)} instructions, {self.slot_count} slots)"
