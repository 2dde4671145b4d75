"""The VM's memory: regions behind virtual 64-bit addresses, every access checked.

A program never sees a host address.  A pointer is ``region_id << 24 | offset``:
the region table maps the id to a Python buffer, so a load is a shift, a list
index and a bounds-checked ``struct.unpack_from`` (or bytearray index), and a
store goes through a second table that holds ``None`` for read-only regions.
An address outside every region lands on ``None`` or past a buffer's end and
raises; :func:`describe_access` turns that into a :class:`VMFault` naming the
region, offset and size.

Why 24 bits of offset: CPython adds and shifts integers below 2**30 on a fast
path, so the pointers of the first 63 regions (stacks, context, packet, the
values a run touches first) stay cheap to compute with.  A region may hold at
most 8 MiB: the upper half of each 16 MiB slot is never mapped, so a pointer
that runs off the start of a region (which borrows into the slot below) or a
little past its end always faults instead of reaching a neighbour.  Pointers
carry no provenance: a wild pointer moved by more than that lands in another
region and is checked against that region's bounds.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

from ..errors import VMError, VMFault

OFFSET_BITS = 24
OFFSET_MASK = (1 << OFFSET_BITS) - 1
MAX_REGION_SIZE = 1 << (OFFSET_BITS - 1)  # 8 MiB: the upper half of each slot stays unmapped
M64 = (1 << 64) - 1


@dataclass(eq=False)
class Region:
    """One addressable buffer: a stack frame, the context, a packet, a map value..."""

    id: int
    name: str  # "stack of frame 0", "packet", "value of map 'counts' key 0x01000000"...
    kind: str  # stack | ctx | packet | map_value | rodata | memory | ringbuf | code | map
    buffer: Any  # bytearray / memoryview / bytes (None for non-data regions: code, map handles)
    writable: bool = True
    owner: Any = None  # the VMMap, Context, program... that the region belongs to

    @property
    def address(self) -> int:
        return self.id << OFFSET_BITS

    @property
    def size(self) -> int:
        return len(self.buffer) if self.buffer is not None else 0


def address_of(region_id: int, offset: int = 0) -> int:
    return (region_id << OFFSET_BITS) + offset


@dataclass(eq=False)
class Memory:
    """The region tables of one VM: ``read[id]`` and ``write[id]`` are what compiled code indexes."""

    read: list = field(default_factory=lambda: [None])
    write: list = field(default_factory=lambda: [None])
    regions: list = field(default_factory=lambda: [None])
    pinned: int = 1  # regions below this id survive reset()

    def map(self, buffer: Any, name: str, kind: str, *, writable: bool = True, owner: Any = None,
            readable: bool = True) -> Region:
        """Make ``buffer`` addressable; returns its Region (``.address`` is its first byte)."""
        if buffer is not None and len(buffer) > MAX_REGION_SIZE:
            raise VMError(f"cannot map {name}: {len(buffer)} bytes is more than the VM's region limit "
                          f"of {MAX_REGION_SIZE} bytes")
        region = Region(len(self.regions), name, kind, buffer, writable, owner)
        if buffer is not None and not isinstance(buffer, (bytearray, memoryview, bytes)):
            raise VMError(f"cannot map {name}: {type(buffer).__name__} is not a bytes-like buffer")
        self.regions.append(region)
        self.read.append(buffer if readable else None)
        self.write.append(buffer if writable and buffer is not None and not isinstance(buffer, bytes) else None)
        return region

    def pin(self) -> None:
        """Keep every region mapped so far across :meth:`reset` (stacks, maps' handles...)."""
        self.pinned = len(self.regions)

    def reset(self) -> None:
        """Unmap the regions made during a run (map values looked up, packets, ring buffer records)."""
        n = self.pinned
        del self.read[n:], self.write[n:], self.regions[n:]

    def replace(self, region: Region, buffer: Any) -> None:
        """Point an existing region at a new buffer (a packet after bpf_xdp_adjust_head)."""
        region.buffer = buffer
        self.read[region.id] = buffer
        self.write[region.id] = buffer if region.writable else None

    def unmap(self, region: Region) -> None:
        """Make a region unreachable (a ring buffer record after submit/discard)."""
        self.read[region.id] = None
        self.write[region.id] = None

    # -- checked access for helpers and the reference interpreter ------------

    def region_at(self, address: int) -> Region | None:
        rid = address >> OFFSET_BITS
        if 0 < rid < len(self.regions) and address >= 0:
            return self.regions[rid]
        return None

    def view(self, address: int, size: int, *, write: bool = False, what: str = "access") -> memoryview:
        """A memoryview of ``size`` bytes at ``address``, or VMFault when it is not all mapped."""
        if size < 0:
            raise VMFault(f"{what}: negative size {size}")
        rid = address >> OFFSET_BITS
        off = address & OFFSET_MASK
        table = self.write if write else self.read
        buf = table[rid] if 0 <= rid < len(table) else None
        if buf is None or off + size > len(buf):
            raise self.fault(address, size, write, what)
        return memoryview(buf)[off:off + size]

    def load(self, address: int, size: int, what: str = "load") -> bytes:
        return bytes(self.view(address, size, what=what))

    def store(self, address: int, data: bytes | bytearray | memoryview, what: str = "store") -> None:
        if len(data):
            self.view(address, len(data), write=True, what=what)[:] = data

    def load_int(self, address: int, size: int, what: str = "load") -> int:
        return int.from_bytes(self.view(address, size, what=what), "little")

    def store_int(self, address: int, size: int, value: int, what: str = "store") -> None:
        self.view(address, size, write=True, what=what)[:] = (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")

    def load_cstr(self, address: int, limit: int, what: str = "string") -> bytes:
        """Bytes up to (not including) the first NUL, reading at most ``limit`` bytes; faults if
        no NUL is found inside the region before the limit."""
        rid = address >> OFFSET_BITS
        off = address & OFFSET_MASK
        buf = self.read[rid] if 0 <= rid < len(self.read) else None
        if buf is None or off >= len(buf):
            raise self.fault(address, 1, False, what)
        end = min(len(buf), off + limit)
        data = bytes(buf[off:end])
        nul = data.find(0)
        if nul < 0:
            if end - off < limit:
                raise self.fault(address, end - off + 1, False, what + " (no terminating NUL)")
            return data
        return data[:nul]

    def fault(self, address: int, size: int, write: bool, what: str) -> VMFault:
        return VMFault(describe_access(self, address, size, write, what))


def describe_access(memory: Memory, address: int, size: int, write: bool, what: str = "") -> str:
    """Why an access of ``size`` bytes at ``address`` is invalid, in words a user can act on."""
    verb = "write" if write else "read"
    access = f"{verb} of {size} byte{'s' if size != 1 else ''}"
    prefix = f"{what}: " if what and what not in ("load", "store") else ""
    address &= M64
    rid = address >> OFFSET_BITS
    off = address & OFFSET_MASK
    regions = memory.regions
    # An offset in the unmapped upper half of a slot is a pointer that ran off the start of the
    # region above (or past the end of this one): name the region it came from.
    if off >= MAX_REGION_SIZE:
        above = regions[rid + 1] if rid + 1 < len(regions) else None
        if above is not None and above.buffer is not None:
            back = (1 << OFFSET_BITS) - off
            return (f"{prefix}{access} at offset -{back} of {above.name} (size {above.size}): before the start "
                    "of the region")
        return f"{prefix}{access} at address {address:#x}: not a mapped address"
    if rid == 0:
        return f"{prefix}{access} at address {address:#x}: null pointer dereference"
    region = regions[rid] if rid < len(regions) else None
    if region is None:
        return f"{prefix}{access} at address {address:#x}: not a mapped address"
    if region.buffer is None or (memory.read[rid] is None and memory.write[rid] is None):
        if region.kind == "ctx":
            return (f"{prefix}{access} at offset {off} of {region.name}: the context may only be accessed "
                    "directly through the pointer the program received (ctx + constant offset)")
        state = "no longer valid" if region.buffer is not None else "not memory"
        return f"{prefix}{access} at offset {off} of {region.name}: the region is {state}"
    if write and memory.write[rid] is None:
        return f"{prefix}{access} at offset {off} of {region.name}: the region is read-only"
    if off + size > region.size:
        return f"{prefix}{access} at offset {off} of {region.name} (size {region.size}): out of bounds"
    return f"{prefix}{access} at offset {off} of {region.name}: invalid access"


# Struct accessors shared by the interpreter and the compiled code.
U8 = struct.Struct("<B")
U16 = struct.Struct("<H")
U32 = struct.Struct("<I")
U64 = struct.Struct("<Q")
S8 = struct.Struct("<b")
S16 = struct.Struct("<h")
S32 = struct.Struct("<i")
UNSIGNED = {1: U8, 2: U16, 4: U32, 8: U64}
SIGNED = {1: S8, 2: S16, 4: S32}
