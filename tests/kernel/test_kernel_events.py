"""Events out of the kernel: ring buffer records from real tracepoint hits, bpf_printk lines."""

from __future__ import annotations

import os
import struct
import threading
import time

import pytest

from kernel_testlib import PRINTK, load_c

from pybpf.errors import MapError
from pybpf.isa import Instruction
from pybpf.kernel import (
    IntCodec, Map, MapType, ProgType, Program, RingBufReader, StructCodec, TracePipe, trace_pipe,
)

pytestmark = pytest.mark.kernel

RINGBUF_GETPPID = r"""
struct event { __u32 pid; __u32 tid; __u64 seq; char comm[16]; };
struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 1 << 16); } events SEC(".maps");
__u64 seq = 0;

SEC("tracepoint/syscalls/sys_enter_getppid")
int on_getppid(void *ctx)
{
    struct event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
    if (!e)
        return 0;
    __u64 id = bpf_get_current_pid_tgid();
    e->pid = id >> 32;
    e->tid = (__u32)id;
    e->seq = __sync_fetch_and_add(&seq, 1);
    bpf_get_current_comm(e->comm, sizeof(e->comm));
    if (e->seq % 5 == 4)
        bpf_ringbuf_discard(e, 0);   /* every fifth record is thrown away */
    else
        bpf_ringbuf_submit(e, 0);
    return 0;
}
"""

EVENT = StructCodec("IIQ16s", ["pid", "tid", "seq", "comm"], "Event")


def test_ringbuf_records_from_tracepoint_carry_our_pid():
    with Map.create(MapType.RINGBUF, 0, 0, 1 << 16, name="events") as events, \
         load_c(RINGBUF_GETPPID, "tracepoint/syscalls/sys_enter_getppid", ProgType.TRACEPOINT,
                {"events": events}, name="rbtp") as loaded, \
         RingBufReader(events, codec=EVENT) as reader:
        with loaded.program.attach():
            for _ in range(40):
                os.getppid()
        got = [e for e in reader.read(timeout=1.0) if e.pid == os.getpid()]
        assert len(got) == 32  # 40 minus the 8 discarded
        assert all(e.seq % 5 != 4 for e in got)
        assert all(e.tid == threading.get_native_id() for e in got)
        assert got[0].comm.rstrip(b"\0") and [e.seq for e in got] == sorted(e.seq for e in got)
        assert reader.available() == 0 and reader.read(0) == []


def test_ringbuf_wraps_around_and_mixed_sizes_decode():
    # A program that writes records of 3 sizes (12, 20, 28 bytes payload) many times: the 4 KiB
    # ring wraps repeatedly, and the reader has to walk differing lengths.
    rb = Map.create(MapType.RINGBUF, 0, 0, 4096, name="small")
    prog = [
        Instruction(0x7B, 10, 1, -8, 0),            # *(u64 *)(fp-8) = ctx (unused marker)
        Instruction(0x18, 6, 0, 0, 0),              # r6 = 0 (ld_imm64 zero, for variety)
        Instruction(0x7A, 10, 0, -40, 0x11111111),  # fp-40.. = pattern
        Instruction(0x7A, 10, 0, -32, 0x22222222),
        Instruction(0x7A, 10, 0, -24, 0x33333333),
        Instruction(0x7A, 10, 0, -16, 0x44444444),
    ]
    for size in (12, 20, 28):
        prog += [Instruction(0x18, 1, 1, 0, rb.fd), Instruction(0xBF, 2, 10, 0, 0), Instruction(0x07, 2, 0, 0, -40),
                 Instruction(0xB7, 3, 0, 0, size), Instruction(0xB7, 4, 0, 0, 0), Instruction(0x85, 0, 0, 0, 130)]
    prog += [Instruction(0xB7, 0, 0, 0, 0), Instruction(0x95)]
    with rb, Program.load(ProgType.SOCKET_FILTER, prog, name="mixed") as p, RingBufReader(rb) as reader:
        sizes = []
        for _ in range(100):  # 100 runs of 96 bytes: the 4 KiB ring wraps twice, drained in between
            p.test_run(bytes(64))
            sizes += [len(r) for r in reader.read(0)]
        assert sizes == [12, 20, 28] * 100
        p.test_run(bytes(64), repeat=40)  # 3840 bytes queued at once: one drain walks them all
        assert [len(r) for r in reader.read(0)] == [12, 20, 28] * 40
        p.test_run(bytes(64))
        recs = reader.read(0)
        assert recs[0] == struct.pack("<Q", 0x11111111) + struct.pack("<I", 0x22222222)
        assert recs[2][:24] == struct.pack("<QQQ", 0x11111111, 0x22222222, 0x33333333)


def test_ringbuf_callback_poll_and_events_iterator():
    rb = Map.create(MapType.RINGBUF, 0, 0, 1 << 14, name="cb")
    prog = [Instruction(0x7A, 10, 0, -8, 7), Instruction(0x18, 1, 1, 0, rb.fd), Instruction(0xBF, 2, 10, 0, 0),
            Instruction(0x07, 2, 0, 0, -8), Instruction(0xB7, 3, 0, 0, 8), Instruction(0xB7, 4, 0, 0, 0),
            Instruction(0x85, 0, 0, 0, 130), Instruction(0xB7, 0, 0, 0, 0), Instruction(0x95)]
    with rb, Program.load(ProgType.SOCKET_FILTER, prog, name="cb") as p:
        seen = []
        with RingBufReader(rb, codec=IntCodec(8), callback=seen.append) as reader:
            assert reader.poll(timeout=0.05) == 0  # nothing yet: waits, then returns
            p.test_run(bytes(64), repeat=3)
            assert reader.poll(timeout=1) == 3 and seen == [7, 7, 7]
        # events(): a producer thread fires while we iterate; iteration ends at the timeout
        threading.Timer(0.1, lambda: p.test_run(bytes(64), repeat=2)).start()
        start = time.monotonic()
        got = list(rb.events(timeout=0.6, codec=IntCodec(8)))
        assert got == [7, 7] and 0.5 < time.monotonic() - start < 2
    with Map.create(MapType.HASH, 4, 4, 1) as not_a_ring, pytest.raises(MapError, match="not a ring buffer"):
        RingBufReader(not_a_ring)


def test_ringbuf_batch_decoding_is_exact_for_many_records():
    rb = Map.create(MapType.RINGBUF, 0, 0, 1 << 20, name="many")
    k = 500  # records per run: a bounded loop calling bpf_ringbuf_output with a counter
    prog = [
        Instruction(0xB7, 6, 0, 0, k),
        Instruction(0x7B, 10, 6, -8, 0),       # loop: *(u64 *)(fp-8) = r6
        Instruction(0x7A, 10, 0, -16, 0x5EED),
        Instruction(0x18, 1, 1, 0, rb.fd), Instruction(0xBF, 2, 10, 0, 0), Instruction(0x07, 2, 0, 0, -16),
        Instruction(0xB7, 3, 0, 0, 16), Instruction(0xB7, 4, 0, 0, 0), Instruction(0x85, 0, 0, 0, 130),
        Instruction(0x07, 6, 0, 0, -1),
        Instruction(0x55, 6, 0, -11, 0),       # if r6 != 0 goto loop
        Instruction(0xB7, 0, 0, 0, 0), Instruction(0x95),
    ]
    with rb, Program.load(ProgType.SOCKET_FILTER, prog, name="many") as p, \
         RingBufReader(rb, codec=StructCodec("QQ", ["tag", "n"])) as reader:
        p.test_run(bytes(64), repeat=20)
        recs = reader.read(0)
        assert len(recs) == 20 * k
        assert all(r.tag == 0x5EED for r in recs)
        assert [r.n for r in recs] == list(range(k, 0, -1)) * 20


def test_trace_pipe_parses_bpf_printk_lines():
    with load_c(PRINTK, "tracepoint/syscalls/sys_enter_getppid", ProgType.TRACEPOINT, name="printk") as loaded, \
         TracePipe(instance=f"pybpf_test_{os.getpid()}") as pipe:
        with loaded.program.attach():
            for _ in range(3):
                os.getppid()
        lines = []
        deadline = time.monotonic() + 3
        while len(lines) < 3 and time.monotonic() < deadline:
            lines += [ln for ln in pipe.read(timeout=0.5) if ln.message == f"pybpf says {os.getpid()}"]
        assert len(lines) == 3
        line = lines[0]
        assert line.pid == threading.get_native_id() and line.task and line.cpu >= 0
        assert line.timestamp > 0 and "bpf_trace_printk" in line.function
        instance_dir = pipe.instance_dir
    assert not os.path.exists(instance_dir)  # the private instance is removed on close


def test_trace_pipe_timeout_form():
    start = time.monotonic()
    assert list(trace_pipe(timeout=0.2, instance=f"pybpf_idle_{os.getpid()}")) == []
    assert time.monotonic() - start < 2
