"""Code generation for pcap filter expressions: the parse tree becomes a block DAG.

The generator follows libpcap's (gencode.c in libpcap 1.10) structure and
order of construction, because the optimizer's result and the unoptimized
listing both depend on exactly which blocks exist and how they are chained;
doing it the same way is what makes `pybpf filter -d` print what `tcpdump -d`
prints.  Link-layer specifics live in the base classes: 802.11 and radio
headers (gencode_wlan), raw ATM (gencode_atm), SS7 (gencode_ss7), pflog
(gencode_pflog); this module has the link-type table, the protocol, host,
port and arithmetic primitives and the walk over the parse tree.
"""

from __future__ import annotations

import ipaddress

from . import insn as I
from . import linktypes, names
from .blocks import JMP, M32, Block, Stmt, backpatch, gen_and, gen_not, gen_or, sappend
from .gencode_atm import A_PROTOTYPE, PT_LLC, AtmCodeGen
from .gencode_base import (
    DLT, DLT_HDLC, OFFSET_NOT_SET, AbsOffset, OR_LINKHDR,
    OR_LINKPL, OR_LINKPL_NOSNAP, OR_LINKTYPE, OR_LLC, OR_PREVLINKHDR, OR_PREVMPLSHDR, OR_TRAN_IPV4,
    OR_TRAN_IPV6, PCAP_NETMASK_UNKNOWN, FilterError, bpf_error, swap32,
)
from .gencode_pflog import DLT_PFLOG, PflogCodeGen
from .gencode_ss7 import Ss7CodeGen
from .gencode_wlan import (
    DLT_IEEE802_11, DLT_IEEE802_11_RADIO, DLT_IEEE802_11_RADIO_AVS, DLT_PPI, DLT_PRISM_HEADER, RADIO_DLTS,
    WLAN_DLTS, WlanCodeGen,
)
from .parser import (
    Q_AARP, Q_ADDR1, Q_ADDR2, Q_ADDR3, Q_ADDR4, Q_AH, Q_AND, Q_ARP, Q_ATALK, Q_CARP, Q_CLNP, Q_DECNET,
    Q_DEFAULT, Q_DST, Q_ESIS, Q_ESP, Q_GATEWAY, Q_HOST, Q_ICMP, Q_ICMPV6, Q_IGMP, Q_IGRP, Q_IP, Q_IPV6, Q_IPX,
    Q_ISIS, Q_ISIS_CSNP, Q_ISIS_IIH, Q_ISIS_L1, Q_ISIS_L2, Q_ISIS_LSP, Q_ISIS_PSNP, Q_ISIS_SNP, Q_ISO, Q_LAT,
    Q_LINK, Q_MOPDL, Q_MOPRC, Q_NET, Q_NETBEUI, Q_OR, Q_PIM, Q_PORT, Q_PORTRANGE, Q_PROTO, Q_PROTOCHAIN,
    Q_RA, Q_RADIO, Q_RARP, Q_SCA, Q_SCTP, Q_SRC, Q_STP, Q_TA, Q_TCP, Q_UDP, Q_VRRP,
)

__all__ = ["CodeGen", "FilterError", "PCAP_NETMASK_UNKNOWN"]

DLT_EN10MB, DLT_NULL, DLT_LOOP, DLT_ENC, DLT_RAW = DLT["EN10MB"], DLT["NULL"], DLT["LOOP"], DLT["ENC"], DLT["RAW"]
DLT_IPV4, DLT_IPV6, DLT_SLL, DLT_SLL2 = DLT["IPV4"], DLT["IPV6"], DLT["LINUX_SLL"], DLT["LINUX_SLL2"]
DLT_PPP, DLT_PPP_SERIAL, DLT_C_HDLC, DLT_SLIP = DLT["PPP"], DLT["PPP_SERIAL"], DLT["C_HDLC"], DLT["SLIP"]
DLT_PPP_PPPD, DLT_PPP_ETHER, DLT_PPP_BSDOS, DLT_SLIP_BSDOS = (
    DLT["PPP_PPPD"], DLT["PPP_ETHER"], DLT["PPP_BSDOS"], DLT["SLIP_BSDOS"])
DLT_FDDI, DLT_IEEE802, DLT_ARCNET, DLT_ARCNET_LINUX = DLT["FDDI"], DLT["IEEE802"], DLT["ARCNET"], DLT["ARCNET_LINUX"]
DLT_ATM_RFC1483, DLT_ATM_CLIP, DLT_SUNATM, DLT_IP_OVER_FC = (
    DLT["ATM_RFC1483"], DLT["ATM_CLIP"], DLT["SUNATM"], DLT["IP_OVER_FC"])
DLT_LTALK, DLT_FRELAY, DLT_MFR, DLT_IPNET = DLT["LTALK"], DLT["FRELAY"], DLT["MFR"], DLT["IPNET"]
DLT_NETANALYZER, DLT_NETANALYZER_TRANSPARENT = DLT["NETANALYZER"], DLT["NETANALYZER_TRANSPARENT"]
DLT_MTP2, DLT_MTP2_WITH_PHDR, DLT_ERF = DLT["MTP2"], DLT["MTP2_WITH_PHDR"], DLT["ERF"]
DLT_BACNET_MS_TP, DLT_PFSYNC = DLT["BACNET_MS_TP"], DLT["PFSYNC"]
JUNIPER_DLTS = tuple(DLT[n] for n in (
    "JUNIPER_MFR", "JUNIPER_MLFR", "JUNIPER_MLPPP", "JUNIPER_ATM1", "JUNIPER_ATM2", "JUNIPER_PPPOE",
    "JUNIPER_PPPOE_ATM", "JUNIPER_GGSN", "JUNIPER_ES", "JUNIPER_MONITOR", "JUNIPER_SERVICES", "JUNIPER_ETHER",
    "JUNIPER_PPP", "JUNIPER_FRELAY", "JUNIPER_CHDLC", "JUNIPER_VP", "JUNIPER_ST", "JUNIPER_ISM", "JUNIPER_VS",
    "JUNIPER_SRX_E2E", "JUNIPER_FIBRECHANNEL", "JUNIPER_ATM_CEMIC"))
# Ethernet and Ethernet behind a fixed pseudo-header
ETHER_DLTS = (DLT_EN10MB, DLT_NETANALYZER, DLT_NETANALYZER_TRANSPARENT)
N = OFFSET_NOT_SET  # short for the table below

# DLT -> (off_linktype, off_linkpl, off_nl, off_nl_nosnap), libpcap's init_linktype table.
_LINK_OFFSETS: dict[int, tuple[int, int, int, int]] = {
    DLT_ARCNET: (2, 6, 0, 0), DLT_ARCNET_LINUX: (4, 8, 0, 0),
    DLT_EN10MB: (12, 14, 0, 3), DLT_SLIP: (N, 16, 0, 0), DLT_SLIP_BSDOS: (N, 24, 0, 0),
    DLT_NULL: (0, 4, 0, 0), DLT_LOOP: (0, 4, 0, 0), DLT_ENC: (0, 12, 0, 0),
    DLT_PPP: (2, 4, 0, 0), DLT_PPP_PPPD: (2, 4, 0, 0), DLT_C_HDLC: (2, 4, 0, 0), DLT_HDLC: (2, 4, 0, 0),
    DLT_PPP_SERIAL: (2, 4, 0, 0), DLT_PPP_ETHER: (6, 8, 0, 0), DLT_PPP_BSDOS: (5, 24, 0, 0),
    DLT_FDDI: (13, 13, 8, 3), DLT_IEEE802: (14, 14, 8, 3),
    DLT_IEEE802_11: (24, 0, 8, 3), DLT_PRISM_HEADER: (24, 0, 8, 3), DLT_IEEE802_11_RADIO_AVS: (24, 0, 8, 3),
    DLT_IEEE802_11_RADIO: (24, 0, 8, 3), DLT_PPI: (24, 0, 8, 3),
    DLT_ATM_RFC1483: (0, 0, 8, 3), DLT_ATM_CLIP: (0, 0, 8, 3), DLT_SUNATM: (4, 4, 8, 3),
    DLT_RAW: (N, 0, 0, 0), DLT_IPV4: (N, 0, 0, 0), DLT_IPV6: (N, 0, 0, 0),
    DLT_SLL: (14, 16, 0, 0), DLT_SLL2: (0, 20, 0, 0), DLT_LTALK: (N, 0, 0, 0), DLT_IP_OVER_FC: (16, 16, 8, 3),
    DLT_FRELAY: (N, 0, 0, 0), DLT_MFR: (N, 0, 4, 0), DLT["APPLE_IP_OVER_IEEE1394"]: (16, 18, 0, 0),
    DLT["SYMANTEC_FIREWALL"]: (6, 44, 0, 0), DLT_PFLOG: (0, 0, 0, 0),
    DLT["JUNIPER_ATM1"]: (4, 4, 0, 10), DLT["JUNIPER_ATM2"]: (8, 8, 0, 10),
    DLT["JUNIPER_PPPOE"]: (16, 14, 18, 21), DLT["JUNIPER_ETHER"]: (16, 14, 18, 21),
    DLT["JUNIPER_PPPOE_ATM"]: (4, 6, 0, N), DLT["JUNIPER_GGSN"]: (6, 12, 0, N), DLT["JUNIPER_ES"]: (6, N, N, N),
    DLT["JUNIPER_MONITOR"]: (12, 12, 0, N), DLT_BACNET_MS_TP: (N, N, N, N), DLT["JUNIPER_SERVICES"]: (12, N, N, N),
    DLT["JUNIPER_VP"]: (18, N, N, N), DLT["JUNIPER_ST"]: (18, N, N, N), DLT["JUNIPER_ISM"]: (8, N, N, N),
    DLT["JUNIPER_VS"]: (8, N, N, N), DLT["JUNIPER_SRX_E2E"]: (8, N, N, N),
    DLT["JUNIPER_FIBRECHANNEL"]: (8, N, N, N), DLT["JUNIPER_ATM_CEMIC"]: (8, N, N, N),
    DLT_MTP2: (N, N, N, N), DLT_MTP2_WITH_PHDR: (N, N, N, N), DLT_ERF: (N, N, N, N),
    DLT_PFSYNC: (N, 4, 0, 0), DLT["AX25_KISS"]: (N, N, N, N), DLT_IPNET: (1, 24, 0, N),
    DLT_NETANALYZER: (16, 18, 0, 3), DLT_NETANALYZER_TRANSPARENT: (24, 26, 0, 3),
}
for _dlt in ("JUNIPER_MFR", "JUNIPER_MLFR", "JUNIPER_MLPPP", "JUNIPER_PPP", "JUNIPER_CHDLC", "JUNIPER_FRELAY"):
    _LINK_OFFSETS[DLT[_dlt]] = (4, 4, 0, N)
# SS7 over MTP2: offsets of the length indicator (normal, high-speed), SIO, OPC, DPC, SLS
_SS7_OFFSETS = {DLT_MTP2: (2, 4, 3, 4, 4, 7), DLT_MTP2_WITH_PHDR: (6, 8, 7, 8, 8, 11), DLT_ERF: (22, 24, 23, 24, 24, 27)}
# where the link-layer header itself starts, past a fixed pseudo-header
_LINKHDR_OFFSETS = {DLT_NETANALYZER: 4, DLT_NETANALYZER_TRANSPARENT: 12}
# link types whose filtering is refused outright, with libpcap's name for them
_NO_LINKTYPE_FILTERING = {
    DLT_MFR: "Multi-link Frame Relay", DLT["LINUX_IRDA"]: "IrDA", DLT["DOCSIS"]: "DOCSIS", DLT_MTP2: "MTP2",
    DLT_MTP2_WITH_PHDR: "MTP2", DLT_ERF: "ERF", DLT_PFSYNC: "PFSYNC", DLT["LINUX_LAPD"]: "LAPD",
    DLT["USB_FREEBSD"]: "USB", DLT["USB_LINUX"]: "USB", DLT["USB_LINUX_MMAPPED"]: "USB", DLT["USBPCAP"]: "USB",
    DLT["BLUETOOTH_HCI_H4"]: "Bluetooth", DLT["BLUETOOTH_HCI_H4_WITH_PHDR"]: "Bluetooth",
    DLT["CAN20B"]: "CAN", DLT["CAN_SOCKETCAN"]: "CAN", DLT["IEEE802_15_4"]: "IEEE 802.15.4",
    DLT["IEEE802_15_4_LINUX"]: "IEEE 802.15.4", DLT["IEEE802_15_4_NONASK_PHY"]: "IEEE 802.15.4",
    DLT["IEEE802_15_4_NOFCS"]: "IEEE 802.15.4", DLT["IEEE802_15_4_TAP"]: "IEEE 802.15.4",
    DLT["IEEE802_16_MAC_CPS_RADIO"]: "IEEE 802.16", DLT["SITA"]: "SITA", DLT["RAIF1"]: "RAIF1",
    DLT["IPMB_KONTRON"]: "IPMB", DLT["IPMB_LINUX"]: "IPMB", DLT["AX25_KISS"]: "AX.25", DLT["NFLOG"]: "NFLOG",
}

ETHERMTU = 1500
ETHERTYPE_IP, ETHERTYPE_ARP, ETHERTYPE_REVARP, ETHERTYPE_IPV6 = 0x0800, 0x0806, 0x8035, 0x86DD
ETHERTYPE_ATALK, ETHERTYPE_AARP, ETHERTYPE_DN, ETHERTYPE_SCA, ETHERTYPE_LAT = 0x809B, 0x80F3, 0x6003, 0x6007, 0x6004
ETHERTYPE_MOPDL, ETHERTYPE_MOPRC, ETHERTYPE_IPX, ETHERTYPE_NS = 0x6001, 0x6002, 0x8137, 0x0600
ETHERTYPE_8021Q, ETHERTYPE_8021AD, ETHERTYPE_8021QINQ = 0x8100, 0x88A8, 0x9100
ETHERTYPE_MPLS, ETHERTYPE_PPPOED, ETHERTYPE_PPPOES, ETHERTYPE_TEB = 0x8847, 0x8863, 0x8864, 0x6558
LLCSAP_IP, LLCSAP_ISONS, LLCSAP_NETBEUI, LLCSAP_IPX, LLCSAP_8021D, LLCSAP_SNAP = 0x06, 0xFE, 0xF0, 0xE0, 0x42, 0xAA
LINUX_SLL_P_802_3, LINUX_SLL_P_802_2, LINUX_SLL_OUTGOING = 0x0001, 0x0004, 4
PPP_IP, PPP_IPV6, PPP_DECNET, PPP_APPLE, PPP_NS, PPP_OSI, PPP_BRPDU, PPP_IPX = (
    0x0021, 0x0057, 0x0027, 0x0029, 0x0025, 0x0023, 0x0031, 0x002B)
PPP_VJC, PPP_VJNC, PPP_MPLS_UCAST = 0x002D, 0x002F, 0x0281
ARCTYPE_IP_OLD, ARCTYPE_ARP_OLD, ARCTYPE_IP, ARCTYPE_ARP, ARCTYPE_REVARP, ARCTYPE_ATALK, ARCTYPE_INET6 = (
    240, 241, 212, 213, 214, 221, 0xC4)
IPH_AF_INET, IPH_AF_INET6, IPNET_OUTBOUND, IPNET_INBOUND = 2, 26, 1, 2
ISO8473_CLNP, ISO9542_ESIS, ISO10589_ISIS = 0x81, 0x82, 0x83
ISIS_L1_LAN_IIH, ISIS_L2_LAN_IIH, ISIS_PTP_IIH = 15, 16, 17
ISIS_L1_LSP, ISIS_L2_LSP, ISIS_L1_CSNP, ISIS_L2_CSNP, ISIS_L1_PSNP, ISIS_L2_PSNP = 18, 20, 24, 25, 26, 27
IPPROTO_ICMP, IPPROTO_IGMP, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_SCTP = 1, 2, 6, 17, 132
IPPROTO_IGRP, IPPROTO_PIM, IPPROTO_VRRP, IPPROTO_ICMPV6, IPPROTO_AH, IPPROTO_ESP = 9, 103, 112, 58, 51, 50
IPPROTO_HOPOPTS, IPPROTO_ROUTING, IPPROTO_FRAGMENT, IPPROTO_NONE, IPPROTO_DSTOPTS = 0, 43, 44, 59, 60
PROTO_UNDEF = -1
AF_INET, AF_INET6 = 2, 10
GENEVE_PORT = 6081
SKF_AD_OFF = -0x1000 & M32
SKF_AD_PKTTYPE, SKF_AD_IFINDEX = 4, 8
PACKET_OUTGOING = 4
PPP_PPPD_IN, PPP_PPPD_OUT = 0x00, 0x01
LLC_S_FMT, LLC_U_FMT, LLC_S_CMD_MASK, LLC_U_CMD_MASK = 1, 3, 0x0F, 0xEF
LLC_S_SUBTYPES = {"rr": 0x01, "rnr": 0x05, "rej": 0x09}
LLC_U_SUBTYPES = {"ui": 0x03, "ua": 0x63, "disc": 0x43, "dm": 0x0F, "sabme": 0x6F, "test": 0xE3, "xid": 0xAF,
                  "frmr": 0x87}

_QUAL_NAMES = {
    Q_SCTP: "sctp", Q_TCP: "tcp", Q_UDP: "udp", Q_ICMP: "icmp", Q_IGMP: "igmp", Q_IGRP: "igrp", Q_ICMPV6: "icmp6",
    Q_AH: "ah", Q_ESP: "esp", Q_PIM: "pim", Q_VRRP: "vrrp", Q_ESIS: "esis", Q_ISIS: "isis", Q_CLNP: "clnp",
    Q_STP: "stp", Q_NETBEUI: "netbeui", Q_ISIS_L1: "l1", Q_ISIS_L2: "l2", Q_ISIS_IIH: "iih", Q_ISIS_SNP: "snp",
    Q_ISIS_CSNP: "csnp", Q_ISIS_PSNP: "psnp", Q_ISIS_LSP: "lsp", Q_RADIO: "radio", Q_CARP: "carp",
    Q_IP: "ip", Q_RARP: "rarp", Q_ARP: "arp", Q_DECNET: "decnet", Q_LAT: "lat", Q_SCA: "sca", Q_MOPRC: "moprc",
    Q_MOPDL: "mopdl", Q_AARP: "aarp", Q_ISO: "iso", Q_IPX: "ipx", Q_ATALK: "AppleTalk", Q_IPV6: "ip6",
}
_ADDR_QUAL_ERRORS = {
    Q_ADDR1: "'addr1' and 'address1' are", Q_ADDR2: "'addr2' and 'address2' are",
    Q_ADDR3: "'addr3' and 'address3' are", Q_ADDR4: "'addr4' and 'address4' are",
    Q_RA: "'ra' is", Q_TA: "'ta' is",
}
# what an IP or DECnet host test says when given one of the 802.11-only directions above
_NOT_MAC_ADDRESSES = "addresses other than 802.11 MAC addresses"
# MAC-address link types: (source offset, destination offset) of the addresses in the link header,
# and how libpcap names the link type in "unknown ... host" messages
_MAC_HOST_OFFSETS = {DLT_EN10MB: (6, 0), DLT_NETANALYZER: (6, 0), DLT_NETANALYZER_TRANSPARENT: (6, 0),
                     DLT_FDDI: (7, 1), DLT_IEEE802: (8, 2), DLT_IP_OVER_FC: (10, 2)}
_MAC_HOST_NAMES = {DLT_EN10MB: "ether", DLT_NETANALYZER: "ether", DLT_NETANALYZER_TRANSPARENT: "ether",
                   DLT_FDDI: "FDDI", DLT_IEEE802: "token ring", DLT_IP_OVER_FC: "Fibre Channel",
                   **{d: "802.11" for d in WLAN_DLTS}}
_MAC_LINKS = "ethernet/FDDI/token ring/802.11/ATM LANE/Fibre Channel"


class Arth:
    """An arithmetic value: statements leaving it in scratch register regno, plus protocol checks."""

    __slots__ = ("s", "regno", "b")

    def __init__(self, s: Stmt, regno: int):
        self.s = s
        self.regno = regno
        self.b: Block | None = None


class CodeGen(WlanCodeGen, AtmCodeGen, Ss7CodeGen, PflogCodeGen):
    def __init__(self, linktype: int, snaplen: int, netmask: int = PCAP_NETMASK_UNKNOWN):
        super().__init__(linktype, snaplen, netmask)
        self.init_linktype(linktype)

    # -- link layer ---------------------------------------------------------
    def init_linktype(self, linktype: int) -> None:
        """Where the link-layer type field, the payload and the network header are for this DLT."""
        offsets = _LINK_OFFSETS.get(linktype)
        if offsets is None:
            if not linktypes.MATCHING_MIN <= linktype <= linktypes.MATCHING_MAX:
                bpf_error(f"unknown data link type {linktype} (min {linktypes.MATCHING_MIN}, "
                          f"max {linktypes.MATCHING_MAX})")
            offsets = (N, N, N, N)  # only link[...] loads make sense
        self.off_linktype.constant_part, self.off_linkpl.constant_part, self.off_nl, self.off_nl_nosnap = offsets
        self.off_linkhdr.constant_part = _LINKHDR_OFFSETS.get(linktype, 0)
        if linktype in RADIO_DLTS or linktype == DLT_PPI:
            self.off_linkhdr.is_variable = True
        if linktype in WLAN_DLTS or linktype == DLT_PFLOG:
            self.off_linkpl.is_variable = True
        if linktype == DLT_SUNATM:
            self.is_atm = True
            self.off_vpi, self.off_vci, self.off_proto, self.off_payload = 1, 2, 0, 4
        if linktype in _SS7_OFFSETS:
            (self.off_li, self.off_li_hsl, self.off_sio, self.off_opc, self.off_dpc,
             self.off_sls) = _SS7_OFFSETS[linktype]
        self.off_outermostlinkhdr = self.off_linkhdr.copy()
        self.off_prevlinkhdr = self.off_linkhdr.copy()

    # -- link-layer protocol tests -----------------------------------------------
    def gen_ether_linktype(self, ll_proto: int) -> Block:
        if ll_proto in (LLCSAP_ISONS, LLCSAP_IP, LLCSAP_NETBEUI):
            b0 = self.gen_cmp_gt(OR_LINKTYPE, 0, I.H, ETHERMTU)
            gen_not(b0)
            b1 = self.gen_cmp(OR_LLC, 0, I.H, (ll_proto << 8) | ll_proto)
            gen_and(b0, b1)
            return b1
        if ll_proto == LLCSAP_IPX:
            b0 = self.gen_cmp(OR_LLC, 0, I.B, LLCSAP_IPX)
            b1 = self.gen_cmp(OR_LLC, 0, I.H, 0xFFFF)
            gen_or(b0, b1)
            b0 = self.gen_snap(0x000000, ETHERTYPE_IPX)
            gen_or(b0, b1)
            b0 = self.gen_cmp_gt(OR_LINKTYPE, 0, I.H, ETHERMTU)
            gen_not(b0)
            gen_and(b0, b1)
            b0 = self.gen_cmp(OR_LINKTYPE, 0, I.H, ETHERTYPE_IPX)
            gen_or(b0, b1)
            return b1
        if ll_proto in (ETHERTYPE_ATALK, ETHERTYPE_AARP):
            b0 = self.gen_cmp_gt(OR_LINKTYPE, 0, I.H, ETHERMTU)
            gen_not(b0)
            return self._atalk_snap_or_type(b0, ll_proto)
        if ll_proto <= ETHERMTU:
            b0 = self.gen_cmp_gt(OR_LINKTYPE, 0, I.H, ETHERMTU)
            gen_not(b0)
            b1 = self.gen_cmp(OR_LINKTYPE, 2, I.B, ll_proto)
            gen_and(b0, b1)
            return b1
        return self.gen_cmp(OR_LINKTYPE, 0, I.H, ll_proto)

    def _atalk_snap_or_type(self, is_802_2: Block, ll_proto: int) -> Block:
        """AppleTalk or AARP: in an 802.2 frame (is_802_2) under its SNAP header, or as the frame's type."""
        if ll_proto == ETHERTYPE_ATALK:
            b1 = self.gen_snap(0x080007, ETHERTYPE_ATALK)
        else:
            b1 = self.gen_snap(0x000000, ETHERTYPE_AARP)
        gen_and(is_802_2, b1)
        b0 = self.gen_cmp(OR_LINKTYPE, 0, I.H, ll_proto)
        gen_or(b0, b1)
        return b1

    def gen_linux_sll_linktype(self, ll_proto: int) -> Block:
        if ll_proto in (LLCSAP_ISONS, LLCSAP_IP, LLCSAP_NETBEUI):
            b0 = self.gen_cmp(OR_LINKTYPE, 0, I.H, LINUX_SLL_P_802_2)
            b1 = self.gen_cmp(OR_LLC, 0, I.H, (ll_proto << 8) | ll_proto)
            gen_and(b0, b1)
            return b1
        if ll_proto == LLCSAP_IPX:
            b0 = self.gen_cmp(OR_LLC, 0, I.B, LLCSAP_IPX)
            b1 = self.gen_snap(0x000000, ETHERTYPE_IPX)
            gen_or(b0, b1)
            b0 = self.gen_cmp(OR_LINKTYPE, 0, I.H, LINUX_SLL_P_802_2)
            gen_and(b0, b1)
            b0 = self.gen_cmp(OR_LINKTYPE, 0, I.H, LINUX_SLL_P_802_3)
            gen_or(b0, b1)
            b0 = self.gen_cmp(OR_LINKTYPE, 0, I.H, ETHERTYPE_IPX)
            gen_or(b0, b1)
            return b1
        if ll_proto in (ETHERTYPE_ATALK, ETHERTYPE_AARP):
            b0 = self.gen_cmp(OR_LINKTYPE, 0, I.H, LINUX_SLL_P_802_2)
            return self._atalk_snap_or_type(b0, ll_proto)
        if ll_proto <= ETHERMTU:
            b0 = self.gen_cmp(OR_LINKTYPE, 0, I.H, LINUX_SLL_P_802_2)
            b1 = self.gen_cmp(OR_LINKHDR, self.off_linkpl.constant_part, I.B, ll_proto)
            gen_and(b0, b1)
            return b1
        return self.gen_cmp(OR_LINKTYPE, 0, I.H, ll_proto)

    def gen_llc_linktype(self, ll_proto: int) -> Block:
        """Link types that carry 802.2 LLC (and SNAP for Ethernet types)."""
        if ll_proto in (LLCSAP_IP, LLCSAP_ISONS, LLCSAP_NETBEUI):
            return self.gen_cmp(OR_LLC, 0, I.H, (ll_proto << 8) | ll_proto)
        if ll_proto == LLCSAP_IPX:
            return self.gen_cmp(OR_LLC, 0, I.B, LLCSAP_IPX)
        if ll_proto == ETHERTYPE_ATALK:
            return self.gen_snap(0x080007, ETHERTYPE_ATALK)
        if ll_proto <= ETHERMTU:
            return self.gen_cmp(OR_LLC, 0, I.B, ll_proto)
        return self.gen_cmp(OR_LLC, 6, I.H, ll_proto)

    def gen_snap(self, orgcode: int, ptype: int) -> Block:
        data = bytes([LLCSAP_SNAP, LLCSAP_SNAP, 0x03, (orgcode >> 16) & 0xFF, (orgcode >> 8) & 0xFF,
                      orgcode & 0xFF, (ptype >> 8) & 0xFF, ptype & 0xFF])
        return self.gen_bcmp(OR_LLC, 0, data)

    def gen_loopback_linktype(self, ll_proto: int) -> Block:
        if self.linktype in (DLT_NULL, DLT_ENC):
            ll_proto = swap32(ll_proto)  # host order on little-endian x86
        return self.gen_cmp(OR_LINKHDR, 0, I.W, ll_proto)

    def gen_prevlinkhdr_check(self) -> Block | None:
        if self.is_geneve:
            return self.gen_geneve_ll_check()
        if self.prevlinktype == DLT_SUNATM:
            # LANE data frames, not LE control frames (which start with 0xFF00)
            b0 = self.gen_cmp(OR_PREVLINKHDR, 4, I.H, 0xFF00)
            gen_not(b0)
            return b0
        return None

    @staticmethod
    def ethertype_to_ppptype(ll_proto: int) -> int:
        return {ETHERTYPE_IP: PPP_IP, ETHERTYPE_IPV6: PPP_IPV6, ETHERTYPE_DN: PPP_DECNET,
                ETHERTYPE_ATALK: PPP_APPLE, ETHERTYPE_NS: PPP_NS, LLCSAP_ISONS: PPP_OSI,
                LLCSAP_8021D: PPP_BRPDU, LLCSAP_IPX: PPP_IPX}.get(ll_proto, ll_proto)

    def gen_linktype(self, ll_proto: int) -> Block:
        """A test that the packet carries ll_proto (an Ethernet type, or an LLC SAP when <= 1500)."""
        if self.label_stack_depth > 0:
            return self.gen_mpls_linktype(ll_proto)
        lt = self.linktype
        if lt in ETHER_DLTS:
            b0 = self.gen_prevlinkhdr_check() if not self.is_geneve else None
            b1 = self.gen_ether_linktype(ll_proto)
            if b0 is not None:
                gen_and(b0, b1)
            return b1
        if lt in (DLT_C_HDLC, DLT_HDLC):
            if ll_proto == LLCSAP_ISONS:
                ll_proto = (ll_proto << 8) | LLCSAP_ISONS
            return self.gen_cmp(OR_LINKTYPE, 0, I.H, ll_proto)
        if lt in WLAN_DLTS:
            b0 = self.gen_check_802_11_data_frame()
            b1 = self.gen_llc_linktype(ll_proto)
            gen_and(b0, b1)
            return b1
        if lt in (DLT_FDDI, DLT_IEEE802, DLT_ATM_RFC1483, DLT_ATM_CLIP, DLT_IP_OVER_FC):
            return self.gen_llc_linktype(ll_proto)
        if lt == DLT_SUNATM:
            b0 = self.gen_atmfield_code(A_PROTOTYPE, PT_LLC, I.JEQ, False)
            b1 = self.gen_llc_linktype(ll_proto)
            gen_and(b0, b1)
            return b1
        if lt == DLT_SLL:
            return self.gen_linux_sll_linktype(ll_proto)
        if lt in (DLT_SLIP, DLT_SLIP_BSDOS, DLT_RAW):
            if ll_proto == ETHERTYPE_IP:
                return self.gen_mcmp(OR_LINKHDR, 0, I.B, 0x40, 0xF0)
            if ll_proto == ETHERTYPE_IPV6:
                return self.gen_mcmp(OR_LINKHDR, 0, I.B, 0x60, 0xF0)
            return self.gen_false()
        if lt == DLT_IPV4:
            return self.gen_true() if ll_proto == ETHERTYPE_IP else self.gen_false()
        if lt == DLT_IPV6:
            return self.gen_true() if ll_proto == ETHERTYPE_IPV6 else self.gen_false()
        if lt in (DLT_PPP, DLT_PPP_PPPD, DLT_PPP_SERIAL, DLT_PPP_ETHER):
            return self.gen_cmp(OR_LINKTYPE, 0, I.H, self.ethertype_to_ppptype(ll_proto))
        if lt == DLT_PPP_BSDOS:
            if ll_proto == ETHERTYPE_IP:
                # also Van Jacobson compressed and uncompressed TCP/IP
                b0 = self.gen_cmp(OR_LINKTYPE, 0, I.H, PPP_IP)
                b1 = self.gen_cmp(OR_LINKTYPE, 0, I.H, PPP_VJC)
                gen_or(b0, b1)
                b0 = self.gen_cmp(OR_LINKTYPE, 0, I.H, PPP_VJNC)
                gen_or(b1, b0)
                return b0
            return self.gen_cmp(OR_LINKTYPE, 0, I.H, self.ethertype_to_ppptype(ll_proto))
        if lt in (DLT_NULL, DLT_LOOP, DLT_ENC):
            if ll_proto == ETHERTYPE_IP:
                return self.gen_loopback_linktype(AF_INET)
            if ll_proto == ETHERTYPE_IPV6:
                return self.gen_loopback_linktype(AF_INET6)
            return self.gen_false()
        if lt == DLT_PFLOG:
            if ll_proto == ETHERTYPE_IP:
                return self.gen_cmp(OR_LINKHDR, 1, I.B, AF_INET)
            if ll_proto == ETHERTYPE_IPV6:
                return self.gen_cmp(OR_LINKHDR, 1, I.B, AF_INET6)
            return self.gen_false()
        if lt in (DLT_ARCNET, DLT_ARCNET_LINUX):
            return self._arcnet_linktype(ll_proto)
        if lt == DLT_LTALK:
            return self.gen_true() if ll_proto == ETHERTYPE_ATALK else self.gen_false()
        if lt == DLT_FRELAY:
            return self._frelay_linktype(ll_proto)
        if lt in JUNIPER_DLTS:
            # only the "MGC" magic number of Juniper's header can be checked
            return self.gen_mcmp(OR_LINKHDR, 0, I.W, 0x4D474300, 0xFFFFFF00)
        if lt == DLT_BACNET_MS_TP:
            return self.gen_mcmp(OR_LINKHDR, 0, I.W, 0x55FF0000, 0xFFFF0000)
        if lt == DLT_IPNET:
            if ll_proto == ETHERTYPE_IP:
                return self.gen_cmp(OR_LINKTYPE, 0, I.B, IPH_AF_INET)
            if ll_proto == ETHERTYPE_IPV6:
                return self.gen_cmp(OR_LINKTYPE, 0, I.B, IPH_AF_INET6)
            return self.gen_false()
        if lt in _NO_LINKTYPE_FILTERING:
            bpf_error(f"{_NO_LINKTYPE_FILTERING[lt]} link-layer type filtering not implemented")
        if self.off_linktype.constant_part != OFFSET_NOT_SET:
            return self.gen_cmp(OR_LINKTYPE, 0, I.H, ll_proto)
        bpf_error(f"{linktypes.description(lt)} link-layer type filtering not implemented")

    def _arcnet_linktype(self, ll_proto: int) -> Block:
        def both(new: int, old: int) -> Block:
            b0 = self.gen_cmp(OR_LINKTYPE, 0, I.B, new)
            b1 = self.gen_cmp(OR_LINKTYPE, 0, I.B, old)
            gen_or(b0, b1)
            return b1

        if ll_proto == ETHERTYPE_IPV6:
            return self.gen_cmp(OR_LINKTYPE, 0, I.B, ARCTYPE_INET6)
        if ll_proto == ETHERTYPE_IP:
            return both(ARCTYPE_IP, ARCTYPE_IP_OLD)
        if ll_proto == ETHERTYPE_ARP:
            return both(ARCTYPE_ARP, ARCTYPE_ARP_OLD)
        if ll_proto == ETHERTYPE_REVARP:
            return self.gen_cmp(OR_LINKTYPE, 0, I.B, ARCTYPE_REVARP)
        if ll_proto == ETHERTYPE_ATALK:
            return self.gen_cmp(OR_LINKTYPE, 0, I.B, ARCTYPE_ATALK)
        return self.gen_false()

    def _frelay_linktype(self, ll_proto: int) -> Block:
        """Frame Relay: a UI control byte followed by an NLPID."""
        if ll_proto == ETHERTYPE_IP:
            return self.gen_cmp(OR_LINKHDR, 2, I.H, 0x0300 | 0xCC)
        if ll_proto == ETHERTYPE_IPV6:
            return self.gen_cmp(OR_LINKHDR, 2, I.H, 0x0300 | 0x8E)
        if ll_proto == LLCSAP_ISONS:
            b0 = self.gen_cmp(OR_LINKHDR, 2, I.H, 0x0300 | ISO8473_CLNP)
            b1 = self.gen_cmp(OR_LINKHDR, 2, I.H, 0x0300 | ISO9542_ESIS)
            b2 = self.gen_cmp(OR_LINKHDR, 2, I.H, 0x0300 | ISO10589_ISIS)
            gen_or(b1, b2)
            gen_or(b0, b2)
            return b2
        return self.gen_false()

    def gen_mpls_linktype(self, ll_proto: int) -> Block:
        if ll_proto in (ETHERTYPE_IP, ETHERTYPE_IPV6):
            b0 = self.gen_mcmp(OR_LINKPL, -2 & M32, I.B, 0x01, 0x01)
            b1 = self.gen_mcmp(OR_LINKPL, 0, I.B, 0x40 if ll_proto == ETHERTYPE_IP else 0x60, 0xF0)
            gen_and(b0, b1)
            return b1
        bpf_error("unsupported protocol over mpls")

    # -- 802.2 LLC ----------------------------------------------------------------------
    def gen_llc_internal(self) -> Block:
        lt = self.linktype
        if lt == DLT_EN10MB:
            b0 = self.gen_cmp_gt(OR_LINKTYPE, 0, I.H, ETHERMTU)
            gen_not(b0)
            b1 = self.gen_cmp(OR_LLC, 0, I.H, 0xFFFF)  # not NetWare 802.3
            gen_not(b1)
            gen_and(b0, b1)
            return b1
        if lt == DLT_SUNATM:
            return self.gen_atmtype_llc()
        if lt in (DLT_IEEE802, DLT_FDDI, DLT_ATM_RFC1483):
            return self.gen_true()
        if lt in WLAN_DLTS:
            return self.gen_check_802_11_data_frame()
        bpf_error(f"'llc' not supported for {linktypes.description(lt)}")

    def gen_llc(self, name: str | None) -> Block:
        """`llc`, `llc i|s|u`, `llc rr|rnr|rej` (S frames), `llc ui|ua|disc|dm|sabme|test|xid|frmr` (U)."""
        if name is None:
            return self.gen_llc_internal()
        lname = name.lower()
        if lname not in ("i", "s", "u") and lname not in LLC_S_SUBTYPES and lname not in LLC_U_SUBTYPES:
            bpf_error(f'unknown LLC type name "{name}"')
        b0 = self.gen_llc_internal()
        if lname == "i":
            b1 = self.gen_jset(OR_LLC, 2, I.B, 0x01)
            gen_not(b1)
        elif lname == "s":
            b1 = self.gen_mcmp(OR_LLC, 2, I.B, LLC_S_FMT, 0x03)
        elif lname == "u":
            b1 = self.gen_mcmp(OR_LLC, 2, I.B, LLC_U_FMT, 0x03)
        elif lname in LLC_S_SUBTYPES:
            b1 = self.gen_mcmp(OR_LLC, 2, I.B, LLC_S_SUBTYPES[lname], LLC_S_CMD_MASK)
        else:
            b1 = self.gen_mcmp(OR_LLC, 2, I.B, LLC_U_SUBTYPES[lname], LLC_U_CMD_MASK)
        gen_and(b0, b1)
        return b1

    # -- hosts and networks -----------------------------------------------------
    @staticmethod
    def _dir_error(d: int, what: str):
        phrase = _ADDR_QUAL_ERRORS[d]
        if phrase.endswith(" are"):
            bpf_error(f"{phrase} not valid qualifiers for {what}")
        bpf_error(f"{phrase} not a valid qualifier for {what}")

    def gen_hostop(self, addr, mask, d, ll_proto, src_off, dst_off) -> Block:
        def one_way(offset: int) -> Block:
            b0 = self.gen_linktype(ll_proto)
            b1 = self.gen_mcmp(OR_LINKPL, offset, I.W, addr, mask)
            gen_and(b0, b1)
            return b1
        return self._dir_pair(d, one_way, _NOT_MAC_ADDRESSES, src_off, dst_off)

    def gen_hostop6(self, addr: bytes, mask: bytes, d, ll_proto, src_off, dst_off) -> Block:
        a = [int.from_bytes(addr[i:i + 4], "big") for i in range(0, 16, 4)]
        m = [int.from_bytes(mask[i:i + 4], "big") for i in range(0, 16, 4)]

        def one_way(offset: int) -> Block:
            b1 = self.gen_mcmp(OR_LINKPL, offset + 12, I.W, a[3], m[3])
            b0 = self.gen_mcmp(OR_LINKPL, offset + 8, I.W, a[2], m[2])
            gen_and(b0, b1)
            b0 = self.gen_mcmp(OR_LINKPL, offset + 4, I.W, a[1], m[1])
            gen_and(b0, b1)
            b0 = self.gen_mcmp(OR_LINKPL, offset + 0, I.W, a[0], m[0])
            gen_and(b0, b1)
            b0 = self.gen_linktype(ll_proto)
            gen_and(b0, b1)
            return b1
        return self._dir_pair(d, one_way, _NOT_MAC_ADDRESSES, src_off, dst_off)

    def gen_machostop(self, eaddr: bytes, d: int, src_off: int, dst_off: int, qual_error_suffix: str) -> Block:
        """Ethernet, FDDI, token ring, Fibre Channel and ARCnet addresses at fixed link-header offsets."""
        if d == Q_SRC:
            return self.gen_bcmp(OR_LINKHDR, src_off, eaddr)
        if d == Q_DST:
            return self.gen_bcmp(OR_LINKHDR, dst_off, eaddr)
        if d in (Q_AND, Q_OR, Q_DEFAULT):
            b0 = self.gen_machostop(eaddr, Q_SRC, src_off, dst_off, qual_error_suffix)
            b1 = self.gen_machostop(eaddr, Q_DST, src_off, dst_off, qual_error_suffix)
            (gen_and if d == Q_AND else gen_or)(b0, b1)
            return b1
        bpf_error(f"{_ADDR_QUAL_ERRORS[d]} only supported on 802.11{qual_error_suffix}")

    def gen_ehostop(self, eaddr: bytes, d: int) -> Block:
        return self.gen_machostop(eaddr, d, 6, 0, " with 802.11 headers")

    def gen_ahostop(self, eaddr: bytes, d: int) -> Block:
        """ARCnet: one-byte source and destination addresses."""
        return self.gen_machostop(eaddr[:1], d, 0, 1, "")

    def gen_link_hostop(self, eaddr: bytes, d: int) -> Block:
        """A MAC address test on the current MAC link type (the caller checked it is one)."""
        lt = self.linktype
        if lt in WLAN_DLTS:
            return self.gen_wlanhostop(eaddr, d)
        if lt in ETHER_DLTS:
            tmp = self.gen_prevlinkhdr_check()
            b = self.gen_ehostop(eaddr, d)
            if tmp is not None:
                gen_and(tmp, b)
            return b
        src_off, dst_off = _MAC_HOST_OFFSETS[lt]
        return self.gen_machostop(eaddr, d, src_off, dst_off, "")

    def gen_dnhostop(self, addr: int, d: int) -> Block:
        # (short-header, long-header) offsets of the source and of the destination
        return self._dir_pair(d, lambda offsets: self._dnhost_one_way(addr, *offsets), _NOT_MAC_ADDRESSES,
                              (3, 15), (1, 7))

    def _dnhost_one_way(self, addr: int, offset_sh: int, offset_lh: int) -> Block:
        swapped = ((addr & 0xFF) << 8) | ((addr >> 8) & 0xFF)  # ntohs on little-endian
        b0 = self.gen_linktype(ETHERTYPE_DN)
        tmp = self.gen_mcmp(OR_LINKPL, 2, I.H, 0x8106, 0xFF07)
        b1 = self.gen_cmp(OR_LINKPL, 2 + 1 + offset_lh, I.H, swapped)
        gen_and(tmp, b1)
        tmp = self.gen_mcmp(OR_LINKPL, 2, I.B, 0x06, 0x7)
        b2 = self.gen_cmp(OR_LINKPL, 2 + offset_lh, I.H, swapped)
        gen_and(tmp, b2)
        gen_or(b2, b1)
        tmp = self.gen_mcmp(OR_LINKPL, 2, I.H, 0x8102, 0xFF07)
        b2 = self.gen_cmp(OR_LINKPL, 2 + 1 + offset_sh, I.H, swapped)
        gen_and(tmp, b2)
        gen_or(b2, b1)
        tmp = self.gen_mcmp(OR_LINKPL, 2, I.B, 0x02, 0x7)
        b2 = self.gen_cmp(OR_LINKPL, 2 + offset_sh, I.H, swapped)
        gen_and(tmp, b2)
        gen_or(b2, b1)
        gen_and(b0, b1)
        return b1

    def gen_host(self, addr: int, mask: int, proto: int, d: int, qtype: int) -> Block:
        typestr = "net" if qtype == Q_NET else "host"
        if proto == Q_DEFAULT:
            b0 = self.gen_host(addr, mask, Q_IP, d, qtype)
            if self.label_stack_depth == 0:
                b1 = self.gen_host(addr, mask, Q_ARP, d, qtype)
                gen_or(b0, b1)
                b0 = self.gen_host(addr, mask, Q_RARP, d, qtype)
                gen_or(b1, b0)
            return b0
        if proto == Q_LINK:
            bpf_error(f"link-layer modifier applied to {typestr}")
        if proto == Q_IP:
            return self.gen_hostop(addr, mask, d, ETHERTYPE_IP, 12, 16)
        if proto == Q_RARP:
            return self.gen_hostop(addr, mask, d, ETHERTYPE_REVARP, 14, 24)
        if proto == Q_ARP:
            return self.gen_hostop(addr, mask, d, ETHERTYPE_ARP, 14, 24)
        if proto == Q_DECNET:
            return self.gen_dnhostop(addr, d)
        if proto == Q_IPV6:
            bpf_error("'ip6' modifier applied to ip host")
        if proto in (Q_ATALK, Q_LAT, Q_SCA, Q_MOPRC, Q_MOPDL, Q_AARP, Q_ISO, Q_IPX):
            name = {Q_ATALK: "AppleTalk", Q_LAT: "LAT", Q_SCA: "SCA", Q_MOPRC: "MOPRC", Q_MOPDL: "MOPDL",
                    Q_AARP: "AARP", Q_ISO: "ISO", Q_IPX: "IPX"}[proto]
            bpf_error(f"{name} host filtering not implemented")
        bpf_error(f"'{_QUAL_NAMES[proto]}' modifier applied to {typestr}")

    def gen_host6(self, addr: bytes, mask: bytes, proto: int, d: int, qtype: int) -> Block:
        typestr = "net" if qtype == Q_NET else "host"
        if proto in (Q_DEFAULT, Q_IPV6):
            return self.gen_hostop6(addr, mask, d, ETHERTYPE_IPV6, 8, 24)
        if proto == Q_LINK:
            bpf_error(f"link-layer modifier applied to ip6 {typestr}")
        if proto == Q_ATALK:
            bpf_error(f"AppleTalk modifier applied to ip6 {typestr}")
        bpf_error(f"'{_QUAL_NAMES[proto]}' modifier applied to ip6 {typestr}")

    def gen_gateway(self, eaddr: bytes, addrs: list[tuple[int, bytes]], proto: int, d: int) -> Block:
        """libpcap's `gateway` (compiled out of IPv6-enabled libpcap builds, so tcpdump here refuses it)."""
        if d != Q_DEFAULT:
            bpf_error("direction applied to 'gateway'")
        if proto not in (Q_DEFAULT, Q_IP, Q_ARP, Q_RARP):
            bpf_error("illegal modifier of 'gateway'")
        if self.linktype not in _MAC_HOST_NAMES:
            bpf_error(f"'gateway' supported only on {_MAC_LINKS}")
        b0 = self.gen_link_hostop(eaddr, Q_OR)
        b1 = None
        for family, packed in addrs:
            if family != AF_INET:
                continue
            tmp = self.gen_host(int.from_bytes(packed, "big"), 0xFFFFFFFF, proto, Q_OR, Q_HOST)
            if b1 is None:
                b1 = tmp
            else:
                gen_or(b1, tmp)
                b1 = tmp
        if b1 is None:
            return None
        gen_not(b1)
        gen_and(b0, b1)
        return b1

    # -- protocols ---------------------------------------------------------------
    def gen_proto_abbrev(self, proto: int) -> Block:
        simple_ip = {Q_SCTP: (IPPROTO_SCTP, Q_DEFAULT), Q_TCP: (IPPROTO_TCP, Q_DEFAULT),
                     Q_UDP: (IPPROTO_UDP, Q_DEFAULT), Q_ICMP: (IPPROTO_ICMP, Q_IP), Q_IGMP: (IPPROTO_IGMP, Q_IP),
                     Q_IGRP: (IPPROTO_IGRP, Q_IP), Q_PIM: (IPPROTO_PIM, Q_DEFAULT), Q_VRRP: (IPPROTO_VRRP, Q_IP),
                     Q_CARP: (IPPROTO_VRRP, Q_IP), Q_ICMPV6: (IPPROTO_ICMPV6, Q_IPV6),
                     Q_AH: (IPPROTO_AH, Q_DEFAULT), Q_ESP: (IPPROTO_ESP, Q_DEFAULT),
                     Q_ESIS: (ISO9542_ESIS, Q_ISO), Q_ISIS: (ISO10589_ISIS, Q_ISO), Q_CLNP: (ISO8473_CLNP, Q_ISO)}
        if proto in simple_ip:
            v, p = simple_ip[proto]
            return self.gen_proto(v, p, Q_DEFAULT)
        link = {Q_IP: ETHERTYPE_IP, Q_ARP: ETHERTYPE_ARP, Q_RARP: ETHERTYPE_REVARP, Q_ATALK: ETHERTYPE_ATALK,
                Q_AARP: ETHERTYPE_AARP, Q_DECNET: ETHERTYPE_DN, Q_SCA: ETHERTYPE_SCA, Q_LAT: ETHERTYPE_LAT,
                Q_MOPDL: ETHERTYPE_MOPDL, Q_MOPRC: ETHERTYPE_MOPRC, Q_IPV6: ETHERTYPE_IPV6, Q_ISO: LLCSAP_ISONS,
                Q_STP: LLCSAP_8021D, Q_IPX: LLCSAP_IPX, Q_NETBEUI: LLCSAP_NETBEUI}
        if proto in link:
            return self.gen_linktype(link[proto])
        isis = {Q_ISIS_L1: (ISIS_L1_LAN_IIH, ISIS_PTP_IIH, ISIS_L1_LSP, ISIS_L1_CSNP, ISIS_L1_PSNP),
                Q_ISIS_L2: (ISIS_L2_LAN_IIH, ISIS_PTP_IIH, ISIS_L2_LSP, ISIS_L2_CSNP, ISIS_L2_PSNP),
                Q_ISIS_IIH: (ISIS_L1_LAN_IIH, ISIS_L2_LAN_IIH, ISIS_PTP_IIH),
                Q_ISIS_LSP: (ISIS_L1_LSP, ISIS_L2_LSP),
                Q_ISIS_SNP: (ISIS_L1_CSNP, ISIS_L2_CSNP, ISIS_L1_PSNP, ISIS_L2_PSNP),
                Q_ISIS_CSNP: (ISIS_L1_CSNP, ISIS_L2_CSNP), Q_ISIS_PSNP: (ISIS_L1_PSNP, ISIS_L2_PSNP)}
        if proto in isis:
            types = isis[proto]
            b0 = self.gen_proto(types[0], Q_ISIS, Q_DEFAULT)
            b1 = self.gen_proto(types[1], Q_ISIS, Q_DEFAULT)
            gen_or(b0, b1)
            for t in types[2:]:
                b0 = self.gen_proto(t, Q_ISIS, Q_DEFAULT)
                gen_or(b0, b1)
            return b1
        if proto == Q_LINK:
            bpf_error("link layer applied in wrong context")
        bpf_error("'radio' is not a valid protocol type")

    def gen_ipfrag(self) -> Block:
        b = Block(JMP(I.JSET), 0x1FFF)
        b.stmts = self.gen_load_a(OR_LINKPL, 6, I.H)
        gen_not(b)
        return b

    def gen_proto(self, v: int, proto: int, d: int) -> Block:
        if d != Q_DEFAULT:
            bpf_error("direction applied to 'proto'")
        if proto == Q_DEFAULT:
            b0 = self.gen_proto(v, Q_IP, d)
            b1 = self.gen_proto(v, Q_IPV6, d)
            gen_or(b0, b1)
            return b1
        if proto == Q_LINK:
            return self.gen_linktype(v)
        if proto == Q_IP:
            b0 = self.gen_linktype(ETHERTYPE_IP)
            b1 = self.gen_cmp(OR_LINKPL, 9, I.B, v)
            gen_and(b0, b1)
            return b1
        if proto == Q_IPV6:
            b0 = self.gen_linktype(ETHERTYPE_IPV6)
            b2 = self.gen_cmp(OR_LINKPL, 6, I.B, IPPROTO_FRAGMENT)
            b1 = self.gen_cmp(OR_LINKPL, 40, I.B, v)
            gen_and(b2, b1)
            b2 = self.gen_cmp(OR_LINKPL, 6, I.B, v)
            gen_or(b2, b1)
            gen_and(b0, b1)
            return b1
        if proto == Q_ISO:
            if self.linktype == DLT_FRELAY:
                return self.gen_cmp(OR_LINKHDR, 2, I.H, 0x0300 | v)
            if self.linktype in (DLT_C_HDLC, DLT_HDLC):
                b0 = self.gen_linktype((LLCSAP_ISONS << 8) | LLCSAP_ISONS)
                b1 = self.gen_cmp(OR_LINKPL_NOSNAP, 1, I.B, v)
            else:
                b0 = self.gen_linktype(LLCSAP_ISONS)
                b1 = self.gen_cmp(OR_LINKPL_NOSNAP, 0, I.B, v)
            gen_and(b0, b1)
            return b1
        if proto == Q_ISIS:
            b0 = self.gen_proto(ISO10589_ISIS, Q_ISO, Q_DEFAULT)
            b1 = self.gen_cmp(OR_LINKPL_NOSNAP, 4, I.B, v)
            gen_and(b0, b1)
            return b1
        messages = {Q_ARP: "arp does not encapsulate another protocol",
                    Q_RARP: "rarp does not encapsulate another protocol",
                    Q_ATALK: "AppleTalk encapsulation is not specifiable",
                    Q_DECNET: "DECNET encapsulation is not specifiable",
                    Q_LAT: "LAT does not encapsulate another protocol",
                    Q_SCA: "SCA does not encapsulate another protocol",
                    Q_MOPRC: "MOPRC does not encapsulate another protocol",
                    Q_MOPDL: "MOPDL does not encapsulate another protocol",
                    Q_CLNP: "'clnp proto' is not supported"}
        if proto in messages:
            bpf_error(messages[proto])
        bpf_error(f"'{_QUAL_NAMES[proto]} proto' is bogus")

    # -- ports ------------------------------------------------------------------
    def _dir_pair(self, d: int, atom, what: str, src=0, dst=2) -> Block:
        """`src`, `dst`, `src and dst`, `src or dst` (the default) over one test: atom(src) / atom(dst).

        The defaults are the port offsets in a TCP/UDP/SCTP header; `what` names the operand
        in the error for a direction (ra, ta, addr1...) that only 802.11 MAC addresses have."""
        if d == Q_SRC:
            return atom(src)
        if d == Q_DST:
            return atom(dst)
        if d in (Q_AND, Q_OR, Q_DEFAULT):
            tmp = atom(src)
            b1 = atom(dst)
            (gen_and if d == Q_AND else gen_or)(tmp, b1)
            return b1
        self._dir_error(d, what)

    def gen_portop(self, port: int, proto: int, d: int) -> Block:
        tmp = self.gen_cmp(OR_LINKPL, 9, I.B, proto)
        b0 = self.gen_ipfrag()
        gen_and(tmp, b0)
        b1 = self._dir_pair(d, lambda off: self.gen_cmp(OR_TRAN_IPV4, off, I.H, port), "ports")
        gen_and(b0, b1)
        return b1

    def gen_portop6(self, port: int, proto: int, d: int) -> Block:
        b0 = self.gen_cmp(OR_LINKPL, 6, I.B, proto)
        b1 = self._dir_pair(d, lambda off: self.gen_cmp(OR_TRAN_IPV6, off, I.H, port), "ports")
        gen_and(b0, b1)
        return b1

    def _gen_port_any(self, ethertype: int, op, ip_proto: int) -> Block:
        b0 = self.gen_linktype(ethertype)
        if ip_proto in (IPPROTO_UDP, IPPROTO_TCP, IPPROTO_SCTP):
            b1 = op(ip_proto)
        else:
            tmp = op(IPPROTO_TCP)
            b1 = op(IPPROTO_UDP)
            gen_or(tmp, b1)
            tmp = op(IPPROTO_SCTP)
            gen_or(tmp, b1)
        gen_and(b0, b1)
        return b1

    def gen_port(self, port: int, ip_proto: int, d: int) -> Block:
        return self._gen_port_any(ETHERTYPE_IP, lambda p: self.gen_portop(port, p, d), ip_proto)

    def gen_port6(self, port: int, ip_proto: int, d: int) -> Block:
        return self._gen_port_any(ETHERTYPE_IPV6, lambda p: self.gen_portop6(port, p, d), ip_proto)

    def gen_portrangeatom(self, offrel: int, off: int, v1: int, v2: int) -> Block:
        if v1 > v2:
            v1, v2 = v2, v1
        b1 = self.gen_cmp_ge(offrel, off, I.H, v1)
        b2 = self.gen_cmp_le(offrel, off, I.H, v2)
        gen_and(b1, b2)
        return b2

    def gen_portrangeop(self, p1: int, p2: int, proto: int, d: int) -> Block:
        tmp = self.gen_cmp(OR_LINKPL, 9, I.B, proto)
        b0 = self.gen_ipfrag()
        gen_and(tmp, b0)
        b1 = self._dir_pair(d, lambda off: self.gen_portrangeatom(OR_TRAN_IPV4, off, p1, p2), "port ranges")
        gen_and(b0, b1)
        return b1

    def gen_portrangeop6(self, p1: int, p2: int, proto: int, d: int) -> Block:
        b0 = self.gen_cmp(OR_LINKPL, 6, I.B, proto)
        b1 = self._dir_pair(d, lambda off: self.gen_portrangeatom(OR_TRAN_IPV6, off, p1, p2), "port ranges")
        gen_and(b0, b1)
        return b1

    def gen_portrange(self, p1, p2, ip_proto, d) -> Block:
        return self._gen_port_any(ETHERTYPE_IP, lambda p: self.gen_portrangeop(p1, p2, p, d), ip_proto)

    def gen_portrange6(self, p1, p2, ip_proto, d) -> Block:
        return self._gen_port_any(ETHERTYPE_IPV6, lambda p: self.gen_portrangeop6(p1, p2, p, d), ip_proto)

    # -- protochain -----------------------------------------------------------------
    def gen_protochain(self, v: int, proto: int) -> Block:
        reg2 = self.alloc_reg()
        if proto == Q_DEFAULT:
            b0 = self.gen_protochain(v, Q_IP)
            b = self.gen_protochain(v, Q_IPV6)
            gen_or(b0, b)
            return b
        if proto not in (Q_IP, Q_IPV6):
            bpf_error("bad protocol applied for 'protochain'")
        if self.off_linkpl.is_variable:
            bpf_error("'protochain' not supported with variable length headers")
        self.no_optimize = True
        base = self.off_linkpl.constant_part + self.off_nl
        s: list[Stmt] = [Stmt(0)]
        if proto == Q_IP:
            b0 = self.gen_linktype(ETHERTYPE_IP)
            s.append(Stmt(I.LD | I.ABS | I.B, base + 9))
            s.append(Stmt(I.LDX | I.MSH | I.B, base))
        else:
            b0 = self.gen_linktype(ETHERTYPE_IPV6)
            s.append(Stmt(I.LD | I.ABS | I.B, base + 6))
            s.append(Stmt(I.LDX | I.IMM, 40))
        again = len(s)
        fix5 = len(s)
        s.append(Stmt(I.JMP | I.JEQ | I.K, v))
        fix2 = len(s)
        s.append(Stmt(I.JMP | I.JEQ | I.K, IPPROTO_NONE))
        s[fix5].jf = s[fix2]
        fix3 = 0
        if proto == Q_IPV6:
            v6start = len(s)
            s.append(Stmt(I.JMP | I.JEQ | I.K, IPPROTO_HOPOPTS))
            s[fix2].jf = s[-1]
            for nh in (IPPROTO_DSTOPTS, IPPROTO_ROUTING, IPPROTO_FRAGMENT):
                st = Stmt(I.JMP | I.JEQ | I.K, nh)
                s[-1].jf = st
                s.append(st)
            fix3 = v6end = len(s) - 1
            v6advance = len(s)
            s.append(Stmt(I.LD | I.IND | I.B, base))
            s.append(Stmt(I.ST, reg2))
            s.append(Stmt(I.LD | I.IND | I.B, base + 1))
            s.append(Stmt(I.ALU | I.ADD | I.K, 1))
            s.append(Stmt(I.ALU | I.MUL | I.K, 8))
            s.append(Stmt(I.ALU | I.ADD | I.X, 0))
            s.append(Stmt(I.MISC | I.TAX))
            s.append(Stmt(I.LD | I.MEM, reg2))
            i = len(s)
            s.append(Stmt(I.JMP | I.JA, again - i - 1))
            s[i - 1].jf = s[i]
            for j in range(v6start, v6end + 1):
                s[j].jt = s[v6advance]
        else:
            s.append(Stmt(I.ALU | I.ADD | I.K, 0))
            s[fix2].jf = s[-1]
        ahcheck = len(s)
        s.append(Stmt(I.JMP | I.JEQ | I.K, IPPROTO_AH))
        if fix3:
            s[fix3].jf = s[ahcheck]
        fix4 = ahcheck
        st = Stmt(I.MISC | I.TXA)
        s[-1].jt = st
        s.append(st)
        s.append(Stmt(I.LD | I.IND | I.B, base))
        s.append(Stmt(I.ST, reg2))
        st = Stmt(I.MISC | I.TXA)
        s[-1].jt = st
        s.append(st)
        s.append(Stmt(I.ALU | I.ADD | I.K, 1))
        s.append(Stmt(I.MISC | I.TAX))
        s.append(Stmt(I.LD | I.IND | I.B, base))
        s.append(Stmt(I.ALU | I.ADD | I.K, 2))
        s.append(Stmt(I.ALU | I.MUL | I.K, 4))
        s.append(Stmt(I.MISC | I.TAX))
        s.append(Stmt(I.LD | I.MEM, reg2))
        i = len(s)
        s.append(Stmt(I.JMP | I.JA, again - i - 1))
        end = len(s)
        s.append(Stmt(I.ALU | I.ADD | I.K, 0))
        s[fix2].jt = s[end]
        s[fix4].jf = s[end]
        s[fix5].jt = s[end]
        for a, b in zip(s, s[1:]):
            a.next = b
        b = Block(JMP(I.JEQ), v)
        b.stmts = s[1]
        self.free_reg(reg2)
        gen_and(b0, b)
        return b

    # -- names and numbers ------------------------------------------------------
    def lookup_proto(self, name: str, proto: int) -> int:
        if proto in (Q_DEFAULT, Q_IP, Q_IPV6):
            v = names.protocol_number(name)
            if v is None:
                bpf_error(f"unknown ip proto '{name}'")
            return v
        if proto == Q_LINK:
            v = names.ether_proto(name)
            if v is None:
                bpf_error(f"unknown ether proto '{name}'")
            return v
        if proto == Q_ISO:
            iso = {"esis": ISO9542_ESIS, "isis": ISO10589_ISIS, "clnp": ISO8473_CLNP}
            if name not in iso:
                bpf_error(f"unknown osi proto '{name}'")
            return iso[name]
        return PROTO_UNDEF

    def _port_proto(self, proto: int, real_proto: int, name: str, what: str) -> int:
        wanted = {Q_UDP: IPPROTO_UDP, Q_TCP: IPPROTO_TCP, Q_SCTP: IPPROTO_SCTP}.get(proto)
        if wanted is None:
            return real_proto
        pname = {IPPROTO_UDP: "udp", IPPROTO_TCP: "tcp", IPPROTO_SCTP: "sctp"}
        if real_proto not in (PROTO_UNDEF, wanted):
            bpf_error(f"{what} '{name}' is {pname[real_proto]}")
        return wanted

    def gen_scode(self, name: str, q) -> Block:
        proto, d = q.proto, q.dir
        if q.addr == Q_NET:
            addr = names.network_number(name)
            if not addr:
                bpf_error(f"unknown network '{name}'")
            mask = 0xFFFFFFFF
            while addr and (addr & 0xFF000000) == 0:
                addr = (addr << 8) & M32
                mask = (mask << 8) & M32
            return self.gen_host(addr, mask, proto, d, q.addr)
        if q.addr in (Q_DEFAULT, Q_HOST):
            if proto == Q_LINK:
                if self.linktype not in _MAC_HOST_NAMES:
                    bpf_error(f"only {_MAC_LINKS} supports link-level host name")
                eaddr = names.ether_host(name)
                if eaddr is None:
                    bpf_error(f"unknown {_MAC_HOST_NAMES[self.linktype]} host '{name}' "
                              "(pybpf reads only /etc/ethers, no network lookups)")
                return self.gen_link_hostop(eaddr, d)
            if proto == Q_DECNET:
                bpf_error(f"decnet name support not included, '{name}' cannot be translated")
            addrs = names.host_addresses(name)
            if not addrs:
                bpf_error(f"unknown host '{name}' (pybpf reads only /etc/hosts, no network lookups)")
            b = None
            tproto = tproto6 = proto
            if self.off_linktype.constant_part == OFFSET_NOT_SET and tproto == Q_DEFAULT:
                tproto, tproto6 = Q_IP, Q_IPV6
            for family, packed in addrs:
                if family == AF_INET:
                    if tproto == Q_IPV6:
                        continue
                    tmp = self.gen_host(int.from_bytes(packed, "big"), 0xFFFFFFFF, tproto, d, q.addr)
                else:
                    if tproto6 == Q_IP:
                        continue
                    tmp = self.gen_host6(packed, b"\xff" * 16, tproto6, d, q.addr)
                if b is not None:
                    gen_or(b, tmp)
                b = tmp
            if b is None:
                bpf_error(f"unknown host '{name}'{'' if proto == Q_DEFAULT else ' for specified address family'}")
            return b
        if q.addr == Q_PORT:
            if proto not in (Q_DEFAULT, Q_UDP, Q_TCP, Q_SCTP):
                bpf_error("illegal qualifier of 'port'")
            found = names.service_port(name)
            if found is None:
                bpf_error(f"unknown port '{name}'")
            port, real_proto = found
            real_proto = self._port_proto(proto, real_proto, name, "port")
            if port > 65535:
                bpf_error(f"illegal port number {port} > 65535")
            b = self.gen_port(port, real_proto, d)
            gen_or(self.gen_port6(port, real_proto, d), b)
            return b
        if q.addr == Q_PORTRANGE:
            if proto not in (Q_DEFAULT, Q_UDP, Q_TCP, Q_SCTP):
                bpf_error("illegal qualifier of 'portrange'")
            found = names.port_range(name)
            if found is None:
                bpf_error(f"unknown port in range '{name}'")
            p1, p2, real_proto = found
            real_proto = self._port_proto(proto, real_proto, name, "port in range")
            for p in (p1, p2):
                if p < 0:
                    bpf_error(f"illegal port number {p} < 0")
                if p > 65535:
                    bpf_error(f"illegal port number {p} > 65535")
            b = self.gen_portrange(p1, p2, real_proto, d)
            gen_or(self.gen_portrange6(p1, p2, real_proto, d), b)
            return b
        if q.addr == Q_GATEWAY:
            eaddr = names.ether_host(name)
            if eaddr is None:
                bpf_error(f"unknown ether host: {name} (pybpf reads only /etc/ethers, no network lookups)")
            addrs = names.host_addresses(name)
            if not addrs:
                bpf_error(f"unknown host '{name}' (pybpf reads only /etc/hosts, no network lookups)")
            b = self.gen_gateway(eaddr, addrs, proto, d)
            if b is None:
                bpf_error(f"unknown host '{name}'")
            return b
        if q.addr == Q_PROTO:
            real = self.lookup_proto(name, proto)
            if real >= 0:
                return self.gen_proto(real, proto, d)
            bpf_error(f"unknown protocol: {name}")
        if q.addr == Q_PROTOCHAIN:
            real = self.lookup_proto(name, proto)
            if real >= 0:
                return self.gen_protochain(real, proto)
            bpf_error(f"unknown protocol: {name}")
        bpf_error("syntax error in filter expression")

    def gen_mcode(self, s1: str, s2: str | None, masklen: int, q) -> Block:
        nlen, n = names.atoin(s1)
        if nlen < 0:
            bpf_error(f"invalid IPv4 address '{s1}'")
        n = (n << (32 - nlen)) & M32
        if s2 is not None:
            mlen, m = names.atoin(s2)
            if mlen < 0:
                bpf_error(f"invalid IPv4 address '{s2}'")
            m = (m << (32 - mlen)) & M32
            if n & ~m & M32:
                bpf_error(f'non-network bits set in "{s1} mask {s2}"')
        else:
            if masklen > 32:
                bpf_error("mask length must be <= 32")
            m = 0 if masklen == 0 else (0xFFFFFFFF << (32 - masklen)) & M32
            if n & ~m & M32:
                bpf_error(f'non-network bits set in "{s1}/{masklen}"')
        if q.addr == Q_NET:
            return self.gen_host(n, m, q.proto, q.dir, q.addr)
        bpf_error("Mask syntax for networks only")

    def gen_ncode(self, s: str | None, v: int, q) -> Block:
        proto, d = q.proto, q.dir
        if s is None:
            vlen = 32
        elif proto == Q_DECNET:
            vlen, v = names.atodn(s)
            if vlen == 0:
                bpf_error(f"malformed decnet address '{s}'")
        else:
            vlen, v = names.atoin(s)
            if vlen < 0:
                bpf_error(f"invalid IPv4 address '{s}'")
        if q.addr in (Q_DEFAULT, Q_HOST, Q_NET):
            if proto == Q_DECNET:
                return self.gen_host(v, 0, proto, d, q.addr)
            if proto == Q_LINK:
                bpf_error("illegal link layer address")
            mask = 0xFFFFFFFF
            if s is None and q.addr == Q_NET:
                while v and (v & 0xFF000000) == 0:
                    v = (v << 8) & M32
                    mask = (mask << 8) & M32
            else:
                v = (v << (32 - vlen)) & M32
                mask = (mask << (32 - vlen)) & M32
            return self.gen_host(v, mask, proto, d, q.addr)
        if q.addr in (Q_PORT, Q_PORTRANGE):
            what = "port" if q.addr == Q_PORT else "portrange"
            ip_proto = {Q_UDP: IPPROTO_UDP, Q_TCP: IPPROTO_TCP, Q_SCTP: IPPROTO_SCTP,
                        Q_DEFAULT: PROTO_UNDEF}.get(proto)
            if ip_proto is None:
                bpf_error(f"illegal qualifier of '{what}'")
            if v > 65535:
                bpf_error(f"illegal port number {v} > 65535")
            if q.addr == Q_PORT:
                b = self.gen_port(v, ip_proto, d)
                gen_or(self.gen_port6(v, ip_proto, d), b)
            else:
                b = self.gen_portrange(v, v, ip_proto, d)
                gen_or(self.gen_portrange6(v, v, ip_proto, d), b)
            return b
        if q.addr == Q_GATEWAY:
            bpf_error("'gateway' requires a name")
        if q.addr == Q_PROTO:
            return self.gen_proto(v, proto, d)
        if q.addr == Q_PROTOCHAIN:
            return self.gen_protochain(v, proto)
        bpf_error("syntax error in filter expression")

    def gen_mcode6(self, s1: str, masklen: int, q) -> Block:
        try:
            addr = ipaddress.IPv6Address(s1).packed
        except ValueError:
            bpf_error(f"invalid ip6 address {s1}")
        if masklen > 128:
            bpf_error("mask length must be <= 128")
        mask_int = ((1 << 128) - 1) ^ ((1 << (128 - masklen)) - 1)
        mask = mask_int.to_bytes(16, "big")
        if int.from_bytes(addr, "big") & ~mask_int:
            bpf_error(f'non-network bits set in "{s1}/{masklen}"')
        if q.addr in (Q_DEFAULT, Q_HOST):
            if masklen != 128:
                bpf_error("Mask syntax for networks only")
        elif q.addr != Q_NET:
            bpf_error("invalid qualifier against IPv6 address")
        return self.gen_host6(addr, mask, q.proto, q.dir, q.addr)

    def gen_ecode(self, s: str, q) -> Block:
        if q.addr in (Q_HOST, Q_DEFAULT) and q.proto == Q_LINK:
            eaddr = names.ether_aton(s)
            if self.linktype not in _MAC_HOST_OFFSETS and self.linktype not in WLAN_DLTS:
                bpf_error(f"ethernet addresses supported only on {_MAC_LINKS}")
            return self.gen_link_hostop(eaddr, q.dir)
        bpf_error("ethernet address used in non-ether expression")

    def gen_acode(self, s: str, q) -> Block:
        """An ARCnet address ($hh)."""
        if self.linktype not in (DLT_ARCNET, DLT_ARCNET_LINUX):
            bpf_error("aid supported only on ARCnet")
        if q.addr in (Q_HOST, Q_DEFAULT) and q.proto == Q_LINK:
            return self.gen_ahostop(names.ether_aton(s), q.dir)
        bpf_error("ARCnet address used in non-arc expression")

    # -- arithmetic -----------------------------------------------------------------
    def xfer_to_x(self, a: Arth) -> Stmt:
        return Stmt(I.LDX | I.MEM, a.regno)

    def xfer_to_a(self, a: Arth) -> Stmt:
        return Stmt(I.LD | I.MEM, a.regno)

    def _index_to_x(self, inst: Arth, off: AbsOffset) -> Stmt:
        """X = the index expression `inst` plus the run-time part of `off`, for `proto[index]`."""
        s = self.gen_abs_offset_varpart(off)
        if s is None:
            return self.xfer_to_x(inst)
        sappend(s, self.xfer_to_a(inst))
        sappend(s, Stmt(I.ALU | I.ADD | I.X))
        sappend(s, Stmt(I.MISC | I.TAX))
        return s

    def gen_load(self, proto: int, inst: Arth, size: int) -> Arth:
        regno = self.alloc_reg()
        self.free_reg(inst.regno)
        size_code = {1: I.B, 2: I.H, 4: I.W}.get(size)
        if size_code is None:
            bpf_error("data size must be 1, 2, or 4")
        if proto == Q_RADIO:
            if self.linktype not in RADIO_DLTS:
                bpf_error("radio information not present in capture")
            s = self.xfer_to_x(inst)
            sappend(s, Stmt(I.LD | I.IND | size_code, 0))
            sappend(inst.s, s)
        elif proto == Q_LINK:
            s = self._index_to_x(inst, self.off_linkhdr)
            sappend(s, Stmt(I.LD | I.IND | size_code, self.off_linkhdr.constant_part))
            sappend(inst.s, s)
        elif proto in (Q_IP, Q_ARP, Q_RARP, Q_ATALK, Q_DECNET, Q_SCA, Q_LAT, Q_MOPRC, Q_MOPDL, Q_IPV6):
            s = self._index_to_x(inst, self.off_linkpl)
            sappend(s, Stmt(I.LD | I.IND | size_code, self.off_linkpl.constant_part + self.off_nl))
            sappend(inst.s, s)
            b = self.gen_proto_abbrev(proto)
            if inst.b is not None:
                gen_and(inst.b, b)
            inst.b = b
        elif proto in (Q_SCTP, Q_TCP, Q_UDP, Q_ICMP, Q_IGMP, Q_IGRP, Q_PIM, Q_VRRP, Q_CARP):
            s = self.gen_loadx_iphdrlen()
            sappend(s, self.xfer_to_a(inst))
            sappend(s, Stmt(I.ALU | I.ADD | I.X))
            sappend(s, Stmt(I.MISC | I.TAX))
            sappend(s, Stmt(I.LD | I.IND | size_code, self.off_linkpl.constant_part + self.off_nl))
            sappend(inst.s, s)
            b = self.gen_ipfrag()
            gen_and(self.gen_proto_abbrev(proto), b)
            if inst.b is not None:
                gen_and(inst.b, b)
            gen_and(self.gen_proto_abbrev(Q_IP), b)
            inst.b = b
        elif proto == Q_ICMPV6:
            b = self.gen_proto_abbrev(Q_IPV6)
            if inst.b is not None:
                gen_and(inst.b, b)
            inst.b = b
            b = self.gen_cmp(OR_LINKPL, 6, I.B, 58)
            if inst.b is not None:
                gen_and(inst.b, b)
            inst.b = b
            s = self._index_to_x(inst, self.off_linkpl)
            sappend(s, Stmt(I.LD | I.IND | size_code, self.off_linkpl.constant_part + self.off_nl + 40))
            sappend(inst.s, s)
        else:
            bpf_error("unsupported index operation")
        inst.regno = regno
        sappend(inst.s, Stmt(I.ST, regno))
        return inst

    def gen_relation(self, code: int, a0: Arth, a1: Arth, reversed_: bool) -> Block:
        s0 = self.xfer_to_x(a1)
        s1 = self.xfer_to_a(a0)
        if code == I.JEQ:
            s2 = Stmt(I.ALU | I.SUB | I.X)
            b = Block(JMP(code))
            sappend(s1, s2)
        else:
            b = Block(I.JMP | code | I.X)
        if reversed_:
            gen_not(b)
        sappend(s0, s1)
        sappend(a1.s, s0)
        sappend(a0.s, a1.s)
        b.stmts = a0.s
        self.free_reg(a0.regno)
        self.free_reg(a1.regno)
        if a0.b is not None:
            if a1.b is not None:
                tmp = a1.b
                gen_and(a0.b, tmp)
            else:
                tmp = a0.b
        else:
            tmp = a1.b
        if tmp is not None:
            gen_and(tmp, b)
        return b

    def gen_loadlen(self) -> Arth:
        regno = self.alloc_reg()
        s = Stmt(I.LD | I.LEN)
        s.next = Stmt(I.ST, regno)
        return Arth(s, regno)

    def gen_loadi(self, val: int) -> Arth:
        reg = self.alloc_reg()
        s = Stmt(I.LD | I.IMM, val)
        s.next = Stmt(I.ST, reg)
        return Arth(s, reg)

    def gen_neg(self, a: Arth) -> Arth:
        sappend(a.s, self.xfer_to_a(a))
        sappend(a.s, Stmt(I.ALU | I.NEG, 0))
        sappend(a.s, Stmt(I.ST, a.regno))
        return a

    def gen_arth(self, code: int, a0: Arth, a1: Arth) -> Arth:
        if a1.s.code == (I.LD | I.IMM):
            if code == I.DIV and a1.s.k == 0:
                bpf_error("division by zero")
            if code == I.MOD and a1.s.k == 0:
                bpf_error("modulus by zero")
            if code in (I.LSH, I.RSH) and a1.s.k > 31:
                bpf_error("shift by more than 31 bits")
        s0 = self.xfer_to_x(a1)
        s1 = self.xfer_to_a(a0)
        sappend(s1, Stmt(I.ALU | I.X | code))
        sappend(s0, s1)
        sappend(a1.s, s0)
        sappend(a0.s, a1.s)
        self.free_reg(a0.regno)
        self.free_reg(a1.regno)
        a0.regno = self.alloc_reg()
        sappend(a0.s, Stmt(I.ST, a0.regno))
        return a0

    # -- other primitives -------------------------------------------------------------
    def gen_len(self, jmp: int, n: int) -> Block:
        b = Block(JMP(jmp), n)
        b.stmts = Stmt(I.LD | I.LEN)
        return b

    def gen_byteop(self, op: str, idx: int, val: int) -> Block:
        if op == "=":
            return self.gen_cmp(OR_LINKHDR, idx, I.B, val)
        if op == "<":
            return self.gen_cmp_lt(OR_LINKHDR, idx, I.B, val)
        if op == ">":
            return self.gen_cmp_gt(OR_LINKHDR, idx, I.B, val)
        s = Stmt(I.ALU | (I.OR if op == "|" else I.AND) | I.K, val)
        b = Block(JMP(I.JEQ))
        b.stmts = s
        gen_not(b)
        return b

    def gen_broadcast(self, proto: int) -> Block:
        if proto in (Q_DEFAULT, Q_LINK):
            lt = self.linktype
            if lt in (DLT_ARCNET, DLT_ARCNET_LINUX):
                return self.gen_ahostop(b"\x00", Q_DST)
            if lt not in _MAC_HOST_NAMES:
                bpf_error("not a broadcast link")
            return self.gen_link_hostop(b"\xff" * 6, Q_DST)
        if proto == Q_IP:
            if self.netmask == PCAP_NETMASK_UNKNOWN:
                bpf_error("netmask not known, so 'ip broadcast' not supported")
            b0 = self.gen_linktype(ETHERTYPE_IP)
            hostmask = ~self.netmask & M32
            b1 = self.gen_mcmp(OR_LINKPL, 16, I.W, 0, hostmask)
            b2 = self.gen_mcmp(OR_LINKPL, 16, I.W, hostmask, hostmask)
            gen_or(b1, b2)
            gen_and(b0, b2)
            return b2
        bpf_error("only link-layer/IP broadcast filters supported")

    def gen_multicast(self, proto: int) -> Block:
        if proto in (Q_DEFAULT, Q_LINK):
            lt = self.linktype
            if lt in (DLT_ARCNET, DLT_ARCNET_LINUX):
                return self.gen_ahostop(b"\x00", Q_DST)  # ARCnet broadcast is its only multicast
            if lt in ETHER_DLTS:
                b1 = self.gen_prevlinkhdr_check()
                b0 = self.gen_jset(OR_LINKHDR, 0, I.B, 1)
                if b1 is not None:
                    gen_and(b1, b0)
                return b0
            if lt == DLT_FDDI:
                return self.gen_jset(OR_LINKHDR, 1, I.B, 1)
            if lt in (DLT_IEEE802, DLT_IP_OVER_FC):
                return self.gen_jset(OR_LINKHDR, 2, I.B, 1)
            if lt in WLAN_DLTS:
                return self.gen_wlan_multicast()
        elif proto == Q_IP:
            b0 = self.gen_linktype(ETHERTYPE_IP)
            b1 = self.gen_cmp_ge(OR_LINKPL, 16, I.B, 224)
            gen_and(b0, b1)
            return b1
        elif proto == Q_IPV6:
            b0 = self.gen_linktype(ETHERTYPE_IPV6)
            b1 = self.gen_cmp(OR_LINKPL, 24, I.B, 255)
            gen_and(b0, b1)
            return b1
        bpf_error("link-layer multicast filters supported only on ethernet/FDDI/token ring/ARCNET/802.11/"
                  "ATM LANE/Fibre Channel")

    def gen_inbound(self, outbound: bool) -> Block:
        lt = self.linktype
        if lt == DLT_SLIP:
            # libpcap's C compiler evaluates these call arguments right to left; registers follow that order
            a1 = self.gen_loadi(0)
            a0 = self.gen_load(Q_LINK, self.gen_loadi(0), 1)
            return self.gen_relation(I.JEQ, a0, a1, outbound)
        if lt == DLT_IPNET:
            return self.gen_cmp(OR_LINKHDR, 2, I.H, IPNET_OUTBOUND if outbound else IPNET_INBOUND)
        if lt == DLT_PFLOG:
            return self.gen_pf_dir(outbound)
        if lt == DLT_PPP_PPPD:
            return self.gen_cmp(OR_LINKHDR, 0, I.B, PPP_PPPD_OUT if outbound else PPP_PPPD_IN)
        if lt in JUNIPER_DLTS:
            return self.gen_mcmp(OR_LINKHDR, 3, I.B, 0 if outbound else 1, 0x01)
        if lt == DLT_SLL:
            b0 = self.gen_cmp(OR_LINKHDR, 0, I.H, LINUX_SLL_OUTGOING)
        elif lt == DLT_SLL2:
            b0 = self.gen_cmp(OR_LINKHDR, 10, I.B, LINUX_SLL_OUTGOING)
        else:
            b0 = self.gen_cmp(OR_LINKHDR, (SKF_AD_OFF + SKF_AD_PKTTYPE) & M32, I.H, PACKET_OUTGOING)
        if not outbound:
            gen_not(b0)
        return b0

    def gen_ifindex(self, ifindex: int) -> Block:
        if self.linktype == DLT_SLL2:
            return self.gen_cmp(OR_LINKHDR, 4, I.W, ifindex)
        return self.gen_cmp(OR_LINKHDR, (SKF_AD_OFF + SKF_AD_IFINDEX) & M32, I.W, ifindex)

    def _and_number(self, b0: Block, number: int | None, what: str, maximum: int,
                    offrel: int, offset: int, size: int, shift: int, mask: int) -> Block:
        """b0 AND the `number` of `vlan N`, `mpls N`, `pppoes N`, `geneve N` (b0 alone when N is omitted)."""
        if number is None:
            return b0
        if number > maximum:
            bpf_error(f"{what} {number} greater than maximum {maximum}")
        b1 = self.gen_mcmp(offrel, offset, size, (number << shift) & M32, mask)
        gen_and(b0, b1)
        return b1

    def gen_vlan(self, vlan_num: int | None) -> Block:
        if self.label_stack_depth > 0:
            bpf_error("no VLAN match after MPLS")
        if self.linktype not in ETHER_DLTS and self.linktype not in (DLT_IEEE802_11, *RADIO_DLTS):
            bpf_error(f"no VLAN support for {linktypes.description(self.linktype)}")
        b0 = self.gen_linktype(ETHERTYPE_8021Q)
        b1 = self.gen_linktype(ETHERTYPE_8021AD)
        gen_or(b0, b1)
        b0 = b1
        b1 = self.gen_linktype(ETHERTYPE_8021QINQ)
        gen_or(b0, b1)
        b0 = b1
        b0 = self._and_number(b0, vlan_num, "VLAN tag", 0x0FFF, OR_LINKPL, 0, I.H, 0, 0x0FFF)
        self.off_linkpl.constant_part += 4
        self.off_linktype.constant_part += 4
        self.vlan_stack_depth += 1
        return b0

    def gen_mpls(self, label: int | None) -> Block:
        if self.label_stack_depth > 0:
            b0 = self.gen_mcmp(OR_PREVMPLSHDR, 2, I.B, 0, 0x01)
        elif self.linktype in (DLT_C_HDLC, DLT_HDLC, *ETHER_DLTS):
            b0 = self.gen_linktype(ETHERTYPE_MPLS)
        elif self.linktype == DLT_PPP:
            b0 = self.gen_linktype(PPP_MPLS_UCAST)
        else:
            bpf_error(f"no MPLS support for {linktypes.description(self.linktype)}")
        b0 = self._and_number(b0, label, "MPLS label", 0xFFFFF, OR_LINKPL, 0, I.W, 12, 0xFFFFF000)
        self.off_nl_nosnap += 4
        self.off_nl += 4
        self.label_stack_depth += 1
        return b0

    def gen_pppoes(self, sess: int | None) -> Block:
        b0 = self.gen_linktype(ETHERTYPE_PPPOES)
        b0 = self._and_number(b0, sess, "PPPoE session number", 0xFFFF, OR_LINKPL, 0, I.W, 0, 0x0000FFFF)
        self.push_linkhdr(DLT_PPP, self.off_linkpl.is_variable,
                          self.off_linkpl.constant_part + self.off_nl + 6, self.off_linkpl.reg)
        self.off_linktype = self.off_linkhdr.copy()
        self.off_linkpl.constant_part = self.off_linkhdr.constant_part + 2
        self.off_nl = 0
        self.off_nl_nosnap = 0
        return b0

    # -- Geneve -------------------------------------------------------------------------
    def gen_geneve_check(self, gen_portfn, offrel: int, vni: int | None) -> Block:
        b0 = gen_portfn(GENEVE_PORT, IPPROTO_UDP, Q_DST)
        b1 = self.gen_mcmp(offrel, 8, I.B, 0, 0xC0)
        gen_and(b0, b1)
        return self._and_number(b1, vni, "Geneve VNI", 0xFFFFFF, offrel, 12, I.W, 8, 0xFFFFFF00)

    def gen_geneve(self, vni: int | None) -> Block:
        b0 = self.gen_geneve_check(self.gen_port, OR_TRAN_IPV4, vni)
        s = self.gen_loadx_iphdrlen()
        sappend(s, Stmt(I.MISC | I.TXA))
        b1 = Block(I.JMP | I.JEQ | I.X, 0)
        b1.stmts = s
        gen_and(b0, b1)
        b4 = b1
        b0 = self.gen_geneve_check(self.gen_port6, OR_TRAN_IPV6, vni)
        s = self.gen_abs_offset_varpart(self.off_linkpl)
        if s is not None:
            sappend(s, Stmt(I.LD | I.IMM, 40))
            sappend(s, Stmt(I.ALU | I.ADD | I.X, 0))
        else:
            s = Stmt(I.LD | I.IMM, 40)
        sappend(s, Stmt(I.MISC | I.TAX))
        b1 = Block(I.JMP | I.JEQ | I.X, 0)
        b1.stmts = s
        gen_and(b0, b1)
        gen_or(b4, b1)
        b0 = b1
        s = self.gen_geneve_offsets()
        b1 = self.gen_true()
        sappend(s, b1.stmts)
        b1.stmts = s
        gen_and(b0, b1)
        self.is_geneve = True
        return b1

    def gen_geneve_offsets(self) -> Stmt:
        s = Stmt(I.ALU | I.ADD | I.K, self.off_linkpl.constant_part + self.off_nl + 8)
        sappend(s, Stmt(I.MISC | I.TAX))
        sappend(s, Stmt(I.ALU | I.ADD | I.K, 2))
        self.off_linktype.reg = self.alloc_reg()
        self.off_linktype.is_variable = True
        self.off_linktype.constant_part = 0
        sappend(s, Stmt(I.ST, self.off_linktype.reg))
        sappend(s, Stmt(I.LD | I.IND | I.B, 0))
        sappend(s, Stmt(I.ALU | I.AND | I.K, 0x3F))
        sappend(s, Stmt(I.ALU | I.MUL | I.K, 4))
        sappend(s, Stmt(I.ALU | I.ADD | I.K, 8))
        sappend(s, Stmt(I.ALU | I.ADD | I.X, 0))
        self.push_linkhdr(DLT_EN10MB, True, 0, self.alloc_reg())
        sappend(s, Stmt(I.ST, self.off_linkhdr.reg))
        self.no_optimize = True
        sappend(s, Stmt(I.LD | I.IND | I.H, 2))
        sappend(s, Stmt(I.LDX | I.MEM, self.off_linkhdr.reg))
        s_proto = Stmt(JMP(I.JEQ), ETHERTYPE_TEB)
        sappend(s, s_proto)
        s1 = Stmt(I.MISC | I.TXA)
        sappend(s, s1)
        s_proto.jt = s1
        sappend(s, Stmt(I.ALU | I.ADD | I.K, 12))
        sappend(s, Stmt(I.ST, self.off_linktype.reg))
        sappend(s, Stmt(I.ALU | I.ADD | I.K, 2))
        sappend(s, Stmt(I.MISC | I.TAX))
        self.off_linkpl.reg = self.alloc_reg()
        self.off_linkpl.is_variable = True
        self.off_linkpl.constant_part = 0
        s1 = Stmt(I.STX, self.off_linkpl.reg)
        sappend(s, s1)
        s_proto.jf = s1
        self.off_nl = 0
        return s

    def gen_geneve_ll_check(self) -> Block:
        s = Stmt(I.LD | I.MEM, self.off_linkhdr.reg)
        sappend(s, Stmt(I.LDX | I.MEM, self.off_linkpl.reg))
        b0 = Block(I.JMP | I.JEQ | I.X, 0)
        b0.stmts = s
        gen_not(b0)
        return b0


    # -- the tree walk --------------------------------------------------------------
    def block(self, node) -> Block:
        """Generate code for a boolean node in the order yacc runs its actions (post-order)."""
        kind = node[0]
        if kind in ("and", "or"):
            b0 = self.block(node[1])
            b1 = self.block(node[2])
            (gen_and if kind == "and" else gen_or)(b0, b1)
            return b1
        if kind == "not":
            b = self.block(node[1])
            gen_not(b)
            return b
        if kind == "pname":
            return self.gen_proto_abbrev(node[1])
        if kind == "scode":
            return self.gen_scode(node[1], node[2])
        if kind == "ncode":
            return self.gen_ncode(node[1], 0, node[2])
        if kind == "num":
            return self.gen_ncode(None, node[1], node[2])
        if kind == "mcode":
            return self.gen_mcode(node[1], node[2], node[3], node[4])
        if kind == "mcode6":
            return self.gen_mcode6(node[1], node[2], node[3])
        if kind == "ecode":
            return self.gen_ecode(node[1], node[2])
        if kind == "acode":
            return self.gen_acode(node[1], node[2])
        if kind == "rel":
            a0 = self.arth(node[2])
            a1 = self.arth(node[3])
            return self.gen_relation(node[1], a0, a1, node[4])
        if kind == "error":
            bpf_error(node[1])
        if kind == "llc":
            return self.gen_llc(node[1])
        if kind == "wlan_type":
            return self.gen_wlan_type(node[1], node[2])
        if kind == "wlan_subtype":
            return self.gen_wlan_subtype(node[1])
        if kind == "wlan_dir":
            return self.gen_wlan_dir(node[1])
        if kind == "atmtype":
            return self.gen_atmtype_abbrev(node[1])
        if kind == "atmmulti":
            return self.gen_atmmulti_abbrev(node[1])
        if kind in ("atmfield", "mtp3field"):
            field_code = self.gen_atmfield_code if kind == "atmfield" else self.gen_mtp3field_code
            field = node[1]
            b = None
            for jtype, reverse, value in node[2]:
                b1 = field_code(field, value, jtype, reverse)
                if b is not None:
                    gen_or(b, b1)
                b = b1
            return b
        if kind == "mtp2type":
            return self.gen_mtp2type_abbrev(node[1])
        if kind == "pf":
            return self.pf(node[1], node[2])
        return self.other(node)

    def pf(self, what: str, value) -> Block:
        if what == "PF_IFNAME":
            return self.gen_pf_ifname(value)
        if what == "PF_RSET":
            return self.gen_pf_ruleset(value)
        if what == "PF_RNR":
            return self.gen_pf_rnr(value)
        if what == "PF_SRNR":
            return self.gen_pf_srnr(value)
        if what == "PF_REASON":
            return self.gen_pf_reason(value)
        return self.gen_pf_action(value)

    def other(self, node) -> Block:
        what = node[1]
        if what == "TK_BROADCAST":
            return self.gen_broadcast(node[2])
        if what == "TK_MULTICAST":
            return self.gen_multicast(node[2])
        if what == "LESS":
            b = self.gen_len(I.JGT, node[2])
            gen_not(b)
            return b
        if what == "GREATER":
            return self.gen_len(I.JGE, node[2])
        if what == "CBYTE":
            return self.gen_byteop(node[3], node[2], node[4])
        if what in ("INBOUND", "OUTBOUND"):
            return self.gen_inbound(what == "OUTBOUND")
        if what == "IFINDEX":
            return self.gen_ifindex(node[2])
        if what == "VLAN":
            return self.gen_vlan(node[2])
        if what == "MPLS":
            return self.gen_mpls(node[2])
        if what == "PPPOED":
            return self.gen_linktype(ETHERTYPE_PPPOED)
        if what == "PPPOES":
            return self.gen_pppoes(node[2])
        if what == "GENEVE":
            return self.gen_geneve(node[2])
        raise AssertionError(f"unknown node {node!r}")

    def arth(self, node) -> Arth:
        kind = node[0]
        if kind == "loadi":
            return self.gen_loadi(node[1])
        if kind == "len":
            return self.gen_loadlen()
        if kind == "neg":
            return self.gen_neg(self.arth(node[1]))
        if kind == "arth":
            a0 = self.arth(node[2])
            a1 = self.arth(node[3])
            return self.gen_arth(node[1], a0, a1)
        if kind == "load":
            inner = self.arth(node[2])
            return self.gen_load(node[1], inner, node[3])
        raise AssertionError(f"unknown arithmetic node {node!r}")

    def finish(self, tree) -> Block:
        """The root block: the expression's chain patched to 'ret snaplen' and 'ret 0'."""
        if tree is None:
            return Block(I.RET | I.K, self.snaplen)
        p = self.block(tree)
        self.insert_compute_vloffsets(p.head)
        ppi_dlt_check = self.gen_ppi_dlt_check()
        if ppi_dlt_check is not None:
            gen_and(ppi_dlt_check, p)
        backpatch(p, Block(I.RET | I.K, self.snaplen))
        p.sense = not p.sense
        backpatch(p, Block(I.RET | I.K, 0))
        return p.head

    def insert_compute_vloffsets(self, b: Block) -> None:
        """Prepend the code that computes run-time header offsets into their registers."""
        if self.off_linkpl.reg != -1 and self.off_linkhdr.is_variable and self.off_linkhdr.reg == -1:
            self.off_linkhdr.reg = self.alloc_reg()  # the payload offset is computed from the header offset
        outermost = self.outermostlinktype
        s = None
        if outermost == DLT_PRISM_HEADER:
            s = self.gen_load_prism_llprefixlen()
        elif outermost == DLT_IEEE802_11_RADIO_AVS:
            s = self.gen_load_avs_llprefixlen()
        elif outermost in (DLT_IEEE802_11_RADIO, DLT_PPI):
            s = self.gen_load_radiotap_llprefixlen()
        if outermost in WLAN_DLTS:
            s = self.gen_load_802_11_header_len(s, b.stmts)
        elif outermost == DLT_PFLOG:
            s = self.gen_load_pflog_llprefixlen()
        if s is None and self.is_vlan_vloffset:
            if self.off_linkpl.reg == -1:
                self.off_linkpl.reg = self.alloc_reg()
            if self.off_linktype.reg == -1:
                self.off_linktype.reg = self.alloc_reg()
            s = Stmt(I.LD | I.W | I.IMM, 0)
            sappend(s, Stmt(I.ST, self.off_linkpl.reg))
            sappend(s, Stmt(I.ST, self.off_linktype.reg))
        if s is not None:
            sappend(s, b.stmts)
            b.stmts = s
