"""The classic BPF machine: runs a filter on a packet, as Linux or libpcap would.

A program is validated once (kernel rules) and then translated into one
Python function: each instruction becomes a line of straight Python, jumps
become ``if`` statements, scratch words become local variables.  Running a
filter is then one call of that function, with no per-instruction dispatch,
which is what makes a pure-Python filter fast enough for packet captures.

Semantics (``flavor``):

``"linux"`` (default) is the kernel's socket filter: out-of-bounds packet
loads and division or modulo by a zero X return 0 (drop); arithmetic wraps at
32 bits; a shift by X uses X's low 5 bits; ``ld [x + k]`` computes its offset
modulo 2**32 as a signed int, so negative offsets reach the ``SKF_NET_OFF`` and
``SKF_LL_OFF`` areas; ``ld [SKF_AD_OFF + n]`` loads packet metadata from a
:class:`PacketMeta`.

``"pcap"`` is libpcap's ``bpf_filter()`` (what ``tcpdump -r`` runs): the same,
except a shift by X >= 32 gives 0, ``x + k`` does not wrap, and every offset
beyond the packet (ancillary and negative ones included) rejects it.  As in
libpcap, a ``ja`` may jump backwards (its offset wraps around 32 bits; libpcap
compiles ``protochain`` into such a loop); a program that loops more than
MAX_BACKWARD_JUMPS times on one packet raises VMFault instead of hanging.

``"seccomp"`` runs a seccomp filter on a 64-byte ``struct seccomp_data``:
32-bit loads are native (little-endian on x86-64), ``len`` is 64.
"""

from __future__ import annotations

import hashlib
import random as _random
from dataclasses import dataclass
from typing import Callable, Iterable

from ..errors import BPFError, VMFault
from . import insn as I
from .insn import CInsn
from .validate import CONDITIONAL_JUMPS, jump_target, validate

FLAVORS = ("linux", "pcap", "seccomp")
_M32 = 0xFFFFFFFF
MAX_BACKWARD_JUMPS = 1 << 20  # a protochain walk makes one per header: far fewer


@dataclass(slots=True)
class PacketMeta:
    """What the kernel knows about a packet besides its bytes.

    Linux ancillary loads (``ld [SKF_AD_OFF + n]``) read these fields; a filter
    without such loads never needs one.  Three ancillary loads need no
    metadata: alu_xor_x (A ^= X) and nlattr/nlattr_nest (they search netlink
    attributes in the packet itself).  Defaults are what an skb without the
    information holds (0).  ``random=None`` draws a fresh 32-bit number per
    load like the kernel's ``prandom``.  Negative-offset loads need the layout:
    ``head`` holds bytes in front of the data (for a UDP socket: the link and IP
    headers), ``net_offset``/``ll_offset`` say where the network and link-layer
    headers start relative to the data (negative when they lie in ``head``);
    ``None`` makes such loads reject the packet, like an skb without them.
    """

    protocol: int = 0  # SKF_AD_PROTOCOL: ethertype in host order (ntohs(skb->protocol))
    pkttype: int = 0  # SKF_AD_PKTTYPE: PACKET_HOST 0, BROADCAST 1, MULTICAST 2, OTHERHOST 3, OUTGOING 4
    ifindex: int = 0  # SKF_AD_IFINDEX
    mark: int = 0  # SKF_AD_MARK
    queue: int = 0  # SKF_AD_QUEUE: skb->queue_mapping
    hatype: int = 0  # SKF_AD_HATYPE: ARPHRD_* of the device (1 = Ethernet)
    rxhash: int = 0  # SKF_AD_RXHASH: skb->hash as it stands (not computed on demand)
    cpu: int = 0  # SKF_AD_CPU
    vlan_tci: int = 0  # SKF_AD_VLAN_TAG: the offloaded 802.1Q tag
    vlan_avail: int = 0  # SKF_AD_VLAN_TAG_PRESENT
    vlan_tpid: int = 0  # SKF_AD_VLAN_TPID: 0x8100 or 0x88a8 when a tag was offloaded
    pay_offset: int = 0  # SKF_AD_PAY_OFFSET: where the flow dissector finds the L4 payload
    random: int | None = None  # SKF_AD_RANDOM
    head: bytes = b""
    net_offset: int | None = None
    ll_offset: int | None = None


_DEFAULT_META = PacketMeta()

PACKET_HOST, PACKET_BROADCAST, PACKET_MULTICAST, PACKET_OTHERHOST, PACKET_OUTGOING = range(5)
_VLAN_TPIDS = (0x8100, 0x88A8)


def ethernet_meta(frame: bytes, *, own_mac: bytes | None = None, **fields) -> tuple[bytes, PacketMeta]:
    """The frame and metadata as a Linux packet socket sees a received Ethernet frame.

    Linux moves an outer 802.1Q/802.1ad tag out of the data into the skb
    (vlan_tci/vlan_avail/vlan_tpid), sets the protocol the way eth_type_trans
    does, the packet type from the destination MAC (``own_mac`` tells host from
    otherhost), the header offsets, and the payload offset its flow dissector
    finds for ARP, IPv4 and IPv6 (others: 0).  Returns (data, meta); extra
    keyword arguments set other PacketMeta fields (ifindex, mark, ...).
    """
    meta = PacketMeta(hatype=1, ll_offset=0, net_offset=14, **fields)
    if len(frame) >= 18 and int.from_bytes(frame[12:14], "big") in _VLAN_TPIDS:
        meta.vlan_tpid = int.from_bytes(frame[12:14], "big")
        meta.vlan_tci = int.from_bytes(frame[14:16], "big")
        meta.vlan_avail = 1
        frame = frame[:12] + frame[16:]
    if len(frame) < 14:
        return frame, meta
    dst = frame[:6]
    if "pkttype" not in fields:
        if dst == b"\xff" * 6:
            meta.pkttype = PACKET_BROADCAST
        elif dst[0] & 1:
            meta.pkttype = PACKET_MULTICAST
        elif own_mac is not None and dst != own_mac:
            meta.pkttype = PACKET_OTHERHOST
    ethertype = int.from_bytes(frame[12:14], "big")
    if ethertype >= 0x600:
        meta.protocol = ethertype
    else:
        meta.protocol = 0x0001 if frame[14:16] == b"\xff\xff" else 0x0004  # ETH_P_802_3 / ETH_P_802_2
    if "pay_offset" not in fields:
        meta.pay_offset = _payload_offset(frame, meta.protocol)
    return frame, meta


# L4 header sizes __skb_get_poff() adds: udp, udplite, icmp, icmpv6, igmp, dccp, sctp.
_L4_HEADER = {17: 8, 136: 8, 1: 8, 58: 8, 2: 8, 33: 16, 132: 12}


def _payload_offset(frame: bytes, protocol: int) -> int:
    """skb_get_poff() for a frame starting at its Ethernet header."""
    n = len(frame)
    off, proto, later_fragment = 14, None, False
    if protocol in (0x0806, 0x8035):  # ARP, RARP: dissected, no transport header
        return min(off, n)
    if protocol == 0x0800:
        if n < off + 20 or frame[off] & 0x0F < 5:
            return 0
        proto = frame[off + 9]
        frag = int.from_bytes(frame[off + 6:off + 8], "big")
        later_fragment = bool(frag & 0x1FFF)
        first_fragment = bool(frag & 0x2000) and not later_fragment
        off += (frame[off] & 0x0F) * 4
        if later_fragment or first_fragment:
            # Without FLOW_DISSECTOR_F_PARSE_1ST_FRAG the dissector stops here, before the
            # transport header; the payload offset still adds it for a first fragment.
            return min(off, n) if later_fragment else _after_l4(frame, min(off, n), proto)
    elif protocol == 0x86DD:
        if n < off + 40:
            return 0
        proto = frame[off + 6]
        off += 40
        while proto in (0, 43, 60, 44):  # hop-by-hop, routing, destination options, fragment
            if n < off + (8 if proto == 44 else 2):
                return 0
            if proto == 44:
                later_fragment = bool(int.from_bytes(frame[off + 2:off + 4], "big") & 0xFFF8)
                proto = frame[off]
                off += 8
                return min(off, n) if later_fragment else _after_l4(frame, min(off, n), proto)
            proto, off = frame[off], off + (frame[off + 1] + 1) * 8
    else:
        return 0
    return _after_l4(frame, min(off, n), proto)


def _after_l4(frame: bytes, off: int, proto: int) -> int:
    if proto == 6:
        if len(frame) < off + 13:
            return off
        return off + max(20, (frame[off + 12] & 0xF0) >> 2)
    return off + _L4_HEADER.get(proto, 0)


# Ancillary load -> expression over meta (m), A, X and the packet p.
_ANCILLARY_EXPR = {
    "protocol": "m.protocol & 0xFFFF",
    "pkttype": "m.pkttype & 7",
    "ifindex": "m.ifindex",
    "nlattr": "_nlattr(p, A, X)",
    "nlattr_nest": "_nlattr_nest(p, A, X)",
    "mark": "m.mark",
    "queue": "m.queue & 0xFFFF",
    "hatype": "m.hatype & 0xFFFF",
    "rxhash": "m.rxhash",
    "cpu": "m.cpu",
    "alu_xor_x": "A ^ X",
    "vlan_tci": "m.vlan_tci & 0xFFFF",
    "vlan_avail": "1 if m.vlan_avail else 0",
    "pay_offset": "m.pay_offset",
    "random": "_getrandbits(32) if m.random is None else m.random",
    "vlan_tpid": "m.vlan_tpid & 0xFFFF",
}
_ANCILLARY_BY_K = {(I.SKF_AD_OFF + off) & _M32: name for name, off in I.SKF_AD.items()}
_SIZE_BYTES = {I.W: 4, I.H: 2, I.B: 1}
_TREE_DEPTH_LIMIT = 60  # Python refuses more than 100 indentation levels
_TREE_MIN_LINES, _TREE_LINES_PER_INSN = 400, 12  # beyond this, duplicated tails cost more than labels
_SET_TEST_MIN = 4  # from this many chained equality tests on, a set lookup is faster


class Machine:
    """A validated classic BPF program, ready to run on packets.

    ``run(data, wirelen=None, meta=None) -> int`` returns what the filter
    returns: 0 drops the packet, anything else is the number of bytes to keep.
    ``wirelen`` is the packet's length on the wire (``ld len``), ``data`` may be
    shorter (a capture snapshot).
    """

    __slots__ = ("program", "flavor", "source", "run")

    def __init__(self, program: Iterable, flavor: str = "linux"):
        if flavor not in FLAVORS:
            raise BPFError(f"unknown classic BPF flavor {flavor!r}: choose one of {', '.join(FLAVORS)}")
        self.program: list[CInsn] = validate(program, seccomp=flavor == "seccomp", pcap=flavor == "pcap")
        self.flavor = flavor
        translator = _Translator(self.program, flavor)
        self.source: str = translator.source()
        namespace = dict(_RUNTIME, **translator.constants)
        name = hashlib.sha1(repr((flavor, self.program)).encode()).hexdigest()[:12]
        exec(compile(self.source, f"<cbpf {name}>", "exec"), namespace)
        self.run: Callable[..., int] = namespace["run"]

    def matches(self, data: bytes, wirelen: int | None = None, meta: PacketMeta | None = None) -> bool:
        return self.run(data, wirelen, meta) != 0

    def __len__(self) -> int:
        return len(self.program)

    def __repr__(self) -> str:
        return f"<Machine {len(self.program)} instructions, {self.flavor}>"


def run_filter(program: Iterable, data: bytes, wirelen: int | None = None, meta: PacketMeta | None = None,
               flavor: str = "linux") -> int:
    """Run a program once; for many packets build a Machine and call its ``run``."""
    return Machine(program, flavor).run(data, wirelen, meta)


# --- runtime helpers the generated code calls --------------------------------


def _neg_load(p, m: PacketMeta | None, off: int, size: int) -> int:
    """A load at a negative offset: SKF_NET_OFF/SKF_LL_OFF relative, inside head + data."""
    if m is None:
        raise IndexError
    if off >= I.SKF_NET_OFF:
        base = m.net_offset
        off -= I.SKF_NET_OFF
    elif off >= I.SKF_LL_OFF:
        base = m.ll_offset
        off -= I.SKF_LL_OFF
    else:
        raise IndexError
    if base is None:
        raise IndexError
    pos = len(m.head) + base + off  # index into head + data
    if pos < 0:
        raise IndexError
    buf = m.head + bytes(p)
    if pos + size > len(buf):
        raise IndexError
    return int.from_bytes(buf[pos:pos + size], "big")


def _nla_find(p, pos: int, rem: int, attrtype: int) -> int:
    """nla_find(): offset of the first attribute of ``attrtype`` in p[pos:pos+rem], or 0."""
    while rem >= 4:
        nla_len = p[pos] | p[pos + 1] << 8
        if nla_len < 4 or nla_len > rem:
            break
        if (p[pos + 2] | p[pos + 3] << 8) & 0x3FFF == attrtype:
            return pos
        step = (nla_len + 3) & ~3
        pos += step
        rem -= step
    return 0


def _nlattr(p, a: int, x: int) -> int:
    n = len(p)
    if n < 4 or a > n - 4:
        return 0
    return _nla_find(p, a, n - a, x)


def _nlattr_nest(p, a: int, x: int) -> int:
    n = len(p)
    if n < 4 or a > n - 4:
        return 0
    nla_len = p[a] | p[a + 1] << 8
    if nla_len > n - a:
        return 0
    return _nla_find(p, a + 4, nla_len - 4, x)


_RUNTIME = {
    "_neg_load": _neg_load,
    "_nlattr": _nlattr,
    "_nlattr_nest": _nlattr_nest,
    "_getrandbits": _random.getrandbits,
    "_DEFAULT_META": _DEFAULT_META,
    "_VMFault": VMFault,
    "_MAX_BACKWARD_JUMPS": MAX_BACKWARD_JUMPS,
}


# --- translation to Python ---------------------------------------------------


class _Translator:
    """Turns a validated program into the source of ``run(p, wirelen=None, meta=None)``.

    Control flow is emitted as a tree: a jump whose target returns at once
    becomes ``if cond: return k``; otherwise one branch nests under ``if`` and
    the other continues below it (every path ends in return, so no ``else``).
    Shared tails are duplicated; when that grows too large the program is
    emitted with a label variable instead (one comparison per basic block).
    """

    def __init__(self, program: list[CInsn], flavor: str):
        self.prog = program
        self.flavor = flavor
        codes = {ins.code for ins in program}
        self.uses_len = bool(codes & {I.LD | I.W | I.LEN, I.LDX | I.W | I.LEN}) and flavor != "seccomp"
        self.uses_meta = flavor == "linux" and any(
            I.cls(ins.code) == I.LD and I.mode(ins.code) == I.ABS and ins.k in _ANCILLARY_BY_K for ins in program)
        self.lines: list[str] = []
        self.constants: dict[str, frozenset] = {}  # names the generated code uses for value sets
        self.budget = max(_TREE_MIN_LINES, _TREE_LINES_PER_INSN * len(program))

    def source(self) -> str:
        head = ["def run(p, wirelen=None, meta=None):"]
        if self.uses_len:
            head.append("    wl = len(p) if wirelen is None else wirelen")
        if self.uses_meta:
            head.append("    m = _DEFAULT_META if meta is None else meta")
        head += ["    A = 0", "    X = 0"]
        if self.flavor == "seccomp":
            head += ["    if len(p) < 64:", "        raise ValueError('a seccomp filter runs on the 64 bytes of "
                     "struct seccomp_data, got %d bytes' % len(p))"]
        loops = any(ins.code == I.JMP | I.JA and jump_target(pc, ins.k) <= pc for pc, ins in enumerate(self.prog))
        try:
            if loops:
                raise _TooBig  # a backward jump: only the label form can loop
            self._emit_tree(0, 2)
            body = self.lines
        except _TooBig:
            self.lines = []
            self._emit_labels(loops)
            body = self.lines
        return "\n".join(head + ["    try:"] + body + ["    except IndexError:", "        return 0", ""])

    # statements ---------------------------------------------------------------

    def _statements(self, ins: CInsn) -> list[str]:
        """Python statements for one non-jump, non-ret instruction."""
        code, k = ins.code, ins.k
        c = I.cls(code)
        if c == I.LD or c == I.LDX:
            reg = "A" if c == I.LD else "X"
            mode = I.mode(code)
            if mode == I.IMM:
                return [f"{reg} = {k}"]
            if mode == I.MEM:
                return [f"{reg} = m{k}"]
            if mode == I.LEN:
                return [f"{reg} = 64" if self.flavor == "seccomp" else f"{reg} = wl"]
            if mode == I.MSH:
                if k < 0x80000000 or self.flavor != "linux":
                    return [f"X = (p[{k}] & 15) << 2"]
                return [f"X = (_neg_load(p, meta, {k - (1 << 32)}, 1) & 15) << 2"]
            size = _SIZE_BYTES[I.size(code)]
            if mode == I.ABS:
                if self.flavor == "seccomp":
                    return [f"A = p[{k}] | p[{k + 1}] << 8 | p[{k + 2}] << 16 | p[{k + 3}] << 24"]
                if self.flavor == "linux" and k in _ANCILLARY_BY_K:
                    return [f"A = {_ANCILLARY_EXPR[_ANCILLARY_BY_K[k]]}"]
                if k >= 0x80000000 and self.flavor == "linux":
                    return [f"A = _neg_load(p, meta, {k - (1 << 32)}, {size})"]
                return [f"A = {_load_expr(k, size)}"]
            # IND
            if self.flavor == "pcap":
                return [f"o = X + {k}", f"A = {_load_expr('o', size)}"]
            return [f"o = (X + {k}) & 0xFFFFFFFF",
                    f"A = {_load_expr('o', size)} if o < 0x80000000 else _neg_load(p, meta, o - 0x100000000, {size})"]
        if c == I.ST:
            return [f"m{k} = A"]
        if c == I.STX:
            return [f"m{k} = X"]
        if c == I.MISC:
            return ["X = A"] if code == I.MISC | I.TAX else ["A = X"]
        if c == I.ALU:
            return self._alu(code, k)
        raise AssertionError(f"unexpected opcode {code:#x}")  # validate() admits nothing else

    def _alu(self, code: int, k: int) -> list[str]:
        op = I.op(code)
        if op == I.NEG:
            return ["A = -A & 0xFFFFFFFF"]
        v = "X" if I.src(code) == I.X else str(k)
        if op == I.ADD:
            return [f"A = (A + {v}) & 0xFFFFFFFF"]
        if op == I.SUB:
            return [f"A = (A - {v}) & 0xFFFFFFFF"]
        if op == I.MUL:
            return [f"A = (A * {v}) & 0xFFFFFFFF"]
        if op == I.AND:
            return [f"A &= {v}"]
        if op == I.OR:
            return [f"A |= {v}"]
        if op == I.XOR:
            return [f"A ^= {v}"]
        if op in (I.DIV, I.MOD):
            sym = "//" if op == I.DIV else "%"
            if v == "X":
                return ["if X == 0:", "    return 0", f"A {sym}= X"]
            return [f"A {sym}= {k}"]
        if op == I.LSH:
            if v != "X":
                return [f"A = (A << {k}) & 0xFFFFFFFF"]
            if self.flavor == "pcap":
                return ["A = (A << X) & 0xFFFFFFFF if X < 32 else 0"]
            return ["A = (A << (X & 31)) & 0xFFFFFFFF"]
        if op == I.RSH:
            if v != "X":
                return [f"A >>= {k}"]
            return ["A >>= X" if self.flavor == "pcap" else "A >>= X & 31"]
        raise AssertionError(f"unexpected ALU opcode {code:#x}")

    # control flow -------------------------------------------------------------

    def _follow(self, pc: int) -> int:
        """Skip unconditional jumps."""
        while self.prog[pc].code == I.JMP | I.JA:
            pc += 1 + self.prog[pc].k
        return pc

    def _return_expr(self, pc: int) -> str | None:
        ins = self.prog[self._follow(pc)]
        if ins.code == I.RET | I.K:
            return str(ins.k)
        if ins.code == I.RET | I.A:
            return "A"
        return None

    def _cond(self, ins: CInsn) -> str:
        v = "X" if I.src(ins.code) == I.X else str(ins.k)
        op = I.op(ins.code)
        return {I.JEQ: f"A == {v}", I.JGT: f"A > {v}", I.JGE: f"A >= {v}", I.JSET: f"A & {v}"}[op]

    def _put(self, depth: int, text: str) -> None:
        self.lines.append("    " * depth + text)
        if len(self.lines) > self.budget:
            raise _TooBig

    def _emit_tree(self, pc: int, depth: int) -> None:
        if depth > _TREE_DEPTH_LIMIT:
            raise _TooBig
        prog = self.prog
        while True:
            pc = self._follow(pc)
            ins = prog[pc]
            code = ins.code
            if I.cls(code) == I.RET:
                self._put(depth, f"return {self._return_expr(pc)}")
                return
            if code in CONDITIONAL_JUMPS:
                t, f = self._follow(pc + 1 + ins.jt), self._follow(pc + 1 + ins.jf)
                cond = self._cond(ins)
                run = self._equality_run(pc, t)
                if len(run) >= _SET_TEST_MIN:  # jeq #a, jeq #b, ... all to one target: one set lookup
                    name = f"_set{len(self.constants)}"
                    self.constants[name] = frozenset(prog[q].k for q in run)
                    cond = f"A in {name}"
                    f = self._follow(run[-1] + 1 + prog[run[-1]].jf)
                if t == f:
                    pc = t
                    continue
                rt, rf = self._return_expr(t), self._return_expr(f)
                if rt is not None:
                    self._put(depth, f"if {cond}:")
                    self._put(depth + 1, f"return {rt}")
                    pc = f
                elif rf is not None:
                    self._put(depth, f"if not ({cond}):")
                    self._put(depth + 1, f"return {rf}")
                    pc = t
                elif t > f:  # nest the later target: its code to the end is usually shorter
                    self._put(depth, f"if {cond}:")
                    self._emit_tree(t, depth + 1)
                    pc = f
                else:
                    self._put(depth, f"if not ({cond}):")
                    self._emit_tree(f, depth + 1)
                    pc = t
                continue
            for stmt in self._statements(ins):
                self._put(depth, stmt)
            pc += 1

    def _equality_run(self, pc: int, target: int) -> list[int]:
        """The chain of ``jeq #k`` starting at pc that all jump to ``target`` and fall through to each other."""
        run = []
        while True:
            ins = self.prog[pc]
            if ins.code != I.JMP | I.JEQ | I.K or self._follow(pc + 1 + ins.jt) != target:
                return run
            run.append(pc)
            nxt = self._follow(pc + 1 + ins.jf)
            if nxt == target:
                return run
            pc = nxt

    def _emit_labels(self, loops: bool = False) -> None:
        """Fallback for large DAGs: blocks in program order, entered when L names them.

        With backward jumps (pcap flavor) the blocks sit in a `while` loop: a
        jump back ends the pass, the next pass enters the block L names.
        """
        prog = self.prog
        starts = {0}
        for pc, ins in enumerate(prog):
            if ins.code == I.JMP | I.JA:
                starts.add(jump_target(pc, ins.k))
            elif ins.code in CONDITIONAL_JUMPS:
                starts.update((pc + 1 + ins.jt, pc + 1 + ins.jf))
        # Every scratch word a block may read is bound first, so Python never sees an unbound local.
        used = sorted({ins.k for ins in prog if ins.code in (I.ST, I.STX)})
        if used:
            self.lines.append("        " + " = ".join(f"m{k}" for k in used) + " = 0")
        self.lines.append("        L = 0")
        first = len(self.lines)
        pc = 0
        while pc < len(prog):
            self.lines.append(f"        if L == {pc}:")
            while True:
                ins = prog[pc]
                code = ins.code
                if I.cls(code) == I.RET:
                    self.lines.append(f"            return {'A' if code == I.RET | I.A else ins.k}")
                    pc += 1
                    break
                if code == I.JMP | I.JA:
                    self.lines.append(f"            L = {jump_target(pc, ins.k)}")
                    pc += 1
                    break
                if code in CONDITIONAL_JUMPS:
                    self.lines.append(f"            L = {pc + 1 + ins.jt} if {self._cond(ins)} else {pc + 1 + ins.jf}")
                    pc += 1
                    break
                self.lines.extend("            " + s for s in self._statements(ins))
                pc += 1
                if pc in starts:
                    self.lines.append(f"            L = {pc}")
                    break
            while pc < len(prog) and pc not in starts:  # unreachable code after ret/ja
                pc += 1
        if loops:
            self.lines[first:] = ["    " + line for line in self.lines[first:]]
            self.lines[first:first] = ["        passes = 0", "        while True:"]
            self.lines += ["            passes += 1",
                           "            if passes > _MAX_BACKWARD_JUMPS:",
                           "                raise _VMFault('the filter jumped backwards more than %d times on one "
                           "packet: it does not terminate (libpcap would hang)' % _MAX_BACKWARD_JUMPS)"]


def _load_expr(off: str | int, size: int) -> str:
    """Big-endian load of ``size`` bytes at ``off``: a constant offset or the name of a variable."""
    def at(i: int) -> str:
        if isinstance(off, int):
            return f"p[{off + i}]"
        return f"p[{off} + {i}]" if i else f"p[{off}]"
    if size == 1:
        return at(0)
    if size == 2:
        return f"(({at(0)} << 8) | {at(1)})"
    return f"(({at(0)} << 24) | ({at(1)} << 16) | ({at(2)} << 8) | {at(3)})"


class _TooBig(Exception):
    pass
