"""Map values and function prototypes as bpftool prints them from BTF.

``bpftool map dump`` shows a map that has BTF as structured values (structs
as objects, char arrays as strings, enums by name, bitfields in hex) and
``bpftool prog dump xlated`` heads each function with its C prototype.  This
module reproduces both from the same BTF rules (bpftool's btf_dumper.c), so
pybpf's output can be compared with bpftool's on the same kernel objects:

- :class:`ValueFormatter` turns bytes of a BTF type into plain Python values
  (dict, list, str, int, bool); the few things bpftool prints verbatim rather
  than as JSON values (``0x1f`` bitfields and ``0xffff...`` pointers in plain
  mode) are :class:`Raw` strings, which a JSON writer emits unquoted.
- :func:`type_signature` is bpftool's one-line C rendering of a type
  (``int handle(struct xdp_md * ctx)``).

Where bpftool 7.1 prints something that is not a value at all (floats and
other kinds it does not know print ``(unsupported-kind``), pybpf prints the
value (floats) or the marker as a JSON string, so the output stays parseable.
"""

from __future__ import annotations

import math
import struct
from typing import TYPE_CHECKING, Any

from ..errors import BPFError
from .types import IntEncoding, Kind, VarLinkage

if TYPE_CHECKING:
    from .btf import BTF

SIGNATURE_LIMIT = 1024  # bpftool's buffer for a prototype: a longer one is not printed at all


class Raw(str):
    """Text a bpftool-style writer emits as is (no quotes): ``0x1f``, ``(nil)``."""


class Pairs(list):
    """An object whose member names repeat (several anonymous members, all named ""): a list of
    (name, value) that a writer prints as one object with every member, as bpftool does."""


_MODIFIERS = (Kind.TYPEDEF, Kind.VOLATILE, Kind.CONST, Kind.RESTRICT, Kind.TYPE_TAG)
_QUALIFIERS = (Kind.VOLATILE, Kind.CONST, Kind.RESTRICT, Kind.TYPE_TAG)  # libbpf's btf_is_mod(): no typedefs
_SIGNED = {1: "<b", 2: "<h", 4: "<i", 8: "<q"}
_UNSIGNED = {1: "<B", 2: "<H", 4: "<I", 8: "<Q"}


class ValueFormatter:
    """Bytes of a BTF type -> the value bpftool shows (``plain``: its text mode, else its -j mode).

    One formatter per BTF object; it caches the parsed types, so formatting
    every entry of a large map costs a few dictionary lookups per field.
    """

    def __init__(self, btf: BTF, *, plain: bool = False, pointer_size: int = 8):
        self.btf = btf
        self.plain = plain
        self.pointer_size = pointer_size
        self._types: dict[int, Any] = {}
        self._sizes: dict[int, int] = {}

    def format(self, type_id: int, data: bytes | bytearray | memoryview) -> Any:
        """The value of type ``type_id`` stored at the start of ``data`` (short data reads as zeros)."""
        return self._value(type_id, bytes(data), 0, 0)

    # --- dispatch ---------------------------------------------------------------------

    def _type(self, type_id: int) -> Any:
        t = self._types.get(type_id)
        if t is None:
            t = self._types[type_id] = self.btf[type_id]
        return t

    def _size(self, type_id: int) -> int:
        size = self._sizes.get(type_id)
        if size is None:
            size = self._sizes[type_id] = self.btf.sizeof(type_id)
        return size

    def _value(self, type_id: int, data: bytes, off: int, bit_offset: int) -> Any:
        t = self._type(type_id)
        kind = t.kind
        if kind == Kind.INT:
            return self._int(t, data, off, bit_offset)
        if kind in (Kind.STRUCT, Kind.UNION):
            return self._composite(t, data, off)
        if kind == Kind.ARRAY:
            return self._array(t, data, off)
        if kind in (Kind.ENUM, Kind.ENUM64):
            return self._enum(t, data, off)
        if kind == Kind.PTR:
            value = _read(data, off, "<Q" if self.pointer_size == 8 else "<I")
            if self.plain:
                return Raw(f"{value:#x}" if value else "(nil)")  # printf's %p
            return value
        if kind in _MODIFIERS:
            return self._value(self.btf.resolve(type_id), data, off, bit_offset)
        if kind == Kind.VAR:
            return {t.name: self._value(t.type_id, data, off, bit_offset)}
        if kind == Kind.DATASEC:
            return {t.name: [self._value(v.type_id, data, off + v.offset, 0) for v in t.vars]}
        if kind == Kind.FLOAT:
            return self._float(t, data, off)
        if kind == Kind.UNKN:
            return "(unknown)"
        if kind == Kind.FWD:
            return "(fwd-kind-invalid)"  # a map key or value cannot be a forward declaration
        return "(unsupported-kind)"

    # --- kinds ------------------------------------------------------------------------

    def _int(self, t: Any, data: bytes, off: int, bit_offset: int) -> Any:
        bits = t.bits
        if bit_offset or t.offset or bits % 8:
            total = bit_offset + t.offset
            return self._bitfield(data, off + total // 8, total % 8, bits)
        if bits == 128:
            return self._hex(int.from_bytes(_slice(data, off, 16), "little"))
        encoding = t.encoding
        if encoding == IntEncoding.CHAR:
            byte = _slice(data, off, 1)[0]
            if 0x20 <= byte < 0x7F:  # isprint() in the C locale
                return chr(byte)
            return Raw(f"{byte:#x}") if self.plain else Raw(f'"\\u00{byte:02x}"')
        if encoding == IntEncoding.BOOL:
            return _slice(data, off, 1)[0] != 0
        fmt = (_SIGNED if encoding == IntEncoding.SIGNED else _UNSIGNED).get(bits // 8)
        if fmt is None:  # 24, 40, 48 or 56 bits: bpftool prints these like bitfields
            return self._bitfield(data, off, 0, bits)
        return _read(data, off, fmt)

    def _bitfield(self, data: bytes, off: int, bit_offset: int, bits: int) -> Raw | str:
        nbytes = (bit_offset + bits + 7) // 8
        value = (int.from_bytes(_slice(data, off, nbytes), "little") >> bit_offset) & ((1 << bits) - 1)
        return self._hex(value)

    def _hex(self, value: int) -> Raw | str:
        """bitfields and 128-bit integers: hex, bare in plain text and quoted in JSON."""
        return Raw(f"{value:#x}") if self.plain else f"{value:#x}"

    def _composite(self, t: Any, data: bytes, off: int) -> dict | Pairs:
        pairs = []
        for m in t.members:
            at = off + m.offset // 8
            if m.bitfield_size:
                value = self._bitfield(data, at, m.offset % 8, m.bitfield_size)
            else:
                value = self._value(m.type_id, data, at, m.offset % 8)
            pairs.append((m.name, value))
        out = dict(pairs)
        return out if len(out) == len(pairs) else Pairs(pairs)

    def _array(self, t: Any, data: bytes, off: int) -> Any:
        n = t.nelems
        if n and self._is_char(t.type_id):
            chunk = _slice(data, off, n)
            end = chunk.find(b"\0")
            if end >= 0 and all(0x20 <= b < 0x7F for b in chunk[:end]):
                return chunk[:end].decode("ascii")
        size = self._size(t.type_id)
        return [self._value(t.type_id, data, off + i * size, 0) for i in range(n)]

    def _is_char(self, type_id: int) -> bool:
        """bpftool's test for a char array: one-byte INT named char or encoded CHAR, qualifiers skipped
        (but not typedefs: an array of a typedef of char prints as numbers)."""
        t = self._type(type_id)
        while t.kind in _QUALIFIERS:
            t = self._type(t.type_id)
        return t.kind == Kind.INT and t.size == 1 and (t.encoding == IntEncoding.CHAR or t.name == "char")

    def _enum(self, t: Any, data: bytes, off: int) -> Any:
        if t.kind == Kind.ENUM64:
            value = _read(data, off, "<Q")
            for v in t.values:
                if v.value & (2**64 - 1) == value:
                    return v.name
            return value - 2**64 if value >= 2**63 else value
        fmt = _SIGNED.get(t.size)
        if fmt is None:
            return "(unsupported-kind)"
        value = _read(data, off, fmt)
        for v in t.values:
            enum_value = v.value & 0xFFFFFFFF
            if value == (enum_value - 2**32 if enum_value >= 2**31 else enum_value):
                return v.name
        return value

    def _float(self, t: Any, data: bytes, off: int) -> Any:
        fmt = {4: "<f", 8: "<d"}.get(t.size)
        if fmt is None:  # long double and friends
            return "(unsupported-kind)"
        value = _read(data, off, fmt)
        return value if math.isfinite(value) else str(value)


def _slice(data: bytes, off: int, size: int) -> bytes:
    chunk = data[off:off + size]
    return chunk if len(chunk) == size else chunk.ljust(size, b"\0")


def _read(data: bytes, off: int, fmt: str) -> Any:
    return struct.unpack_from(fmt, _slice(data, off, struct.calcsize(fmt)))[0]


# --- prototypes ---------------------------------------------------------------------------


class _SignatureTooLong(Exception):
    pass


def type_signature(btf: BTF, type_id: int) -> str:
    """A type in bpftool's one-line C form: ``int handle(void * ctx)`` for a FUNC, ``struct key * ``
    for a pointer.  Empty where bpftool prints nothing (kinds it cannot render, over 1023 characters)."""
    out: list[str] = []
    length = [0]

    def emit(text: str) -> None:
        out.append(text)
        length[0] += len(text)
        if length[0] >= SIGNATURE_LIMIT:
            raise _SignatureTooLong

    def render(tid: int, depth: int = 0) -> None:
        if depth > 64:
            raise _SignatureTooLong  # a reference loop: bpftool would overflow its buffer too
        if tid == 0:
            emit("void ")
            return
        t = btf[tid]
        kind = t.kind
        if kind in (Kind.INT, Kind.TYPEDEF, Kind.FLOAT):
            emit(f"{t.name} ")
        elif kind in (Kind.STRUCT, Kind.UNION):
            emit(f"{'struct' if kind == Kind.STRUCT else 'union'} {t.name} ")
        elif kind in (Kind.ENUM, Kind.ENUM64):
            emit(f"enum {t.name} ")
        elif kind == Kind.ARRAY:
            render(t.type_id, depth + 1)
            emit(f"[{t.nelems}]")
        elif kind == Kind.PTR:
            render(t.type_id, depth + 1)
            emit("* ")
        elif kind == Kind.FWD:
            emit(f"{'union' if t.union else 'struct'} {t.name} ")
        elif kind in (Kind.VOLATILE, Kind.CONST, Kind.RESTRICT):
            emit(f"{kind.name.lower()} ")
            render(t.type_id, depth + 1)
        elif kind == Kind.FUNC_PROTO:
            function(t, None, depth)
        elif kind == Kind.FUNC:
            function(btf[t.type_id], t.name, depth)
        elif kind == Kind.VAR:
            if t.linkage == VarLinkage.STATIC:
                emit("static ")
            render(t.type_id, depth + 1)
            emit(f" {t.name}")
        elif kind == Kind.DATASEC:
            emit(f'section ("{t.name}") ')
        else:
            raise _SignatureTooLong  # type tags, decl tags: bpftool gives up on the whole signature

    def function(proto: Any, name: str | None, depth: int) -> None:
        if proto.kind != Kind.FUNC_PROTO:
            raise _SignatureTooLong
        render(proto.return_type_id, depth + 1)
        emit(f"{name}(" if name is not None else "(")
        for i, param in enumerate(proto.params):
            if i:
                emit(", ")
            if not param.type_id:
                emit("...")
                continue
            render(param.type_id, depth + 1)
            if param.name:
                emit(param.name)
            elif out and out[-1].endswith(" "):  # an unnamed parameter: no space before ',' or ')'
                out[-1] = out[-1][:-1]
                length[0] -= 1
        emit(")")

    try:
        render(type_id)
    except (_SignatureTooLong, BPFError, IndexError, KeyError):
        return ""
    return "".join(out)
