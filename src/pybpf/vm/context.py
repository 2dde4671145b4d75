"""Program contexts, laid out as the kernel exposes them, and test runs like BPF_PROG_TEST_RUN.

A context is the struct a program receives in r1.  Its bytes are not plain
memory: as in the kernel, the program may only read (or write) the fields its
program type allows, at ``ctx + constant offset``, and some fields are
pointers the kernel computes (``xdp_md.data`` is a 32-bit field that yields a
64-bit packet pointer).  So the context region is not mapped for ordinary
loads; the engines send accesses through the context pointer to
:meth:`Context.load`/:meth:`Context.store`, which apply the field rules.

Packets live in the VM's packet region; ``data``, ``data_end`` and
``data_meta`` are addresses in it, and the helpers that move the packet's
edges (bpf_xdp_adjust_head/tail/meta) re-slice that region.
"""

from __future__ import annotations

import os
import re
import struct
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from ..errors import NotSupportedError, VMError, VMFault
from .constants import ProgType, prog_type_name
from .program import TestRunResult

if TYPE_CHECKING:
    from .machine import Run, VM
    from .program import VMProgram

ETH_HLEN = 14
XDP_PACKET_HEADROOM = 256
XDP_FRAME_SIZE = 40  # sizeof(struct xdp_frame): the start of a frame's headroom is reserved for it
SKB_SHARED_INFO = 320  # SKB_DATA_ALIGN(sizeof(struct skb_shared_info)) on x86-64: reserved tailroom
NET_SKB_PAD = 64
PAGE = 4096
XDP_MAX_DATA = PAGE - XDP_PACKET_HEADROOM - SKB_SHARED_INFO
SKB_MAX_DATA = PAGE - NET_SKB_PAD - SKB_SHARED_INFO
LOOPBACK_IFINDEX = 1
MAX_METALEN = 255  # skb_shared_info.meta_len is a u8; metadata lengths are also multiples of 4


class Context:
    """Base of all contexts: a struct image plus the rules for touching it."""

    struct_name = "context"
    size = 0

    def __init__(self) -> None:
        self.run: Run | None = None
        self.vm: VM | None = None

    # -- lifetime within a run -------------------------------------------------

    def attach(self, run: "Run") -> None:
        self.run = run
        self.vm = run.vm
        region = run.vm.ctx_region
        region.owner = self
        region.name = f"context (struct {self.struct_name})"

    def detach(self, run: "Run") -> None:
        run.vm.ctx_region.owner = None
        self.run = None

    # -- field access ----------------------------------------------------------

    def load(self, offset: int, size: int) -> int:
        raise VMFault(self._bad(offset, size, "read"))

    def store(self, offset: int, size: int, value: int) -> None:
        raise VMFault(self._bad(offset, size, "write"))

    def raw(self) -> bytes:
        """The struct's bytes as a kernel function reading it would see them (bpf_probe_read)."""
        return b""

    def _bad(self, offset: int, size: int, verb: str) -> str:
        return (f"invalid {verb} of {size} bytes at offset {offset} of struct {self.struct_name} "
                f"({self.size} bytes)")


class RawContext(Context):
    """A context that is plain bytes (tracepoints, kprobes' pt_regs, raw tracepoint args): any
    in-bounds read is allowed; writes only when ``writable``."""

    def __init__(self, data: bytes | bytearray, struct_name: str = "context", writable: bool = False):
        super().__init__()
        self.data = bytearray(data)
        self.size = len(self.data)
        self.struct_name = struct_name
        self.writable = writable

    def load(self, offset: int, size: int) -> int:
        if offset < 0 or offset + size > self.size:
            raise VMFault(self._bad(offset, size, "read"))
        return int.from_bytes(self.data[offset:offset + size], "little")

    def store(self, offset: int, size: int, value: int) -> None:
        if not self.writable or offset < 0 or offset + size > self.size:
            raise VMFault(self._bad(offset, size, "write") + ("" if self.writable else ": the context is read-only"))
        self.data[offset:offset + size] = value.to_bytes(size, "little")

    def raw(self) -> bytes:
        return bytes(self.data)


# --- tracepoints -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TracepointField:
    name: str
    type: str
    offset: int
    size: int
    signed: bool

    @property
    def data_loc(self) -> bool:
        return self.type.startswith("__data_loc")


_FIELD = re.compile(r"field:(?P<decl>[^;]+);\s*offset:(?P<off>\d+);\s*size:(?P<size>\d+);\s*(?:signed:(?P<sig>\d+);)?")


class TracepointFormat:
    """The layout of a tracepoint's record, from its tracefs ``format`` file (or that text)."""

    def __init__(self, name: str, fields: Iterable[TracepointField]):
        self.name = name
        self.fields = {f.name: f for f in fields}
        self.size = max((f.offset + f.size for f in self.fields.values()), default=0)

    @classmethod
    def parse(cls, text: str, name: str = "") -> "TracepointFormat":
        fields = []
        for m in _FIELD.finditer(text):
            decl = m.group("decl").strip()
            array = re.search(r"\[(\d*)\]\s*$", decl)
            base = decl[:array.start()] if array else decl
            parts = base.replace("*", " * ").split()
            fname = parts[-1]
            ftype = " ".join(parts[:-1]) + ("[]" if array else "")
            fields.append(TracepointField(fname, ftype, int(m.group("off")), int(m.group("size")),
                                          m.group("sig") == "1"))
        if not fields:
            raise VMError(f"tracepoint format {name or ''!r} has no 'field:' lines")
        title = re.search(r"^name:\s*(\S+)", text, re.M)
        return cls(name or (title.group(1) if title else ""), fields)

    @classmethod
    def from_tracefs(cls, category: str, name: str, root: str | None = None) -> "TracepointFormat":
        roots = [root] if root else ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]
        for r in roots:
            path = os.path.join(r, "events", category, name, "format")
            try:
                with open(path) as f:
                    return cls.parse(f.read(), f"{category}/{name}")
            except OSError:
                continue
        raise VMError(f"no format for tracepoint {category}/{name} under {', '.join(roots)}: pass the format text "
                      "or TracepointFormat.parse(...) instead")

    def build(self, values: Mapping[str, Any] | None = None, **more: Any) -> bytes:
        """The record's bytes with ``values`` by field name (ints, bytes, str; __data_loc strings are
        appended after the fixed fields)."""
        values = dict(values or {}, **more)
        unknown = set(values) - set(self.fields)
        if unknown:
            raise VMError(f"tracepoint {self.name}: no field {sorted(unknown)[0]!r} (fields: {', '.join(self.fields)})")
        data = bytearray(self.size)
        tail = bytearray()
        for fname, value in values.items():
            f = self.fields[fname]
            if f.data_loc:
                blob = value.encode() + b"\0" if isinstance(value, str) else bytes(value)
                loc = (len(blob) << 16) | (self.size + len(tail))
                data[f.offset:f.offset + 4] = loc.to_bytes(4, "little")
                tail += blob
            elif isinstance(value, (bytes, bytearray, str)):
                blob = value.encode() if isinstance(value, str) else bytes(value)
                if len(blob) > f.size:
                    raise VMError(f"tracepoint {self.name}: {len(blob)} bytes do not fit field {fname} ({f.size})")
                data[f.offset:f.offset + len(blob)] = blob
            else:
                data[f.offset:f.offset + f.size] = int(value).to_bytes(f.size, "little", signed=int(value) < 0)
        return bytes(data + tail)

    def context(self, values: Mapping[str, Any] | None = None, **more: Any) -> RawContext:
        return RawContext(self.build(values, **more), f"trace_event_raw_{self.name.split('/')[-1]}")


# --- XDP ----------------------------------------------------------------------------------------------


class XDPContext(Context):
    """struct xdp_md over a packet with 256 bytes of headroom, as BPF_PROG_TEST_RUN builds it."""

    struct_name = "xdp_md"
    size = 24
    FIELDS = {0: "data", 4: "data_end", 8: "data_meta", 12: "ingress_ifindex", 16: "rx_queue_index",
              20: "egress_ifindex"}

    def __init__(self, packet: bytes, ctx_in: bytes | None = None):
        super().__init__()
        packet = bytes(packet)
        if len(packet) < ETH_HLEN:
            raise VMError(f"an XDP test run needs at least {ETH_HLEN} bytes of packet data, got {len(packet)}")
        if len(packet) > XDP_MAX_DATA:
            raise VMError(f"an XDP test run takes at most {XDP_MAX_DATA} bytes of packet data (one page without "
                          f"fragments), got {len(packet)}")
        meta_len, self.ingress_ifindex, self.rx_queue_index = 0, LOOPBACK_IFINDEX, 0
        if ctx_in is not None:
            md = bytes(ctx_in).ljust(24, b"\0")
            data, data_end, data_meta, ifindex, rxq, egress = struct.unpack_from("<6I", md)
            if data_meta or data_end != len(packet) or data > data_end or data % 4 or data > MAX_METALEN or egress or \
                    (not ifindex and rxq) or any(md[24:]):
                raise VMError("invalid xdp_md for a test run: data_meta and egress_ifindex must be 0, data_end the "
                              f"packet length and data (the metadata length) a multiple of 4 up to {MAX_METALEN}")
            meta_len = data
            if ifindex:
                self.ingress_ifindex, self.rx_queue_index = ifindex, rxq
        self.ctx_given = ctx_in is not None
        headroom = XDP_PACKET_HEADROOM - meta_len
        self.buffer = bytearray(headroom) + bytearray(packet) + bytearray(XDP_MAX_DATA - len(packet) + meta_len)
        self.hard_start = 0
        self.data_meta = headroom
        self.data = headroom + meta_len
        self.data_end = self.data + len(packet) - meta_len if meta_len else self.data + len(packet)
        self.hard_end = XDP_PACKET_HEADROOM + XDP_MAX_DATA
        self._region = None

    def attach(self, run: "Run") -> None:
        super().attach(run)
        self._region = run.vm.packet_region
        self._region.name = "packet"
        self._remap()

    def _remap(self) -> None:
        """Point the packet region at [data_meta, data_end): pointers are offsets from data_meta."""
        self.vm.memory.replace(self._region, memoryview(self.buffer)[self.data_meta:self.data_end])

    def _pointer(self, index: int) -> int:
        return self._region.address + (index - self.data_meta)

    def load(self, offset: int, size: int) -> int:
        if offset not in self.FIELDS or size != 4:
            raise VMFault(self._bad(offset, size, "read") + ": xdp_md fields are read as whole u32 values")
        field = self.FIELDS[offset]
        if field == "data":
            return self._pointer(self.data)
        if field == "data_end":
            return self._pointer(self.data_end)
        if field == "data_meta":
            return self._pointer(self.data_meta)
        if field == "egress_ifindex":
            raise VMFault("egress_ifindex can only be read by programs attached to a devmap (BPF_XDP_DEVMAP)")
        return getattr(self, field)

    def store(self, offset: int, size: int, value: int) -> None:
        raise VMFault(self._bad(offset, size, "write") + ": struct xdp_md is read-only")

    def raw(self) -> bytes:
        return struct.pack("<6I", self.data - self.data_meta, self.data_end - self.data_meta, 0,
                           self.ingress_ifindex, self.rx_queue_index, 0)

    # -- the helpers that move the packet's edges --------------------------------

    def adjust_head(self, delta: int) -> int:
        metalen = self.data - self.data_meta
        data = self.data + delta
        if data < self.hard_start + XDP_FRAME_SIZE + metalen or data > self.data_end - ETH_HLEN:
            return -22
        if metalen:
            self.buffer[self.data_meta + delta:data] = self.buffer[self.data_meta:self.data]
        self.data_meta += delta
        self.data = data
        self._remap()
        return 0

    def adjust_meta(self, delta: int) -> int:
        meta = self.data_meta + delta
        metalen = self.data - meta
        if meta < self.hard_start + XDP_FRAME_SIZE or meta > self.data:
            return -22
        if metalen % 4 or metalen > MAX_METALEN:
            return -13
        self.data_meta = meta
        self._remap()
        return 0

    def adjust_tail(self, delta: int) -> int:
        end = self.data_end + delta
        if end > self.hard_end or end < self.data + ETH_HLEN:
            return -22
        if delta > 0:
            self.buffer[self.data_end:end] = bytes(delta)
        self.data_end = end
        self._remap()
        return 0

    def packet_out(self) -> bytes:
        """What BPF_PROG_TEST_RUN returns as data_out: from data_meta to data_end."""
        return bytes(self.buffer[self.data_meta:self.data_end])


# --- socket buffers -----------------------------------------------------------------------------------


# __sk_buff: name -> (offset, size)
SKB_FIELDS: dict[str, tuple[int, int]] = {
    "len": (0, 4), "pkt_type": (4, 4), "mark": (8, 4), "queue_mapping": (12, 4), "protocol": (16, 4),
    "vlan_present": (20, 4), "vlan_tci": (24, 4), "vlan_proto": (28, 4), "priority": (32, 4),
    "ingress_ifindex": (36, 4), "ifindex": (40, 4), "tc_index": (44, 4), "cb": (48, 20), "hash": (68, 4),
    "tc_classid": (72, 4), "data": (76, 4), "data_end": (80, 4), "napi_id": (84, 4), "family": (88, 4),
    "remote_ip4": (92, 4), "local_ip4": (96, 4), "remote_ip6": (100, 16), "local_ip6": (116, 16),
    "remote_port": (132, 4), "local_port": (136, 4), "data_meta": (140, 4), "flow_keys": (144, 8),
    "tstamp": (152, 8), "wire_len": (160, 4), "gso_segs": (164, 4), "sk": (168, 8), "gso_size": (176, 4),
    "tstamp_type": (180, 1), "hwtstamp": (184, 8),
}
_SOCK_FIELDS = ("family", "remote_ip4", "local_ip4", "remote_ip6", "local_ip6", "remote_port", "local_port")
_POINTERS = ("data", "data_end", "data_meta")
# Per program type: fields that cannot be read, and fields that can be written (net/core/filter.c).
_SKB_RULES: dict[int, tuple[frozenset[str], frozenset[str]]] = {
    ProgType.SOCKET_FILTER: (
        frozenset({"tc_classid", "data", "data_meta", "data_end", "tstamp", "wire_len", "hwtstamp", "flow_keys",
                   *_SOCK_FIELDS}),
        frozenset({"cb"})),
    ProgType.SCHED_CLS: (
        frozenset({"flow_keys", *_SOCK_FIELDS}),
        frozenset({"mark", "tc_index", "priority", "tc_classid", "cb", "tstamp", "queue_mapping"})),
    ProgType.CGROUP_SKB: (
        frozenset({"tc_classid", "data_meta", "flow_keys", "wire_len"}),
        frozenset({"mark", "priority", "cb", "tstamp"})),
}
_SKB_RULES[ProgType.SCHED_ACT] = _SKB_RULES[ProgType.SCHED_CLS]
for _lwt in (ProgType.LWT_IN, ProgType.LWT_OUT, ProgType.LWT_XMIT):
    _SKB_RULES[_lwt] = (frozenset({"tc_classid", "data_meta", "flow_keys", "tstamp", "wire_len", "hwtstamp",
                                   *_SOCK_FIELDS}), frozenset({"mark", "priority", "cb"}))
# Fields a test run's ctx_in may set (convert___skb_to_skb).
_SKB_CTX_IN = ("mark", "priority", "ingress_ifindex", "ifindex", "cb", "tstamp", "wire_len", "gso_segs", "gso_size",
               "hwtstamp")
_L2_TYPES = frozenset({ProgType.SCHED_CLS, ProgType.SCHED_ACT})
SKB_TYPES = frozenset(_SKB_RULES)


def _field_at(offset: int, size: int) -> tuple[str, int, int] | None:
    for name, (off, fsize) in SKB_FIELDS.items():
        if off <= offset < off + fsize:
            return name, off, fsize
    return None


class SkbContext(Context):
    """struct __sk_buff around a packet, as BPF_PROG_TEST_RUN builds it for socket filters, tc and
    cgroup/lwt programs: the data starts with an Ethernet header, ``protocol`` and ``pkt_type`` come from
    it, and for all but tc programs the program sees the packet from the network header on."""

    struct_name = "__sk_buff"
    size = 192

    def __init__(self, packet: bytes, prog_type: int, ctx_in: bytes | None = None):
        super().__init__()
        packet = bytes(packet)
        if len(packet) < ETH_HLEN:
            raise VMError(f"a socket buffer test run needs at least {ETH_HLEN} bytes (an Ethernet header), got "
                          f"{len(packet)}")
        if len(packet) > SKB_MAX_DATA:
            raise VMError(f"a socket buffer test run takes at most {SKB_MAX_DATA} bytes, got {len(packet)}")
        self.prog_type = prog_type
        self.denied, self.writable = _SKB_RULES[prog_type]
        self.l2 = prog_type in _L2_TYPES
        self.fields = bytearray(self.size)
        self.ctx_given = ctx_in is not None
        if ctx_in is not None:
            given = bytes(ctx_in).ljust(self.size, b"\0")
            if len(ctx_in) > self.size and any(ctx_in[self.size:]):
                raise VMError("__sk_buff for a test run: bytes beyond the struct must be zero")
            allowed = set()
            for name in _SKB_CTX_IN:
                off, fsize = SKB_FIELDS[name]
                allowed.update(range(off, off + fsize))
            bad = [i for i in range(self.size) if given[i] and i not in allowed]
            if bad:
                name = (_field_at(bad[0], 1) or ("?",))[0]
                raise VMError(f"__sk_buff for a test run may only set {', '.join(_SKB_CTX_IN)}; {name} is not zero")
            self.fields[:] = given[:self.size]
        self.ctx_in = bytes(self.fields)
        self.buffer = bytearray(NET_SKB_PAD) + bytearray(packet) + bytearray(SKB_SHARED_INFO)
        self.mac = NET_SKB_PAD
        self.network = NET_SKB_PAD + ETH_HLEN
        self.data = self.mac if self.l2 else self.network
        self.end = NET_SKB_PAD + len(packet)
        eth = packet[:ETH_HLEN]
        proto = eth[12:14]
        self._set("protocol", int.from_bytes(proto if int.from_bytes(proto, "big") >= 0x600 else
                                             (b"\x00\x01" if packet[ETH_HLEN:ETH_HLEN + 2] == b"\xff\xff"
                                              else b"\x00\x04"), "little"))
        # eth_type_trans() against the loopback device, whose address and broadcast address are all
        # zeros: PACKET_HOST for its own address, PACKET_MULTICAST for any group address (ff:ff:... too),
        # PACKET_OTHERHOST otherwise.
        dest = eth[:6]
        pkt_type = 0 if dest == bytes(6) else 2 if dest[0] & 1 else 3
        self._set("pkt_type", pkt_type)
        if not self._get("ifindex"):
            self._set("ifindex", LOOPBACK_IFINDEX)  # the test skb comes from the loopback device
        if not self._get("wire_len") and self.ctx_given:
            self._set("wire_len", self.end - self.data)  # cb->pkt_len, set only when a context is given
        self._region = None

    def _get(self, name: str) -> int:
        off, size = SKB_FIELDS[name]
        return int.from_bytes(self.fields[off:off + size], "little")

    def _set(self, name: str, value: int) -> None:
        off, size = SKB_FIELDS[name]
        self.fields[off:off + size] = value.to_bytes(size, "little")

    def attach(self, run: "Run") -> None:
        super().attach(run)
        self._region = run.vm.packet_region
        self._region.name = "packet"
        self._remap()

    def _remap(self) -> None:
        self.vm.memory.replace(self._region, memoryview(self.buffer)[self.data:self.end])

    @property
    def length(self) -> int:
        return self.end - self.data

    def load(self, offset: int, size: int) -> int:
        found = _field_at(offset, size)
        if found is None or offset % size or size not in (1, 2, 4, 8):
            raise VMFault(self._bad(offset, size, "read"))
        name, off, fsize = found
        if name in self.denied or name == "tstamp_type" or \
                (self.prog_type not in _L2_TYPES | {ProgType.LWT_IN, ProgType.LWT_OUT, ProgType.LWT_XMIT,
                                                    ProgType.CGROUP_SKB} and name in _POINTERS):
            raise VMFault(self._bad(offset, size, "read") + f": {prog_type_name(self.prog_type)} programs cannot "
                          f"read __sk_buff.{name}")
        if name in _POINTERS:
            if size != 4 or offset != off:
                raise VMFault(self._bad(offset, size, "read") + f": __sk_buff.{name} is read as a whole u32")
            index = self.end if name == "data_end" else self.data
            return self._region.address + (index - self.data)
        if name in ("tstamp", "hwtstamp", "sk", "flow_keys"):
            if size != 8:
                raise VMFault(self._bad(offset, size, "read") + f": __sk_buff.{name} is read as a whole u64")
            return 0 if name in ("sk", "flow_keys") else self._get(name)
        if name == "len":
            self._set("len", self.length)
        if offset + size > off + fsize or (fsize == 4 and size > 4):
            raise VMFault(self._bad(offset, size, "read"))
        return int.from_bytes(self.fields[offset:offset + size], "little")

    def store(self, offset: int, size: int, value: int) -> None:
        found = _field_at(offset, size)
        if found is None or offset % size:
            raise VMFault(self._bad(offset, size, "write"))
        name, off, fsize = found
        if name not in self.writable:
            raise VMFault(self._bad(offset, size, "write") + f": {prog_type_name(self.prog_type)} programs cannot "
                          f"write __sk_buff.{name}")
        want = 8 if name == "tstamp" else 4
        if size != want:
            raise VMFault(self._bad(offset, size, "write") + f": __sk_buff.{name} is written as a whole "
                          f"u{want * 8}")
        self.fields[offset:offset + size] = value.to_bytes(size, "little")

    def raw(self) -> bytes:
        return bytes(self.fields)

    def ld_abs(self, offset: int, size: int) -> int | None:
        """LD_ABS/LD_IND: a big-endian load from the packet; None ends the program with 0."""
        if offset >= 0:
            start = self.data + offset
        elif offset >= -0x200000 and offset < -0x100000:  # SKF_LL_OFF: from the MAC header
            start = self.mac + offset + 0x200000
        elif offset >= -0x100000:  # SKF_NET_OFF: from the network header
            start = self.network + offset + 0x100000
        else:
            return None
        if start < self.mac or start + size > self.end:
            return None
        return int.from_bytes(self.buffer[start:start + size], "big")

    def ctx_out(self) -> bytes:
        """The __sk_buff a test run returns: the caller's, with the fields the kernel copies back."""
        out = bytearray(self.ctx_in)
        for name in ("mark", "priority", "ingress_ifindex", "ifindex", "tstamp", "cb", "wire_len", "gso_segs",
                     "hwtstamp"):
            off, size = SKB_FIELDS[name]
            out[off:off + size] = self.fields[off:off + size]
        return bytes(out)

    def packet_out(self) -> bytes:
        if self.l2:
            return bytes(self.buffer[self.data:self.end])
        # Other program types saw the packet from the network header; the kernel pushes the
        # Ethernet header back as zeros before copying the data out.
        return bytes(ETH_HLEN) + bytes(self.buffer[self.data:self.end])


# --- test runs --------------------------------------------------------------------------------------------


_TRACING = frozenset({ProgType.KPROBE, ProgType.TRACEPOINT, ProgType.RAW_TRACEPOINT, ProgType.PERF_EVENT,
                      ProgType.RAW_TRACEPOINT_WRITABLE, ProgType.TRACING, ProgType.SYSCALL})


def make_context(prog: "VMProgram", data: bytes, ctx: Any) -> Context | None:
    """The context a test run of ``prog`` gets for ``data``/``ctx`` (None: the raw memory contract)."""
    if isinstance(ctx, Context):
        return ctx
    ptype = prog.type
    if ptype == ProgType.XDP:
        return XDPContext(data, ctx)
    if ptype in SKB_TYPES:
        return SkbContext(data, ptype, ctx)
    if ptype in _TRACING:
        if data:
            raise VMError(f"test runs of {prog.describe()} take a context (ctx=), not packet data")
        return RawContext(ctx or b"", prog_type_name(ptype).lower() + "_ctx",
                          writable=ptype in (ProgType.RAW_TRACEPOINT_WRITABLE, ProgType.SYSCALL))
    if ptype is None:
        return None
    raise NotSupportedError(f"test runs of {prog_type_name(ptype)} programs in the VM",
                            reason="the VM builds contexts for XDP, socket buffer and tracing programs")


def test_run(prog: "VMProgram", data: bytes = b"", ctx: Any = None, *, repeat: int = 1, cpu: int | None = None,
             engine: str | None = None) -> TestRunResult:
    """Run ``prog`` like BPF_PROG_TEST_RUN: returns retval (u32), data_out, ctx_out and ns per run.

    Without a program type (raw bytecode) the program gets the conformance
    suite's contract: r1 = a writable copy of ``data``, r2 = its length;
    data_out is that memory afterwards.
    """
    vm = prog.vm
    context = make_context(prog, bytes(data), ctx)
    repeat = max(1, repeat)
    if context is None:
        memory = bytearray(data)
        start = time.perf_counter_ns()
        result = vm.execute(prog, (), memory=memory, cpu=cpu, engine=engine, repeat=repeat)
        elapsed = time.perf_counter_ns() - start
        return TestRunResult(result & 0xFFFFFFFF, bytes(memory), b"", elapsed // repeat)
    start = time.perf_counter_ns()
    result = vm.execute(prog, (), ctx=context, cpu=cpu, engine=engine, repeat=repeat)
    elapsed = time.perf_counter_ns() - start
    data_out = context.packet_out() if hasattr(context, "packet_out") else b""
    ctx_out = b""
    if isinstance(context, SkbContext) and context.ctx_given:
        ctx_out = context.ctx_out()
    elif isinstance(context, XDPContext) and context.ctx_given:
        ctx_out = context.raw()
    return TestRunResult(result & 0xFFFFFFFF, data_out, ctx_out, elapsed // repeat)
