"""Names in filter expressions: hosts, networks, services, protocols, Ethernet hosts.

Only local files are read (/etc/hosts, /etc/networks, /etc/services,
/etc/protocols, /etc/ethers): compiling a filter must never wait on, or leak
names to, the network.  Numeric forms are parsed the way libpcap does.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
from pathlib import Path

ETC = Path("/etc")
PROTO_TCP, PROTO_UDP, PROTO_UNDEF = 6, 17, -1

# Used when /etc/protocols is missing (minimal containers): the protocols people filter on.
_FALLBACK_PROTOCOLS = {
    "ip": 0, "icmp": 1, "igmp": 2, "ggp": 3, "ipencap": 4, "st": 5, "tcp": 6, "egp": 8, "igp": 9, "pup": 12,
    "udp": 17, "hmp": 20, "xns-idp": 22, "rdp": 27, "iso-tp4": 29, "dccp": 33, "xtp": 36, "ddp": 37,
    "idpr-cmtp": 38, "ipv6": 41, "ipv6-route": 43, "ipv6-frag": 44, "idrp": 45, "rsvp": 46, "gre": 47,
    "esp": 50, "ah": 51, "skip": 57, "ipv6-icmp": 58, "ipv6-nonxt": 59, "ipv6-opts": 60, "rspf": 73, "vmtp": 81,
    "eigrp": 88, "ospf": 89, "ax.25": 93, "ipip": 94, "etherip": 97, "encap": 98, "pim": 103, "ipcomp": 108,
    "vrrp": 112, "l2tp": 115, "isis": 124, "sctp": 132, "fc": 133, "mobility-header": 135, "udplite": 136,
    "mpls-in-ip": 137, "manet": 138, "hip": 139, "shim6": 140, "wesp": 141, "rohc": 142,
}
# libpcap's own tables for `ether proto NAME` / `link proto NAME`.
_ETHER_PROTOS = {"aarp": 0x80F3, "arp": 0x0806, "atalk": 0x809B, "decnet": 0x6003, "ip": 0x0800,
                 "ip6": 0x86DD, "lat": 0x6004, "loopback": 0x9000, "mopdl": 0x6001, "moprc": 0x6002,
                 "rarp": 0x8035, "sca": 0x6007}
_LLC_PROTOS = {"iso": 0xFE, "stp": 0x42, "ipx": 0xE0, "netbeui": 0xF0}


def _lines(name: str):
    try:
        text = (ETC / name).read_text(errors="replace")
    except OSError:
        return []
    out = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].split()
        if line:
            out.append(line)
    return out


@functools.lru_cache(maxsize=None)
def _protocols() -> dict[str, int]:
    table: dict[str, int] = {}
    for fields in _lines("protocols"):
        if len(fields) >= 2 and fields[1].isdigit():
            for name in [fields[0], *fields[2:]]:
                table.setdefault(name, int(fields[1]))
    return table or dict(_FALLBACK_PROTOCOLS)


def protocol_number(name: str) -> int | None:
    """An IP protocol number by name (getprotobyname semantics over /etc/protocols)."""
    return _protocols().get(name)


def ether_proto(name: str) -> int | None:
    return _ETHER_PROTOS.get(name, _LLC_PROTOS.get(name))


@functools.lru_cache(maxsize=None)
def _services() -> dict[tuple[str, str], int]:
    table: dict[tuple[str, str], int] = {}
    for fields in _lines("services"):
        if len(fields) >= 2 and "/" in fields[1]:
            port, _, proto = fields[1].partition("/")
            if port.isdigit():
                for name in [fields[0], *fields[2:]]:
                    table.setdefault((name, proto), int(port))
    return table


def _service(name: str, proto: str) -> int | None:
    if name.isdigit():  # getaddrinfo accepts a numeric service
        return int(name) & 0xFFFF
    return _services().get((name, proto))


def service_port(name: str) -> tuple[int, int] | None:
    """(port, protocol) like pcap_nametoport: tcp wins, both equal gives 'any protocol'."""
    tcp = _service(name, "tcp")
    udp = _service(name, "udp")
    if tcp is not None:
        return tcp, (PROTO_UNDEF if udp == tcp else PROTO_TCP)
    if udp is not None:
        return udp, PROTO_UDP
    return None


def _scan_int(text: str) -> tuple[int | None, str]:
    """sscanf's %d: optional sign and digits; returns the value and the rest."""
    i = 0
    if i < len(text) and text[i] in "+-":
        i += 1
    j = i
    while j < len(text) and text[j].isdigit():
        j += 1
    if j == i:
        return None, text
    return int(text[:j]), text[j:]


def port_range(name: str) -> tuple[int, int, int] | None:
    """(first, last, protocol) for 'N-M' or 'name-name' like pcap_nametoportrange."""
    p1, rest = _scan_int(name)
    if p1 is not None and rest.startswith("-"):
        p2, _ = _scan_int(rest[1:])
        if p2 is not None:
            return p1, p2, PROTO_UNDEF
    if "-" not in name:
        return None
    left, right = name.split("-", 1)
    first = service_port(left)
    if first is None:
        return None
    second = service_port(right)
    if second is None:
        return None
    proto = second[1] if second[1] == first[1] else PROTO_UNDEF
    return first[0], second[0], proto


def _numeric_host(name: str) -> list[tuple[int, bytes]] | None:
    """inet_aton's forms (what getaddrinfo accepts as a numeric IPv4 host)."""
    try:
        return [(socket.AF_INET, socket.inet_aton(name))]
    except OSError:
        return None


def host_addresses(name: str) -> list[tuple[int, bytes]]:
    """Addresses of a host from /etc/hosts in file order, or of a numeric address."""
    numeric = _numeric_host(name)
    if numeric:
        return numeric
    try:
        return [(socket.AF_INET6, ipaddress.IPv6Address(name).packed)]
    except ValueError:
        pass
    found: list[tuple[int, bytes]] = []
    lname = name.lower()
    for fields in _lines("hosts"):
        if lname not in (f.lower() for f in fields[1:]):
            continue
        try:
            ip = ipaddress.ip_address(fields[0].split("%")[0])
        except ValueError:
            continue
        entry = (socket.AF_INET if ip.version == 4 else socket.AF_INET6, ip.packed)
        if entry not in found:
            found.append(entry)
    return found


def network_number(name: str) -> int:
    """A network's number from /etc/networks (0 when unknown), like getnetbyname."""
    for fields in _lines("networks"):
        if len(fields) >= 2 and name in (fields[0], *fields[2:]):
            parts = fields[1].split(".")
            value = 0
            for part in parts:
                value = (value << 8) | (int(part, 0) & 0xFF)
            return value
    return 0


def _xdigit(c: str) -> int:
    """libpcap's xdtoi: hex digit value; other characters give what its arithmetic gives (mod 256)."""
    if "0" <= c <= "9":
        return ord(c) - 48
    if "a" <= c <= "f":
        return ord(c) - 87
    return (ord(c) - 55) & 0xFF


def ether_aton(text: str) -> bytes:
    """Bytes of a MAC address in any of libpcap's spellings (':', '-', '.' separated or bare hex).

    ARCnet addresses come here with their '$' sign, which libpcap converts
    like a digit; the same (odd) byte results, so programs match tcpdump's.
    """
    out = bytearray()
    pos = 0
    while pos < len(text) and len(out) < 6:
        if text[pos] in ":.-":
            pos += 1
        d = _xdigit(text[pos])
        pos += 1
        if pos < len(text) and text[pos] in "0123456789abcdefABCDEF":
            d = ((d << 4) & 0xFF) | _xdigit(text[pos])
            pos += 1
        out.append(d)
    return bytes(out)


def ether_host(name: str) -> bytes | None:
    """An Ethernet address by host name from /etc/ethers."""
    for fields in _lines("ethers"):
        if len(fields) >= 2 and fields[1] == name:
            try:
                return bytes(int(x, 16) for x in fields[0].split(":"))
            except ValueError:
                continue
    return None


def atoin(text: str) -> tuple[int, int]:
    """(bits, value) of a dotted IPv4 prefix like '10.1' -> (16, 0x0a01); bits -1 when invalid."""
    value = 0
    bits = 0
    for part in text.split("."):
        n = 0
        for c in part:
            if n > 25:
                return -1, 0
            n = n * 10 + ord(c) - 48
        if n > 255:
            return -1, 0
        value = ((value << 8) | (n & 0xFF)) & 0xFFFFFFFF
        bits += 8
    return bits, value


def atodn(text: str) -> tuple[int, int]:
    """(32, address) of a DECnet 'area.node', or (0, 0) when it does not scan."""
    area, rest = _scan_int(text)
    if area is None or not rest.startswith("."):
        return 0, 0
    node, _ = _scan_int(rest[1:])
    if node is None:
        return 0, 0
    return 32, ((area << 10) & 0o176000) | (node & 0o1777)
