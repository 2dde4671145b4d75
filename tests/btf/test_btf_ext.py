""".BTF.ext: func_info, line_info and CO-RE relocations of clang objects, checked against the
source text, the ELF symbols and the instructions they point at."""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import pytest
from btf_testlib import ALL_KINDS
from conftest import compile_bpf, run_cli

from pybpf.btf import BTF, BTFExt, CoreReloKind, FuncInfo
from pybpf.elf.reader import STT_FUNC, ELFFile
from pybpf.errors import BTFError

CORE_SOURCE = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

struct task_struct {
    int pid;
    int tgid;
    struct { long vruntime; } se;
    union { int flags_word; struct { unsigned int a:4, b:4; }; };
} __attribute__((preserve_access_index));
enum myenum { MY_A = 1, MY_B = 2 };

SEC("raw_tracepoint/sched_switch")
int on_switch(struct bpf_raw_tracepoint_args *ctx)
{
    struct task_struct *prev = (struct task_struct *)ctx->args[1];
    int pid = BPF_CORE_READ(prev, pid);
    return pid + bpf_core_field_exists(prev->se.vruntime) + bpf_core_type_size(struct task_struct)
        + bpf_core_enum_value(enum myenum, MY_B) + BPF_CORE_READ_BITFIELD_PROBED(prev, b);
}

char LICENSE[] SEC("license") = "GPL";
"""


@pytest.fixture(scope="module")
def core_obj():
    return compile_bpf(CORE_SOURCE, name="btf_ext_core")


@pytest.fixture(scope="module")
def allkinds_obj():
    return compile_bpf(ALL_KINDS, name="btf_allkinds")


def test_line_info_matches_the_source(allkinds_obj):
    ext = BTFExt.from_elf(allkinds_obj)
    assert ext.line_info and ext.line_info_rec_size == 16
    total = 0
    for section, sec in ext.line_info.items():
        insn_count = ELFFile.from_file(allkinds_obj).section(section).size // 8
        for rec in sec:
            source = Path(rec.file_name).read_text().splitlines()
            assert source[rec.line - 1] == rec.line_text, rec
            assert 0 <= rec.column <= len(rec.line_text) + 1
            assert 0 <= rec.insn_index < insn_count
            total += 1
    assert total > 10
    handle_lines = [r.line_text.strip() for r in ext.lines_for("tracepoint/syscalls/sys_enter_execve")]
    assert handle_lines[0] == "int handle(void *ctx)"
    assert any("global_counter +=" in t for t in handle_lines)


def test_func_info_matches_elf_symbols(allkinds_obj):
    elf = ELFFile.from_file(allkinds_obj)
    ext = BTFExt.from_elf(elf)
    btf = ext.btf
    seen = {}
    for section, sec in ext.func_info.items():
        for rec in sec:
            assert isinstance(rec, FuncInfo)
            seen[btf.name_of(rec.type_id)] = (section, rec.insn_off)
    symbols = {(elf.section_at(s.shndx).name, s.value): s.name for s in elf.symbols if s.type == STT_FUNC}
    assert {name: symbols[where] for name, where in seen.items()} == {n: n for n in seen}
    assert set(seen) == {"handle", "helper", "local_helper"}
    assert ext.funcs_for("tracepoint/syscalls/sys_enter_execve")[0].to_kernel(0) == struct.pack(
        "<II", 0, btf.find("handle").id)


def test_core_relocations(core_obj):
    elf = ELFFile.from_file(core_obj)
    ext = BTFExt.from_elf(elf)
    btf = ext.btf
    relos = ext.relos_for("raw_tracepoint/sched_switch")
    specs = [(r.kind, r.spec(btf)) for r in relos]
    assert (CoreReloKind.FIELD_BYTE_OFFSET, "struct task_struct::pid") in specs
    assert (CoreReloKind.FIELD_EXISTS, "struct task_struct::se.vruntime") in specs
    assert (CoreReloKind.TYPE_SIZE, "struct task_struct") in specs
    assert (CoreReloKind.ENUMVAL_VALUE, "enum myenum::MY_B") in specs
    bitfield = [r for r in relos if r.spec(btf).endswith("::<anon 3>.<anon 1>.b")]
    assert {r.kind for r in bitfield} >= {CoreReloKind.FIELD_BYTE_OFFSET, CoreReloKind.FIELD_LSHIFT_U64,
                                          CoreReloKind.FIELD_RSHIFT_U64}
    vruntime = next(r for r in relos if r.kind == CoreReloKind.FIELD_EXISTS)
    assert vruntime.accessors == (0, 2, 0) and vruntime.kind.is_field
    # every relocation points at an instruction inside its section, on an instruction boundary
    code = elf.section("raw_tracepoint/sched_switch").data
    for r in relos:
        assert r.insn_off % 8 == 0 and r.insn_off < len(code)
    # enum relocation: an ld_imm64 carrying the enumerator's value
    enum_relo = next(r for r in relos if r.kind == CoreReloKind.ENUMVAL_VALUE)
    assert code[enum_relo.insn_off] == 0x18 and struct.unpack_from("<i", code, enum_relo.insn_off + 4)[0] == 2
    assert re.search(r"field_byte_offset +\[\d+\] 0:0 +struct task_struct::pid\n", ext.describe())


def test_round_trip_and_line_lookup(allkinds_obj):
    elf = ELFFile.from_file(allkinds_obj)
    ext = BTFExt.from_elf(elf)
    assert ext.to_bytes() == bytes(elf.section(".BTF.ext").data)
    again = BTFExt.from_bytes(ext.to_bytes(), ext.btf)
    assert again.line_info == ext.line_info and again.core_relos == ext.core_relos
    recs = ext.lines_for("tracepoint/syscalls/sys_enter_execve")
    second = recs[1]
    assert ext.line_at("tracepoint/syscalls/sys_enter_execve", second.insn_off) == second
    assert ext.line_at("tracepoint/syscalls/sys_enter_execve", second.insn_off + 0) is not None


def test_cli_ext(core_obj):
    text = run_cli("btf", "ext", str(core_obj), check=True).stdout.decode()
    assert "func_info:" in text and "on_switch" in text and "struct task_struct::se.vruntime" in text
    data = json.loads(run_cli("btf", "ext", str(core_obj), "--json", check=True).stdout)
    assert data["func_info"]["raw_tracepoint/sched_switch"][0]["name"] == "on_switch"
    assert any(r["kind"] == "field_exists" for r in data["core_relos"]["raw_tracepoint/sched_switch"])


# --- malformed .BTF.ext -------------------------------------------------------------------------


def _ext_and_btf(obj: Path) -> tuple[bytearray, BTF]:
    elf = ELFFile.from_file(obj)
    return bytearray(elf.section(".BTF.ext").data), BTF.from_elf(elf)


def test_bad_ext_headers(allkinds_obj):
    data, btf = _ext_and_btf(allkinds_obj)
    with pytest.raises(BTFError, match=r"section \.BTF\.ext, offset 0x0: 4 bytes is too short"):
        BTFExt.from_bytes(data[:4], btf)
    bad = bytearray(data)
    bad[0] = 0
    with pytest.raises(BTFError, match="bad .BTF.ext magic"):
        BTFExt.from_bytes(bad, btf)
    bad = bytearray(data)
    struct.pack_into("<I", bad, 12, 1 << 20)  # func_info_len
    with pytest.raises(BTFError, match="func_info subsection .* runs past the end"):
        BTFExt.from_bytes(bad, btf)


def test_bad_ext_records(allkinds_obj):
    data, btf = _ext_and_btf(allkinds_obj)
    hdr_len, func_off = struct.unpack_from("<II", data, 4)
    rec_size_at = hdr_len + func_off
    bad = bytearray(data)
    struct.pack_into("<I", bad, rec_size_at, 6)
    with pytest.raises(BTFError, match="func_info record size 6 is invalid"):
        BTFExt.from_bytes(bad, btf)
    bad = bytearray(data)
    struct.pack_into("<I", bad, rec_size_at + 4, 1 << 30)  # section name offset
    with pytest.raises(BTFError, match="func_info section name: string offset"):
        BTFExt.from_bytes(bad, btf)
    bad = bytearray(data)
    struct.pack_into("<I", bad, rec_size_at + 8, 1000)  # num_info
    with pytest.raises(BTFError, match="claims 1000 records"):
        BTFExt.from_bytes(bad, btf)
    bad = bytearray(data)
    struct.pack_into("<I", bad, rec_size_at + 16, 99999)  # first record's type id
    with pytest.raises(BTFError, match="refers to type id 99999"):
        BTFExt.from_bytes(bad, btf)
