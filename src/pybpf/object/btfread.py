"""An id-based BTF reader sized for the loader: maps, DATASEC/VAR, externs, CO-RE.

The object layer needs to walk type graphs by id the way libbpf does
(skip modifiers, resolve sizes, find candidates by essential name) over BTF
as large as vmlinux (~150k types), so records are located in one pass and
decoded on first use.  Every malformed record is a :class:`BTFError` naming
the section and byte offset; type ids and string offsets are checked on access
and type-graph walks are bounded, so bad input can neither crash nor hang us.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterator

from ..errors import BTFError

BTF_MAGIC = 0xEB9F

KIND_UNKN, KIND_INT, KIND_PTR, KIND_ARRAY, KIND_STRUCT, KIND_UNION, KIND_ENUM, KIND_FWD = 0, 1, 2, 3, 4, 5, 6, 7
KIND_TYPEDEF, KIND_VOLATILE, KIND_CONST, KIND_RESTRICT, KIND_FUNC, KIND_FUNC_PROTO = 8, 9, 10, 11, 12, 13
KIND_VAR, KIND_DATASEC, KIND_FLOAT, KIND_DECL_TAG, KIND_TYPE_TAG, KIND_ENUM64 = 14, 15, 16, 17, 18, 19

KIND_NAMES = {
    KIND_UNKN: "UNKN", KIND_INT: "INT", KIND_PTR: "PTR", KIND_ARRAY: "ARRAY", KIND_STRUCT: "STRUCT",
    KIND_UNION: "UNION", KIND_ENUM: "ENUM", KIND_FWD: "FWD", KIND_TYPEDEF: "TYPEDEF", KIND_VOLATILE: "VOLATILE",
    KIND_CONST: "CONST", KIND_RESTRICT: "RESTRICT", KIND_FUNC: "FUNC", KIND_FUNC_PROTO: "FUNC_PROTO",
    KIND_VAR: "VAR", KIND_DATASEC: "DATASEC", KIND_FLOAT: "FLOAT", KIND_DECL_TAG: "DECL_TAG",
    KIND_TYPE_TAG: "TYPE_TAG", KIND_ENUM64: "ENUM64",
}

INT_SIGNED, INT_CHAR, INT_BOOL = 1, 2, 4
VAR_STATIC, VAR_GLOBAL_ALLOCATED, VAR_GLOBAL_EXTERN = 0, 1, 2
FUNC_STATIC, FUNC_GLOBAL, FUNC_EXTERN = 0, 1, 2

MAX_RESOLVE_DEPTH = 32  # as libbpf: deeper chains of typedefs/modifiers/arrays are treated as loops

_HDR = struct.Struct("<HBBIIIII")
_TYPE = struct.Struct("<III")
_U32 = struct.Struct("<I")
_I32 = struct.Struct("<i")
_III = struct.Struct("<III")
_II = struct.Struct("<II")
_IIi = struct.Struct("<IIi")
_IiI = struct.Struct("<Ii")

_MODIFIERS = frozenset({KIND_VOLATILE, KIND_CONST, KIND_RESTRICT, KIND_TYPE_TAG})


@dataclass(frozen=True, slots=True)
class Member:
    name: str
    type: int
    bit_offset: int
    bitfield_size: int  # 0 = not a bitfield


@dataclass(frozen=True, slots=True)
class EnumValue:
    name: str
    value: int


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    type: int


@dataclass(frozen=True, slots=True)
class VarSecinfo:
    type: int
    offset: int
    size: int


@dataclass(frozen=True, slots=True, eq=False)
class Type:
    """One decoded BTF type.  Fields that do not apply to ``kind`` are zero/empty."""

    id: int
    kind: int
    name: str
    size: int = 0  # INT/STRUCT/UNION/ENUM/ENUM64/FLOAT/DATASEC
    type: int = 0  # PTR/TYPEDEF/modifiers/FUNC/FUNC_PROTO(return)/VAR/DECL_TAG; ARRAY element
    kind_flag: bool = False
    vlen: int = 0
    members: tuple = ()  # Member | EnumValue | Param | VarSecinfo
    index_type: int = 0  # ARRAY
    nelems: int = 0  # ARRAY
    encoding: int = 0  # INT
    bits: int = 0  # INT
    int_offset: int = 0  # INT
    linkage: int = 0  # VAR, FUNC (vlen)
    component_idx: int = -1  # DECL_TAG

    @property
    def kind_name(self) -> str:
        return KIND_NAMES.get(self.kind, str(self.kind))

    @property
    def signed(self) -> bool:
        if self.kind == KIND_INT:
            return bool(self.encoding & INT_SIGNED)
        if self.kind in (KIND_ENUM, KIND_ENUM64):
            return self.kind_flag
        return False

    def describe(self) -> str:
        """``struct task_struct``, ``int``, ``typedef u32`` - how C would name it."""
        prefix = {KIND_STRUCT: "struct ", KIND_UNION: "union ", KIND_ENUM: "enum ", KIND_ENUM64: "enum ",
                  KIND_FWD: "union " if self.kind_flag else "struct ", KIND_TYPEDEF: "typedef "}.get(self.kind, "")
        return f"{prefix}{self.name or '<anon>'}"


def _record_len(kind: int, vlen: int) -> int:
    if kind == KIND_INT or kind == KIND_VAR or kind == KIND_DECL_TAG:
        return 4
    if kind == KIND_ARRAY:
        return 12
    if kind in (KIND_STRUCT, KIND_UNION, KIND_DATASEC, KIND_ENUM64):
        return 12 * vlen
    if kind in (KIND_ENUM, KIND_FUNC_PROTO):
        return 8 * vlen
    return 0


class BTF:
    """Types and strings of one BTF blob; ``base`` makes it split BTF (kernel modules)."""

    def __init__(self, data: bytes | bytearray | memoryview, name: str = ".BTF", base: "BTF | None" = None):
        self.name = name
        self.base = base
        raw = bytes(data)
        if len(raw) < 24:
            raise BTFError(f"{len(raw)} bytes is too short for a BTF header", section=name, offset=0)
        magic, version, _flags, hdr_len, type_off, type_len, str_off, str_len = _HDR.unpack_from(raw, 0)
        if magic != BTF_MAGIC:
            what = " (big-endian BTF)" if magic == 0x9FEB else ""
            raise BTFError(f"bad magic {magic:#06x}{what}, expected 0xeb9f", section=name, offset=0)
        if version != 1:
            raise BTFError(f"unsupported BTF version {version}", section=name, offset=2)
        if hdr_len < 24 or hdr_len > len(raw):
            raise BTFError(f"header length {hdr_len} out of range", section=name, offset=4)
        types_start, strs_start = hdr_len + type_off, hdr_len + str_off
        if types_start + type_len > len(raw) or strs_start + str_len > len(raw):
            raise BTFError(f"type ({type_len} bytes at {type_off}) or string ({str_len} bytes at {str_off}) "
                           f"section runs past the end ({len(raw)} bytes)", section=name, offset=8)
        if type_off % 4:
            raise BTFError(f"type section offset {type_off} is not 4-byte aligned", section=name, offset=8)
        self._raw = raw
        self._strs = raw[strs_start:strs_start + str_len]
        self._strs_start = strs_start
        if base is None and (not self._strs or self._strs[0] != 0):
            raise BTFError("string section must start with an empty string", section=name, offset=strs_start)
        if self._strs and self._strs[-1] != 0:
            raise BTFError("string section is not NUL-terminated", section=name, offset=strs_start + str_len - 1)
        self.start_id = base.count if base is not None else 1
        self._str_base = base._str_end if base is not None else 0
        self._str_end = self._str_base + len(self._strs)
        self._offsets: list[int] = []
        self._headers: list[tuple[int, int, int]] = []
        pos, end = types_start, types_start + type_len
        unpack = _TYPE.unpack_from
        offsets, headers = self._offsets, self._headers
        while pos < end:
            if pos + 12 > end:
                raise BTFError(f"type {self.start_id + len(offsets)} is truncated", section=name, offset=pos)
            hdr = unpack(raw, pos)
            info = hdr[1]
            kind = (info >> 24) & 0x1F
            if kind == 0 or kind > KIND_ENUM64:
                raise BTFError(f"type {self.start_id + len(offsets)} has unknown kind {kind}", section=name,
                               offset=pos)
            offsets.append(pos)
            headers.append(hdr)
            pos += 12 + _record_len(kind, info & 0xFFFF)
        if pos != end:
            raise BTFError(f"type {self.start_id + len(offsets) - 1} runs past the type section", section=name,
                           offset=end)
        self.count = self.start_id + len(offsets)  # one past the last id
        self._cache: dict[int, Type] = {}
        self._by_name: dict[str, list[int]] | None = None
        self._by_essential: dict[str, list[int]] | None = None
        self._void = Type(0, KIND_UNKN, "void")

    # -- strings ------------------------------------------------------------

    def string(self, offset: int) -> str:
        if offset < self._str_base:
            if self.base is None:
                raise BTFError(f"string offset {offset} is negative", section=self.name)
            return self.base.string(offset)
        local = offset - self._str_base
        if local >= len(self._strs):
            raise BTFError(f"string offset {offset} outside the string section ({self._str_end} bytes)",
                           section=self.name, offset=self._strs_start + local)
        end = self._strs.index(b"\0", local)
        return self._strs[local:end].decode("utf-8", "replace")

    # -- types --------------------------------------------------------------

    def __len__(self) -> int:
        return self.count

    def ids(self) -> range:
        """Ids of the types this blob defines (not its base's)."""
        return range(self.start_id, self.count)

    def __iter__(self) -> Iterator[Type]:
        for i in self.ids():
            yield self.type(i)

    def kind_of(self, type_id: int) -> int:
        if type_id == 0:
            return KIND_UNKN
        if type_id < self.start_id:
            return self._base_or_fail(type_id).kind_of(type_id)
        self._check_id(type_id)
        return (self._headers[type_id - self.start_id][1] >> 24) & 0x1F

    def name_of(self, type_id: int) -> str:
        if type_id == 0:
            return ""
        if type_id < self.start_id:
            return self._base_or_fail(type_id).name_of(type_id)
        self._check_id(type_id)
        return self.string(self._headers[type_id - self.start_id][0])

    def type(self, type_id: int) -> Type:
        if type_id == 0:
            return self._void
        if type_id < self.start_id:
            return self._base_or_fail(type_id).type(type_id)
        t = self._cache.get(type_id)
        if t is None:
            self._check_id(type_id)
            t = self._cache[type_id] = self._decode(type_id)
        return t

    __getitem__ = type

    def _base_or_fail(self, type_id: int) -> "BTF":
        if self.base is None or type_id < 0:
            raise BTFError(f"type id {type_id} does not exist", section=self.name)
        return self.base

    def _check_id(self, type_id: int) -> None:
        if not self.start_id <= type_id < self.count:
            raise BTFError(f"type id {type_id} does not exist (ids go up to {self.count - 1})", section=self.name)

    def _ref(self, type_id: int, owner: int, pos: int) -> int:
        if not 0 <= type_id < self.count:
            raise BTFError(f"type {owner} refers to type id {type_id}, which does not exist", section=self.name,
                           offset=pos)
        return type_id

    def _decode(self, type_id: int) -> Type:
        raw, s = self._raw, self.string
        pos = self._offsets[type_id - self.start_id]
        name_off, info, size_type = self._headers[type_id - self.start_id]
        kind, vlen, kflag = (info >> 24) & 0x1F, info & 0xFFFF, bool(info >> 31)
        name = s(name_off)
        body = pos + 12
        if kind == KIND_INT:
            (v,) = _U32.unpack_from(raw, body)
            return Type(type_id, kind, name, size=size_type, encoding=(v >> 24) & 0xF, int_offset=(v >> 16) & 0xFF,
                        bits=v & 0xFF)
        if kind in (KIND_PTR, KIND_TYPEDEF, KIND_VOLATILE, KIND_CONST, KIND_RESTRICT, KIND_TYPE_TAG):
            return Type(type_id, kind, name, type=self._ref(size_type, type_id, pos), kind_flag=kflag)
        if kind == KIND_FWD:
            return Type(type_id, kind, name, kind_flag=kflag)
        if kind == KIND_ARRAY:
            elem, index, nelems = _III.unpack_from(raw, body)
            return Type(type_id, kind, name, type=self._ref(elem, type_id, pos),
                        index_type=self._ref(index, type_id, pos), nelems=nelems)
        if kind in (KIND_STRUCT, KIND_UNION):
            members = []
            for i in range(vlen):
                m_name, m_type, m_off = _III.unpack_from(raw, body + 12 * i)
                if kflag:
                    members.append(Member(s(m_name), self._ref(m_type, type_id, pos), m_off & 0xFFFFFF, m_off >> 24))
                else:
                    members.append(Member(s(m_name), self._ref(m_type, type_id, pos), m_off, 0))
            return Type(type_id, kind, name, size=size_type, kind_flag=kflag, vlen=vlen, members=tuple(members))
        if kind == KIND_ENUM:
            values = []
            for i in range(vlen):
                e_name, e_val = _II.unpack_from(raw, body + 8 * i)
                if kflag and e_val & 0x80000000:  # kind_flag: a signed enum
                    e_val -= 1 << 32
                values.append(EnumValue(s(e_name), e_val))
            return Type(type_id, kind, name, size=size_type, kind_flag=kflag, vlen=vlen, members=tuple(values))
        if kind == KIND_ENUM64:
            values = []
            for i in range(vlen):
                e_name, lo, hi = _III.unpack_from(raw, body + 12 * i)
                v = lo | (hi << 32)
                if kflag and v & (1 << 63):
                    v -= 1 << 64
                values.append(EnumValue(s(e_name), v))
            return Type(type_id, kind, name, size=size_type, kind_flag=kflag, vlen=vlen, members=tuple(values))
        if kind == KIND_FUNC:
            return Type(type_id, kind, name, type=self._ref(size_type, type_id, pos), linkage=vlen, vlen=vlen)
        if kind == KIND_FUNC_PROTO:
            params = []
            for i in range(vlen):
                p_name, p_type = _II.unpack_from(raw, body + 8 * i)
                params.append(Param(s(p_name), self._ref(p_type, type_id, pos)))
            return Type(type_id, kind, name, type=self._ref(size_type, type_id, pos), vlen=vlen,
                        members=tuple(params))
        if kind == KIND_VAR:
            (linkage,) = _U32.unpack_from(raw, body)
            return Type(type_id, kind, name, type=self._ref(size_type, type_id, pos), linkage=linkage)
        if kind == KIND_DATASEC:
            infos = []
            for i in range(vlen):
                v_type, v_off, v_size = _III.unpack_from(raw, body + 12 * i)
                infos.append(VarSecinfo(self._ref(v_type, type_id, pos), v_off, v_size))
            return Type(type_id, kind, name, size=size_type, vlen=vlen, members=tuple(infos))
        if kind == KIND_FLOAT:
            return Type(type_id, kind, name, size=size_type)
        if kind == KIND_DECL_TAG:
            (comp,) = _I32.unpack_from(raw, body)
            return Type(type_id, kind, name, type=self._ref(size_type, type_id, pos), component_idx=comp)
        raise BTFError(f"type {type_id} has unknown kind {kind}", section=self.name, offset=pos)

    # -- lookups ------------------------------------------------------------

    def _name_index(self) -> dict[str, list[int]]:
        if self._by_name is None:
            idx: dict[str, list[int]] = {}
            strs, base = self._strs, self._str_base
            cache: dict[int, str] = {}
            for i, (name_off, _info, _st) in enumerate(self._headers):
                if not name_off:
                    continue
                name = cache.get(name_off)
                if name is None:
                    if name_off >= base:
                        local = name_off - base
                        if local >= len(strs):
                            name = self.string(name_off)  # raises with the offset
                        name = strs[local:strs.index(b"\0", local)].decode("utf-8", "replace")
                    else:
                        name = self.string(name_off)
                    cache[name_off] = name
                idx.setdefault(name, []).append(self.start_id + i)
            self._by_name = idx
        return self._by_name

    def find(self, name: str, kind: int | None = None) -> list[int]:
        """Ids of types named ``name`` (of ``kind``), base BTF first."""
        found = self.base.find(name, kind) if self.base is not None else []
        ids = self._name_index().get(name, ())
        if kind is None:
            return found + list(ids)
        return found + [i for i in ids if self.kind_of(i) == kind]

    def find_one(self, name: str, kind: int) -> int | None:
        ids = self.find(name, kind)
        return ids[0] if ids else None

    def essential_index(self) -> dict[str, list[int]]:
        """Types of this blob by essential name (``foo___v2`` -> ``foo``): CO-RE candidate search."""
        if self._by_essential is None:
            idx: dict[str, list[int]] = {}
            for name, ids in self._name_index().items():
                idx.setdefault(essential_name(name), []).extend(ids)
            self._by_essential = idx
        return self._by_essential

    # -- type graph helpers (libbpf's btf__resolve_size, skip_mods_and_typedefs...) --

    def skip_mods_and_typedefs(self, type_id: int) -> int:
        for _ in range(MAX_RESOLVE_DEPTH):
            kind = self.kind_of(type_id)
            if kind in _MODIFIERS or kind == KIND_TYPEDEF:
                type_id = self.type(type_id).type
            else:
                return type_id
        raise BTFError(f"type {type_id}: chain of typedefs/modifiers too deep (a loop?)", section=self.name)

    def skip_mods(self, type_id: int) -> int:
        for _ in range(MAX_RESOLVE_DEPTH):
            if self.kind_of(type_id) in _MODIFIERS:
                type_id = self.type(type_id).type
            else:
                return type_id
        raise BTFError(f"type {type_id}: chain of modifiers too deep (a loop?)", section=self.name)

    def resolve_size(self, type_id: int) -> int:
        nelems = 1
        for _ in range(MAX_RESOLVE_DEPTH):
            t = self.type(type_id)
            k = t.kind
            if k in (KIND_INT, KIND_STRUCT, KIND_UNION, KIND_ENUM, KIND_ENUM64, KIND_DATASEC, KIND_FLOAT):
                return nelems * t.size
            if k == KIND_PTR:
                return nelems * 8
            if k in (KIND_TYPEDEF, KIND_VOLATILE, KIND_CONST, KIND_RESTRICT, KIND_VAR, KIND_DECL_TAG,
                     KIND_TYPE_TAG):
                type_id = t.type
                continue
            if k == KIND_ARRAY:
                nelems *= t.nelems
                if nelems > 0xFFFFFFFF:
                    raise BTFError(f"type {type_id}: array size overflows", section=self.name)
                type_id = t.type
                continue
            raise BTFError(f"type {t.id} ({t.kind_name} {t.name or '<anon>'}) has no size", section=self.name)
        raise BTFError(f"type {type_id}: type chain too deep to size (a loop?)", section=self.name)

    def type_name(self, type_id: int, depth: int = 0) -> str:
        """How C spells the type: ``int``, ``struct event``, ``char[16]``, ``const u8 *``."""
        if depth > MAX_RESOLVE_DEPTH:
            return "..."
        t = self.type(type_id)
        k = t.kind
        if k == KIND_UNKN:
            return "void"
        if k == KIND_PTR:
            inner = self.type_name(t.type, depth + 1)
            return inner + ("*" if inner.endswith("*") else " *")
        if k == KIND_ARRAY:
            return f"{self.type_name(t.type, depth + 1)}[{t.nelems}]"
        if k in (KIND_CONST, KIND_VOLATILE, KIND_RESTRICT):
            return f"{KIND_NAMES[k].lower()} {self.type_name(t.type, depth + 1)}"
        if k == KIND_TYPE_TAG:
            return self.type_name(t.type, depth + 1)
        if k == KIND_FUNC_PROTO:
            args = ", ".join(self.type_name(p.type, depth + 1) for p in t.members) or "void"
            return f"{self.type_name(t.type, depth + 1)} (*)({args})"
        if k in (KIND_VAR, KIND_FUNC, KIND_DECL_TAG):
            return self.type_name(t.type, depth + 1)
        if k == KIND_DATASEC:
            return f"section {t.name}"
        return t.describe().replace("typedef ", "")

    def align_of(self, type_id: int, depth: int = 0) -> int:
        if depth > MAX_RESOLVE_DEPTH:
            raise BTFError(f"type {type_id}: type chain too deep for alignment (a loop?)", section=self.name)
        t = self.type(type_id)
        k = t.kind
        if k in (KIND_INT, KIND_ENUM, KIND_ENUM64, KIND_FLOAT):
            return min(8, t.size) or 1
        if k == KIND_PTR:
            return 8
        if k in (KIND_TYPEDEF, KIND_VOLATILE, KIND_CONST, KIND_RESTRICT, KIND_TYPE_TAG):
            return self.align_of(t.type, depth + 1)
        if k == KIND_ARRAY:
            return self.align_of(t.type, depth + 1)
        if k in (KIND_STRUCT, KIND_UNION):
            align = 1
            for m in t.members:
                a = self.align_of(m.type, depth + 1)
                # a packed struct: a member at an offset its natural alignment forbids
                if m.bitfield_size == 0 and (m.bit_offset % (8 * a)):
                    return 1
                align = max(align, a)
            if t.size % align:
                return 1
            return align
        raise BTFError(f"type {t.id} ({t.kind_name}) has no alignment", section=self.name)


def essential_name(name: str) -> str:
    """``task_struct___old`` -> ``task_struct``: CO-RE flavors share the essential name."""
    i = name.find("___")
    return name[:i] if i > 0 else name


# --- the running kernel's BTF -------------------------------------------------

_VMLINUX_PATH = "/sys/kernel/btf/vmlinux"


@lru_cache(maxsize=None)
def _load_btf_file(path: str, mtime: float, base_key: tuple | None) -> BTF:
    with open(path, "rb") as f:
        data = f.read()
    base = _load_btf_file(*base_key) if base_key else None
    return BTF(data, name=path, base=base)


def vmlinux_btf() -> BTF:
    """The running kernel's BTF, parsed once per process."""
    try:
        st = os.stat(_VMLINUX_PATH)
    except OSError as exc:
        from ..errors import NotSupportedError

        raise NotSupportedError("kernel BTF", "5.4", f"{_VMLINUX_PATH}: {exc.strerror}; "
                                "the kernel needs CONFIG_DEBUG_INFO_BTF=y (or pass a BTF file)") from None
    return _load_btf_file(_VMLINUX_PATH, st.st_mtime, None)


def module_btfs() -> list[BTF]:
    """Split BTF of every loaded kernel module (on top of vmlinux), each parsed once per process."""
    try:
        names = sorted(os.listdir("/sys/kernel/btf"))
    except OSError:
        return []
    vmlinux = vmlinux_btf()
    base_key = (_VMLINUX_PATH, os.stat(_VMLINUX_PATH).st_mtime, None)
    out = []
    for n in names:
        if n == "vmlinux":
            continue
        path = f"/sys/kernel/btf/{n}"
        try:
            out.append(_load_btf_file(path, os.stat(path).st_mtime, base_key))
        except (OSError, BTFError):
            continue
    assert all(b.base is vmlinux for b in out)
    return out


def load_btf_file(path: str, base: BTF | None = None) -> BTF:
    """A BTF file: raw BTF (BTFHub, /sys/kernel/btf/*) or an ELF file with a .BTF section."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] == b"\x7fELF":
        from ..elf.reader import ELFFile

        elf = ELFFile(data, name=path, machine=None)
        sec = elf.section(".BTF")
        if sec is None:
            raise BTFError(f"{path}: ELF file without a .BTF section")
        return BTF(bytes(sec.data), name=f"{path}:.BTF", base=base)
    return BTF(data, name=path, base=base)


__all__ = [
    "BTF", "EnumValue", "Member", "Param", "Type", "VarSecinfo", "essential_name", "load_btf_file",
    "module_btfs", "vmlinux_btf",
]
