"""pcap and pcapng capture files: read and write packets without libpcap.

``read_packets(path)`` detects the format (pcap in microseconds or
nanoseconds, either byte order; pcapng with any number of sections and
interfaces) and yields :class:`Packet`.  ``PcapWriter`` and ``PcapngWriter``
write files that tcpdump and Wireshark read.  A damaged file raises
FormatError naming the byte offset of the damage, never a struct.error.
"""

from __future__ import annotations

import os
import struct
import sys
import time
from dataclasses import dataclass
from typing import BinaryIO, Iterator

from ..errors import FormatError

LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276

PCAP_MAGIC_US = 0xA1B2C3D4
PCAP_MAGIC_NS = 0xA1B23C4D
PCAPNG_SHB = 0x0A0D0D0A
PCAPNG_BYTE_ORDER_MAGIC = 0x1A2B3C4D
PCAPNG_IDB, PCAPNG_OPB, PCAPNG_SPB, PCAPNG_EPB = 1, 2, 3, 6
OPT_ENDOFOPT, OPT_IF_NAME, OPT_IF_TSRESOL, OPT_IF_TSOFFSET, OPT_SHB_USERAPPL = 0, 2, 9, 14, 4

_SHB_BYTES = struct.pack("<I", PCAPNG_SHB)  # the same in both byte orders
_END_OF_OPTIONS = bytes(4)  # opt_endofopt: code 0, length 0
_EPB_HEAD = {order: struct.Struct(order + "7I") for order in "<>"}  # type, length, interface, ts, caplen, len

DEFAULT_SNAPLEN = 262144
MAX_RECORD = 1 << 26  # larger captured lengths only come from corrupt headers
_CHUNK = 1 << 20


@dataclass(slots=True)  # not frozen: a frozen dataclass takes 5x longer to build, per packet
class Packet:
    """One captured packet: timestamp in nanoseconds, the captured bytes, the length on the wire."""

    ts_ns: int
    data: bytes
    wirelen: int
    linktype: int = LINKTYPE_ETHERNET
    interface: int = 0  # pcapng interface index (0 in pcap files)

    @property
    def ts(self) -> float:
        """Seconds since the epoch, as a float (loses nanoseconds; use ts_ns to keep them)."""
        return self.ts_ns / 1e9


def read_packets(source) -> Iterator[Packet]:
    """Yield the packets of a pcap or pcapng file (a path, ``-`` for stdin, or a binary file)."""
    with CaptureReader(source) as reader:
        yield from reader


class CaptureReader:
    """An open pcap or pcapng file: its format and link type, then its packets.

    ``linktype`` is the file's (pcap) or its first interface's (pcapng) link
    type, known before any packet is read, so a filter can be compiled for it.
    """

    def __init__(self, source):
        self._owned: BinaryIO | None = None
        if isinstance(source, (str, os.PathLike)):
            if str(source) == "-":
                f, name = sys.stdin.buffer, "<stdin>"
            else:
                f = self._owned = open(source, "rb")
                name = str(source)
        else:
            f, name = source, getattr(source, "name", "<file>")
        self._s = _Stream(f, name)
        self.name = name
        self.nanosecond = False
        self.byteorder = "little"
        self.snaplen = 0
        try:
            magic = self._s.peek(4)
            if len(magic) < 4:
                raise FormatError(f"{name}: {len(magic)} bytes is too short for a capture file", offset=0)
            if magic == _SHB_BYTES:
                self.format = "pcapng"
                self._order = "<"
                self._interfaces: list[_Interface] = []
                self._pending: list[Packet] = []
                while not self._interfaces and self._pcapng_block(self._pending):
                    pass
                self.linktype = self._interfaces[0].linktype if self._interfaces else LINKTYPE_ETHERNET
                self.snaplen = self._interfaces[0].snaplen if self._interfaces else 0
            else:
                self.format = "pcap"
                self._pcap_header()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self._owned is not None:
            self._owned.close()
            self._owned = None

    def __enter__(self) -> "CaptureReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __iter__(self) -> Iterator[Packet]:
        if self.format == "pcap":
            return self._pcap_packets()
        return self._pcapng_packets()

    # pcap ---------------------------------------------------------------------

    def _pcap_header(self) -> None:
        s = self._s
        header = s.take(24, "pcap file header")
        for order in ("<", ">"):
            magic = struct.unpack(order + "I", header[:4])[0]
            if magic in (PCAP_MAGIC_US, PCAP_MAGIC_NS):
                break
        else:
            raise FormatError(f"{s.name}: not a pcap or pcapng file (magic number {header[:4].hex()})", offset=0)
        self.byteorder = "little" if order == "<" else "big"
        self.nanosecond = magic == PCAP_MAGIC_NS
        major, minor, _zone, _sigfigs, self.snaplen, linktype = struct.unpack(order + "HHiIII", header[4:])
        if major != 2:
            raise FormatError(f"{s.name}: pcap version {major}.{minor} is not supported (only 2.x)", offset=4)
        self.linktype = linktype & 0x03FFFFFF  # the upper bits carry FCS information
        self._record = struct.Struct(order + "IIII")

    def _pcap_packets(self) -> Iterator[Packet]:
        s, unpack, linktype = self._s, self._record.unpack_from, self.linktype
        scale = 1 if self.nanosecond else 1000
        frac_limit = 1_000_000_000 if self.nanosecond else 1_000_000
        # The hot loop works on the stream's buffer directly: one slice per packet, no calls.
        while s._fill(16):
            buf, at = s.buf, s.at
            sec, frac, caplen, wirelen = unpack(buf, at)
            if caplen > MAX_RECORD or frac >= frac_limit:
                what = f"claims {caplen} captured bytes" if caplen > MAX_RECORD else f"has timestamp fraction {frac}"
                raise FormatError(f"{s.name}: pcap record {what}; the file is corrupt", offset=s.offset)
            end = at + 16 + caplen
            if end > len(buf):
                if not s._fill(16 + caplen):
                    s.at += 16
                    raise FormatError(f"{s.name}: truncated packet of {caplen} bytes (record at offset "
                                      f"{s.offset - 16:#x}): the file ends after {len(s.buf) - s.at}",
                                      offset=s.offset)
                buf, at = s.buf, s.at
                end = at + 16 + caplen
            s.at = end
            yield Packet(sec * 1_000_000_000 + frac * scale, buf[at + 16:end], max(wirelen, caplen), linktype)
        if s.at < len(s.buf):
            raise FormatError(f"{s.name}: truncated pcap record header: needs 16 bytes, the file ends after "
                              f"{len(s.buf) - s.at}", offset=s.offset)

    # pcapng -------------------------------------------------------------------

    def _pcapng_packets(self) -> Iterator[Packet]:
        out, s = self._pending, self._s
        while True:
            while out:
                yield out.pop(0)
            # Fast path: an enhanced packet block that is whole in the buffer, with a known interface.
            buf, at, order = s.buf, s.at, self._order
            if len(buf) - at >= 32:
                btype, length, ifid, ts_hi, ts_lo, caplen, wirelen = _EPB_HEAD[order].unpack_from(buf, at)
                if (btype == PCAPNG_EPB and ifid < len(self._interfaces) and 32 + caplen <= length
                        and length % 4 == 0 and at + length <= len(buf)
                        and buf[at + length - 4:at + length] == buf[at + 4:at + 8]):
                    iface = self._interfaces[ifid]
                    s.at = at + length
                    yield Packet(((ts_hi << 32) | ts_lo) * iface.ts_num // iface.ts_den + iface.ts_offset_ns,
                                 buf[at + 28:at + 28 + caplen], max(wirelen, caplen), iface.linktype, ifid)
                    continue
            if not self._pcapng_block(out):
                return

    def _pcapng_block(self, out: list[Packet]) -> bool:
        """Read one block; packets go to ``out``. False at the end of the file."""
        s = self._s
        if s.at_end():
            return False
        where = s.offset
        head = s.take(8, "pcapng block header")
        if head[:4] == _SHB_BYTES:
            bom = s.take(4, "pcapng section header")
            if bom == struct.pack("<I", PCAPNG_BYTE_ORDER_MAGIC):
                self._order = "<"
            elif bom == struct.pack(">I", PCAPNG_BYTE_ORDER_MAGIC):
                self._order = ">"
            else:
                raise FormatError(f"{s.name}: pcapng section header with a bad byte-order magic {bom.hex()}",
                                  offset=where + 8)
            btype = PCAPNG_SHB
            length = self._block_length(head, where, 28)
            body = bom + s.take(length - 16, "pcapng section header")
            major = struct.unpack(self._order + "H", body[4:6])[0]
            if major != 1:
                raise FormatError(f"{s.name}: pcapng version {major} is not supported (only 1.x)", offset=where + 12)
            self._interfaces = []  # interface numbers start over in every section
        else:
            btype = struct.unpack(self._order + "I", head[:4])[0]
            length = self._block_length(head, where, 12)
            body = s.take(length - 12, "pcapng block")
        order = self._order
        trailer = struct.unpack(order + "I", s.take(4, "pcapng block trailer"))[0]
        if trailer != length:
            raise FormatError(f"{s.name}: pcapng block of type {btype:#x} starts with length {length} but ends "
                              f"with {trailer}", offset=where)
        if btype == PCAPNG_IDB:
            self._interfaces.append(self._parse_idb(body, where))
        elif btype in (PCAPNG_EPB, PCAPNG_OPB):
            if len(body) < 20:
                raise FormatError(f"{s.name}: packet block of {len(body)} bytes is too short", offset=where)
            if btype == PCAPNG_EPB:
                ifid, ts_hi, ts_lo, caplen, wirelen = struct.unpack_from(order + "IIIII", body)
            else:  # the obsolete Packet Block
                ifid, _drops, ts_hi, ts_lo, caplen, wirelen = struct.unpack_from(order + "HHIIII", body)
            if ifid >= len(self._interfaces):
                raise FormatError(f"{s.name}: packet block names interface {ifid}, but the section describes "
                                  f"{len(self._interfaces)}", offset=where)
            if 20 + caplen > len(body):
                raise FormatError(f"{s.name}: packet block claims {caplen} captured bytes but holds "
                                  f"{len(body) - 20}", offset=where)
            iface = self._interfaces[ifid]
            ts_ns = ((ts_hi << 32) | ts_lo) * iface.ts_num // iface.ts_den + iface.ts_offset_ns
            out.append(Packet(ts_ns, body[20:20 + caplen], max(wirelen, caplen), iface.linktype, ifid))
        elif btype == PCAPNG_SPB:
            if not self._interfaces:
                raise FormatError(f"{s.name}: simple packet block before any interface description", offset=where)
            if len(body) < 4:
                raise FormatError(f"{s.name}: simple packet block too short", offset=where)
            wirelen = struct.unpack_from(order + "I", body)[0]
            caplen = min(wirelen, len(body) - 4)
            if self._interfaces[0].snaplen:
                caplen = min(caplen, self._interfaces[0].snaplen)
            out.append(Packet(0, body[4:4 + caplen], wirelen, self._interfaces[0].linktype, 0))
        # Other blocks (name resolution, statistics, decryption secrets, custom) carry no packets.
        return True

    def _block_length(self, head: bytes, where: int, minimum: int) -> int:
        length = struct.unpack(self._order + "I", head[4:])[0]
        if length < minimum or length % 4 or length > MAX_RECORD:
            raise FormatError(f"{self.name}: pcapng block length {length} is invalid (at least {minimum}, a "
                              "multiple of 4); the file is corrupt", offset=where)
        return length

    def _parse_idb(self, body: bytes, where: int) -> _Interface:
        order = self._order
        if len(body) < 8:
            raise FormatError(f"{self.name}: interface description block too short", offset=where)
        linktype, _reserved, snaplen = struct.unpack_from(order + "HHI", body)
        iface = _Interface(linktype, snaplen)
        for code, value in self._options(body, 8, where):
            if code == OPT_IF_TSRESOL and value:
                r = value[0]
                if r & 0x80:  # 2**-n seconds per tick
                    iface.ts_num, iface.ts_den = 1_000_000_000, 1 << (r & 0x7F)
                elif r <= 9:
                    iface.ts_num, iface.ts_den = 10 ** (9 - r), 1
                else:
                    iface.ts_num, iface.ts_den = 1, 10 ** (r - 9)
            elif code == OPT_IF_TSOFFSET and len(value) == 8:
                iface.ts_offset_ns = struct.unpack(order + "q", value)[0] * 1_000_000_000
        return iface

    def _options(self, body: bytes, pos: int, where: int) -> Iterator[tuple[int, bytes]]:
        """(code, value) pairs, bounds-checked; the caller ignores codes it does not know."""
        while pos + 4 <= len(body):
            code, length = struct.unpack_from(self._order + "HH", body, pos)
            if code == OPT_ENDOFOPT:
                return
            end = pos + 4 + length
            if end > len(body):
                raise FormatError(f"{self.name}: option {code} of {length} bytes overruns its block",
                                  offset=where + 8 + pos)
            yield code, body[pos + 4:end]
            pos = end + (-length % 4)


class _Stream:
    """Buffered reads that keep the absolute offset, for few syscalls and exact error offsets."""

    def __init__(self, f: BinaryIO, name: str):
        self.f, self.name = f, name
        self.buf = b""
        self.pos = 0  # offset of buf[0] in the file
        self.at = 0  # read position inside buf

    @property
    def offset(self) -> int:
        return self.pos + self.at

    def _fill(self, need: int) -> bool:
        while len(self.buf) - self.at < need:
            chunk = self.f.read(max(_CHUNK, need))
            if not chunk:
                return False
            self.pos += self.at
            self.buf = self.buf[self.at:] + chunk
            self.at = 0
        return True

    def peek(self, n: int) -> bytes:
        self._fill(n)
        return self.buf[self.at:self.at + n]

    def take(self, n: int, what: str) -> bytes:
        """Exactly n bytes, or FormatError saying what was cut short and where."""
        if not self._fill(n):
            have = len(self.buf) - self.at
            raise FormatError(f"{self.name}: truncated {what}: needs {n} bytes, the file ends after {have}",
                              offset=self.offset)
        out = self.buf[self.at:self.at + n]
        self.at += n
        return out

    def at_end(self) -> bool:
        return not self._fill(1)


@dataclass(slots=True)
class _Interface:
    linktype: int
    snaplen: int
    ts_num: int = 1_000  # nanoseconds per tick = ts_num / ts_den (default: microseconds)
    ts_den: int = 1
    ts_offset_ns: int = 0


# --- writers -----------------------------------------------------------------


class _Writer:
    def __init__(self, target, byteorder: str):
        if byteorder not in ("little", "big"):
            raise FormatError(f"byte order must be 'little' or 'big', not {byteorder!r}")
        self._order = "<" if byteorder == "little" else ">"
        if isinstance(target, (str, os.PathLike)):
            self._f: BinaryIO = sys.stdout.buffer if str(target) == "-" else open(target, "wb")
            self._owned = str(target) != "-"
        else:
            self._f, self._owned = target, False

    def flush(self) -> None:
        self._f.flush()

    def close(self) -> None:
        if self._owned:
            self._f.close()
        else:
            self._f.flush()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @staticmethod
    def _unpack_item(item, ts_ns, wirelen):
        if isinstance(item, Packet):
            return item.data, item.ts_ns if ts_ns is None else ts_ns, item.wirelen if wirelen is None else wirelen
        data = bytes(item)
        return data, time.time_ns() if ts_ns is None else ts_ns, len(data) if wirelen is None else wirelen


class PcapWriter(_Writer):
    """Write classic pcap; microsecond timestamps unless ``nanosecond=True``."""

    def __init__(self, target, linktype: int = LINKTYPE_ETHERNET, snaplen: int = DEFAULT_SNAPLEN,
                 nanosecond: bool = False, byteorder: str = "little"):
        super().__init__(target, byteorder)
        self.linktype, self.snaplen, self.nanosecond = linktype, snaplen, nanosecond
        self._record = struct.Struct(self._order + "IIII")
        magic = PCAP_MAGIC_NS if nanosecond else PCAP_MAGIC_US
        self._f.write(struct.pack(self._order + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype))

    def write(self, item: Packet | bytes, ts_ns: int | None = None, wirelen: int | None = None) -> None:
        """Append a packet (a Packet, or bytes stamped now); data beyond the snap length is cut."""
        if isinstance(item, Packet):
            if item.linktype != self.linktype:
                raise FormatError(f"a pcap file holds one link type ({self.linktype}); this packet is of link "
                                  f"type {item.linktype}: write pcapng for mixed captures")
            data = item.data
            ts_ns = item.ts_ns if ts_ns is None else ts_ns
            wirelen = item.wirelen if wirelen is None else wirelen
        else:
            data, ts_ns, wirelen = self._unpack_item(item, ts_ns, wirelen)
        if len(data) > self.snaplen:
            data = data[:self.snaplen]
        sec, frac = divmod(ts_ns, 1_000_000_000)
        if not 0 <= sec <= 0xFFFFFFFF:
            raise FormatError(f"timestamp {ts_ns} ns does not fit a pcap record (seconds 0..2**32-1)")
        if not self.nanosecond:
            frac //= 1000
        caplen = len(data)
        self._f.write(self._record.pack(sec, frac, caplen, wirelen if wirelen > caplen else caplen) + data)


class PcapngWriter(_Writer):
    """Write pcapng: one section, interfaces added as needed, nanosecond timestamps."""

    def __init__(self, target, byteorder: str = "little", application: str = "pybpf"):
        super().__init__(target, byteorder)
        self.interfaces: list[tuple[int, int]] = []
        options = self._option(OPT_SHB_USERAPPL, application.encode()) + _END_OF_OPTIONS
        self._block(PCAPNG_SHB, struct.pack(self._order + "IHHq", PCAPNG_BYTE_ORDER_MAGIC, 1, 0, -1) + options)

    def add_interface(self, linktype: int = LINKTYPE_ETHERNET, snaplen: int = DEFAULT_SNAPLEN,
                      name: str | None = None) -> int:
        """Describe a capture interface; returns its number for ``write(..., interface=)``."""
        options = self._option(OPT_IF_TSRESOL, bytes([9]))
        if name:
            options += self._option(OPT_IF_NAME, name.encode())
        options += _END_OF_OPTIONS
        self._block(PCAPNG_IDB, struct.pack(self._order + "HHI", linktype, 0, snaplen) + options)
        self.interfaces.append((linktype, snaplen))
        return len(self.interfaces) - 1

    def write(self, item: Packet | bytes, ts_ns: int | None = None, wirelen: int | None = None,
              interface: int | None = None) -> None:
        """Append a packet on ``interface`` (default: the first of the packet's link type, added if missing)."""
        if interface is None:
            linktype = item.linktype if isinstance(item, Packet) else LINKTYPE_ETHERNET
            matching = [i for i, (lt, _) in enumerate(self.interfaces) if lt == linktype]
            interface = matching[0] if matching else self.add_interface(linktype)
        if not 0 <= interface < len(self.interfaces):
            raise FormatError(f"interface {interface} was not added to this pcapng file "
                              f"({len(self.interfaces)} interfaces)")
        data, ts_ns, wirelen = self._unpack_item(item, ts_ns, wirelen)
        snaplen = self.interfaces[interface][1]
        if snaplen:
            data = data[:snaplen]
        body = struct.pack(self._order + "IIIII", interface, ts_ns >> 32, ts_ns & 0xFFFFFFFF, len(data),
                           max(wirelen, len(data)))
        self._block(PCAPNG_EPB, body + data + b"\0" * (-len(data) % 4))

    def _option(self, code: int, value: bytes) -> bytes:
        return struct.pack(self._order + "HH", code, len(value)) + value + b"\0" * (-len(value) % 4)

    def _block(self, btype: int, body: bytes) -> None:
        length = 12 + len(body)
        self._f.write(struct.pack(self._order + "II", btype, length) + body + struct.pack(self._order + "I", length))


def open_writer(target, format: str = "pcap", linktype: int = LINKTYPE_ETHERNET, snaplen: int = DEFAULT_SNAPLEN,
                nanosecond: bool = False):
    """A PcapWriter or (with one interface already added) a PcapngWriter."""
    if format == "pcap":
        return PcapWriter(target, linktype, snaplen, nanosecond)
    if format == "pcapng":
        writer = PcapngWriter(target)
        writer.add_interface(linktype, snaplen)
        return writer
    raise FormatError(f"unknown capture file format {format!r}: choose pcap or pcapng")


