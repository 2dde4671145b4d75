#!/usr/bin/env python3
"""execsnoop: print every exec as it happens (pid, parent, uid, command, file), from a ring buffer.

    sudo python3 examples/execsnoop/execsnoop.py [--count N] [--duration SECONDS] [--json]

The C half (execsnoop.bpf.c) fills a ``struct event`` in a BPF ring buffer on
every execve (the parent pid read through CO-RE); Python decodes the records
with the struct's BTF type, so fields have their C names (``event.comm``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pybpf

HERE = Path(__file__).resolve().parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, help="stop after this many execs")
    parser.add_argument("--duration", type=float, help="stop after this many seconds (default: Ctrl-C)")
    parser.add_argument("--json", action="store_true", help="one JSON object per exec")
    args = parser.parse_args()

    spec = pybpf.compile(HERE / "execsnoop.bpf.c")
    event = spec.btf.codec("struct event")  # the record layout, from the object's BTF
    with spec.load(backend="kernel") as obj, obj.maps["events"].reader(codec=event) as ring:
        obj.attach_all()
        if not args.json:
            print(f"{'PID':>7} {'PPID':>7} {'UID':>6} {'COMM':<16} FILENAME", flush=True)
        seen = 0
        deadline = None if args.duration is None else time.monotonic() + args.duration
        while deadline is None or time.monotonic() < deadline:
            wait = 1.0 if deadline is None else max(0.0, min(1.0, deadline - time.monotonic()))
            for e in ring.read(timeout=wait):
                if args.json:
                    print(json.dumps(e._asdict()), flush=True)
                else:
                    print(f"{e.pid:>7} {e.ppid:>7} {e.uid:>6} {e.comm:<16} {e.filename}", flush=True)
                seen += 1
                if args.count and seen >= args.count:
                    return 0
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(0)
    except pybpf.BPFError as exc:
        sys.exit(f"execsnoop: {exc}")
