"""Run BPF objects in the VM and in the kernel (BPF_PROG_TEST_RUN) on the same inputs; report what differs.

    python bench/compare_vm_kernel.py DIR_OR_OBJECT... [--verbose] [--engine compiled|interpreter|both]

Every program of a type BPF_PROG_TEST_RUN can run (XDP, tc, socket filter,
cgroup skb, lwt, flow dissector, raw tracepoint, syscall) is loaded from the
same ObjectSpec into both backends and run over a packet corpus (Ethernet,
VLAN/QinQ, ARP, IPv4/IPv6 with TCP/UDP/ICMP, tunnels, options, fragments,
truncated and random frames) plus the traffic its own configuration expects
(scenarios below fill a few well-known programs' maps, e.g. a load balancer's
VIPs, in both backends).  After each run retval, data_out and ctx_out are
compared; after each program, the contents of every map.  Needs root and
bpf(); runs in a fresh network namespace so helpers that read the network
(bpf_fib_lookup, redirects) see the same empty namespace the VM models.

Programs whose results depend on time or randomness (they call
bpf_ktime_get_ns, bpf_get_prandom_u32, ...) are compared too, but their
differences are listed apart.  Maps pinned by name go to a private bpffs
directory (removed at exit); maps with max_entries 0 get one slot per CPU,
as xdp-tools' user space sizes them.

Last run (kernel 6.18, 2026-11-23), both engines:

    python bench/compare_vm_kernel.py /tmp/vmcorpus/obj [--engine interpreter]

on 88 objects built with clang-19 -O2 -g -mcpu=v3 (libbpf headers, vmlinux.h)
from sources not in this repository: xdp-tools (xdp-filter, xdp-forward,
xdp-dump, xdp-bench, xdp-trafficgen, xdp-monitor, libxdp), katran (balancer,
health checks, tc decap, xdp_root, pktcntr), xdp-tutorial, cilium/ebpf's
examples, libbpf-bootstrap (tc, sockfilter) and bpf-developer-tutorial (tc,
tcx, xdp, load balancer, sockfilter, cgroup): 106 test-runnable programs, 102
compared, 16925 runs, all 16925 identical (retval, data_out, ctx_out);
maps identical after every program except katran balancer_ingress's 'stats',
whose entry holds a bpf_ktime_get_ns() time stamp.  Not compared: 3 programs
the kernel refuses (xdp-forward's flowtable programs need the
bpf_xdp_flow_lookup kfunc, absent from this kernel; one xdp-tutorial
exercise is meant to fail verification) and 1 the VM refuses (a tc program
using the bpf_dynptr_from_skb/bpf_dynptr_slice kfuncs: the VM has no kfuncs).
The differences the first runs found are fixed and pinned by
tests/vm/test_vm_real_world.py.
"""

from __future__ import annotations

import argparse
import ctypes
import io
import itertools
import os
import random
import struct
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))  # this checkout, not an installed pybpf

from pybpf.errors import BPFError  # noqa: E402
from pybpf.isa import helper_id  # noqa: E402
from pybpf.object import ObjectSpec  # noqa: E402
from pybpf.object.kinds import MapType, ProgType  # noqa: E402

PACKET_TYPES = {ProgType.XDP, ProgType.SCHED_CLS, ProgType.SCHED_ACT, ProgType.SOCKET_FILTER, ProgType.CGROUP_SKB,
                ProgType.LWT_IN, ProgType.LWT_OUT, ProgType.LWT_XMIT, ProgType.FLOW_DISSECTOR}
CONTEXT_TYPES = {ProgType.RAW_TRACEPOINT, ProgType.SYSCALL}
RUNNABLE = PACKET_TYPES | CONTEXT_TYPES
SKB_TYPES = PACKET_TYPES - {ProgType.XDP, ProgType.FLOW_DISSECTOR}
# Results that depend on the clock, randomness or the host: differences are expected, reported apart.
NONDETERMINISTIC = {helper_id(n) for n in (
    "ktime_get_ns", "ktime_get_boot_ns", "ktime_get_coarse_ns", "ktime_get_tai_ns", "jiffies64", "get_prandom_u32",
    "get_hash_recalc", "get_smp_processor_id", "get_numa_node_id", "get_current_task", "get_current_task_btf",
    "get_current_cgroup_id", "ktime_get_tai_ns", "get_socket_cookie", "get_func_ip", "timer_start")} - {None}
# Maps this big (katran's ch_rings: 33 M slots) take minutes to dump; they are configuration the
# scenarios fill, not state the programs write.
MAX_COMPARED_ENTRIES = 1 << 16
UNCOMPARED_MAPS = {MapType.PERF_EVENT_ARRAY, MapType.RINGBUF, MapType.PROG_ARRAY, MapType.ARRAY_OF_MAPS,
                   MapType.HASH_OF_MAPS, MapType.STACK_TRACE, MapType.DEVMAP, MapType.DEVMAP_HASH, MapType.CPUMAP,
                   MapType.XSKMAP, MapType.SOCKMAP, MapType.SOCKHASH, MapType.USER_RINGBUF}


# --- packets -----------------------------------------------------------------------------------------------

MAC_A = bytes.fromhex("020000000001")
MAC_B = bytes.fromhex("020000000002")
BROADCAST = b"\xff" * 6
IP4_A, IP4_B = bytes([198, 18, 0, 1]), bytes([198, 18, 0, 2])
IP6_A = bytes.fromhex("20010db8000000000000000000000001")
IP6_B = bytes.fromhex("20010db8000000000000000000000002")


def csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def eth(proto: int, payload: bytes, dst: bytes = MAC_B, src: bytes = MAC_A) -> bytes:
    return dst + src + struct.pack("!H", proto) + payload


def ipv4(proto: int, l4: bytes, src: bytes = IP4_A, dst: bytes = IP4_B, ttl: int = 64, ip_options: bytes = b"",
         frag: int = 0, tos: int = 0, ident: int = 0x1234) -> bytes:
    ihl = 5 + len(ip_options) // 4
    head = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, tos, 4 * ihl + len(l4), ident, frag, ttl, proto, 0, src, dst)
    head += ip_options
    head = head[:10] + struct.pack("!H", csum(head)) + head[12:]
    return head + l4


def ipv6(nexthdr: int, l4: bytes, src: bytes = IP6_A, dst: bytes = IP6_B, hop: int = 64) -> bytes:
    return struct.pack("!IHBB16s16s", 0x60000000 | 0x12345, len(l4), nexthdr, hop, src, dst) + l4


def l4_csum(pseudo: bytes, proto: int, segment: bytes, offset: int) -> bytes:
    total = pseudo + struct.pack("!BBH", 0, proto, len(segment)) if len(pseudo) == 8 else \
        pseudo + struct.pack("!IxxxB", len(segment), proto)
    value = csum(total + segment)
    return segment[:offset] + struct.pack("!H", value) + segment[offset + 2:]


def tcp(sport: int, dport: int, flags: int = 0x02, payload: bytes = b"", options: bytes = b"", seq: int = 1000,
        ack: int = 0, src: bytes = IP4_A, dst: bytes = IP4_B) -> bytes:
    off = 5 + len(options) // 4
    seg = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, off << 4, flags, 65535, 0, 0) + options + payload
    return l4_csum(src + dst, 6, seg, 16)


def udp(sport: int, dport: int, payload: bytes = b"", src: bytes = IP4_A, dst: bytes = IP4_B) -> bytes:
    seg = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    return l4_csum(src + dst, 17, seg, 6)


def icmp(kind: int, code: int, body: bytes) -> bytes:
    msg = struct.pack("!BBHI", kind, code, 0, 0x00010001) + body
    return msg[:2] + struct.pack("!H", csum(msg)) + msg[4:]


def icmp6(kind: int, code: int, body: bytes, src: bytes = IP6_A, dst: bytes = IP6_B) -> bytes:
    msg = struct.pack("!BBHI", kind, code, 0, 0) + body
    return l4_csum(src + dst, 58, msg, 2)


TCP_OPTIONS = bytes([2, 4, 0x05, 0xB4, 4, 2, 8, 10]) + struct.pack("!II", 1, 0) + bytes([1, 3, 3, 7])


def ipv4_tcp(dport: int = 80, sport: int = 40000, flags: int = 0x02, payload: bytes = b"", src: bytes = IP4_A,
             dst: bytes = IP4_B, options: bytes = b"", **ip: Any) -> bytes:
    return eth(0x0800, ipv4(6, tcp(sport, dport, flags, payload, options, src=src, dst=dst), src, dst, **ip))


def ipv4_udp(dport: int = 53, sport: int = 40000, payload: bytes = b"", src: bytes = IP4_A, dst: bytes = IP4_B,
             **ip: Any) -> bytes:
    return eth(0x0800, ipv4(17, udp(sport, dport, payload, src, dst), src, dst, **ip))


def ipv6_tcp(dport: int = 80, sport: int = 40000, flags: int = 0x02, payload: bytes = b"", src: bytes = IP6_A,
             dst: bytes = IP6_B, options: bytes = b"") -> bytes:
    return eth(0x86DD, ipv6(6, tcp(sport, dport, flags, payload, options, src=src, dst=dst), src, dst))


def ipv6_udp(dport: int = 53, sport: int = 40000, payload: bytes = b"", src: bytes = IP6_A,
             dst: bytes = IP6_B) -> bytes:
    return eth(0x86DD, ipv6(17, udp(sport, dport, payload, src, dst), src, dst))


DNS_QUERY = bytes.fromhex("123401000001000000000000076578616d706c6503636f6d0000010001")
HTTP_GET = b"GET /index.html HTTP/1.1\r\nHost: example.com\r\n\r\n"


def packet_corpus() -> list[tuple[str, bytes]]:
    """Named frames covering the protocols and the malformed cases real parsers meet."""
    inner_tcp = ipv4(6, tcp(40000, 80))
    frames = [
        ("ipv4-tcp-syn", ipv4_tcp(80, options=TCP_OPTIONS)),
        ("ipv4-tcp-syn-22", ipv4_tcp(22)),
        ("ipv4-tcp-ack-http", ipv4_tcp(80, flags=0x18, payload=HTTP_GET)),
        ("ipv4-tcp-rst", ipv4_tcp(443, flags=0x04)),
        ("ipv4-tcp-fin", ipv4_tcp(8080, flags=0x11)),
        ("ipv4-udp-dns", ipv4_udp(53, payload=DNS_QUERY)),
        ("ipv4-udp-443", ipv4_udp(443, payload=b"\xc0" + bytes(40))),
        ("ipv4-udp-vxlan", ipv4_udp(4789, payload=bytes([8, 0, 0, 0, 0, 0, 1, 0]) + eth(0x0800, inner_tcp))),
        ("ipv4-udp-gue", ipv4_udp(9886, payload=bytes(4) + inner_tcp)),
        ("ipv4-udp-geneve", ipv4_udp(6081, payload=bytes([0, 0, 0x65, 0x58, 0, 0, 1, 0]) + eth(0x0800, inner_tcp))),
        ("ipv4-udp-zero-port", ipv4_udp(0, sport=0)),
        ("ipv4-icmp-echo", eth(0x0800, ipv4(1, icmp(8, 0, b"ping" * 8)))),
        ("ipv4-icmp-reply", eth(0x0800, ipv4(1, icmp(0, 0, b"pong" * 8), IP4_B, IP4_A))),
        ("ipv4-icmp-frag-needed", eth(0x0800, ipv4(1, icmp(3, 4, inner_tcp[:28]), IP4_B, IP4_A))),
        ("ipv4-options", ipv4_tcp(80, ip_options=bytes([1, 1, 1, 0]))),
        ("ipv4-fragment-first", ipv4_udp(53, payload=bytes(32), frag=0x2000)),
        ("ipv4-fragment-later", ipv4_udp(53, payload=bytes(32), frag=0x0010)),
        ("ipv4-ttl-1", ipv4_tcp(80, ttl=1)),
        ("ipv4-tos", ipv4_udp(123, tos=0xB8)),
        ("ipv4-ipip", eth(0x0800, ipv4(4, inner_tcp))),
        ("ipv4-gre", eth(0x0800, ipv4(47, struct.pack("!HH", 0, 0x0800) + inner_tcp))),
        ("ipv4-ipv6-in-ipv4", eth(0x0800, ipv4(41, ipv6(17, udp(1, 2, src=IP6_A, dst=IP6_B))))),
        ("ipv4-broadcast", eth(0x0800, ipv4(17, udp(68, 67, bytes(40), IP4_A, b"\xff" * 4), IP4_A, b"\xff" * 4),
                               dst=BROADCAST)),
        ("ipv4-to-host-mac", eth(0x0800, ipv4(6, tcp(40000, 80)), dst=bytes(6))),
        ("ipv4-bad-version", eth(0x0800, b"\x65" + ipv4(6, tcp(1, 2))[1:])),
        ("ipv4-bad-ihl", eth(0x0800, b"\x42" + ipv4(6, tcp(1, 2))[1:])),
        ("ipv6-tcp-syn", ipv6_tcp(80, options=TCP_OPTIONS)),
        ("ipv6-tcp-ack", ipv6_tcp(443, flags=0x10, payload=b"x" * 20)),
        ("ipv6-udp-dns", ipv6_udp(53, payload=DNS_QUERY)),
        ("ipv6-udp-gue", ipv6_udp(9886, payload=bytes(4) + ipv6(6, tcp(40000, 80, src=IP6_A, dst=IP6_B)))),
        ("ipv6-icmp-echo", eth(0x86DD, ipv6(58, icmp6(128, 0, b"ping" * 8)))),
        ("ipv6-icmp-ns", eth(0x86DD, ipv6(58, icmp6(135, 0, bytes(4) + IP6_B + bytes([1, 1]) + MAC_A)))),
        ("ipv6-icmp-too-big", eth(0x86DD, ipv6(58, icmp6(2, 0, ipv6(6, tcp(80, 40000, src=IP6_B, dst=IP6_A),
                                                                        IP6_B, IP6_A)[:48], IP6_B, IP6_A),
                                               IP6_B, IP6_A))),
        ("ipv6-hop-by-hop", eth(0x86DD, ipv6(0, bytes([17, 0, 1, 4, 0, 0, 0, 0]) + udp(1000, 2000)))),
        ("ipv6-fragment", eth(0x86DD, ipv6(44, bytes([17, 0, 0, 1, 0, 0, 0, 7]) + udp(1000, 2000)))),
        ("ipv6-in-ipv6", eth(0x86DD, ipv6(41, ipv6(6, tcp(40000, 80, src=IP6_A, dst=IP6_B))))),
        ("ipv6-ipip", eth(0x86DD, ipv6(4, inner_tcp))),
        ("vlan-ipv4-udp", eth(0x8100, struct.pack("!HH", 100, 0x0800) + ipv4(17, udp(1000, 53)))),
        ("vlan-ipv6-tcp", eth(0x8100, struct.pack("!HH", 0x2064, 0x86DD) + ipv6(6, tcp(1000, 80, src=IP6_A,
                                                                                        dst=IP6_B)))),
        ("qinq-ipv4-tcp", eth(0x88A8, struct.pack("!HHHH", 200, 0x8100, 100, 0x0800) + inner_tcp)),
        ("arp-request", eth(0x0806, bytes.fromhex("0001080006040001") + MAC_A + IP4_A + bytes(6) + IP4_B,
                            dst=BROADCAST)),
        ("lldp", eth(0x88CC, bytes(46), dst=bytes.fromhex("0180c200000e"))),
        ("802.3-llc", MAC_B + MAC_A + struct.pack("!H", 46) + b"\xaa\xaa\x03" + bytes(43)),
        ("mpls", eth(0x8847, struct.pack("!I", (100 << 12) | 0x100 | 64) + inner_tcp)),
        ("ipv4-tcp-1500", ipv4_tcp(80, flags=0x18, payload=bytes(random.Random(1).randbytes(1446)))),
    ]
    truncated = []
    for name, frame in frames[:2] + frames[5:6] + frames[26:27] + frames[28:29] + frames[37:38]:
        for cut in (14, 20, 34, 40, 54):
            if cut < len(frame):
                truncated.append((f"{name}-cut{cut}", frame[:cut]))
    rnd = random.Random(7)
    garbage = [(f"random-{n}", rnd.randbytes(n)) for n in (14, 15, 60, 128, 600)]
    garbage.append(("zeros-64", bytes(64)))
    garbage.append(("ones-64", b"\xff" * 64))
    return frames + truncated + garbage


# --- contexts ----------------------------------------------------------------------------------------------

def skb_ctx(mark: int = 0, priority: int = 0, cb: tuple[int, ...] = (0,) * 5, ifindex: int = 1) -> bytes:
    ctx = bytearray(192)
    struct.pack_into("<I", ctx, 8, mark)
    struct.pack_into("<I", ctx, 32, priority)
    struct.pack_into("<II", ctx, 36, ifindex, ifindex)  # ingress_ifindex, ifindex
    struct.pack_into("<5I", ctx, 48, *cb)
    return bytes(ctx)


def contexts_for(prog_type: int) -> list[tuple[str, bytes | None]]:
    """Contexts every packet is run with: none, and one that sets the fields a test run may set."""
    if prog_type == ProgType.XDP:  # data_end is filled in per packet (xdp_ctx)
        return [("", None), ("ctx", struct.pack("<6I", 0, 0, 0, 1, 0, 0))]
    if prog_type in SKB_TYPES:
        return [("", None), ("ctx", skb_ctx(mark=0x42, priority=6, cb=(1, 2, 3, 4, 5)))]
    return [("", None)]


def edge_contexts_for(prog_type: int) -> list[tuple[str, bytes]]:
    """Contexts run with one packet only: what the kernel accepts or refuses at the edges."""
    if prog_type == ProgType.XDP:
        return [("xdp-rx-queue-1", struct.pack("<6I", 0, 0, 0, 1, 1, 0)),
                ("xdp-no-such-device", struct.pack("<6I", 0, 0, 0, 4242, 0, 0)),
                ("xdp-queue-without-device", struct.pack("<6I", 0, 0, 0, 0, 1, 0)),
                ("xdp-metadata-8", struct.pack("<6I", 8, 0, 0, 1, 0, 0)),
                ("xdp-metadata-3", struct.pack("<6I", 3, 0, 0, 1, 0, 0)),
                ("xdp-egress-ifindex", struct.pack("<6I", 0, 0, 0, 1, 0, 1))]
    if prog_type in SKB_TYPES:
        return [("skb-no-such-device", skb_ctx(ifindex=4242)), ("skb-ifindex-0", skb_ctx(ifindex=0)),
                ("skb-tc-index-set", skb_ctx()[:44] + struct.pack("<I", 7) + skb_ctx()[48:])]
    return []


def xdp_ctx(ctx: bytes | None, data: bytes) -> bytes | None:
    """An xdp_md whose data_end is the whole packet: a smaller one puts the rest in fragments (6.18+)."""
    if ctx is None:
        return None
    return ctx[:4] + struct.pack("<I", len(data) + struct.unpack_from("<I", ctx)[0]) + ctx[8:]


def raw_tp_contexts() -> list[tuple[str, bytes]]:
    """Argument arrays: small numbers, zeros, and values that are no valid kernel pointer."""
    return [
        ("zeros", bytes(64)),
        ("small", struct.pack("<8Q", 1, 2, 3, 4, 5, 6, 7, 8)),
        ("syscall-ids", struct.pack("<8Q", 0x1000, 59, 0, 0, 0, 0, 0, 0)),
        ("negative", struct.pack("<8q", -1, -2, -22, 0, 1 << 40, 0, 0, 0)),
    ]


# --- scenarios: the configuration well-known programs expect from their user space ---------------------------

@dataclass
class Scenario:
    """Fill maps (by name, raw bytes) before the runs and add the traffic the program exists for."""

    maps: dict[str, list[tuple[bytes, bytes]]] = field(default_factory=dict)
    packets: list[tuple[str, bytes]] = field(default_factory=list)


def _katran(spec: ObjectSpec) -> Scenario | None:
    """katran's balancer: two VIPs (TCP 198.18.1.1:80, UDP [2001:db8::100]:443) with two reals each."""
    if "vip_map" not in spec.maps or "ch_rings" not in spec.maps:
        return None
    ring = spec.maps["ch_rings"].max_entries // max(1, spec.maps["vip_map"].max_entries or 1)
    ring_size = 65537 if spec.maps["ch_rings"].max_entries % 65537 == 0 else ring
    vip4 = bytes([198, 18, 1, 1])
    vip6 = bytes.fromhex("20010db8000000000000000000000100")
    s = Scenario()
    # struct vip_definition { union { __be32 vip; __be32 vipv6[4]; }; __u16 port; __u8 proto; }  (20 bytes)
    # struct vip_meta { __u32 flags; __u32 vip_num; }
    s.maps["vip_map"] = [
        (vip4.ljust(16, b"\0") + struct.pack("!H", 80) + bytes([6, 0]), struct.pack("<II", 0, 0)),
        (vip6 + struct.pack("!H", 443) + bytes([17, 0]), struct.pack("<II", 0, 1)),
    ]
    # struct real_definition { union { __be32 dst; __be32 dstv6[4]; }; __u8 flags; }  (20 bytes, padded)
    s.maps["reals"] = [
        (struct.pack("<I", 1), bytes([198, 18, 2, 1]).ljust(16, b"\0") + bytes(4)),
        (struct.pack("<I", 2), bytes([198, 18, 2, 2]).ljust(16, b"\0") + bytes(4)),
        (struct.pack("<I", 3), bytes.fromhex("20010db8000000000000000000000201") + bytes([1, 0, 0, 0])),
    ]
    rings = []
    for vip_num, reals in ((0, (1, 2)), (1, (3, 3))):
        for i in range(min(ring_size, 64)):
            rings.append((struct.pack("<I", vip_num * ring_size + i), struct.pack("<I", reals[i % 2])))
    s.maps["ch_rings"] = rings
    if "ctl_array" in spec.maps:
        s.maps["ctl_array"] = [(struct.pack("<I", 0), bytes.fromhex("02000000000a").ljust(8, b"\0"))]
    s.packets = [
        ("vip4-tcp-syn", ipv4_tcp(80, dst=vip4, options=TCP_OPTIONS)),
        ("vip4-tcp-ack", ipv4_tcp(80, flags=0x10, dst=vip4, payload=b"data")),
        ("vip4-tcp-other-port", ipv4_tcp(81, dst=vip4)),
        ("vip4-udp", ipv4_udp(80, dst=vip4)),
        ("vip6-udp", ipv6_udp(443, dst=vip6, payload=bytes(32))),
        ("vip6-udp-quic", ipv6_udp(443, dst=vip6, payload=b"\xc0\x00\x00\x00\x01\x08" + bytes(30))),
        ("vip4-icmp-echo", eth(0x0800, ipv4(1, icmp(8, 0, bytes(16)), dst=vip4))),
        ("vip4-icmp-frag-needed", eth(0x0800, ipv4(1, icmp(3, 4, ipv4(6, tcp(80, 40000), vip4, IP4_A)[:28]),
                                                   dst=vip4))),
        ("vip4-fragment", ipv4_tcp(80, dst=vip4, frag=0x2000)),
        ("vip4-gue", ipv4_udp(9886, dst=vip4, payload=bytes(4) + ipv4(6, tcp(40000, 80), dst=vip4))),
        ("vip4-ipip", eth(0x0800, ipv4(4, ipv4(6, tcp(40000, 80), dst=vip4), dst=vip4))),
    ]
    return s


SCENARIOS: list[Callable[[ObjectSpec], Scenario | None]] = [_katran]


# --- backends ----------------------------------------------------------------------------------------------

def enter_fresh_netns() -> None:
    """Run in a new, empty network namespace: what the VM models (one loopback device, no routes)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(0x40000000) != 0:  # CLONE_NEWNET
        raise SystemExit(f"unshare(CLONE_NEWNET) failed: {os.strerror(ctypes.get_errno())} (run as root)")


def fresh_spec(path: Path, only: Iterable[str] | None = None) -> ObjectSpec:
    spec = ObjectSpec.from_file(path)
    for ms in spec.maps.values():
        if ms.max_entries == 0:  # sized by user space before load: xdp-tools' samples use one slot per CPU
            ms.max_entries = os.cpu_count() or 1
    if only is not None:
        keep = set(only)
        for name, ps in spec.programs.items():
            ps.autoload = name in keep
    return spec


PIN_BASE = Path(f"/sys/fs/bpf/pybpf-compare-{os.getpid()}")
_pin_dirs = itertools.count()


def load_kernel(path: Path, only: Iterable[str] | None) -> Any:
    """Maps pinned by name go to a fresh directory: no map left by another run or tool is reused (the VM's
    maps start empty too).  The directory goes when the process ends (remove_pins)."""
    spec = fresh_spec(path, only)
    pin_root = PIN_BASE / str(next(_pin_dirs))
    pin_root.mkdir(parents=True)
    return spec.load(backend="kernel", partial=True, pin_root=str(pin_root))


def remove_pins() -> None:
    if PIN_BASE.exists():
        for d in PIN_BASE.iterdir():
            for pin in d.iterdir():
                pin.unlink()
            d.rmdir()
        PIN_BASE.rmdir()


def load_vm(path: Path, only: Iterable[str] | None, engine: str) -> Any:
    spec = fresh_spec(path, only)
    # printk output goes nowhere, as the kernel's trace buffer is not read either
    return spec.load(backend="vm", engine=engine, trace_output=io.StringIO())


def map_contents(m: Any) -> dict[bytes, bytes] | None:
    try:
        return {bytes(k): bytes(m.lookup_raw(k)) for k in list(m.iter_keys_raw())}
    except (BPFError, OSError, KeyError):
        return None


# --- the comparison ----------------------------------------------------------------------------------------

@dataclass
class Outcome:
    retval: int | None = None
    data_out: bytes = b""
    ctx_out: bytes = b""
    error: str | None = None

    def same(self, other: "Outcome") -> bool:
        if self.error is not None or other.error is not None:
            return (self.error is None) == (other.error is None)
        return (self.retval, self.data_out, self.ctx_out) == (other.retval, other.data_out, other.ctx_out)

    def show(self) -> str:
        if self.error is not None:
            return f"error: {self.error}"
        return f"retval={self.retval} data_out={self.data_out[:64].hex()}{'...' if len(self.data_out) > 64 else ''}" \
               f" ({len(self.data_out)} bytes)" + (f" ctx_out={self.ctx_out.hex()}" if self.ctx_out else "")


def run(prog: Any, data: bytes, ctx: bytes | None) -> Outcome:
    try:
        r = prog.test_run(data, ctx=ctx)
    except BPFError as exc:
        return Outcome(error=f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
    return Outcome(r.retval, bytes(r.data_out), bytes(r.ctx_out))


@dataclass
class Report:
    objects: int = 0
    programs: int = 0
    compared_programs: int = 0
    runs: int = 0
    identical: int = 0
    kernel_refused: list[str] = field(default_factory=list)
    vm_refused: list[str] = field(default_factory=list)
    differences: list[str] = field(default_factory=list)
    nondeterministic: list[str] = field(default_factory=list)
    map_differences: list[str] = field(default_factory=list)
    different_programs: set[str] = field(default_factory=set)
    noisy_programs: set[str] = field(default_factory=set)  # differ, but depend on time or randomness


def uses_nondeterminism(spec: ObjectSpec, name: str) -> bool:
    insns = spec.programs[name].instructions
    return any(i.opcode == 0x85 and i.src == 0 and i.imm in NONDETERMINISTIC for i in insns)


def inputs_for(prog_type: int, scenario: Scenario | None, corpus: list[tuple[str, bytes]]
               ) -> list[tuple[str, bytes, bytes | None]]:
    if prog_type in PACKET_TYPES:
        xdp = prog_type == ProgType.XDP
        packets = corpus + (scenario.packets if scenario else [])
        runs = [(f"{pname}{'+' + cname if cname else ''}", data, xdp_ctx(ctx, data) if xdp else ctx)
                for cname, ctx in contexts_for(prog_type) for pname, data in packets]
        pname, data = packets[0]
        return runs + [(f"{pname}+{cname}", data, xdp_ctx(ctx, data) if xdp else ctx)
                       for cname, ctx in edge_contexts_for(prog_type)]
    if prog_type == ProgType.RAW_TRACEPOINT:
        return [(name, b"", ctx) for name, ctx in raw_tp_contexts()]
    return [(name, b"", ctx) for name, ctx in raw_tp_contexts()] + [("bytes-256", b"", bytes(range(256)))]


def compare_object(path: Path, report: Report, corpus: list[tuple[str, bytes]], engine: str, verbose: bool) -> None:
    try:
        spec = ObjectSpec.from_file(path)
    except BPFError as exc:
        print(f"{path.name}: not readable: {exc}")
        return
    candidates = [n for n, p in spec.programs.items() if int(p.type) in RUNNABLE]
    report.objects += 1
    if not candidates:
        return
    report.programs += len(candidates)
    scenario = next((s for s in (f(spec) for f in SCENARIOS) if s is not None), None)
    try:
        kobj = load_kernel(path, candidates)
    except BPFError as exc:
        for n in candidates:
            report.kernel_refused.append(f"{path.name}:{n}: {str(exc).splitlines()[0]}")
        return
    with kobj:
        loaded = [n for n in candidates if n in kobj.programs]
        for n, exc in getattr(kobj, "failed", {}).items():
            report.kernel_refused.append(f"{path.name}:{n}: {str(exc).splitlines()[0][:160]}")
        if not loaded:
            return
        try:
            vobj = load_vm(path, loaded, engine)
            groups = [(loaded, kobj, vobj)]
        except BPFError:
            # One program the VM cannot load: compare the others one by one (each with fresh maps).
            groups = []
            for n in loaded:
                try:
                    groups.append(([n], None, load_vm(path, [n], engine)))
                except BPFError as exc1:
                    report.vm_refused.append(f"{path.name}:{n}: {str(exc1).splitlines()[0][:200]}")
        for names, k, v in groups:
            kk = k if k is not None else load_kernel(path, names)
            try:
                _compare_group(path, spec, names, kk, v, scenario, corpus, report, verbose)
            finally:
                v.close()
                if k is None:
                    kk.close()


def _fill(obj: Any, scenario: Scenario | None) -> None:
    if scenario is None:
        return
    for name, entries in scenario.maps.items():
        m = obj.maps.get(name)
        if m is None:
            continue
        for key, value in entries:
            try:  # a scenario written for another version of the program may not fit: keep what does
                m.update_raw(key[:m.key_size].ljust(m.key_size, b"\0"), value[:m.value_size].ljust(m.value_size, b"\0"))
            except BPFError:
                pass


def _compare_group(path: Path, spec: ObjectSpec, names: list[str], kobj: Any, vobj: Any, scenario: Scenario | None,
                   corpus: list[tuple[str, bytes]], report: Report, verbose: bool) -> None:
    _fill(kobj, scenario)
    _fill(vobj, scenario)
    for name in names:
        ptype = int(spec.programs[name].type)
        label = f"{path.name}:{name}"
        noisy = uses_nondeterminism(spec, name)
        report.compared_programs += 1
        kprog, vprog = kobj.programs[name], vobj.programs[name]
        for iname, data, ctx in inputs_for(ptype, scenario, corpus):
            k = run(kprog, data, ctx)
            v = run(vprog, data, ctx)
            report.runs += 1
            if k.same(v):
                report.identical += 1
                continue
            text = f"{label} [{iname}]\n    kernel: {k.show()}\n    vm:     {v.show()}"
            (report.nondeterministic if noisy else report.differences).append(text)
            (report.noisy_programs if noisy else report.different_programs).add(label)
            if verbose:
                print(text)
        for mname, km in kobj.maps.items():
            vm_map = vobj.maps.get(mname)
            if vm_map is None or int(km.type) in UNCOMPARED_MAPS or km.max_entries > MAX_COMPARED_ENTRIES:
                continue
            kc, vc = map_contents(km), map_contents(vm_map)
            if kc is None or vc is None or kc == vc:
                continue
            only_k = {k: v for k, v in kc.items() if vc.get(k) != v}
            only_v = {k: v for k, v in vc.items() if kc.get(k) != v}
            sample = [(k.hex(), v.hex()[:48]) for k, v in list(only_k.items())[:2]]
            vsample = [(k.hex(), v.hex()[:48]) for k, v in list(only_v.items())[:2]]
            text = (f"{label}: map {mname!r}: {len(only_k)} kernel entries differ/missing, {len(only_v)} vm "
                    f"entries differ/extra\n    kernel: {sample}\n    vm:     {vsample}")
            (report.nondeterministic if noisy else report.map_differences).append(text)
            (report.noisy_programs if noisy else report.different_programs).add(label)
            if verbose:
                print(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+", type=Path, help="BPF object files or directories of them (*.o, *.elf)")
    parser.add_argument("--engine", default="compiled", choices=["compiled", "interpreter"])
    parser.add_argument("--verbose", "-v", action="store_true", help="print each difference as it is found")
    parser.add_argument("--no-netns", action="store_true", help="stay in the current network namespace")
    args = parser.parse_args(argv)
    if not args.no_netns:
        enter_fresh_netns()
    os.sched_setaffinity(0, {0})  # per-CPU map slots: the VM runs on CPU 0 too
    files: list[Path] = []
    for p in args.paths:
        files.extend(sorted(q for q in p.rglob("*") if q.suffix in (".o", ".elf")) if p.is_dir() else [p])
    corpus = packet_corpus()
    report = Report()
    start = time.monotonic()
    try:
        for f in files:
            t0 = time.monotonic()
            try:
                compare_object(f, report, corpus, args.engine, args.verbose)
            except Exception:  # a bug in either backend must not hide the rest of the corpus
                report.differences.append(f"{f.name}: crashed:\n{traceback.format_exc(limit=-6)}")
            if args.verbose:
                print(f"-- {f.name}: {time.monotonic() - t0:.1f} s", flush=True)
    finally:
        remove_pins()
    elapsed = time.monotonic() - start
    print(f"\n{report.objects} objects, {report.programs} test-runnable programs, {report.compared_programs} "
          f"compared, {report.runs} runs in {elapsed:.1f} s")
    pct = 100.0 * report.identical / report.runs if report.runs else 0.0
    print(f"identical runs: {report.identical}/{report.runs} ({pct:.2f}%); programs with a difference: "
          f"{len(report.different_programs)} (and {len(report.noisy_programs)} that use time or randomness)")
    for title, items in (("kernel refused", report.kernel_refused), ("VM refused", report.vm_refused),
                         ("run differences", report.differences), ("map differences", report.map_differences),
                         ("differences in time/random-dependent programs", report.nondeterministic)):
        if items:
            print(f"\n== {title} ({len(items)})")
            for item in items[:200]:
                print("  " + item)
    return 0 if not (report.differences or report.map_differences or report.vm_refused) else 1


if __name__ == "__main__":
    sys.exit(main())
