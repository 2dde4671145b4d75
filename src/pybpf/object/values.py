"""Python values <-> the bytes of a global variable (``spec.rodata["pid"] = 1234``).

With BTF the BTF layer's codec does the work (structs as records, ``char[N]``
as str, enums by name...).  Objects compiled without ``-g`` have no types: a
variable is then an integer when its size is 1, 2, 4 or 8 bytes, raw bytes
otherwise.
"""

from __future__ import annotations

from typing import Any

from ..errors import ObjectError


class UntypedCodec:
    """A variable known only from its ELF symbol: little-endian integer or bytes."""

    def __init__(self, size: int, name: str):
        self.size, self.name = size, name
        self.integer = size in (1, 2, 4, 8)

    def decode(self, data: bytes) -> Any:
        return int.from_bytes(data, "little") if self.integer else bytes(data)

    def encode(self, value: Any) -> bytes:
        if isinstance(value, (bytes, bytearray, memoryview)):
            data = bytes(value)
            if len(data) > self.size:
                raise ObjectError(f"{self.name}: {len(data)} bytes do not fit in {self.size}")
            return data.ljust(self.size, b"\0")
        if self.integer and isinstance(value, int) and not isinstance(value, bool) or isinstance(value, bool):
            bits = self.size * 8
            if not -(1 << (bits - 1)) <= int(value) < (1 << bits):
                raise ObjectError(f"{self.name}: {value} does not fit in {self.size} bytes")
            return (int(value) & ((1 << bits) - 1)).to_bytes(self.size, "little")
        kind = "an integer or bytes" if self.integer else "bytes"
        raise ObjectError(f"{self.name}: a {self.size}-byte variable without type information takes {kind}, "
                          f"not {type(value).__name__}")


def codec_for(btf: Any, type_id: int, size: int, name: str) -> Any:
    """The codec of a variable: the BTF codec of its type, or :class:`UntypedCodec`."""
    if btf is not None and type_id:
        return btf.codec(type_id)
    return UntypedCodec(size, name)


__all__ = ["UntypedCodec", "codec_for"]
