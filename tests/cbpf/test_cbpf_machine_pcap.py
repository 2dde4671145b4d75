"""pcap/pcapng reading and writing, checked against libpcap through tcpdump -r."""

from __future__ import annotations

import io
import shutil
import struct
import subprocess

import pytest

import cbpf_machine_support as S
from pybpf.cbpf.machine import Machine
from pybpf.cbpf.pcap import (LINKTYPE_ETHERNET, LINKTYPE_RAW, CaptureReader, Packet, PcapngWriter, PcapWriter,
                             open_writer, read_packets)
from pybpf.errors import FormatError

TCPDUMP = shutil.which("tcpdump")
needs_tcpdump = pytest.mark.skipif(TCPDUMP is None, reason="tcpdump is not installed")


def _packets(n: int = 40, linktype: int = LINKTYPE_ETHERNET) -> list[Packet]:
    frames = S.sample_frames(seed=3, random_count=5)[:n]
    base = 1_700_000_000_000_000_000
    return [Packet(base + i * 1_234_567_891 + i, f, len(f) + (i % 3) * 10, linktype) for i, f in enumerate(frames)]


def _tcpdump_rewrite(src, dst, *args: str) -> None:
    """Let libpcap read ``src`` and write it back as nanosecond pcap (optionally filtered)."""
    proc = subprocess.run([TCPDUMP, "-r", str(src), "--time-stamp-precision=nano", "-w", str(dst), *args],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("nanosecond", [False, True])
@pytest.mark.parametrize("byteorder", ["little", "big"])
def test_pcap_round_trip(nanosecond, byteorder):
    packets = _packets()
    buf = io.BytesIO()
    with PcapWriter(buf, nanosecond=nanosecond, byteorder=byteorder, snaplen=100) as w:
        for p in packets:
            w.write(p)
    buf.seek(0)
    reader = CaptureReader(buf)
    assert (reader.format, reader.nanosecond, reader.byteorder, reader.snaplen) == ("pcap", nanosecond, byteorder, 100)
    got = list(reader)
    precision = 1 if nanosecond else 1000
    assert [(p.ts_ns // precision * precision, p.data[:100], p.wirelen) for p in packets] == \
           [(p.ts_ns, p.data, p.wirelen) for p in got]


@pytest.mark.parametrize("byteorder", ["little", "big"])
def test_pcapng_round_trip_with_interfaces(byteorder):
    packets = _packets(20) + _packets(5, LINKTYPE_RAW)
    buf = io.BytesIO()
    with PcapngWriter(buf, byteorder=byteorder) as w:
        first = w.add_interface(LINKTYPE_ETHERNET, name="veth0")
        second = w.add_interface(LINKTYPE_ETHERNET, snaplen=64, name="veth1")
        for i, p in enumerate(packets):
            w.write(p, interface=(first, second)[i % 2] if p.linktype == LINKTYPE_ETHERNET else None)
    buf.seek(0)
    got = list(read_packets(buf))
    assert [p.interface for p in got] == [0, 1] * 10 + [2] * 5
    assert [p.linktype for p in got] == [LINKTYPE_ETHERNET] * 20 + [LINKTYPE_RAW] * 5
    for p, q in zip(packets, got):
        assert (q.ts_ns, q.wirelen) == (p.ts_ns, p.wirelen)
        assert q.data == (p.data[:64] if q.interface == 1 else p.data)


@needs_tcpdump
@pytest.mark.parametrize("fmt, options", [("pcap", {}), ("pcap", {"nanosecond": True}), ("pcapng", {}),
                                          ("pcap-big", {"byteorder": "big", "nanosecond": True}),
                                          ("pcapng-big", {"byteorder": "big"})])
def test_tcpdump_reads_what_we_write_and_we_read_what_it_writes(tmp_path, fmt, options):
    packets = _packets()
    ours, theirs = tmp_path / "ours", tmp_path / "theirs.pcap"
    writer = (PcapngWriter if fmt.startswith("pcapng") else PcapWriter)(ours, **options)
    with writer as w:
        for p in packets:
            w.write(p)
    _tcpdump_rewrite(ours, theirs)
    got = list(read_packets(theirs))
    precision = 1 if fmt.startswith("pcapng") or options.get("nanosecond") else 1000
    assert [(p.ts_ns // precision * precision, p.data, p.wirelen) for p in packets] == \
           [(p.ts_ns, p.data, p.wirelen) for p in got]
    listing = subprocess.run([TCPDUMP, "-r", str(ours), "-nn", "-tt"], capture_output=True, text=True).stdout
    assert len(listing.splitlines()) == len(packets)


@needs_tcpdump
@pytest.mark.parametrize("expr", ["tcp port 80", "udp or arp", "len > 90", "ip[8] <= 64 and not icmp", "vlan 100"])
def test_offline_filtering_matches_tcpdump(tmp_path, expr):
    packets = _packets(400)
    src, filtered = tmp_path / "all.pcap", tmp_path / "filtered.pcap"
    with PcapWriter(src, nanosecond=True) as w:
        for p in packets:
            w.write(p)
    _tcpdump_rewrite(src, filtered, expr)
    machine = Machine(S.pcap_compile(expr), "pcap")
    ours = [p for p in read_packets(src) if machine.run(p.data, p.wirelen)]
    assert ours == list(read_packets(filtered))
    assert 0 < len(ours) < len(packets)


def test_open_writer_and_stdin_style_sources(tmp_path):
    for fmt in ("pcap", "pcapng"):
        path = tmp_path / f"x.{fmt}"
        with open_writer(path, fmt, snaplen=1000) as w:
            w.write(b"\x00" * 20, ts_ns=42, wirelen=30)
        with open(path, "rb") as f:
            (p,) = read_packets(f)
        assert (p.ts_ns, p.data, p.wirelen) == (42 if fmt == "pcapng" else 0, b"\x00" * 20, 30)
    with pytest.raises(FormatError, match="unknown capture file format"):
        open_writer(tmp_path / "y", "erf")
    with pytest.raises(FormatError, match="one link type"):
        with PcapWriter(io.BytesIO()) as w:
            w.write(Packet(0, b"x", 1, LINKTYPE_RAW))


# --- hand-built pcapng: options, other blocks, resolutions ---------------------

def _block(btype: int, body: bytes, order: str = "<") -> bytes:
    body += b"\0" * (-len(body) % 4)
    return struct.pack(order + "II", btype, 12 + len(body)) + body + struct.pack(order + "I", 12 + len(body))


def _opt(code: int, value: bytes, order: str = "<") -> bytes:
    return struct.pack(order + "HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def _shb(order: str = "<", options: bytes = b"") -> bytes:
    return _block(0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1) + options, order)


def _idb(linktype=1, snaplen=0, options=b"", order="<") -> bytes:
    return _block(1, struct.pack(order + "HHI", linktype, 0, snaplen) + options, order)


def _epb(ifid, ticks, data, wirelen=None, options=b"", order="<") -> bytes:
    pad = data + b"\0" * (-len(data) % 4)
    body = struct.pack(order + "IIIII", ifid, ticks >> 32, ticks & 0xFFFFFFFF, len(data),
                       len(data) if wirelen is None else wirelen) + pad + options
    return _block(6, body, order)


def test_pcapng_resolutions_options_and_other_blocks():
    unknown_opts = _opt(1, b"a comment") + _opt(0x7777, b"\x01\x02\x03") + _opt(0, b"")
    data = (_shb(options=_opt(3, b"some os") + _opt(0, b""))
            + _idb(1, 0, _opt(9, bytes([3])) + _opt(14, struct.pack("<q", 100)) + _opt(0, b""))  # ms, +100 s
            + _idb(1, 8, _opt(9, bytes([0x80 | 10])) + _opt(0, b""))  # 2**-10 s
            + _idb(1, 0)  # default: microseconds
            + _block(4, b"\x01\x00\x08\x00" + bytes([198, 18, 0, 1]) + b"host\0\0\0\0" + bytes(4))  # name resolution
            + _epb(0, 1500, b"first", options=unknown_opts)
            + _block(5, bytes(20))  # interface statistics
            + _epb(1, 3 * 1024 + 512, b"0123456789abcdef", wirelen=40)
            + _block(0x40000BAD, b"custom block payload")
            + _epb(2, 7, b"third")
            + _block(3, struct.pack("<I", 9) + b"simple!!!xxx")  # SPB: wire length 9, snaplen of if 0 is 0
            + _block(2, struct.pack("<HHIIII", 1, 0, 0, 2048, 4, 4) + b"obso")  # obsolete packet block
            + _shb(">") + _idb(228, order=">") + _epb(0, 5, b"be", order=">"))
    got = list(read_packets(io.BytesIO(data)))
    assert [(p.interface, p.data, p.wirelen, p.ts_ns, p.linktype) for p in got] == [
        (0, b"first", 5, 1500 * 10**6 + 100 * 10**9, 1),
        (1, b"0123456789abcdef", 40, (3 * 1024 + 512) * 10**9 // 1024, 1),
        (2, b"third", 5, 7000, 1),
        (0, b"simple!!!", 9, 0, 1),
        (1, b"obso", 4, 2 * 10**9, 1),
        (0, b"be", 2, 5000, 228),
    ]


def _error(data: bytes) -> FormatError:
    with pytest.raises(FormatError) as info:
        list(read_packets(io.BytesIO(data)))
    return info.value


def test_damaged_files_name_the_offset():
    good = io.BytesIO()
    with PcapWriter(good) as w:
        w.write(b"A" * 50, ts_ns=10**9)
        w.write(b"B" * 50, ts_ns=2 * 10**9)
    pcap = good.getvalue()
    assert "too short" in str(_error(b"\xd4\xc3"))
    e = _error(b"GIF89a" + bytes(30))
    assert e.offset == 0 and "not a pcap or pcapng file" in str(e)
    e = _error(pcap[:20])
    assert e.offset == 0 and "truncated pcap file header" in str(e)
    e = _error(pcap[:-10])  # the second packet is cut short
    assert e.offset == 24 + 16 + 50 + 16 and "truncated packet of 50 bytes" in str(e)
    e = _error(pcap[:24 + 16 + 50 + 7])
    assert e.offset == 24 + 16 + 50 and "truncated pcap record header" in str(e)
    huge = pcap[:24 + 8] + struct.pack("<I", 1 << 30) + pcap[24 + 12:]
    e = _error(huge)
    assert e.offset == 24 and "corrupt" in str(e)
    assert "version 3.0" in str(_error(pcap[:4] + struct.pack("<HH", 3, 0) + pcap[8:]))

    ng = _shb() + _idb() + _epb(0, 1, b"abc")
    e = _error(ng[:-2])
    assert "truncated pcapng block" in str(e)
    bad_len = ng[: len(_shb()) + 4] + struct.pack("<I", 13) + ng[len(_shb()) + 8:]
    e = _error(bad_len)
    assert e.offset == len(_shb()) and "block length 13" in str(e)
    bad_trailer = ng[:-4] + struct.pack("<I", 999)
    e = _error(bad_trailer)
    assert e.offset == len(_shb()) + len(_idb()) and "ends with 999" in str(e)
    e = _error(_shb() + _idb() + _epb(3, 1, b"abc"))
    assert "interface 3" in str(e) and e.offset == len(_shb()) + len(_idb())
    e = _error(_shb() + _idb(options=struct.pack("<HH", 9, 200)))
    assert "overruns its block" in str(e)
    e = _error(_shb() + _block(3, struct.pack("<I", 3) + b"abc"))
    assert "before any interface" in str(e)
    claims_more = _shb() + _idb() + _block(6, struct.pack("<IIIII", 0, 0, 0, 100, 100) + b"abcd")
    assert "claims 100 captured bytes" in str(_error(claims_more))
    bad_bom = _block(0x0A0D0D0A, struct.pack("<IHHq", 0x11223344, 1, 0, -1))
    assert "byte-order magic" in str(_error(bad_bom))
