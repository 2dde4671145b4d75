"""Encoding type objects into BTF records, and whole BTF into bytes.

``encode_type`` is the inverse of ``BTF._make``: an unmodified type object encodes
to the exact words it was read from, which is what lets ``BTF.replace`` and the
sanitizer rewrite single records without disturbing the rest.
"""

from __future__ import annotations

import sys
from array import array
from typing import TYPE_CHECKING, Callable

from ..errors import BTFError
from .layout import BTF_MAGIC, BTF_VERSION, HEADER, HEADER_SIZE, MAX_VLEN, info_word
from .types import (
    Array,
    Composite,
    Datasec,
    DeclTag,
    Fwd,
    FuncProto,
    Func,
    Int,
    Kind,
    Type,
    Var,
    Void,
    _EnumBase,
    _Ref,
    Float,
)

if TYPE_CHECKING:
    from .btf import BTF

_U32 = 0xFFFFFFFF


def encode_type(t: Type, intern: Callable[[str], int]) -> list[int]:
    """The record words of one type; ``intern`` maps a name to its string offset."""
    if isinstance(t, Void) or t.kind == Kind.UNKN:
        raise BTFError("void (type 0) is implicit and cannot be added to BTF")
    kind = t.kind
    name = intern(t.name)
    if isinstance(t, Int):
        bits = t.bits or t.size * 8
        if not 0 < bits <= 128 or t.offset + bits > t.size * 8 or t.size not in (1, 2, 4, 8, 16):
            raise BTFError(f"INT {t.name!r}: {bits} bits at offset {t.offset} do not fit its {t.size} bytes")
        return [name, info_word(kind), t.size, (int(t.encoding) << 24) | (t.offset << 16) | bits]
    if isinstance(t, Composite):
        _check_vlen(t, t.members)
        kflag = t.kflag or any(m.bitfield_size for m in t.members)
        words = [name, info_word(kind, len(t.members), kflag), t.size]
        for m in t.members:
            if kflag:
                if m.offset > 0xFFFFFF or m.bitfield_size > 0xFF:
                    raise BTFError(f"{t.describe()} member {m.name!r}: bit offset {m.offset} or bitfield size "
                                   f"{m.bitfield_size} does not fit BTF's 24/8-bit fields")
                off = (m.bitfield_size << 24) | m.offset
            else:
                off = m.offset
            words += (intern(m.name), m.type_id, off & _U32)
        return words
    if isinstance(t, _EnumBase):
        _check_vlen(t, t.values)
        words = [name, info_word(kind, len(t.values), t.signed), t.size]
        bits = 32 if kind == Kind.ENUM else 64
        for v in t.values:
            if not -(1 << (bits - 1)) <= v.value < (1 << bits):
                raise BTFError(f"{t.describe()}: enumerator {v.name} = {v.value} does not fit in {bits} bits"
                               + ("; use Enum64" if bits == 32 else ""))
            if kind == Kind.ENUM:
                words += (intern(v.name), v.value & _U32)
            else:
                val = v.value & 0xFFFFFFFFFFFFFFFF
                words += (intern(v.name), val & _U32, val >> 32)
        return words
    if isinstance(t, Array):
        return [name, info_word(kind), 0, t.type_id, t.index_type_id, t.nelems]
    if isinstance(t, FuncProto):
        _check_vlen(t, t.params)
        words = [name, info_word(kind, len(t.params)), t.return_type_id]
        for p in t.params:
            words += (intern(p.name), p.type_id)
        return words
    if isinstance(t, Datasec):
        _check_vlen(t, t.vars)
        words = [name, info_word(kind, len(t.vars)), t.size]
        for v in t.vars:
            words += (v.type_id, v.offset, v.size)
        return words
    if isinstance(t, Float):
        return [name, info_word(kind), t.size]
    if isinstance(t, Fwd):
        return [name, info_word(kind, 0, t.union), 0]
    if isinstance(t, Func):
        return [name, info_word(kind, int(t.linkage)), t.type_id]
    if isinstance(t, Var):
        return [name, info_word(kind), t.type_id, int(t.linkage)]
    if isinstance(t, DeclTag):
        return [name, info_word(kind), t.type_id, t.component_idx & _U32]
    if isinstance(t, _Ref):
        return [name, info_word(kind), t.type_id]
    raise BTFError(f"cannot encode {t!r}: not a BTF type object")


def _check_vlen(t: Type, items: tuple) -> None:
    if len(items) > MAX_VLEN:
        raise BTFError(f"{t.describe()} has {len(items)} entries; BTF allows at most {MAX_VLEN}")


def serialize(btf: "BTF") -> bytes:
    """Header, type section and string section of ``btf`` (own types only for split BTF)."""
    types = btf.types_bytes()
    strings = btf.strings_bytes()
    header = HEADER.pack(BTF_MAGIC, BTF_VERSION, 0, HEADER_SIZE, 0, len(types), len(types), len(strings))
    return header + types + strings


def words_to_bytes(words: list[int]) -> bytes:
    a = array("I", words)
    if sys.byteorder != "little":
        a.byteswap()
    return a.tobytes()
