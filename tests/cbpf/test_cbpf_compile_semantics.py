"""Programs pybpf compiles accept exactly the packets libpcap's do.

Each expression runs over a generated corpus (every protocol of the filter
language, re-wrapped for every link type, plus seeded mutations) and over
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
from pathlib import Path

import pytest

import libpcap_reference as ref
import packet_corpus as corpus
from pybpf.cbpf import compile, linktypes
from pybpf.cbpf import names
from pybpf.errors import BPFError

pytestmark = pytest.mark.skipif(ref.MISSING is not None, reason=ref.MISSING or "")

EXPRESSIONS = [line for line in (Path(__file__).parent / "filter_expressions.txt").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
NETMASK = 0xFFFFFF00
FRAMES = corpus.ethernet_frames()
MUTATED = corpus.mutations(FRAMES, 400)


def _packets(dlt: str, mutations: int) -> list[bytes]:
    out = []
    for frame in FRAMES + MUTATED[:mutations]:
        pkt = corpus.for_linktype(frame, dlt)
        if pkt is not None:
            out.append(pkt)
    return out


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


@pytest.mark.parametrize("dlt", linktypes.SUPPORTED)
def test_same_packets_accepted_as_libpcap(dlt):
    packets = _packets(dlt, 400 if dlt == "EN10MB" else 100)
    assert len(packets) > 50
    checked = 0
    failures = []
    padded = [p + bytes(256) for p in packets]
    for expr in EXPRESSIONS:
        try:
            ours = [tuple(i) for i in compile(expr, dlt, 262144, True, NETMASK)]
            ours_unopt = [tuple(i) for i in compile(expr, dlt, 262144, False, NETMASK)]
        except BPFError:
            continue
        theirs = ref.compile(expr, ref.dlt(dlt), 262144, True, NETMASK)
        theirs_unopt = ref.compile(expr, ref.dlt(dlt), 262144, False, NETMASK)
        if _verdicts(ours, packets) != _verdicts(theirs, packets):
            failures.append(f"optimized: {expr}")
        if _verdicts(ours_unopt, packets) != _verdicts(theirs_unopt, packets):
            failures.append(f"unoptimized: {expr}")
        if _verdicts(ours, padded) != _verdicts(theirs_unopt, padded):
            failures.append(f"optimized vs libpcap unoptimized: {expr}")
        checked += 1
    assert checked > 50
    assert not failures, f"{dlt}: verdicts differ from libpcap for {failures[:10]}"


def test_corpus_exercises_both_outcomes():
    """A corpus every filter accepts (or rejects) entirely would prove nothing."""
    packets = _packets("EN10MB", 400)
    for expr in ("tcp port 80", "vlan 100", "mpls 42 and ip", "pppoes 7 and tcp", "geneve 42", "ip6 protochain 6",
                 "icmp6[icmp6type] == icmp6-echo", "sctp", "igmp", "arp", "tcp[tcpflags] & tcp-syn != 0"):
        verdicts = _verdicts(compile(expr), packets)
        assert 0 < sum(1 for v in verdicts if v) < len(packets), expr


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
