#!/usr/bin/env python3
"""syscount: count system calls by name, for every process or one, like BCC's syscount.

    sudo python3 examples/syscount/syscount.py [--pid PID] [--duration SECONDS] [--top N]

The C half (syscount.bpf.c) counts sys_enter events per syscall number in a
per-CPU hash map; ``target_tgid`` (a const volatile, i.e. .rodata) is set from
Python before the object is loaded.  Python sums the CPUs and names the calls.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pybpf
from pybpf.syscalls import syscall_name

HERE = Path(__file__).resolve().parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pid", type=int, default=0, help="only this process (default: every process)")
    parser.add_argument("--duration", type=float, help="count for this many seconds (default: until Ctrl-C)")
    parser.add_argument("--top", type=int, default=10, help="print the N most frequent calls (default 10)")
    args = parser.parse_args()

    spec = pybpf.compile(HERE / "syscount.bpf.c")
    spec.rodata["target_tgid"] = args.pid
    with spec.load(backend="kernel") as obj:
        obj.attach_all()
        who = f"process {args.pid}" if args.pid else "every process"
        print(f"Counting system calls of {who}; Ctrl-C to stop.", file=sys.stderr)
        try:
            time.sleep(args.duration if args.duration is not None else 1e9)
        except KeyboardInterrupt:
            pass
        totals = {nr: sum(per_cpu) for nr, per_cpu in obj.maps["counts"].items()}
    print(f"{'SYSCALL':<22} {'COUNT':>10}")
    for nr, count in sorted(totals.items(), key=lambda kv: -kv[1])[:args.top]:
        print(f"{syscall_name(nr):<22} {count:>10}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(0)
    except pybpf.BPFError as exc:
        sys.exit(f"syscount: {exc}")
