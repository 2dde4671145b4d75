"""The ELF reader on real objects and on damaged ones: every defect is an ELFError with a place."""

import shutil
import struct

import pytest

from conftest import compile_bpf
from pybpf.elf import ELFFile
from pybpf.elf.reader import EM_BPF, R_BPF_64_64, SHT_SYMTAB
from pybpf.errors import ELFError

SOURCE = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1); __type(key, int); __type(value, long); } m SEC(".maps");
SEC("xdp") int f(struct xdp_md *ctx) { int k = 0; long *v = bpf_map_lookup_elem(&m, &k); if (v) __sync_fetch_and_add(v, 1); return XDP_PASS; }
char LICENSE[] SEC("license") = "GPL";
"""


@pytest.fixture(scope="module")
def obj_bytes():
    return compile_bpf(SOURCE, name="elf_reader").read_bytes()


def test_sections_symbols_and_relocations(obj_bytes):
    elf = ELFFile(obj_bytes)
    assert elf.machine == EM_BPF
    assert elf.section("xdp").is_executable
    assert elf.symtab.type == SHT_SYMTAB
    names = {s.name: s for s in elf.symbols}
    assert names["f"].shndx == elf.section("xdp").index
    assert names["m"].shndx == elf.section(".maps").index
    rel, target = next((r, t) for r, t in elf.relocation_sections() if t.name == "xdp")
    (reloc,) = elf.relocations(rel)
    assert reloc.type == R_BPF_64_64 and elf.symbols[reloc.symbol].name == "m"


def test_reads_a_host_executable_for_uprobes():
    path = shutil.which("true") or "/bin/true"
    elf = ELFFile.from_file(path, machine=None)
    assert elf.segments and elf.dynamic_symbols


@pytest.mark.parametrize("data, message", [
    (b"", "too short"),
    (b"\x7fELG" + bytes(60), "not an ELF file"),
    (b"\x7fELF\x01\x01" + bytes(58), "not ELFCLASS64"),
    (b"\x7fELF\x02\x02" + bytes(58), "big-endian"),
])
def test_bad_headers(data, message):
    with pytest.raises(ELFError, match=message):
        ELFFile(data)


def test_wrong_machine_is_named(obj_bytes):
    data = bytearray(obj_bytes)
    struct.pack_into("<H", data, 18, 62)
    with pytest.raises(ELFError, match="not EM_BPF"):
        ELFFile(bytes(data))


def test_truncated_file_names_the_section(obj_bytes):
    with pytest.raises(ELFError, match="run past the end"):
        ELFFile(obj_bytes[: len(obj_bytes) // 2])


def test_relocation_outside_its_section(obj_bytes):
    elf = ELFFile(obj_bytes)
    rel, target = next((r, t) for r, t in elf.relocation_sections() if t.name == "xdp")
    data = bytearray(obj_bytes)
    struct.pack_into("<Q", data, rel.offset, target.size + 64)  # r_offset of the first entry
    with pytest.raises(ELFError, match=r"section \.relxdp.*outside xdp"):
        bad = ELFFile(bytes(data))
        bad.relocations(bad.section(".relxdp"))
