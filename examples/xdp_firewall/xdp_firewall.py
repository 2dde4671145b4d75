#!/usr/bin/env python3
"""XDP firewall: drop IPv4 UDP datagrams to one port on an interface; print the verdict counts.

    sudo python3 examples/xdp_firewall/xdp_firewall.py IFACE [--port 11111] [--mode generic] [--duration S]

The C half (xdp_firewall.bpf.c) runs on every packet the interface receives,
before the kernel's network stack: UDP to ``blocked_port`` is dropped, the rest
passes; each verdict is counted in an array map indexed by XDP_DROP (1) and
XDP_PASS (2).  The port is a const volatile set from Python before loading.
Nothing is created here: give an existing interface (a veth, for a try).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pybpf

HERE = Path(__file__).resolve().parent
XDP_DROP, XDP_PASS = 1, 2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("iface", help="network interface to protect (e.g. eth0, veth0)")
    parser.add_argument("--port", type=int, default=11111, help="UDP destination port to drop (default 11111)")
    parser.add_argument("--mode", choices=("generic", "native"), help="XDP mode (default: the best the driver has)")
    parser.add_argument("--duration", type=float, help="run this many seconds (default: until Ctrl-C)")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between count lines (default 1)")
    args = parser.parse_args()

    spec = pybpf.compile(HERE / "xdp_firewall.bpf.c")
    spec.rodata["blocked_port"] = args.port
    with spec.load(backend="kernel") as obj, obj.programs["xdp_firewall"].attach_xdp(args.iface, mode=args.mode):
        print(f"Dropping UDP to port {args.port} on {args.iface}; Ctrl-C to stop.", file=sys.stderr)
        verdicts = obj.maps["verdicts"]
        deadline = None if args.duration is None else time.monotonic() + args.duration
        try:
            while deadline is None or time.monotonic() < deadline:
                wait = args.interval if deadline is None else max(0.0, min(args.interval, deadline - time.monotonic()))
                time.sleep(wait)
                print(f"dropped {verdicts[XDP_DROP]}  passed {verdicts[XDP_PASS]}", flush=True)
        except KeyboardInterrupt:
            pass
        print(f"total: dropped {verdicts[XDP_DROP]}, passed {verdicts[XDP_PASS]}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(0)
    except pybpf.BPFError as exc:
        sys.exit(f"xdp_firewall: {exc}")
