"""`pybpf filter`: compile a tcpdump filter expression and print it like tcpdump -d/-dd/-ddd."""

from __future__ import annotations

import argparse
import sys

from ..cbpf import compile as compile_filter
from ..cbpf import linktypes
from ..cbpf.text import dump
from ..errors import BPFError, FilterSyntaxError

EPILOG = """\
The expression uses tcpdump's pcap-filter(7) language; several words are joined
with spaces, as tcpdump does.  Output is byte-for-byte what `tcpdump -d` (-dd,
-ddd) prints for the same expression, link type and snap length.

examples:
  pybpf filter tcp port 80                       # like tcpdump -d 'tcp port 80'
  pybpf filter -dd 'host 198.18.0.1 and not port 22'   # C array for SO_ATTACH_FILTER
  pybpf filter -ddd udp                          # decimal, count first (iptables -m bpf)
  pybpf filter -O 'ip[2:2] > 576'                # unoptimized, like tcpdump -O -d
  pybpf filter -y LINUX_SLL2 -s 96 'icmp[icmptype] == icmp-echo'
  pybpf filter -y IEEE802_11_RADIO 'type mgt subtype beacon'
  pybpf filter -r in.pcap tcp port 443                 # count matching packets (libpcap semantics)
  pybpf filter -r in.pcapng -w out.pcap 'host 198.18.0.1'   # keep the matching packets

link types (-y): every name tcpdump -y knows (case-insensitive), e.g. EN10MB, LINUX_SLL2,
  RAW, IEEE802_11_RADIO, PFLOG, SUNATM, MTP2; or a DLT number.  As in libpcap, some
  primitives exist only on some link types (wlan type/subtype/dir and addr1-4 on
  802.11, vpi/vci/lane/oam on SUNATM, sio/opc/dpc/sls/fisu on MTP2, on/rnr/action
  on PFLOG, $xx addresses on ARCNET).

Host, network, port and protocol names come from /etc/hosts, /etc/networks,
/etc/services, /etc/protocols and /etc/ethers only; no network lookups.
Note: tcpdump -d on a live Linux interface compiles `vlan` with the kernel's
VLAN-tag ancillary loads; pybpf, like tcpdump -r/-y, uses in-packet offsets.
"""


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "filter",
        help="compile a tcpdump filter expression to classic BPF",
        description="Compile a pcap-filter(7) expression (tcpdump's filter language) to classic BPF "
                    "and print the program the way tcpdump -d, -dd or -ddd does.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("expression", nargs="*", help="filter expression (empty: accept every packet)")
    p.add_argument("-d", dest="dump", action="count", default=0,
                   help="print the program as text; -dd as a C array; -ddd as decimal numbers")
    p.add_argument("-O", dest="no_optimize", action="store_true", help="do not run the optimizer")
    p.add_argument("-y", dest="linktype", default="EN10MB", metavar="LINKTYPE",
                   help="link-layer type (default EN10MB, Ethernet)")
    p.add_argument("-s", dest="snaplen", type=int, default=262144, metavar="SNAPLEN",
                   help="snap length the program returns for accepted packets (default 262144)")
    p.add_argument("--netmask", default=None, metavar="MASK",
                   help="IPv4 netmask for 'ip broadcast' (e.g. 255.255.255.0)")
    p.add_argument("-r", dest="read", metavar="FILE",
                   help="filter the packets of a pcap/pcapng file (link type taken from the file) "
                        "instead of printing the program")
    p.add_argument("-w", dest="write", metavar="OUT",
                   help="with -r: write the accepted packets (cut to the returned snap length) to a pcap file")
    p.set_defaults(func=run)


def run(args) -> int:
    if args.write and not args.read:
        raise BPFError("-w needs -r FILE: pybpf filter writes the packets of a file that the filter accepts")
    if args.read:
        return _filter_file(args)
    expression = " ".join(args.expression)
    netmask = 0xFFFFFFFF
    if args.netmask is not None:
        import ipaddress

        netmask = int(ipaddress.IPv4Address(args.netmask))
    snaplen = args.snaplen if args.snaplen > 0 else 262144
    try:
        program = compile_filter(expression, args.linktype, snaplen, not args.no_optimize, netmask)
    except FilterSyntaxError as exc:
        # tcpdump's wording first, then the expression with a caret under the bad token
        print(f"pybpf: error: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(dump(program, max(args.dump, 1)))
    return 0


def _filter_file(args) -> int:
    """Run the filter over a capture file like `tcpdump -r FILE [-w OUT] EXPR` (userspace bpf_filter)."""
    from ..cbpf.machine import Machine
    from ..cbpf.pcap import CaptureReader, open_writer

    expression = " ".join(args.expression)
    with CaptureReader(args.read) as reader:
        dlt = linktypes.from_linktype(reader.linktype)
        snaplen = args.snaplen if args.snaplen > 0 else (reader.snaplen or 262144)
        netmask = 0xFFFFFFFF
        if args.netmask is not None:
            import ipaddress

            netmask = int(ipaddress.IPv4Address(args.netmask))
        try:
            program = compile_filter(expression, dlt, snaplen, not args.no_optimize, netmask)
        except FilterSyntaxError as exc:
            print(f"pybpf: error: {exc}", file=sys.stderr)
            return 1
        machine = Machine(program, "pcap")
        writer = open_writer(args.write, "pcap", reader.linktype, snaplen) if args.write else None
        seen = accepted = 0
        try:
            for packet in reader:
                seen += 1
                keep = machine.run(packet.data, packet.wirelen)
                if keep:
                    accepted += 1
                    if writer is not None:
                        writer.write(packet.data[:keep], packet.ts_ns, packet.wirelen)
        finally:
            if writer is not None:
                writer.close()
    print(f"{accepted} of {seen} packets matched {expression or '(empty filter)'!r}"
          + (f"; written to {args.write}" if args.write else ""), file=sys.stderr if args.write else sys.stdout)
    return 0
