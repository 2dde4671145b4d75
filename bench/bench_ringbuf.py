"""Ring buffer reading: pybpf's RingBufReader vs a per-event ctypes callback (libbpf, BCC style).

A BPF program writes 16-byte records (pid_tgid, sequence) with bpf_ringbuf_output
in a loop; BPF_PROG_TEST_RUN runs it over and over from a producer thread (the
syscall releases the GIL, so the kernel fills the ring on one core while Python
drains it on the other).  Every record is decoded into a Python object (a named
tuple) by both readers.  Two figures per reader:

- drain: the ring is filled first, then read to empty (the reader alone);
- live: producer and reader run together for a fixed number of events.

Run as root:  python bench/bench_ringbuf.py [--events N]
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
from collections import namedtuple

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

from pybpf.isa import Instruction as I  # noqa: E402
from pybpf.kernel import IntCodec, Map, MapType, Program, ProgType, RingBufReader, StructCodec  # noqa: E402

PER_RUN = 1000  # records one program run emits
Event = namedtuple("Event", ["pid_tgid", "seq"])


def producer_program(ring: Map, dropped: Map) -> Program:
    """for (r6 = PER_RUN; r6; r6--) drops += bpf_ringbuf_output(ring, &{pid_tgid, r6}, 16, 0) != 0;
    then dropped[0] += drops.  Branch-free in the loop so the verifier walks it once."""
    code = [
        I(0x85, 0, 0, 0, 14),                  # call get_current_pid_tgid
        I(0x7B, 10, 0, -16, 0),                # *(u64 *)(fp-16) = r0
        I(0xB7, 6, 0, 0, PER_RUN),             # r6 = PER_RUN
        I(0xB7, 7, 0, 0, 0),                   # r7 = 0 (drops)
        I(0x7B, 10, 6, -8, 0),                 # loop: *(u64 *)(fp-8) = r6
        I(0x18, 1, 1, 0, ring.fd),             # r1 = ring
        I(0xBF, 2, 10, 0, 0), I(0x07, 2, 0, 0, -16),
        I(0xB7, 3, 0, 0, 16), I(0xB7, 4, 0, 0, 0),
        I(0x85, 0, 0, 0, 130),                 # call ringbuf_output: 0 or -errno
        I(0x77, 0, 0, 0, 63),                  # r0 >>= 63: 1 when it failed
        I(0x0F, 7, 0, 0, 0),                   # r7 += r0
        I(0x07, 6, 0, 0, -1),                  # r6 -= 1
        I(0x55, 6, 0, -11, 0),                 # if r6 != 0 goto loop
        I(0x62, 10, 0, -20, 0),                # *(u32 *)(fp-20) = 0
        I(0x18, 1, 1, 0, dropped.fd),
        I(0xBF, 2, 10, 0, 0), I(0x07, 2, 0, 0, -20),
        I(0x85, 0, 0, 0, 1),                   # call map_lookup_elem
        I(0x15, 0, 0, 1, 0),                   # if r0 == 0 goto out
        I(0xDB, 0, 7, 0, 0),                   # lock *(u64 *)(r0) += r7
        I(0xB7, 0, 0, 0, 0), I(0x95),          # out: return 0
    ]
    return Program.load(ProgType.SOCKET_FILTER, code, name="rb_producer")


class Producer(threading.Thread):
    """Runs the program until ``target`` records went into the ring (drops are retried)."""

    def __init__(self, prog: Program, dropped: Map, target: int):
        super().__init__(daemon=True)
        self.prog, self.dropped, self.target = prog, dropped, target
        self.runs = 0

    def run(self) -> None:
        # Long kernel runs (50k records each): the thread needs the GIL only between them.
        while self.runs * PER_RUN - self.dropped[0] < self.target:
            self.prog.test_run(bytes(64), repeat=50)
            self.runs += 50


def pybpf_reader(ring: Map, want: int, producer: Producer | None) -> tuple[int, float]:
    codec = StructCodec("QQ", Event._fields, "Event")
    got, last = 0, None
    with RingBufReader(ring, codec=codec) as reader:
        start = time.perf_counter()
        if producer:
            producer.start()
        for event in reader.events(timeout=60):  # the user's loop: one Python object per record
            last = event
            got += 1
            if got >= want:
                break
        assert last is not None and last.seq >= 1
        return got, time.perf_counter() - start


def libbpf_reader(ring: Map, want: int, producer: Producer | None) -> tuple[int, float] | None:
    path = ctypes.util.find_library("bpf")
    if not path:
        return None
    lib = ctypes.CDLL(path)
    sample_fn = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)
    lib.ring_buffer__new.restype = ctypes.c_void_p
    lib.ring_buffer__new.argtypes = [ctypes.c_int, sample_fn, ctypes.c_void_p, ctypes.c_void_p]
    lib.ring_buffer__poll.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.ring_buffer__free.argtypes = [ctypes.c_void_p]
    unpack = struct.Struct("<QQ").unpack
    state = {"got": 0, "last": None}

    def on_event(_ctx, data, size):  # one Python call per record, as BCC's callbacks do
        state["last"] = Event._make(unpack(ctypes.string_at(data, size)))
        state["got"] += 1
        return 0

    callback = sample_fn(on_event)
    rb = lib.ring_buffer__new(ring.fd, callback, None, None)
    try:
        start = time.perf_counter()
        if producer:
            producer.start()
        while state["got"] < want:
            if lib.ring_buffer__poll(rb, 500) < 0:
                raise OSError("ring_buffer__poll failed")
        assert state["last"].seq >= 1
        return state["got"], time.perf_counter() - start
    finally:
        lib.ring_buffer__free(rb)


def measure(reader, events: int, live: bool) -> tuple[int, float] | None:
    ring_size = 1 << 26 if not live else 1 << 24
    ring = Map.create(MapType.RINGBUF, 0, 0, ring_size, name="bench_rb")
    dropped = Map.create(MapType.ARRAY, 4, 8, 1, name="dropped", key_codec=IntCodec(4), value_codec=IntCodec(8))
    prog = producer_program(ring, dropped)
    try:
        if live:
            return reader(ring, events, Producer(prog, dropped, events))
        # drain: fill the ring first, then time the reader alone
        target = min(events, ring_size // 24 - 10 * PER_RUN)
        runs = 0
        while runs * PER_RUN < target:
            prog.test_run(bytes(64), repeat=10)
            runs += 10
        filled = runs * PER_RUN - dropped[0]
        return reader(ring, filled, None)
    finally:
        prog.close()
        dropped.close()
        ring.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=2_000_000, help="records per measurement (default 2M)")
    ap.add_argument("--rounds", type=int, default=3, help="best of N rounds (default 3)")
    args = ap.parse_args()
    print(f"ring buffer reading, {args.events:,} records of 16 bytes decoded into named tuples, best of {args.rounds}")
    results: dict[tuple[str, str], float] = {}
    for mode in ("drain", "live"):
        for name, reader in (("pybpf RingBufReader", pybpf_reader), ("libbpf ring_buffer__poll + ctypes callback", libbpf_reader)):
            best = 0.0
            for _ in range(args.rounds):
                r = measure(reader, args.events, live=(mode == "live"))
                if r is None:
                    break
                n, secs = r
                best = max(best, n / secs)
            if best:
                results[(mode, name)] = best
                print(f"  {mode:5}  {name:44} {best / 1e6:6.2f} M events/s")
            else:
                print(f"  {mode:5}  {name:44} (libbpf.so not found)")
        a = results.get((mode, "pybpf RingBufReader"))
        b = results.get((mode, "libbpf ring_buffer__poll + ctypes callback"))
        if a and b:
            print(f"  {mode:5}  ratio pybpf / per-event callback: {a / b:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
