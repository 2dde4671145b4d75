"""The value codec: every kind of member, round trips, errors, and agreement with C's layout."""

from __future__ import annotations

import pickle
import struct

import pytest
from btf_testlib import ALL_KINDS, needs_vmlinux
from conftest import compile_bpf
from hypothesis import given, settings
from hypothesis import strategies as st

from pybpf.btf import BTF, Record, UnionRecord, as_dict, kernel_btf
from pybpf.errors import BTFError, MapError

EVENT_SOURCE = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
struct event { int pid; char comm[16]; char filename[256]; unsigned long long ts; };
struct with_flex { unsigned short len; unsigned char data[]; };
struct deep { struct { union { struct { char tag[4]; unsigned char raw[3]; } s; int whole; } u; } outer[2]; _Bool ok; };
struct event e1 = {};
struct with_flex f1 = {};
struct deep d1 = {};
__int128 big1 = 0;
char LICENSE[] SEC("license") = "GPL";
"""


@pytest.fixture(scope="module")
def btf():
    return BTF.from_file(compile_bpf(ALL_KINDS, name="btf_allkinds"))


@pytest.fixture(scope="module")
def ev_btf():
    return BTF.from_file(compile_bpf(EVENT_SOURCE, name="btf_codec_event"))


FULL_EVENT = {
    "pid": 42, "comm": "bash", "in": {"x": 1, "c": 2}, "anon_named": {"ax": 5, "ay": -3}, "ua": 7,
    "big": "BIG_B", "sm": "S_A", "ti": 1, "fl": 1.5, "db": 2.25, "ptr": 0xDEAD, "tagged": 8, "cv": 9,
    "matrix": [[1, 2, 3], [4, 5, 6]], "fn": 0, "bf": {"a": 5, "b": 31, "c": -64, "d": (1 << 40) - 1, "e": 7},
    "ts": 123456789, "dtagged": -1, "ps": {"a": 1, "b": -2},
}


def test_struct_with_every_member_kind(btf):
    codec = btf.codec("struct event")
    assert codec.size == btf.sizeof("struct event")
    data = codec.encode(FULL_EVENT)
    ev = codec.decode(data)
    assert isinstance(ev, Record) and type(ev) is codec.record_class
    assert (ev.pid, ev.comm, ev.ua, ev.ub, ev.big, ev.sm, ev.fl, ev.db) == (42, "bash", 7, 7, 0xFFFFFFFFFF, -1, 1.5, 2.25)
    assert getattr(ev, "in") == {"x": 1, "c": 2}  # a member named like a Python keyword
    assert ev.anon_named.ay == -3 and ev.matrix == [[1, 2, 3], [4, 5, 6]]
    assert (ev.bf.a, ev.bf.b, ev.bf.c, ev.bf.d, ev.bf.e) == (5, 31, -64, (1 << 40) - 1, 7)
    assert ev.ps.b == -2
    assert codec.encode(ev) == data
    assert codec.decode(codec.encode(ev._asdict())) == ev
    assert as_dict(ev)["bf"] == {"a": 5, "b": 31, "c": -64, "d": (1 << 40) - 1, "e": 7}
    assert repr(ev).startswith("event(pid=42, comm='bash', in=inner(x=1, c=2)")
    assert ev == codec.decode(data) and hash(ev) == hash(codec.decode(data))
    assert pickle.loads(pickle.dumps(ev)) == as_dict(ev)


def test_layout_agrees_with_the_compiler(btf):
    """Encoded bytes put each member where the BTF (i.e. clang) says it lives."""
    t = btf.find("struct event")
    data = btf.codec(t).encode(FULL_EVENT)
    for name, fmt, want in (("pid", "<i", 42), ("ts", "<Q", 123456789), ("db", "<d", 2.25), ("ptr", "<Q", 0xDEAD)):
        assert struct.unpack_from(fmt, data, btf.member_offset(t, name))[0] == want
    assert data[btf.member_offset(t, "comm"):][:5] == b"bash\0"
    bits = int.from_bytes(data[btf.member_offset(t, "bf"):][:8], "little")
    assert bits & 7 == 5 and (bits >> 3) & 31 == 31 and (bits >> 15) & ((1 << 40) - 1) == (1 << 40) - 1


def test_scalars_strings_arrays(btf, ev_btf):
    assert btf.codec("int").decode(b"\xff\xff\xff\xff") == -1
    assert btf.codec("unsigned int").encode(7) == b"\x07\0\0\0"
    small = btf.codec("enum small")
    assert small.encode("S_B") == small.encode(2) and small.decode(small.encode("S_A")) == -1
    assert btf.codec("float").decode(struct.pack("<f", 0.5)) == 0.5
    comm = ev_btf.find("struct event").member("comm").type_id
    assert ev_btf.codec(comm).decode(b"ls\0junk" + bytes(9)) == "ls"
    assert ev_btf.codec(comm).encode(b"ab") == b"ab" + bytes(14)
    big = ev_btf.codec(ev_btf.find("big1").type_id)
    assert big.decode(big.encode(-(1 << 100))) == -(1 << 100)
    flex = ev_btf.codec("struct with_flex")
    assert flex.size == 2 and flex.decode(b"\x05\x00").data == b""
    deep = ev_btf.codec("struct deep")
    value = deep.decode(deep.encode({"outer": [{"u": {"s": {"tag": "ab", "raw": b"\x01\x02\x03"}}},
                                               {"u": {"whole": -1}}], "ok": True}))
    assert isinstance(value.outer[0].u, UnionRecord)
    assert value.outer[0].u.s.tag == "ab" and value.outer[0].u.s.raw == b"\x01\x02\x03"
    assert value.outer[1].u.whole == -1 and value.outer[1].u.s.tag == "\ufffd" * 4
    assert value.ok is True


def test_decode_many_and_batches(ev_btf):
    codec = ev_btf.codec("struct event")
    records = [{"pid": i, "comm": f"c{i}", "filename": f"/bin/{i}", "ts": i * 10} for i in range(50)]
    stride = codec.size + 8
    buf = b"".join(bytes(8) + codec.encode(r) for r in records)
    out = codec.decode_many(buf, 50, stride, 8)
    assert [r.pid for r in out] == list(range(50)) and out[7].filename == "/bin/7" and out[9].comm == "c9"
    assert codec.decode_from(buf, 8 + stride) == out[1]
    # the kernel layer's codec protocol
    from pybpf.object.codec import Codec as KernelCodecProtocol

    assert isinstance(codec, KernelCodecProtocol)


def test_errors(btf, ev_btf):
    codec = ev_btf.codec("struct event")
    with pytest.raises(MapError, match=r"struct event: expected 288 bytes, got 3"):
        codec.decode(b"abc")
    with pytest.raises(MapError, match="has no member 'nope'"):
        codec.encode({"nope": 1})
    with pytest.raises(MapError, match=r"comm: 17 bytes do not fit in .* \(16 bytes\)"):
        codec.encode({"comm": "x" * 17})
    with pytest.raises(MapError, match=r"pid: cannot encode 4294967296"):
        codec.encode({"pid": 1 << 32})
    with pytest.raises(MapError, match="expected a record or a mapping"):
        codec.encode(5)
    ev = btf.codec("struct event")
    with pytest.raises(MapError, match=r"matrix: expected 2 values"):
        ev.encode({"matrix": [[1, 2, 3]]})
    with pytest.raises(MapError, match="'S_C' is not an enumerator of enum small"):
        ev.encode({"sm": "S_C"})
    with pytest.raises(MapError, match=r"bf.a: 9 does not fit in a 3-bit unsigned bitfield"):
        ev.encode({"bf": {"a": 9}})
    with pytest.raises(BTFError, match="is void"):
        btf.codec(0)
    with pytest.raises(BTFError, match="function"):
        btf.codec(btf.find("helper").type_id)


@settings(max_examples=60, deadline=None)
@given(st.integers(-(1 << 31), (1 << 31) - 1), st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), max_size=15).filter(lambda s: len(s.encode()) <= 15),
       st.binary(max_size=255).map(lambda b: b.replace(b"\0", b"x")), st.integers(0, (1 << 64) - 1))
def test_event_round_trip_property(pid, comm, filename, ts):
    btf = BTF.from_file(compile_bpf(EVENT_SOURCE, name="btf_codec_event"))
    codec = btf.codec("struct event")
    value = {"pid": pid, "comm": comm, "filename": filename, "ts": ts}
    decoded = codec.decode(codec.encode(value))
    assert decoded.pid == pid and decoded.comm == comm and decoded.ts == ts
    assert decoded.filename == filename.decode("utf-8", "replace")
    if decoded.filename.encode() == filename:  # valid UTF-8 survives a second round trip unchanged
        assert codec.encode(decoded) == codec.encode(value)


@needs_vmlinux
def test_kernel_structs_compile():
    vmlinux = kernel_btf()
    for name in ("task_struct", "sk_buff", "file", "bpf_prog_aux", "xdp_md", "pt_regs"):
        codec = vmlinux.codec(f"struct {name}")
        assert codec.size == vmlinux.find(f"struct {name}").size
        zero = codec.zero()
        assert codec.encode(zero) == bytes(codec.size)
    regs = vmlinux.codec("struct pt_regs").decode(struct.pack("<21Q", *range(21)))
    assert regs.ip == 16 and regs.sp == 19


def test_records_re_encode_exactly(btf):
    """A decoded record encodes back to the very bytes it came from, unions and bitfields included."""
    codec = btf.codec("struct event")
    data = bytearray(codec.encode(FULL_EVENT))
    anon = btf.find("struct event").members[4]
    data[anon.offset // 8:anon.offset // 8 + 8] = struct.pack("<Q", 0x7FF4000000000001)  # a NaN payload as `ub`
    ev = codec.decode(bytes(data))
    assert codec.encode(ev) == bytes(data)
    assert codec.encode(ev._asdict()) == bytes(data)  # ua and ub come from the same bytes
