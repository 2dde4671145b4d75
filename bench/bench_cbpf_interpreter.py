"""Classic BPF filtering speed: pybpf's interpreter vs libpcap's bpf_filter, the kernel JIT and tcpdump -r.

Per expression (compiled by libpcap, so every runner executes the same
program) on a mix of generated frames of many protocols:

- pybpf      Machine(program).run(frame) — the filter translated to one Python function
- libpcap    bpf_filter() called through ctypes, one call per packet (what a Python
             program using libpcap pays)
- kernel     the program converted with to_ebpf(), JIT-compiled by the kernel and run
             with BPF_PROG_TEST_RUN repeat=N: the C-speed floor, no per-packet syscall

Then offline filtering of a pcap file end to end (read, filter, write):
pybpf (read_packets + Machine + PcapWriter) vs tcpdump -r FILE -w /dev/null EXPR.

Run: python bench/bench_cbpf_interpreter.py [--packets N]   (root for the kernel column)
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "src"))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "cbpf"))

import cbpf_machine_support as S  # noqa: E402  (libpcap via ctypes, packet builders)
from pybpf.cbpf.machine import Machine  # noqa: E402
from pybpf.cbpf.pcap import PcapWriter, read_packets  # noqa: E402
from pybpf.cbpf.to_ebpf import to_ebpf  # noqa: E402

EXPRESSIONS = [
    "tcp port 80",
    "host 198.18.0.1 and udp",
    "ip6 and tcp",
    "tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn",
    "not arp and len > 64",
    " or ".join(f"host 198.18.{i}.{i}" for i in range(30)),
]


def rate(fn, frames, target: int) -> float:
    rounds = max(1, target // len(frames))
    start = time.perf_counter()
    for _ in range(rounds):
        for f in frames:
            fn(f)
    return rounds * len(frames) / (time.perf_counter() - start)


def kernel_rate(program, frames) -> float | None:
    """Average packets/s of the JIT-compiled converted program, via test_run (per frame, repeat)."""
    try:
        from pybpf import kernel
        prog = kernel.Program.load(kernel.ProgType.SOCKET_FILTER, to_ebpf(program), name="bench_cbpf")
    except Exception as exc:  # no root, no bpf(): leave the column empty
        print(f"  (kernel column skipped: {exc})", file=sys.stderr)
        return None
    with prog:
        total_ns = 0
        sample = [f for f in frames if len(f) >= 60][::4]  # the kernel refuses very short test data
        for f in sample:
            # test_run pulls an Ethernet header off the data before the program runs: prepend one.
            total_ns += prog.test_run(b"\x02" * 12 + b"\x08\x00" + f, repeat=2000).duration
    return len(sample) / (total_ns / 1e9)


def fmt(x: float | None) -> str:
    return f"{x / 1e6:8.2f}M" if x is not None else "       -"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--packets", type=int, default=300_000, help="filter runs per measurement")
    args = parser.parse_args()
    if S.LIBPCAP is None:
        print("libpcap is needed (apt-get install libpcap0.8)", file=sys.stderr)
        return 1
    frames = [f for f in S.sample_frames(seed=11, random_count=40) if len(f) >= 14]
    print(f"{len(frames)} distinct frames; packets/s (M = million), higher is better\n")
    print(f"{'expression':<46} {'insns':>5} {'pybpf':>9} {'libpcap':>9} {'kernel':>9}  pybpf/libpcap  compile")
    for expr in EXPRESSIONS:
        program = S.pcap_compile(expr)
        t0 = time.perf_counter()
        machine = Machine(program)
        compile_us = (time.perf_counter() - t0) * 1e6
        ref = S.LibpcapFilter(program)
        assert [machine.run(f) for f in frames] == [ref(f) for f in frames]
        ours = rate(machine.run, frames, args.packets)
        theirs = rate(ref, frames, args.packets)
        kern = kernel_rate(program, frames)
        label = expr if len(expr) <= 44 else expr[:41] + "..."
        print(f"{label:<46} {len(program):>5} {fmt(ours)} {fmt(theirs)} {fmt(kern)}  {ours / theirs:10.2f}x"
              f"  {compile_us:6.0f} us")

    tcpdump = shutil.which("tcpdump")
    if tcpdump is None:
        return 0
    print("\noffline filtering of a pcap file (read + filter + write), packets/s:")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "in.pcap")
        n = max(args.packets, len(frames))
        with PcapWriter(path) as w:
            for i in range(n):
                w.write(frames[i % len(frames)], ts_ns=1_700_000_000_000_000_000 + i * 1000)
        for expr in ("tcp port 80", "not arp and len > 64"):
            machine = Machine(S.pcap_compile(expr), "pcap")
            start = time.perf_counter()
            kept = 0
            with PcapWriter(os.devnull) as out:
                for p in read_packets(path):
                    if machine.run(p.data, p.wirelen):
                        out.write(p)
                        kept += 1
            ours = n / (time.perf_counter() - start)
            start = time.perf_counter()
            proc = subprocess.run([tcpdump, "-r", path, "-w", os.devnull, expr], capture_output=True, text=True)
            theirs = n / (time.perf_counter() - start)
            assert proc.returncode == 0, proc.stderr
            print(f"  {expr:<24} pybpf {fmt(ours)}  tcpdump -r {fmt(theirs)}  ratio {ours / theirs:5.2f}x"
                  f"  ({kept} of {n} kept)")
        start = time.perf_counter()
        count = sum(1 for _ in read_packets(path))
        print(f"  reading alone: pybpf read_packets {fmt(count / (time.perf_counter() - start))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
