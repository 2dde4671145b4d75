"""`pybpf capture`: capture packets with the filter running in the kernel."""

from __future__ import annotations

import argparse
import re
import sys

from ..cbpf import insn as I
from ..cbpf.capture import Capture, format_line, interface_linktype
from ..cbpf.pcap import LINKTYPE_ETHERNET, LINKTYPE_RAW, PcapngWriter, PcapWriter
from ..errors import BPFError, NotSupportedError

EPILOG = """\
examples:
  pybpf capture -i eth0 tcp port 443                 print one line per HTTPS packet
  pybpf capture -i eth0 -c 100 -w web.pcap port 80   save 100 packets for tcpdump/Wireshark
  pybpf capture -i veth0 -F prog.txt --duration 5    filter program from `tcpdump -dd` output
  pybpf capture -i eth0 -w trace.pcapng -s 128       pcapng, first 128 bytes of each packet

The filter is attached to the socket in the kernel (SO_ATTACH_FILTER), so
packets it rejects cost no Python time. At the end the kernel's counters are
printed: packets the filter accepted and packets dropped for lack of buffer.
"""


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "capture", help="capture packets on an interface (filter in the kernel)",
        description="Capture packets on a network interface through an AF_PACKET socket, with a\n"
                    "pcap-filter expression (or a compiled classic BPF program) running in the kernel.\n"
                    "Prints a summary line per packet, or writes a pcap/pcapng file.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-i", "--interface", required=True, help="interface to capture on (see `ip link`)")
    p.add_argument("-w", "--write", metavar="FILE", help="write packets to FILE (pcap; pcapng if it ends in "
                   ".pcapng; - for stdout) instead of printing them")
    p.add_argument("-c", "--count", type=int, metavar="N", help="stop after N packets")
    p.add_argument("-s", "--snaplen", type=int, default=262144, metavar="SNAPLEN",
                   help="keep at most SNAPLEN bytes of each packet (default 262144)")
    p.add_argument("-F", "--program-file", metavar="FILE",
                   help="classic BPF program to use instead of EXPR: `tcpdump -dd` or `tcpdump -ddd` output")
    p.add_argument("-p", "--no-promiscuous-mode", action="store_true", help="do not put the interface in "
                   "promiscuous mode")
    p.add_argument("-B", "--buffer-size", type=int, metavar="KIB", help="socket receive buffer in KiB")
    p.add_argument("-U", "--packet-buffered", action="store_true", help="flush the output file after each packet")
    p.add_argument("--nano", action="store_true", help="nanosecond timestamps in the pcap file")
    p.add_argument("--duration", type=float, metavar="SECONDS", help="stop after SECONDS")
    p.add_argument("expression", nargs="*", metavar="EXPR", help="pcap-filter expression (as for tcpdump)")
    p.set_defaults(func=run)


_LINKTYPE_NAMES = {LINKTYPE_ETHERNET: "EN10MB (Ethernet)", LINKTYPE_RAW: "RAW (Raw IP)"}


def run(args) -> int:
    linktype = interface_linktype(args.interface)
    program = _program(args, linktype)
    captured = 0
    with Capture(args.interface, program, args.snaplen, promiscuous=not args.no_promiscuous_mode,
                 buffer_size=args.buffer_size * 1024 if args.buffer_size else None) as cap:
        writer = None
        if args.write and args.write.endswith(".pcapng"):
            writer = PcapngWriter(args.write)
            writer.add_interface(linktype, args.snaplen, name=args.interface)
        elif args.write:
            writer = PcapWriter(args.write, linktype, args.snaplen, nanosecond=args.nano)
        print(f"listening on {args.interface}, link-type {_LINKTYPE_NAMES.get(linktype, linktype)}, "
              f"snapshot length {args.snaplen} bytes", file=sys.stderr, flush=True)
        try:
            for packet in cap.packets(args.count, args.duration):
                captured += 1
                if writer is None:
                    print(format_line(packet), flush=True)
                    continue
                writer.write(packet)
                if args.packet_buffered:
                    writer.flush()
        except KeyboardInterrupt:
            pass
        finally:
            if writer is not None:
                writer.close()
        stats = cap.stats()
    print(f"{captured} packets captured\n{stats.received} packets received by filter\n"
          f"{stats.dropped} packets dropped by kernel", file=sys.stderr)
    return 0


def _program(args, linktype: int):
    if args.program_file:
        if args.expression:
            raise BPFError("give either a filter expression or -F FILE, not both")
        with open(args.program_file) as f:
            return parse_program_text(f.read(), args.program_file)
    if not args.expression:
        return None
    from .. import cbpf
    compile_filter = getattr(cbpf, "compile", None)
    if compile_filter is None:
        raise NotSupportedError("filter expressions", reason="this pybpf has no pcap-filter compiler; give the "
                                "program with -F FILE (output of `tcpdump -dd EXPR`)")
    return compile_filter(" ".join(args.expression), linktype=linktype)


_DD_LINE = re.compile(r"\{\s*(0x[0-9a-fA-F]+|\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*,\s*(0x[0-9a-fA-F]+|\d+)\s*\}")


def parse_program_text(text: str, name: str = "<program>") -> list[I.CInsn]:
    """A classic BPF program from `tcpdump -dd` (C array) or `tcpdump -ddd` (decimal) output."""
    matches = _DD_LINE.findall(text)
    if matches:
        return [I.CInsn(*(int(v, 0) for v in m)) for m in matches]
    lines = [ln.split() for ln in text.splitlines() if ln.strip()]
    try:
        count = int(lines[0][0]) if lines and len(lines[0]) == 1 else None
        rows = [I.CInsn(*map(int, ln)) for ln in lines[1:]] if count is not None else []
    except (TypeError, ValueError):
        rows, count = [], None
    if count is None or count != len(rows):
        raise BPFError(f"{name}: not a classic BPF program in `tcpdump -dd` or `tcpdump -ddd` form")
    return rows
