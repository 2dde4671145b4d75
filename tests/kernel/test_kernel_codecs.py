"""Pure parts of the kernel backend (no bpf() needed): codecs, ring buffer layout, trace lines."""

from __future__ import annotations

import array
import struct

import pytest

from pybpf.errors import MapError
from pybpf.kernel import IntCodec, RawCodec, StructCodec, TraceLine
from pybpf.object.codec import decode_many
from pybpf.kernel.fs import parse_cpu_list
from pybpf.kernel.ringbuf import _uniform_run
from pybpf.kernel.verifier import SourceLine, failing_instruction, source_of, summary


def test_raw_codec():
    c = RawCodec(4)
    assert c.encode(1) == b"\1\0\0\0" and c.encode(-1) == b"\xff" * 4 and c.encode(b"abcd") == b"abcd"
    assert c.decode(memoryview(b"abcd")) == b"abcd"
    with pytest.raises(MapError, match="got 3 bytes, expected 4"):
        c.encode(b"abc")
    with pytest.raises(MapError, match="expected bytes or an int"):
        c.encode("text")
    with pytest.raises(MapError, match="expected bytes of 3"):
        RawCodec(3).encode(5)


def test_int_and_struct_codecs_and_batch_decoding():
    assert IntCodec(2, signed=True).decode(IntCodec(2, signed=True).encode(-5)) == -5
    with pytest.raises(MapError, match="unsigned 8-bit"):
        IntCodec(1).encode(300)
    ev = StructCodec("IxxxxQ", ["pid", "n"], "Ev")
    assert ev.size == 16 and ev.decode(ev.encode((1, 2))).n == 2 and ev.encode({"pid": 1, "n": 2}) == ev.encode((1, 2))
    # records every 32 bytes, payload 8 bytes in: the ring buffer layout
    buf = b"".join(struct.pack("<8sIxxxxQ8x", b"hdr", i, i * 10) for i in range(5))
    assert [(e.pid, e.n) for e in ev.decode_many(memoryview(buf), 5, 32, 8)] == [(i, i * 10) for i in range(5)]
    assert IntCodec(4).decode_many(memoryview(buf), 5, 32, 8) == list(range(5))
    assert RawCodec(4).decode_many(memoryview(buf), 2, 32, 8) == [b"\0\0\0\0", b"\1\0\0\0"]

    class Plain:  # a codec without decode_many: the generic path
        size = 4

        def decode(self, data):
            return bytes(data)[::-1]

    assert decode_many(Plain(), memoryview(buf), 2, 32, 8, 4) == [b"\0\0\0\0", b"\0\0\0\1"]
    assert StructCodec("I").decode(b"\7\0\0\0") == 7 and StructCodec("II").decode(bytes(8)) == (0, 0)


def test_uniform_run_finds_the_first_different_header():
    words = array.array("I", [0] * 64)
    for i in range(7):
        words[i * 4] = 24  # header every 16 bytes (4 words)
    words[7 * 4] = 24 | (1 << 31)  # busy
    view = memoryview(words)
    assert _uniform_run(view, 0, 4, 10, 24) == 7
    assert _uniform_run(view, 0, 4, 5, 24) == 5
    assert _uniform_run(view, 0, 4, 1, 24) == 1
    words[3 * 4] = 8
    assert _uniform_run(memoryview(words), 0, 4, 10, 24) == 3


def test_trace_line_parser():
    line = TraceLine.parse("           <...>-1234    [001] d..31  5678.123456: bpf_trace_printk: hello world")
    assert (line.task, line.pid, line.cpu, line.flags, line.timestamp, line.message) == (
        "<...>", 1234, 1, "d..31", 5678.123456, "hello world")
    with_tgid = TraceLine.parse(" python3-99 (     99) [000] ..... 1.5: bpf_trace_printk: x: y")
    assert (with_tgid.task, with_tgid.pid, with_tgid.message) == ("python3", 99, "x: y")
    no_flags = TraceLine.parse("a-b-c-7 [003] 12.000001: bpf_trace_printk: m")
    assert (no_flags.task, no_flags.pid, no_flags.cpu, no_flags.flags) == ("a-b-c", 7, 3, "")
    odd = TraceLine.parse("CPU:1 [LOST 3 EVENTS]")
    assert odd.message == "CPU:1 [LOST 3 EVENTS]" and odd.pid == 0


def test_verifier_log_parsing():
    log = ("func#0 @0\n0: R1=ctx() R10=fp0\n; int x = 1; @ a.c:3\n0: (b7) r0 = 1\n; return *p; @ a.c:4\n"
           "1: (61) r0 = *(u32 *)(r2 +0)\nR2 !read_ok\nprocessed 2 insns (limit 1000000) max_states_per_insn 0\n")
    assert failing_instruction(log) == 1
    assert summary(log) == "R2 !read_ok"
    assert source_of(1, [], log) == SourceLine(-1, "a.c", 4, 0, "return *p;")
    lines = [SourceLine(0, "b.c", 10), SourceLine(5, "b.c", 12)]
    assert source_of(3, lines) == lines[0] and source_of(5, lines) == lines[1]
    assert str(SourceLine(0, "b.c", 10, 2, "  x = 1;")) == "b.c:10:2: x = 1;"


def test_cpu_list_parsing():
    assert parse_cpu_list("0-3,5,7-8\n") == [0, 1, 2, 3, 5, 7, 8]
    assert parse_cpu_list("0") == [0]
