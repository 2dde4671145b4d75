"""Listings: programs and object sections as text, in LLVM or kernel syntax.

:func:`disassemble` turns a program (or raw bytecode, decoded strictly) into
a listing.  :func:`objdump_section` reproduces what ``llvm-objdump-19 -d``
prints for one section of an object, byte for byte: the same symbol headers,
``<func+0x18>`` branch annotations, ``...`` for runs of zeros, relocation lines
with ``-r``, and ``<unknown>`` where LLVM cannot decode.  It takes plain data
(bytes, symbols, relocations) so that this layer knows nothing of ELF; the
CLI feeds it from :mod:`pybpf.elf`.
"""

from __future__ import annotations

import bisect
import struct
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

from ..errors import InstructionError
from .instruction import SLOT_SIZE, Instruction, Program
from .kernel_syntax import CallName, ImmName, bpftool_imm_name, format_kernel
from .llvm_syntax import branch_offset, format_llvm, is_branch, objdump_text
from .opcodes import LD_IMM64, OPCODES

STYLES = ("llvm", "kernel")

STT_NOTYPE, STT_OBJECT, STT_FUNC, STT_COMMON = 0, 1, 2, 5
_SLOT = struct.Struct("<BBhi")
_MASK64 = (1 << 64) - 1


@dataclass(frozen=True, slots=True)
class ListingSymbol:
    """A symbol as a listing needs it: where, what name, which ELF st_type."""

    address: int
    name: str
    type: int = STT_FUNC


@dataclass(frozen=True, slots=True)
class ListingRelocation:
    """A relocation line of ``llvm-objdump -r``: offset in the section, type name, target text."""

    offset: int
    type_name: str
    value: str


def _program(code: Program | bytes | bytearray | memoryview | Iterable[Instruction]) -> Program:
    if isinstance(code, Program):
        return code
    if isinstance(code, (bytes, bytearray, memoryview)):
        return Program.decode(code)
    return Program(code)


def disassemble(code: Program | bytes | Iterable[Instruction], style: str = "llvm", *, name: str | None = None,
                call_name: CallName | None = None, imm_name: ImmName | None = bpftool_imm_name) -> str:
    """A listing of a program, one instruction per line, numbered by slot.

    ``llvm`` style lines look like llvm-objdump's (``      3:\\tr1 = r10``), and
    with ``name`` jumps are annotated ``<name+0x28>`` as objdump does for a
    symbol at offset 0; ``kernel`` style lines like bpftool's (``   3: (bf) r1 =
    r10``), with ``call_name``/``imm_name`` hooks for naming calls and ld_imm64
    operands.  Bytes are decoded strictly: a bad instruction raises
    InstructionError naming its index.  The text assembles back to the same
    program (:func:`pybpf.isa.assemble`).
    """
    program = _program(code)
    if style not in STYLES:
        raise ValueError(f"unknown disassembly style {style!r}; use one of {', '.join(STYLES)}")
    lines = []
    slot = 0
    for index, insn in enumerate(program):
        insn.validate(index)
        if style == "kernel":
            lines.append(f"{slot:4d}: {format_kernel(insn, call_name=call_name, imm_name=imm_name)}")
        else:
            text = format_llvm(insn)
            if name is not None and is_branch(insn.opcode):
                target = (slot + 1 + branch_offset(insn.opcode, insn.off, insn.imm)) * SLOT_SIZE & _MASK64
                text += f" <{name}>" if target == 0 else f" <{name}+{target:#x}>"
            lines.append(f"{slot:8d}:\t{text}")
        slot += insn.slots
    return "\n".join(lines)


def format_instruction(insn: Instruction, style: str = "llvm", *, call_name: CallName | None = None,
                       imm_name: ImmName | None = bpftool_imm_name) -> str:
    """One instruction's text in ``llvm`` or ``kernel`` style (hooks as :func:`format_kernel`; llvm names nothing)."""
    if style == "kernel":
        return format_kernel(insn, call_name=call_name, imm_name=imm_name)
    if style == "llvm":
        return format_llvm(insn)
    raise ValueError(f"unknown disassembly style {style!r}; use one of {', '.join(STYLES)}")


def _decode_at(data: bytes, index: int) -> tuple[str | None, int, tuple[int, int, int, int, int]]:
    """llvm-objdump's getInstruction: (text or None, size consumed, fields)."""
    left = len(data) - index
    if left < SLOT_SIZE:
        return None, 1, (0, 0, 0, 0, 0)
    op, regs, off, imm = _SLOT.unpack_from(data, index)
    if op == LD_IMM64:
        hi = _SLOT.unpack_from(data, index + SLOT_SIZE)[3] if left >= 2 * SLOT_SIZE else 0
        text = objdump_text(op, regs & 0xF, regs >> 4, off, imm, hi)
        if text is None:
            return None, SLOT_SIZE, (op, regs, off, imm, 0)
        if left < 2 * SLOT_SIZE:
            return None, 1, (op, regs, off, imm, 0)
        return text, 2 * SLOT_SIZE, (op, regs, off, imm, hi)
    return objdump_text(op, regs & 0xF, regs >> 4, off, imm), SLOT_SIZE, (op, regs, off, imm, 0)


def _exact_text(fields: tuple[int, int, int, int, int]) -> str | None:
    op, regs, off, imm, hi = fields
    if op not in OPCODES:
        return None
    if op == LD_IMM64:
        imm = (imm & 0xFFFFFFFF) | (hi & 0xFFFFFFFF) << 32
    try:
        insn = Instruction(op, regs & 0xF, regs >> 4, off, imm).validate()
    except InstructionError:
        return None
    return format_llvm(insn)


def _zero_run(data: bytes, start: int, limit: int) -> int:
    """llvm-objdump's countSkippableZeroBytes: runs of 8+ zeros, skipped 4 bytes at a time."""
    end = start
    while end < limit and not data[end]:
        end += 1
    n = end - start
    return n & ~3 if n >= 8 else 0


def _elf_data(address: int, index: int, end: int, data: bytes, out: list[str]) -> None:
    """llvm-objdump's dumpELFData: a chunk that only data symbols cover, 8 bytes per line."""
    count, ascii_part, line = 0, "", ""
    while index < end:
        if count == 0:
            line = f"{address + index:8x}:"
        byte = data[index]
        line += f" {byte:02x}"
        ascii_part += chr(byte) if 0x20 <= byte < 0x7F else "."
        count += 1
        if index == end - 1 or count == 8:
            out.append(line + " " * (3 * (8 - count)) + "         " + ascii_part)
            count, ascii_part = 0, ""
        index += 1


def objdump_section(name: str, data: bytes, symbols: Sequence[ListingSymbol] = (),
                    relocations: Sequence[ListingRelocation] = (), *, address: int = 0, show_raw: bool = False,
                    show_relocations: bool = False, exact: bool = False,
                    core_relocations: Mapping[int, str] | None = None) -> list[str]:
    """The lines ``llvm-objdump-19 -d`` prints for one section (from its "Disassembly of section" line).

    ``symbols`` are the section's symbols (addresses absolute, like st_value);
    ``relocations`` its relocations, printed with ``show_relocations`` (-r), as
    are ``core_relocations``: section offset -> the text llvm-objdump prints
    after "CO-RE " for a .BTF.ext CO-RE relocation there (``<byte_off> [32]
    struct task_struct::pid (0:84)``; that text needs BTF, which this layer
    does not read).
    With ``exact``, instructions that objdump prints ambiguously or not at all
    but that are valid are written in pybpf's lossless LLVM syntax instead,
    so that the listing assembles back to the same bytes.
    """
    data = bytes(data)
    size = len(data)
    syms = sorted((s for s in symbols if s.name), key=lambda s: (s.address, s.name, s.type))
    if not any(s.address == address for s in syms):
        dummy = ListingSymbol(address, name, STT_FUNC)
        syms.insert(bisect.bisect_left([(s.address, s.name, s.type) for s in syms],
                                       (dummy.address, dummy.name, dummy.type)), dummy)
    addresses = [s.address for s in syms]
    rels = sorted(relocations, key=lambda r: r.offset)
    out: list[str] = []
    printed_section = False
    rel_cur = 0
    si = 0
    while si < len(syms):
        start = syms[si].address
        first = si
        while si < len(syms) and syms[si].address == start:
            si += 1
        here = syms[first:si]
        end = min(address + size, syms[si].address) if si < len(syms) else address + size
        if start >= end:
            continue
        start -= address
        end -= address
        if not printed_section:
            printed_section = True
            out.append("")
            out.append(f"Disassembly of section {name}:")
        display = len(here) - 1
        as_data = True
        for i, sym in enumerate(here):
            if sym.type not in (STT_OBJECT, STT_COMMON):
                as_data, display = False, i
        out.append("")
        out.append(f"{address + start:016x} <{here[display].name}>:")
        if as_data:
            _elf_data(address, start, end, data, out)
            continue
        index = start
        while rel_cur < len(rels) and rels[rel_cur].offset < index:
            rel_cur += 1
        while index < end:
            limit = end
            if show_relocations and rel_cur < len(rels) and rels[rel_cur].offset >= index:
                limit = min(rels[rel_cur].offset, end)
            zeros = _zero_run(data, index, limit)
            if zeros:
                out.append("\t\t...")
                index += zeros
                continue
            text, consumed, fields = _decode_at(data, index)
            if exact and consumed >= SLOT_SIZE:
                text = _exact_text(fields) or text
            line = f"{(address + index) // 8:8d}:"
            if show_raw:
                line += "\t" + " ".join(f"{b:02x}" for b in data[index:index + consumed])
            if text is None:
                line += "\t<unknown>"
            else:
                line += "\t" + text
                op = fields[0]
                if is_branch(op):
                    target = (address + index + consumed + branch_offset(op, fields[2], fields[3]) * consumed) & _MASK64
                    pos = bisect.bisect_right(addresses, target)
                    if pos:
                        sym = syms[pos - 1]
                        disp = (target - sym.address) & _MASK64
                        line += f" <{sym.name}>" if disp == 0 else f" <{sym.name}+{disp:#x}>"
            out.append(line)
            if show_relocations:
                if core_relocations and index in core_relocations:
                    out.append(f"\t\t{address + index:016x}:  CO-RE {core_relocations[index]}")
                while rel_cur < len(rels) and rels[rel_cur].offset < index + consumed:
                    rel = rels[rel_cur]
                    if rel.offset >= index:
                        out.append(f"\t\t{address + rel.offset:016x}:  {rel.type_name}\t{rel.value}")
                    rel_cur += 1
            index += consumed
    return out


def kernel_section(name: str, data: bytes, symbols: Sequence[ListingSymbol] = (), *,
                   call_name: CallName | None = None, imm_name: ImmName | None = bpftool_imm_name) -> list[str]:
    """One section in kernel style: a ``<func>:`` line per function, then bpftool-style numbered lines.

    Invalid encodings are shown as ``(op) <invalid: reason>`` rather than
    stopping the listing, since an object may hold what the kernel would refuse.
    """
    data = bytes(data)
    starts = {s.address // SLOT_SIZE: s.name for s in sorted(symbols, key=lambda s: (s.address, s.name))
              if s.name and s.type not in (STT_OBJECT, STT_COMMON)}
    out = ["", f"Disassembly of section {name}:"]
    slot, count = 0, len(data) // SLOT_SIZE
    while slot < count:
        if slot in starts:
            out += ["", f"{starts[slot]}:"]
        op, regs, off, imm = _SLOT.unpack_from(data, slot * SLOT_SIZE)
        width = 1
        try:
            if op == LD_IMM64:
                if slot + 1 >= count:
                    raise InstructionError("truncated lddw: the second half of the 16-byte instruction is missing")
                insn = Instruction.decode(data, slot * SLOT_SIZE)
                width = 2
            else:
                insn = Instruction(op, regs & 0xF, regs >> 4, off, imm).validate()
            out.append(f"{slot:4d}: {format_kernel(insn, call_name=call_name, imm_name=imm_name)}")
        except InstructionError as exc:
            out.append(f"{slot:4d}: ({op:02x}) <invalid: {exc}>")
        slot += width
    if len(data) % SLOT_SIZE:
        out.append(f"{count:4d}: <{len(data) % SLOT_SIZE} trailing bytes>")
    return out
