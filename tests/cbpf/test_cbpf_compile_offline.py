"""`pybpf filter -r FILE [-w OUT]` keeps the packets `tcpdump -r FILE -w OUT` keeps; pybpf's interpreter agrees."""

from __future__ import annotations

import shutil
import subprocess

import pytest

import libpcap_reference as ref
import packet_corpus as corpus
from conftest import run_cli
from pybpf.cbpf import compile
from pybpf.cbpf.machine import Machine
from pybpf.cbpf.pcap import PcapWriter, read_packets
from pybpf.errors import BPFError

TCPDUMP = shutil.which("tcpdump") or ("/usr/sbin/tcpdump" if shutil.os.path.exists("/usr/sbin/tcpdump") else None)
FRAMES = corpus.ethernet_frames() + corpus.mutations(corpus.ethernet_frames(), 150, seed=99)


@pytest.fixture
def capture(tmp_path):
    path = tmp_path / "in.pcap"
    with PcapWriter(path, linktype=1, snaplen=262144) as w:
        for i, frame in enumerate(FRAMES):
            w.write(frame, ts_ns=1_700_000_000_000_000_000 + i * 1000, wirelen=len(frame))
    return path


@pytest.mark.skipif(TCPDUMP is None, reason="tcpdump is not installed")
@pytest.mark.parametrize("expr", ["tcp port 80", "vlan and ip", "mpls and ip", "not ip and not ip6",
                                  "udp[8] = 0x45 or icmp"])
def test_written_packets_equal_tcpdumps(tmp_path, capture, expr):
    ours, theirs = tmp_path / "ours.pcap", tmp_path / "theirs.pcap"
    proc = run_cli("filter", "-r", str(capture), "-w", str(ours), expr, check=True)
    assert b"packets matched" in proc.stderr
    subprocess.run([TCPDUMP, "-r", str(capture), "-w", str(theirs), expr], check=True, capture_output=True)
    kept = [(p.ts_ns, p.data, p.wirelen) for p in read_packets(ours)]
    assert kept == [(p.ts_ns, p.data, p.wirelen) for p in read_packets(theirs)]
    assert 0 < len(kept) < len(FRAMES)


def test_count_without_writing(capture):
    out = run_cli("filter", "-r", str(capture), "tcp", check=True).stdout.decode()
    program = compile("tcp")
    expected = sum(1 for f in FRAMES if ref.run(program, f))
    assert out.startswith(f"{expected} of {len(FRAMES)} packets matched")


def test_w_without_r_is_refused():
    proc = run_cli("filter", "-w", "/tmp/never-written.pcap", "tcp")
    assert proc.returncode == 1 and b"-w needs -r" in proc.stderr


@pytest.mark.skipif(ref.MISSING is not None, reason=ref.MISSING or "")
def test_interpreter_agrees_with_bpf_filter_on_compiled_programs():
    """pybpf's own cBPF machine (pcap flavour) gives libpcap's bpf_filter verdicts for compiled filters."""
    from pathlib import Path

    exprs = [line for line in (Path(__file__).parent / "filter_expressions.txt").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    for expr in exprs:
        if "protochain" in expr:
            # protochain loops with a backward `ja` (k wraps around); libpcap's bpf_validate lets the
            # wrap through, pybpf's validator (like the kernel's) refuses it
            continue
        try:
            program = compile(expr, "EN10MB", 262144, True, 0xFFFFFF00)
        except BPFError:
            continue
        machine = Machine(program, "pcap")
        want = ref.run_many(program, FRAMES)
        got = [machine.run(f, len(f)) for f in FRAMES]
        assert got == want, expr
