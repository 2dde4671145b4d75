"""Perf buffer reading: pybpf's PerfBufReader vs libbpf's perf_buffer__poll with a ctypes callback
(the BCC / libbpf-python way), beside pybpf's RingBufReader on the same records.

A socket filter program emits 16-byte records (pid_tgid, sequence) with
bpf_perf_event_output (or bpf_ringbuf_output for the ring buffer row) in a
loop; BPF_PROG_TEST_RUN runs it from a producer thread pinned to one CPU.
Every record is decoded into a named tuple by every reader.

- drain: the buffer is filled first, then read to empty (the reader alone);
- live: producer and reader run together for a fixed number of events
  (records the perf ring could not take are lost and reported, not retried).

Run as root:  python bench/bench_perfbuf.py [--events N] [--rounds N]
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import os
import struct
import sys
import threading
import time
import warnings
from collections import namedtuple

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "src"))
sys.path.insert(0, HERE)

import bench_ringbuf  # noqa: E402
from pybpf.isa import Instruction as I  # noqa: E402
from pybpf.kernel import Map, MapType, PerfBufReader, Program, ProgType, StructCodec  # noqa: E402

PER_RUN = 1000
PAGES = 4096  # 16 MiB per CPU
Event = namedtuple("Event", ["pid_tgid", "seq"])
CURRENT_CPU = 0xFFFFFFFF


def perf_producer(events: Map) -> Program:
    """for (r6 = PER_RUN; r6; r6--) bpf_perf_event_output(skb, events, CURRENT_CPU, &{pid_tgid, r6}, 16)"""
    code = [
        I(0xBF, 9, 1, 0, 0),                   # r9 = skb
        I(0x85, 0, 0, 0, 14),                  # call get_current_pid_tgid
        I(0x7B, 10, 0, -16, 0),                # *(u64 *)(fp-16) = r0
        I(0xB7, 6, 0, 0, PER_RUN),
        I(0x7B, 10, 6, -8, 0),                 # loop: *(u64 *)(fp-8) = r6
        I(0xBF, 1, 9, 0, 0),                   # r1 = skb
        I(0x18, 2, 1, 0, events.fd),           # r2 = events
        I(0x18, 3, 0, 0, CURRENT_CPU),         # r3 = BPF_F_CURRENT_CPU
        I(0xBF, 4, 10, 0, 0), I(0x07, 4, 0, 0, -16),
        I(0xB7, 5, 0, 0, 16),
        I(0x85, 0, 0, 0, 25),                  # call perf_event_output (bpf_skb_event_output)
        I(0x07, 6, 0, 0, -1),
        I(0x55, 6, 0, -12, 0),                 # if r6 != 0 goto loop (slots: the two lddw take two)
        I(0xB7, 0, 0, 0, 0), I(0x95),
    ]
    return Program.load(ProgType.SOCKET_FILTER, code, name="pb_producer")


class Producer(threading.Thread):
    def __init__(self, prog: Program, runs: int, cpu: int):
        super().__init__(daemon=True)
        self.prog, self.runs, self.cpu = prog, runs, cpu

    def run(self) -> None:
        os.sched_setaffinity(0, {self.cpu})
        done = 0
        while done < self.runs:
            self.prog.test_run(bytes(64), repeat=min(50, self.runs - done))
            done += 50


def pybpf_reader(events: Map, want: int, producer: Producer | None) -> tuple[int, float]:
    codec = StructCodec("QQ", Event._fields, "Event")
    got = 0
    last = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with PerfBufReader(events, codec=codec, pages=PAGES, lost_callback=lambda cpu, n: None) as reader:
            if producer:
                producer.start()
            start = time.perf_counter()
            deadline = time.monotonic() + 60
            while got + reader.lost < want and time.monotonic() < deadline:
                for event in reader.read(timeout=0.2):  # the user's loop: one Python object per record
                    last = event
                    got += 1
            elapsed = time.perf_counter() - start
    assert last is not None and last.seq >= 1
    return got, elapsed


def libbpf_reader(events: Map, want: int, producer: Producer | None) -> tuple[int, float] | None:
    path = ctypes.util.find_library("bpf")
    if not path:
        return None
    lib = ctypes.CDLL(path)
    sample_fn = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_uint32)
    lost_fn = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int, ctypes.c_uint64)
    lib.perf_buffer__new.restype = ctypes.c_void_p
    lib.perf_buffer__new.argtypes = [ctypes.c_int, ctypes.c_size_t, sample_fn, lost_fn, ctypes.c_void_p, ctypes.c_void_p]
    lib.perf_buffer__poll.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.perf_buffer__free.argtypes = [ctypes.c_void_p]
    unpack = struct.Struct("<QQ").unpack
    state = {"got": 0, "lost": 0, "last": None}

    def on_sample(_ctx, _cpu, data, size):
        state["last"] = Event._make(unpack(ctypes.string_at(data, 16)))
        state["got"] += 1

    def on_lost(_ctx, _cpu, count):
        state["lost"] += count

    cb, lcb = sample_fn(on_sample), lost_fn(on_lost)
    pb = lib.perf_buffer__new(events.fd, PAGES, cb, lcb, None, None)
    if not pb:
        raise OSError("perf_buffer__new failed")
    try:
        if producer:
            producer.start()
        start = time.perf_counter()
        deadline = time.monotonic() + 60
        while state["got"] + state["lost"] < want and time.monotonic() < deadline:
            if lib.perf_buffer__poll(pb, 200) < 0:
                raise OSError("perf_buffer__poll failed")
        assert state["last"].seq >= 1
        return state["got"], time.perf_counter() - start
    finally:
        lib.perf_buffer__free(pb)


class FillFirst(Producer):
    """Drain mode: start() fills the buffer synchronously, before the reader starts its clock."""

    def start(self) -> None:
        before = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {self.cpu})
        try:
            done = 0
            while done < self.runs:
                self.prog.test_run(bytes(64), repeat=min(50, self.runs - done))
                done += 50
        finally:
            os.sched_setaffinity(0, before)


def measure(reader, events_wanted: int, live: bool) -> tuple[int, float] | None:
    cpu = min(os.sched_getaffinity(0))
    events = Map.create(MapType.PERF_EVENT_ARRAY, 4, 4, 0, name="bench_pb")
    prog = perf_producer(events)
    try:
        runs = -(-events_wanted // PER_RUN)
        if not live:
            runs = min(runs, (PAGES * 4096 // 32) // PER_RUN - 2)  # what fits: 32-byte records
        producer = (Producer if live else FillFirst)(prog, runs, cpu)
        return reader(events, runs * PER_RUN, producer)
    finally:
        prog.close()
        events.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=400_000, help="records per measurement (default 400k)")
    ap.add_argument("--rounds", type=int, default=3, help="best of N rounds (default 3)")
    args = ap.parse_args()
    print(f"perf buffer vs ring buffer reading, {args.events:,} records of 16 bytes decoded into named tuples, "
          f"best of {args.rounds}")
    rows = (
        ("pybpf PerfBufReader", lambda n, live: measure(pybpf_reader, n, live)),
        ("libbpf perf_buffer__poll + ctypes callback", lambda n, live: measure(libbpf_reader, n, live)),
        ("pybpf RingBufReader (same records)", lambda n, live: bench_ringbuf.measure(bench_ringbuf.pybpf_reader, n, live)),
    )
    for mode in ("drain", "live"):
        results: dict[str, float] = {}
        for name, run in rows:
            best = 0.0
            for _ in range(args.rounds):
                r = run(args.events, mode == "live")
                if r is None:
                    break
                n, secs = r
                best = max(best, n / secs)
            if best:
                results[name] = best
                print(f"  {mode:5}  {name:44} {best / 1e6:6.2f} M events/s")
            else:
                print(f"  {mode:5}  {name:44} (libbpf.so not found)")
        a, b = results.get(rows[0][0]), results.get(rows[1][0])
        if a and b:
            print(f"  {mode:5}  ratio PerfBufReader / per-event callback: {a / b:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
