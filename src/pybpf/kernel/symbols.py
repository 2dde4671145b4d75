"""Where a uprobe goes: executables and libraries by name, symbols to file offsets.

Library names are resolved like the dynamic linker does: LD_LIBRARY_PATH, the
ld.so cache (/etc/ld.so.cache, read directly) and the default directories.
Symbol addresses come from the ELF symbol tables (static, then dynamic) and are
turned into file offsets through the program headers, which is what the
uprobe PMU expects.
"""

from __future__ import annotations

import difflib
import os
import shutil
import struct
from functools import lru_cache

from ..elf.reader import STT_FUNC, ELFFile
from ..errors import ELFError, LinkError

LD_SO_CACHE = "/etc/ld.so.cache"
_NEW_MAGIC = b"glibc-ld.so.cache1.1"
_NEW_HEADER = struct.Struct("<20sIIB3xI12x")
_NEW_ENTRY = struct.Struct("<iIIIQ")
_FLAG_ELF_LIBC6 = 0x0003
_FLAG_X8664_LIB64 = 0x0300
_DEFAULT_DIRS = ("/lib64", "/usr/lib64", "/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib", "/usr/lib")


@lru_cache(maxsize=1)
def ld_so_cache(path: str = LD_SO_CACHE) -> tuple[tuple[str, str], ...]:
    """(soname, path) pairs of x86-64 libraries in the ld.so cache (new format)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return ()
    base = data.find(_NEW_MAGIC)
    if base < 0 or base + _NEW_HEADER.size > len(data):
        return ()
    _, nlibs, _len_strings, _flags, _ext = _NEW_HEADER.unpack_from(data, base)
    out = []
    for i in range(nlibs):
        off = base + _NEW_HEADER.size + i * _NEW_ENTRY.size
        if off + _NEW_ENTRY.size > len(data):
            break
        flags, key, value, _osv, _hwcap = _NEW_ENTRY.unpack_from(data, off)
        if (flags & 0xFF) != _FLAG_ELF_LIBC6 or (flags & 0xFF00) != _FLAG_X8664_LIB64:
            continue
        out.append((_cstr(data, base + key), _cstr(data, base + value)))
    return tuple(out)


def _cstr(data: bytes, off: int) -> str:
    end = data.find(b"\0", off)
    return data[off:end if end >= 0 else len(data)].decode(errors="replace")


def _library_names(name: str) -> list[str]:
    """Candidate file names: 'c' -> libc.so, libc.so.*; 'libssl.so.3' -> itself."""
    if ".so" in name:
        return [name]
    lib = name if name.startswith("lib") else f"lib{name}"
    return [lib + ".so", lib + ".so."]


def find_library(name: str) -> str | None:
    """Path of shared library ``name`` ('c', 'libc', 'libc.so.6'), or None."""
    wanted = _library_names(name)

    def matches(fname: str) -> bool:
        return any(fname == w or (w.endswith(".") and fname.startswith(w)) for w in wanted)

    for d in filter(None, os.environ.get("LD_LIBRARY_PATH", "").split(":")):
        for fname in sorted(os.listdir(d)) if os.path.isdir(d) else ():
            if matches(fname):
                return os.path.join(d, fname)
    for soname, path in ld_so_cache():
        if matches(soname) and os.path.exists(path):
            return path
    for d in _DEFAULT_DIRS:
        if os.path.isdir(d):
            for fname in sorted(os.listdir(d)):
                if matches(fname):
                    return os.path.join(d, fname)
    return None


def resolve_binary(name: str) -> str:
    """An absolute path for ``name``: a path, an executable on PATH, or a library name."""
    if "/" in name:
        if not os.path.exists(name):
            raise LinkError(f"no such file {name!r} to place a uprobe in")
        return os.path.realpath(name)
    exe = shutil.which(name)
    if exe:
        return os.path.realpath(exe)
    lib = find_library(name)
    if lib:
        return os.path.realpath(lib)
    raise LinkError(f"{name!r} is neither an executable on PATH nor a library known to the dynamic linker")


_STT_GNU_IFUNC = 10


@lru_cache(maxsize=32)
def _function_symbols(path: str, mtime: float) -> tuple[dict[str, int], ELFFile]:
    """Function name -> address for one ELF file (cached per path and modification time)."""
    try:
        elf = ELFFile.from_file(path, machine=None)
    except (ELFError, OSError) as exc:
        raise LinkError(f"cannot read symbols of {path}: {exc}") from None
    table: dict[str, int] = {}
    for sym in list(elf.dynamic_symbols) + list(elf.symbols):
        if sym.value and sym.shndx and sym.type in (STT_FUNC, _STT_GNU_IFUNC) and sym.name:
            table.setdefault(sym.name.split("@")[0], sym.value)
    return table, elf


def symbol_offset(path: str, symbol: str) -> int:
    """File offset of function ``symbol`` in the ELF at ``path`` (what a uprobe attaches to)."""
    table, elf = _function_symbols(path, os.path.getmtime(path))
    addr = table.get(symbol)
    if addr is None:
        near = difflib.get_close_matches(symbol, table.keys(), n=3)
        hint = f"; did you mean {', '.join(near)}?" if near else ""
        raise LinkError(f"no function {symbol!r} in {path}{hint}")
    try:
        return elf.vaddr_to_offset(addr)
    except ELFError as exc:
        raise LinkError(f"cannot place a uprobe on {symbol} in {path}: {exc}") from None
