"""BPF ELF object -> ObjectSpec, following libbpf's rules for what each section means.

The order of work mirrors ``bpf_object_open``: classify sections, read BTF,
collect programs (one per function symbol in an executable section), maps
(``.maps``, legacy ``maps``, global data, ``.kconfig``), externs, then
relocations, and finally link every entry program with the subprograms it
calls (:mod:`pybpf.object.linker`).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

from ..elf.reader import (
    ELFFile, Section, Symbol, ET_REL, SHF_EXECINSTR, SHN_ABS, SHN_COMMON, SHN_UNDEF, SHT_LLVM_ADDRSIG,
    SHT_NOBITS, SHT_PROGBITS, SHT_REL, SHT_STRTAB, SHT_SYMTAB, STB_GLOBAL, STB_LOCAL, STB_WEAK, STT_FUNC,
    STT_NOTYPE, STT_SECTION,
)
from ..errors import BPFError, ELFError, ObjectError
from ..isa import CALL, LD_IMM64, Instruction, PseudoCall
from ..btf.ext import BTFExt
from ..btf import BTF
from .spec import ObjectSpec

BPF_OBJ_NAME_LEN = 16
_INSN = struct.Struct("<BBhi")
_LEGACY_MAP_DEF = struct.Struct("<IIIII")

DATA_SEC, RODATA_SEC, BSS_SEC = ".data", ".rodata", ".bss"
KCONFIG_SEC, KSYMS_SEC = ".kconfig", ".ksyms"
MAPS_SEC, LEGACY_MAPS_SEC = ".maps", "maps"
STRUCT_OPS_SECS = (".struct_ops", ".struct_ops.link", "?.struct_ops", "?.struct_ops.link")
ARENA_SEC = ".addr_space.1"
JUMPTABLES_SEC = ".jumptables"


def read_object_file(path, name: str | None = None) -> ObjectSpec:
    p = Path(path)
    try:
        data = p.read_bytes()
    except IsADirectoryError:
        raise ObjectError(f"{p}: is a directory, not a BPF object file") from None
    spec = read_object(data, name=name or object_name(p.name), label=str(p))
    spec.path = str(p)
    return spec


def object_name(filename: str) -> str:
    """libbpf's object name: the file's basename up to the first '.', at most 15 characters."""
    base = filename[:BPF_OBJ_NAME_LEN - 1]
    return base.split(".", 1)[0]


def read_object(data: bytes | bytearray | memoryview, name: str = "object", label: str | None = None) -> ObjectSpec:
    """Parse a clang-built BPF object; every malformed input is a :class:`~pybpf.errors.BPFError`."""
    label = label or name
    try:
        return _ObjectReader(data, name, label).read()
    except BPFError:
        raise
    except (ValueError, IndexError, KeyError, struct.error, OverflowError, RecursionError, UnicodeError) as exc:
        # A structural inconsistency the checks above did not name precisely; still one line, still ours.
        raise ELFError(f"{label}: malformed BPF object ({type(exc).__name__}: {exc})") from None


# --- internal model of the ELF file -----------------------------------------


@dataclass(eq=False)
class _Function:
    """A function symbol in an executable section (a program or a subprogram)."""

    name: str
    section: Section
    offset: int  # bytes into the section
    size: int
    symbol: Symbol
    insns: list[Instruction]
    slot_count: int
    relocations: list["_Reloc"] = field(default_factory=list)

    @property
    def is_subprogram(self) -> bool:
        return self.section.name == ".text"

    @property
    def first_slot(self) -> int:
        return self.offset // 8


@dataclass(frozen=True, slots=True)
class _Reloc:
    """A relocation against one instruction of a function (libbpf's reloc_desc)."""

    kind: str  # "call" | "subprog_addr" | "map" | "data" | "extern"
    slot: int  # slot within the function
    symbol: Symbol
    sym_name: str
    target: str | None = None  # map or extern name
    sym_off: int = 0


class _ObjectReader:
    def __init__(self, data, name: str, label: str):
        self.name = name
        self.label = label
        self.elf = ELFFile(data, name=label)
        if self.elf.type != ET_REL:
            raise ELFError(f"{label}: ELF type {self.elf.type} is not a relocatable object (ET_REL); "
                           "pass the .o file clang -target bpf -c produces", offset=0x10)
        self.spec = ObjectSpec(name=name)
        self.spec.elf = self.elf
        self.functions: list[_Function] = []
        self.text: Section | None = None
        self.data_sections: list[tuple[Section, str]] = []  # (section, "data"|"rodata"|"bss")
        self.rel_sections: list[tuple[Section, Section]] = []
        self.maps_section: Section | None = None
        self.legacy_maps_section: Section | None = None
        self.struct_ops_sections: list[Section] = []
        self.arena_section: Section | None = None
        self.btf_section: Section | None = None
        self.btf_ext_section: Section | None = None
        self.map_by_symbol: dict[tuple[int, int], str] = {}  # (section index, offset) -> map name
        self.data_map_by_section: dict[int, str] = {}  # section index -> internal map name
        self.kconfig_map: str | None = None

    # -- driver -------------------------------------------------------------

    def read(self) -> ObjectSpec:
        self._find_symbols()
        self._classify_sections()
        self._read_btf()
        self._collect_functions()
        self._collect_maps()
        self._collect_relocations()
        self._link()
        return self.spec

    # -- sections -----------------------------------------------------------

    def _find_symbols(self) -> None:
        tabs = [s for s in self.elf.sections if s.type == SHT_SYMTAB]
        if not tabs:
            raise ELFError(f"{self.label}: no symbol table (stripped object?); BPF objects need .symtab")
        if len(tabs) > 1:
            raise ELFError(f"{self.label}: {len(tabs)} symbol tables, expected one", section=tabs[1].name)
        symtab = tabs[0]
        if not 0 < symtab.link < len(self.elf.sections) or self.elf.sections[symtab.link].type != SHT_STRTAB:
            raise ELFError(f"{self.label}: symbol table names string section {symtab.link}, which is not a "
                           "string table", section=symtab.name, offset=symtab.offset)
        self.symbols: list[Symbol] = self.elf.symbols
        nsec = len(self.elf.sections)
        for sym in self.symbols:
            if sym.shndx >= nsec and sym.shndx not in (SHN_ABS, SHN_COMMON):
                raise ELFError(f"{self.label}: symbol {sym.index} ({sym.name or '?'}) points to section "
                               f"{sym.shndx}, but there are {nsec}", section=symtab.name,
                               offset=symtab.offset + sym.index * 24)

    def _classify_sections(self) -> None:
        for sec in self.elf.sections[1:]:
            name = sec.name
            if _ignored(sec):
                continue
            if name == "license":
                self.spec.license = bytes(sec.data).split(b"\0", 1)[0].decode("utf-8", "replace")[:127]
            elif name == "version":
                if sec.size != 4:
                    raise ELFError(f"{self.label}: 'version' section is {sec.size} bytes, expected 4",
                                   section=name, offset=sec.offset)
                self.spec.kern_version = struct.unpack("<I", sec.data)[0]
            elif name == LEGACY_MAPS_SEC:
                self.legacy_maps_section = sec
            elif name == MAPS_SEC:
                self.maps_section = sec
            elif name == ".BTF":
                self._expect_progbits(sec)
                self.btf_section = sec
            elif name == ".BTF.ext":
                self._expect_progbits(sec)
                self.btf_ext_section = sec
            elif sec.type == SHT_SYMTAB:
                pass
            elif sec.type == SHT_PROGBITS and sec.size > 0:
                if sec.flags & SHF_EXECINSTR:
                    if name == ".text":
                        self.text = sec
                elif name == DATA_SEC or name.startswith(DATA_SEC + "."):
                    self.data_sections.append((sec, "data"))
                elif name == RODATA_SEC or name.startswith(RODATA_SEC + "."):
                    self.data_sections.append((sec, "rodata"))
                elif name in STRUCT_OPS_SECS:
                    self.struct_ops_sections.append(sec)
                elif name == ARENA_SEC:
                    self.arena_section = sec
                elif name == JUMPTABLES_SEC:
                    self.spec.notes.append(f"section {name}: indirect jump tables (gotox) are not supported yet")
            elif sec.type == SHT_REL:
                if sec.entsize != 16:
                    raise ELFError(f"{self.label}: relocation entry size {sec.entsize}, expected 16",
                                   section=name, offset=sec.offset)
                if sec.info >= len(self.elf.sections):
                    raise ELFError(f"{self.label}: relocations for section {sec.info}, but there are "
                                   f"{len(self.elf.sections)}", section=name, offset=sec.offset)
                target = self.elf.sections[sec.info]
                if target.flags & SHF_EXECINSTR or target.name in (MAPS_SEC, *STRUCT_OPS_SECS):
                    self.rel_sections.append((sec, target))
            elif sec.type == SHT_NOBITS and (name == BSS_SEC or name.startswith(BSS_SEC + ".")):
                if sec.size > 0:
                    self.data_sections.append((sec, "bss"))

    def _expect_progbits(self, sec: Section) -> None:
        if sec.type != SHT_PROGBITS:
            raise ELFError(f"{self.label}: section {sec.name} has type {sec.type}, expected PROGBITS",
                           section=sec.name, offset=sec.offset)

    # -- BTF ----------------------------------------------------------------

    def _read_btf(self) -> None:
        self.btf: BTF | None = None
        self.btf_ext: BTFExt | None = None
        if self.btf_section is None:
            return
        self.btf = self.spec.btf = BTF.from_bytes(self.btf_section.data, name=f"{self.label} .BTF")
        if self.btf_ext_section is not None:
            self.btf_ext = self.spec.btf_ext = BTFExt.from_bytes(self.btf_ext_section.data, self.btf)

    # -- programs -----------------------------------------------------------

    def _collect_functions(self) -> None:
        by_section: dict[int, list[Symbol]] = {}
        for sym in self.symbols:
            if sym.type == STT_FUNC and 0 < sym.shndx < len(self.elf.sections):
                by_section.setdefault(sym.shndx, []).append(sym)
        for shndx in sorted(by_section):
            sec = self.elf.sections[shndx]
            if not (sec.type == SHT_PROGBITS and sec.flags & SHF_EXECINSTR and sec.size > 0):
                continue
            for sym in sorted(by_section[shndx], key=lambda s: s.value):
                self._add_function(sec, sym)
        self.functions_by_section: dict[int, list[_Function]] = {}
        for fn in self.functions:
            self.functions_by_section.setdefault(fn.section.index, []).append(fn)
            self.spec.functions.append((fn.name, fn.section.name, fn.offset, fn.size))

    def _add_function(self, sec: Section, sym: Symbol) -> None:
        name = sym.name
        off, size = sym.value, sym.size
        if not name:
            raise ELFError(f"{self.label}: function symbol {sym.index} has no name", section=sec.name, offset=off)
        if off + size > sec.size:
            raise ELFError(f"{self.label}: program {name!r} ({size} bytes at {off:#x}) crosses the end of its "
                           f"section ({sec.size} bytes)", section=sec.name, offset=off)
        if size == 0 or size % 8 or off % 8:
            raise ELFError(f"{self.label}: corrupted program {name!r}: offset {off}, size {size} "
                           "(must be non-empty multiples of 8)", section=sec.name, offset=off)
        insns, slots = _decode(sec, off, size, self.label)
        fn = _Function(name, sec, off, size, sym, insns, slots)
        self.functions.append(fn)

    def _function_at(self, shndx: int, slot: int) -> _Function | None:
        """The function of section ``shndx`` that contains instruction slot ``slot``."""
        for fn in self.functions_by_section.get(shndx, ()):
            if fn.first_slot <= slot < fn.first_slot + fn.size // 8:
                return fn
        return None

    # -- maps and global data -------------------------------------------------

    def _collect_maps(self) -> None:
        from .maps import collect_maps

        collect_maps(self)

    # -- relocations ----------------------------------------------------------

    def _collect_relocations(self) -> None:
        for rel_sec, target in self.rel_sections:
            if target.name == MAPS_SEC:
                from .maps import collect_map_relocations

                collect_map_relocations(self, rel_sec)
                continue
            if target.name in STRUCT_OPS_SECS:
                from .maps import collect_struct_ops_relocations

                collect_struct_ops_relocations(self, rel_sec, target)
                continue
            for i, rel in enumerate(self.elf.relocations(rel_sec)):
                where = rel_sec.offset + i * 16
                sym = self.symbols[rel.symbol]
                if rel.offset % 8 or rel.offset >= target.size:
                    raise ELFError(f"{self.label}: relocation {i} at {rel.offset:#x} is not an instruction of "
                                   f"{target.name}", section=rel_sec.name, offset=where)
                slot = rel.offset // 8
                fn = self._function_at(target.index, slot)
                if fn is None:
                    continue  # code of an overridden weak function: libbpf skips it too
                if sym.type == STT_SECTION and not sym.name:
                    sym_name = self.elf.sections[sym.shndx].name if sym.shndx < len(self.elf.sections) else "?"
                else:
                    sym_name = sym.name
                fn.relocations.append(self._record(fn, slot - fn.first_slot, sym, sym_name, rel_sec, where))

    def _record(self, fn: _Function, slot: int, sym: Symbol, sym_name: str, rel_sec: Section, where: int) -> _Reloc:
        insn = _insn_at(fn, slot)
        if insn is None:
            raise ELFError(f"{self.label}: relocation against {sym_name!r} points into the middle of an ld_imm64 "
                           f"of {fn.name!r}", section=rel_sec.name, offset=where)
        is_call = insn.opcode == CALL
        if not is_call and insn.opcode != LD_IMM64:
            raise ObjectError(f"{self.label}: program {fn.name!r}: relocation against {sym_name!r} at instruction "
                              f"{slot} (opcode {insn.opcode:#04x}) is neither a call nor an ld_imm64")
        if _is_extern(sym):
            ext = self.spec.externs.get(sym.name)
            if ext is None:
                raise ObjectError(f"{self.label}: program {fn.name!r}: extern {sym.name!r} has no BTF description; "
                                  "compile with -g so the loader knows its type")
            return _Reloc("extern", slot, sym, sym_name, target=ext.name)
        if is_call:
            if insn.src != PseudoCall.CALL:
                raise ObjectError(f"{self.label}: program {fn.name!r}: call relocation against {sym_name!r} at "
                                  f"instruction {slot} is not a bpf-to-bpf call (src {insn.src})")
            if sym.shndx not in self.functions_by_section:
                sec_name = self.elf.sections[sym.shndx].name if sym.shndx < len(self.elf.sections) else "?"
                raise ObjectError(f"{self.label}: program {fn.name!r}: call to {sym_name!r} in section {sec_name!r}, "
                                  "which holds no functions")
            if sym.value % 8:
                raise ELFError(f"{self.label}: call target {sym_name!r} at unaligned offset {sym.value}",
                               section=rel_sec.name, offset=where)
            return _Reloc("call", slot, sym, sym_name, sym_off=sym.value)
        if sym.shndx == SHN_UNDEF or sym.shndx >= 0xFF00:
            raise ObjectError(f"{self.label}: program {fn.name!r}: relocation against {sym_name!r} in special "
                              f"section {sym.shndx:#x}; forgot to initialize a global variable?")
        if sym.shndx in self.functions_by_section and (
                (sym.bind == STB_LOCAL and sym.type == STT_SECTION) or sym.type == STT_FUNC):
            if sym.value % 8 or _imm32(insn) % 8:
                raise ObjectError(f"{self.label}: program {fn.name!r}: function address of {sym_name!r} at "
                                  f"unaligned offset {sym.value}+{_imm32(insn)}")
            return _Reloc("subprog_addr", slot, sym, sym_name, sym_off=sym.value)
        map_name = self.map_by_symbol.get((sym.shndx, sym.value))
        if map_name is not None and sym.shndx in self.map_sections:
            return _Reloc("map", slot, sym, sym_name, target=map_name)
        if sym.shndx in self.map_sections:
            raise ObjectError(f"{self.label}: program {fn.name!r}: map relocation against {sym_name!r} found no map "
                              f"at offset {sym.value} of {self.elf.sections[sym.shndx].name}")
        data_map = self.data_map_by_section.get(sym.shndx)
        if data_map is not None:
            return _Reloc("data", slot, sym, sym_name, target=data_map, sym_off=sym.value)
        sec_name = self.elf.sections[sym.shndx].name
        raise ObjectError(f"{self.label}: program {fn.name!r}: relocation against {sym_name!r} in section "
                          f"{sec_name!r}, which holds neither maps nor global data")

    @property
    def map_sections(self) -> set[int]:
        return {s.index for s in (self.maps_section, self.legacy_maps_section) if s is not None}

    # -- linking ------------------------------------------------------------

    def _link(self) -> None:
        from .linker import link_programs

        link_programs(self)


def _ignored(sec: Section) -> bool:
    name = sec.name
    if sec.type in (SHT_STRTAB, SHT_LLVM_ADDRSIG):
        return True
    if sec.type == SHT_PROGBITS and sec.size == 0 and name == ".text":
        return True
    if name.startswith(".rel"):
        rest = name[4:]
        if rest in (".BTF", ".BTF.ext") or _is_dwarf(rest):
            return True
    return _is_dwarf(name)


def _is_dwarf(name: str) -> bool:
    return name.startswith(".debug_")


def _is_extern(sym: Symbol) -> bool:
    return sym.shndx == SHN_UNDEF and sym.bind in (STB_GLOBAL, STB_WEAK) and sym.type == STT_NOTYPE


def _decode(sec: Section, off: int, size: int, label: str) -> tuple[list[Instruction], int]:
    """Decode without the ISA's strict validation: the kernel judges opcodes, the loader only moves them."""
    data = sec.data
    out: list[Instruction] = []
    pos, end = off, off + size
    unpack = _INSN.unpack_from
    while pos < end:
        opcode, regs, o, imm = unpack(data, pos)
        if opcode == LD_IMM64:
            if pos + 16 > end:
                raise ELFError(f"{label}: ld_imm64 at the end of a function is missing its second half",
                               section=sec.name, offset=pos)
            op2, regs2, o2, imm2 = unpack(data, pos + 8)
            if op2 or regs2 or o2:
                raise ELFError(f"{label}: ld_imm64 whose second slot is not zero (opcode {op2:#x})",
                               section=sec.name, offset=pos + 8)
            out.append(Instruction(opcode, regs & 15, regs >> 4, o, (imm & 0xFFFFFFFF) | ((imm2 & 0xFFFFFFFF) << 32)))
            pos += 16
        else:
            out.append(Instruction(opcode, regs & 15, regs >> 4, o, imm))
            pos += 8
    return out, size // 8


def _insn_at(fn: _Function, slot: int) -> Instruction | None:
    index = _slot_index(fn).get(slot)
    return None if index is None else fn.insns[index]


def _slot_index(fn: _Function) -> dict[int, int]:
    cached = getattr(fn, "_slots", None)
    if cached is None:
        cached, s = {}, 0
        for i, insn in enumerate(fn.insns):
            cached[s] = i
            s += 2 if insn.opcode == LD_IMM64 else 1
        fn._slots = cached  # type: ignore[attr-defined]
    return cached


def _imm32(insn: Instruction) -> int:
    """The low 32 bits of an immediate, signed (ld_imm64 keeps 64 bits in imm)."""
    v = insn.imm & 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


__all__ = ["object_name", "read_object", "read_object_file"]
