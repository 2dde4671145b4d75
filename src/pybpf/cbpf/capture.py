"""Live packet capture on Linux: an AF_PACKET socket with the filter in the kernel.

The filter runs in the kernel (SO_ATTACH_FILTER) so rejected packets never
reach Python.  Opening follows libpcap's order to avoid the startup race:
the socket is created unbound (protocol 0 receives nothing), a drop-all
filter is attached, the socket is bound to the interface, the ring is
drained, and only then the real filter replaces the drop-all one.  Packets arrive through a TPACKET_V3
ring shared with the kernel, whose headers give the timestamp, the original
length and an offloaded VLAN tag; the tag is put back into the frame, as
libpcap does, so saved files show the 802.1Q header.
"""

from __future__ import annotations

import errno
import fcntl
import mmap
import select
import socket
import struct
import time
from dataclasses import dataclass
from typing import Iterable, Iterator

from ..errors import BPFError, KernelError, NotSupportedError
from . import insn as I
from .pcap import LINKTYPE_ETHERNET, LINKTYPE_RAW, Packet
from .validate import validate

SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_PROMISC = 1
PACKET_STATISTICS = 6
SO_ATTACH_FILTER = 26
SO_DETACH_FILTER = 27
SIOCGIFHWADDR = 0x8927
ETH_P_ALL = 0x0003
TP_STATUS_VLAN_VALID = 1 << 4
TP_STATUS_VLAN_TPID_VALID = 1 << 6
PACKET_OUTGOING = 4
ARPHRD_ETHER, ARPHRD_LOOPBACK, ARPHRD_NONE = 1, 772, 0xFFFE
_LINKTYPE_BY_ARPHRD = {ARPHRD_ETHER: LINKTYPE_ETHERNET, ARPHRD_LOOPBACK: LINKTYPE_ETHERNET, ARPHRD_NONE: LINKTYPE_RAW}

PACKET_VERSION, PACKET_RX_RING, TPACKET_V3 = 10, 5, 2
TP_STATUS_KERNEL, TP_STATUS_USER = 0, 1
DEFAULT_BUFFER = 8 << 20
_BLOCK_SIZE, _FRAME_SIZE = 1 << 20, 2048
_BLOCK_DESC = struct.Struct("III")  # block_status, num_pkts, offset_to_first_pkt (at +8 in the block)
_BLOCK_STATUS = struct.Struct("I")
_BLOCK_RESUME = struct.Struct("II")
# struct tpacket3_hdr: next_offset, sec, nsec, snaplen, len, status, mac, net, rxhash, vlan_tci, vlan_tpid, pad
_TPACKET3_HDR = struct.Struct("IIIIIIHHIIHH")
_SOCKADDR_LL_PKTTYPE = 48 + 10  # sockaddr_ll follows the aligned header; sll_pkttype is its 11th byte
_DROP_ALL = [I.CInsn(I.RET | I.K, 0, 0, 0)]


def interface_linktype(interface: str) -> int:
    """The pcap link type of a capture on ``interface`` (what a filter must be compiled for)."""
    if interface == "any":
        raise NotSupportedError("capturing on the 'any' pseudo-interface",
                                reason="pybpf captures on one interface at a time; name it with -i")
    # SIOCGIFHWADDR answers for the caller's network namespace (/sys/class/net may show another one).
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            ifreq = fcntl.ioctl(probe, SIOCGIFHWADDR, struct.pack("16s16x", interface.encode()))
        except OSError:
            raise BPFError(f"no network interface named {interface!r} (see 'ip link')") from None
    hatype = struct.unpack_from("H", ifreq, 16)[0]
    if hatype not in _LINKTYPE_BY_ARPHRD:
        raise NotSupportedError(f"capturing on {interface} (hardware type ARPHRD {hatype})",
                                reason="pybpf captures on Ethernet, loopback and raw-IP interfaces")
    return _LINKTYPE_BY_ARPHRD[hatype]


def attach_filter(sock: socket.socket, program: Iterable) -> None:
    """Attach a classic BPF program to any socket (SO_ATTACH_FILTER); replaces the previous filter atomically."""
    insns = validate(program)
    fprog, _array = I.sock_fprog(insns)
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
    except OSError as exc:
        raise KernelError(exc.errno, f"SO_ATTACH_FILTER refused a {len(insns)}-instruction program") from None


def detach_filter(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, SO_DETACH_FILTER, 0)


def limit_snaplen(program: Iterable, snaplen: int) -> list[I.CInsn]:
    """The program with every accepting ``ret #k`` capped at ``snaplen``, so the kernel copies no more."""
    out = []
    for ins in validate(program):
        if ins.code == I.RET | I.K and ins.k > snaplen:
            ins = ins._replace(k=snaplen)
        out.append(ins)
    return out


@dataclass(slots=True)
class CapturedPacket(Packet):
    """A packet from a live capture: also the interface name and the packet type (direction)."""

    ifname: str = ""
    pkttype: int = 0  # PACKET_HOST 0, BROADCAST 1, MULTICAST 2, OTHERHOST 3, OUTGOING 4

    @property
    def direction(self) -> str:
        return "Out" if self.pkttype == PACKET_OUTGOING else "In"


@dataclass(frozen=True, slots=True)
class CaptureStats:
    received: int  # packets the filter accepted (PACKET_STATISTICS tp_packets, drops included)
    dropped: int  # of those, dropped by the kernel for lack of buffer space


class Capture:
    """Capture packets on one interface with a classic BPF filter running in the kernel.

    ``program`` is a classic BPF program (CInsns, tuples or bytes); None
    captures everything.  Iterate ``packets(count, timeout)``; ``stats()``
    gives the kernel's counters since the capture opened.  Packets arrive
    through a TPACKET_V3 ring shared with the kernel (``buffer_size`` bytes),
    so reading costs no system call per packet; a partly filled block is
    handed over after ``block_timeout_ms``.
    """

    def __init__(self, interface: str, program: Iterable | None = None, snaplen: int = 262144,
                 promiscuous: bool = True, buffer_size: int | None = None, block_timeout_ms: int = 10):
        if snaplen <= 0:
            raise BPFError(f"snap length must be positive, not {snaplen}")
        self.interface, self.snaplen = interface, snaplen
        real = limit_snaplen(program if program is not None else [I.CInsn(I.RET | I.K, 0, 0, snaplen)], snaplen)
        self.linktype = interface_linktype(interface)
        self.ifindex = socket.if_nametoindex(interface)
        try:
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)  # protocol 0: receives nothing yet
        except PermissionError:
            raise KernelError(errno.EPERM, "opening a packet socket needs CAP_NET_RAW (run as root)") from None
        self._received = self._dropped = 0
        self._ring: mmap.mmap | None = None
        try:
            attach_filter(self.sock, _DROP_ALL)
            self.sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V3)
            size = max(buffer_size or DEFAULT_BUFFER, _BLOCK_SIZE)
            self._blocks = size // _BLOCK_SIZE
            req = struct.pack("7I", _BLOCK_SIZE, self._blocks, _FRAME_SIZE, self._blocks * _BLOCK_SIZE // _FRAME_SIZE,
                              block_timeout_ms, 0, 0)  # struct tpacket_req3
            self.sock.setsockopt(SOL_PACKET, PACKET_RX_RING, req)
            self._ring = mmap.mmap(self.sock.fileno(), self._blocks * _BLOCK_SIZE, mmap.MAP_SHARED,
                                   mmap.PROT_READ | mmap.PROT_WRITE)
            self._next_block = 0
            self.sock.bind((interface, ETH_P_ALL))
            if promiscuous:
                mreq = struct.pack("iHH8s", self.ifindex, PACKET_MR_PROMISC, 0, b"")
                self.sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)
            self._discard_ring()
            self._read_stats()  # start the counters from zero
            attach_filter(self.sock, real)
        except BaseException:
            self.close()
            raise

    def _discard_ring(self) -> None:
        for block in range(self._blocks):
            _BLOCK_STATUS.pack_into(self._ring, block * _BLOCK_SIZE + 8, TP_STATUS_KERNEL)

    def _read_stats(self) -> tuple[int, int]:
        packets, drops, _freeze = struct.unpack("III", self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 12))
        return packets, drops  # reading resets the kernel's counters

    def stats(self) -> CaptureStats:
        packets, drops = self._read_stats()
        self._received += packets
        self._dropped += drops
        return CaptureStats(self._received, self._dropped)

    def packets(self, count: int | None = None, timeout: float | None = None) -> Iterator[CapturedPacket]:
        """Yield captured packets until ``count`` are read or ``timeout`` seconds have passed."""
        ring, linktype, ifname, snaplen = self._ring, self.linktype, self.interface, self.snaplen
        if ring is None:
            raise BPFError(f"the capture on {self.interface} is closed")
        unpack_block, unpack_packet = _BLOCK_DESC.unpack_from, _TPACKET3_HDR.unpack_from
        ethernet = linktype == LINKTYPE_ETHERNET
        poller = select.poll()
        poller.register(self.sock, select.POLLIN | select.POLLERR)
        deadline = None if timeout is None else time.monotonic() + timeout
        seen = 0
        while count is None or seen < count:
            base = self._next_block * _BLOCK_SIZE
            status, num, first = unpack_block(ring, base + 8)
            if not status & TP_STATUS_USER:
                wait_ms = -1 if deadline is None else int((deadline - time.monotonic()) * 1000)
                if deadline is not None and wait_ms <= 0:
                    return
                poller.poll(min(wait_ms, 200) if wait_ms >= 0 else 200)
                continue
            off, i = base + first, 0
            try:
                while i < num:
                    (next_off, sec, nsec, caplen, wirelen, pstatus, mac, _net, _hash, tci, tpid,
                     _pad) = unpack_packet(ring, off)
                    data = ring[off + mac:off + mac + caplen]
                    if pstatus & TP_STATUS_VLAN_VALID and ethernet and caplen >= 12:
                        tpid = tpid if pstatus & TP_STATUS_VLAN_TPID_VALID else 0x8100
                        data = (data[:12] + struct.pack("!HH", tpid, tci) + data[12:])[:snaplen]
                        wirelen += 4
                    packet = CapturedPacket(sec * 1_000_000_000 + nsec, data, max(wirelen, len(data)), linktype, 0,
                                            ifname, ring[off + _SOCKADDR_LL_PKTTYPE])
                    i, off, seen = i + 1, off + next_off, seen + 1
                    yield packet
                    if count is not None and seen >= count:
                        return
            finally:
                if self._ring is not None:
                    if i < num:  # stopped inside the block: the next call starts at the first unread packet
                        _BLOCK_RESUME.pack_into(ring, base + 12, num - i, off - base)
                    else:
                        _BLOCK_STATUS.pack_into(ring, base + 8, TP_STATUS_KERNEL)  # hand the block back
                        self._next_block = (self._next_block + 1) % self._blocks

    def close(self) -> None:
        if self._ring is not None:
            self._ring.close()
            self._ring = None
        self.sock.close()

    def __enter__(self) -> "Capture":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# --- one-line summaries, in the spirit of tcpdump's default output -------------

_TCP_FLAGS = ((0x01, "F"), (0x02, "S"), (0x04, "R"), (0x08, "P"), (0x10, "."), (0x20, "U"), (0x40, "E"), (0x80, "W"))
_ICMP_TYPES = {0: "echo reply", 3: "unreachable", 5: "redirect", 8: "echo request", 11: "time exceeded"}
_ICMP6_TYPES = {1: "destination unreachable", 2: "packet too big", 3: "time exceeded", 128: "echo request",
                129: "echo reply", 133: "router solicitation", 134: "router advertisement",
                135: "neighbor solicitation", 136: "neighbor advertisement", 143: "multicast listener report v2"}
_IP_PROTOCOLS = {1: "ICMP", 2: "IGMP", 6: "TCP", 17: "UDP", 47: "GRE", 50: "ESP", 58: "ICMP6", 132: "SCTP"}


def summarize(data: bytes, linktype: int = LINKTYPE_ETHERNET) -> str:
    """A concise description of a frame: the L2/L3/L4 facts tcpdump's default line shows."""
    if linktype == LINKTYPE_RAW:
        version = data[0] >> 4 if data else 0
        return _ipv4(data) if version == 4 else _ipv6(data) if version == 6 else f"raw IP?, length {len(data)}"
    if linktype != LINKTYPE_ETHERNET:
        return f"link type {linktype}, length {len(data)}"
    if len(data) < 14:
        return f"[|ether], length {len(data)}"
    ethertype, off, prefix = int.from_bytes(data[12:14], "big"), 14, ""
    while ethertype in (0x8100, 0x88A8) and len(data) >= off + 4:
        tci = int.from_bytes(data[off:off + 2], "big")
        prefix += f"vlan {tci & 0xFFF}, p {tci >> 13}, "
        ethertype, off = int.from_bytes(data[off + 2:off + 4], "big"), off + 4
    payload = data[off:]
    if ethertype == 0x0800:
        return prefix + _ipv4(payload)
    if ethertype == 0x86DD:
        return prefix + _ipv6(payload)
    if ethertype == 0x0806:
        return prefix + _arp(payload)
    return prefix + f"{_mac(data[6:12])} > {_mac(data[:6])}, ethertype {ethertype:#06x}, length {len(data)}"


def _mac(b: bytes) -> str:
    return ":".join(f"{x:02x}" for x in b)


def _arp(p: bytes) -> str:
    if len(p) < 28:
        return f"ARP, truncated, length {len(p)}"
    op = int.from_bytes(p[6:8], "big")
    spa, tpa = socket.inet_ntoa(p[14:18]), socket.inet_ntoa(p[24:28])
    if op == 1:
        return f"ARP, Request who-has {tpa} tell {spa}, length {len(p)}"
    if op == 2:
        return f"ARP, Reply {spa} is-at {_mac(p[8:14])}, length {len(p)}"
    return f"ARP, opcode {op}, length {len(p)}"


def _ipv4(p: bytes) -> str:
    if len(p) < 20 or p[0] >> 4 != 4:
        return f"IP truncated or bad header, length {len(p)}"
    ihl = (p[0] & 0x0F) * 4
    total = int.from_bytes(p[2:4], "big")
    src, dst = socket.inet_ntoa(p[12:16]), socket.inet_ntoa(p[16:20])
    frag = int.from_bytes(p[6:8], "big")
    proto = p[9]
    if frag & 0x1FFF:
        name = _IP_PROTOCOLS.get(proto, f"proto {proto}")
        return f"IP {src} > {dst}: {name} fragment at offset {(frag & 0x1FFF) * 8}, length {total - ihl}"
    return _l4("IP", src, dst, proto, p[ihl:total] if total >= ihl else p[ihl:], _ICMP_TYPES, 1)


def _ipv6(p: bytes) -> str:
    if len(p) < 40:
        return f"IP6 truncated, length {len(p)}"
    src = socket.inet_ntop(socket.AF_INET6, p[8:24])
    dst = socket.inet_ntop(socket.AF_INET6, p[24:40])
    return _l4("IP6", src, dst, p[6], p[40:40 + int.from_bytes(p[4:6], "big")], _ICMP6_TYPES, 58)


def _l4(family: str, src: str, dst: str, proto: int, seg: bytes, icmp_names: dict, icmp_proto: int) -> str:
    if proto == 6 and len(seg) >= 20:
        sport, dport, seq, ack, off_flags, flags, win = struct.unpack("!HHIIBBH", seg[:16])
        marks = "".join(ch for bit, ch in _TCP_FLAGS if flags & bit) or "none"
        data_len = max(0, len(seg) - (off_flags >> 4) * 4)
        text = f"{family} {src}.{sport} > {dst}.{dport}: Flags [{marks}], seq {seq}"
        if flags & 0x10:
            text += f", ack {ack}"
        return text + f", win {win}, length {data_len}"
    if proto == 17 and len(seg) >= 8:
        sport, dport, length = struct.unpack("!HHH", seg[:6])
        return f"{family} {src}.{sport} > {dst}.{dport}: UDP, length {max(0, length - 8)}"
    if proto == icmp_proto and len(seg) >= 4:
        label = "ICMP" if family == "IP" else "ICMP6"
        kind = icmp_names.get(seg[0], f"type {seg[0]}, code {seg[1]}")
        if seg[0] in ((0, 8) if family == "IP" else (128, 129)) and len(seg) >= 8:
            ident, seq = struct.unpack("!HH", seg[4:8])
            kind += f", id {ident}, seq {seq}"
        return f"{family} {src} > {dst}: {label} {kind}, length {len(seg)}"
    return f"{family} {src} > {dst}: {_IP_PROTOCOLS.get(proto, f'proto {proto}')}, length {len(seg)}"


def format_line(packet: CapturedPacket | Packet) -> str:
    """``HH:MM:SS.micro IFACE In|Out SUMMARY`` for a packet."""
    sec, nsec = divmod(packet.ts_ns, 1_000_000_000)
    stamp = time.strftime("%H:%M:%S", time.localtime(sec)) + f".{nsec // 1000:06d}"
    where = ""
    if isinstance(packet, CapturedPacket):
        where = f"{packet.ifname} {packet.direction:<3} "
    return f"{stamp} {where}{summarize(packet.data, packet.linktype)}"
