"""Packets of every protocol the filter language knows, built with struct, plus seeded mutations.

Frames are Ethernet; `for_linktype` re-wraps them for the other link types
(raw IP, loopback, cooked, PPP and HDLC variants, 802.2 LLC/SNAP over FDDI,
token ring, ATM and Fibre Channel, 802.11 data frames behind radiotap, Prism,
AVS and PPI headers, ARCnet, pflog, ...), and `native_frames` adds what only
exists on a link type: 802.11 management and control frames, ATM signalling
and OAM cells, SS7 signal units, pflog records of every action.
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
SNAP_ETHER = bytes.fromhex("aaaa03000000")
BSSID = bytes.fromhex("02000000000a")


def _llc(frame: bytes) -> bytes:
    """The frame's payload as 802.2: 802.3 frames carry LLC already, others get SNAP (OUI 0)."""
    ethertype = struct.unpack("!H", frame[12:14])[0]
    return frame[14:] if ethertype <= 1500 else SNAP_ETHER + frame[12:]


def wlan_header(fc0: int, fc1: int, addrs: list[bytes], qos: bool = False) -> bytes:
    hdr = bytes([fc0, fc1]) + b"\x00\x00" + b"".join(addrs[:3]) + b"\x10\x00" + b"".join(addrs[3:])
    return hdr + (b"\x00\x00" if qos else b"")


def wlan_data(frame: bytes, variant: int) -> bytes:
    """An 802.11 data frame for an Ethernet frame; the DS bits and QoS vary with `variant`."""
    dst, src = frame[0:6], frame[6:12]
    ds = variant % 4
    addrs = {0: [dst, src, BSSID], 1: [BSSID, src, dst], 2: [dst, BSSID, src], 3: [BSSID, BSSID, dst, src]}[ds]
    qos = variant % 3 == 1
    return wlan_header(0x88 if qos else 0x08, ds, addrs, qos) + _llc(frame)


def radiotap(body: bytes, variant: int) -> bytes:
    """radiotap: no fields, Flags (with or without data padding), or TSFT + Flags, or an extended bitmap."""
    kind = variant % 5
    if kind == 0:
        return struct.pack("<BBHI", 0, 0, 8, 0) + body
    if kind in (1, 2):
        flags = 0x20 if kind == 2 else 0x00
        return struct.pack("<BBHIBx", 0, 0, 10, 0x02, flags) + body
    if kind == 3:
        return struct.pack("<BBHIQBx", 0, 0, 18, 0x03, 123456, 0x20) + body
    return struct.pack("<BBHII", 0, 0, 12, 0x80000002, 0) + body


def avs(body: bytes) -> bytes:
    return struct.pack("!II", 0x80211001, 64) + bytes(56) + body


def prism(body: bytes, variant: int) -> bytes:
    return avs(body) if variant % 4 == 3 else struct.pack("<II", 0x44, 144) + bytes(136) + body


def ppi(body: bytes, variant: int) -> bytes:
    return struct.pack("<BBHI", 0, 0, 8, 1 if variant % 7 == 6 else 105) + body


_ARCTYPES = {0x0800: (212, 240), 0x0806: (213, 241), 0x8035: (214, 214), 0x809B: (221, 221), 0x86DD: (0xC4, 0xC4)}
_ARC_ADDRS = (0x0E, 0x8C, 0xA4, 0x00, 0xD0)  # libpcap reads "$0e" as 0xD0 (its "$" becomes a digit)


def _arcnet(frame: bytes, ethertype: int, net: bytes, linux: bool, variant: int) -> bytes:
    arctype = _ARCTYPES.get(ethertype, (ethertype & 0xFF,) * 2)[variant % 2]
    src, dst = _ARC_ADDRS[variant % 5], _ARC_ADDRS[(variant // 5) % 5]
    if linux:
        return bytes([src, dst, 0, 0, arctype, 0, 0, 0]) + net
    return bytes([src, dst, arctype, 0, 0, 0]) + net


def pflog(net: bytes, ethertype: int, variant: int) -> bytes:
    ifname = (b"eth0", b"lo0", b"em1")[variant % 3].ljust(16, b"\x00")
    ruleset = (b"", b"myrules")[variant % 2].ljust(16, b"\x00")
    hdr = struct.pack("!BBBB16s16sIIIiIiB3x", 61, _AF.get(ethertype, 0), variant % 11, variant % 15, ifname,
                      ruleset, variant % 7, 123 if variant % 4 == 0 else 0, 0, 0, 0, 0, 1 + variant % 2)
    return hdr + net


_GENERIC = ("MTP3", "DOCSIS", "LINUX_IRDA", "LINUX_LAPD", "NFLOG", "PFSYNC", "USB_LINUX", "DSA_TAG_BRCM", "MFR")


def for_linktype(frame: bytes, dlt: str, variant: int = 0) -> bytes | None:
    """Re-wrap an Ethernet frame for another link type (None when it has no equivalent there).

    `variant` picks among the header shapes a link type has (802.11 DS bits,
    radiotap fields, ATM encapsulation, ...), so a corpus covers all of them.
    """
    if dlt == "EN10MB" or dlt in _GENERIC:
        return frame
    if len(frame) < 14:
        return None
    ethertype = struct.unpack("!H", frame[12:14])[0]
    net = frame[14:]
    if dlt in ("RAW", "IPV4", "IPV6", "LTALK"):
        return net
    if dlt in ("SLIP", "SLIP_BSDOS"):
        return bytes(16 if dlt == "SLIP" else 24) + net
    if dlt in ("NULL", "ENC"):
        af = struct.pack("<I", _AF.get(ethertype, ethertype))
        return af + (b"\x00" * 8 if dlt == "ENC" else b"") + net
    if dlt == "LOOP":
        return struct.pack("!I", _AF.get(ethertype, ethertype)) + net
    if dlt == "LINUX_SLL":
        return struct.pack("!HHH8sH", 0 if frame[0] & 1 == 0 else 2, 1, 6, frame[6:12] + b"\x00\x00", ethertype) + net
    if dlt == "LINUX_SLL2":
        return struct.pack("!HHIHBB8s", ethertype, 0, 2, 1, 4 if frame[0] & 1 else 0, 6, frame[6:12] + b"\x00\x00") + net
    ppp = {0x0800: 0x0021, 0x86DD: 0x0057, 0x8847: 0x0281, 0x6003: 0x0027, 0x809B: 0x0029}.get(ethertype, ethertype)
    if dlt in ("PPP", "PPP_SERIAL", "C_HDLC"):
        proto = ethertype if dlt == "C_HDLC" else ppp
        return b"\xff\x03" + struct.pack("!H", proto) + net
    if dlt == "PPP_PPPD":
        return bytes([variant % 2, 0x03]) + struct.pack("!H", ppp) + net
    if dlt == "PPP_ETHER":
        return struct.pack("!BBHH", 0x11, 0, 7, len(net) + 2) + struct.pack("!H", ppp) + net
    if dlt == "PPP_BSDOS":
        proto = (ppp, 0x002D, 0x002F)[variant % 3] if ppp == 0x0021 else ppp
        return bytes(5) + struct.pack("!H", proto) + bytes(17) + net
    if dlt in ("NETANALYZER", "NETANALYZER_TRANSPARENT"):
        return (bytes(4) if dlt == "NETANALYZER" else bytes(4) + b"\x55" * 7 + b"\xd5") + frame
    if dlt == "FDDI":
        return b"\x50" + frame[0:12] + _llc(frame)
    if dlt == "IEEE802":
        return b"\x10\x40" + frame[0:12] + _llc(frame)
    if dlt == "IP_OVER_FC":
        return b"\x00\x00" + frame[0:6] + b"\x00\x00" + frame[6:12] + _llc(frame)
    if dlt in ("ATM_RFC1483", "ATM_CLIP"):
        return _llc(frame)
    if dlt == "SUNATM":
        vpi, vci = (0, 32) if variant % 3 else (variant % 4, 100)
        if variant % 2:  # LANE: an LE header, then the Ethernet frame
            return struct.pack("!BBH", 0x01, vpi, vci) + (b"\xff\x00" if variant % 9 == 1 else b"\x00\x01") + frame
        return struct.pack("!BBH", 0x02, vpi, vci) + _llc(frame)
    if dlt == "IEEE802_11":
        return wlan_data(frame, variant)
    if dlt == "IEEE802_11_RADIO":
        return radiotap(wlan_data(frame, variant), variant // 4)
    if dlt == "IEEE802_11_RADIO_AVS":
        return avs(wlan_data(frame, variant))
    if dlt == "PRISM_HEADER":
        return prism(wlan_data(frame, variant), variant // 4)
    if dlt == "PPI":
        return ppi(wlan_data(frame, variant), variant // 4)
    if dlt in ("ARCNET", "ARCNET_LINUX"):
        return _arcnet(frame, ethertype, net, dlt == "ARCNET_LINUX", variant)
    if dlt == "PFLOG":
        return pflog(net, ethertype, variant)
    if dlt == "FRELAY":
        nlpid = {0x0800: 0xCC, 0x86DD: 0x8E}.get(ethertype, (0x81, 0x82, 0x83)[variant % 3])
        return bytes([0x18, 0x41, 0x03, nlpid]) + net
    if dlt == "APPLE_IP_OVER_IEEE1394":
        return bytes(16) + frame[12:14] + net
    if dlt == "SYMANTEC_FIREWALL":
        return bytes(6) + frame[12:14] + bytes(36) + net
    if dlt == "IPNET":
        family = {0x0800: 2, 0x86DD: 26}.get(ethertype, 0)
        return struct.pack("!BBHIII8x", 1, family, 1 + variant % 2, len(net), 1, 0) + net
    if dlt.startswith("JUNIPER_"):
        return b"MGC" + bytes([variant % 2]) + frame[12:14] + net
    if dlt == "BACNET_MS_TP":
        return b"\x55\xff" + bytes([variant % 8, 0xFF, variant % 127, 0, len(net) & 0xFF]) + net
    if dlt in ("MTP2", "MTP2_WITH_PHDR", "ERF"):
        prefix = {"MTP2": 0, "MTP2_WITH_PHDR": 4, "ERF": 20}[dlt]
        return bytes(prefix) + _signal_unit(variant, net)
    return None


def _signal_unit(variant: int, data: bytes) -> bytes:
    """An SS7 MTP2 signal unit: FISU, LSSU or MSU by length indicator, normal or high-speed layout."""
    li = (0, 1, 2, 3, 20, 63)[variant % 6]
    label = struct.pack("<I", (variant * 2654435761) & 0xFFFFFFFF)
    if variant % 2:
        return b"\x80\x80" + bytes([li, (variant * 37) & 0xFF]) + label + data[:30]
    return b"\x80\x80\x00\x80" + struct.pack("!H", li << 7) + bytes([(variant * 37) & 0xFF]) + label + data[:30]


def native_frames(dlt: str) -> list[bytes]:
    """Frames only a link type has: 802.11 management/control frames, ATM cells, SS7 signal units."""
    out: list[bytes] = []
    a, b = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")
    if dlt in ("IEEE802_11", "IEEE802_11_RADIO", "IEEE802_11_RADIO_AVS", "PRISM_HEADER", "PPI"):
        frames = [wlan_header(0x80, 0, [b"\xff" * 6, a, BSSID]) + bytes(12),  # beacon
                  wlan_header(0x40, 0, [b"\xff" * 6, b, b"\xff" * 6]) + bytes(4),  # probe request
                  wlan_header(0x50, 0, [b, a, BSSID]), wlan_header(0xB0, 0, [a, b, BSSID]),  # probe resp, auth
                  wlan_header(0xC0, 0, [b, a, BSSID]), wlan_header(0xA0, 0, [a, b, BSSID]),  # deauth, disassoc
                  b"\xd4\x00\x00\x00" + a, b"\xc4\x00\x00\x00" + b,  # ack, cts
                  b"\xb4\x00\x00\x00" + a + b, b"\xa4\x00\x01\xc0" + BSSID + a,  # rts, ps-poll
                  wlan_header(0x48, 1, [BSSID, a, b]), wlan_header(0xC8, 1, [BSSID, a, b], qos=True),  # null, qos null
                  wlan_header(0x18, 2, [a, BSSID, b]) + _llc(ether(a, b, 0x0800, ipv4(6, tcp(1, 80))))]
        for i, f in enumerate(frames):
            if dlt == "IEEE802_11_RADIO":
                f = radiotap(f, i)
            elif dlt == "IEEE802_11_RADIO_AVS":
                f = avs(f)
            elif dlt == "PRISM_HEADER":
                f = prism(f, i)
            elif dlt == "PPI":
                f = ppi(f, i)
            out.append(f)
    elif dlt == "SUNATM":
        for vpi, vci in ((0, 1), (0, 2), (0, 3), (0, 4), (0, 5), (0, 16), (1, 5), (0, 32)):
            for msg in (0x05, 0x02, 0x07, 0x0F, 0x4D, 0x5A, 0x01):
                out.append(struct.pack("!BBH", 0x06, vpi, vci) + bytes([0x09, 0x03, 0, 0, 1, msg]) + bytes(10))
    elif dlt in ("MTP2", "MTP2_WITH_PHDR", "ERF"):
        prefix = {"MTP2": 0, "MTP2_WITH_PHDR": 4, "ERF": 20}[dlt]
        rng = random.Random(7)
        for v in range(60):
            out.append(bytes(prefix) + _signal_unit(v, bytes(rng.randrange(256) for _ in range(12))))
    elif dlt == "PFLOG":
        for v in range(30):
            out.append(pflog(ipv4(17, udp(v, 53)), 0x0800, v))
    elif dlt in ("ARCNET", "ARCNET_LINUX"):
        for v in range(25):
            out.append(_arcnet(b"", 0x0800, ipv4(6, tcp(1, 80)), dlt == "ARCNET_LINUX", v))
    return out
