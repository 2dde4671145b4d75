"""Packets of every protocol the filter language knows, built with struct, plus seeded mutations.

Frames are Ethernet; `for_linktype` re-wraps the network-layer part for the
other link types (raw IP, BSD loopback, Linux cooked v1/v2, PPP, HDLC).
"""

from __future__ import annotations

import random
import socket
import struct

MAC_A = bytes.fromhex("020000000001")
MAC_B = bytes.fromhex("020000000002")
BCAST = b"\xff" * 6
MCAST = bytes.fromhex("01005e000001")
IP_A, IP_B = socket.inet_aton("198.18.0.1"), socket.inet_aton("198.18.0.2")
IP_TEN = socket.inet_aton("10.1.2.3")
IP_MC = socket.inet_aton("224.0.0.1")
IP_BC = socket.inet_aton("198.18.0.255")
IP6_A = socket.inet_pton(socket.AF_INET6, "fd00::1")
IP6_B = socket.inet_pton(socket.AF_INET6, "2001:db8::dead:beef")
IP6_MC = socket.inet_pton(socket.AF_INET6, "ff02::1")
IP6_LL = socket.inet_pton(socket.AF_INET6, "fe80::1")


def ether(dst: bytes, src: bytes, ethertype: int, payload: bytes) -> bytes:
    return dst + src + struct.pack("!H", ethertype) + payload


def ipv4(proto: int, payload: bytes, src=IP_A, dst=IP_B, options: bytes = b"", frag: int = 0, ttl: int = 64) -> bytes:
    ihl = 5 + len(options) // 4
    total = ihl * 4 + len(payload)
    return struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, total, 0x1234, frag, ttl, proto, 0, src, dst) + options + payload


def ipv6(nxt: int, payload: bytes, src=IP6_A, dst=IP6_B) -> bytes:
    return struct.pack("!IHBB16s16s", 0x60000000, len(payload), nxt, 64, src, dst) + payload


def ext6(nxt: int, body_units: int = 0) -> bytes:
    """An IPv6 extension header (hop-by-hop, routing, dest options) of (1+units)*8 bytes."""
    return struct.pack("!BB", nxt, body_units) + b"\x01\x04\x00\x00\x00\x00" + b"\x00" * (8 * body_units)


def frag6(nxt: int, offset: int = 0) -> bytes:
    return struct.pack("!BBHI", nxt, 0, offset << 3, 0xABCD)


def ah(nxt: int) -> bytes:
    return struct.pack("!BBHII", nxt, 4, 0, 0x100, 1) + b"\x00" * 12


def tcp(sport: int, dport: int, flags: int = 0x02, payload: bytes = b"", doff: int = 5) -> bytes:
    opts = b"\x01" * ((doff - 5) * 4)
    return struct.pack("!HHIIBBHHH", sport, dport, 1, 0, doff << 4, flags, 65535, 0, 0) + opts + payload


def udp(sport: int, dport: int, payload: bytes = b"") -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def sctp(sport: int, dport: int) -> bytes:
    return struct.pack("!HHII", sport, dport, 1, 0) + struct.pack("!BBH", 1, 0, 20) + b"\x00" * 16


def icmp(typ: int, code: int = 0) -> bytes:
    return struct.pack("!BBHHH", typ, code, 0, 1, 1) + b"payload!"


def igmp(typ: int = 0x11) -> bytes:
    return struct.pack("!BBH4s", typ, 100, 0, IP_MC)


def arp(op: int = 1, spa=IP_A, tpa=IP_B) -> bytes:
    return struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, op, MAC_A, spa, b"\x00" * 6, tpa)


def vlan(tci: int, ethertype: int, payload: bytes, tpid: int = 0x8100) -> tuple[int, bytes]:
    return tpid, struct.pack("!HH", tci, ethertype) + payload


def mpls(label: int, bottom: bool, payload: bytes) -> bytes:
    return struct.pack("!I", (label << 12) | (0x100 if bottom else 0) | 64) + payload


def geneve(vni: int, inner: bytes, proto: int = 0x6558) -> bytes:
    return struct.pack("!BBHI", 0, 0, proto, vni << 8) + inner


def network_packets() -> list[tuple[int, bytes]]:
    """(ethertype, network-layer bytes) for the protocols above."""
    out: list[tuple[int, bytes]] = []
    for sport, dport in ((1024, 80), (80, 1024), (22, 22), (8080, 443), (53, 53), (6000, 6005), (33434, 7)):
        out.append((0x0800, ipv4(6, tcp(sport, dport, 0x02))))
        out.append((0x0800, ipv4(17, udp(sport, dport, b"\x45abc"))))
        out.append((0x86DD, ipv6(6, tcp(sport, dport, 0x12))))
        out.append((0x86DD, ipv6(17, udp(sport, dport))))
    for flags in (0x01, 0x02, 0x04, 0x10, 0x12, 0x18, 0x29, 0xC0):
        out.append((0x0800, ipv4(6, tcp(40000, 80, flags, b"GET / HTTP/1.0\r\n", doff=8 if flags & 8 else 5))))
    out += [
        (0x0800, ipv4(132, sctp(9899, 9899))),
        (0x0800, ipv4(1, icmp(8))), (0x0800, ipv4(1, icmp(0))), (0x0800, ipv4(1, icmp(3, 3))),
        (0x0800, ipv4(1, icmp(11, 1), src=IP_TEN)),
        (0x0800, ipv4(2, igmp(), dst=IP_MC)), (0x0800, ipv4(17, udp(5, 6), dst=IP_BC)),
        (0x0800, ipv4(9, b"\x00" * 20)), (0x0800, ipv4(103, b"\x20" * 20)), (0x0800, ipv4(112, b"\x21" * 20)),
        (0x0800, ipv4(50, b"\x00" * 24)), (0x0800, ipv4(51, ah(6) + tcp(1, 80))),
        (0x0800, ipv4(6, tcp(1234, 80), options=b"\x01\x01\x01\x00")),
        (0x0800, ipv4(6, tcp(1234, 80), options=b"\x07\x07\x04" + b"\x00" * 5)),
        (0x0800, ipv4(6, tcp(1234, 80), frag=0x2000)),  # first fragment
        (0x0800, ipv4(6, b"\x00\x50\x00\x50" * 4, frag=0x0010)),  # later fragment
        (0x0800, ipv4(17, udp(1, 53), src=IP_TEN, dst=IP_TEN, ttl=1)),
        (0x0800, ipv4(6, tcp(1, 2), src=socket.inet_aton("127.0.0.1"), dst=socket.inet_aton("127.0.0.1"))),
        (0x0800, ipv4(17, udp(12345, 6081, geneve(42, ether(MAC_A, MAC_B, 0x0800, ipv4(6, tcp(1, 80))))))),
        (0x0800, ipv4(17, udp(12345, 6081, geneve(10, ipv4(17, udp(1, 53)), proto=0x0800)))),
        (0x86DD, ipv6(17, udp(1, 6081, geneve(7, ether(MAC_A, MAC_B, 0x86DD, ipv6(58, icmp(128))))))),
        (0x86DD, ipv6(58, icmp(128))), (0x86DD, ipv6(58, icmp(129))), (0x86DD, ipv6(58, icmp(135), dst=IP6_MC)),
        (0x86DD, ipv6(58, icmp(136), src=IP6_LL)), (0x86DD, ipv6(132, sctp(1, 2))),
        (0x86DD, ipv6(0, ext6(6) + tcp(1, 80))), (0x86DD, ipv6(43, ext6(17, 1) + udp(53, 1))),
        (0x86DD, ipv6(60, ext6(0, 0) + ext6(58) + icmp(128))), (0x86DD, ipv6(44, frag6(6) + tcp(9, 80))),
        (0x86DD, ipv6(44, frag6(17, 5) + b"\x00" * 16)), (0x86DD, ipv6(51, ah(6) + tcp(2, 22))),
        (0x86DD, ipv6(59, b"")), (0x86DD, ipv6(50, b"\x00" * 16)),
        (0x0806, arp(1)), (0x0806, arp(2, IP_B, IP_A)), (0x8035, arp(3)), (0x8035, arp(4)),
        (0x6003, bytes.fromhex("0000") + bytes.fromhex("8106") + b"\x00" * 30),
        (0x6003, bytes.fromhex("0000") + bytes.fromhex("0204") + b"\x00" * 30),
        (0x809B, b"\x00" * 20), (0x80F3, b"\x00" * 20), (0x8137, b"\xff\xff" + b"\x00" * 28),
        (0x88CC, b"\x02\x07" + b"\x00" * 20), (0x9000, b"\x00" * 10),
    ]
    return out


def ethernet_frames() -> list[bytes]:
    frames: list[bytes] = []
    base = network_packets()
    for i, (ethertype, net) in enumerate(base):
        dst = (MAC_B, BCAST, MCAST)[i % 3]
        frames.append(ether(dst, MAC_A, ethertype, net))
    ip_tcp = ipv4(6, tcp(1024, 80))
    ip6_udp = ipv6(17, udp(53, 53))
    for tci in (100, 200, 10, 20, 4095):
        tpid, body = vlan(tci, 0x0800, ip_tcp)
        frames.append(ether(MAC_B, MAC_A, tpid, body))
        tpid, inner = vlan(20, 0x86DD, ip6_udp)
        tpid2, body = vlan(tci, tpid, inner, tpid=0x88A8)
        frames.append(ether(MAC_B, MAC_A, tpid2, body))
    tpid, body = vlan(300, 0x8847, mpls(42, True, ip_tcp), tpid=0x9100)
    frames.append(ether(MAC_B, MAC_A, tpid, body))
    for label in (42, 100, 200):
        frames.append(ether(MAC_B, MAC_A, 0x8847, mpls(label, True, ip_tcp)))
        frames.append(ether(MAC_B, MAC_A, 0x8847, mpls(100, False, mpls(label, True, ip6_udp))))
    frames.append(ether(MAC_B, MAC_A, 0x8847, mpls(7, True, ipv4(17, udp(1, 2), src=IP_A))))
    frames.append(ether(BCAST, MAC_A, 0x8863, bytes.fromhex("1109000000040101") + b"\x00" * 4))
    for sess in (7, 0x1234):
        for proto, net in ((0x0021, ip_tcp), (0x0057, ip6_udp), (0xC021, b"\x01\x01\x00\x04")):
            frames.append(ether(MAC_B, MAC_A, 0x8864, struct.pack("!BBHH", 0x11, 0, sess, len(net) + 2)
                                + struct.pack("!H", proto) + net))
    llc = [bytes.fromhex("aaaa03000000") + b"\x81\x37" + b"\x00" * 30, bytes.fromhex("aaaa03080007809b") + b"\x00" * 30,
           bytes.fromhex("424203") + b"\x00" * 35, bytes.fromhex("fefe03") + bytes([0x83, 0x1b, 1, 0, 15]) + b"\x00" * 30,
           bytes.fromhex("e0e003") + b"\x00" * 30, bytes.fromhex("f0f003") + b"\x00" * 30, b"\xff\xff" + b"\x00" * 30]
    for body in llc:
        frames.append(MAC_B + MAC_A + struct.pack("!H", len(body)) + body)
    frames.append(b"\x02\x00")  # runt
    frames.append(ether(MAC_B, MAC_A, 0x0800, b"\x45"))  # truncated IP
    return frames


def mutations(frames: list[bytes], count: int, seed: int = 1234) -> list[bytes]:
    """Seeded random byte flips, truncations and extensions of the given frames."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        f = bytearray(rng.choice(frames))
        for _ in range(rng.randint(1, 4)):
            if f:
                f[rng.randrange(len(f))] = rng.randrange(256)
        r = rng.random()
        if r < 0.2 and len(f) > 1:
            f = f[:rng.randrange(1, len(f))]
        elif r < 0.3:
            f += bytes(rng.randrange(256) for _ in range(rng.randint(1, 40)))
        out.append(bytes(f))
    return out


_AF = {0x0800: 2, 0x86DD: 10}


def for_linktype(frame: bytes, dlt: str) -> bytes | None:
    """Re-wrap an Ethernet frame for another link type (None when it has no equivalent there)."""
    if dlt == "EN10MB":
        return frame
    if len(frame) < 14:
        return None
    ethertype = struct.unpack("!H", frame[12:14])[0]
    net = frame[14:]
    if dlt in ("RAW", "IPV4", "IPV6", "SLIP"):
        if dlt == "SLIP":
            return b"\x00" * 16 + net
        return net
    if dlt in ("NULL", "ENC"):
        af = struct.pack("<I", _AF.get(ethertype, ethertype))
        return af + (b"\x00" * 8 if dlt == "ENC" else b"") + net
    if dlt == "LOOP":
        return struct.pack("!I", _AF.get(ethertype, ethertype)) + net
    if dlt == "LINUX_SLL":
        return struct.pack("!HHH8sH", 0 if frame[0] & 1 == 0 else 2, 1, 6, frame[6:12] + b"\x00\x00", ethertype) + net
    if dlt == "LINUX_SLL2":
        return struct.pack("!HHIHBB8s", ethertype, 0, 2, 1, 4 if frame[0] & 1 else 0, 6, frame[6:12] + b"\x00\x00") + net
    if dlt in ("PPP", "PPP_SERIAL", "C_HDLC"):
        ppp = {0x0800: 0x0021, 0x86DD: 0x0057, 0x8847: 0x0281}.get(ethertype, ethertype)
        proto = ethertype if dlt == "C_HDLC" else ppp
        return b"\xff\x03" + struct.pack("!H", proto) + net
    return None
