"""Python values <-> the bytes of a BTF-typed global variable (``spec.rodata["pid"] = 1234``).

Integers, bools, enums (by value or enumerator name), floats, pointers (as
integers), char arrays (``str``/``bytes``), arrays (sequences) and
structs/unions (mappings by member name; bitfields included).  Without BTF a
variable is an integer when its size is 1, 2, 4 or 8 bytes, raw bytes otherwise.
"""

from __future__ import annotations

import struct
from typing import Any, Mapping, Sequence

from ..errors import ObjectError
from .btfread import (
    KIND_ARRAY, KIND_CONST, KIND_ENUM, KIND_ENUM64, KIND_FLOAT, KIND_INT, KIND_PTR, KIND_RESTRICT, KIND_STRUCT,
    KIND_TYPE_TAG, KIND_TYPEDEF, KIND_UNION, KIND_VOLATILE, INT_BOOL, INT_CHAR, INT_SIGNED, Type,
)

_SKIP = (KIND_TYPEDEF, KIND_CONST, KIND_VOLATILE, KIND_RESTRICT, KIND_TYPE_TAG)


class Codec:
    size: int

    def encode(self, value: Any) -> bytes:
        raise ObjectError("this value cannot be encoded")

    def decode(self, data: bytes) -> Any:
        return bytes(data)


class RawCodec(Codec):
    def __init__(self, size: int, name: str):
        self.size, self.name = size, name

    def encode(self, value: Any) -> bytes:
        if isinstance(value, (bytes, bytearray, memoryview)):
            data = bytes(value)
            if len(data) > self.size:
                raise ObjectError(f"{self.name}: {len(data)} bytes do not fit in {self.size}")
            return data.ljust(self.size, b"\0")
        raise ObjectError(f"{self.name}: {self.size}-byte value without type information takes bytes, "
                          f"not {type(value).__name__}")


class IntCodec(Codec):
    def __init__(self, size: int, signed: bool, name: str, is_bool: bool = False, enum: Type | None = None):
        self.size, self.signed, self.name, self.is_bool, self.enum = size, signed, name, is_bool, enum

    def encode(self, value: Any) -> bytes:
        if isinstance(value, str) and self.enum is not None:
            for e in self.enum.members:
                if e.name == value:
                    value = e.value
                    break
            else:
                names = ", ".join(e.name for e in self.enum.members)
                raise ObjectError(f"{self.name}: {value!r} is not a value of {self.enum.describe()} ({names})")
        if isinstance(value, bool) or (self.is_bool and isinstance(value, int)):
            value = int(bool(value))
        if not isinstance(value, int):
            raise ObjectError(f"{self.name}: expected an integer, got {type(value).__name__}")
        bits = self.size * 8
        lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if self.signed else (0, (1 << bits) - 1)
        if not lo <= value <= hi:
            # accept the other signedness's range too (e.g. -1 for a u32), as C would after a cast
            if -(1 << (bits - 1)) <= value < (1 << bits):
                value &= (1 << bits) - 1
            else:
                raise ObjectError(f"{self.name}: {value} does not fit in {self.size} bytes")
        return (value & ((1 << bits) - 1)).to_bytes(self.size, "little")

    def decode(self, data: bytes) -> Any:
        value = int.from_bytes(data, "little", signed=self.signed)
        return bool(value) if self.is_bool else value


class FloatCodec(Codec):
    def __init__(self, size: int, name: str):
        if size not in (4, 8):
            raise ObjectError(f"{name}: {size}-byte floats are not supported")
        self.size, self.name = size, name
        self.fmt = "<f" if size == 4 else "<d"

    def encode(self, value: Any) -> bytes:
        if not isinstance(value, (int, float)):
            raise ObjectError(f"{self.name}: expected a number, got {type(value).__name__}")
        return struct.pack(self.fmt, value)

    def decode(self, data: bytes) -> Any:
        return struct.unpack(self.fmt, data)[0]


class CharArrayCodec(Codec):
    def __init__(self, size: int, name: str):
        self.size, self.name = size, name

    def encode(self, value: Any) -> bytes:
        data = value.encode() if isinstance(value, str) else bytes(value)
        if len(data) > self.size:
            raise ObjectError(f"{self.name}: {len(data)} bytes do not fit in char[{self.size}]")
        return data.ljust(self.size, b"\0")

    def decode(self, data: bytes) -> Any:
        return bytes(data).split(b"\0", 1)[0].decode("utf-8", "replace")


class ArrayCodec(Codec):
    def __init__(self, elem: Codec, count: int, name: str):
        self.elem, self.count, self.name = elem, count, name
        self.size = elem.size * count

    def encode(self, value: Any) -> bytes:
        if not isinstance(value, Sequence) or isinstance(value, (str, bytes)):
            raise ObjectError(f"{self.name}: expected a sequence of {self.count} items")
        if len(value) > self.count:
            raise ObjectError(f"{self.name}: {len(value)} items do not fit in [{self.count}]")
        out = b"".join(self.elem.encode(v) for v in value)
        return out.ljust(self.size, b"\0")

    def decode(self, data: bytes) -> Any:
        n = self.elem.size
        return [self.elem.decode(data[i * n:(i + 1) * n]) for i in range(self.count)]


class StructCodec(Codec):
    def __init__(self, size: int, fields: list[tuple[str, int, int, Codec]], name: str):
        self.size, self.fields, self.name = size, fields, name  # (name, bit offset, bitfield bits, codec)

    def encode(self, value: Any) -> bytes:
        if not isinstance(value, Mapping):
            raise ObjectError(f"{self.name}: expected a mapping of member names to values")
        unknown = set(value) - {f[0] for f in self.fields}
        if unknown:
            raise ObjectError(f"{self.name}: no member(s) {', '.join(sorted(unknown))}")
        buf = bytearray(self.size)
        for fname, bit_off, bits, codec in self.fields:
            if fname not in value:
                continue
            if bits:
                raw = int.from_bytes(codec.encode(value[fname]), "little") & ((1 << bits) - 1)
                whole = int.from_bytes(buf, "little")
                whole &= ~(((1 << bits) - 1) << bit_off)
                whole |= raw << bit_off
                buf[:] = whole.to_bytes(self.size, "little")
            else:
                start = bit_off // 8
                buf[start:start + codec.size] = codec.encode(value[fname])
        return bytes(buf)

    def decode(self, data: bytes) -> Any:
        out = {}
        whole = None
        for fname, bit_off, bits, codec in self.fields:
            if bits:
                if whole is None:
                    whole = int.from_bytes(data, "little")
                raw = (whole >> bit_off) & ((1 << bits) - 1)
                if getattr(codec, "signed", False) and raw & (1 << (bits - 1)):
                    raw -= 1 << bits
                out[fname] = raw
            else:
                start = bit_off // 8
                out[fname] = codec.decode(data[start:start + codec.size])
        return out


def codec_for(t: Type | None, size: int, name: str, btf=None, depth: int = 0) -> Codec:
    """The codec for a variable of BTF type ``t`` (``None``: untyped, ``size`` bytes)."""
    if t is None:
        return IntCodec(size, False, name) if size in (1, 2, 4, 8) else RawCodec(size, name)
    if btf is None:
        btf = getattr(t, "_btf", None)
    if depth > 32:
        raise ObjectError(f"{name}: type nesting too deep")
    kind = t.kind
    if kind in _SKIP:
        if btf is None:
            return IntCodec(size, False, name) if size in (1, 2, 4, 8) else RawCodec(size, name)
        return codec_for(btf.type(t.type), size, name, btf, depth + 1)
    if kind == KIND_INT:
        if t.encoding & INT_CHAR and t.size == 1:
            return IntCodec(1, bool(t.encoding & INT_SIGNED), name)
        return IntCodec(t.size, bool(t.encoding & INT_SIGNED), name, is_bool=bool(t.encoding & INT_BOOL))
    if kind in (KIND_ENUM, KIND_ENUM64):
        return IntCodec(t.size, t.kind_flag, name, enum=t)
    if kind == KIND_PTR:
        return IntCodec(8, False, name)
    if kind == KIND_FLOAT:
        return FloatCodec(t.size, name)
    if btf is None:
        return RawCodec(size, name)
    if kind == KIND_ARRAY:
        elem_t = btf.type(btf.skip_mods_and_typedefs(t.type))
        if elem_t.kind == KIND_INT and elem_t.size == 1 and (elem_t.encoding & INT_CHAR or not elem_t.encoding & INT_BOOL):
            return CharArrayCodec(t.nelems, name)
        elem = codec_for(elem_t, btf.resolve_size(elem_t.id), f"{name}[]", btf, depth + 1)
        return ArrayCodec(elem, t.nelems, name)
    if kind in (KIND_STRUCT, KIND_UNION):
        fields = []
        for m in t.members:
            mt = btf.type(m.type)
            msize = btf.resolve_size(m.type)
            fields.append((m.name, m.bit_offset, m.bitfield_size,
                           codec_for(mt, msize, f"{name}.{m.name}", btf, depth + 1)))
        return StructCodec(t.size, fields, name)
    return RawCodec(size, name)


__all__ = ["Codec", "codec_for"]
