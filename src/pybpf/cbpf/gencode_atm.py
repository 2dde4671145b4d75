"""Raw ATM (SunATM pseudo-header) in filters: VPI/VCI, well-known circuits, LANE, signalling.

The SunATM pseudo-header holds direction, VPI, VCI and the AAL protocol type
in front of the AAL PDU; `lane` switches the rest of the expression to the
Ethernet frame inside LANE, and `connectmsg`/`metaconnect` look at the Q.2931
message type of signalling PDUs.
"""

from __future__ import annotations

from . import insn as I
from .blocks import Block, gen_and, gen_or
from .gencode_base import DLT, OFFSET_NOT_SET, OR_LINKHDR, CodeGenBase, bpf_error

A_VPI, A_VCI, A_PROTOTYPE, A_MSGTYPE = "vpi", "vci", "prototype", "msgtype"
PT_LANE, PT_LLC = 0x01, 0x02
MSG_TYPE_POS = 5
# Q.2931 message types: setup, call proceeding, connect, connect ack, release, release done
SETUP, CALL_PROCEED, CONNECT, CONNECT_ACK, RELEASE, RELEASE_DONE = 0x05, 0x02, 0x07, 0x0F, 0x4D, 0x5A
# (VPI 0, VCI n) circuits named by keywords, and the name libpcap's error message uses for each
_CIRCUITS = {"METAC": (1, "metac"), "BCC": (2, "bcc"), "OAMF4SC": (3, "oam4sc"), "OAMF4EC": (4, "oam4ec"),
             "SC": (5, "sc"), "ILMIC": (16, "ilmic")}


class AtmCodeGen(CodeGenBase):
    is_atm = False
    off_vpi = off_vci = off_proto = off_payload = OFFSET_NOT_SET

    def gen_atmfield_code(self, field: str, value: int, jtype: int, reverse: bool) -> Block:
        if field == A_VPI:
            if not self.is_atm:
                bpf_error("'vpi' supported only on raw ATM")
            return self.gen_ncmp(OR_LINKHDR, self.off_vpi, I.B, 0xFFFFFFFF, jtype, reverse, value)
        if field == A_VCI:
            if not self.is_atm:
                bpf_error("'vci' supported only on raw ATM")
            return self.gen_ncmp(OR_LINKHDR, self.off_vci, I.H, 0xFFFFFFFF, jtype, reverse, value)
        if field == A_PROTOTYPE:
            return self.gen_ncmp(OR_LINKHDR, self.off_proto, I.B, 0x0F, jtype, reverse, value)
        assert field == A_MSGTYPE
        return self.gen_ncmp(OR_LINKHDR, self.off_payload + MSG_TYPE_POS, I.B, 0xFFFFFFFF, jtype, reverse, value)

    def _vpi0_vci(self, vci: int) -> Block:
        b0 = self.gen_atmfield_code(A_VPI, 0, I.JEQ, False)
        b1 = self.gen_atmfield_code(A_VCI, vci, I.JEQ, False)
        gen_and(b0, b1)
        return b1

    def gen_atmtype_llc(self) -> Block:
        b0 = self.gen_atmfield_code(A_PROTOTYPE, PT_LLC, I.JEQ, False)
        self.linktype = self.prevlinktype
        return b0

    def gen_atmtype_abbrev(self, kind: str) -> Block:
        """lane, metac, bcc, oamf4ec, oamf4sc, sc, ilmic."""
        if kind == "LANE":
            if not self.is_atm:
                bpf_error("'lane' supported only on raw ATM")
            b1 = self.gen_atmfield_code(A_PROTOTYPE, PT_LANE, I.JEQ, False)
            # the LANE payload is an Ethernet frame after a 2-byte LE header
            self.push_linkhdr(DLT["EN10MB"], False, self.off_payload + 2, -1)
            self.off_linktype.constant_part = self.off_linkhdr.constant_part + 12
            self.off_linkpl.constant_part = self.off_linkhdr.constant_part + 14
            self.off_nl = 0
            self.off_nl_nosnap = 3
            return b1
        vci, name = _CIRCUITS[kind]
        if not self.is_atm:
            bpf_error(f"'{name}' supported only on raw ATM")
        return self._vpi0_vci(vci)

    def _msg_types(self, types: tuple[int, ...]) -> Block:
        """Any of the message types; like libpcap, each later test is placed in front of the others."""
        b0 = self.gen_atmfield_code(A_MSGTYPE, types[0], I.JEQ, False)
        b1 = self.gen_atmfield_code(A_MSGTYPE, types[1], I.JEQ, False)
        gen_or(b0, b1)
        for t in types[2:]:
            b0 = self.gen_atmfield_code(A_MSGTYPE, t, I.JEQ, False)
            gen_or(b0, b1)
        return b1

    def gen_atmmulti_abbrev(self, kind: str) -> Block:
        """oam, oamf4 (F4 OAM cells), connectmsg, metaconnect (signalling messages)."""
        if not self.is_atm:
            bpf_error(f"'{kind.lower()}' supported only on raw ATM")
        if kind in ("OAM", "OAMF4"):
            b0 = self.gen_atmfield_code(A_VCI, 3, I.JEQ, False)
            b1 = self.gen_atmfield_code(A_VCI, 4, I.JEQ, False)
            gen_or(b0, b1)
            b0 = self.gen_atmfield_code(A_VPI, 0, I.JEQ, False)
            gen_and(b0, b1)
            return b1
        if kind == "CONNECTMSG":
            b1 = self._msg_types((SETUP, CALL_PROCEED, CONNECT, CONNECT_ACK, RELEASE, RELEASE_DONE))
            b0 = self._vpi0_vci(5)
        else:
            b1 = self._msg_types((SETUP, CALL_PROCEED, CONNECT, RELEASE, RELEASE_DONE))
            b0 = self._vpi0_vci(1)
        gen_and(b0, b1)
        return b1
