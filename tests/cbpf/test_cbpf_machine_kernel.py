"""The validator, interpreter and eBPF converter against the running kernel.

Programs are attached to real sockets: packet sockets on a veth pair in a
network namespace of this test (SO_ATTACH_FILTER for classic BPF,
SO_ATTACH_BPF for the converted program), frames are sent through the pair,
and what each socket receives (nothing, or the frame cut to the filter's
return value) is compared with pybpf's prediction.
"""

from __future__ import annotations

import errno
import os
import socket
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cbpf_machine_strategies as G
import cbpf_machine_support as S
from pybpf import kernel
from pybpf.cbpf import insn as I
from pybpf.cbpf.machine import Machine, PacketMeta, ethernet_meta
from pybpf.cbpf.to_ebpf import to_ebpf
from pybpf.cbpf.validate import validate
from pybpf.errors import FilterValidationError, NotSupportedError

pytestmark = [pytest.mark.kernel, pytest.mark.skipif(os.geteuid() != 0, reason="needs root for netns and sockets")]

FRAMES = [f for f in S.sample_frames(seed=7, random_count=25) if len(f) >= 14]
# Ancillary loads whose value the test can predict (cpu and random are checked separately).
PREDICTABLE = ["protocol", "pkttype", "ifindex", "mark", "queue", "hatype", "rxhash", "vlan_tci", "vlan_avail",
               "vlan_tpid", "pay_offset", "alu_xor_x", "nlattr", "nlattr_nest"]
CONVERTIBLE = ["protocol", "pkttype", "ifindex", "mark", "queue", "rxhash", "vlan_tci", "vlan_avail", "vlan_tpid",
               "alu_xor_x"]


@pytest.fixture(scope="module")
def lab():
    with S.VethLab("k") as lab:
        bench = S.FilterBench(lab)
        lab.bench = bench
        lab.cbpf_socket = lab.packet_socket(lab.rx)
        lab.ebpf_socket = lab.packet_socket(lab.rx)
        yield lab
        for s in (lab.cbpf_socket, lab.ebpf_socket):
            s.close()
        bench.close()


def _predict(machine: Machine, lab, frames) -> list[int]:
    out = []
    for frame in frames:
        data, meta = ethernet_meta(frame, own_mac=S.MAC_B, ifindex=lab.rx_ifindex)
        out.append(min(machine.run(data, None, meta), len(data)))
    return out


def _load(program) -> kernel.Program:
    return kernel.Program.load(kernel.ProgType.SOCKET_FILTER, to_ebpf(program), name="cbpf_converted")


def _run_in_kernel(lab, program, frames, with_ebpf: bool):
    S.attach_cbpf(lab.cbpf_socket, program)
    if not with_ebpf:
        return lab.bench.verdicts([lab.cbpf_socket], frames)
    with _load(program) as prog, prog.attach_socket_filter(lab.ebpf_socket):
        return lab.bench.verdicts([lab.cbpf_socket, lab.ebpf_socket], frames)


@pytest.mark.parametrize("expr", ["tcp port 80", "ip or arp", "len > 100", "ip[2:2] - 20 > 30", "ip[9] % 4 == 2",
                                  "ether multicast", "tcp[((tcp[12:1] & 0xf0) >> 2):4] = 0x47455420",
                                  "ip[0] & 0xf != 5", "not tcp and not udp", "ip6 and tcp port 80"])
def test_libpcap_filters_same_in_kernel_ebpf_and_interpreter(lab, expr):
    program = S.pcap_compile(expr)
    cbpf, ebpf = _run_in_kernel(lab, program, FRAMES, with_ebpf=True)
    assert cbpf == _predict(Machine(program), lab, FRAMES)
    assert ebpf == cbpf


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(program=G.programs(max_len=20, ancillary=PREDICTABLE, negative=True), frame_start=st.integers(0, 20))
def test_random_programs_same_in_kernel_ebpf_and_interpreter(lab, program, frame_start):
    frames = FRAMES[frame_start::12]
    try:
        to_ebpf(program)
        convertible = True
    except NotSupportedError as exc:  # only for the loads eBPF socket filters cannot express
        assert any(f"SKF_AD_{name.upper()}" in str(exc) for name in set(PREDICTABLE) - set(CONVERTIBLE)), exc
        convertible = False
    results = _run_in_kernel(lab, program, frames, with_ebpf=convertible)
    assert results[0] == _predict(Machine(program), lab, frames)
    if convertible:
        assert results[1] == results[0]


def test_cpu_and_random_loads(lab):
    frames = FRAMES[:40]
    cpu = [(I.LD | I.W | I.ABS, 0, 0, G.ancillary_k(["cpu"])[0]), (I.JMP | I.JGE | I.K, 0, 1, os.cpu_count()),
           (I.RET | I.K, 0, 0, 0), (I.RET | I.K, 0, 0, 0xFFFF)]
    for got in _run_in_kernel(lab, cpu, frames, with_ebpf=True):
        assert got == [len(ethernet_meta(f)[0]) for f in frames]  # always a valid cpu number
    coin = [(I.LD | I.W | I.ABS, 0, 0, G.ancillary_k(["random"])[0]), (I.JMP | I.JSET | I.K, 0, 1, 1),
            (I.RET | I.K, 0, 0, 0), (I.RET | I.K, 0, 0, 0xFFFF)]
    many = FRAMES[:20] * 8
    for got in _run_in_kernel(lab, coin, many, with_ebpf=True):
        passed = sum(1 for n in got if n)
        assert 20 < passed < len(many) - 20  # a fair coin per packet
    m = Machine(coin)
    assert 20 < sum(m.run(f) != 0 for f in many) < len(many) - 20


# --- the validator against SO_ATTACH_FILTER ----------------------------------

def _kernel_accepts(sock: socket.socket, program) -> bool:
    try:
        S.attach_cbpf(sock, program)
    except OSError as exc:
        assert exc.errno == errno.EINVAL, exc
        return False
    return True


@st.composite
def _maybe_broken_programs(draw):
    """Valid programs, and valid programs with one thing changed the way the kernel checks."""
    program = list(draw(G.programs(max_len=16, ancillary=list(I.SKF_AD), negative=True)))
    how = draw(st.sampled_from(["none", "code", "code", "k", "jt", "jf", "drop_ret", "append", "scratch", "anc"]))
    pc = draw(st.integers(0, len(program) - 1))
    code, jt, jf, k = program[pc]
    if how == "code":
        program[pc] = (draw(st.one_of(st.integers(0, 0xFF), st.integers(0, 0xFFFF))), jt, jf, k)
    elif how == "k":
        program[pc] = (code, jt, jf, draw(st.one_of(st.integers(0, 40), st.sampled_from([0xFFFFFFFF, 0xFFFFF000]))))
    elif how == "jt":
        program[pc] = (code, draw(st.integers(0, 255)), jf, k)
    elif how == "jf":
        program[pc] = (code, jt, draw(st.integers(0, 255)), k)
    elif how == "drop_ret" and len(program) > 1:
        program.pop()
    elif how == "append":
        program.append((draw(st.sampled_from([I.LD | I.IMM, I.RET | I.A, I.JMP | I.JA])), 0, 0, 0))
    elif how == "scratch":
        program.insert(pc, (draw(st.sampled_from([I.LD | I.MEM, I.LDX | I.MEM])), 0, 0, draw(st.integers(0, 17))))
    elif how == "anc":
        size = draw(st.sampled_from([I.W, I.H, I.B]))
        program[pc] = (I.LD | size | I.ABS, 0, 0, draw(st.integers(0xFFFFF000, 0xFFFFFFFF)))
    return program


@settings(max_examples=800, deadline=None)
@given(_maybe_broken_programs())
def test_validator_agrees_with_so_attach_filter(program):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        accepted = _kernel_accepts(sock, program)
    try:
        validate(program)
        ours = True
    except FilterValidationError:
        ours = False
    assert ours == accepted, program


def test_validator_limits_agree_with_kernel():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        at_limit = [(I.LD | I.IMM, 0, 0, 1)] * (I.MAXINSNS - 1) + [(I.RET | I.A, 0, 0, 0)]
        assert _kernel_accepts(sock, at_limit)
        validate(at_limit)
        over = [(I.LD | I.IMM, 0, 0, 1)] + at_limit
        assert not _kernel_accepts(sock, over)
        with pytest.raises(FilterValidationError, match="4097 instructions"):
            validate(over)
        with pytest.raises(FilterValidationError, match="empty"):
            validate([])


# --- a UDP socket on loopback: data starts at the UDP header --------------------

def test_udp_socket_filters_see_network_header_before_the_data():
    """The same program as classic and as converted eBPF on UDP sockets: identical datagrams arrive."""
    # Accept if the IP protocol (via SKF_NET_OFF) is UDP and the first payload byte is 'A';
    # keep the UDP header plus 3 payload bytes.
    program = [(I.LD | I.B | I.ABS, 0, 0, (I.SKF_NET_OFF + 9) & 0xFFFFFFFF), (I.JMP | I.JEQ | I.K, 0, 3, 17),
               (I.LD | I.B | I.ABS, 0, 0, 8), (I.JMP | I.JEQ | I.K, 0, 1, ord("A")),
               (I.RET | I.K, 0, 0, 8 + 3), (I.RET | I.K, 0, 0, 0)]
    payloads = [b"Apple", b"banana", b"A", b"", b"AAAAAA", b"xA"]
    machine = Machine(program)
    ip_header = S.ipv4("127.0.0.1", "127.0.0.1", 17, b"")[:20]
    expected = []
    for payload in payloads:
        udp = struct.pack("!HHHH", 1, 2, 8 + len(payload), 0) + payload
        keep = machine.run(udp, None, PacketMeta(head=ip_header, net_offset=-20))
        if keep:
            expected.append(payload[: max(keep, 8) - 8])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as classic, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as converted, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx, \
            _load(program) as prog, prog.attach_socket_filter(converted):
        S.attach_cbpf(classic, program)
        for r in (classic, converted):
            r.bind(("127.0.0.1", 0))
            for payload in payloads:
                tx.sendto(payload, r.getsockname())
        assert S.drain(classic) == expected == S.drain(converted)
        assert expected == [b"App", b"A", b"AAA"]
