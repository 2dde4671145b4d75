"""Bad input: every malformed object is a precise pybpf error, never a traceback from deep inside."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from conftest import compile_bpf
from pybpf.elf import ELFFile
from pybpf.errors import BPFError, BTFError, ELFError, ObjectError
from pybpf.object import ObjectSpec
from pybpf.btf import BTF

SOURCE = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
typedef int myint;
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 8); __type(key, myint); __type(value, long); } m SEC(".maps");
const volatile int limit = 3;
static __noinline int sub(int x) { return x + limit; }
SEC("socket") int prog(void *ctx) { myint k = sub(1); return bpf_map_lookup_elem(&m, &k) != 0; }
char LICENSE[] SEC("license") = "GPL";
"""


@pytest.fixture(scope="module")
def good() -> bytes:
    return compile_bpf(SOURCE, name="errors").read_bytes()


def _section(data: bytes, name: str):
    return ELFFile(data).section(name)


def _parse(data: bytes) -> ObjectSpec:
    return ObjectSpec.from_bytes(data, name="errors")


def test_the_unmodified_object_parses(good):
    spec = _parse(good)
    assert list(spec.programs) == ["prog"] and "m" in spec.maps


@pytest.mark.parametrize("data, message", [
    (b"", "too short for an ELF header"),
    (b"\x7fELF" + bytes(10), "too short"),
    (b"MZ" + bytes(100), "not an ELF file"),
])
def test_not_an_elf(data, message):
    with pytest.raises(ELFError, match=message):
        _parse(data)


def test_wrong_class_endianness_machine_and_type(good):
    bad = bytearray(good)
    bad[4] = 1
    with pytest.raises(ELFError, match="ELFCLASS64"):
        _parse(bytes(bad))
    bad = bytearray(good)
    bad[5] = 2
    with pytest.raises(ELFError, match="big-endian"):
        _parse(bytes(bad))
    bad = bytearray(good)
    bad[18:20] = struct.pack("<H", 62)
    with pytest.raises(ELFError, match="not EM_BPF"):
        _parse(bytes(bad))
    bad = bytearray(good)
    bad[16:18] = struct.pack("<H", 2)
    with pytest.raises(ELFError, match="not a relocatable object"):
        _parse(bytes(bad))


def test_truncated_file_names_the_section(good):
    with pytest.raises(ELFError, match="run past the end|too short|section"):
        _parse(good[: len(good) // 2])


def test_a_directory_or_missing_file():
    with pytest.raises(ObjectError, match="is a directory"):
        ObjectSpec.from_file(Path(__file__).parent)
    with pytest.raises(FileNotFoundError):
        ObjectSpec.from_file("/nonexistent/x.o")


def _record_offsets(blob: bytes) -> list[int]:
    """Byte offset of each type record (index = type id - 1), walked here independently of the parser."""
    hdr_len, type_off, type_len = struct.unpack_from("<III", blob, 4)
    pos, end, out = hdr_len + type_off, hdr_len + type_off + type_len, []
    extra = {1: 4, 3: 12, 4: 12, 5: 12, 6: 8, 13: 8, 14: 4, 15: 12, 17: 4, 19: 12}
    while pos < end:
        info = struct.unpack_from("<I", blob, pos + 4)[0]
        kind, vlen = (info >> 24) & 0x1F, info & 0xFFFF
        out.append(pos)
        per = extra.get(kind, 0)
        pos += 12 + (per * vlen if kind in (4, 5, 6, 13, 15, 19) else per)
    return out


def _patch_btf(good: bytes, patch) -> bytes:
    sec = _section(good, ".BTF")
    blob = bytearray(sec.data)
    patch(blob, BTF.from_bytes(bytes(blob)), _record_offsets(bytes(blob)))
    data = bytearray(good)
    data[sec.offset:sec.offset + sec.size] = blob
    return bytes(data)


def test_btf_bad_magic(good):
    data = _patch_btf(good, lambda blob, btf, offsets: blob.__setitem__(slice(0, 2), b"\x00\x00"))
    with pytest.raises(BTFError, match="magic"):
        _parse(data)


def test_btf_string_offset_out_of_range(good):
    def patch(blob, btf, offsets):
        pos = offsets[0]
        blob[pos:pos + 4] = struct.pack("<I", 0x7FFFFFF)
    with pytest.raises(BTFError, match="string"):
        _parse(_patch_btf(good, patch))


def test_btf_dangling_type_id(good):
    def patch(blob, btf, offsets):
        tid = btf.find("myint", "typedef").id
        pos = offsets[tid - 1]
        blob[pos + 8:pos + 12] = struct.pack("<I", 99999)
    with pytest.raises(BTFError, match="99999"):
        _parse(_patch_btf(good, patch))


def test_btf_type_loop_is_detected_not_followed(good):
    def patch(blob, btf, offsets):
        tid = btf.find("myint", "typedef").id
        pos = offsets[tid - 1]
        blob[pos + 8:pos + 12] = struct.pack("<I", tid)
    with pytest.raises(BTFError, match="loop"):
        _parse(_patch_btf(good, patch))


def test_btf_unknown_kind_and_truncated_types(good):
    def unknown(blob, btf, offsets):
        pos = offsets[0]
        blob[pos + 4:pos + 8] = struct.pack("<I", 31 << 24)
    with pytest.raises(BTFError, match="kind 31"):
        _parse(_patch_btf(good, unknown))

    def truncate(blob, btf, offsets):
        blob[12:16] = struct.pack("<I", struct.unpack_from("<I", blob, 12)[0] - 8)
    with pytest.raises(BTFError, match="past|truncated|short|end"):
        _parse(_patch_btf(good, truncate))


def test_btf_ext_bad_record_size(good):
    sec = _section(good, ".BTF.ext")
    data = bytearray(good)
    hdr_len, func_off = struct.unpack_from("<II", data, sec.offset + 4)
    data[sec.offset + hdr_len + func_off:sec.offset + hdr_len + func_off + 4] = struct.pack("<I", 3)
    with pytest.raises(BTFError, match="section .BTF.ext.*record size 3"):
        _parse(bytes(data))


def test_relocation_outside_its_section(good):
    elf = ELFFile(good)
    rel = next(s for s in elf.sections if s.name == ".relsocket")
    data = bytearray(good)
    data[rel.offset:rel.offset + 8] = struct.pack("<Q", 0x100000)
    with pytest.raises(ELFError, match="relocation 0 at 0x100000 lies outside socket"):
        _parse(bytes(data))


def test_relocation_against_a_missing_symbol(good):
    elf = ELFFile(good)
    rel = next(s for s in elf.sections if s.name == ".relsocket")
    data = bytearray(good)
    info = struct.unpack_from("<Q", data, rel.offset + 8)[0]
    data[rel.offset + 8:rel.offset + 16] = struct.pack("<Q", (5000 << 32) | (info & 0xFFFFFFFF))
    with pytest.raises(ELFError, match="names symbol 5000"):
        _parse(bytes(data))


def test_relocation_on_an_instruction_that_cannot_take_one(good):
    elf = ELFFile(good)
    rel = next(s for s in elf.sections if s.name == ".relsocket")
    data = bytearray(good)
    data[rel.offset:rel.offset + 8] = struct.pack("<Q", 8)  # instruction #1 is a store: no relocation fits
    with pytest.raises(ObjectError, match="neither a call nor an ld_imm64"):
        _parse(bytes(data))


def test_function_symbol_crossing_its_section(good):
    elf = ELFFile(good)
    symtab = elf.symtab
    sym = next(s for s in elf.symbols if s.name == "prog")
    data = bytearray(good)
    pos = symtab.offset + sym.index * 24
    data[pos + 16:pos + 24] = struct.pack("<Q", 1 << 20)
    with pytest.raises(ELFError, match="program 'prog' .* crosses the end of its section"):
        _parse(bytes(data))


def test_every_error_is_a_bpf_error(good):
    """The classes above are all BPFError: one except clause covers them (the CLI prints one line)."""
    for exc in (ELFError, BTFError, ObjectError):
        assert issubclass(exc, BPFError)


def test_cli_prints_one_line(tmp_path, good):
    from conftest import run_cli

    bad = tmp_path / "bad.o"
    bad.write_bytes(good[:200])
    proc = run_cli("object", "show", bad)
    assert proc.returncode == 1
    err = proc.stderr.decode().strip().splitlines()
    assert len(err) == 1 and err[0].startswith("pybpf: error:") and "Traceback" not in proc.stderr.decode()
