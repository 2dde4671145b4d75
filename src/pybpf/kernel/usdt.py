"""USDT probes (``<sys/sdt.h>`` / SystemTap markers) for programs written with libbpf's usdt.bpf.h.

A binary built with ``STAP_PROBE*`` / ``DTRACE_PROBE*`` carries one
``.note.stapsdt`` ELF note per probe site: provider, name, the site's address,
an optional semaphore (a u16 the application checks to skip argument set-up
nobody listens to) and an argument description in assembler syntax, e.g.
``-4@%eax 8@-8(%rbp) 4@$5``.  Attaching means: a uprobe at each site, the
semaphore raised while attached, and the argument descriptions encoded into
the ``__bpf_usdt_specs`` map exactly as usdt.bpf.h reads them (the BPF cookie
of each uprobe is the spec id; kernels without cookies get the
``__bpf_usdt_ip_to_spec_id`` map filled instead).
"""

from __future__ import annotations

import difflib
import os
import re
import struct
import threading
import weakref
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from ..elf.reader import ET_DYN, ELFFile
from ..errors import BPFError, ELFError, LinkError, NotSupportedError
from .attach import attach_perf_fd, expect_type
from .link import Link, LinkGroup
from .perf import open_uprobe
from .symbols import resolve_binary
from .uapi import MapType, ProgType

NT_STAPSDT = 3
MAX_ARGS = 12  # BPF_USDT_MAX_ARG_CNT
SPEC_SIZE = 208  # sizeof(struct __bpf_usdt_spec)
ARG_CONST, ARG_REG, ARG_REG_DEREF = 0, 1, 2
_ARG = struct.Struct("<QihBb")  # val_off, arg_type, reg_off, arg_signed, arg_bitshift
SPECS_MAP_NAME = "__bpf_usdt_spec"   # "__bpf_usdt_specs" as the kernel keeps it (15 characters)
IP_MAP_NAME = "__bpf_usdt_ip_t"      # "__bpf_usdt_ip_to_spec_id"

# offsetof(struct pt_regs, reg) on x86-64, for every name the assembler may use.
_PT_REGS = {
    ("r15", "r15d", "r15w", "r15b"): 0, ("r14", "r14d", "r14w", "r14b"): 8, ("r13", "r13d", "r13w", "r13b"): 16,
    ("r12", "r12d", "r12w", "r12b"): 24, ("rbp", "ebp", "bp", "bpl"): 32, ("rbx", "ebx", "bx", "bl"): 40,
    ("r11", "r11d", "r11w", "r11b"): 48, ("r10", "r10d", "r10w", "r10b"): 56, ("r9", "r9d", "r9w", "r9b"): 64,
    ("r8", "r8d", "r8w", "r8b"): 72, ("rax", "eax", "ax", "al"): 80, ("rcx", "ecx", "cx", "cl"): 88,
    ("rdx", "edx", "dx", "dl"): 96, ("rsi", "esi", "si", "sil"): 104, ("rdi", "edi", "di", "dil"): 112,
    ("rip", "eip"): 128, ("rsp", "esp", "sp", "spl"): 152,
}
REGISTER_OFFSETS = {name: off for names, off in _PT_REGS.items() for name in names}

_NUM = r"[-+]?(?:0x[0-9a-fA-F]+|\d+)"
_CONST = re.compile(rf"^(-?\d+)@\$({_NUM})$")
_DEREF = re.compile(rf"^(-?\d+)@({_NUM})?\(%(\w+)\)$")
_REG = re.compile(r"^(-?\d+)@%(\w+)$")


@dataclass(frozen=True)
class USDTArgument:
    """One argument of a probe: where its value is and how wide it is."""

    text: str
    size: int       # bytes: 1, 2, 4 or 8
    signed: bool
    kind: int       # ARG_CONST, ARG_REG or ARG_REG_DEREF
    register: str | None = None
    value: int = 0  # the constant, or the offset from the register for a dereference

    def encode(self) -> bytes:
        """struct __bpf_usdt_arg_spec as usdt.bpf.h reads it."""
        reg_off = REGISTER_OFFSETS[self.register] if self.register else 0
        return _ARG.pack(self.value & (2**64 - 1), self.kind, reg_off, int(self.signed), 64 - self.size * 8)


def parse_argument(text: str) -> USDTArgument:
    """Parse one x86-64 argument description: ``-4@%eax``, ``8@-8(%rbp)``, ``8@(%rdi)``, ``4@$5``."""
    for pattern, kind in ((_CONST, ARG_CONST), (_DEREF, ARG_REG_DEREF), (_REG, ARG_REG)):
        m = pattern.match(text)
        if not m:
            continue
        size = int(m.group(1))
        if abs(size) not in (1, 2, 4, 8):
            raise LinkError(f"USDT argument {text!r}: size {size} is not 1, 2, 4 or 8 bytes")
        if kind == ARG_CONST:
            return USDTArgument(text, abs(size), size < 0, kind, None, int(m.group(2), 0))
        reg = m.group(3) if kind == ARG_REG_DEREF else m.group(2)
        if reg not in REGISTER_OFFSETS:
            raise LinkError(f"USDT argument {text!r}: unknown x86-64 register %{reg}")
        offset = int(m.group(2), 0) if kind == ARG_REG_DEREF and m.group(2) else 0
        return USDTArgument(text, abs(size), size < 0, kind, reg, offset)
    raise LinkError(f"USDT argument {text!r} uses an addressing mode usdt.bpf.h cannot read "
                    "(supported: constants $N, registers %reg, and memory N(%reg))")


@dataclass(frozen=True)
class USDTProbe:
    """One probe site from a ``.note.stapsdt`` note."""

    path: str
    provider: str
    name: str
    address: int     # virtual address of the site (adjusted for prelinking)
    base: int        # the .stapsdt.base address the note was written against
    semaphore: int   # virtual address of the u16 semaphore, 0 if none
    arguments: str   # the raw argument description

    def parsed_arguments(self) -> list[USDTArgument]:
        args = [parse_argument(a) for a in self.arguments.split()]
        if len(args) > MAX_ARGS:
            raise LinkError(f"USDT {self.provider}:{self.name} has {len(args)} arguments; usdt.bpf.h reads at most {MAX_ARGS}")
        return args

    def spec(self, cookie: int = 0) -> bytes:
        """struct __bpf_usdt_spec (208 bytes) for this site."""
        args = self.parsed_arguments()
        body = b"".join(a.encode() for a in args) + bytes(_ARG.size * (MAX_ARGS - len(args)))
        return body + struct.pack("<Qh6x", cookie & (2**64 - 1), len(args))


def _notes(data: memoryview | bytes) -> list[tuple[str, int, bytes]]:
    out, off = [], 0
    while off + 12 <= len(data):
        namesz, descsz, ntype = struct.unpack_from("<III", data, off)
        off += 12
        name = bytes(data[off:off + namesz]).rstrip(b"\0").decode(errors="replace")
        off += (namesz + 3) & ~3
        desc = bytes(data[off:off + descsz])
        off += (descsz + 3) & ~3
        out.append((name, ntype, desc))
    return out


@lru_cache(maxsize=32)
def _probes(path: str, mtime: float) -> tuple[tuple[USDTProbe, ...], ELFFile]:
    try:
        elf = ELFFile.from_file(path, machine=None)
    except (ELFError, OSError) as exc:
        raise LinkError(f"cannot read USDT notes of {path}: {exc}") from None
    section = elf.section(".note.stapsdt")
    base_section = elf.section(".stapsdt.base")
    probes = []
    for owner, ntype, desc in _notes(section.data) if section is not None else ():
        if owner != "stapsdt" or ntype != NT_STAPSDT or len(desc) < 24:
            continue
        pc, base, sema = struct.unpack_from("<QQQ", desc)
        strings = desc[24:].split(b"\0")
        if len(strings) < 3:
            raise LinkError(f"{path}: malformed .note.stapsdt entry at address {pc:#x}")
        if base_section is not None and base:
            pc += base_section.addr - base
        provider, name, args = (s.decode(errors="replace") for s in strings[:3])
        probes.append(USDTProbe(path, provider, name, pc, base, sema, args))
    return tuple(probes), elf


def usdt_probes(binary: str) -> list[USDTProbe]:
    """Every USDT probe site of ``binary`` (a path, executable on PATH, or library name)."""
    path = resolve_binary(binary)
    return list(_probes(path, os.path.getmtime(path))[0])


# --- spec ids: shared by all links that use the same specs map --------------------

_ids_lock = threading.Lock()
_ids_in_use: dict[int, set[int]] = {}


def _reserve_ids(specs_map: Any, count: int) -> list[int]:
    with _ids_lock:
        used = _ids_in_use.setdefault(specs_map.id, set())
        free = [i for i in range(specs_map.max_entries) if i not in used][:count]
        if len(free) < count:
            raise LinkError(f"{specs_map.describe()} is full: {len(used)} USDT specs in use of {specs_map.max_entries} "
                            "(raise BPF_USDT_MAX_SPEC_CNT in the BPF program)")
        used.update(free)
        return free


def _release_ids(map_id: int, ids: list[int]) -> None:
    with _ids_lock:
        _ids_in_use.get(map_id, set()).difference_update(ids)


# --- semaphores ---------------------------------------------------------------------


def _runtime_address(pid: int, path: str, elf: ELFFile, vaddr: int) -> int:
    """Where ``vaddr`` of ``path`` is mapped in process ``pid`` (executables: vaddr itself)."""
    if elf.type != ET_DYN:
        return vaddr
    file_off = elf.vaddr_to_offset(vaddr)
    real = os.path.realpath(path)
    st = os.stat(real)
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            parts = line.split(maxsplit=5)
            if len(parts) < 6:
                continue
            start, end = (int(x, 16) for x in parts[0].split("-"))
            offset = int(parts[2], 16)
            inode = int(parts[4])
            mpath = parts[5].strip()
            if (inode == st.st_ino and (mpath == real or os.path.basename(mpath) == os.path.basename(real))
                    and offset <= file_off < offset + (end - start)):
                return start + file_off - offset
    raise LinkError(f"{path} is not mapped in process {pid}")


def _adjust_semaphore(pid: int, address: int, delta: int) -> None:
    with open(f"/proc/{pid}/mem", "r+b", buffering=0) as mem:
        mem.seek(address)
        value = int.from_bytes(mem.read(2), "little")
        mem.seek(address)
        mem.write(((value + delta) & 0xFFFF).to_bytes(2, "little"))


class USDTLink(LinkGroup):
    """The uprobes of one USDT probe; closing (or garbage collection) detaches them, frees their spec
    ids and ip map entries, and lowers the semaphores raised through /proc/PID/mem."""

    kind = "usdt"

    def __init__(self, links: list[Link], *, program: Any, description: str, specs_map_id: int, spec_ids: list[int],
                 ip_map: Any = None, ips: list[int] = (), semaphores: list[tuple[int, int]] = ()):
        super().__init__(links, program=program, description=description)
        self.spec_ids = spec_ids
        self._undo = weakref.finalize(self, _undo_usdt, list(semaphores), ip_map, list(ips), specs_map_id, spec_ids)

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self._undo.alive:
                self._undo()


def _undo_usdt(semaphores: list[tuple[int, int]], ip_map: Any, ips: list[int], specs_map_id: int,
               spec_ids: list[int]) -> None:
    for pid, addr in semaphores:
        try:
            _adjust_semaphore(pid, addr, -1)
        except OSError:
            pass  # the process is gone
    if ip_map is not None and not ip_map.closed:
        for ip in ips:
            ip_map.delete_raw(ip.to_bytes(8, "little", signed=True))
        ip_map.close()
    _release_ids(specs_map_id, spec_ids)


def _program_maps(prog: Any) -> dict[str, Any]:
    from .maps import Map

    found = {}
    for map_id in prog.info().map_ids:
        m = Map.from_id(map_id)
        if m.name in (SPECS_MAP_NAME, IP_MAP_NAME) and m.name not in found:
            found[m.name] = m
        else:
            m.close()
    return found


def attach_usdt(prog: Any, binary: str, provider: str, name: str, *, pid: int | None = None, cookie: int = 0,
                specs_map: Any = None, ip_map: Any = None, use_bpf_cookie: bool | None = None) -> USDTLink:
    """Attach ``prog`` (a uprobe program built with usdt.bpf.h) to USDT ``provider:name`` of ``binary``.

    ``specs_map``/``ip_map`` default to the program's own ``__bpf_usdt_specs`` /
    ``__bpf_usdt_ip_to_spec_id`` maps.  ``cookie`` is what ``bpf_usdt_cookie()``
    returns in the program.  With ``pid``, only that process is traced and its
    semaphores are raised through /proc/PID/mem; without, every process is, and
    the kernel maintains the semaphores (uprobe reference counters).
    """
    what = f"usdt {binary}:{provider}:{name}"
    expect_type(prog, what, ProgType.KPROBE)
    path = resolve_binary(binary)
    probes, elf = _probes(path, os.path.getmtime(path))
    sites = [p for p in probes if p.provider == provider and p.name == name]
    if not sites:
        known = sorted({f"{p.provider}:{p.name}" for p in probes})
        near = difflib.get_close_matches(f"{provider}:{name}", known, n=3)
        hint = f"; did you mean {', '.join(near)}?" if near else (f"; it has: {', '.join(known[:10])}" if known else
                                                                 "; it has no USDT probes")
        raise LinkError(f"no USDT probe {provider}:{name} in {path}{hint}")
    if pid is not None and not os.path.exists(f"/proc/{pid}"):
        raise LinkError(f"cannot attach {what}: no process with pid {pid}")
    owned: list[Any] = []
    if specs_map is None or ip_map is None:
        found = _program_maps(prog)
        if specs_map is None:
            specs_map = found.pop(SPECS_MAP_NAME, None)
            if specs_map is not None:
                owned.append(specs_map)
        if ip_map is None:
            ip_map = found.pop(IP_MAP_NAME, None)
            if ip_map is not None:
                owned.append(ip_map)
        for m in found.values():
            m.close()
    try:
        return _attach_sites(prog, path, elf, sites, what, pid, cookie, specs_map, ip_map, use_bpf_cookie)
    finally:
        for m in owned:
            m.close()


def _attach_sites(prog, path, elf, sites, what, pid, cookie, specs_map, ip_map, use_bpf_cookie) -> USDTLink:
    if specs_map is None:
        raise LinkError(f"cannot attach {what}: {prog.describe()} has no __bpf_usdt_specs map (include <bpf/usdt.bpf.h> "
                        "and use bpf_usdt_arg(), or pass specs_map=)")
    if specs_map.type != MapType.ARRAY or specs_map.value_size != SPEC_SIZE:
        raise LinkError(f"{specs_map.describe()} is not a usdt.bpf.h spec map (an ARRAY of {SPEC_SIZE}-byte "
                        f"struct __bpf_usdt_spec)")
    if use_bpf_cookie is None:
        from .features import kernel_version

        use_bpf_cookie = kernel_version() >= (5, 15, 0)
    if not use_bpf_cookie:
        if ip_map is None:
            raise LinkError(f"cannot attach {what} without BPF cookies: the program has no __bpf_usdt_ip_to_spec_id map")
        if elf.type == ET_DYN and pid is None:
            raise NotSupportedError(f"USDT in shared objects or PIE ({path}) for all processes", "5.15",
                                    reason="without BPF cookies the probe address must be known: pass pid=")
    specs = [site.spec(cookie) for site in sites]
    unique = list(dict.fromkeys(specs))
    ids = _reserve_ids(specs_map, len(unique))
    id_of = dict(zip(unique, ids))
    links: list[Link] = []
    ips: list[int] = []
    semaphores: list[tuple[int, int]] = []
    map_id = specs_map.id
    try:
        for spec, spec_id in id_of.items():
            specs_map.update_raw(spec_id.to_bytes(4, "little"), spec)
        for site, spec in zip(sites, specs):
            spec_id = id_of[spec]
            offset = elf.vaddr_to_offset(site.address)
            ref_ctr = 0
            if site.semaphore:
                if pid is None:
                    ref_ctr = elf.vaddr_to_offset(site.semaphore)
                else:
                    addr = _runtime_address(pid, path, elf, site.semaphore)
                    _adjust_semaphore(pid, addr, +1)
                    semaphores.append((pid, addr))
            if not use_bpf_cookie:
                ip = site.address if pid is None else _runtime_address(pid, path, elf, site.address)
                ip_map.update_raw(ip.to_bytes(8, "little", signed=True), spec_id.to_bytes(4, "little"))
                ips.append(ip)
            site_what = f"usdt {path}:{site.provider}:{site.name} at {site.address:#x}"
            fd = open_uprobe(path, offset, pid, False, ref_ctr)
            links.append(attach_perf_fd(prog, fd, site_what, spec_id if use_bpf_cookie else 0))
    except BaseException as exc:
        for link in links:
            link.close()
        for p, addr in semaphores:
            try:
                _adjust_semaphore(p, addr, -1)
            except OSError:
                pass
        if ip_map is not None:
            for ip in ips:
                ip_map.delete_raw(ip.to_bytes(8, "little", signed=True))
        _release_ids(map_id, ids)
        if isinstance(exc, OSError) and not isinstance(exc, BPFError):
            raise LinkError(f"cannot attach {what}: {exc}") from None
        raise
    held_ip_map = None
    if ips:
        from .maps import Map

        held_ip_map = Map.from_id(ip_map.id)
    desc = f"{what} ({len(sites)} site{'s' if len(sites) != 1 else ''}" + (f", pid {pid})" if pid else ")")
    return USDTLink(links, program=prog, description=desc, specs_map_id=map_id, spec_ids=ids, ip_map=held_ip_map,
                    ips=ips, semaphores=semaphores)


__all__ = ["REGISTER_OFFSETS", "USDTArgument", "USDTLink", "USDTProbe", "attach_usdt", "parse_argument",
           "usdt_probes"]
