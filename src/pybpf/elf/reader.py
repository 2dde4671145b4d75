"""A strict reader of 64-bit little-endian ELF files (BPF objects, executables, libraries).

Written for pybpf rather than borrowed: every malformed field becomes an
:class:`~pybpf.errors.ELFError` naming the section and offset, which the loader
and fuzz tests rely on.  Section data are zero-copy memoryviews.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from ..errors import ELFError

EM_BPF = 247
EM_X86_64 = 62

ET_REL, ET_EXEC, ET_DYN = 1, 2, 3

SHT_NULL = 0
SHT_PROGBITS = 1
SHT_SYMTAB = 2
SHT_STRTAB = 3
SHT_RELA = 4
SHT_NOTE = 7
SHT_NOBITS = 8
SHT_REL = 9
SHT_DYNSYM = 11
SHT_LLVM_ADDRSIG = 0x6FFF4C03

SHF_WRITE = 0x1
SHF_ALLOC = 0x2
SHF_EXECINSTR = 0x4

STB_LOCAL, STB_GLOBAL, STB_WEAK = 0, 1, 2
STT_NOTYPE, STT_OBJECT, STT_FUNC, STT_SECTION, STT_FILE = 0, 1, 2, 3, 4
STV_DEFAULT, STV_INTERNAL, STV_HIDDEN, STV_PROTECTED = 0, 1, 2, 3
SHN_UNDEF = 0
SHN_ABS = 0xFFF1
SHN_COMMON = 0xFFF2

PT_LOAD = 1

# BPF relocation types (llvm/lib/Target/BPF)
R_BPF_NONE = 0
R_BPF_64_64 = 1
R_BPF_64_ABS64 = 2
R_BPF_64_ABS32 = 3
R_BPF_64_NODYLD32 = 4
R_BPF_64_32 = 10

_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
_SHDR = struct.Struct("<IIQQQQIIQQ")
_PHDR = struct.Struct("<IIQQQQQQ")
_SYM = struct.Struct("<IBBHQQ")
_RELA = struct.Struct("<QQq")
_REL = struct.Struct("<QQ")


@dataclass(frozen=True, slots=True)
class Section:
    index: int
    name: str
    type: int
    flags: int
    addr: int
    offset: int
    size: int
    link: int
    info: int
    addralign: int
    entsize: int
    data: memoryview  # empty for SHT_NOBITS

    @property
    def is_executable(self) -> bool:
        return bool(self.flags & SHF_EXECINSTR)


@dataclass(frozen=True, slots=True)
class Symbol:
    index: int
    name: str
    value: int
    size: int
    type: int
    bind: int
    visibility: int
    shndx: int


@dataclass(frozen=True, slots=True)
class Relocation:
    offset: int  # byte offset within the target section
    symbol: int  # index into the symbol table the relocation section links
    type: int
    addend: int


@dataclass(frozen=True, slots=True)
class Segment:
    type: int
    flags: int
    offset: int
    vaddr: int
    filesz: int
    memsz: int


class ELFFile:
    """A parsed ELF file. `sections`, `symbols` and `relocations(sec)` are the useful parts."""

    def __init__(self, data: bytes | bytearray | memoryview, name: str = "<bytes>", machine: int | None = EM_BPF):
        self.name = name
        self._data = memoryview(data).toreadonly()
        if len(self._data) < _EHDR.size:
            raise ELFError(f"{name}: file of {len(self._data)} bytes is too short for an ELF header", offset=0)
        (ident, e_type, e_machine, _ver, e_entry, e_phoff, e_shoff, _flags, _ehsize,
         e_phentsize, e_phnum, e_shentsize, e_shnum, e_shstrndx) = _EHDR.unpack_from(self._data, 0)
        if ident[:4] != b"\x7fELF":
            raise ELFError(f"{name}: not an ELF file (magic {bytes(ident[:4])!r})", offset=0)
        if ident[4] != 2:
            raise ELFError(f"{name}: ELF class {ident[4]} is not ELFCLASS64 (BPF objects are 64-bit)", offset=4)
        if ident[5] != 1:
            what = "big-endian (compiled with -target bpfeb?)" if ident[5] == 2 else f"data encoding {ident[5]}"
            raise ELFError(f"{name}: {what}; pybpf reads little-endian ELF only", offset=5)
        if machine is not None and e_machine != machine:
            raise ELFError(f"{name}: machine {e_machine} is not EM_BPF ({EM_BPF}); compile with clang -target bpf", offset=18)
        self.type = e_type
        self.machine = e_machine
        self.entry = e_entry
        self._phoff, self._phnum, self._phentsize = e_phoff, e_phnum, e_phentsize
        if e_shoff == 0 or e_shnum == 0:
            self.sections: list[Section] = []
            self._by_name: dict[str, Section] = {}
            return
        if e_shentsize != _SHDR.size:
            raise ELFError(f"{name}: section header size {e_shentsize}, expected {_SHDR.size}", offset=0x3A)
        if e_shoff + e_shnum * _SHDR.size > len(self._data):
            raise ELFError(f"{name}: section headers ({e_shnum} at {e_shoff:#x}) run past the end of the file", offset=e_shoff)
        raw = [_SHDR.unpack_from(self._data, e_shoff + i * _SHDR.size) for i in range(e_shnum)]
        if e_shstrndx >= e_shnum:
            raise ELFError(f"{name}: section name table index {e_shstrndx} out of range ({e_shnum} sections)", offset=0x3E)
        shstr = bytes(self._section_bytes(raw[e_shstrndx], str(e_shstrndx)))
        sections = []
        for i, (sh_name, sh_type, sh_flags, sh_addr, sh_offset, sh_size, sh_link, sh_info, sh_align, sh_entsize) in enumerate(raw):
            sname = _cstring(shstr, sh_name, f"section header {i} name")
            data = self._section_bytes(raw[i], sname or str(i))
            sections.append(Section(i, sname, sh_type, sh_flags, sh_addr, sh_offset, sh_size, sh_link, sh_info,
                                    sh_align, sh_entsize, data))
        self.sections = sections
        self._by_name = {}
        for s in sections:
            self._by_name.setdefault(s.name, s)

    @classmethod
    def from_file(cls, path: str | Path, machine: int | None = EM_BPF) -> "ELFFile":
        p = Path(path)
        return cls(p.read_bytes(), name=str(p), machine=machine)

    def _section_bytes(self, hdr: tuple, label: str) -> memoryview:
        sh_type, sh_offset, sh_size = hdr[1], hdr[4], hdr[5]
        if sh_type in (SHT_NOBITS, SHT_NULL):
            return memoryview(b"")
        if sh_offset + sh_size > len(self._data):
            raise ELFError(f"{self.name}: data ({sh_size} bytes at {sh_offset:#x}) run past the end of the file "
                           f"({len(self._data)} bytes)", section=label, offset=sh_offset)
        return self._data[sh_offset:sh_offset + sh_size]

    # -- lookups ------------------------------------------------------------

    def section(self, name: str) -> Section | None:
        return self._by_name.get(name)

    def section_at(self, index: int) -> Section:
        if not 0 <= index < len(self.sections):
            raise ELFError(f"{self.name}: section index {index} out of range ({len(self.sections)} sections)")
        return self.sections[index]

    @cached_property
    def symtab(self) -> Section | None:
        for s in self.sections:
            if s.type == SHT_SYMTAB:
                return s
        return None

    @cached_property
    def symbols(self) -> list[Symbol]:
        """The static symbol table (.symtab), or .dynsym when the file is stripped."""
        tab = self.symtab
        if tab is None:
            tab = next((s for s in self.sections if s.type == SHT_DYNSYM), None)
        return self._read_symbols(tab) if tab is not None else []

    @cached_property
    def dynamic_symbols(self) -> list[Symbol]:
        tab = next((s for s in self.sections if s.type == SHT_DYNSYM), None)
        return self._read_symbols(tab) if tab is not None else []

    def _read_symbols(self, tab: Section) -> list[Symbol]:
        if tab.entsize not in (0, _SYM.size) or tab.size % _SYM.size:
            raise ELFError(f"{self.name}: symbol table size {tab.size} is not a multiple of {_SYM.size}",
                           section=tab.name, offset=tab.offset)
        strtab = bytes(self.section_at(tab.link).data)
        out = []
        for i in range(tab.size // _SYM.size):
            st_name, st_info, st_other, st_shndx, st_value, st_size = _SYM.unpack_from(tab.data, i * _SYM.size)
            name = _cstring(strtab, st_name, f"{tab.name} symbol {i} name", section=tab.name)
            out.append(Symbol(i, name, st_value, st_size, st_info & 0xF, st_info >> 4, st_other & 3, st_shndx))
        return out

    def relocation_sections(self) -> list[tuple[Section, Section]]:
        """Pairs (relocation section, section it applies to)."""
        pairs = []
        for s in self.sections:
            if s.type in (SHT_REL, SHT_RELA):
                pairs.append((s, self.section_at(s.info)))
        return pairs

    def relocations(self, rel: Section) -> list[Relocation]:
        rela = rel.type == SHT_RELA
        size = _RELA.size if rela else _REL.size
        if rel.size % size:
            raise ELFError(f"{self.name}: relocation table size {rel.size} is not a multiple of {size}",
                           section=rel.name, offset=rel.offset)
        nsyms = len(self.symbols)
        target = self.section_at(rel.info)
        out = []
        for i in range(rel.size // size):
            if rela:
                r_offset, r_info, r_addend = _RELA.unpack_from(rel.data, i * size)
            else:
                (r_offset, r_info), r_addend = _REL.unpack_from(rel.data, i * size), 0
            sym = r_info >> 32
            if sym >= nsyms:
                raise ELFError(f"{self.name}: relocation {i} names symbol {sym}, but there are {nsyms}",
                               section=rel.name, offset=rel.offset + i * size)
            if target.type != SHT_NOBITS and r_offset >= max(target.size, 1):
                raise ELFError(f"{self.name}: relocation {i} at {r_offset:#x} lies outside {target.name} "
                               f"({target.size} bytes)", section=rel.name, offset=rel.offset + i * size)
            out.append(Relocation(r_offset, sym, r_info & 0xFFFFFFFF, r_addend))
        return out

    @cached_property
    def segments(self) -> list[Segment]:
        if self._phoff == 0 or self._phnum == 0:
            return []
        if self._phentsize != _PHDR.size or self._phoff + self._phnum * _PHDR.size > len(self._data):
            raise ELFError(f"{self.name}: program headers are malformed", offset=self._phoff)
        segs = []
        for i in range(self._phnum):
            p_type, p_flags, p_offset, p_vaddr, _paddr, p_filesz, p_memsz, _align = _PHDR.unpack_from(
                self._data, self._phoff + i * _PHDR.size)
            segs.append(Segment(p_type, p_flags, p_offset, p_vaddr, p_filesz, p_memsz))
        return segs

    def vaddr_to_offset(self, vaddr: int) -> int:
        """File offset of a virtual address (what uprobes attach to)."""
        for seg in self.segments:
            if seg.type == PT_LOAD and seg.vaddr <= vaddr < seg.vaddr + seg.filesz:
                return vaddr - seg.vaddr + seg.offset
        # Relocatable objects and odd binaries: fall back to the section holding the address.
        for s in self.sections:
            if s.flags & SHF_ALLOC and s.addr <= vaddr < s.addr + s.size and s.type != SHT_NOBITS:
                return vaddr - s.addr + s.offset
        raise ELFError(f"{self.name}: address {vaddr:#x} is in no loadable segment")


def _cstring(table: bytes, offset: int, what: str, section: str | None = None) -> str:
    if offset == 0 and len(table) == 0:
        return ""
    if offset >= len(table):
        raise ELFError(f"{what}: string offset {offset} outside the string table ({len(table)} bytes)",
                       section=section, offset=offset)
    end = table.find(b"\0", offset)
    if end < 0:
        raise ELFError(f"{what}: string at {offset} is not NUL-terminated", section=section, offset=offset)
    return table[offset:end].decode("utf-8", "replace")
