"""Addresses to names: kernel symbols from /proc/kallsyms, user symbols from the ELF files a process maps.

Both sides sort their symbols once and answer with a bisect.  User addresses go
through /proc/PID/maps (which file, at what file offset) and the ELF program
headers (file offset -> the virtual address the symbol tables use), so PIE
executables and shared libraries resolve wherever they were loaded.  An address
nothing covers is ``[unknown]``, as perf prints it.
"""

from __future__ import annotations

import bisect
import os
import threading
from dataclasses import dataclass
from functools import lru_cache

from ..elf.reader import PT_LOAD, STT_FUNC, ELFFile
from ..errors import BPFError, ELFError

UNKNOWN = "[unknown]"
_STT_GNU_IFUNC = 10
_TEXT_TYPES = frozenset("tTwW")


@dataclass(frozen=True, slots=True)
class Frame:
    """One resolved address: ``symbol+0xoff [module]``; symbol is None when unknown."""

    address: int
    symbol: str | None
    offset: int = 0
    module: str | None = None

    @property
    def name(self) -> str:
        """The symbol alone, or [unknown] (what folded stacks show)."""
        return self.symbol or UNKNOWN

    def __str__(self) -> str:
        if self.symbol is None:
            text = UNKNOWN
        else:
            text = f"{self.symbol}+{self.offset:#x}" if self.offset else self.symbol
        return f"{text} [{self.module}]" if self.module else text


class KernelSymbols:
    """/proc/kallsyms, sorted: resolve kernel addresses, look up names."""

    def __init__(self, path: str = "/proc/kallsyms"):
        with open(path) as f:
            rows = [line.split() for line in f.read().splitlines()]
        rows = [r for r in rows if len(r) >= 3]
        addrs = [int(r[0], 16) for r in rows]
        if addrs and not any(addrs[:1000]):
            raise BPFError("/proc/kallsyms shows only zero addresses: kernel.kptr_restrict hides them from this "
                           "process (run as root or set kernel.kptr_restrict=0)")
        order = sorted(range(len(rows)), key=addrs.__getitem__)
        self._addrs = [addrs[i] for i in order]
        self._names = [rows[i][2] for i in order]
        self._modules = [rows[i][3][1:-1] if len(rows[i]) > 3 else None for i in order]
        self._types = [rows[i][1] for i in order]
        n = len(order)
        # the first symbol of a name wins (dict() keeps the last of duplicates, so feed it reversed)
        self._by_name: dict[str, int] = dict(zip(reversed(self._names), range(n - 1, -1, -1)))

    def __len__(self) -> int:
        return len(self._addrs)

    def resolve(self, address: int) -> Frame:
        i = bisect.bisect_right(self._addrs, address) - 1
        if i < 0 or address == 0:
            return Frame(address, None)
        return Frame(address, self._names[i], address - self._addrs[i], self._modules[i])

    def address_of(self, name: str) -> int | None:
        i = self._by_name.get(name)
        return None if i is None else self._addrs[i]

    def is_function(self, name: str) -> bool:
        i = self._by_name.get(name)
        return i is not None and self._types[i] in _TEXT_TYPES

    def names(self) -> list[str]:
        return list(self._by_name)


_ksyms_lock = threading.Lock()
_ksyms: KernelSymbols | None = None


def kernel_symbols(reload: bool = False) -> KernelSymbols:
    """The kernel's symbols, read once per process (``reload=True`` after modules or programs change)."""
    global _ksyms
    with _ksyms_lock:
        if _ksyms is None or reload:
            _ksyms = KernelSymbols()
        return _ksyms


class _ElfSymbols:
    """Function symbols of one ELF file (.symtab and .dynsym), sorted, and its PT_LOAD segments."""

    def __init__(self, elf: ELFFile):
        funcs: dict[int, tuple[str, int]] = {}
        for table in (elf.dynamic_symbols, elf.symbols):
            for sym in table:
                if sym.value and sym.shndx and sym.name and sym.type in (STT_FUNC, _STT_GNU_IFUNC):
                    name = sym.name.split("@")[0]
                    old = funcs.get(sym.value)
                    if old is None or (not old[1] and sym.size):
                        funcs[sym.value] = (name, sym.size)
        ordered = sorted(funcs.items())
        self.addrs = [a for a, _ in ordered]
        self.names = [n for _, (n, _s) in ordered]
        self.sizes = [s for _, (_n, s) in ordered]
        self.segments = [s for s in elf.segments if s.type == PT_LOAD]

    def vaddr_of_offset(self, file_offset: int) -> int | None:
        for seg in self.segments:
            if seg.offset <= file_offset < seg.offset + max(seg.filesz, 1):
                return file_offset - seg.offset + seg.vaddr
        return None

    def resolve(self, vaddr: int) -> tuple[str, int] | None:
        i = bisect.bisect_right(self.addrs, vaddr) - 1
        if i < 0:
            return None
        off = vaddr - self.addrs[i]
        size = self.sizes[i]
        if size and off >= size:
            # past the end of the nearest function: perf would still name it when no size is known
            return None
        return self.names[i], off


@lru_cache(maxsize=128)
def _elf_symbols(path: str, size: int, mtime: float) -> _ElfSymbols | None:
    try:
        return _ElfSymbols(ELFFile.from_file(path, machine=None))
    except (ELFError, OSError):
        return None


@dataclass(frozen=True)
class _Mapping:
    start: int
    end: int
    offset: int
    path: str


class ProcessSymbols:
    """Resolve user-space addresses of one process (its /proc/PID/maps, read at construction).

    Read it while the process lives; the maps of a process that exited are gone
    (frames then come out as [unknown]).
    """

    def __init__(self, pid: int):
        self.pid = pid
        self._maps: list[_Mapping] = []
        try:
            with open(f"/proc/{pid}/maps") as f:
                for line in f:
                    parts = line.split(maxsplit=5)
                    if len(parts) < 6 or "x" not in parts[1]:
                        continue
                    start, end = (int(x, 16) for x in parts[0].split("-"))
                    self._maps.append(_Mapping(start, end, int(parts[2], 16), parts[5].strip()))
        except OSError:
            pass
        self._starts = [m.start for m in self._maps]
        self._vdso: _ElfSymbols | None = None

    def _symbols_of(self, m: _Mapping) -> _ElfSymbols | None:
        if m.path == "[vdso]":
            if self._vdso is None:
                self._vdso = self._read_vdso(m)
            return self._vdso
        if not m.path.startswith("/"):
            return None
        path = m.path.removesuffix(" (deleted)")
        for candidate in (f"/proc/{self.pid}/root{path}", path, f"/proc/{self.pid}/map_files/{m.start:x}-{m.end:x}"):
            try:
                st = os.stat(candidate)
            except OSError:
                continue
            return _elf_symbols(candidate, st.st_size, st.st_mtime)
        return None

    def _read_vdso(self, m: _Mapping) -> _ElfSymbols | None:
        try:
            with open(f"/proc/{self.pid}/mem", "rb") as mem:
                mem.seek(m.start)
                return _ElfSymbols(ELFFile(mem.read(m.end - m.start), name="[vdso]", machine=None))
        except (OSError, ELFError):
            return None

    def resolve(self, address: int) -> Frame:
        i = bisect.bisect_right(self._starts, address) - 1
        if i < 0 or address >= self._maps[i].end:
            return Frame(address, None)
        m = self._maps[i]
        module = os.path.basename(m.path) if m.path.startswith("/") else m.path
        syms = self._symbols_of(m)
        if syms is None:
            return Frame(address, None, 0, module)
        if m.path == "[vdso]":
            vaddr = address - m.start + (syms.segments[0].vaddr if syms.segments else 0)
        else:
            vaddr = syms.vaddr_of_offset(address - m.start + m.offset)
        found = syms.resolve(vaddr) if vaddr is not None else None
        if found is None:
            return Frame(address, None, 0, module)
        return Frame(address, found[0], found[1], module)


def symbolize(addresses: list[int], pid: int | None = None, *, kernel: bool = False,
              process: ProcessSymbols | None = None) -> list[Frame]:
    """Frames for a list of addresses: kernel ones with ``kernel=True``, else user ones of ``pid``."""
    if kernel:
        ks = kernel_symbols()
        return [ks.resolve(a) for a in addresses]
    resolver = process or (ProcessSymbols(pid) if pid is not None else None)
    if resolver is None:
        return [Frame(a, None) for a in addresses]
    return [resolver.resolve(a) for a in addresses]
