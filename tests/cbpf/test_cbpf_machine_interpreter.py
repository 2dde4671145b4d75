"""The cBPF interpreter against libpcap's bpf_filter(), and its Linux-only semantics."""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings

import cbpf_machine_strategies as G
import cbpf_machine_support as S
from pybpf.cbpf import insn as I
from pybpf.cbpf import machine
from pybpf.cbpf.machine import Machine, PacketMeta, ethernet_meta, run_filter
from pybpf.errors import BPFError, FilterValidationError

pytestmark = pytest.mark.skipif(S.LIBPCAP is None, reason="libpcap (libpcap0.8) is not installed")

FRAMES = S.sample_frames()


def _k(value: int) -> int:
    return value & 0xFFFFFFFF


@pytest.mark.parametrize("expr", S.FILTER_EXPRESSIONS)
def test_libpcap_compiled_filters_agree_with_bpf_filter(expr):
    program = S.pcap_compile(expr)
    reference = S.LibpcapFilter(program)
    linux, pcap = Machine(program), Machine(program, "pcap")
    for frame in FRAMES:
        expected = reference(frame)
        assert linux.run(frame) == expected, (expr, frame.hex())
        assert pcap.run(frame) == expected, (expr, frame.hex())
        wirelen = len(frame) + 100  # a snapshot shorter than the packet: `len` is the wire length
        assert pcap.run(frame, wirelen) == reference(frame, wirelen)


def test_filters_accept_something_and_reject_something():
    # Guards the comparison above against vacuous agreement (every verdict 0).
    verdicts = {expr: [Machine(S.pcap_compile(expr)).matches(f) for f in FRAMES] for expr in ("tcp port 80", "arp")}
    for expr, got in verdicts.items():
        assert any(got) and not all(got), expr


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(G.programs(negative=True))
def test_random_programs_agree_with_libpcap(program):
    reference = S.LibpcapFilter(program)
    pcap = Machine(program, "pcap")
    for frame in FRAMES[::5]:
        assert pcap.run(frame) == reference(frame)
        assert pcap.run(frame, len(frame) * 3) == reference(frame, len(frame) * 3)


@settings(max_examples=200, deadline=None)
@given(G.programs(negative=True))
def test_label_translation_agrees_with_tree_translation(program):
    tree = Machine(program)
    saved = machine._TREE_MIN_LINES, machine._TREE_LINES_PER_INSN
    machine._TREE_MIN_LINES = machine._TREE_LINES_PER_INSN = 0
    try:
        labels = Machine(program)
    finally:
        machine._TREE_MIN_LINES, machine._TREE_LINES_PER_INSN = saved
    assert "L = 0" in labels.source
    meta = PacketMeta(net_offset=14, ll_offset=0)
    for frame in FRAMES[::5]:
        assert labels.run(frame, None, meta) == tree.run(frame, None, meta)


def test_long_or_chain_and_maximal_program():
    hosts = " or ".join(f"host 198.18.{i}.{i}" for i in range(60))
    program = S.pcap_compile(hosts)
    reference = S.LibpcapFilter(program)
    m = Machine(program)
    frames = FRAMES + [S.ether(S.MAC_B, S.MAC_A, 0x0800, S.ipv4("198.18.7.7", "10.0.0.1", 17, S.udp(1, 2)))]
    assert [m.run(f) for f in frames] == [reference(f) for f in frames]
    assert any(m.run(f) for f in frames)
    # 4096 instructions, each conditional jump skipping to a shared tail: the label fallback.
    big = [(I.LD | I.B | I.ABS, 0, 0, 5)]
    big += [(I.JMP | I.JEQ | I.K, 0, min(200, 4093 - pc), pc % 256) for pc in range(1, 4094)]
    big += [(I.RET | I.K, 0, 0, 77), (I.RET | I.K, 0, 0, 0)]
    assert len(big) == I.MAXINSNS
    m = Machine(big)
    reference = S.LibpcapFilter(big)
    for frame in FRAMES[:80]:
        assert m.run(frame) == reference(frame)


def test_chains_of_equality_tests_become_set_lookups():
    # jeq #1..#5 all to the same non-returning target, with a ja inside the chain.
    program = [(I.LD | I.B | I.ABS, 0, 0, 0),
               (I.JMP | I.JEQ | I.K, 7, 0, 1), (I.JMP | I.JEQ | I.K, 6, 0, 2), (I.JMP | I.JA, 0, 0, 0),
               (I.JMP | I.JEQ | I.K, 4, 0, 3), (I.JMP | I.JEQ | I.K, 3, 0, 4), (I.JMP | I.JEQ | I.K, 2, 0, 5),
               (I.RET | I.K, 0, 0, 0), (I.RET | I.K, 0, 0, 0),
               (I.LD | I.B | I.ABS, 0, 0, 1), (I.ALU | I.ADD | I.K, 0, 0, 100), (I.RET | I.A, 0, 0, 0)]
    m = Machine(program)
    assert " in _set" in m.source
    reference = S.LibpcapFilter(program)
    packets = [bytes([a, b]) for a in range(8) for b in (0, 7)]
    assert [m.run(p) for p in packets] == [reference(p) for p in packets]
    assert sum(1 for p in packets if m.run(p)) == 10


def test_linux_semantics_where_libpcap_differs():
    data = bytes(range(64))
    shift = [(I.LD | I.IMM, 0, 0, 3), (I.LDX | I.IMM, 0, 0, 33), (I.ALU | I.LSH | I.X, 0, 0, 0), (I.RET | I.A, 0, 0, 0)]
    assert run_filter(shift, data) == 3 << 1  # the kernel uses the low 5 bits of X
    assert run_filter(shift, data, flavor="pcap") == 0 == S.LibpcapFilter(shift)(data)
    rshift = [*shift[:2], (I.ALU | I.RSH | I.X, 0, 0, 0), (I.RET | I.A, 0, 0, 0)]
    assert run_filter(rshift, data) == 3 >> 1
    assert run_filter(rshift, data, flavor="pcap") == 0 == S.LibpcapFilter(rshift)(data)
    # ld [x + k] wraps modulo 2**32 in the kernel: 0xffffffff + 13 is offset 12.
    wrap = [(I.LDX | I.IMM, 0, 0, 0xFFFFFFFF), (I.LD | I.B | I.IND, 0, 0, 13), (I.RET | I.A, 0, 0, 0)]
    assert run_filter(wrap, data) == data[12]
    assert run_filter(wrap, data, flavor="pcap") == 0 == S.LibpcapFilter(wrap)(data)


def test_negative_offsets_reach_network_and_link_headers():
    frame = S.ether(S.MAC_B, S.MAC_A, 0x0800, S.ipv4("198.18.0.1", "198.18.0.2", 17, S.udp(5, 6, b"hello")))
    udp_part = frame[34:]
    meta = PacketMeta(head=frame[:34], ll_offset=-34, net_offset=-20)  # what a UDP socket's filter sees
    proto = [(I.LD | I.B | I.ABS, 0, 0, _k(I.SKF_NET_OFF + 9)), (I.RET | I.A, 0, 0, 0)]
    ethertype = [(I.LD | I.H | I.ABS, 0, 0, _k(I.SKF_LL_OFF + 12)), (I.RET | I.A, 0, 0, 0)]
    dport = [(I.LD | I.H | I.ABS, 0, 0, _k(I.SKF_NET_OFF + 22)), (I.RET | I.A, 0, 0, 0)]
    assert run_filter(proto, udp_part, meta=meta) == 17
    assert run_filter(ethertype, udp_part, meta=meta) == 0x0800
    assert run_filter(dport, udp_part, meta=meta) == 6  # past head, into the data
    past_end = [(I.LD | I.W | I.ABS, 0, 0, _k(I.SKF_NET_OFF + 20 + len(udp_part) - 3)), (I.RET | I.K, 0, 0, 1)]
    assert run_filter(past_end, udp_part, meta=meta) == 0
    assert run_filter(proto, udp_part) == 0  # no layout known: rejected like an skb without the header
    assert run_filter(proto, udp_part, meta=PacketMeta(head=frame[:34], net_offset=-20, ll_offset=None)) == 17
    assert run_filter(ethertype, udp_part, meta=PacketMeta(head=frame[:34], net_offset=-20)) == 0
    below_ll = [(I.LD | I.B | I.ABS, 0, 0, _k(I.SKF_LL_OFF - 1)), (I.RET | I.K, 0, 0, 1)]
    assert run_filter(below_ll, udp_part, meta=meta) == 0


def test_ancillary_loads_read_packet_meta():
    meta = PacketMeta(protocol=0x86DD, pkttype=3, ifindex=7, mark=0xDEADBEEF, queue=5, hatype=1, rxhash=0x1234,
                      cpu=1, vlan_tci=0x2064, vlan_avail=1, vlan_tpid=0x88A8, pay_offset=54, random=99)
    names = [n for n in I.SKF_AD if not n.startswith(("nlattr", "alu"))]
    for name, size in [(n, s) for n in names for s in (I.W, I.H, I.B)]:
        program = [(I.LD | size | I.ABS, 0, 0, _k(I.SKF_AD_OFF + I.SKF_AD[name])), (I.RET | I.A, 0, 0, 0)]
        expected = getattr(meta, name)
        assert run_filter(program, b"", meta=meta) == expected, name  # the access size does not matter
        assert run_filter(program, b"", meta=PacketMeta(random=0)) == 0, name
        assert run_filter(program, bytes(64), flavor="pcap") == 0  # libpcap knows no ancillary data
    xor = [(I.LD | I.IMM, 0, 0, 0xF0F0), (I.LDX | I.IMM, 0, 0, 0xFF), (I.LD | I.B | I.ABS, 0, 0,
           _k(I.SKF_AD_OFF + I.SKF_AD["alu_xor_x"])), (I.RET | I.A, 0, 0, 0)]
    assert run_filter(xor, b"") == 0xF0F0 ^ 0xFF
    rnd = Machine([(I.LD | I.W | I.ABS, 0, 0, _k(I.SKF_AD_OFF + I.SKF_AD["random"])), (I.RET | I.A, 0, 0, 0)])
    assert len({rnd.run(b"") for _ in range(20)}) > 1  # a fresh number per run, like prandom


def _nla(attrtype: int, payload: bytes) -> bytes:
    raw = struct.pack("<HH", 4 + len(payload), attrtype) + payload
    return raw + b"\0" * (-len(raw) % 4)


def test_netlink_attribute_search():
    first, second = _nla(1, b"abc"), _nla(2, b"\x01\x02\x03\x04")
    inner = _nla(7, b"zz") + _nla(9, b"nine")
    nest = _nla(0x8000 | 3, inner)  # NLA_F_NESTED is ignored when matching types
    msg = b"H" * 16 + first + second + nest

    def find(kind: str, a: int, x: int) -> int:
        prog = [(I.LD | I.IMM, 0, 0, a), (I.LDX | I.IMM, 0, 0, x),
                (I.LD | I.W | I.ABS, 0, 0, _k(I.SKF_AD_OFF + I.SKF_AD[kind])), (I.RET | I.A, 0, 0, 0)]
        return run_filter(prog, msg)

    assert find("nlattr", 16, 2) == 16 + len(first)
    assert find("nlattr", 16, 3) == 16 + len(first) + len(second)
    assert find("nlattr", 16, 4) == 0
    assert find("nlattr", len(msg) - 3, 1) == 0  # no room for an attribute header
    nest_at = 16 + len(first) + len(second)
    assert find("nlattr_nest", nest_at, 9) == nest_at + 4 + len(_nla(7, b"zz"))
    assert find("nlattr_nest", nest_at, 1) == 0


def test_seccomp_flavor_reads_native_words():
    data = struct.pack("<iIQ6Q", 257, 0xC000003E, 0x401000, 1, 2, 3, 4, 5, 0x1_0000_0007)
    prog = [(I.LD | I.W | I.ABS, 0, 0, 0), (I.JMP | I.JEQ | I.K, 0, 1, 257), (I.LD | I.W | I.ABS, 0, 0, 60),
            (I.RET | I.A, 0, 0, 0)]
    assert run_filter(prog, data, flavor="seccomp") == 1  # high half of args[5]
    assert run_filter([(I.LD | I.W | I.LEN, 0, 0, 0), (I.RET | I.A, 0, 0, 0)], data, flavor="seccomp") == 64
    with pytest.raises(ValueError, match="64 bytes"):
        run_filter(prog, data[:32], flavor="seccomp")
    with pytest.raises(FilterValidationError, match="seccomp"):
        Machine([(I.LD | I.H | I.ABS, 0, 0, 0), (I.RET | I.A, 0, 0, 0)], flavor="seccomp")


def test_wire_length_and_division():
    prog = [(I.LD | I.W | I.LEN, 0, 0, 0), (I.LDX | I.IMM, 0, 0, 0), (I.JMP | I.JGT | I.K, 0, 1, 100),
            (I.ALU | I.DIV | I.X, 0, 0, 0), (I.RET | I.A, 0, 0, 0)]
    assert run_filter(prog, b"abc") == 3
    assert run_filter(prog, b"abc", wirelen=1500) == 0  # division by X == 0 drops the packet


def test_bad_programs_and_flavors_are_named():
    with pytest.raises(FilterValidationError, match="instruction 1:.*jumps to 5"):
        Machine([(I.LD | I.IMM, 0, 0, 0), (I.JMP | I.JEQ | I.K, 3, 0, 1), (I.RET | I.A, 0, 0, 0)])
    with pytest.raises(BPFError, match="flavor 'bsd'"):
        Machine([(I.RET | I.K, 0, 0, 1)], flavor="bsd")


def test_ethernet_meta_strips_the_vlan_tag():
    tagged = S.ether(S.MAC_B, S.MAC_A, 0x0800, S.ipv4("198.18.0.1", "198.18.0.2", 6, S.tcp(1, 2)), vlan=0x2064)
    data, meta = ethernet_meta(tagged, own_mac=S.MAC_A, ifindex=4)
    assert data == tagged[:12] + tagged[16:]
    assert (meta.vlan_avail, meta.vlan_tci, meta.vlan_tpid, meta.protocol) == (1, 0x2064, 0x8100, 0x0800)
    assert (meta.pkttype, meta.ifindex, meta.pay_offset) == (3, 4, 14 + 20 + 20)
