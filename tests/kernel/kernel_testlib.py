"""Helpers for kernel tests: load clang-compiled BPF C until pybpf.object exists, netns, veth.

``load_c`` is deliberately small: it takes one program section from the ELF,
patches map references (maps the test created, by symbol name) and global
data (.rodata/.data/.bss become array maps, like libbpf does), and loads it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from conftest import LLVM_OBJDUMP, compile_bpf

from pybpf.elf.reader import ELFFile, STT_OBJECT, STT_SECTION
from pybpf.isa import Instruction
from pybpf.kernel import Map, MapFlags, MapType, Program, SourceLine
from pybpf.kernel.uapi import PSEUDO_MAP_FD, PSEUDO_MAP_VALUE

PREAMBLE = """
#include <linux/bpf.h>
#include <linux/types.h>
#include <bpf/bpf_helpers.h>
char LICENSE[] SEC("license") = "GPL";
"""

_DATA_SECTIONS = (".rodata", ".data", ".bss")

# bpf_printk's helper with the format on the stack (no .rodata needed)
PRINTK = r"""
SEC("tracepoint/syscalls/sys_enter_getppid")
int say(void *ctx)
{
    char fmt[] = "pybpf says %d";
    bpf_trace_printk(fmt, sizeof(fmt), (int)(bpf_get_current_pid_tgid() >> 32));
    return 0;
}
"""



@dataclass
class Loaded:
    """A program and the maps it owns (global data); close() closes them all."""

    program: Program
    data_maps: dict[str, Map] = field(default_factory=dict)
    globals: dict[str, tuple[str, int]] = field(default_factory=dict)  # name -> (section, offset)

    def close(self) -> None:
        self.program.close()
        for m in self.data_maps.values():
            m.close()

    def __enter__(self) -> "Loaded":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def global_u64(self, name: str) -> int:
        """The current value of a u64 global variable of the program."""
        section, offset = self.globals[name]
        raw = self.data_maps[section].lookup_raw((0).to_bytes(4, "little"))
        return int.from_bytes(raw[offset:offset + 8], "little")


def load_c(source: str, section: str, prog_type: MapType | int, maps: dict[str, Map] | None = None,
           name: str = "test", *, preamble: str = PREAMBLE, cflags: tuple[str, ...] = (),
           kconfig: dict[str, int] | None = None, **load_options) -> Loaded:
    """Load one program section; calls into .text are linked in, ``maps`` (by symbol name) patched in,
    .rodata/.data/.bss become array maps (.rodata read-only and frozen), and ``kconfig`` externs get
    a .kconfig map of u64 values."""
    obj = compile_bpf(preamble + source, name=name, cflags=cflags)
    elf = ELFFile.from_file(obj)
    main = elf.section(section)
    assert main is not None, f"no section {section} in {obj}"
    text = elf.section(".text")
    main_offs = _slot_offsets(main.data)
    main_slots = len(main.data) // 8
    insns = [Instruction.decode(main.data, off) for off in main_offs]
    index_of = {("main", off // 8): i for i, off in enumerate(main_offs)}
    if text is not None and text.size and _calls_text(elf, section):
        for off in _slot_offsets(text.data):
            index_of[("text", off // 8)] = len(insns)
            insns.append(Instruction.decode(text.data, off))
    data_maps: dict[str, Map] = {}
    externs = sorted({elf.symbols[r.symbol].name for rel, target in elf.relocation_sections()
                      if target.name in (section, ".text") for r in elf.relocations(rel)
                      if elf.symbols[r.symbol].shndx == 0})
    for rel, target in elf.relocation_sections():
        part = "main" if target.name == section else "text" if target.name == ".text" else None
        if part is None:
            continue
        for r in elf.relocations(rel):
            key = (part, r.offset // 8)
            if key not in index_of:
                continue  # .text not linked: nothing in it is used
            i = index_of[key]
            sym = elf.symbols[r.symbol]
            sec = elf.section_at(sym.shndx) if sym.shndx and sym.shndx < len(elf.sections) else None
            insn = insns[i]
            if insn.opcode == 0x85 and insn.src == 1:  # call to a function in .text
                target = main_slots + sym.value // 8 + insn.imm + 1  # final slot of the callee
                here = r.offset // 8 + (0 if part == "main" else main_slots)
                insns[i] = insn.replace(imm=target - (here + 1))
            elif maps and sym.name in maps:
                insns[i] = insn.replace(src=PSEUDO_MAP_FD, imm=maps[sym.name].fd)
            elif sec is not None and sec.name in _DATA_SECTIONS:
                m = data_maps.get(sec.name) or _data_map(sec, data_maps)
                off = (insn.imm & 0xFFFFFFFF) + (0 if sym.type == STT_SECTION else sym.value)
                insns[i] = insn.replace(src=PSEUDO_MAP_VALUE, imm=m.fd | (off << 32))
            elif sym.shndx == 0 and sym.name in externs:
                m = data_maps.get(".kconfig") or _kconfig_map(externs, kconfig or {}, data_maps)
                insns[i] = insn.replace(src=PSEUDO_MAP_VALUE, imm=m.fd | ((8 * externs.index(sym.name)) << 32))
            else:
                raise AssertionError(f"test helper cannot relocate symbol {sym.name!r} (section {sec and sec.name})")
    prog = Program.load(prog_type, insns, name=name, section=section, **load_options)
    names = {s.index: s.name for s in elf.sections}
    variables = {sym.name: (names[sym.shndx], sym.value) for sym in elf.symbols
                 if sym.type == STT_OBJECT and names.get(sym.shndx) in data_maps}
    return Loaded(prog, data_maps, variables)


def _calls_text(elf: ELFFile, section: str) -> bool:
    for rel, target in elf.relocation_sections():
        if target.name == section:
            for r in elf.relocations(rel):
                sym = elf.symbols[r.symbol]
                if sym.shndx and sym.shndx < len(elf.sections) and elf.section_at(sym.shndx).name == ".text":
                    return True
    return False


def _slot_offsets(data) -> list[int]:
    offs, off = [], 0
    while off < len(data):
        offs.append(off)
        off += 16 if data[off] == 0x18 else 8
    return offs


def _data_map(sec, data_maps: dict[str, Map]) -> Map:
    size = max(sec.size, 1)
    flags = MapFlags.RDONLY_PROG if sec.name == ".rodata" else 0
    m = Map.create(MapType.ARRAY, 4, size, 1, name=sec.name, flags=flags)
    if sec.name != ".bss":
        m.update_raw((0).to_bytes(4, "little"), bytes(sec.data).ljust(size, b"\0"))
    if sec.name == ".rodata":
        m.freeze()  # bpf_snprintf/seq_printf formats must live in a frozen read-only map
    data_maps[sec.name] = m
    return m


def _kconfig_map(externs: list[str], values: dict[str, int], data_maps: dict[str, Map]) -> Map:
    missing = [e for e in externs if e not in values]
    assert not missing, f"give kconfig= values for the externs {missing}"
    m = Map.create(MapType.ARRAY, 4, 8 * len(externs), 1, name=".kconfig", flags=MapFlags.RDONLY_PROG)
    m.update_raw((0).to_bytes(4, "little"), b"".join(values[e].to_bytes(8, "little") for e in externs))
    m.freeze()
    data_maps[".kconfig"] = m
    return m


def source_lines(obj: Path, section: str) -> list[SourceLine]:
    """Line info per instruction from the reference disassembler (llvm-objdump -l)."""
    out = subprocess.run([LLVM_OBJDUMP, "-d", "-l", "--no-show-raw-insn", f"--section={section}", str(obj)],
                         capture_output=True, text=True, check=True).stdout
    lines: list[SourceLine] = []
    where = None
    for ln in out.splitlines():
        m = re.match(r"^; (\S+):(\d+)", ln)
        if m:
            where = (m.group(1), int(m.group(2)))
            continue
        m = re.match(r"^\s*(\d+):\s", ln)
        if m and where:
            path, line = where
            text = ""
            try:
                text = Path(path).read_text().splitlines()[line - 1]
            except (OSError, IndexError):
                pass
            lines.append(SourceLine(int(m.group(1)), path, line, 0, text))
            where = None
    return lines


# --- network namespaces and veth pairs --------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000


@contextlib.contextmanager
def inside_netns(name: str):
    """Run the block with this thread in network namespace ``name`` (sockets made there stay there)."""
    home = os.open("/proc/self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if _libc.setns(target, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {name}")
        yield
    finally:
        _libc.setns(home, CLONE_NEWNET)
        os.close(home)
        os.close(target)


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@contextlib.contextmanager
def veth_pair_in_namespaces():
    """Two fresh netns joined by a veth pair: (ns_a, if_a, addr_a, ns_b, if_b, addr_b), removed afterwards."""
    tag = f"{os.getpid() % 100000}{uuid.uuid4().hex[:4]}"
    ns_a, ns_b = f"pybpf-a{tag}", f"pybpf-b{tag}"
    if_a, if_b = f"pva{tag}"[:15], f"pvb{tag}"[:15]
    octet = os.getpid() % 250 + 1
    addr_a, addr_b = f"198.18.{octet}.1", f"198.18.{octet}.2"
    try:
        ip("netns", "add", ns_a)
        ip("netns", "add", ns_b)
        ip("link", "add", if_a, "type", "veth", "peer", "name", if_b)
        ip("link", "set", if_a, "netns", ns_a)
        ip("link", "set", if_b, "netns", ns_b)
        ip("-n", ns_a, "addr", "add", f"{addr_a}/24", "dev", if_a)
        ip("-n", ns_b, "addr", "add", f"{addr_b}/24", "dev", if_b)
        ip("-n", ns_a, "link", "set", if_a, "up")
        ip("-n", ns_b, "link", "set", if_b, "up")
        ip("-n", ns_a, "link", "set", "lo", "up")
        ip("-n", ns_b, "link", "set", "lo", "up")
        yield ns_a, if_a, addr_a, ns_b, if_b, addr_b
    finally:
        for ns in (ns_a, ns_b):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def open_fds() -> set[int]:
    return {int(n) for n in os.listdir("/proc/self/fd")}


# --- cgroups ------------------------------------------------------------------------


@contextlib.contextmanager
def child_cgroup():
    """A fresh cgroup v2 directory under the cgroup2 root, removed afterwards (its processes must be gone)."""
    from pybpf.kernel.cgroup import cgroup2_root

    path = os.path.join(cgroup2_root(), f"pybpf_test_{os.getpid()}_{uuid.uuid4().hex[:6]}")
    os.mkdir(path)
    try:
        yield path
    finally:
        for _ in range(100):
            try:
                os.rmdir(path)
                break
            except OSError as exc:
                if exc.errno != 16:  # EBUSY: a zombie still counted in the cgroup
                    raise
                import time

                time.sleep(0.01)


def run_in_cgroup(path: str, action) -> int:
    """Fork; the child joins cgroup ``path``, runs ``action()`` and exits with its return value
    (0 when it returns None, 99 on an exception).  Returns the child's exit status."""
    pid = os.fork()
    if pid == 0:
        code = 99
        try:
            with open(os.path.join(path, "cgroup.procs"), "w") as f:
                f.write("0")
            result = action()
            code = 0 if result is None else int(result)
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


# --- vmlinux BTF, through the reference tool ---------------------------------------

VMLINUX_PREAMBLE = """
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
char LICENSE[] SEC("license") = "GPL";
"""


def vmlinux_include() -> tuple[str, ...]:
    """cflags that make '#include "vmlinux.h"' work (generated once per kernel by bpftool)."""
    from conftest import CACHE

    d = CACHE / f"vmlinux-{os.uname().release}"
    header = d / "vmlinux.h"
    if not header.exists():
        d.mkdir(parents=True, exist_ok=True)
        out = subprocess.run(["bpftool", "btf", "dump", "file", "/sys/kernel/btf/vmlinux", "format", "c"],
                             capture_output=True, check=True).stdout
        tmp = header.with_suffix(".tmp")
        tmp.write_bytes(out)
        os.replace(tmp, header)
    return ("-I", str(d))


_btf_ids: dict[tuple[str, str], int] | None = None


def vmlinux_btf_id(name: str, kind: str = "FUNC") -> int:
    """The vmlinux BTF type id of ``name`` (a FUNC, TYPEDEF, STRUCT...), from bpftool's dump."""
    global _btf_ids
    if _btf_ids is None:
        out = subprocess.run(["bpftool", "btf", "dump", "file", "/sys/kernel/btf/vmlinux"], capture_output=True,
                             text=True, check=True).stdout
        _btf_ids = {}
        for m in re.finditer(r"^\[(\d+)\] (\w+) '([^']*)'", out, re.M):
            _btf_ids.setdefault((m.group(3), m.group(2)), int(m.group(1)))
    return _btf_ids[(name, kind)]


def build_c_binary(source: str, name: str, flags: tuple[str, ...] = ("-O1",)) -> Path:
    """A native test program compiled with gcc, cached by source and flags."""
    import hashlib

    from conftest import CACHE

    CACHE.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha256(("\0".join(flags) + source).encode()).hexdigest()[:12]
    out = CACHE / f"{name}-{key}"
    if not out.exists():
        src = out.with_suffix(".c")
        src.write_text(source)
        subprocess.run(["gcc", *flags, "-o", str(out) + ".tmp", str(src)], check=True)
        os.replace(str(out) + ".tmp", out)
    return out
