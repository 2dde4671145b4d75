"""CO-RE relocation lines for `pybpf disasm -r`, worded as llvm-objdump words them.

``llvm-objdump -r`` shows, under each instruction that a .BTF.ext CO-RE
relocation patches, a line like ``CO-RE <byte_off> [32] struct
task_struct::pid (0:84)``: the relocation kind, the BTF type, the member
path the access string selects, and the access string.  The records and
types come from pybpf.btf (:class:`~pybpf.btf.BTF`, :class:`~pybpf.btf.BTFExt`);
this module only follows LLVM's BTFParser::symbolize wording, including its
messages for records that point nowhere sensible.
"""

from __future__ import annotations

from typing import Any

from ..btf import BTF, BTFExt, Kind
from ..elf.reader import ELFFile
from ..errors import BPFError

_MODIFIERS = {Kind.CONST: "const", Kind.VOLATILE: "volatile", Kind.RESTRICT: "restrict"}
_KEYWORDS = {Kind.TYPEDEF: "typedef", Kind.STRUCT: "struct", Kind.UNION: "union", Kind.ENUM: "enum",
             Kind.ENUM64: "enum"}

# enum bpf_core_relo_kind, named as llvm-objdump names them
KIND_NAMES = {
    0: "byte_off", 1: "byte_sz", 2: "field_exists", 3: "signed", 4: "lshift_u64", 5: "rshift_u64",
    6: "local_type_id", 7: "target_type_id", 8: "type_exists", 9: "type_size", 10: "enumval_exists",
    11: "enumval_value", 12: "type_matches",
}
_FIELD_KINDS, _TYPE_KINDS, _ENUM_KINDS = {0, 1, 2, 3, 4, 5}, {6, 7, 8, 9, 12}, {10, 11}


def _type(btf: BTF, type_id: int) -> Any:
    """The type ``type_id``, or None for void and ids the BTF does not have (LLVM's findType)."""
    if type_id <= 0:
        return None
    try:
        return btf[type_id]
    except BPFError:
        return None


def _name_or_anon(name: str, index: int) -> str:
    return name or f"<anon {index}>"


def _skip_mods_and_typedefs(btf: BTF, t: Any) -> Any:
    while t.kind in _MODIFIERS or t.kind in (Kind.TYPE_TAG, Kind.TYPEDEF):
        base = _type(btf, t.type_id)
        if base is None:
            break
        t = base
    return t


def _enum_value(t: Any, value: int) -> int:
    """As LLVM prints it: a 32-bit enumerator is read as a signed int, and only signed enums stay negative."""
    if t.kind == Kind.ENUM and value >= 0 and value & 0x80000000:
        value -= 1 << 32
    return value if t.signed else value & ((1 << 64) - 1)


def describe(btf: BTF, type_id: int, spec_text: str, kind: int) -> str:
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
    t = _type(btf, cur)
    if t is None and cur != 0:
        return fail(f"unknown type id: {cur}")
    out.append(f" [{cur}]")
    chain = 0
    while t is not None and (t.kind in _MODIFIERS or t.kind == Kind.TYPE_TAG):
        out.append(f" type_tag(\"{t.name}\")" if t.kind == Kind.TYPE_TAG else f" {_MODIFIERS[t.kind]}")
        if chain >= 32:
            return fail("modifiers chain is too long")
        chain += 1
        cur = t.type_id
        t = _type(btf, cur)
        if t is None and cur != 0:
            return fail(f"unknown type id: {cur} in modifiers chain")
    if cur == 0 or t is None:
        out.append(" void")
    else:
        if t.kind == Kind.FWD:
            out.append(" fwd union" if t.union else " fwd struct")
        elif t.kind in _KEYWORDS:
            out.append(f" {_KEYWORDS[t.kind]}")
        out.append(f" {_name_or_anon(t.name, cur)}")
    if kind in _TYPE_KINDS:
        if spec != [0]:
            return fail("unexpected type-based relocation spec: should be '0'")
        return "".join(out)
    out.append("::")
    if kind in _ENUM_KINDS:
        t = _skip_mods_and_typedefs(btf, t) if t is not None else None
        if len(spec) != 1:
            return fail("unexpected enumval relocation spec size")
        if t is None or t.kind not in (Kind.ENUM, Kind.ENUM64):
            return fail(f"unexpected type kind for enum relocation: {int(t.kind) if t else 0}")
        index = spec[0]
        if index >= len(t.values):
            return fail(f"bad value index: {index}")
        value = t.values[index]
        out.append(f"{_name_or_anon(value.name, index)} = {_enum_value(t, value.value)}")
        return "".join(out)
    if kind not in _FIELD_KINDS:
        return fail(f"unknown relocation kind: {kind}")
    if not spec:
        return fail("field spec too short")
    if spec[0]:
        out.append(f"[{spec[0]}]")
    for position in range(1, len(spec)):
        t = _skip_mods_and_typedefs(btf, t) if t is not None else None
        index = spec[position]
        if t is not None and t.kind in (Kind.STRUCT, Kind.UNION):
            if index >= len(t.members):
                return fail(f"member index {index} for spec sub-string {position} is out of range")
            member = t.members[index]
            if position != 1 or spec[0]:
                out.append(".")
            out.append(_name_or_anon(member.name, index))
            t = _type(btf, member.type_id)
            if t is None:
                return fail(f"unknown member type id {member.type_id} for spec sub-string {position}")
        elif t is not None and t.kind == Kind.ARRAY:
            out.append(f"[{index}]")
            element = t.type_id
            t = _type(btf, element)
            if t is None:
                return fail(f"unknown element type id {element} for spec sub-string {position}")
        else:
            return fail(f"unexpected type kind {int(t.kind) if t else 0} for spec sub-string {position}")
    out.append(f" ({spec_text})")
    return "".join(out)


def core_relocation_lines(elf: ELFFile) -> dict[str, dict[int, str]]:
    """Section name -> {instruction offset: text after "CO-RE "}; empty without .BTF and .BTF.ext.

    As llvm-objdump, one line per offset (the first record there), and
    nothing at all when the sections are malformed.
    """
    if elf.section(".BTF") is None or elf.section(".BTF.ext") is None:
        return {}
    try:
        btf = BTF.from_elf(elf, validate=False)
        ext = BTFExt.from_elf(elf, btf)
        out: dict[str, dict[int, str]] = {}
        for section, records in ext.core_relos.items():
            lines = out.setdefault(section, {})
            for rec in records:
                lines.setdefault(rec.insn_off, describe(btf, rec.type_id, rec.access_str, int(rec.kind)))
        return out
    except BPFError:
        return {}
