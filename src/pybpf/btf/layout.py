"""The wire layout of BTF: header, record sizes per kind, and bit fields of ``info``.

Every reader and writer in this package takes sizes from here, so the format
knowledge lives in one place.  Records are sequences of 32-bit words: the
common ``btf_type`` (name_off, info, size/type) followed by kind-specific words.
"""

from __future__ import annotations

import struct

from .types import Kind

BTF_MAGIC = 0xEB9F
BTF_VERSION = 1
HEADER = struct.Struct("<HBBIIIII")  # magic, version, flags, hdr_len, type_off, type_len, str_off, str_len
HEADER_SIZE = HEADER.size  # 24

#: Words after the common 3-word header, independent of vlen.
EXTRA_WORDS = [0] * 32
#: Words per vlen entry.
VLEN_WORDS = [0] * 32
#: Kinds a reader knows (anything else is malformed BTF).
KNOWN = [False] * 32

for _kind, _extra, _per in (
    (Kind.INT, 1, 0), (Kind.PTR, 0, 0), (Kind.ARRAY, 3, 0), (Kind.STRUCT, 0, 3), (Kind.UNION, 0, 3),
    (Kind.ENUM, 0, 2), (Kind.FWD, 0, 0), (Kind.TYPEDEF, 0, 0), (Kind.VOLATILE, 0, 0), (Kind.CONST, 0, 0),
    (Kind.RESTRICT, 0, 0), (Kind.FUNC, 0, 0), (Kind.FUNC_PROTO, 0, 2), (Kind.VAR, 1, 0), (Kind.DATASEC, 0, 3),
    (Kind.FLOAT, 0, 0), (Kind.DECL_TAG, 1, 0), (Kind.TYPE_TAG, 0, 0), (Kind.ENUM64, 0, 3),
):
    EXTRA_WORDS[_kind] = _extra
    VLEN_WORDS[_kind] = _per
    KNOWN[_kind] = True

#: Kinds whose third word is a size (the others hold a type id there, or nothing).
SIZED_KINDS = frozenset({Kind.INT, Kind.STRUCT, Kind.UNION, Kind.ENUM, Kind.ENUM64, Kind.DATASEC, Kind.FLOAT})
#: Kinds whose third word is a type id.
REF_KINDS = frozenset({Kind.PTR, Kind.TYPEDEF, Kind.VOLATILE, Kind.CONST, Kind.RESTRICT, Kind.FUNC,
                       Kind.FUNC_PROTO, Kind.VAR, Kind.DECL_TAG, Kind.TYPE_TAG})

KIND_NAMES = [k.name for k in Kind] + ["UNKNOWN"] * (32 - len(Kind))
KIND_NAMES[0] = "UNKNOWN"

MAX_TYPE_ID = 0xFFFFF
MAX_NAME_OFFSET = 0xFFFFFF
MAX_VLEN = 0xFFFF


def info_word(kind: int, vlen: int = 0, kflag: bool = False) -> int:
    return (int(kflag) << 31) | ((kind & 0x1F) << 24) | (vlen & 0xFFFF)


def record_words(kind: int, vlen: int) -> int:
    return 3 + EXTRA_WORDS[kind] + vlen * VLEN_WORDS[kind]
