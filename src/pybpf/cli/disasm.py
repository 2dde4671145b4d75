"""`pybpf disasm`: disassemble BPF objects (like llvm-objdump -d) or raw bytecode."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..elf.reader import (
    SHF_EXECINSTR, SHT_NOBITS, SHT_RELA, STT_FILE, STT_SECTION, ELFFile, R_BPF_64_32, R_BPF_64_64, R_BPF_64_ABS32,
    R_BPF_64_ABS64, R_BPF_64_NODYLD32, R_BPF_NONE,
)
from ..errors import ELFError, InstructionError
from ..isa import disassemble
from .core_relocations import core_relocation_lines
from ..isa.disassembler import STYLES, ListingRelocation, ListingSymbol, kernel_section, objdump_section

RELOCATION_NAMES = {
    R_BPF_NONE: "R_BPF_NONE", R_BPF_64_64: "R_BPF_64_64", R_BPF_64_ABS64: "R_BPF_64_ABS64",
    R_BPF_64_ABS32: "R_BPF_64_ABS32", R_BPF_64_NODYLD32: "R_BPF_64_NODYLD32", R_BPF_64_32: "R_BPF_64_32",
}

EPILOG = """\
examples:
  pybpf disasm prog.bpf.o                    every program section, as llvm-objdump -d prints it
  pybpf disasm -r --section xdp prog.bpf.o   one section, with relocations
  pybpf disasm --style kernel prog.bpf.o     as the verifier log / bpftool print it
  pybpf disasm --exact prog.bpf.o > p.s      text that 'pybpf asm' turns back into the same bytes
  pybpf disasm --raw prog.bin                raw bytecode (8-byte slots), checked strictly
  cat prog.bin | pybpf disasm --raw -

The default output equals 'llvm-objdump-19 -d --no-show-raw-insn' (add
--show-raw-insn for the bytes column).  llvm-objdump prints a few valid
instructions ambiguously (a call within a section, 32-bit atomic fetch
operations) or as <unknown>; --exact writes those in a lossless form instead.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "disasm", help="disassemble a BPF object or raw bytecode",
        description="Disassemble the program sections of a clang BPF object (ELF) as llvm-objdump does, "
                    "or raw bytecode with --raw.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", help="BPF object (.o), or with --raw a file of bytecode ('-' reads stdin)")
    p.add_argument("-j", "--section", action="append", default=[], metavar="S",
                   help="only this section (repeatable; any section, as llvm-objdump -j)")
    p.add_argument("--style", choices=STYLES, default="llvm",
                   help="llvm: llvm-objdump syntax (default); kernel: verifier log / bpftool syntax")
    p.add_argument("-r", "--reloc", action="store_true", help="show relocations (ELF and .BTF.ext CO-RE) under their instructions")
    p.add_argument("--show-raw-insn", action="store_true", help="show the instruction bytes (llvm style)")
    p.add_argument("--exact", action="store_true",
                   help="write instructions llvm-objdump shows ambiguously in a lossless form")
    p.add_argument("--raw", action="store_true", help="the input is bytecode, not an ELF object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.raw:
        data = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
        name = "<stdin>" if args.file == "-" else args.file
        if not data:
            raise InstructionError(f"{name}: no bytecode (the input is empty)")
        try:
            print(disassemble(data, args.style))
        except InstructionError as exc:
            raise InstructionError(f"{name}: {exc}") from None
        return 0
    elf = ELFFile.from_file(args.file)
    lines = disassemble_elf(elf, sections=args.section, style=args.style, relocations=args.reloc,
                            show_raw=args.show_raw_insn, exact=args.exact)
    print(f"\n{args.file}:\tfile format elf64-bpf")
    print("\n".join(lines))
    return 0


def disassemble_elf(elf: ELFFile, *, sections: list[str] = (), style: str = "llvm", relocations: bool = False,
                    show_raw: bool = False, exact: bool = False) -> list[str]:
    """The listing of an object's program sections (or of ``sections``), without the file header line."""
    known = {s.name for s in elf.sections}
    missing = [name for name in sections if name not in known]
    if missing:
        raise ELFError(f"{elf.name}: no section named {', '.join(map(repr, missing))}")
    symbols: dict[int, list[ListingSymbol]] = {}
    for sym in elf.symbols:
        if sym.index == 0 or not sym.name or sym.type in (STT_SECTION, STT_FILE):
            continue
        symbols.setdefault(sym.shndx, []).append(ListingSymbol(sym.value, sym.name, sym.type))
    chosen = [sec for sec in elf.sections
              if sec.size and sec.type != SHT_NOBITS
              and (sec.name in sections if sections else sec.flags & SHF_EXECINSTR)]
    relocs: dict[int, list[ListingRelocation]] = {}
    core: dict[str, dict[int, str]] = {}
    if relocations:
        wanted = {sec.index for sec in chosen}
        for rel_sec, target in elf.relocation_sections():
            if target.index in wanted:
                relocs.setdefault(target.index, []).extend(_relocation_lines(elf, rel_sec))
        core = core_relocation_lines(elf)
    out: list[str] = []
    for sec in chosen:
        if style == "kernel":
            out += kernel_section(sec.name, sec.data, symbols.get(sec.index, ()))
        else:
            out += objdump_section(sec.name, sec.data, symbols.get(sec.index, ()), relocs.get(sec.index, ()),
                                   address=sec.addr, show_raw=show_raw, show_relocations=relocations, exact=exact,
                                   core_relocations=core.get(sec.name))
    return out


def _relocation_lines(elf: ELFFile, rel_sec) -> list[ListingRelocation]:
    out = []
    syms = elf.symbols
    for rel in elf.relocations(rel_sec):
        if rel.symbol == 0:
            value = "*ABS*"
        else:
            sym = syms[rel.symbol]
            value = elf.section_at(sym.shndx).name if sym.type == STT_SECTION else sym.name
        if rel_sec.type == SHT_RELA and rel.addend:
            value += f"-{-rel.addend:#x}" if rel.addend < 0 else f"+{rel.addend:#x}"
        out.append(ListingRelocation(rel.offset, RELOCATION_NAMES.get(rel.type, "Unknown"), value))
    return out
