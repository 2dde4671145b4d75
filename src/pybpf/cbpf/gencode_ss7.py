"""SS7 in filters: MTP2 signal unit types and the MTP3 routing label (sio, opc, dpc, sls).

The `h` variants (hfisu, hsio, ...) are for high-speed links (Q.703 Annex A),
whose MTP2 header is 3 bytes longer.  Point codes are spread over the routing
label's bytes in little-endian bit order, hence the shuffling of values.
"""

from __future__ import annotations

from . import insn as I
from .blocks import Block, gen_and
from .gencode_base import DLT, OFFSET_NOT_SET, OR_PACKET, CodeGenBase, bpf_error

_MTP2_DLTS = (DLT["MTP2"], DLT["ERF"], DLT["MTP2_WITH_PHDR"])


class Ss7CodeGen(CodeGenBase):
    off_li = off_li_hsl = off_sio = off_opc = off_dpc = off_sls = OFFSET_NOT_SET

    def gen_mtp2type_abbrev(self, kind: str) -> Block:
        """fisu, lssu, msu (by length indicator) and hfisu, hlssu, hmsu."""
        if self.linktype not in _MTP2_DLTS:
            suffix = "MTP2_HSL" if kind.startswith("H") else "MTP2"
            bpf_error(f"'{kind.lower()}' supported only on {suffix}")
        if kind.startswith("H"):
            off, size, mask, limit = self.off_li_hsl, I.H, 0xFF80, 0x0100
        else:
            off, size, mask, limit = self.off_li, I.B, 0x3F, 2
        if kind in ("FISU", "HFISU"):
            return self.gen_ncmp(OR_PACKET, off, size, mask, I.JEQ, False, 0)
        if kind in ("LSSU", "HLSSU"):
            b0 = self.gen_ncmp(OR_PACKET, off, size, mask, I.JGT, True, limit)
            b1 = self.gen_ncmp(OR_PACKET, off, size, mask, I.JGT, False, 0)
            gen_and(b1, b0)
            return b0
        return self.gen_ncmp(OR_PACKET, off, size, mask, I.JGT, False, limit)

    def gen_mtp3field_code(self, field: str, value: int, jtype: int, reverse: bool) -> Block:
        """sio/opc/dpc/sls (and hsio/hopc/hdpc/hsls) compared with a value."""
        high_speed = field.startswith("H")
        name = field[1:] if high_speed else field
        extra = 3 if high_speed else 0
        if name == "SIO":
            if self.off_sio == OFFSET_NOT_SET:
                bpf_error("'sio' supported only on SS7")
            if value > 255:
                bpf_error(f"sio value {value} too big; max value = 255")
            return self.gen_ncmp(OR_PACKET, self.off_sio + extra, I.B, 0xFFFFFFFF, jtype, reverse, value)
        if name == "OPC":
            if self.off_opc == OFFSET_NOT_SET:
                bpf_error("'opc' supported only on SS7")
            if value > 16383:
                bpf_error(f"opc value {value} too big; max value = 16383")
            value = ((value & 0x3C00) >> 10) + ((value & 0x03FC) << 6) + ((value & 0x0003) << 22)
            return self.gen_ncmp(OR_PACKET, self.off_opc + extra, I.W, 0x00C0FF0F, jtype, reverse, value)
        if name == "DPC":
            if self.off_dpc == OFFSET_NOT_SET:
                bpf_error("'dpc' supported only on SS7")
            if value > 16383:
                bpf_error(f"dpc value {value} too big; max value = 16383")
            value = ((value & 0x00FF) << 24) + ((value & 0x3F00) << 8)
            return self.gen_ncmp(OR_PACKET, self.off_dpc + extra, I.W, 0xFF3F0000, jtype, reverse, value)
        if self.off_sls == OFFSET_NOT_SET:
            bpf_error("'sls' supported only on SS7")
        if value > 15:
            bpf_error(f"sls value {value} too big; max value = 15")
        return self.gen_ncmp(OR_PACKET, self.off_sls + extra, I.B, 0xF0, jtype, reverse, value << 4)
