"""Tokens of the pcap-filter(7) language.

The rules follow libpcap's scanner: the longest match wins and, between
matches of equal length, the earlier rule (so `ip` is a keyword, `ip6host` a
name, `10.0.0.1` an IPv4 address and `001122334455` a MAC address).
"""

from __future__ import annotations

import re
import socket
from typing import NamedTuple


KEYWORDS: dict[str, str] = {}
for _kind, _words in {
    "DST": "dst", "SRC": "src",
    "LINK": "link ether ppp slip fddi tr wlan",
    "ARP": "arp", "RARP": "rarp", "IP": "ip", "SCTP": "sctp", "TCP": "tcp", "UDP": "udp", "ICMP": "icmp",
    "IGMP": "igmp", "IGRP": "igrp", "PIM": "pim", "VRRP": "vrrp", "CARP": "carp", "RADIO": "radio",
    "IPV6": "ip6", "ICMPV6": "icmp6", "AH": "ah", "ESP": "esp",
    "ATALK": "atalk", "AARP": "aarp", "DECNET": "decnet", "LAT": "lat", "SCA": "sca", "MOPRC": "moprc",
    "MOPDL": "mopdl", "ISO": "iso", "ESIS": "esis es-is", "ISIS": "isis is-is", "L1": "l1", "L2": "l2",
    "IIH": "iih", "LSP": "lsp", "SNP": "snp", "CSNP": "csnp", "PSNP": "psnp", "CLNP": "clnp", "STP": "stp",
    "IPX": "ipx", "NETBEUI": "netbeui",
    "HOST": "host", "NET": "net", "NETMASK": "mask", "PORT": "port", "PORTRANGE": "portrange",
    "PROTO": "proto", "PROTOCHAIN": "protochain", "GATEWAY": "gateway",
    "TYPE": "type", "SUBTYPE": "subtype", "DIR": "direction dir", "ADDR1": "address1 addr1",
    "ADDR2": "address2 addr2", "ADDR3": "address3 addr3", "ADDR4": "address4 addr4", "RA": "ra", "TA": "ta",
    "LESS": "less", "GREATER": "greater", "CBYTE": "byte", "TK_BROADCAST": "broadcast",
    "TK_MULTICAST": "multicast", "AND": "and", "OR": "or", "!": "not", "LEN": "len length",
    "INBOUND": "inbound", "OUTBOUND": "outbound", "IFINDEX": "ifindex",
    "VLAN": "vlan", "MPLS": "mpls", "PPPOED": "pppoed", "PPPOES": "pppoes", "GENEVE": "geneve",
    "LANE": "lane", "LLC": "llc", "METAC": "metac", "BCC": "bcc", "OAM": "oam", "OAMF4": "oamf4",
    "OAMF4EC": "oamf4ec", "OAMF4SC": "oamf4sc", "SC": "sc", "ILMIC": "ilmic", "VPI": "vpi", "VCI": "vci",
    "CONNECTMSG": "connectmsg", "METACONNECT": "metaconnect",
    "PF_IFNAME": "on ifname", "PF_RSET": "rset ruleset", "PF_RNR": "rnr rulenum", "PF_SRNR": "srnr subrulenum",
    "PF_REASON": "reason", "PF_ACTION": "action",
    "FISU": "fisu", "LSSU": "lssu lsu", "MSU": "msu", "HFISU": "hfisu", "HLSSU": "hlssu", "HMSU": "hmsu",
    "SIO": "sio", "OPC": "opc", "DPC": "dpc", "SLS": "sls", "HSIO": "hsio", "HOPC": "hopc", "HDPC": "hdpc",
    "HSLS": "hsls",
}.items():
    for _w in _words.split():
        KEYWORDS[_w] = _kind

# Names that stand for numbers (ICMP, ICMPv6 and TCP header fields and values).
NAMED_NUMBERS: dict[str, int] = {
    "icmptype": 0, "icmpcode": 1, "icmp-echoreply": 0, "icmp-unreach": 3, "icmp-sourcequench": 4,
    "icmp-redirect": 5, "icmp-echo": 8, "icmp-routeradvert": 9, "icmp-routersolicit": 10,
    "icmp-timxceed": 11, "icmp-paramprob": 12, "icmp-tstamp": 13, "icmp-tstampreply": 14, "icmp-ireq": 15,
    "icmp-ireqreply": 16, "icmp-maskreq": 17, "icmp-maskreply": 18,
    "icmp6type": 0, "icmp6code": 1, "icmp6-destinationunreach": 1, "icmp6-packettoobig": 2,
    "icmp6-timeexceeded": 3, "icmp6-parameterproblem": 4, "icmp6-echo": 128, "icmp6-echoreply": 129,
    "icmp6-multicastlistenerquery": 130, "icmp6-multicastlistenerreportv1": 131,
    "icmp6-multicastlistenerdone": 132, "icmp6-routersolicit": 133, "icmp6-routeradvert": 134,
    "icmp6-neighborsolicit": 135, "icmp6-neighboradvert": 136, "icmp6-redirect": 137,
    "icmp6-routerrenum": 138, "icmp6-nodeinformationquery": 139, "icmp6-nodeinformationresponse": 140,
    "icmp6-ineighbordiscoverysolicit": 141, "icmp6-ineighbordiscoveryadvert": 142,
    "icmp6-multicastlistenerreportv2": 143, "icmp6-homeagentdiscoveryrequest": 144,
    "icmp6-homeagentdiscoveryreply": 145, "icmp6-mobileprefixsolicit": 146, "icmp6-mobileprefixadvert": 147,
    "icmp6-certpathsolicit": 148, "icmp6-certpathadvert": 149, "icmp6-multicastrouteradvert": 151,
    "icmp6-multicastroutersolicit": 152, "icmp6-multicastrouterterm": 153,
    "tcpflags": 13, "tcp-fin": 0x01, "tcp-syn": 0x02, "tcp-rst": 0x04, "tcp-push": 0x08, "tcp-ack": 0x10,
    "tcp-urg": 0x20, "tcp-ece": 0x40, "tcp-cwr": 0x80,
}


class Token(NamedTuple):
    kind: str  # keyword kind, 'NUM', 'ID', 'HID', 'HID6', 'EID', 'AID', a punctuation string, or 'EOF'
    value: object  # number for NUM, text for names and addresses
    pos: int  # offset in the expression, for the caret under errors
    text: str


class LexError(Exception):
    """A token the scanner rejects with its own message (bad number, bogus address).

    `tokens` are those before it: libpcap has already parsed them, and
    generated code for what they complete, when it meets this one.
    """

    def __init__(self, message: str, pos: int):
        super().__init__(message)
        self.pos = pos
        self.tokens: list[Token] = []


_W = "[0-9A-Fa-f]{1,4}"
_N = r"(?:0[xX][0-9A-Fa-f]+|[0-9]+)"
_V4 = rf"{_N}\.{_N}\.{_N}\.{_N}"


def _v6_alternatives() -> list[str]:
    """Every IPv6 shape the scanner knows: n groups with '::' after group i, optionally an IPv4 tail."""
    alts = [":".join([_W] * 8)]
    for total, tail in ((7, ""), (6, ""), (5, ""), (4, ""), (3, ""), (2, ""), (1, ""), (0, "")):
        for i in range(total + 1):
            left = ":".join([_W] * i)
            right = ":".join([_W] * (total - i))
            alts.append(f"{left}::{right}")
    alts.append(":".join([_W] * 6) + ":" + _V4)
    for total in (5, 4, 3, 2, 1, 0):
        for i in range(total + 1):
            left = ":".join([_W] * i)
            right = ":".join([_W] * (total - i))
            alts.append(f"{left}::{right}{':' if right else ''}{_V4}")
    return alts


_B = "[0-9A-Fa-f]{1,2}"
_B2 = "[0-9A-Fa-f]{4}"
# (kind, regex) in the scanner's rule order; the keyword/name rules come last.
_RULES: list[tuple[str, re.Pattern]] = [
    ("AID", re.compile(r"\$" + _B)),
    ("EID", re.compile(rf"{_B}:{_B}:{_B}:{_B}:{_B}:{_B}|{_B}-{_B}-{_B}-{_B}-{_B}-{_B}|"
                       rf"{_B}\.{_B}\.{_B}\.{_B}\.{_B}\.{_B}|{_B2}\.{_B2}\.{_B2}|{_B2}{_B2}{_B2}")),
    ("NUM", re.compile(_N)),
    ("HID", re.compile(rf"{_N}\.{_N}\.{_N}\.{_N}|{_N}\.{_N}\.{_N}|{_N}\.{_N}")),
]
_V6_RULES = [re.compile(a) for a in _v6_alternatives()]
_HEXRUN = re.compile(r"[0-9A-Fa-f:.]*")
_BOGUS_ETHER = re.compile(rf"{_B}:+(?:{_B}:+)+")
_NAME = re.compile(r"[A-Za-z0-9](?:[-_.A-Za-z0-9]*[.A-Za-z0-9])?")
_ESCAPED = re.compile(r"\\[^ !()\n\t]+")
_OPERATORS = {">=": "GEQ", "<=": "LEQ", "!=": "NEQ", "==": "=", "<<": "LSH", ">>": "RSH", "&&": "AND", "||": "OR"}
_SINGLE = set("+-*/%:[]!<>()&|^=")


def _number(text: str, pos: int) -> int:
    """Convert a numeric token like libpcap: 0x hex, leading-0 octal, else decimal; 32 bits.

    Digits are taken one at a time with the overflow check before each, so the
    error named is the one libpcap names first.
    """
    if text[:2] in ("0x", "0X"):
        base, digits, limit = 16, text[2:], 0xFFFFFFF
    elif text[0] == "0":
        base, digits, limit = 8, text[1:], 0o3777777777
    else:
        base, digits, limit = 10, text, None
    n = 0
    for ch in digits:
        digit = int(ch, 16)
        if base == 8 and digit > 7:
            raise LexError(f"number {text} contains non-octal digit", pos)
        if limit is not None and n > limit or limit is None and n * 10 + digit > 0xFFFFFFFF:
            raise LexError(f"number {text} overflows 32 bits", pos)
        n = n * base + digit
    return n


def _is_ipv6(text: str) -> bool:
    try:
        socket.inet_pton(socket.AF_INET6, text)
        return True
    except OSError:
        return False


def tokenize(expression: str) -> list[Token]:
    """Split a filter expression into tokens; the list ends with an EOF token."""
    tokens: list[Token] = []
    try:
        _scan(expression, tokens)
    except LexError as exc:
        exc.tokens = tokens
        raise
    tokens.append(Token("EOF", None, len(expression), ""))
    return tokens


def _scan(expression: str, tokens: list[Token]) -> None:
    pos, end = 0, len(expression)
    while pos < end:
        ch = expression[pos]
        if ch in " \t\r\n":
            pos += 1
            continue
        best_len, best_kind = 0, ""
        two = expression[pos:pos + 2]
        if two in _OPERATORS:
            best_len, best_kind = 2, _OPERATORS[two]
        elif ch in _SINGLE:
            best_len, best_kind = 1, ch
        for kind, rx in _RULES:
            m = rx.match(expression, pos)
            if m and len(m.group()) > best_len:
                best_len, best_kind = len(m.group()), kind
        if ch in "0123456789abcdefABCDEF:" and ":" in _HEXRUN.match(expression, pos).group():
            # every IPv6 form and the bogus-MAC form contain a ':' within a run of these characters
            for rx in _V6_RULES:
                m = rx.match(expression, pos)
                if m and len(m.group()) > best_len:
                    best_len, best_kind = len(m.group()), "HID6"
            m = _BOGUS_ETHER.match(expression, pos)
            if m and len(m.group()) > best_len:
                best_len, best_kind = len(m.group()), "BOGUS_EID"
        m = _NAME.match(expression, pos)
        if m and len(m.group()) >= best_len:
            word = m.group()
            if word in KEYWORDS or word in NAMED_NUMBERS:
                best_len, best_kind = len(word), "WORD"
            elif len(word) > best_len:
                best_len, best_kind = len(word), "ID"
        m = _ESCAPED.match(expression, pos)
        if m and len(m.group()) > best_len:
            best_len, best_kind = len(m.group()), "ESCAPED"
        if best_len == 0:
            # a character no rule matches: a token the parser has no use for (a syntax error there)
            tokens.append(Token("LEX_ERROR", ch, pos, ch))
            break
        text = expression[pos:pos + best_len]
        if best_kind == "WORD":
            if text in NAMED_NUMBERS:
                tokens.append(Token("NUM", NAMED_NUMBERS[text], pos, text))
            else:
                tokens.append(Token(KEYWORDS[text], text, pos, text))
        elif best_kind == "NUM":
            tokens.append(Token("NUM", _number(text, pos), pos, text))
        elif best_kind == "ESCAPED":
            tokens.append(Token("ID", text[1:], pos, text))
        elif best_kind == "HID6":
            if not _is_ipv6(text):
                raise LexError(f"bogus IPv6 address {text}", pos)
            tokens.append(Token("HID6", text, pos, text))
        elif best_kind == "BOGUS_EID":
            raise LexError(f"bogus ethernet address {text}", pos)
        elif best_kind == "AID":
            tokens.append(Token("AID", text, pos, text))
        else:
            tokens.append(Token(best_kind, text, pos, text))
        pos += best_len
