"""`pybpf trace-pipe`: print bpf_printk output, parsed, like `bpftool prog tracelog` / `cat trace_pipe`."""

from __future__ import annotations

import argparse
import json
import os
import sys

EXAMPLES = """\
examples:
  pybpf trace-pipe                       follow bpf_printk lines until Ctrl-C
  pybpf trace-pipe --timeout 5           stop after 5 seconds
  pybpf trace-pipe --private             read through a private tracefs instance
                                         (does not steal lines from other readers)
  pybpf trace-pipe --json | jq .message  one JSON object per line
  pybpf trace-pipe --pid 1234            only lines printed by process 1234

tracefs is mounted at /sys/kernel/tracing first if it is missing (needs root).
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "trace-pipe",
        help="print bpf_printk output from the kernel's trace pipe",
        description="Read bpf_printk / bpf_trace_printk lines from tracefs and print them, "
                    "optionally filtered by pid or as JSON.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                   help="stop after this many seconds (default: run until interrupted)")
    p.add_argument("--private", action="store_true",
                   help="use a private tracefs instance with only bpf_trace_printk enabled")
    p.add_argument("--pid", type=int, default=None, help="only lines from this process id")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..kernel.tracepipe import trace_pipe

    instance = f"pybpf_cli_{os.getpid()}" if args.private else None
    for line in trace_pipe(timeout=args.timeout, instance=instance):
        if args.pid is not None and line.pid != args.pid:
            continue
        if args.json:
            print(json.dumps({"task": line.task, "pid": line.pid, "cpu": line.cpu, "timestamp": line.timestamp,
                              "function": line.function, "message": line.message}))
        elif line.function:
            print(f"{line.timestamp:.6f} {line.task}-{line.pid} [{line.cpu:03d}] {line.message}")
        else:
            print(line.raw)
        sys.stdout.flush()
    return 0
