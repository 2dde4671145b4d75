"""Programs pybpf compiles accept exactly the packets libpcap's do.

Each expression runs over a generated corpus (every protocol of the filter
language, re-wrapped for each link type in every header shape it has, the
frames only that link type has, plus seeded mutations of all of them) and over
loopback traffic captured here; libpcap's bpf_filter executes both programs.
pybpf's programs are held against libpcap's for the same settings, and pybpf's
optimized program also against libpcap's *unoptimized* one, so the optimizer's
result is checked for meaning, not just for text.  That last check runs on
packets padded with zeros: like libpcap's, the optimizer may drop a load whose
value cannot matter (`net 0/0`), which changes the verdict only for packets too
short for the load.
"""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest

import filter_cases as cases
import libpcap_reference as ref
import packet_corpus as corpus
from pybpf.cbpf import compile
from pybpf.cbpf import names
from pybpf.errors import BPFError

pytestmark = pytest.mark.skipif(ref.MISSING is not None, reason=ref.MISSING or "")

EXPRESSIONS = cases.EXPRESSIONS
NETMASK = cases.NETMASK
FRAMES = corpus.ethernet_frames()
MUTATED = corpus.mutations(FRAMES, 400)


def _packets(dlt: str, mutations: int) -> list[bytes]:
    base = [p for i, f in enumerate(FRAMES) if (p := corpus.for_linktype(f, dlt, i)) is not None]
    base += corpus.native_frames(dlt)
    if dlt == "EN10MB":
        return base + MUTATED[:mutations]
    return base + corpus.mutations(base, mutations, seed=len(dlt))


_CACHE: dict[tuple, list[int]] = {}
_KEPT: list[list[bytes]] = []  # packet lists in cache keys stay alive, so their ids are never reused


def _verdicts(program, packets) -> list[int]:
    """Verdicts (returned snap lengths) of libpcap's bpf_filter; the same bytes on the same packets run once."""
    key = (tuple(tuple(i) for i in program), id(packets))
    if key not in _CACHE:
        if not any(k is packets for k in _KEPT):
            _KEPT.append(packets)
        _CACHE[key] = ref.run_many(program, packets, wirelen_extra=4)
    return _CACHE[key]


def _wraps_offsets(program) -> bool:
    """Loads at offsets past 2 GiB: libpcap's 'offset not set' sentinel plus a field offset.

    Link types without a network layer (Juniper ES, BACnet) still compile `ip[...]`
    that way; bpf_filter refuses the indexed load, while libpcap's optimizer folds
    the sum, wrapped around, into a valid absolute load -- a change of meaning that
    is libpcap's, which pybpf copies, so such programs skip the meaning check.
    """
    return any(code & 0x07 in (0x00, 0x01) and code & 0xE0 in (0x20, 0x40) and k >= 0x80000000
               for code, _, _, k in program)


@pytest.mark.parametrize("dlt", cases.FULL_LINKTYPES)
def test_same_packets_accepted_as_libpcap(dlt):
    packets = _packets(dlt, 300 if dlt == "EN10MB" else 80)
    assert len(packets) > 50
    padded = [p + bytes(256) for p in packets]
    checked = 0
    failures = []
    for expr in EXPRESSIONS:
        ours = cases.outcome_ours(expr, dlt, 262144, True)
        if isinstance(ours, str):
            continue
        ours_unopt = cases.outcome_ours(expr, dlt, 262144, False)
        theirs = cases.outcome_ref(expr, dlt, 262144, True)
        theirs_unopt = cases.outcome_ref(expr, dlt, 262144, False)
        if _verdicts(ours, packets) != _verdicts(theirs, packets):
            failures.append(f"optimized: {expr}")
        if _verdicts(ours_unopt, packets) != _verdicts(theirs_unopt, packets):
            failures.append(f"unoptimized: {expr}")
        if not _wraps_offsets(theirs_unopt) and _verdicts(ours, padded) != _verdicts(theirs_unopt, padded):
            failures.append(f"optimized vs libpcap unoptimized: {expr}")
        checked += 1
    assert checked >= 1
    assert not failures, f"{dlt}: verdicts differ from libpcap for {failures[:10]}"


def test_corpus_exercises_both_outcomes():
    """A corpus every filter accepts (or rejects) entirely would prove nothing."""
    packets = _packets("EN10MB", 300)
    for expr in ("tcp port 80", "vlan 100", "mpls 42 and ip", "pppoes 7 and tcp", "geneve 42", "ip6 protochain 6",
                 "icmp6[icmp6type] == icmp6-echo", "sctp", "igmp", "arp", "tcp[tcpflags] & tcp-syn != 0"):
        verdicts = _verdicts(compile(expr), packets)
        assert 0 < sum(1 for v in verdicts if v) < len(packets), expr
    for dlt, expr in (("IEEE802_11", "type mgt subtype beacon"), ("IEEE802_11", "wlan src 02:00:00:00:00:01"),
                      ("IEEE802_11", "type ctl subtype ack"), ("IEEE802_11", "dir fromds and ip"),
                      ("IEEE802_11_RADIO", "tcp port 80"), ("IEEE802_11_RADIO", "radio[4:4] & 0x02000000 != 0"),
                      ("PRISM_HEADER", "udp"), ("IEEE802_11_RADIO_AVS", "wlan addr2 02:00:00:00:00:01"),
                      ("PPI", "ip"), ("SUNATM", "lane and ip"), ("SUNATM", "connectmsg"), ("SUNATM", "oamf4"),
                      ("SUNATM", "vpi 0 and vci 32 and tcp"), ("MTP2", "msu"), ("MTP2", "lssu"), ("ERF", "hfisu"),
                      ("PFLOG", "action drop"), ("PFLOG", "on lo0 and udp"), ("PFLOG", "outbound"),
                      ("ARCNET", "link src $0e"), ("ARCNET_LINUX", "ip"), ("FDDI", "ip6"), ("IEEE802", "tcp"),
                      ("IP_OVER_FC", "arp"), ("IPNET", "outbound"), ("PPP_PPPD", "inbound"),
                      ("JUNIPER_MFR", "inbound"), ("FRELAY", "iso"), ("PPP_BSDOS", "ip"), ("NETANALYZER", "vlan 10")):
        packets = _packets(dlt, 80)
        verdicts = _verdicts(cases.outcome_ours(expr, dlt), packets)
        assert 0 < sum(1 for v in verdicts if v) < len(packets), (dlt, expr)


def test_gateway_means_ether_host_and_not_ip_host(tmp_path, monkeypatch):
    """tcpdump's libpcap (built with IPv6) refuses 'gateway'; pybpf compiles libpcap's definition of it."""
    (tmp_path / "hosts").write_text("198.18.0.1 gw.example\n")
    (tmp_path / "ethers").write_text("02:00:00:00:00:01 gw.example\n")
    monkeypatch.setattr(names, "ETC", tmp_path)
    for cache in (names._protocols, names._services):
        cache.cache_clear()
    packets = _packets("EN10MB", 400)
    for expr, equivalent in (
        ("gateway gw.example", "ether host 02:00:00:00:00:01 and not host 198.18.0.1"),
        ("ip gateway gw.example", "ether host 02:00:00:00:00:01 and not ip host 198.18.0.1"),
    ):
        ours = compile(expr)
        theirs = ref.compile(equivalent, 1, 262144, True)
        assert _verdicts(ours, packets) == _verdicts(theirs, packets)
        assert any(_verdicts(ours, packets))
    with pytest.raises(BPFError, match="no network lookups"):
        compile("gateway not-in-files.example")


def _capture_loopback(seconds: float = 1.0) -> list[bytes]:
    """Frames seen on lo while this test sends UDP datagrams and a TCP exchange to 127.0.0.1."""
    cap = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    cap.bind(("lo", 0))
    cap.settimeout(0.05)
    frames: list[bytes] = []
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]

    def serve():
        conn, _ = server.accept()
        with conn:
            conn.sendall(conn.recv(100))

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    with socket.create_connection(("127.0.0.1", port), timeout=2) as c:
        c.sendall(b"ping over tcp")
        c.recv(100)
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for i in range(5):
        u.sendto(b"datagram %d" % i, ("127.0.0.1", 9 + i))
    u.close()
    t.join(2)
    server.close()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and len(frames) < 200:
        try:
            frames.append(cap.recv(65535))
        except socket.timeout:
            if frames:
                break
    cap.close()
    return frames


@pytest.mark.skipif(os.geteuid() != 0, reason="capturing on lo needs root (AF_PACKET)")
def test_loopback_capture_verdicts_match_libpcap():
    frames = _capture_loopback()
    assert len(frames) >= 10, "expected the TCP handshake and UDP datagrams on lo"
    for expr in EXPRESSIONS:
        try:
            ours = compile(expr, "EN10MB", 262144, True, NETMASK)
        except BPFError:
            continue
        theirs = ref.compile(expr, 1, 262144, True, NETMASK)
        assert _verdicts(ours, frames) == _verdicts(theirs, frames), expr
    assert sum(1 for f in frames if ref.run(compile("tcp"), f)) >= 4
    assert sum(1 for f in frames if ref.run(compile("udp and dst portrange 9-13"), f)) >= 1
