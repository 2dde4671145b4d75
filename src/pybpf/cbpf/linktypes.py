"""Link-layer types (DLT_* values) by name, as tcpdump's -y and pcap files know them.

The filter compiler needs a linktype to know where the network header starts;
the CLI and the tests name them the way tcpdump does (`-y EN10MB`).
"""

from __future__ import annotations

from ..errors import NotSupportedError

# name -> (DLT value on Linux, description); names and numbers are tcpdump.org's registry.
DLT: dict[str, tuple[int, str]] = {
    "NULL": (0, "BSD loopback"),
    "EN10MB": (1, "Ethernet"),
    "EN3MB": (2, "Experimental Ethernet"),
    "AX25": (3, "Amateur Radio AX.25"),
    "PRONET": (4, "Proteon ProNET Token Ring"),
    "CHAOS": (5, "Chaos"),
    "IEEE802": (6, "IEEE 802 Networks"),
    "ARCNET": (7, "ARCNET"),
    "SLIP": (8, "SLIP"),
    "PPP": (9, "PPP"),
    "FDDI": (10, "FDDI"),
    "ATM_RFC1483": (11, "RFC 1483 LLC-encapsulated ATM"),
    "RAW": (12, "Raw IP"),
    "SLIP_BSDOS": (15, "BSD/OS SLIP"),
    "PPP_BSDOS": (16, "BSD/OS PPP"),
    "ATM_CLIP": (19, "Linux Classical IP over ATM"),
    "PPP_SERIAL": (50, "PPP over serial"),
    "PPP_ETHER": (51, "PPPoE"),
    "SYMANTEC_FIREWALL": (99, "Symantec Firewall"),
    "C_HDLC": (104, "Cisco HDLC"),
    "IEEE802_11": (105, "802.11"),
    "FRELAY": (107, "Frame Relay"),
    "LOOP": (108, "OpenBSD loopback"),
    "ENC": (109, "OpenBSD encapsulated IP"),
    "LINUX_SLL": (113, "Linux cooked v1"),
    "LTALK": (114, "Localtalk"),
    "PFLOG": (117, "OpenBSD pflog file"),
    "PRISM_HEADER": (119, "802.11 plus Prism header"),
    "IP_OVER_FC": (122, "RFC 2625 IP-over-Fibre Channel"),
    "SUNATM": (123, "Sun raw ATM"),
    "IEEE802_11_RADIO": (127, "802.11 plus radiotap header"),
    "ARCNET_LINUX": (129, "Linux ARCNET"),
    "APPLE_IP_OVER_IEEE1394": (138, "Apple IP-over-IEEE 1394"),
    "MTP2_WITH_PHDR": (139, "SS7 MTP2 with Pseudo-header"),
    "MTP2": (140, "SS7 MTP2"),
    "MTP3": (141, "SS7 MTP3"),
    "SCCP": (142, "SS7 SCCP"),
    "DOCSIS": (143, "DOCSIS"),
    "LINUX_IRDA": (144, "Linux IrDA"),
    "IEEE802_11_RADIO_AVS": (163, "802.11 plus AVS radio information header"),
    "JUNIPER_MLPPP": (130, "Juniper Multi-Link PPP"),
    "JUNIPER_MLFR": (131, "Juniper Multi-Link Frame Relay"),
    "JUNIPER_ES": (132, "Juniper Encryption Services PIC"),
    "JUNIPER_MFR": (134, "Juniper FRF.16 Frame Relay"),
    "PPP_PPPD": (166, "PPP for pppd, with direction flag"),
    "BACNET_MS_TP": (165, "BACnet MS/TP"),
    "GPRS_LLC": (169, "GPRS LLC"),
    "LINUX_LAPD": (177, "LAPD"),
    "BLUETOOTH_HCI_H4": (187, "Bluetooth HCI UART transport layer"),
    "USB_LINUX": (189, "USB with Linux header"),
    "PPI": (192, "Per-Packet Information"),
    "IEEE802_15_4": (195, "IEEE 802.15.4 with FCS"),
    "SITA": (196, "SITA pseudo-header"),
    "ERF": (197, "Endace ERF header"),
    "BLUETOOTH_HCI_H4_WITH_PHDR": (201, "Bluetooth HCI UART transport layer plus pseudo-header"),
    "IPMB_LINUX": (209, "IPMB with Linux/Pigeon Point pseudo-header"),
    "USB_LINUX_MMAPPED": (220, "USB with padded Linux header"),
    "IPV4": (228, "Raw IPv4"),
    "IPV6": (229, "Raw IPv6"),
    "DBUS": (231, "D-Bus"),
    "DVB_CI": (235, "DVB-CI"),
    "MUX27010": (236, "MUX27010"),
    "STANAG_5066_D_PDU": (237, "STANAG 5066 D_PDUs"),
    "NFLOG": (239, "Linux netfilter log messages"),
    "NETANALYZER": (240, "Ethernet with Hilscher netANALYZER pseudo-header"),
    "NETANALYZER_TRANSPARENT": (241, "Ethernet with Hilscher netANALYZER pseudo-header and with preamble and SFD"),
    "IPOIB": (242, "RFC 4391 IP-over-Infiniband"),
    "IPNET": (226, "Solaris ipnet"),
    "CAN_SOCKETCAN": (227, "CAN-bus with SocketCAN headers"),
    "NETLINK": (253, "Linux netlink"),
    "USBPCAP": (249, "USB with USBPcap header"),
    "BLUETOOTH_LE_LL": (251, "Bluetooth Low Energy air interface"),
    "DSA_TAG_BRCM": (281, "Broadcom tag"),
    "DSA_TAG_DSA": (284, "Marvell DSA"),
    "LINUX_SLL2": (276, "Linux cooked v2"),
    "VSOCK": (271, "Linux vsock"),
}

_BY_VALUE = {value: name for name, (value, _) in DLT.items()}
# pcap files use LINKTYPE_* numbers; a few differ from the DLT_* values above.
_LINKTYPE_TO_DLT = {101: 12, 50: 50, 51: 51, 104: 104, 105: 105, 108: 108}

# The linktypes the filter compiler generates code for.
SUPPORTED = ("EN10MB", "NULL", "LOOP", "ENC", "RAW", "IPV4", "IPV6", "LINUX_SLL", "LINUX_SLL2", "PPP", "PPP_SERIAL", "C_HDLC", "SLIP")


def dlt_value(linktype: str | int) -> int:
    """The DLT number for a name ('EN10MB', 'DLT_EN10MB', case-insensitive) or a number."""
    if isinstance(linktype, int):
        return linktype
    text = linktype.strip()
    if text.isdigit():
        return int(text)
    name = text.upper()
    if name.startswith("DLT_"):
        name = name[4:]
    if name not in DLT:
        known = ", ".join(SUPPORTED)
        raise NotSupportedError(f"link-layer type {linktype!r}", reason=f"unknown name; the compiler supports {known}")
    return DLT[name][0]


def dlt_name(value: int) -> str:
    """The tcpdump name of a DLT number, or 'DLT_<n>' when it has none."""
    return _BY_VALUE.get(value, f"DLT {value}")


def description(value: int) -> str:
    """libpcap's description of a linktype, used in its error messages."""
    name = _BY_VALUE.get(value)
    return DLT[name][1] if name else f"DLT {value}"


def from_linktype(value: int) -> int:
    """Map a pcap file's LINKTYPE_* number to the DLT_* value the compiler uses."""
    return _LINKTYPE_TO_DLT.get(value, value)
