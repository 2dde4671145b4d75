#!/usr/bin/env python3
"""uprobe: count the calls of a function in a program or library, and sum its first argument.

    sudo python3 examples/uprobe/uprobe.py BINARY FUNCTION [--pid PID] [--duration SECONDS]
    sudo python3 examples/uprobe/uprobe.py /bin/bash readline         # every line typed in bash
    sudo python3 examples/uprobe/uprobe.py libc malloc --pid 1234     # malloc calls and bytes of one process

The C half (uprobe.bpf.c) is a uprobe program that adds 1 to ``calls`` and its
first argument to ``arg_sum``, two global variables; Python reads them live
(the .bss map is mmap-ed, no system call per read).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pybpf

HERE = Path(__file__).resolve().parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("binary", help="executable or library: a path, or a name like 'bash' or 'libc'")
    parser.add_argument("function", help="function (ELF symbol) to count")
    parser.add_argument("--pid", type=int, help="only calls made by this process")
    parser.add_argument("--duration", type=float, help="stop after this many seconds (default: Ctrl-C)")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between lines (default 1)")
    args = parser.parse_args()

    spec = pybpf.compile(HERE / "uprobe.bpf.c")
    with spec.load(backend="kernel") as obj, \
            obj.programs["on_call"].attach_uprobe(args.binary, args.function, pid=args.pid) as link:
        print(f"Counting calls of {link}; Ctrl-C to stop.", file=sys.stderr)
        deadline = None if args.duration is None else time.monotonic() + args.duration
        try:
            while deadline is None or time.monotonic() < deadline:
                wait = args.interval if deadline is None else max(0.0, min(args.interval, deadline - time.monotonic()))
                time.sleep(wait)
                print(f"calls {obj.bss['calls']}  arg_sum {obj.bss['arg_sum']}", flush=True)
        except KeyboardInterrupt:
            pass
        print(f"total: {obj.bss['calls']} calls of {args.function}, first arguments summing to {obj.bss['arg_sum']}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(0)
    except pybpf.BPFError as exc:
        sys.exit(f"uprobe: {exc}")
