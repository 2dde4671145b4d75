"""The filter expressions and link types the compiler tests share, and cached compile outcomes.

Outcomes (instructions, or 'error: MESSAGE') are cached per (expression, link
type, snap length, optimize, netmask) for both pybpf and libpcap, so the
listing test and the packet-verdict test compile each case once.
"""

from __future__ import annotations

import functools
from pathlib import Path

import libpcap_reference as ref
from pybpf.cbpf import compile as pybpf_compile
from pybpf.cbpf import linktypes
from pybpf.errors import BPFError

EXPRESSIONS = [line for line in (Path(__file__).parent / "filter_expressions.txt").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
NETMASK = 0xFFFFFF00

# One link type per way libpcap's code generator treats them (offsets, link-type tests, address
# layouts, pseudo-headers, refusals); every expression runs on these.
FULL_LINKTYPES = (
    "EN10MB", "NETANALYZER", "NETANALYZER_TRANSPARENT", "NULL", "LOOP", "ENC", "RAW", "IPV4", "IPV6", "SLIP",
    "SLIP_BSDOS", "LINUX_SLL", "LINUX_SLL2", "PPP", "PPP_SERIAL", "PPP_PPPD", "PPP_ETHER", "PPP_BSDOS", "C_HDLC",
    "FDDI", "IEEE802", "IP_OVER_FC", "ATM_RFC1483", "ATM_CLIP", "SUNATM", "IEEE802_11", "IEEE802_11_RADIO",
    "IEEE802_11_RADIO_AVS", "PRISM_HEADER", "PPI", "ARCNET", "ARCNET_LINUX", "PFLOG", "LTALK", "FRELAY", "MFR",
    "APPLE_IP_OVER_IEEE1394", "SYMANTEC_FIREWALL", "IPNET", "JUNIPER_MFR", "JUNIPER_ATM1", "JUNIPER_ES",
    "JUNIPER_ETHER", "BACNET_MS_TP", "MTP2", "MTP2_WITH_PHDR", "ERF", "MTP3", "DOCSIS", "LINUX_IRDA", "LINUX_LAPD",
    "NFLOG", "PFSYNC", "USB_LINUX", "DSA_TAG_BRCM",
)
# The other link types share one of those code paths; a sample of every kind of primitive runs on them.
OTHER_LINKTYPES = tuple(name for name in linktypes.DLT if name not in FULL_LINKTYPES)
SAMPLE_EXPRESSIONS = (
    "ip", "ip6", "arp", "tcp port 80", "host 198.18.0.1", "net 10.0.0.0/8", "ip6 host fd00::1",
    "ether host 02:00:00:00:00:01", "link src $0e", "broadcast", "multicast", "ip multicast", "vlan 10", "mpls",
    "pppoes 7", "geneve", "llc", "llc ui", "link[0] = 1", "link[2:2] & 0xff00 != 0", "radio[0] = 0", "inbound",
    "ifindex 2", "type mgt", "dir tods", "vpi 1", "lane", "fisu", "sio 3", "on eth0", "reason match",
    "ip proto 6", "ip6 protochain 17", "less 100", "len - 14 > 10", "ether proto 0x0800", "iso proto \\clnp",
    "atalk", "ipx", "decnet host 1.2", "stp",
)


@functools.lru_cache(maxsize=None)
def outcome_ref(expr: str, dlt: str | int, snaplen: int = 262144, optimize: bool = True, netmask: int = NETMASK):
    """libpcap's instructions as a tuple of tuples, or 'error: MESSAGE'."""
    try:
        return tuple(ref.compile(expr, ref.dlt(dlt) if isinstance(dlt, str) else dlt, snaplen, optimize, netmask))
    except ref.ReferenceError as exc:
        return f"error: {str(exc).strip()}"


@functools.lru_cache(maxsize=None)
def outcome_ours(expr: str, dlt: str | int, snaplen: int = 262144, optimize: bool = True, netmask: int = NETMASK):
    try:
        return tuple(tuple(i) for i in pybpf_compile(expr, dlt, snaplen, optimize, netmask))
    except BPFError as exc:
        return f"error: {str(exc).splitlines()[0].strip()}"


def same(want, got) -> bool:
    """Identical instructions, or the same refusal (pybpf may add how it resolves names)."""
    if want == got:
        return True
    return isinstance(want, str) and isinstance(got, str) and got.startswith(want + " (pybpf reads only")
