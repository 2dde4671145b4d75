"""Link-layer types (DLT_* values) by name, as tcpdump's -y and pcap files know them.

The filter compiler needs a linktype to know where the network header starts;
the CLI and the tests name them the way tcpdump does (`-y EN10MB`).  The names,
numbers (Linux values) and descriptions are the tcpdump.org registry as libpcap
1.10 knows it; the descriptions appear in libpcap's error messages, so they are
kept word for word.
"""

from __future__ import annotations

from ..errors import NotSupportedError

# name -> (DLT value on Linux, description)
DLT: dict[str, tuple[int, str]] = {
    "NULL": (0, 'BSD loopback'),
    "EN10MB": (1, 'Ethernet'),
    "IEEE802": (6, 'Token ring'),
    "ARCNET": (7, 'BSD ARCNET'),
    "SLIP": (8, 'SLIP'),
    "PPP": (9, 'PPP'),
    "FDDI": (10, 'FDDI'),
    "ATM_RFC1483": (11, 'RFC 1483 LLC-encapsulated ATM'),
    "RAW": (12, 'Raw IP'),
    "SLIP_BSDOS": (15, 'BSD/OS SLIP'),
    "PPP_BSDOS": (16, 'BSD/OS PPP'),
    "ATM_CLIP": (19, 'Linux Classical IP over ATM'),
    "PPP_SERIAL": (50, 'PPP over serial'),
    "PPP_ETHER": (51, 'PPPoE'),
    "SYMANTEC_FIREWALL": (99, 'Symantec Firewall'),
    "C_HDLC": (104, 'Cisco HDLC'),
    "IEEE802_11": (105, '802.11'),
    "FRELAY": (107, 'Frame Relay'),
    "LOOP": (108, 'OpenBSD loopback'),
    "ENC": (109, 'OpenBSD encapsulated IP'),
    "LINUX_SLL": (113, 'Linux cooked v1'),
    "LTALK": (114, 'Localtalk'),
    "PFLOG": (117, 'OpenBSD pflog file'),
    "PRISM_HEADER": (119, '802.11 plus Prism header'),
    "IP_OVER_FC": (122, 'RFC 2625 IP-over-Fibre Channel'),
    "SUNATM": (123, 'Sun raw ATM'),
    "IEEE802_11_RADIO": (127, '802.11 plus radiotap header'),
    "ARCNET_LINUX": (129, 'Linux ARCNET'),
    "JUNIPER_MLPPP": (130, 'Juniper Multi-Link PPP'),
    "JUNIPER_MLFR": (131, 'Juniper Multi-Link Frame Relay'),
    "JUNIPER_ES": (132, 'Juniper Encryption Services PIC'),
    "JUNIPER_GGSN": (133, 'Juniper GGSN PIC'),
    "JUNIPER_MFR": (134, 'Juniper FRF.16 Frame Relay'),
    "JUNIPER_ATM2": (135, 'Juniper ATM2 PIC'),
    "JUNIPER_SERVICES": (136, 'Juniper Advanced Services PIC'),
    "JUNIPER_ATM1": (137, 'Juniper ATM1 PIC'),
    "APPLE_IP_OVER_IEEE1394": (138, 'Apple IP-over-IEEE 1394'),
    "MTP2_WITH_PHDR": (139, 'SS7 MTP2 with Pseudo-header'),
    "MTP2": (140, 'SS7 MTP2'),
    "MTP3": (141, 'SS7 MTP3'),
    "SCCP": (142, 'SS7 SCCP'),
    "DOCSIS": (143, 'DOCSIS'),
    "LINUX_IRDA": (144, 'Linux IrDA'),
    "IEEE802_11_RADIO_AVS": (163, '802.11 plus AVS radio information header'),
    "JUNIPER_MONITOR": (164, 'Juniper Passive Monitor PIC'),
    "BACNET_MS_TP": (165, 'BACnet MS/TP'),
    "PPP_PPPD": (166, 'PPP for pppd, with direction flag'),
    "JUNIPER_PPPOE": (167, 'Juniper PPPoE'),
    "JUNIPER_PPPOE_ATM": (168, 'Juniper PPPoE/ATM'),
    "GPRS_LLC": (169, 'GPRS LLC'),
    "GPF_T": (170, 'GPF-T'),
    "GPF_F": (171, 'GPF-F'),
    "JUNIPER_PIC_PEER": (174, 'Juniper PIC Peer'),
    "ERF_ETH": (175, 'Ethernet with Endace ERF header'),
    "ERF_POS": (176, 'Packet-over-SONET with Endace ERF header'),
    "LINUX_LAPD": (177, 'Linux vISDN LAPD'),
    "JUNIPER_ETHER": (178, 'Juniper Ethernet'),
    "JUNIPER_PPP": (179, 'Juniper PPP'),
    "JUNIPER_FRELAY": (180, 'Juniper Frame Relay'),
    "JUNIPER_CHDLC": (181, 'Juniper C-HDLC'),
    "MFR": (182, 'FRF.16 Frame Relay'),
    "JUNIPER_VP": (183, 'Juniper Voice PIC'),
    "A429": (184, 'Arinc 429'),
    "A653_ICM": (185, 'Arinc 653 Interpartition Communication'),
    "USB_FREEBSD": (186, 'USB with FreeBSD header'),
    "BLUETOOTH_HCI_H4": (187, 'Bluetooth HCI UART transport layer'),
    "IEEE802_16_MAC_CPS": (188, 'IEEE 802.16 MAC Common Part Sublayer'),
    "USB_LINUX": (189, 'USB with Linux header'),
    "CAN20B": (190, 'Controller Area Network (CAN) v. 2.0B'),
    "IEEE802_15_4_LINUX": (191, 'IEEE 802.15.4 with Linux padding'),
    "PPI": (192, 'Per-Packet Information'),
    "IEEE802_16_MAC_CPS_RADIO": (193, 'IEEE 802.16 MAC Common Part Sublayer plus radiotap header'),
    "JUNIPER_ISM": (194, 'Juniper Integrated Service Module'),
    "IEEE802_15_4": (195, 'IEEE 802.15.4 with FCS'),
    "SITA": (196, 'SITA pseudo-header'),
    "ERF": (197, 'Endace ERF header'),
    "RAIF1": (198, 'Ethernet with u10 Networks pseudo-header'),
    "IPMB_KONTRON": (199, 'IPMB with Kontron pseudo-header'),
    "JUNIPER_ST": (200, 'Juniper Secure Tunnel'),
    "BLUETOOTH_HCI_H4_WITH_PHDR": (201, 'Bluetooth HCI UART transport layer plus pseudo-header'),
    "AX25_KISS": (202, 'AX.25 with KISS header'),
    "IPMB_LINUX": (209, 'IPMB with Linux/Pigeon Point pseudo-header'),
    "IEEE802_15_4_NONASK_PHY": (215, 'IEEE 802.15.4 with non-ASK PHY data'),
    "LINUX_EVDEV": (216, 'Linux evdev events'),
    "MPLS": (219, 'MPLS with label as link-layer header'),
    "USB_LINUX_MMAPPED": (220, 'USB with padded Linux header'),
    "DECT": (221, 'DECT'),
    "AOS": (222, 'AOS Space Data Link protocol'),
    "WIHART": (223, 'Wireless HART'),
    "FC_2": (224, 'Fibre Channel FC-2'),
    "FC_2_WITH_FRAME_DELIMS": (225, 'Fibre Channel FC-2 with frame delimiters'),
    "IPNET": (226, 'Solaris ipnet'),
    "CAN_SOCKETCAN": (227, 'CAN-bus with SocketCAN headers'),
    "IPV4": (228, 'Raw IPv4'),
    "IPV6": (229, 'Raw IPv6'),
    "IEEE802_15_4_NOFCS": (230, 'IEEE 802.15.4 without FCS'),
    "DBUS": (231, 'D-Bus'),
    "JUNIPER_VS": (232, 'Juniper Virtual Server'),
    "JUNIPER_SRX_E2E": (233, 'Juniper SRX E2E'),
    "JUNIPER_FIBRECHANNEL": (234, 'Juniper Fibre Channel'),
    "DVB_CI": (235, 'DVB-CI'),
    "MUX27010": (236, 'MUX27010'),
    "STANAG_5066_D_PDU": (237, 'STANAG 5066 D_PDUs'),
    "JUNIPER_ATM_CEMIC": (238, 'Juniper ATM CEMIC'),
    "NFLOG": (239, 'Linux netfilter log messages'),
    "NETANALYZER": (240, 'Ethernet with Hilscher netANALYZER pseudo-header'),
    "NETANALYZER_TRANSPARENT": (241, 'Ethernet with Hilscher netANALYZER pseudo-header and with preamble and SFD'),
    "IPOIB": (242, 'RFC 4391 IP-over-Infiniband'),
    "MPEG_2_TS": (243, 'MPEG-2 transport stream'),
    "NG40": (244, 'ng40 protocol tester Iub/Iur'),
    "NFC_LLCP": (245, 'NFC LLCP PDUs with pseudo-header'),
    "PFSYNC": (246, 'Packet filter state syncing'),
    "INFINIBAND": (247, 'InfiniBand'),
    "SCTP": (248, 'SCTP'),
    "USBPCAP": (249, 'USB with USBPcap header'),
    "RTAC_SERIAL": (250, 'Schweitzer Engineering Laboratories RTAC packets'),
    "BLUETOOTH_LE_LL": (251, 'Bluetooth Low Energy air interface'),
    "NETLINK": (253, 'Linux netlink'),
    "BLUETOOTH_LINUX_MONITOR": (254, 'Bluetooth Linux Monitor'),
    "BLUETOOTH_BREDR_BB": (255, 'Bluetooth Basic Rate/Enhanced Data Rate baseband packets'),
    "BLUETOOTH_LE_LL_WITH_PHDR": (256, 'Bluetooth Low Energy air interface with pseudo-header'),
    "PROFIBUS_DL": (257, 'PROFIBUS data link layer'),
    "PKTAP": (258, 'Apple DLT_PKTAP'),
    "EPON": (259, 'Ethernet with 802.3 Clause 65 EPON preamble'),
    "IPMI_HPM_2": (260, 'IPMI trace packets'),
    "ZWAVE_R1_R2": (261, 'Z-Wave RF profile R1 and R2 packets'),
    "ZWAVE_R3": (262, 'Z-Wave RF profile R3 packets'),
    "WATTSTOPPER_DLM": (263, 'WattStopper Digital Lighting Management (DLM) and Legrand Nitoo Open protocol'),
    "ISO_14443": (264, 'ISO 14443 messages'),
    "RDS": (265, 'IEC 62106 Radio Data System groups'),
    "USB_DARWIN": (266, 'USB with Darwin header'),
    "OPENFLOW": (267, 'OpenBSD DLT_OPENFLOW'),
    "SDLC": (268, 'IBM SDLC frames'),
    "TI_LLN_SNIFFER": (269, 'TI LLN sniffer frames'),
    "VSOCK": (271, 'Linux vsock'),
    "NORDIC_BLE": (272, 'Nordic Semiconductor Bluetooth LE sniffer frames'),
    "DOCSIS31_XRA31": (273, 'Excentis XRA-31 DOCSIS 3.1 RF sniffer frames'),
    "ETHERNET_MPACKET": (274, '802.3br mPackets'),
    "DISPLAYPORT_AUX": (275, 'DisplayPort AUX channel monitoring data'),
    "LINUX_SLL2": (276, 'Linux cooked v2'),
    "OPENVIZSLA": (278, 'OpenVizsla USB'),
    "EBHSCR": (279, 'Elektrobit High Speed Capture and Replay (EBHSCR)'),
    "VPP_DISPATCH": (280, 'VPP graph dispatch tracer'),
    "DSA_TAG_BRCM": (281, 'Broadcom tag'),
    "DSA_TAG_BRCM_PREPEND": (282, 'Broadcom tag (prepended)'),
    "IEEE802_15_4_TAP": (283, 'IEEE 802.15.4 with pseudo-header'),
    "DSA_TAG_DSA": (284, 'Marvell DSA'),
    "DSA_TAG_EDSA": (285, 'Marvell EDSA'),
    "ELEE": (286, 'ELEE lawful intercept packets'),
    "Z_WAVE_SERIAL": (287, 'Z-Wave serial frames between host and chip'),
    "USB_2_0": (288, 'USB 2.0/1.1/1.0 as transmitted over the cable'),
    "ATSC_ALP": (289, 'ATSC Link-Layer Protocol packets'),
}

_BY_VALUE = {value: name for name, (value, _) in DLT.items()}
_BY_UPPER_NAME = {name.upper(): name for name in DLT}
# pcap files use LINKTYPE_* numbers; outside libpcap's "matching" range a few differ from DLT_* values.
_LINKTYPE_TO_DLT = {100: 11, 101: 12, 102: 15, 103: 16, 106: 19}

# Values from MATCHING_MIN to MATCHING_MAX are the same as LINKTYPE_* values; libpcap's
# compiler accepts all of them (most only for `link[...]` loads).  Below that range it
# accepts only the types it knows.
MATCHING_MIN, MATCHING_MAX = 104, 289

def dlt_value(linktype: str | int) -> int:
    """The DLT number for a name ('EN10MB', 'DLT_EN10MB', case-insensitive) or a number."""
    if isinstance(linktype, int):
        return linktype
    text = linktype.strip()
    if text.isdigit():
        return int(text)
    name = text.upper()
    if name.startswith("DLT_") and name not in _BY_UPPER_NAME:
        name = name[4:]
    if name not in _BY_UPPER_NAME:
        raise NotSupportedError(f"link-layer type {linktype!r}",
                                reason="unknown name; `pybpf filter --help` lists the names (tcpdump's -y names)")
    return DLT[_BY_UPPER_NAME[name]][0]


def dlt_name(value: int) -> str:
    """The tcpdump name of a DLT number, or 'DLT <n>' when it has none."""
    return _BY_VALUE.get(value, f"DLT {value}")


def description(value: int) -> str:
    """libpcap's description of a linktype ('DLT <n>' for unnamed ones), as in its error messages."""
    name = _BY_VALUE.get(value)
    return DLT[name][1] if name else f"DLT {value}"


def from_linktype(value: int) -> int:
    """Map a pcap file's LINKTYPE_* number to the DLT_* value the compiler uses."""
    return _LINKTYPE_TO_DLT.get(value, value)
