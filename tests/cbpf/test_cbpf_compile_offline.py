"""`pybpf filter -r FILE [-w OUT]` keeps the packets `tcpdump -r FILE -w OUT` keeps; pybpf's interpreter agrees.

That includes `protochain`, which libpcap compiles into a loop (a `ja` whose
offset wraps around to jump backwards): the pcap flavor of the validator and
interpreter accepts and runs it as libpcap's bpf_validate and bpf_filter do.
"""

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
                                  "udp[8] = 0x45 or icmp", "ip protochain 6", "ip6 protochain 17 or protochain 51"])
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
        try:
            program = compile(expr, "EN10MB", 262144, True, 0xFFFFFF00)
        except BPFError:
            continue
        machine = Machine(program, "pcap")
        want = ref.run_many(program, FRAMES)
        got = [machine.run(f, len(f)) for f in FRAMES]
        assert got == want, expr


@pytest.mark.skipif(ref.MISSING is not None, reason=ref.MISSING or "")
def test_backward_jumps_validate_and_run_like_libpcap():
    """Programs with backward `ja`s: the pcap flavor accepts exactly those bpf_validate accepts (the kernel
    flavor none), and runs them like bpf_filter; a loop that never ends is a VMFault, not a hang."""
    import ctypes
    import random

    from pybpf.cbpf.insn import CInsn
    from pybpf.cbpf.validate import validate
    from pybpf.errors import FilterValidationError, VMFault

    ref.LIB.bpf_validate.argtypes = [ctypes.POINTER(ref.BpfInsn), ctypes.c_int]
    ref.LIB.bpf_validate.restype = ctypes.c_int

    def libpcap_accepts(program) -> bool:
        arr = (ref.BpfInsn * len(program))(*[ref.BpfInsn(*i) for i in program])
        return bool(ref.LIB.bpf_validate(arr, len(program)))

    def accepts(program, pcap: bool) -> bool:
        try:
            validate(program, pcap=pcap)
            return True
        except FilterValidationError:
            return False

    # a counting loop: X counts down from a packet byte, each pass skips 2 bytes while they are nonzero
    loop = [CInsn(0x30, 0, 0, 0), CInsn(0x07, 0, 0, 0),  # ldb [0]; tax
            CInsn(0x87, 0, 0, 0), CInsn(0x15, 4, 0, 0),  # txa; jeq #0 -> ret
            CInsn(0x14, 0, 0, 1), CInsn(0x07, 0, 0, 0),  # sub #1; tax
            CInsn(0x50, 0, 0, 1), CInsn(0x05, 0, 0, (-6) & 0xFFFFFFFF),  # ldb [x + 1]; ja back to txa
            CInsn(0x06, 0, 0, 0x40000)]
    rng = random.Random(8)
    packets = [bytes([rng.randrange(12)]) + bytes(rng.randrange(256) for _ in range(rng.randrange(16)))
               for _ in range(200)]
    assert libpcap_accepts(loop) and accepts(loop, pcap=True) and not accepts(loop, pcap=False)
    machine = Machine(loop, "pcap")
    assert [machine.run(p, len(p)) for p in packets] == ref.run_many(loop, packets)
    assert 0 < sum(1 for v in ref.run_many(loop, packets) if v) < len(packets)
    for k in range(0xFFFFFFF0, 0x100000000):  # every backward reach, in range or before the start
        program = loop[:7] + [CInsn(0x05, 0, 0, k)] + loop[8:]
        assert accepts(program, pcap=True) == libpcap_accepts(program), hex(k)
    forever = [CInsn(0x00, 0, 0, 0), CInsn(0x05, 0, 0, 0xFFFFFFFF), CInsn(0x06, 0, 0, 0)]  # ja to itself
    assert libpcap_accepts(forever)
    with pytest.raises(VMFault, match="does not terminate"):
        Machine(forever, "pcap").run(b"x")


def test_cli_filters_a_capture_with_protochain(capture):
    out = run_cli("filter", "-r", str(capture), "ip6 protochain 6", check=True).stdout.decode()
    program = compile("ip6 protochain 6")
    expected = sum(1 for f in FRAMES if ref.run(program, f))
    assert expected > 0 and out.startswith(f"{expected} of {len(FRAMES)} packets matched")
