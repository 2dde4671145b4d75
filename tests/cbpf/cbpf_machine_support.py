"""Reference tools for the cBPF machine tests: libpcap through ctypes, packet builders.

libpcap is the reference for filter programs (pcap_compile) and for offline
filtering semantics (bpf_filter); the tests compare pybpf against it on the
same inputs.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import random
import socket
import struct
import subprocess

LINKTYPE_ETHERNET = 1
DLT_EN10MB = 1


class BpfInsn(ctypes.Structure):
    _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte), ("k", ctypes.c_uint32)]


class BpfProgram(ctypes.Structure):
    _fields_ = [("bf_len", ctypes.c_uint), ("bf_insns", ctypes.POINTER(BpfInsn))]


def _load_libpcap():
    for name in ("libpcap.so.0.8", "libpcap.so.1", ctypes.util.find_library("pcap")):
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        lib.pcap_open_dead.restype = ctypes.c_void_p
        lib.pcap_open_dead.argtypes = [ctypes.c_int, ctypes.c_int]
        lib.pcap_compile.argtypes = [ctypes.c_void_p, ctypes.POINTER(BpfProgram), ctypes.c_char_p, ctypes.c_int,
                                     ctypes.c_uint32]
        lib.pcap_geterr.restype = ctypes.c_char_p
        lib.pcap_geterr.argtypes = [ctypes.c_void_p]
        lib.pcap_freecode.argtypes = [ctypes.POINTER(BpfProgram)]
        lib.pcap_close.argtypes = [ctypes.c_void_p]
        lib.bpf_filter.restype = ctypes.c_uint
        lib.bpf_filter.argtypes = [ctypes.POINTER(BpfInsn), ctypes.c_char_p, ctypes.c_uint, ctypes.c_uint]
        return lib
    return None


LIBPCAP = _load_libpcap()


def pcap_compile(expr: str, linktype: int = DLT_EN10MB, snaplen: int = 262144, optimize: bool = True):
    """Compile a filter expression with libpcap; returns [(code, jt, jf, k)]."""
    handle = LIBPCAP.pcap_open_dead(linktype, snaplen)
    try:
        prog = BpfProgram()
        if LIBPCAP.pcap_compile(handle, ctypes.byref(prog), expr.encode(), int(optimize), 0xFFFFFFFF) != 0:
            raise ValueError(f"libpcap cannot compile {expr!r}: {LIBPCAP.pcap_geterr(handle).decode()}")
        out = [(prog.bf_insns[i].code, prog.bf_insns[i].jt, prog.bf_insns[i].jf, prog.bf_insns[i].k)
               for i in range(prog.bf_len)]
        LIBPCAP.pcap_freecode(ctypes.byref(prog))
        return out
    finally:
        LIBPCAP.pcap_close(handle)


class LibpcapFilter:
    """libpcap's bpf_filter() on one program: one ctypes call per packet."""

    def __init__(self, program):
        program = [tuple(i) for i in program]
        self._insns = (BpfInsn * len(program))(*[BpfInsn(*i) for i in program])

    def __call__(self, data: bytes, wirelen: int | None = None) -> int:
        return LIBPCAP.bpf_filter(self._insns, data, len(data) if wirelen is None else wirelen, len(data))


# --- packets -----------------------------------------------------------------


def _csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ether(dst: bytes, src: bytes, ethertype: int, payload: bytes, vlan: int | None = None) -> bytes:
    tag = struct.pack("!HH", 0x8100, vlan) if vlan is not None else b""
    return dst + src + tag + struct.pack("!H", ethertype) + payload


def ipv4(src: str, dst: str, proto: int, payload: bytes, ttl: int = 64, frag: int = 0, options: bytes = b"",
         ident: int = 1) -> bytes:
    import socket
    ihl = 5 + len(options) // 4
    hdr = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, 20 + len(options) + len(payload), ident, frag, ttl, proto, 0,
                      socket.inet_aton(src), socket.inet_aton(dst)) + options
    hdr = hdr[:10] + struct.pack("!H", _csum(hdr)) + hdr[12:]
    return hdr + payload


def ipv6(src: str, dst: str, nxt: int, payload: bytes, hlim: int = 64) -> bytes:
    import socket
    return struct.pack("!IHBB16s16s", 0x60000000, len(payload), nxt, hlim,
                       socket.inet_pton(socket.AF_INET6, src), socket.inet_pton(socket.AF_INET6, dst)) + payload


def tcp(sport: int, dport: int, flags: int = 0x02, payload: bytes = b"", seq: int = 1) -> bytes:
    return struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 5 << 4, flags, 65535, 0, 0) + payload


def udp(sport: int, dport: int, payload: bytes = b"") -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def icmp(typ: int = 8, code: int = 0, payload: bytes = b"abcd") -> bytes:
    body = struct.pack("!BBHHH", typ, code, 0, 1, 1) + payload
    return body[:2] + struct.pack("!H", _csum(body)) + body[4:]


def arp(op: int = 1, spa: str = "198.18.0.1", tpa: str = "198.18.0.2") -> bytes:
    import socket
    return struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, op, b"\x02\0\0\0\0\1", socket.inet_aton(spa),
                       b"\0" * 6, socket.inet_aton(tpa))


MAC_A = b"\x02\x00\x00\x00\x00\x01"
MAC_B = b"\x02\x00\x00\x00\x00\x02"
BROADCAST = b"\xff" * 6


def sample_frames(seed: int = 1, random_count: int = 60) -> list[bytes]:
    """Ethernet frames of many protocols (and some random and truncated ones)."""
    rng = random.Random(seed)
    frames = []
    hosts = ["198.18.0.1", "198.18.0.2", "198.19.255.7", "10.0.0.1", "192.168.1.1"]
    ports = [22, 53, 80, 443, 8080, 1234, 65535]
    def ip4(src, dst, proto, payload, **kw):
        return ether(MAC_B, MAC_A, 0x0800, ipv4(src, dst, proto, payload, **kw))

    for src in hosts[:3]:
        for dst in hosts[1:]:
            for sport, dport in ((rng.choice(ports), rng.choice(ports)) for _ in range(2)):
                for flags in (0x02, 0x12, 0x10, 0x01, 0x04, 0x18):
                    frames.append(ip4(src, dst, 6, tcp(sport, dport, flags, b"x" * rng.randrange(0, 40))))
                frames.append(ip4(src, dst, 17, udp(sport, dport, b"y" * rng.randrange(0, 40))))
            frames.append(ip4(src, dst, 1, icmp(rng.choice([0, 3, 8, 11]))))
            frames.append(ip4(src, dst, 6, tcp(80, 80), frag=0x2000 | 5))  # more fragments follow
            frames.append(ip4(src, dst, 17, udp(53, 53), frag=0x0010))  # a later fragment
            frames.append(ip4(src, dst, 6, tcp(443, 80), options=b"\x01\x01\x01\x00"))
            frames.append(ether(BROADCAST, MAC_A, 0x0806, arp(1, src, dst)))
            frames.append(ether(MAC_B, MAC_A, 0x0800, ipv4(src, dst, 6, tcp(80, 22)), vlan=100))
    for v6 in (("2001:db8::1", "2001:db8::2"), ("fe80::1", "ff02::1")):
        for nxt, l4 in ((6, tcp(80, 1234)), (17, udp(53, 5353)), (58, icmp(128))):
            frames.append(ether(MAC_B, MAC_A, 0x86DD, ipv6(*v6, nxt, l4)))
    igmp = b"\x11\x64\0\0\0\0\0\0"
    frames.append(ether(b"\x01\x00\x5e\x00\x00\x01", MAC_A, 0x0800, ipv4("198.18.0.1", "224.0.0.1", 2, igmp)))
    frames.append(ip4("198.18.0.1", "198.18.0.2", 132, b"\0" * 16))
    for frame in list(frames[:: max(1, len(frames) // 20)]):  # truncated copies
        frames.append(frame[: rng.randrange(0, len(frame))])
    for _ in range(random_count):
        frames.append(bytes(rng.randrange(256) for _ in range(rng.randrange(0, 120))))
    return frames


FILTER_EXPRESSIONS = [
    "", "ip", "ip6", "arp", "tcp", "udp", "icmp", "icmp6", "tcp port 80", "udp port 53", "port 53 or port 80",
    "host 198.18.0.1", "src host 198.18.0.2", "dst host 198.19.255.7", "net 198.18.0.0/15", "src net 10.0.0.0/8",
    "tcp[tcpflags] & tcp-syn != 0", "tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn", "tcp[13] == 0x12",
    "ip[8] < 64", "ip[6:2] & 0x1fff != 0", "ip[2:2] > 60", "len > 100", "len <= 64", "greater 80", "less 60",
    "vlan", "vlan 100", "vlan and tcp", "ether broadcast", "ether multicast", "ether host 02:00:00:00:00:01",
    "ether proto 0x0806", "ip proto 132", "sctp", "portrange 1000-2000", "tcp portrange 20-90", "not ip",
    "not tcp and not udp", "ip and (tcp or udp) and not port 22", "icmp[icmptype] == icmp-echo",
    "icmp[0] == 8 or icmp[0] == 0", "ip6 and tcp port 80", "udp and ip6 dst host ff02::1", "ip multicast",
    "tcp[((tcp[12:1] & 0xf0) >> 2):4] = 0x47455420", "ip[0] & 0xf != 5", "ip[0] >> 4 == 4",
    "ip[9] * 2 == 12", "ip[9] / 2 == 3", "ip[9] % 4 == 2", "ip[2:2] - 20 > 30", "ip[9] + 1 == 7",
    "ip[9] ^ 1 == 7", "ip[9] | 1 == 7", "(ip[0] << 1) & 0xff == 0x8a", "len - 14 > 40", "ether[0] & 1 = 1",
    "ip[9] << 24 >> 24 == 6", "udp[4:2] > 10 and udp port 53", "ip and ip[12:4] == ip[16:4]",
    "tcp[2:2] == tcp[0:2]", "ip[16] == 224 or ip[16] == 198", "ether src 02:00:00:00:00:01 and arp",
]


# --- network namespaces and veth pairs (kernel tests) --------------------------


CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)
SO_ATTACH_FILTER = 26
ETH_P_ALL = 0x0003


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@contextlib.contextmanager
def in_netns(name: str):
    """Run the block with this thread in network namespace ``name`` (sockets made there stay there)."""
    with open("/proc/self/ns/net") as home, open(f"/run/netns/{name}") as target:
        if _libc.setns(target.fileno(), CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns into " + name)
        try:
            yield
        finally:
            if _libc.setns(home.fileno(), CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back home")


class VethLab:
    """One network namespace (unique name) holding a veth pair tx <-> rx, IPv6 off, nothing else talks."""

    def __init__(self, tag: str = "lab"):
        self.ns = f"pybpf-cbm-{tag}-{os.getpid()}"
        self.tx, self.rx = "vtx", "vrx"

    def __enter__(self) -> "VethLab":
        _ip("netns", "add", self.ns)
        try:
            for cmd in (["link", "add", self.tx, "type", "veth", "peer", "name", self.rx],
                        ["link", "set", self.tx, "address", "02:00:00:00:00:01"],
                        ["link", "set", self.rx, "address", "02:00:00:00:00:02"]):
                _ip("-n", self.ns, *cmd)
            subprocess.run(["ip", "netns", "exec", self.ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
                            "net.ipv6.conf.default.disable_ipv6=1"], check=True, capture_output=True)
            for dev in (self.tx, self.rx):
                _ip("-n", self.ns, "link", "set", dev, "up")
            with in_netns(self.ns):
                self.rx_ifindex = socket.if_nametoindex(self.rx)
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True)

    def __exit__(self, *exc) -> None:
        self.close()

    def packet_socket(self, dev: str) -> socket.socket:
        with in_netns(self.ns):
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        s.bind((dev, ETH_P_ALL))
        return s


def attach_cbpf(sock: socket.socket, program) -> None:
    program = [tuple(i) for i in program]
    buf = (BpfInsn * len(program))(*[BpfInsn(*i) for i in program])
    fprog = struct.pack("HL", len(program), ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


def drain(sock: socket.socket) -> list[bytes]:
    out = []
    sock.setblocking(False)
    try:
        while True:
            out.append(sock.recv(65536))
    except BlockingIOError:
        pass
    finally:
        sock.setblocking(True)
    return out


class FilterBench:
    """Send frames through the lab and see which ones a filter on the receiving side lets in (and how long)."""

    def __init__(self, lab: VethLab):
        self.lab = lab
        self.tx = lab.packet_socket(lab.tx)
        self.control = lab.packet_socket(lab.rx)

    def close(self) -> None:
        self.tx.close()
        self.control.close()

    def verdicts(self, sockets: list[socket.socket], frames: list[bytes]) -> list[list[int]]:
        """For each socket, the received length of each frame (0 = filtered out).

        Frames go one at a time: once the unfiltered control socket has a frame,
        every other packet socket on the device has run its filter on it too.
        """
        for s in [*sockets, self.control]:
            drain(s)
        self.control.settimeout(5)
        results = [[0] * len(frames) for _ in sockets]
        for i, frame in enumerate(frames):
            self.tx.send(frame)
            self.control.recv(65536)
            for s, lengths in zip(sockets, results):
                got = drain(s)
                if len(got) > 1:
                    raise AssertionError(f"{len(got)} frames arrived for one sent")
                if got:
                    lengths[i] = len(got[0])
        return results


class PairLab:
    """Two network namespaces joined by a veth pair: a (198.18.0.1) <-> b (198.18.0.2), neighbours static."""

    def __init__(self, tag: str = "pair"):
        base = f"pybpf-cbm-{tag}-{os.getpid()}"
        self.ns_a, self.ns_b = base + "-a", base + "-b"
        self.dev_a, self.dev_b = "veth-a", "veth-b"
        self.ip_a, self.ip_b = "198.18.0.1", "198.18.0.2"
        self.mac_a, self.mac_b = "02:00:00:00:00:01", "02:00:00:00:00:02"

    def __enter__(self) -> "PairLab":
        _ip("netns", "add", self.ns_a)
        try:
            _ip("netns", "add", self.ns_b)
            _ip("-n", self.ns_a, "link", "add", self.dev_a, "type", "veth", "peer", "name", self.dev_b, "netns",
                self.ns_b)
            for ns, dev, mac, addr, peer_ip, peer_mac in ((self.ns_a, self.dev_a, self.mac_a, self.ip_a, self.ip_b,
                                                           self.mac_b),
                                                          (self.ns_b, self.dev_b, self.mac_b, self.ip_b, self.ip_a,
                                                           self.mac_a)):
                subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
                                "net.ipv6.conf.default.disable_ipv6=1"], check=True, capture_output=True)
                _ip("-n", ns, "link", "set", dev, "address", mac)
                _ip("-n", ns, "addr", "add", addr + "/24", "dev", dev)
                _ip("-n", ns, "link", "set", dev, "up")
                _ip("-n", ns, "neigh", "replace", peer_ip, "lladdr", peer_mac, "dev", dev, "nud", "permanent")
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        for ns in (self.ns_a, self.ns_b):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)

    def __exit__(self, *exc) -> None:
        self.close()

    def udp_sender(self) -> socket.socket:
        with in_netns(self.ns_a):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        return s


def program_text(program) -> str:
    """A program in `tcpdump -ddd` form."""
    return "\n".join([str(len(program))] + [" ".join(map(str, i)) for i in program]) + "\n"


def ping_once(lab: PairLab, ident: int = 0x4242) -> None:
    """One ICMP echo request from a to b (no ping binary needed); b's kernel answers it."""
    with in_netns(lab.ns_a):
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    with s:
        body = struct.pack("!BBHHH", 8, 0, 0, ident, 1) + b"pybpf-ping"
        s.sendto(body[:2] + struct.pack("!H", _csum(body)) + body[4:], (lab.ip_b, 0))
