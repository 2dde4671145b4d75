"""CO-RE relocation lines for `pybpf disasm -r`, worded as llvm-objdump words them.

``llvm-objdump -r`` shows, under each instruction that a .BTF.ext CO-RE
relocation patches, a line like ``CO-RE <byte_off> [32] struct
task_struct::pid (0:84)``: the relocation kind, the BTF type, the member
path the access string selects, and the access string.  This module reads
only what that wording needs from .BTF (names, members, array elements,
enumerators) and .BTF.ext (the CO-RE records), and follows LLVM's
BTFParser::symbolize rules, including its messages for malformed records.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ..elf.reader import ELFFile

KIND_ARRAY, KIND_STRUCT, KIND_UNION, KIND_ENUM, KIND_FWD, KIND_TYPEDEF = 3, 4, 5, 6, 7, 8
KIND_VOLATILE, KIND_CONST, KIND_RESTRICT, KIND_TYPE_TAG, KIND_ENUM64 = 9, 10, 11, 18, 19
_MODIFIERS = {KIND_CONST: "const", KIND_VOLATILE: "volatile", KIND_RESTRICT: "restrict"}
_KEYWORDS = {KIND_TYPEDEF: "typedef", KIND_STRUCT: "struct", KIND_UNION: "union", KIND_ENUM: "enum",
             KIND_ENUM64: "enum"}
# extra bytes after the 12-byte header: fixed, and per vlen member
_FIXED = {1: 4, 3: 12, 14: 4, 17: 4}
_PER_MEMBER = {4: 12, 5: 12, 6: 8, 13: 8, 15: 12, 19: 12}

# enum bpf_core_relo_kind, named as llvm-objdump names them
KIND_NAMES = {
    0: "byte_off", 1: "byte_sz", 2: "field_exists", 3: "signed", 4: "lshift_u64", 5: "rshift_u64",
    6: "local_type_id", 7: "target_type_id", 8: "type_exists", 9: "type_size", 10: "enumval_exists",
    11: "enumval_value", 12: "type_matches",
}
_FIELD_KINDS, _TYPE_KINDS, _ENUM_KINDS = {0, 1, 2, 3, 4, 5}, {6, 7, 8, 9, 12}, {10, 11}


@dataclass(frozen=True, slots=True)
class _Type:
    kind: int
    name_off: int
    info: int
    ref: int  # the "type" field (size for some kinds)
    extra: tuple  # members (name_off, type), array element type, or enumerators (name_off, value)


class _BTF:
    def __init__(self, data: bytes):
        magic, _version, _flags, hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from(
            "<HBBIIIII", data, 0)
        if magic != 0xEB9F:
            raise ValueError("bad .BTF magic")
        self.strings = data[hdr_len + str_off:hdr_len + str_off + str_len]
        types = data[hdr_len + type_off:hdr_len + type_off + type_len]
        self.types: list[_Type | None] = [None]  # id 0 is void
        pos = 0
        while pos < len(types):
            name_off, info, ref = struct.unpack_from("<III", types, pos)
            kind, vlen = (info >> 24) & 0x1F, info & 0xFFFF
            pos += 12
            extra: tuple = ()
            if kind in (KIND_STRUCT, KIND_UNION):
                extra = tuple(struct.unpack_from("<II", types, pos + 12 * i) for i in range(vlen))
            elif kind == KIND_ARRAY:
                extra = (struct.unpack_from("<I", types, pos)[0],)
            elif kind == KIND_ENUM:
                extra = tuple((n, v & (1 << 64) - 1) for n, v in
                              (struct.unpack_from("<Ii", types, pos + 8 * i) for i in range(vlen)))
            elif kind == KIND_ENUM64:
                extra = tuple((n, lo | hi << 32) for n, lo, hi in
                              (struct.unpack_from("<III", types, pos + 12 * i) for i in range(vlen)))
            pos += _FIXED.get(kind, 0) + _PER_MEMBER.get(kind, 0) * vlen
            self.types.append(_Type(kind, name_off, info, ref, extra))

    def string(self, offset: int) -> str:
        end = self.strings.find(b"\0", offset)
        return self.strings[offset:end if end >= 0 else len(self.strings)].decode("utf-8", "replace")

    def type(self, type_id: int) -> _Type | None:
        return self.types[type_id] if 0 < type_id < len(self.types) else None

    def name_or_anon(self, offset: int, index: int) -> str:
        return self.string(offset) or f"<anon {index}>"

    def skip_mods_and_typedefs(self, t: _Type) -> _Type:
        while t.kind in _MODIFIERS or t.kind in (KIND_TYPE_TAG, KIND_TYPEDEF):
            base = self.type(t.ref)
            if base is None:
                break
            t = base
        return t


def describe(btf: _BTF, type_id: int, spec_text: str, kind: int) -> str:
    """LLVM's BTFParser::symbolize for one CO-RE record."""
    kind_text = f"<{KIND_NAMES[kind]}>" if kind in KIND_NAMES else f"<reloc kind #{kind}>"

    def fail(message: str) -> str:
        return f"{kind_text} [{type_id}] '{spec_text}' <{message}>"

    spec: list[int] = []
    rest = spec_text
    while rest:
        digits = len(rest) - len(rest.lstrip("0123456789"))
        if not digits:
            return fail("spec string is not a number")
        spec.append(int(rest[:digits]))
        rest = rest[digits:]
        if not rest:
            break
        if rest[0] != ":":
            return fail(f"unexpected spec string delimiter: '{rest[0]}'")
        rest = rest[1:]
    out = [kind_text]
    cur = type_id
    t = btf.type(cur)
    if t is None and cur != 0:
        return fail(f"unknown type id: {cur}")
    out.append(f" [{cur}]")
    chain = 0
    while t is not None and (t.kind in _MODIFIERS or t.kind == KIND_TYPE_TAG):
        out.append(f" type_tag(\"{btf.string(t.name_off)}\")" if t.kind == KIND_TYPE_TAG
                   else f" {_MODIFIERS[t.kind]}")
        if chain >= 32:
            return fail("modifiers chain is too long")
        chain += 1
        cur = t.ref
        t = btf.type(cur)
        if t is None and cur != 0:
            return fail(f"unknown type id: {cur} in modifiers chain")
    if cur == 0 or t is None:
        out.append(" void")
    else:
        if t.kind == KIND_FWD:
            out.append(" fwd union" if t.info >> 31 else " fwd struct")
        elif t.kind in _KEYWORDS:
            out.append(f" {_KEYWORDS[t.kind]}")
        out.append(f" {btf.name_or_anon(t.name_off, cur)}")
    if kind in _TYPE_KINDS:
        if spec != [0]:
            return fail("unexpected type-based relocation spec: should be '0'")
        return "".join(out)
    out.append("::")
    if kind in _ENUM_KINDS:
        t = btf.skip_mods_and_typedefs(t) if t is not None else None
        if len(spec) != 1:
            return fail("unexpected enumval relocation spec size")
        if t is None or t.kind not in (KIND_ENUM, KIND_ENUM64):
            return fail(f"unexpected type kind for enum relocation: {t.kind if t else 0}")
        index = spec[0]
        if index >= len(t.extra):
            return fail(f"bad value index: {index}")
        name_off, value = t.extra[index]
        if t.info >> 31 and value >> 63:  # kind_flag: a signed enum
            value -= 1 << 64
        out.append(f"{btf.name_or_anon(name_off, index)} = {value}")
        return "".join(out)
    if kind not in _FIELD_KINDS:
        return fail(f"unknown relocation kind: {kind}")
    if not spec:
        return fail("field spec too short")
    if spec[0]:
        out.append(f"[{spec[0]}]")
    for position in range(1, len(spec)):
        t = btf.skip_mods_and_typedefs(t) if t is not None else None
        index = spec[position]
        if t is not None and t.kind in (KIND_STRUCT, KIND_UNION):
            if index >= len(t.extra):
                return fail(f"member index {index} for spec sub-string {position} is out of range")
            name_off, member_type = t.extra[index]
            if position != 1 or spec[0]:
                out.append(".")
            out.append(btf.name_or_anon(name_off, index))
            t = btf.type(member_type)
            if t is None:
                return fail(f"unknown member type id {member_type} for spec sub-string {position}")
        elif t is not None and t.kind == KIND_ARRAY:
            out.append(f"[{index}]")
            element = t.extra[0]
            t = btf.type(element)
            if t is None:
                return fail(f"unknown element type id {element} for spec sub-string {position}")
        else:
            return fail(f"unexpected type kind {t.kind if t else 0} for spec sub-string {position}")
    out.append(f" ({spec_text})")
    return "".join(out)


def core_relocation_lines(elf: ELFFile) -> dict[str, dict[int, str]]:
    """Section name -> {instruction offset: text after "CO-RE "}; empty without .BTF and .BTF.ext.

    As llvm-objdump, one line per offset (the first record there), and
    nothing at all when the sections are malformed.
    """
    btf_sec, ext_sec = elf.section(".BTF"), elf.section(".BTF.ext")
    if btf_sec is None or ext_sec is None:
        return {}
    try:
        btf = _BTF(bytes(btf_sec.data))
        ext = bytes(ext_sec.data)
        magic, _version, _flags, hdr_len = struct.unpack_from("<HBBI", ext, 0)
        if magic != 0xEB9F or hdr_len < 32:
            return {}
        core_off, core_len = struct.unpack_from("<II", ext, 24)
        core = ext[hdr_len + core_off:hdr_len + core_off + core_len]
        out: dict[str, dict[int, str]] = {}
        if not core:
            return out
        rec_size = struct.unpack_from("<I", core, 0)[0]
        pos = 4
        while pos < len(core):
            sec_name_off, count = struct.unpack_from("<II", core, pos)
            pos += 8
            lines = out.setdefault(btf.string(sec_name_off), {})
            for _ in range(count):
                insn_off, type_id, spec_off, kind = struct.unpack_from("<IIII", core, pos)
                pos += rec_size
                lines.setdefault(insn_off, describe(btf, type_id, btf.string(spec_off), kind))
        return out
    except (struct.error, ValueError, IndexError):
        return {}
