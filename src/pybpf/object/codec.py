"""Codecs: how map keys/values and ring buffer records become Python values and back.

A codec is any object with ``size`` (bytes, or None when variable),
``encode(value) -> bytes`` and ``decode(data) -> value``.  The BTF codec of
:mod:`pybpf.btf` implements the same protocol; without BTF, maps use
:class:`RawCodec` (bytes, with ints accepted for integer-sized fields).

A codec may also offer ``decode_many(buffer, count, stride, offset) -> list``:
decode ``count`` records laid out every ``stride`` bytes, each starting
``offset`` bytes into its slot.  The ring buffer reader uses it to decode a whole
batch in C (``struct.iter_unpack``) instead of one Python call per record.
"""

from __future__ import annotations

import struct
from collections import namedtuple
from functools import partial
from typing import Any, Protocol, Sequence, runtime_checkable

from ..errors import MapError


@runtime_checkable
class Codec(Protocol):
    size: int | None

    def encode(self, value: Any) -> bytes: ...

    def decode(self, data: bytes | memoryview) -> Any: ...


_INT_FORMATS = {1: "B", 2: "H", 4: "I", 8: "Q"}


class RawCodec:
    """Bytes of exactly ``size``; an int is accepted (little-endian) when size is 1, 2, 4 or 8."""

    def __init__(self, size: int):
        self.size = size

    def encode(self, value: Any) -> bytes:
        if isinstance(value, int) and not isinstance(value, bool) and self.size in _INT_FORMATS:
            signed = value < 0
            try:
                return value.to_bytes(self.size, "little", signed=signed)
            except OverflowError:
                raise MapError(f"integer {value} does not fit in {self.size} bytes") from None
        if isinstance(value, (bytes, bytearray, memoryview)):
            data = bytes(value)
            if len(data) != self.size:
                raise MapError(f"got {len(data)} bytes, expected {self.size}")
            return data
        if hasattr(value, "__bytes__"):
            return self.encode(bytes(value))
        kind = "bytes or an int" if self.size in _INT_FORMATS else "bytes"
        raise MapError(f"cannot encode {type(value).__name__} {value!r}: expected {kind} of {self.size} bytes")

    def decode(self, data: bytes | memoryview) -> bytes:
        return bytes(data)

    def decode_many(self, buffer: memoryview, count: int, stride: int, offset: int) -> list[bytes]:
        size = self.size
        return [bytes(buffer[i + offset:i + offset + size]) for i in range(0, count * stride, stride)]

    def __repr__(self) -> str:
        return f"RawCodec({self.size})"


class IntCodec:
    """A little-endian integer of 1, 2, 4 or 8 bytes."""

    def __init__(self, size: int = 4, signed: bool = False):
        if size not in _INT_FORMATS:
            raise MapError(f"IntCodec size must be 1, 2, 4 or 8, not {size}")
        self.size = size
        self.signed = signed
        self._struct = struct.Struct("<" + (_INT_FORMATS[size].lower() if signed else _INT_FORMATS[size]))

    def encode(self, value: Any) -> bytes:
        try:
            return self._struct.pack(value)
        except struct.error:
            raise MapError(f"cannot encode {value!r} as a {'signed' if self.signed else 'unsigned'} {self.size * 8}-bit integer") from None

    def decode(self, data: bytes | memoryview) -> int:
        return self._struct.unpack_from(data)[0]

    def decode_many(self, buffer: memoryview, count: int, stride: int, offset: int) -> list[int]:
        fmt = f"<{offset}x{self._struct.format[1:]}{stride - offset - self.size}x"
        return [t[0] for t in struct.iter_unpack(fmt, buffer[:count * stride])]

    def __repr__(self) -> str:
        return f"IntCodec({self.size}, signed={self.signed})"


class StructCodec:
    """A fixed C struct given as a ``struct`` format (no byte-order prefix: little-endian, packed).

    With ``fields`` the values are named tuples (``event.pid``); with one unnamed
    field the bare value; otherwise plain tuples.  ``encode`` takes a tuple, a
    named tuple, a mapping of field names or (for one field) the bare value.
    Padding must be spelled out with ``x`` the way the C compiler lays it out.
    """

    def __init__(self, fmt: str, fields: str | Sequence[str] | None = None, name: str = "Record"):
        self._struct = struct.Struct("<" + fmt.lstrip("<=@!>"))
        self.size = self._struct.size
        self.format = self._struct.format[1:]
        self.type = None
        if fields is not None:
            self.type = namedtuple(name, fields)
            # tuple.__new__ bound to the class builds records in C (no _make length check per record).
            self._make = partial(tuple.__new__, self.type)
        self._single = fields is None and len(self._struct.unpack(bytes(self.size))) == 1
        self._many: dict[tuple[int, int], struct.Struct] = {}

    def encode(self, value: Any) -> bytes:
        try:
            if self._single and not isinstance(value, (tuple, list)):
                return self._struct.pack(value)
            if isinstance(value, dict):
                if self.type is None:
                    raise MapError("this StructCodec has no field names; pass a tuple")
                value = self.type(**value)
            return self._struct.pack(*value)
        except (struct.error, TypeError) as exc:
            raise MapError(f"cannot encode {value!r} with struct format {self.format!r}: {exc}") from None

    def decode(self, data: bytes | memoryview) -> Any:
        values = self._struct.unpack_from(data)
        if self.type is not None:
            return self.type._make(values)
        return values[0] if self._single else values

    def decode_many(self, buffer: memoryview, count: int, stride: int, offset: int) -> list:
        key = (stride, offset)
        layout = self._many.get(key)
        if layout is None:
            layout = self._many[key] = struct.Struct(f"<{offset}x{self.format}{stride - offset - self.size}x")
        rows = layout.iter_unpack(buffer[:count * stride])
        if self.type is not None:
            return list(map(self._make, rows))
        if self._single:
            return [r[0] for r in rows]
        return list(rows)

    def __repr__(self) -> str:
        return f"StructCodec({self.format!r}, fields={self.type._fields if self.type else None})"


class RecordCodec:
    """Decode event records with a fixed-size codec even when the record is longer (perf samples are padded
    to 8 bytes) or shorter (a program that sends part of a struct): the first ``size`` bytes are decoded,
    a record too short for them stays bytes."""

    def __init__(self, codec: Any):
        self.codec = codec
        self.size = codec.size

    def decode(self, data: bytes | memoryview) -> Any:
        size = self.size
        if len(data) < size:
            return bytes(data)
        return self.codec.decode(data[:size] if len(data) > size else data)

    def decode_many(self, buffer: memoryview, count: int, stride: int, offset: int) -> list:
        return decode_many(self.codec, buffer, count, stride, offset, self.size)

    def encode(self, value: Any) -> bytes:
        return self.codec.encode(value)

    def __repr__(self) -> str:
        return f"RecordCodec({self.codec!r})"


class FDValueCodec:
    """Values of fd maps (prog arrays, maps of maps, perf event arrays, sockmaps...).

    Updates take a live object (anything with ``fileno()``: a map, program or
    socket) or an fd number; lookups return the id of the stored object (the
    socket cookie for sockmaps).  Both backends use it; ``accepts`` names what
    their updates take in the error message.
    """

    def __init__(self, size: int = 4, accepts: str = "a Map, Program, socket or fd number"):
        self.size = size  # 8 for sockmaps whose lookups return u64 socket cookies
        self.accepts = accepts

    def encode(self, value: Any) -> bytes:
        if not isinstance(value, int) and hasattr(value, "fileno"):
            value = value.fileno()
        if not isinstance(value, int) or value < 0:
            raise MapError(f"expected {self.accepts}, not {value!r}")
        return value.to_bytes(self.size, "little")

    def decode(self, data: bytes | memoryview) -> int:
        return int.from_bytes(data[:self.size], "little")


def as_codec(codec: Any, size: int | None) -> Any:
    """A codec for a field of ``size`` bytes: the given one, a struct format string, or RawCodec."""
    if codec is None:
        return RawCodec(size or 0)
    if isinstance(codec, str):
        return StructCodec(codec)
    if not (hasattr(codec, "encode") and hasattr(codec, "decode")):
        raise MapError(f"{codec!r} is not a codec: it needs encode(value) -> bytes and decode(bytes) -> value")
    return codec


def decode_many(codec: Any, buffer: memoryview, count: int, stride: int, offset: int, size: int) -> list:
    """Decode ``count`` fixed-stride records with the codec's batch path when it has one."""
    many = getattr(codec, "decode_many", None)
    if many is not None:
        return many(buffer, count, stride, offset)
    decode = codec.decode
    return [decode(buffer[i + offset:i + offset + size]) for i in range(0, count * stride, stride)]
