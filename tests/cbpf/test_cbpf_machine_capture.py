"""`pybpf capture` on a veth pair between two namespaces, checked against tcpdump."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import cbpf_machine_support as S
from conftest import ROOT, run_cli
from pybpf.cbpf.capture import Capture, attach_filter, limit_snaplen, summarize
from pybpf.cbpf.pcap import read_packets
from pybpf.errors import BPFError, FilterValidationError

TCPDUMP = shutil.which("tcpdump")
pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason="needs root for netns and packet sockets"),
              pytest.mark.skipif(TCPDUMP is None, reason="tcpdump is not installed")]


@pytest.fixture(scope="module")
def pair():
    with S.PairLab("cap") as lab:
        yield lab


def _start(ns: str, argv: list[str]) -> subprocess.Popen:
    """Start a capture in a namespace and wait until it says it is listening (filter attached)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    proc = subprocess.Popen(["ip", "netns", "exec", ns, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env, text=True)
    line = proc.stderr.readline()
    if "listening on" not in line:
        proc.kill()
        raise AssertionError(f"{argv[0]} did not start: {line}{proc.stderr.read()}")
    return proc


def _pybpf(*args: str) -> list[str]:
    return [sys.executable, "-m", "pybpf", "capture", *args]


def _finish(proc: subprocess.Popen) -> tuple[str, str]:
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"capture did not finish: {err}") from None
    assert proc.returncode == 0, err
    return out, err


def _send(pair, ports: list[int], payload: bytes = b"hello") -> None:
    with pair.udp_sender() as s:
        for i, port in enumerate(ports):
            s.sendto(payload + bytes([i % 256]), (pair.ip_b, port))


def test_capture_writes_a_pcap_tcpdump_reads(pair, tmp_path):
    expr = "udp dst port 9999"
    prog = tmp_path / "prog.txt"
    prog.write_text(S.program_text(S.pcap_compile(expr)))
    out = tmp_path / "ours.pcap"
    proc = _start(pair.ns_b, _pybpf("-i", pair.dev_b, "-c", "20", "-w", str(out), "-F", str(prog),
                                    "--duration", "20"))
    _send(pair, [9999, 8888] * 30)
    _, err = _finish(proc)
    assert "20 packets captured" in err
    received = int(err.split("packets received by filter")[0].split()[-1])
    assert received >= 20
    listing = subprocess.run([TCPDUMP, "-r", str(out), "-nn"], capture_output=True, text=True, check=True).stdout
    lines = listing.splitlines()
    assert len(lines) == 20 and all(f"> {pair.ip_b}.9999: UDP, length 6" in ln for ln in lines)
    ours = list(read_packets(out))
    payloads = [p.data[42:] for p in ours]
    assert payloads == [b"hello" + bytes([i]) for i in range(0, 40, 2)]  # every port-9999 datagram, in order
    # The same file through libpcap's filter: everything we kept matches it.
    again = subprocess.run([TCPDUMP, "-r", str(out), "-nn", expr], capture_output=True, text=True).stdout
    assert again.splitlines() == lines


def test_capture_prints_summary_lines_like_tcpdump(pair, tmp_path):
    proc = _start(pair.ns_b, _pybpf("-i", pair.dev_b, "-c", "5", "--duration", "20", "-F",
                                    str(_program_file(tmp_path, "udp or icmp"))))
    _send(pair, [7000, 7001, 7002])
    S.ping_once(pair)
    out, err = _finish(proc)
    lines = out.splitlines()
    assert len(lines) == 5, out
    udp = [ln for ln in lines if "UDP" in ln]
    assert [ln.split(f" {pair.dev_b} In  ")[1].split(" > ")[1] for ln in udp] == \
           [f"{pair.ip_b}.{port}: UDP, length 6" for port in (7000, 7001, 7002)]
    assert any(f"IP {pair.ip_a} > {pair.ip_b}: ICMP echo request, id" in ln for ln in lines)
    assert any(f"{pair.dev_b} Out IP {pair.ip_b} > {pair.ip_a}: ICMP echo reply" in ln for ln in lines)


def _program_file(tmp_path: Path, expr: str) -> Path:
    path = tmp_path / f"prog-{abs(hash(expr))}.txt"
    path.write_text(S.program_text(S.pcap_compile(expr)))
    return path


def test_summaries_match_tcpdump_on_the_same_file(pair, tmp_path):
    out = tmp_path / "mixed.pcap"
    proc = _start(pair.ns_b, _pybpf("-i", pair.dev_b, "-c", "5", "-w", str(out), "--duration", "20", "-F",
                                    str(_program_file(tmp_path, "udp or icmp"))))
    _send(pair, [40001, 40002, 40003])
    S.ping_once(pair)
    _finish(proc)
    theirs = subprocess.run([TCPDUMP, "-r", str(out), "-nn", "-t"], capture_output=True, text=True).stdout.splitlines()
    ours = [summarize(p.data, p.linktype) for p in read_packets(out)]
    assert len(ours) == len(theirs) == 5
    assert ours == theirs


def test_same_packets_as_tcpdump_with_the_same_filter(pair, tmp_path):
    expr = "udp and dst port 4242"
    ours_file, theirs_file = tmp_path / "ours.pcap", tmp_path / "theirs.pcap"
    count = 50
    # tcpdump's immediate mode gives each ring slot a whole snap length: keep it small or its 2 MiB ring
    # holds only 8 packets and the kernel drops the rest.
    theirs = _start(pair.ns_b, [TCPDUMP, "-i", pair.dev_b, "-nn", "-c", str(count), "-w", str(theirs_file),
                                "-s", "256", "--immediate-mode", expr])
    ours = _start(pair.ns_b, _pybpf("-i", pair.dev_b, "-c", str(count), "-w", str(ours_file), "--duration", "20",
                                    "-s", "256", "-F", str(_program_file(tmp_path, expr))))
    _send(pair, [4242, 4243, 4244] * count)
    _finish(ours)
    _finish(theirs)
    assert [p.data for p in read_packets(ours_file)] == [p.data for p in read_packets(theirs_file)]


def test_vlan_tags_are_put_back_and_snaplen_applies(pair, tmp_path):
    out = tmp_path / "vlan.pcap"
    proc = _start(pair.ns_b, _pybpf("-i", pair.dev_b, "-c", "3", "-w", str(out), "-s", "60", "--duration", "20"))
    frames = [S.ether(bytes.fromhex(pair.mac_b.replace(":", "")), bytes.fromhex(pair.mac_a.replace(":", "")), 0x0800,
                      S.ipv4(pair.ip_a, pair.ip_b, 17, S.udp(1, 2, bytes(range(40)) * 2)), vlan=vid)
              for vid in (100, 200, 300)]
    with S.in_netns(pair.ns_a):
        tx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    with tx:
        tx.bind((pair.dev_a, 0))
        for f in frames:
            tx.send(f)
    _finish(proc)
    got = list(read_packets(out))
    assert [p.data for p in got] == [f[:60] for f in frames]
    assert [p.wirelen for p in got] == [len(f) for f in frames]
    listing = subprocess.run([TCPDUMP, "-r", str(out), "-nn", "-e"], capture_output=True, text=True).stdout
    assert [ln.count("vlan ") for ln in listing.splitlines()] == [1, 1, 1] and "vlan 300" in listing


def test_python_api_and_bad_input(pair):
    with S.in_netns(pair.ns_b):
        with Capture(pair.dev_b, S.pcap_compile("udp port 6000"), snaplen=64) as cap:
            _send(pair, [6000, 6001, 6000])
            got = list(cap.packets(count=5, timeout=1.0))
            stats = cap.stats()
        assert [p.data[42:] for p in got] == [b"hello\x00", b"hello\x02"]
        assert all(p.ifname == pair.dev_b and p.direction == "In" and p.ts_ns > 0 for p in got)
        assert stats.received == 2 and stats.dropped == 0
        with pytest.raises(BPFError, match="no network interface named 'nosuchif0'"):
            Capture("nosuchif0")
        with pytest.raises(FilterValidationError, match="instruction 0"):
            Capture(pair.dev_b, [(0x20, 0, 0, 0xFFFFF123), (0x06, 0, 0, 1)])
    assert limit_snaplen([(0x06, 0, 0, 262144), (0x06, 0, 0, 0)], 96) == [(0x06, 0, 0, 96), (0x06, 0, 0, 0)]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        attach_filter(s, [(0x06, 0, 0, 0)])  # any socket takes a classic filter
        with pytest.raises(FilterValidationError):
            attach_filter(s, [(0x06, 0, 0, 0), (0x99, 0, 0, 0)])


def test_cli_errors_are_one_line(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("this is not a program\n")
    proc = run_cli("capture", "-i", "lo", "-F", str(bad))
    assert proc.returncode == 1 and b"not a classic BPF program" in proc.stderr
    proc = run_cli("capture", "-i", "nosuchif0", "tcp")
    assert proc.returncode == 1 and b"no network interface named 'nosuchif0'" in proc.stderr
    assert b"Traceback" not in proc.stderr
