"""802.11 in filters: MAC addresses by frame direction, type/subtype/dir, radio headers.

An 802.11 MAC header puts source, destination and BSSID in different address
fields depending on the To-DS/From-DS bits, and data frames may carry a QoS
field and (on Atheros, announced in radiotap) padding before the payload; the
radio metadata header in front (radiotap, Prism, AVS, PPI) has a length known
only at run time.  These generators produce libpcap's tests and its prologue
that computes those lengths into scratch registers.
"""

from __future__ import annotations

from . import insn as I
from .blocks import JMP, Block, Stmt, gen_and, gen_not, gen_or, sappend
from .gencode_base import DLT, OR_LINKHDR, CodeGenBase, bpf_error, swap32
from .parser import Q_ADDR1, Q_ADDR2, Q_ADDR3, Q_ADDR4, Q_AND, Q_DEFAULT, Q_DST, Q_OR, Q_RA, Q_SRC, Q_TA

DLT_IEEE802_11, DLT_PRISM_HEADER, DLT_IEEE802_11_RADIO, DLT_IEEE802_11_RADIO_AVS, DLT_PPI = (
    DLT["IEEE802_11"], DLT["PRISM_HEADER"], DLT["IEEE802_11_RADIO"], DLT["IEEE802_11_RADIO_AVS"], DLT["PPI"])
# 802.11 with a radio header in front, and all of them (PPI carries 802.11 only, checked at run time)
RADIO_DLTS = (DLT_PRISM_HEADER, DLT_IEEE802_11_RADIO_AVS, DLT_IEEE802_11_RADIO)
WLAN_DLTS = (DLT_IEEE802_11, *RADIO_DLTS, DLT_PPI)

FC0_TYPE_MASK, FC0_SUBTYPE_MASK = 0x0C, 0xF0
TYPE_MGT, TYPE_CTL, TYPE_DATA = 0x00, 0x04, 0x08
SUBTYPE_CTS, SUBTYPE_ACK = 0xC0, 0xD0
FC1_DIR_MASK = 0x03
DIRECTIONS = {"nods": 0, "tods": 1, "fromds": 2, "dstods": 3}

# Names of 802.11 frame types and subtypes, in the order libpcap matches them.
TYPE_NAMES = (("data", TYPE_DATA), ("mgt", TYPE_MGT), ("management", TYPE_MGT), ("ctl", TYPE_CTL),
              ("control", TYPE_CTL))
SUBTYPE_NAMES = {
    TYPE_MGT: (("assocreq", 0x00), ("assoc-req", 0x00), ("assocresp", 0x10), ("assoc-resp", 0x10),
               ("reassocreq", 0x20), ("reassoc-req", 0x20), ("reassocresp", 0x30), ("reassoc-resp", 0x30),
               ("probereq", 0x40), ("probe-req", 0x40), ("proberesp", 0x50), ("probe-resp", 0x50),
               ("beacon", 0x80), ("atim", 0x90), ("disassoc", 0xA0), ("disassociation", 0xA0), ("auth", 0xB0),
               ("authentication", 0xB0), ("deauth", 0xC0), ("deauthentication", 0xC0)),
    TYPE_CTL: (("ps-poll", 0xA0), ("rts", 0xB0), ("cts", 0xC0), ("ack", 0xD0), ("cf-end", 0xE0),
               ("cf-end-ack", 0xF0)),
    TYPE_DATA: (("data", 0x00), ("data-cf-ack", 0x10), ("data-cf-poll", 0x20), ("data-cf-ack-poll", 0x30),
                ("null", 0x40), ("cf-ack", 0x50), ("cf-poll", 0x60), ("cf-ack-poll", 0x70), ("qos-data", 0x80),
                ("qos-data-cf-ack", 0x90), ("qos-data-cf-poll", 0xA0), ("qos-data-cf-ack-poll", 0xB0),
                ("qos", 0xC0), ("qos-cf-poll", 0xE0), ("qos-cf-ack-poll", 0xF0)),
}


def lookup(name: str, table) -> int | None:
    """Case-insensitive lookup in a (name, value) table, first match wins."""
    lname = name.lower()
    for entry, value in table:
        if entry == lname:
            return value
    return None


class WlanCodeGen(CodeGenBase):
    # -- addresses ------------------------------------------------------------------
    def _fc_bit(self, offset: int, bits: int, negate: bool = False) -> Block:
        b = self.gen_jset(OR_LINKHDR, offset, I.B, bits)
        if negate:
            gen_not(b)
        return b

    def _wlan_dir_host(self, eaddr: bytes, tods_off: int, nods_off: int, fromds_off: int | None,
                       nondata_off: int) -> Block:
        """Source or destination: which address field holds it depends on the DS bits (data frames)."""
        b1 = self._fc_bit(1, 0x01)
        b0 = self.gen_bcmp(OR_LINKHDR, tods_off, eaddr)
        gen_and(b1, b0)
        b2 = self._fc_bit(1, 0x01, negate=True)
        b1 = self.gen_bcmp(OR_LINKHDR, nods_off, eaddr)
        gen_and(b2, b1)
        gen_or(b1, b0)
        if fromds_off is not None:
            b1 = self._fc_bit(1, 0x02)
            gen_and(b1, b0)
            b2 = self._fc_bit(1, 0x02, negate=True)
            b1 = self.gen_bcmp(OR_LINKHDR, fromds_off, eaddr)
            gen_and(b2, b1)
            gen_or(b1, b0)
        b1 = self._fc_bit(0, 0x08)
        gen_and(b1, b0)
        b2 = self._fc_bit(0, 0x08, negate=True)
        b1 = self.gen_bcmp(OR_LINKHDR, nondata_off, eaddr)
        gen_and(b2, b1)
        gen_or(b1, b0)
        b1 = self._fc_bit(0, 0x04, negate=True)
        gen_and(b1, b0)
        return b0

    def _not_cts_or_ack(self) -> Block:
        """Frames that have a second address: not control, or control other than CTS and ACK."""
        b0 = self.gen_mcmp(OR_LINKHDR, 0, I.B, TYPE_CTL, FC0_TYPE_MASK)
        gen_not(b0)
        b1 = self.gen_mcmp(OR_LINKHDR, 0, I.B, SUBTYPE_CTS, FC0_SUBTYPE_MASK)
        gen_not(b1)
        b2 = self.gen_mcmp(OR_LINKHDR, 0, I.B, SUBTYPE_ACK, FC0_SUBTYPE_MASK)
        gen_not(b2)
        gen_and(b1, b2)
        gen_or(b0, b2)
        return b2

    def gen_wlanhostop(self, eaddr: bytes, d: int) -> Block:
        if d == Q_SRC:
            return self._wlan_dir_host(eaddr, 24, 16, 10, 10)
        if d == Q_DST:
            return self._wlan_dir_host(eaddr, 16, 4, None, 4)
        if d in (Q_AND, Q_OR, Q_DEFAULT):
            b0 = self.gen_wlanhostop(eaddr, Q_SRC)
            b1 = self.gen_wlanhostop(eaddr, Q_DST)
            (gen_and if d == Q_AND else gen_or)(b0, b1)
            return b1
        if d == Q_ADDR1:
            return self.gen_bcmp(OR_LINKHDR, 4, eaddr)
        if d == Q_ADDR2:
            b2 = self._not_cts_or_ack()
            b1 = self.gen_bcmp(OR_LINKHDR, 10, eaddr)
            gen_and(b2, b1)
            return b1
        if d == Q_ADDR3:
            b0 = self.gen_mcmp(OR_LINKHDR, 0, I.B, TYPE_CTL, FC0_TYPE_MASK)
            gen_not(b0)
            b1 = self.gen_bcmp(OR_LINKHDR, 16, eaddr)
            gen_and(b0, b1)
            return b1
        if d == Q_ADDR4:
            b0 = self.gen_mcmp(OR_LINKHDR, 1, I.B, 0x03, FC1_DIR_MASK)
            b1 = self.gen_bcmp(OR_LINKHDR, 24, eaddr)
            gen_and(b0, b1)
            return b1
        if d == Q_RA:
            b1 = self._fc_bit(0, 0x08)
            b0 = self.gen_bcmp(OR_LINKHDR, 4, eaddr)
            gen_and(b1, b0)
            return b0
        assert d == Q_TA
        b2 = self._not_cts_or_ack()
        b1 = self._fc_bit(0, 0x08)
        gen_and(b1, b2)
        b1 = self.gen_bcmp(OR_LINKHDR, 10, eaddr)
        gen_and(b2, b1)
        return b1

    def gen_wlan_multicast(self) -> Block:
        """The group bit of the destination address, wherever the DS bits put it."""
        b1 = self._fc_bit(1, 0x01)
        b0 = self.gen_jset(OR_LINKHDR, 16, I.B, 1)
        gen_and(b1, b0)
        b2 = self._fc_bit(1, 0x01, negate=True)
        b1 = self.gen_jset(OR_LINKHDR, 4, I.B, 1)
        gen_and(b2, b1)
        gen_or(b1, b0)
        b1 = self._fc_bit(0, 0x08)
        gen_and(b1, b0)
        b2 = self._fc_bit(0, 0x08, negate=True)
        b1 = self.gen_jset(OR_LINKHDR, 4, I.B, 1)
        gen_and(b2, b1)
        gen_or(b1, b0)
        b1 = self._fc_bit(0, 0x04, negate=True)
        gen_and(b1, b0)
        return b0

    def gen_check_802_11_data_frame(self) -> Block:
        b0 = self._fc_bit(0, 0x08)
        b1 = self._fc_bit(0, 0x04, negate=True)
        gen_and(b1, b0)
        return b0

    # -- type / subtype / direction ---------------------------------------------------
    def gen_p80211_type(self, value: int, mask: int) -> Block:
        if self.linktype not in (DLT_IEEE802_11, *RADIO_DLTS):
            bpf_error("802.11 link-layer types supported only on 802.11")
        return self.gen_mcmp(OR_LINKHDR, 0, I.B, value, mask)

    def gen_p80211_fcdir(self, fcdir: int) -> Block:
        if self.linktype not in (DLT_IEEE802_11, *RADIO_DLTS):
            bpf_error("frame direction supported only with 802.11 headers")
        return self.gen_mcmp(OR_LINKHDR, 1, I.B, fcdir, FC1_DIR_MASK)

    def gen_wlan_type(self, type_tok, subtype_tok) -> Block:
        """`type T [subtype S]`: names are resolved here, in the order libpcap's grammar does."""
        kind, value = type_tok
        if kind == "num":
            if value & ~FC0_TYPE_MASK:
                bpf_error(f"invalid 802.11 type value 0x{value:02x}")
            ftype = value
        else:
            ftype = lookup(value, TYPE_NAMES)
            if ftype is None:
                bpf_error(f'unknown 802.11 type name "{value}"')
        if subtype_tok is None:
            return self.gen_p80211_type(ftype, FC0_TYPE_MASK)
        kind, value = subtype_tok
        if kind == "num":
            if value & ~FC0_SUBTYPE_MASK:
                bpf_error(f"invalid 802.11 subtype value 0x{value:02x}")
            subtype = value
        else:
            if ftype not in SUBTYPE_NAMES:
                bpf_error("unknown 802.11 type")
            subtype = lookup(value, SUBTYPE_NAMES[ftype])
            if subtype is None:
                bpf_error(f'unknown 802.11 subtype name "{value}"')
        return self.gen_p80211_type(ftype | subtype, FC0_TYPE_MASK | FC0_SUBTYPE_MASK)

    def gen_wlan_subtype(self, name: str) -> Block:
        """`subtype S` alone: the first frame type that has a subtype of that name."""
        for ftype in (TYPE_MGT, TYPE_CTL, TYPE_DATA):
            subtype = lookup(name, SUBTYPE_NAMES[ftype])
            if subtype is not None:
                return self.gen_p80211_type(subtype | ftype, FC0_TYPE_MASK | FC0_SUBTYPE_MASK)
        bpf_error("unknown 802.11 type name")

    def gen_wlan_dir(self, tok) -> Block:
        kind, value = tok
        if kind == "name":
            value = DIRECTIONS.get(value.lower())
            if value is None:
                bpf_error("unknown 802.11 direction")
        return self.gen_p80211_fcdir(value)

    # -- run-time header lengths (the prologue) ------------------------------------
    def _store_and_tax(self, s: Stmt, reg: int) -> Stmt:
        sappend(s, Stmt(I.ST, reg))
        sappend(s, Stmt(I.MISC | I.TAX))
        return s

    def gen_load_prism_llprefixlen(self) -> Stmt | None:
        """Prism header (144 bytes) or, when the cookie says so, an AVS header of its stated length."""
        self.no_optimize = True  # block-local jumps inside a statement list
        if self.off_linkhdr.reg == -1:
            return None
        s1 = Stmt(I.LD | I.W | I.ABS, 0)
        sappend(s1, Stmt(I.ALU | I.AND | I.K, 0xFFFFF000))
        is_avs = Stmt(JMP(I.JEQ), 0x80211000)
        sappend(s1, is_avs)
        avs_len = Stmt(I.LD | I.W | I.ABS, 4)
        sappend(s1, avs_len)
        is_avs.jt = avs_len
        skip = Stmt(JMP(I.JA), 1)
        sappend(s1, skip)
        prism_len = Stmt(I.LD | I.W | I.IMM, 144)
        sappend(s1, prism_len)
        is_avs.jf = prism_len
        store = Stmt(I.ST, self.off_linkhdr.reg)
        sappend(s1, store)
        skip.jf = store
        sappend(s1, Stmt(I.MISC | I.TAX))
        return s1

    def gen_load_avs_llprefixlen(self) -> Stmt | None:
        if self.off_linkhdr.reg == -1:
            return None
        return self._store_and_tax(Stmt(I.LD | I.W | I.ABS, 4), self.off_linkhdr.reg)

    def gen_load_radiotap_llprefixlen(self) -> Stmt | None:
        """radiotap's it_len (and PPI's pph_len): little-endian 16 bits at offset 2."""
        if self.off_linkhdr.reg == -1:
            return None
        s1 = Stmt(I.LD | I.B | I.ABS, 3)
        sappend(s1, Stmt(I.ALU | I.LSH | I.K, 8))
        sappend(s1, Stmt(I.MISC | I.TAX))
        sappend(s1, Stmt(I.LD | I.B | I.ABS, 2))
        sappend(s1, Stmt(I.ALU | I.OR | I.X))
        return self._store_and_tax(s1, self.off_linkhdr.reg)

    def gen_load_802_11_header_len(self, s: Stmt | None, snext: Stmt | None) -> Stmt | None:
        """Payload offset = prefix + 24, + 2 for QoS data, rounded to 4 when radiotap says 'datapad'."""
        if self.off_linkpl.reg == -1:
            return s
        self.no_optimize = True  # block-local jumps inside a statement list
        reg = self.off_linkpl.reg
        if s is None:
            s = Stmt(I.LDX | I.IMM, self.off_outermostlinkhdr.constant_part)
        sappend(s, Stmt(I.MISC | I.TXA))
        sappend(s, Stmt(I.ALU | I.ADD | I.K, 24))
        sappend(s, Stmt(I.ST, reg))
        sappend(s, Stmt(I.LD | I.IND | I.B, 0))
        data_frame_1 = Stmt(JMP(I.JSET), 0x08)
        sappend(s, data_frame_1)
        data_frame_2 = Stmt(JMP(I.JSET), 0x04)
        data_frame_1.jt = data_frame_2
        sappend(s, data_frame_2)
        data_frame_1.jf = snext
        qos = Stmt(JMP(I.JSET), 0x80)
        data_frame_2.jt = snext
        data_frame_2.jf = qos
        sappend(s, qos)
        s2 = Stmt(I.LD | I.MEM, reg)
        qos.jt = s2
        sappend(s, s2)
        sappend(s, Stmt(I.ALU | I.ADD | I.IMM, 2))
        sappend(s, Stmt(I.ST, reg))
        if self.linktype != DLT_IEEE802_11_RADIO:
            qos.jf = snext
            return s
        s2 = Stmt(I.LD | I.ABS | I.W, 4)
        qos.jf = s2
        sappend(s, s2)
        flags_present = Stmt(JMP(I.JSET), swap32(0x00000002))
        sappend(s, flags_present)
        flags_present.jf = snext
        ext_present = Stmt(JMP(I.JSET), swap32(0x80000000))
        sappend(s, ext_present)
        flags_present.jt = ext_present
        ext_present.jt = snext
        tsft_present = Stmt(JMP(I.JSET), swap32(0x00000001))
        sappend(s, tsft_present)
        ext_present.jf = tsft_present
        s2 = Stmt(I.LD | I.ABS | I.B, 16)
        sappend(s, s2)
        tsft_present.jt = s2
        tsft_datapad = Stmt(JMP(I.JSET), 0x20)
        sappend(s, tsft_datapad)
        s2 = Stmt(I.LD | I.ABS | I.B, 8)
        sappend(s, s2)
        tsft_present.jf = s2
        notsft_datapad = Stmt(JMP(I.JSET), 0x20)
        sappend(s, notsft_datapad)
        roundup = Stmt(I.LD | I.MEM, reg)
        sappend(s, roundup)
        sappend(s, Stmt(I.ALU | I.ADD | I.IMM, 3))
        sappend(s, Stmt(I.ALU | I.AND | I.IMM, ~3))
        sappend(s, Stmt(I.ST, reg))
        tsft_datapad.jt = roundup
        tsft_datapad.jf = snext
        notsft_datapad.jt = roundup
        notsft_datapad.jf = snext
        return s

    def gen_ppi_dlt_check(self) -> Block | None:
        """PPI captures are compiled for an 802.11 payload: check the per-packet DLT field."""
        if self.linktype != DLT_PPI:
            return None
        b = Block(JMP(I.JEQ), swap32(DLT_IEEE802_11))
        b.stmts = Stmt(I.LD | I.W | I.ABS, 4)
        return b
