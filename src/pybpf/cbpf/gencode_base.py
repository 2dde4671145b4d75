"""The code generator's state and its smallest building blocks.

Where the link-layer header, its payload and the network header start (each a
constant or a constant plus a value computed at run time into a scratch
register), scratch-register allocation, loads relative to those headers and
the compare blocks every primitive is made of.  The protocol-specific
generators (802.11, ATM, SS7, pflog, and the main one in gencode.py) build on
this class; they all follow libpcap's gencode.c order of construction, because
the optimizer's result depends on exactly which blocks exist.
"""

from __future__ import annotations

from ..errors import CompileError
from . import insn as I
from . import linktypes
from .blocks import JMP, M32, Block, Stmt, gen_and, gen_not, sappend

DLT = {name: value for name, (value, _) in linktypes.DLT.items()}
DLT_HDLC = 112  # NetBSD's HDLC: compiled like Cisco HDLC, but it has no name in the registry

OFFSET_NOT_SET = 0xFFFFFFFF
PCAP_NETMASK_UNKNOWN = 0xFFFFFFFF

# Bases of loads (libpcap's enum e_offrel).
OR_PACKET, OR_LINKHDR, OR_PREVLINKHDR, OR_LLC, OR_PREVMPLSHDR, OR_LINKPL, OR_LINKPL_NOSNAP, OR_LINKTYPE = range(8)
OR_TRAN_IPV4, OR_TRAN_IPV6 = 8, 9


class FilterError(CompileError):
    """A filter expression libpcap would also refuse; the message is in tcpdump's terms."""


def bpf_error(message: str):
    raise FilterError(message)


def swap32(v: int) -> int:
    """Byte-swap a 32-bit value (little-endian header fields compared after a big-endian load)."""
    return int.from_bytes((v & M32).to_bytes(4, "little"), "big")


class AbsOffset:
    """An offset that is a constant, or a constant plus a value kept in a scratch register."""

    __slots__ = ("constant_part", "is_variable", "reg")

    def __init__(self, constant_part: int = 0, is_variable: bool = False, reg: int = -1):
        self.constant_part = constant_part
        self.is_variable = is_variable
        self.reg = reg

    def copy(self) -> "AbsOffset":
        return AbsOffset(self.constant_part, self.is_variable, self.reg)


class CodeGenBase:
    """State shared by every part of the generator: offsets, registers, the current link type."""

    def __init__(self, linktype: int, snaplen: int, netmask: int = PCAP_NETMASK_UNKNOWN):
        self.snaplen = snaplen
        self.netmask = netmask
        self.no_optimize = False
        self.regused = [False] * I.MEMWORDS
        self.curreg = 0
        self.outermostlinktype = self.prevlinktype = self.linktype = linktype
        self.off_linkhdr = AbsOffset()
        self.off_prevlinkhdr = AbsOffset()
        self.off_outermostlinkhdr = AbsOffset()
        self.off_linkpl = AbsOffset()
        self.off_linktype = AbsOffset()
        self.off_nl = 0
        self.off_nl_nosnap = 0
        self.is_geneve = False
        self.is_vlan_vloffset = False
        self.label_stack_depth = 0
        self.vlan_stack_depth = 0

    # -- registers ----------------------------------------------------------
    def alloc_reg(self) -> int:
        for _ in range(I.MEMWORDS):
            if self.regused[self.curreg]:
                self.curreg = (self.curreg + 1) % I.MEMWORDS
            else:
                self.regused[self.curreg] = True
                return self.curreg
        bpf_error("too many registers needed to evaluate expression")

    def free_reg(self, n: int) -> None:
        self.regused[n] = False

    # -- loads ------------------------------------------------------------------
    def gen_abs_offset_varpart(self, off: AbsOffset) -> Stmt | None:
        """`ldx M[reg]` for an offset with a run-time part (the register is filled in the prologue)."""
        if off.is_variable:
            if off.reg == -1:
                off.reg = self.alloc_reg()
            return Stmt(I.LDX | I.MEM, off.reg)
        return None

    def gen_load_absoffsetrel(self, off: AbsOffset, offset: int, size: int) -> Stmt:
        s = self.gen_abs_offset_varpart(off)
        if s is not None:
            sappend(s, Stmt(I.LD | I.IND | size, off.constant_part + offset))
            return s
        return Stmt(I.LD | I.ABS | size, off.constant_part + offset)

    def gen_load_a(self, offrel: int, offset: int, size: int) -> Stmt:
        if offrel == OR_PACKET:
            return Stmt(I.LD | I.ABS | size, offset)
        if offrel == OR_LINKHDR:
            return self.gen_load_absoffsetrel(self.off_linkhdr, offset, size)
        if offrel == OR_PREVLINKHDR:
            return self.gen_load_absoffsetrel(self.off_prevlinkhdr, offset, size)
        if offrel == OR_LLC:
            return self.gen_load_absoffsetrel(self.off_linkpl, offset, size)
        if offrel == OR_PREVMPLSHDR:
            return self.gen_load_absoffsetrel(self.off_linkpl, self.off_nl - 4 + offset, size)
        if offrel == OR_LINKPL:
            return self.gen_load_absoffsetrel(self.off_linkpl, self.off_nl + offset, size)
        if offrel == OR_LINKPL_NOSNAP:
            return self.gen_load_absoffsetrel(self.off_linkpl, self.off_nl_nosnap + offset, size)
        if offrel == OR_LINKTYPE:
            return self.gen_load_absoffsetrel(self.off_linktype, offset, size)
        if offrel == OR_TRAN_IPV4:
            s = self.gen_loadx_iphdrlen()
            sappend(s, Stmt(I.LD | I.IND | size, self.off_linkpl.constant_part + self.off_nl + offset))
            return s
        return self.gen_load_absoffsetrel(self.off_linkpl, self.off_nl + 40 + offset, size)  # OR_TRAN_IPV6

    def gen_loadx_iphdrlen(self) -> Stmt:
        """X = IPv4 header length (+ the run-time part of the payload offset, if any)."""
        s = self.gen_abs_offset_varpart(self.off_linkpl)
        if s is not None:
            sappend(s, Stmt(I.LD | I.IND | I.B, self.off_linkpl.constant_part + self.off_nl))
            sappend(s, Stmt(I.ALU | I.AND | I.K, 0xF))
            sappend(s, Stmt(I.ALU | I.LSH | I.K, 2))
            sappend(s, Stmt(I.ALU | I.ADD | I.X))
            sappend(s, Stmt(I.MISC | I.TAX))
            return s
        return Stmt(I.LDX | I.MSH | I.B, self.off_linkpl.constant_part + self.off_nl)

    # -- comparisons --------------------------------------------------------------
    def gen_ncmp(self, offrel: int, offset: int, size: int, mask: int, jtype: int, reverse: bool, v: int) -> Block:
        s = self.gen_load_a(offrel, offset, size)
        if mask != 0xFFFFFFFF:
            sappend(s, Stmt(I.ALU | I.AND | I.K, mask))
        b = Block(JMP(jtype), v)
        b.stmts = s
        # libpcap negates only the ordered tests: a "reversed" equality stays an equality
        if reverse and jtype in (I.JGT, I.JGE):
            gen_not(b)
        return b

    def gen_cmp(self, offrel: int, offset: int, size: int, v: int) -> Block:
        return self.gen_ncmp(offrel, offset, size, 0xFFFFFFFF, I.JEQ, False, v)

    def gen_cmp_gt(self, offrel: int, offset: int, size: int, v: int) -> Block:
        return self.gen_ncmp(offrel, offset, size, 0xFFFFFFFF, I.JGT, False, v)

    def gen_cmp_ge(self, offrel: int, offset: int, size: int, v: int) -> Block:
        return self.gen_ncmp(offrel, offset, size, 0xFFFFFFFF, I.JGE, False, v)

    def gen_cmp_lt(self, offrel: int, offset: int, size: int, v: int) -> Block:
        return self.gen_ncmp(offrel, offset, size, 0xFFFFFFFF, I.JGE, True, v)

    def gen_cmp_le(self, offrel: int, offset: int, size: int, v: int) -> Block:
        return self.gen_ncmp(offrel, offset, size, 0xFFFFFFFF, I.JGT, True, v)

    def gen_mcmp(self, offrel: int, offset: int, size: int, v: int, mask: int) -> Block:
        return self.gen_ncmp(offrel, offset, size, mask, I.JEQ, False, v)

    def gen_bcmp(self, offrel: int, offset: int, data: bytes) -> Block:
        """Compare a byte string: words from the end, then halfwords, then a leading byte."""
        b = None
        size = len(data)
        while size >= 4:
            tmp = self.gen_cmp(offrel, offset + size - 4, I.W, int.from_bytes(data[size - 4:size], "big"))
            if b is not None:
                gen_and(b, tmp)
            b = tmp
            size -= 4
        while size >= 2:
            tmp = self.gen_cmp(offrel, offset + size - 2, I.H, int.from_bytes(data[size - 2:size], "big"))
            if b is not None:
                gen_and(b, tmp)
            b = tmp
            size -= 2
        if size > 0:
            tmp = self.gen_cmp(offrel, offset, I.B, data[0])
            if b is not None:
                gen_and(b, tmp)
            b = tmp
        return b

    def gen_jset(self, offrel: int, offset: int, size: int, bits: int) -> Block:
        """A block that is true when any of `bits` is set in the loaded value."""
        b = Block(JMP(I.JSET), bits)
        b.stmts = self.gen_load_a(offrel, offset, size)
        return b

    def gen_uncond(self, rsense: bool) -> Block:
        b = Block(JMP(I.JEQ))
        b.stmts = Stmt(I.LD | I.IMM, 0 if rsense else 1)
        return b

    def gen_true(self) -> Block:
        return self.gen_uncond(True)

    def gen_false(self) -> Block:
        return self.gen_uncond(False)

    # -- encapsulation ------------------------------------------------------------
    def push_linkhdr(self, new_linktype: int, is_variable: bool, constant_part: int, reg: int) -> None:
        """An inner link-layer header starts here (PPPoE's PPP, LANE's Ethernet, Geneve's Ethernet)."""
        self.prevlinktype = self.linktype
        self.off_prevlinkhdr = self.off_linkhdr.copy()
        self.linktype = new_linktype
        self.off_linkhdr = AbsOffset(constant_part, is_variable, reg)
        self.is_geneve = False
