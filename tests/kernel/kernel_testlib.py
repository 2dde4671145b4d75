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
from pybpf.kernel import Map, MapType, Program, SourceLine
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
           name: str = "test", **load_options) -> Loaded:
    obj = compile_bpf(PREAMBLE + source, name=name)
    elf = ELFFile.from_file(obj)
    text = elf.section(section)
    assert text is not None, f"no section {section} in {obj}"
    insns = [Instruction.decode(text.data, off) for off in _slot_offsets(text.data)]
    by_slot = {off // 8: i for i, off in enumerate(_slot_offsets(text.data))}
    data_maps: dict[str, Map] = {}
    for rel, target in elf.relocation_sections():
        if target.name != section:
            continue
        for r in elf.relocations(rel):
            sym = elf.symbols[r.symbol]
            i = by_slot[r.offset // 8]
            sec = elf.section_at(sym.shndx) if sym.shndx and sym.shndx < len(elf.sections) else None
            if maps and sym.name in maps:
                insns[i] = insns[i].replace(src=PSEUDO_MAP_FD, imm=maps[sym.name].fd)
            elif sec is not None and sec.name in _DATA_SECTIONS:
                m = data_maps.get(sec.name) or _data_map(sec, data_maps)
                off = insns[i].imm + (0 if sym.type == STT_SECTION else sym.value)
                insns[i] = insns[i].replace(src=PSEUDO_MAP_VALUE, imm=m.fd | (off << 32))
            else:
                raise AssertionError(f"test helper cannot relocate symbol {sym.name!r} (section {sec and sec.name})")
    prog = Program.load(prog_type, insns, name=name, section=section, **load_options)
    names = {s.index: s.name for s in elf.sections}
    variables = {sym.name: (names[sym.shndx], sym.value) for sym in elf.symbols
                 if sym.type == STT_OBJECT and names.get(sym.shndx) in data_maps}
    return Loaded(prog, data_maps, variables)


def _slot_offsets(data) -> list[int]:
    offs, off = [], 0
    while off < len(data):
        offs.append(off)
        off += 16 if data[off] == 0x18 else 8
    return offs


def _data_map(sec, data_maps: dict[str, Map]) -> Map:
    size = max(sec.size, 1)
    m = Map.create(MapType.ARRAY, 4, size, 1, name=sec.name)
    if sec.name != ".bss":
        m.update_raw((0).to_bytes(4, "little"), bytes(sec.data).ljust(size, b"\0"))
    data_maps[sec.name] = m
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
