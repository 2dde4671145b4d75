"""Malformed BTF: precise BTFErrors (structure and offset), never another exception or a hang.

The fuzz test mutates a real object's BTF with hypothesis and runs everything a
user would (parse, dump raw and C, build every type, sizes, codecs): each step
either works or raises BTFError (MapError for codecs).
"""

from __future__ import annotations

import struct

import pytest
from btf_testlib import ALL_KINDS
from conftest import compile_bpf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pybpf.btf import BTF, Const, Int, Kind, Member, Struct, Typedef
from pybpf.btf.cdump import dump_c
from pybpf.btf.rawdump import dump_raw
from pybpf.errors import BTFError, MapError


@pytest.fixture(scope="module")
def good() -> bytes:
    return BTF.from_file(compile_bpf(ALL_KINDS, name="btf_allkinds")).to_bytes()


def _header(data: bytes) -> list[int]:
    return list(struct.unpack_from("<HBBIIIII", data))


def _with_header(data: bytes, **fields: int) -> bytes:
    names = ["magic", "version", "flags", "hdr_len", "type_off", "type_len", "str_off", "str_len"]
    values = _header(data)
    for k, v in fields.items():
        values[names.index(k)] = v
    return struct.pack("<HBBIIIII", *values) + data[24:]


def _patch_word(data: bytes, offset: int, value: int) -> bytes:
    out = bytearray(data)
    struct.pack_into("<I", out, offset, value)
    return bytes(out)


# --- header and layout -------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 3, 23])
def test_truncated_header(good, size):
    with pytest.raises(BTFError, match=rf"section BTF header, offset 0x0: .*{size} bytes is too short"):
        BTF.from_bytes(good[:size])


def test_bad_header_fields(good):
    with pytest.raises(BTFError, match="bad BTF magic 0x1234"):
        BTF.from_bytes(_with_header(good, magic=0x1234))
    with pytest.raises(BTFError, match="version 2 is not supported"):
        BTF.from_bytes(_with_header(good, version=2))
    with pytest.raises(BTFError, match="unknown BTF header flags"):
        BTF.from_bytes(_with_header(good, flags=1))
    with pytest.raises(BTFError, match="header length 8 is shorter"):
        BTF.from_bytes(_with_header(good, hdr_len=8))
    with pytest.raises(BTFError, match="header length .* is larger than the data"):
        BTF.from_bytes(_with_header(good, hdr_len=1 << 20))
    h = _header(good)
    with pytest.raises(BTFError, match=r"type section \(\d+ bytes at 0\) runs past the end"):
        BTF.from_bytes(_with_header(good, type_len=h[5] + h[7] + 4))
    with pytest.raises(BTFError, match=r"string section .* runs past the end"):
        BTF.from_bytes(_with_header(good, str_len=h[7] + 1))
    with pytest.raises(BTFError, match="type section offset 2 is not 4-byte aligned"):
        BTF.from_bytes(_with_header(good, type_off=2))
    with pytest.raises(BTFError, match="not a multiple of 4"):
        BTF.from_bytes(_with_header(good, type_len=h[5] - 2))
    with pytest.raises(BTFError, match="overlap"):
        BTF.from_bytes(_with_header(good, str_off=h[6] - 8, str_len=h[7]))


def test_truncated_type_section_names_the_type(good):
    h = _header(good)
    # cut the type section in the middle of a struct's members
    btf = BTF.from_bytes(good)
    event = btf.find("struct event")
    cut = btf._byte_offset(event.id, 6) - 24
    bad = _with_header(good, type_len=cut, str_off=cut)[:24 + cut] + good[24 + h[6]:]
    with pytest.raises(BTFError, match=rf"type \[{event.id}\] STRUCT \(vlen {len(event.members)}\) is truncated"):
        BTF.from_bytes(bad)


def test_unknown_kind(good):
    btf = BTF.from_bytes(good)
    at = btf._byte_offset(5, 1)
    with pytest.raises(BTFError, match=rf"offset {at - 4:#x}: .*type \[5\] has unknown kind 25"):
        BTF.from_bytes(_patch_word(good, at, 25 << 24))


def test_string_section_rules(good):
    h = _header(good)
    bad = bytearray(good)
    bad[24 + h[6]] = ord("x")
    with pytest.raises(BTFError, match="must start with an empty string"):
        BTF.from_bytes(bytes(bad))
    bad = bytearray(good)
    bad[-1] = ord("x")
    with pytest.raises(BTFError, match="does not end with a NUL"):
        BTF.from_bytes(bytes(bad))


# --- references ------------------------------------------------------------------------------------


def test_dangling_type_id(good):
    btf = BTF.from_bytes(good)
    event = btf.find("struct event")
    at = btf._byte_offset(event.id, 3 + 3 * 2 + 1)  # member 2's type
    bad = _patch_word(good, at, 5000)
    with pytest.raises(BTFError, match=rf"offset {at:#x}: .*type \[{event.id}\] STRUCT 'event': member 2 refers to "
                                       rf"type id 5000, but the last type id is"):
        BTF.from_bytes(bad)
    lazy = BTF.from_bytes(bad, validate=False)
    with pytest.raises(BTFError, match="member 2 refers to type id 5000"):
        lazy[event.id]
    with pytest.raises(BTFError, match="type id 5000"):
        dump_c(lazy)


def test_string_offset_out_of_range(good):
    btf = BTF.from_bytes(good)
    inner = btf.find("struct inner")
    at = btf._byte_offset(inner.id, 0)
    bad = _patch_word(good, at, 0xFFFFF)
    with pytest.raises(BTFError, match=rf"offset {at:#x}: .*type \[{inner.id}\] STRUCT .*name string offset 1048575 "
                                       r"is outside the string section"):
        BTF.from_bytes(bad)
    lazy = BTF.from_bytes(bad, validate=False)
    with pytest.raises(BTFError, match="string offset 1048575 is outside the string section"):
        lazy[inner.id]
    with pytest.raises(BTFError, match="string offset 1048575"):
        dump_raw(lazy)


def _looped() -> bytes:
    """typedef a -> const -> typedef a: a loop no pointer breaks."""
    b = BTF.new()
    i = b.add(Int(name="int", size=4))
    td = b.add(Typedef(name="a", type_id=i))
    c = b.add(Const(type_id=td))
    b.replace(td, Typedef(name="a", type_id=c))
    return b.to_bytes()


def test_type_loops_are_reported_not_followed():
    data = _looped()
    with pytest.raises(BTFError, match=r"type loop not broken by a pointer: \[2\] TYPEDEF 'a' -> \[3\] CONST "
                                       r"'\(anon\)' -> \[2\] TYPEDEF 'a'"):
        BTF.from_bytes(data)
    lazy = BTF.from_bytes(data, validate=False)
    with pytest.raises(BTFError, match="type loop"):
        lazy.resolve(2)
    with pytest.raises(BTFError, match="type loop"):
        lazy.sizeof(3)
    with pytest.raises(BTFError, match="type loop"):
        lazy.alignof(2)
    with pytest.raises(BTFError, match="loop"):
        dump_c(lazy)
    assert "TYPEDEF 'a' type_id=3" in dump_raw(lazy)  # listing raw records needs no resolving


def test_struct_containing_itself():
    b = BTF.new()
    i = b.add(Int(name="int", size=4))
    s = b.add(Struct(name="s", size=8, members=(Member("x", i, 0),)))
    b.replace(s, Struct(name="s", size=8, members=(Member("x", i, 0), Member("self", s, 32))))
    data = b.to_bytes()
    with pytest.raises(BTFError, match=r"type loop not broken by a pointer: \[2\] STRUCT 's' -> \[2\]"):
        BTF.from_bytes(data)
    lazy = BTF.from_bytes(data, validate=False)
    with pytest.raises(BTFError, match="contains itself"):
        dump_c(lazy)
    with pytest.raises(BTFError, match="loop"):
        lazy.codec("struct s")
    with pytest.raises(BTFError, match="loop"):
        lazy.alignof("s")


def test_pointer_loops_without_a_struct_are_loops():
    b = BTF.new()
    td = b.add(Typedef(name="t", type_id=0))
    from pybpf.btf import Pointer

    p = b.add(Pointer(type_id=td))
    b.replace(td, Typedef(name="t", type_id=p))
    with pytest.raises(BTFError, match="loop"):
        BTF.from_bytes(b.to_bytes())
    lazy = BTF.from_bytes(b.to_bytes(), validate=False)
    with pytest.raises(BTFError, match="loop|does not end"):
        dump_c(lazy)


# --- fuzzing ---------------------------------------------------------------------------------------


def _exercise(data: bytes) -> None:
    """Everything a user might do with BTF; only our own errors may come out."""
    try:
        btf = BTF.from_bytes(data)
    except BTFError:
        return
    try:
        dump_raw(btf)
        dump_c(btf)
        for t in btf:
            if t.kind in (Kind.STRUCT, Kind.UNION, Kind.INT, Kind.ARRAY, Kind.TYPEDEF, Kind.ENUM, Kind.ENUM64):
                try:
                    btf.sizeof(t.id)
                    btf.alignof(t.id)
                    codec = btf.codec(t.id)
                    codec.decode(codec.encode(bytes(codec.size)))
                except (BTFError, MapError):
                    pass
            btf.find_all(t.name) if t.name else None
        BTF.from_bytes(btf.to_bytes())
    except BTFError:
        pass


@st.composite
def mutations(draw, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "word", "truncate", "insert"]))
        pos = draw(st.integers(0, max(0, len(out) - 1)))
        if op == "flip" and out:
            out[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "word" and len(out) >= 4:
            pos -= pos % 4
            struct.pack_into("<I", out, min(pos, len(out) - 4), draw(st.sampled_from(
                [0, 1, 2, 3, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, len(out), 1 << 24, 19 << 24, 0x80000000 | (4 << 24) | 2])))
        elif op == "truncate":
            del out[pos:]
        else:
            out[pos:pos] = draw(st.binary(min_size=1, max_size=12))
    return bytes(out)


def test_fuzz_mutated_btf(good):
    @settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
    @given(mutations(good))
    def run(data: bytes) -> None:
        _exercise(data)

    run()


def test_fuzz_mutated_type_records(good):
    """Mutations aimed at the type section only, so the header stays valid and records get parsed."""
    h = _header(good)
    start, end = 24 + h[4], 24 + h[4] + h[5]

    @settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(st.tuples(st.integers(start // 4, end // 4 - 1), st.integers(0, 0xFFFFFFFF) | st.integers(0, 64)),
                    min_size=1, max_size=4))
    def run(patches: list[tuple[int, int]]) -> None:
        out = bytearray(good)
        for word, value in patches:
            struct.pack_into("<I", out, word * 4, value)
        _exercise(bytes(out))

    run()
