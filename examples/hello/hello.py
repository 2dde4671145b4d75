#!/usr/bin/env python3
"""Hello world: a tracepoint program says hello on every execve; Python reads the trace pipe.

    sudo python3 examples/hello/hello.py [--duration SECONDS] [--count N]

The C half (hello.bpf.c) calls bpf_printk(); the kernel writes those lines to
tracefs.  pybpf compiles the C file, loads it, attaches it to the
syscalls/sys_enter_execve tracepoint (its SEC() name says so), and reads the
lines through a private tracefs instance, so other trace_pipe readers keep theirs.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import pybpf
from pybpf.kernel import TracePipe

HERE = Path(__file__).resolve().parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, help="stop after this many seconds (default: Ctrl-C)")
    parser.add_argument("--count", type=int, help="stop after this many lines")
    args = parser.parse_args()

    spec = pybpf.compile(HERE / "hello.bpf.c")
    with spec.load(backend="kernel") as obj, TracePipe(instance=f"pybpf_hello_{os.getpid()}") as pipe:
        obj.attach_all()
        print("Saying hello for every exec; Ctrl-C to stop.", file=sys.stderr)
        seen = 0
        for line in pipe.lines(timeout=args.duration):
            if not line.message.startswith("hello from pid"):
                continue  # bpf_printk of some other program
            print(f"{line.timestamp:.6f} {line.task}-{line.pid}: {line.message}", flush=True)
            seen += 1
            if args.count and seen >= args.count:
                break
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(0)
    except pybpf.BPFError as exc:
        sys.exit(f"hello: {exc}")
