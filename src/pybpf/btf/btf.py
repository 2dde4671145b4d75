"""The BTF container: parse once into a compact index, build type objects on demand.

The raw type section is kept as an ``array('I')`` of 32-bit words plus a list of
word offsets per type id; that index is all that parsing builds (about 35 ms for
the 5.5 MB vmlinux BTF).  Type objects, the name index and string decoding happen
lazily, the first time something asks.  The raw words stay the single source of
truth: ``add``/``replace`` re-encode into them, so lookups, the C dumper and
``to_bytes()`` always agree.

Split BTF (kernel modules) continues the id and string-offset space of a base
BTF; ids below ``start_id`` and string offsets below ``string_start`` are
answered by ``base``.
"""

from __future__ import annotations

import struct
import sys
from array import array
from collections import Counter
from itertools import accumulate, compress, count, repeat
from operator import add, itemgetter
from pathlib import Path
from typing import Any, Iterator

from ..errors import BTFError, TypeNotFoundError
from .layout import BTF_MAGIC, BTF_VERSION, EXTRA_WORDS, HEADER, HEADER_SIZE, KIND_NAMES, KNOWN, MAX_TYPE_ID, VLEN_WORDS
from .types import (
    MODIFIER_KINDS,
    Array,
    Const,
    Datasec,
    DeclTag,
    Enum,
    Enum64,
    EnumValue,
    Float,
    Func,
    FuncLinkage,
    FuncProto,
    Fwd,
    Int,
    IntEncoding,
    Kind,
    Member,
    Param,
    Pointer,
    Restrict,
    Struct,
    Type,
    TypeTag,
    Typedef,
    Union,
    Var,
    VarLinkage,
    VarSecinfo,
    Void,
    Volatile,
    essential_name,
)

_LITTLE = sys.byteorder == "little"

_K_INT, _K_PTR, _K_ARRAY, _K_STRUCT, _K_UNION, _K_ENUM, _K_FWD, _K_TYPEDEF = 1, 2, 3, 4, 5, 6, 7, 8
_K_VOLATILE, _K_CONST, _K_RESTRICT, _K_FUNC, _K_FUNC_PROTO, _K_VAR, _K_DATASEC = 9, 10, 11, 12, 13, 14, 15
_K_FLOAT, _K_DECL_TAG, _K_TYPE_TAG, _K_ENUM64 = 16, 17, 18, 19
_K_INT_BYTE = bytes([_K_INT])
_KINDS = list(Kind) + [Kind.UNKN] * (32 - len(Kind))
_SKIP_KINDS = frozenset({_K_TYPEDEF, _K_VOLATILE, _K_CONST, _K_RESTRICT, _K_TYPE_TAG})
_MOD_KINDS = frozenset(int(k) for k in MODIFIER_KINDS)


class _Strings(dict):
    """string offset -> str for one BTF's whole string space (base strings included).

    Strings are decoded on first use, or all at once by ``fill`` for code about to
    read most of them.  A plain ASCII table is decoded to one str up front, so a
    name is a slice of it (offsets pointing into the middle of a string, which
    BTF allows, included); anything else goes through ``BTF._decode_string``.
    """

    __slots__ = ("_btf", "_text", "filled")

    def __init__(self, btf: "BTF"):
        super().__init__()
        self._btf = btf
        self._text: str | None = None
        self.filled = False

    def __missing__(self, offset: int) -> str:
        btf = self._btf
        rel = offset - btf.string_start
        if rel >= 0:
            text = self._text
            if text is None:
                table = btf._strtab
                text = self._text = bytes(table).decode("ascii") if table.isascii() else ""
            end = text.find("\0", rel)  # -1 past the text: a string appended since, or a bad offset
            if end >= 0:
                value = self[offset] = text[rel:end]
                return value
        value = self[offset] = btf._decode_string(offset)
        return value

    def fill(self) -> None:
        btf = self._btf
        table = btf._strtab
        if not table or not table.isascii():
            return
        parts = bytes(table).decode("ascii").split("\0")
        parts.pop()  # after the final NUL
        starts = accumulate(map(add, map(len, parts), repeat(1)), initial=btf.string_start)
        self.update(zip(starts, parts))


# A full name index costs about this many bytes.find scans of the packed name offsets (see BTF._ids_named_at).
_SCANS_PER_INDEX = 60


class _NameIndex:
    """Type ids by name offset: ``unique`` maps an offset to its only id, ``shared`` to several."""

    __slots__ = ("unique", "shared")

    def __init__(self, unique: dict[int, int], shared: dict[int, list[int]]):
        self.unique = unique
        self.shared = shared

    def get(self, off: int, default: Any = None) -> list[int] | Any:
        ids = self.shared.get(off)
        if ids is not None:
            return ids
        tid = self.unique.get(off)
        return default if tid is None else [tid]

    def items(self) -> Iterator[tuple[int, list[int]]]:
        yield from self.shared.items()
        for off, tid in self.unique.items():
            if off not in self.shared:
                yield off, [tid]


class BTF:
    """BTF type information: parsed lazily, looked up by id or name, modifiable, serializable.

    ``btf[id]`` gives a type object; ``btf.find("task_struct", "struct")`` looks one up
    by name; ``len(btf)`` is the number of valid ids (void and base types included,
    like libbpf's ``btf__type_cnt``); iterating yields this BTF's own types (not the base's).
    """

    def __init__(self, words: array, offs: list[int], strtab: bytes | bytearray, *, base: "BTF | None" = None,
                 name: str = "<bytes>", raw: bytes | None = None, types_at: int = HEADER_SIZE):
        self.base = base
        self.name = name
        # Index of own types: offs[id - _first] is the word offset of type id's record in words.
        # A base BTF stores void as an all-zero record at word 0, so _first is 0 and ids index directly.
        self._words = words
        self._offs = offs
        self._first = 0 if base is None else len(base)
        self._strtab = strtab
        self.string_start = 0 if base is None else base.string_start + len(base._strtab)
        self._raw = raw
        self._types_at = types_at  # byte offset of the type section in `raw`, for messages
        self._strings = _Strings(self)
        self._cache: dict[int, Type] = {}
        self._name_index: _NameIndex | None = None
        self._name_offsets: array | None = None  # name offset of every own type (see _ids_named_at)
        self._name_offset_bytes = b""
        self._name_scans = 0  # bytes.find scans of _name_offset_bytes so far (a full pass counts 10)
        self._essential_ids: dict[str, tuple[int, ...]] = {}  # find_by_essential_name's own ids by essential name
        self._names_dict: dict[str, list[int]] | None = None
        self._string_offsets: dict[str, int] | None = None
        self._flat_view: Any = None
        self._sizes: dict[int, int] = {}
        self._codecs: dict[Any, Any] = {}
        self._ptr_size: int | None = None
        self._kind_bytes: bytes | None = None

    # --- construction --------------------------------------------------------

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview, base: "BTF | None" = None, *, name: str = "<bytes>",
                   validate: bool = True) -> "BTF":
        """Parse raw BTF (a .BTF section, /sys/kernel/btf/* contents, or BPF_BTF_GET_INFO output).

        ``validate`` checks every type reference, string offset and type loop up
        front (see :meth:`validate`); without it the same problems are reported
        when the broken part is first used.
        """
        btf = _parse(bytes(data), base, name)
        if validate:
            btf.validate()
        return btf

    @classmethod
    def from_file(cls, path: str | Path, base: "BTF | None" = None, *, validate: bool = True) -> "BTF":
        """Raw BTF, or the .BTF section of an ELF file (a BPF object, vmlinux, a .ko)."""
        p = Path(path)
        data = p.read_bytes()
        if data[:4] == b"\x7fELF":
            return cls.from_elf(_elf_file(data, str(p)), base=base, validate=validate)
        return cls.from_bytes(data, base, name=str(p), validate=validate)

    @classmethod
    def from_elf(cls, elf: Any, base: "BTF | None" = None, *, validate: bool = True) -> "BTF":
        """The .BTF section of an :class:`~pybpf.elf.ELFFile` (or a path to one)."""
        if not hasattr(elf, "section"):
            p = Path(elf)
            elf = _elf_file(p.read_bytes(), str(p))
        sec = elf.section(".BTF")
        if sec is None:
            raise BTFError(f"{elf.name}: no .BTF section (compile with clang -g to get BTF)")
        btf = _parse(bytes(sec.data), base, f"{elf.name} .BTF")
        if validate:
            btf.validate()
        return btf

    @classmethod
    def new(cls, base: "BTF | None" = None, name: str = "<new>") -> "BTF":
        """An empty BTF to build with :meth:`add` (split on ``base`` when given)."""
        words = array("I") if base is not None else array("I", (0, 0, 0))
        offs = [] if base is not None else [0]
        return cls(words, offs, b"" if base is not None else b"\0", base=base, name=name)

    # --- basic access --------------------------------------------------------

    @property
    def start_id(self) -> int:
        """The first id this BTF defines (1, or the base's type count for split BTF)."""
        return self._first or 1

    def __len__(self) -> int:
        return self._first + len(self._offs)

    def __iter__(self) -> Iterator[Type]:
        for tid in range(self.start_id, len(self)):
            yield self[tid]

    def __contains__(self, type_id: object) -> bool:
        return isinstance(type_id, int) and 0 <= type_id < len(self)

    def __getitem__(self, type_id: int) -> Type:
        t = self._cache.get(type_id)
        if t is None:
            if type_id < self._first:
                if type_id < 0:
                    raise BTFError(f"{self.name}: negative type id {type_id}")
                return self.base[type_id]  # type: ignore[index]
            t = self._cache[type_id] = self._make(type_id)
        return t

    def __repr__(self) -> str:
        split = f", split on {self.base.name}" if self.base is not None else ""
        return f"<BTF {self.name}: {len(self) - self.start_id} types{split}>"

    def types(self, kind: Kind | int | str | None = None) -> Iterator[Type]:
        """This BTF's own types, optionally of one kind."""
        if kind is None:
            yield from self
            return
        want = bytes([Kind.parse(kind)])
        kinds = self._kinds()
        i = kinds.find(want, 1 if self.base is None else 0)
        while i >= 0:
            yield self[self._first + i]
            i = kinds.find(want, i + 1)

    def kind_of(self, type_id: int) -> Kind:
        words, o = self._locate(type_id)
        return _KINDS[(words[o + 1] >> 24) & 0x1F]

    def name_of(self, type_id: int) -> str:
        words, o = self._locate(type_id)
        return self.string(words[o], type_id) if type_id else "void"

    def _locate(self, type_id: int) -> tuple[array, int]:
        i = type_id - self._first
        if i >= 0:
            try:
                return self._words, self._offs[i]
            except IndexError:
                pass
        elif type_id >= 0 and self.base is not None:
            return self.base._locate(type_id)
        raise BTFError(f"{self.name}: type id {type_id} does not exist (ids go from 0 to {len(self) - 1})")

    def _describe(self, type_id: int) -> str:
        """'[12] STRUCT 'foo'' for messages; never raises."""
        try:
            words, o = self._locate(type_id)
            kind = KIND_NAMES[(words[o + 1] >> 24) & 0x1F]
            try:
                name = self.string(words[o]) or "(anon)"
            except BTFError:
                name = "(invalid name)"
            return f"[{type_id}] {kind} '{name}'"
        except BTFError:
            return f"[{type_id}]"

    def _byte_offset(self, type_id: int, word: int = 0) -> int | None:
        """Byte offset of a word of a type record in the parsed data, for error messages."""
        i = type_id - self._first
        if i < 0 or i >= len(self._offs):
            return None
        rel = self._offs[i] - (0 if self.base is not None else 3)
        return self._types_at + 4 * (rel + word)

    # --- strings -------------------------------------------------------------

    def string(self, offset: int, type_id: int | None = None) -> str:
        """The string at ``offset`` of the string section (the base's for split BTF)."""
        try:
            return self._strings[offset]
        except BTFError as exc:
            if type_id is None:
                raise
            raise BTFError(f"{self.name}: type {self._describe_raw(type_id)}: {exc.args[0]}",
                           section="BTF types", offset=self._byte_offset(type_id)) from None

    def _describe_raw(self, type_id: int) -> str:
        words, o = self._locate(type_id)
        return f"[{type_id}] {KIND_NAMES[(words[o + 1] >> 24) & 0x1F]}"

    def _decode_string(self, offset: int) -> str:
        if offset < self.string_start:
            return self.base._strings[offset]  # type: ignore[union-attr]
        rel = offset - self.string_start
        table = self._strtab
        if rel >= len(table):
            raise BTFError(f"string offset {offset} is outside the string section "
                           f"({self.string_start + len(table)} bytes)")
        end = table.find(b"\0", rel)
        if end < 0:
            raise BTFError(f"string at offset {offset} is not NUL-terminated")
        return bytes(table[rel:end]).decode("utf-8", "surrogateescape")

    def _all_strings(self) -> _Strings:
        """The string map, filled in bulk (for code about to touch most names)."""
        s = self._strings
        if not s.filled:
            if self.base is not None:
                self.base._all_strings()
            s.fill()
            s.filled = True
        return s

    def _string_index(self) -> dict[str, int]:
        """str -> first offset of that string in this BTF's own table (built on first use)."""
        index = self._string_offsets
        if index is None:
            index = self._string_offsets = {}
            strings = self._all_strings()
            for off in sorted(o for o in strings if o >= self.string_start):
                index.setdefault(strings[off], off)
        return index

    def _find_string(self, text: str) -> int | None:
        off = self.base._find_string(text) if self.base is not None else None
        return off if off is not None else self._string_index().get(text)

    def _intern(self, text: str) -> int:
        """The offset of ``text`` in the string space, appending it to this BTF's table when new."""
        if not text:
            return 0
        off = self._find_string(text)
        if off is None:
            if not isinstance(self._strtab, bytearray):
                self._strtab = bytearray(self._strtab)
            off = self.string_start + len(self._strtab)
            self._strtab += text.encode("utf-8", "surrogateescape") + b"\0"
            self._string_index()[text] = off
            self._strings[off] = text
        return off

    # --- building type objects ----------------------------------------------

    def _make(self, tid: int) -> Type:
        if tid == 0:
            return Void(id=0, btf=self)
        words, o = self._locate(tid)
        name_off, info, st = words[o], words[o + 1], words[o + 2]
        kind = (info >> 24) & 0x1F
        vlen = info & 0xFFFF
        kflag = bool(info >> 31)
        name = self.string(name_off, tid) if name_off else ""
        n = len(self)
        ref = self._check_ref
        p = o + 3
        if kind == _K_INT:
            enc = words[p]
            return Int(name=name, size=st, encoding=IntEncoding((enc >> 24) & 0xF), bits=enc & 0xFF,
                       offset=(enc >> 16) & 0xFF, id=tid, btf=self)
        if kind in (_K_STRUCT, _K_UNION):
            members = []
            for i in range(vlen):
                q = p + 3 * i
                mt = words[q + 1]
                if mt >= n:
                    ref(tid, mt, f"member {i}", 3 + 3 * i + 1)
                mname = self.string(words[q], tid) if words[q] else ""
                off = words[q + 2]
                if kflag:
                    members.append(Member(mname, mt, off & 0xFFFFFF, off >> 24, self))
                else:
                    members.append(Member(mname, mt, off, 0, self))
            cls = Struct if kind == _K_STRUCT else Union
            return cls(name=name, size=st, members=tuple(members), kflag=kflag, id=tid, btf=self)
        if kind in (_K_ENUM, _K_ENUM64):
            values = []
            for i in range(vlen):
                if kind == _K_ENUM:
                    q = p + 2 * i
                    v = words[q + 1]
                    if kflag and v & 0x80000000:
                        v -= 1 << 32
                else:
                    q = p + 3 * i
                    v = words[q + 1] | (words[q + 2] << 32)
                    if kflag and v & (1 << 63):
                        v -= 1 << 64
                values.append(EnumValue(self.string(words[q], tid) if words[q] else "", v))
            cls2 = Enum if kind == _K_ENUM else Enum64
            return cls2(name=name, size=st, values=tuple(values), signed=kflag, id=tid, btf=self)
        if kind == _K_ARRAY:
            for j, what in ((0, "element type"), (1, "index type")):
                if words[p + j] >= n:
                    ref(tid, words[p + j], what, 3 + j)
            return Array(name=name, type_id=words[p], index_type_id=words[p + 1], nelems=words[p + 2], id=tid, btf=self)
        if kind == _K_FUNC_PROTO:
            if st >= n:
                ref(tid, st, "return type", 2)
            params = []
            for i in range(vlen):
                q = p + 2 * i
                if words[q + 1] >= n:
                    ref(tid, words[q + 1], f"parameter {i}", 3 + 2 * i + 1)
                params.append(Param(self.string(words[q], tid) if words[q] else "", words[q + 1], self))
            return FuncProto(name=name, return_type_id=st, params=tuple(params), id=tid, btf=self)
        if kind == _K_DATASEC:
            secinfos = []
            for i in range(vlen):
                q = p + 3 * i
                if words[q] >= n:
                    ref(tid, words[q], f"variable {i}", 3 + 3 * i)
                secinfos.append(VarSecinfo(words[q], words[q + 1], words[q + 2], self))
            return Datasec(name=name, size=st, vars=tuple(secinfos), id=tid, btf=self)
        if kind == _K_FLOAT:
            return Float(name=name, size=st, id=tid, btf=self)
        if kind == _K_FWD:
            return Fwd(name=name, union=kflag, id=tid, btf=self)
        # the rest refer to one type through the third word
        if st >= n:
            ref(tid, st, "referenced type", 2)
        if kind == _K_FUNC:
            return Func(name=name, type_id=st, linkage=_enum_or_int(FuncLinkage, vlen), id=tid, btf=self)
        if kind == _K_VAR:
            return Var(name=name, type_id=st, linkage=_enum_or_int(VarLinkage, words[p]), id=tid, btf=self)
        if kind == _K_DECL_TAG:
            idx = words[p]
            return DeclTag(name=name, type_id=st, component_idx=idx - (1 << 32) if idx & 0x80000000 else idx,
                           id=tid, btf=self)
        cls3 = {_K_PTR: Pointer, _K_TYPEDEF: Typedef, _K_VOLATILE: Volatile, _K_CONST: Const,
                _K_RESTRICT: Restrict, _K_TYPE_TAG: TypeTag}[kind]
        return cls3(name=name, type_id=st, id=tid, btf=self)

    def _check_ref(self, tid: int, ref: int, what: str, word: int) -> None:
        raise BTFError(f"{self.name}: type {self._describe(tid)}: {what} refers to type id {ref}, "
                       f"but the last type id is {len(self) - 1}",
                       section="BTF types", offset=self._byte_offset(tid, word))

    # --- lookup by name ------------------------------------------------------

    def _ids_by_name_offset(self) -> "_NameIndex":
        """name offset -> own type ids; built for names(), or once lookups have scanned enough (see
        _ids_named_at), without decoding any string and without a Python-level loop over every type
        (vmlinux has ~150k): a name's first id, plus the names shared."""
        index = self._name_index
        if index is None:
            first = self._first
            offs = self._offs
            name_offs = itemgetter(*offs)(self._words) if len(offs) > 1 else tuple(self._words[o] for o in offs)
            shared: dict[int, list[int]] = {}
            for off, count in Counter(name_offs).items():
                if count > 1 and off:
                    shared[off] = []
            for i in [i for i, off in enumerate(name_offs) if off in shared]:
                shared[name_offs[i]].append(first + i)
            unique = dict(zip(reversed(name_offs), range(first + len(offs) - 1, first - 1, -1)))  # the first id wins
            unique.pop(0, None)
            index = self._name_index = _NameIndex(unique, shared)
        return index

    def _ids_named_at(self, offsets: list[int]) -> list[int]:
        """Own type ids (ascending) whose name is the string at one of ``offsets``.

        The whole name index (:meth:`_ids_by_name_offset`) costs ~40 ms over vmlinux, which a CO-RE load
        with a few relocated types never earns back.  So up to 4 offsets are each found with bytes.find in
        the packed name offsets (~0.5 ms), more (a short name ends ~100 strings) in one pass (~5 ms); the
        index is built once the scans have cost about as much as it would (then lookups are dict gets),
        so many lookups never cost more than twice what the index alone would have."""
        wanted = set(offsets)
        wanted.discard(0)
        index = self._name_index
        if index is None and self._name_scans > _SCANS_PER_INDEX:
            index = self._ids_by_name_offset()
        if index is not None:
            return sorted(tid for off in wanted for tid in index.get(off, ()))
        table = self._name_offsets
        if table is None:
            offs = self._offs
            names = itemgetter(*offs)(self._words) if len(offs) > 1 else [self._words[o] for o in offs]
            table = self._name_offsets = array("I", names)
            self._name_offset_bytes = table.tobytes()
        first = self._first
        if len(wanted) > 4:
            self._name_scans += 10
            return list(compress(count(first), map(wanted.__contains__, table)))
        self._name_scans += len(wanted)
        packed = self._name_offset_bytes
        ids = []
        for off in wanted:
            needle = off.to_bytes(4, sys.byteorder)
            pos = packed.find(needle)
            while pos >= 0:
                if pos & 3:  # straddles two entries
                    pos = packed.find(needle, pos + 1)
                    continue
                ids.append(first + (pos >> 2))
                pos = packed.find(needle, pos + 4)
        return sorted(ids)

    def _string_offsets_of(self, name: str) -> list[int]:
        """Every offset in the string space (base tables included) where the string ``name`` starts."""
        out = self.base._string_offsets_of(name) if self.base is not None else []
        needle = name.encode("utf-8", "surrogateescape") + b"\0"
        table = self._strtab
        pos = table.find(needle, 1 if self.base is None else 0)
        while pos >= 0:
            out.append(self.string_start + pos)
            pos = table.find(needle, pos + 1)
        return out

    def ids_by_name(self, name: str, kind: Kind | int | str | None = None) -> list[int]:
        """Ids of all types called ``name`` (base BTF first), optionally of one kind."""
        ids = list(self.base.ids_by_name(name)) if self.base is not None else []
        if name:
            ids += self._ids_named_at(self._string_offsets_of(name))
        if kind is not None:
            want = _kind_set(kind)
            ids = [i for i in ids if self.kind_of(i) in want]
        return ids

    def names(self) -> dict[str, list[int]]:
        """name -> ids of this BTF's own named types (decodes every name; built once)."""
        if self._names_dict is None:
            strings = self._all_strings()
            out: dict[str, list[int]] = {}
            for off, ids in self._ids_by_name_offset().items():
                out.setdefault(strings[off], []).extend(ids)
            self._names_dict = out
        return self._names_dict

    def find_all(self, name: str, kind: Kind | int | str | None = None) -> list[Type]:
        """All types called ``name`` ('task_struct', or 'struct task_struct' to give the kind too)."""
        name, kind = _split_c_name(name, kind)
        if name == "void" and kind is None:
            return [self[0]]
        return [self[i] for i in self.ids_by_name(name, kind)]

    def find(self, name: str, kind: Kind | int | str | None = None) -> Type:
        """The type called ``name``; TypeNotFoundError when there is none.

        With several matches the first defining one wins (a struct over its forward
        declaration), like libbpf's ``btf__find_by_name_kind``.
        """
        found = self.find_all(name, kind)
        if not found:
            kinds = sorted(k.name.lower() for k in _kind_set(kind)) if kind is not None else []
            what = "/".join(kinds) + " " if kinds else ""
            raise TypeNotFoundError(f"{self.name}: no {what}type named {name!r}")
        for t in found:
            if t.kind != Kind.FWD:
                return t
        return found[0]

    def get(self, name: str, kind: Kind | int | str | None = None, default: Any = None) -> Any:
        try:
            return self.find(name, kind)
        except TypeNotFoundError:
            return default

    def find_by_essential_name(self, name: str, kind: Kind | int | str | None = None) -> list[Type]:
        """Types whose name without its ``___flavor`` suffix is ``essential_name(name)`` (CO-RE candidates).

        Found through the string table (the name itself, or ``name___...``), not an index of every name:
        decoding all of vmlinux's names took most of a CO-RE object's load time."""
        want = essential_name(name)
        out = list(self.base.find_by_essential_name(name, kind)) if self.base is not None else []
        if not want:
            return out
        ids = self._essential_ids.get(want)
        if ids is None:  # remembered: the next object a process loads asks for task_struct again
            table = self._strtab
            offsets: list[int] = []
            needle = want.encode("utf-8", "surrogateescape")
            pos = table.find(needle, 1 if self.base is None else 0)
            while pos >= 0:  # one pass for the name itself (followed by NUL) and its flavors (by ___)
                end = pos + len(needle)
                if table[end:end + 1] == b"\0" or (table[end:end + 3] == b"___"
                                                    and essential_name(self._string_at(pos)) == want):
                    offsets.append(self.string_start + pos)
                pos = table.find(needle, pos + 1)
            ids = self._essential_ids[want] = tuple(self._ids_named_at(offsets))
        kinds = _kind_set(kind) if kind is not None else None
        for tid in ids:
            if kinds is None or self.kind_of(tid) in kinds:
                out.append(self[tid])
        return out

    def _string_at(self, pos: int) -> str:
        """The string starting at ``pos`` of this BTF's own string table."""
        end = self._strtab.find(b"\0", pos)
        return bytes(self._strtab[pos:end if end >= 0 else len(self._strtab)]).decode("utf-8", "surrogateescape")

    # --- resolving ----------------------------------------------------------

    def resolve(self, type_id: int) -> int:
        """The id behind typedefs and modifiers (const, volatile, restrict, type tags)."""
        seen = None
        tid = type_id
        while True:
            words, o = self._locate(tid)
            if tid == 0 or (words[o + 1] >> 24) & 0x1F not in _SKIP_KINDS:
                return tid
            if seen is None:
                seen = [tid]
            elif tid in seen:
                raise self._loop_error(seen + [tid])
            else:
                seen.append(tid)
            tid = words[o + 2]

    def skip_modifiers(self, type_id: int) -> int:
        """The id behind const/volatile/restrict/type tags (typedefs kept)."""
        seen: list[int] = []
        tid = type_id
        while True:
            words, o = self._locate(tid)
            if tid == 0 or (words[o + 1] >> 24) & 0x1F not in _MOD_KINDS:
                return tid
            if tid in seen:
                raise self._loop_error(seen + [tid])
            seen.append(tid)
            tid = words[o + 2]

    def _loop_error(self, chain: list[int]) -> BTFError:
        path = " -> ".join(self._describe(t) for t in chain)
        return BTFError(f"{self.name}: type loop: {path}", section="BTF types", offset=self._byte_offset(chain[0]))

    def _kinds(self) -> bytes:
        """Kind of every own type as one byte per id (index ``id - _first``), for fast scans."""
        kinds = self._kind_bytes
        if kinds is None:
            words = self._words
            kinds = self._kind_bytes = bytes([(words[o + 1] >> 24) & 0x1F for o in self._offs])
        return kinds

    @property
    def pointer_size(self) -> int:
        """Bytes per pointer: the size of the first 'long' INT in this BTF (8 when it has none), like libbpf."""
        if self._ptr_size is None:
            if self.base is not None:
                self._ptr_size = self.base.pointer_size
            else:
                size = 8
                kinds, words, offs = self._kinds(), self._words, self._offs
                i = kinds.find(_K_INT_BYTE, 1)
                while i >= 0:
                    o = offs[i]
                    if words[o + 2] in (4, 8) and words[o] and self.string(words[o]) in _LONG_NAMES:
                        size = words[o + 2]
                        break
                    i = kinds.find(_K_INT_BYTE, i + 1)
                self._ptr_size = size
        return self._ptr_size

    def _flat_kinds(self) -> bytes:
        """Kind byte of every id from 0 (base types included)."""
        if self.base is None:
            return self._kinds()
        return self.base._flat_kinds() + self._kinds()

    def _flat(self) -> tuple[array, list[int]]:
        """(words, offsets) covering every id from 0, base types included (what whole-BTF walkers want)."""
        if self.base is None:
            return self._words, self._offs
        if self._flat_view is None:
            bwords, boffs = self.base._flat()
            shift = len(bwords)
            self._flat_view = (bwords + self._words, boffs + [o + shift for o in self._offs])
        return self._flat_view

    def sizeof(self, type: int | Type | str) -> int:
        """Size in bytes of a type (typedefs, modifiers, arrays resolved)."""
        tid = self._id(type)
        size = self._sizes.get(tid)
        if size is not None:
            return size
        nelems = 1
        seen: list[int] = []
        cur = tid
        while True:
            words, o = self._locate(cur)
            kind = (words[o + 1] >> 24) & 0x1F if cur else 0
            if kind in (_K_INT, _K_STRUCT, _K_UNION, _K_ENUM, _K_ENUM64, _K_DATASEC, _K_FLOAT):
                size = words[o + 2]
                break
            if kind == _K_PTR:
                size = self.pointer_size
                break
            if kind in (_K_TYPEDEF, _K_VOLATILE, _K_CONST, _K_RESTRICT, _K_VAR, _K_DECL_TAG, _K_TYPE_TAG):
                nxt = words[o + 2]
            elif kind == _K_ARRAY:
                nelems *= words[o + 5]
                nxt = words[o + 3]
            else:
                raise BTFError(f"{self.name}: type {self._describe(tid)} has no size "
                               f"({self._describe(cur) if cur else 'void'} is not a sized type)")
            if cur in seen:
                raise self._loop_error(seen + [cur])
            seen.append(cur)
            cur = nxt
        size *= nelems
        self._sizes[tid] = size
        return size

    def alignof(self, type: int | Type | str) -> int:
        """Alignment in bytes, as a C compiler for this BTF would lay the type out (1 for packed structs)."""
        tid = self._id(type)
        return _alignof(self, tid, set())

    def _id(self, type: int | Type | str) -> int:
        if isinstance(type, int):
            return type
        if isinstance(type, Type):
            if type.btf is not self and (type.btf is None or not self._has_base(type.btf)):
                raise BTFError(f"{type!r} belongs to another BTF")
            return type._require_id()
        return self.find(type).id  # type: ignore[return-value]

    def _has_base(self, other: "BTF") -> bool:
        b = self.base
        while b is not None:
            if b is other:
                return True
            b = b.base
        return False

    def member_path(self, type: int | Type | str, name: str) -> list[tuple[int, Member]]:
        """How to reach member ``name`` of a struct/union: (index, member) pairs through anonymous members.

        ``struct s { union { int a; }; }``: member_path(s, "a") is [(0, <anon union>), (0, a)].
        The member's bit offset from the start of the outer type is the sum of the ``offset``s.
        """
        tid = self.resolve(self._id(type))
        t = self[tid]
        if t.kind not in (Kind.STRUCT, Kind.UNION):
            raise BTFError(f"{self.name}: {t.describe()} is a {t.kind.name}, not a struct or union; "
                           f"it has no member {name!r}")
        path = _member_path(self, t, name, set())  # type: ignore[arg-type]
        if path is None:
            raise TypeNotFoundError(f"{self.name}: {t.describe()} has no member {name!r}")
        return path

    def member_offset(self, type: int | Type | str, name: str) -> int:
        """Byte offset of member ``name`` (dotted paths like 'se.vruntime' allowed)."""
        bits = 0
        tid = self._id(type)
        for part in name.split("."):
            path = self.member_path(tid, part)
            bits += sum(m.offset for _, m in path)
            tid = path[-1][1].type_id
        return bits // 8

    # --- modification -------------------------------------------------------

    def add(self, t: Type) -> int:
        """Append a type object to this BTF; returns its new id."""
        from .writer import encode_type

        record = encode_type(t, self._intern)
        self._offs.append(len(self._words))
        self._words.extend(record)
        self._changed()
        return len(self) - 1

    def replace(self, type_id: int, t: Type) -> None:
        """Put ``t`` in place of type ``type_id`` (an id this BTF defines, not the base's)."""
        from .writer import encode_type

        if not self.start_id <= type_id < len(self):
            raise BTFError(f"{self.name}: cannot replace type {type_id}: this BTF defines ids "
                           f"{self.start_id}..{len(self) - 1}")
        record = encode_type(t, self._intern)
        i = type_id - self._first
        o = self._offs[i]
        end = self._offs[i + 1] if i + 1 < len(self._offs) else len(self._words)
        self._words[o:end] = array("I", record)
        delta = len(record) - (end - o)
        if delta:  # later records moved
            offs = self._offs
            for j in range(i + 1, len(offs)):
                offs[j] += delta
        self._changed()

    def _changed(self) -> None:
        self._raw = None
        self._types_at = HEADER_SIZE  # what serialize() will write
        self._cache.clear()
        self._name_index = None
        self._name_offsets = None
        self._name_scans = 0
        self._essential_ids = {}
        self._names_dict = None
        self._flat_view = None
        self._sizes.clear()
        self._codecs.clear()
        self._ptr_size = None
        self._kind_bytes = None

    def copy(self) -> "BTF":
        """An independent copy (same base) to modify without touching this one."""
        words = array("I", self._words)
        return BTF(words, list(self._offs), bytes(self._strtab), base=self.base, name=self.name, raw=self._raw,
                   types_at=self._types_at)

    def to_bytes(self) -> bytes:
        """Raw BTF: the bytes this BTF was parsed from when unchanged, else a fresh encoding."""
        if self._raw is not None:
            return self._raw
        from .writer import serialize

        return serialize(self)

    def types_bytes(self) -> bytes:
        """The type section alone (records of this BTF's own types)."""
        start = 0 if self.base is not None else 3
        words = self._words[start:]
        if not _LITTLE:
            words = array("I", words)
            words.byteswap()
        return words.tobytes()

    def strings_bytes(self) -> bytes:
        return bytes(self._strtab)

    # --- checks -------------------------------------------------------------

    def validate(self) -> None:
        """Check all type references, string offsets and loops; BTFError naming the first problem."""
        from .validate import validate

        validate(self)

    # --- conveniences for the layers above ------------------------------------

    def codec(self, type: int | Type | str) -> Any:
        """A compiled value codec for a type (cached): ``codec.decode(bytes)``, ``codec.encode(value)``."""
        from .codec import codec_for

        return codec_for(self, self._id(type))

    def dump_c(self) -> str:
        """This BTF as a C header, declaration for declaration what ``bpftool btf dump ... format c`` emits."""
        from .cdump import dump_c

        return dump_c(self)

    def dump_raw(self) -> str:
        """bpftool's raw listing of this BTF's own types."""
        from .rawdump import dump_raw

        return dump_raw(self)


_LONG_NAMES = frozenset({"long", "long int", "int long", "unsigned long", "long unsigned", "unsigned long int",
                         "unsigned int long", "long unsigned int", "long int unsigned", "int unsigned long",
                         "int long unsigned"})


def _enum_or_int(cls: Any, value: int) -> Any:
    try:
        return cls(value)
    except ValueError:
        return value


def _kind_set(kind: Any) -> frozenset[Kind]:
    """Kinds to accept: one kind, a collection of kinds, or "enum" (C's word for ENUM and ENUM64)."""
    if isinstance(kind, (set, frozenset, tuple, list)):
        return frozenset(Kind.parse(k) for k in kind)
    if isinstance(kind, str) and kind.strip().lower() == "enum":
        return frozenset((Kind.ENUM, Kind.ENUM64))
    return frozenset((Kind.parse(kind),))


_C_PREFIXES = {"struct": Kind.STRUCT, "union": Kind.UNION, "enum": "enum", "typedef": Kind.TYPEDEF}


def _split_c_name(name: str, kind: Any) -> tuple[str, Any]:
    """'struct task_struct' -> ('task_struct', STRUCT); plain names pass through."""
    head, _, rest = name.strip().partition(" ")
    if rest and head in _C_PREFIXES and kind is None:
        return rest.strip(), _C_PREFIXES[head]
    return name, kind


def _alignof(btf: BTF, tid: int, active: set[int]) -> int:
    words, o = btf._locate(tid)
    kind = (words[o + 1] >> 24) & 0x1F if tid else 0
    if kind in (_K_INT, _K_ENUM, _K_ENUM64, _K_FLOAT):
        return min(btf.pointer_size, words[o + 2]) or 1
    if kind == _K_PTR:
        return btf.pointer_size
    if tid in active:
        raise btf._loop_error(sorted(active) + [tid])
    active.add(tid)
    try:
        if kind in (_K_TYPEDEF, _K_VOLATILE, _K_CONST, _K_RESTRICT, _K_TYPE_TAG):
            return _alignof(btf, words[o + 2], active)
        if kind == _K_ARRAY:
            return _alignof(btf, words[o + 3], active)
        if kind in (_K_STRUCT, _K_UNION):
            vlen = words[o + 1] & 0xFFFF
            kflag = words[o + 1] >> 31
            best = 1
            for i in range(vlen):
                q = o + 3 + 3 * i
                align = _alignof(btf, words[q + 1], active)
                best = max(best, align)
                off = words[q + 2]
                bitfield = (off >> 24) if kflag else 0
                if kflag:
                    off &= 0xFFFFFF
                if not bitfield and off % (8 * align):
                    return 1
            return 1 if words[o + 2] % best else best
    finally:
        active.discard(tid)
    raise BTFError(f"{btf.name}: type {btf._describe(tid)} has no alignment (not a data type)")


def _member_path(btf: BTF, t: Struct | Union, name: str, active: set[int]) -> list[tuple[int, Member]] | None:
    if t.id in active:
        raise btf._loop_error(sorted(active) + [t.id])  # type: ignore[list-item]
    active.add(t.id)  # type: ignore[arg-type]
    for i, m in enumerate(t.members):
        if m.name == name:
            return [(i, m)]
    for i, m in enumerate(t.members):
        if not m.name:
            inner = btf[btf.resolve(m.type_id)]
            if inner.kind in (Kind.STRUCT, Kind.UNION):
                sub = _member_path(btf, inner, name, active)  # type: ignore[arg-type]
                if sub is not None:
                    return [(i, m)] + sub
    return None


def _elf_file(data: bytes, name: str) -> Any:
    from ..elf.reader import ELFFile

    return ELFFile(data, name=name, machine=None)


# --- parsing --------------------------------------------------------------------


def _parse(data: bytes, base: BTF | None, name: str) -> BTF:
    """Check the header and section layout and index the type records (no type objects yet)."""
    size = len(data)
    if size < HEADER_SIZE:
        raise BTFError(f"{name}: {size} bytes is too short for a BTF header ({HEADER_SIZE} bytes)",
                       section="BTF header", offset=0)
    magic = int.from_bytes(data[:2], "little")
    swapped = False
    if magic == 0x9FEB:
        swapped = True
    elif magic != BTF_MAGIC:
        raise BTFError(f"{name}: bad BTF magic {magic:#06x} (expected {BTF_MAGIC:#06x})", section="BTF header", offset=0)
    order = ">" if swapped else "<"
    _magic, version, flags, hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from(
        order + HEADER.format[1:], data, 0)
    if version != BTF_VERSION:
        raise BTFError(f"{name}: BTF version {version} is not supported (only version {BTF_VERSION})",
                       section="BTF header", offset=2)
    if flags:
        raise BTFError(f"{name}: unknown BTF header flags {flags:#x}", section="BTF header", offset=3)
    if hdr_len < HEADER_SIZE:
        raise BTFError(f"{name}: header length {hdr_len} is shorter than the {HEADER_SIZE}-byte BTF header",
                       section="BTF header", offset=4)
    if hdr_len > size:
        raise BTFError(f"{name}: header length {hdr_len} is larger than the data ({size} bytes)",
                       section="BTF header", offset=4)
    if any(data[HEADER_SIZE:hdr_len]):
        raise BTFError(f"{name}: header has {hdr_len - HEADER_SIZE} extra bytes that are not zero "
                       f"(a newer BTF format this reader does not know)", section="BTF header", offset=HEADER_SIZE)
    body = size - hdr_len
    if type_off % 4:
        raise BTFError(f"{name}: type section offset {type_off} is not 4-byte aligned", section="BTF header", offset=8)
    if type_off + type_len > body:
        raise BTFError(f"{name}: type section ({type_len} bytes at {type_off}) runs past the end of the data "
                       f"({body} bytes after the header)", section="BTF header", offset=8)
    if str_off + str_len > body:
        raise BTFError(f"{name}: string section ({str_len} bytes at {str_off}) runs past the end of the data "
                       f"({body} bytes after the header)", section="BTF header", offset=16)
    if type_off + type_len > str_off and str_off + str_len > type_off and type_len and str_len:
        raise BTFError(f"{name}: type section ({type_off}+{type_len}) and string section ({str_off}+{str_len}) overlap",
                       section="BTF header", offset=8)
    if type_len % 4:
        raise BTFError(f"{name}: type section length {type_len} is not a multiple of 4", section="BTF header", offset=12)
    types_at = hdr_len + type_off
    strings_at = hdr_len + str_off
    strtab = data[strings_at:strings_at + str_len]
    if base is None:
        if not str_len or strtab[0] != 0:
            raise BTFError(f"{name}: string section must start with an empty string (a NUL byte)",
                           section="BTF strings", offset=strings_at)
    if str_len and strtab[-1] != 0:
        raise BTFError(f"{name}: string section does not end with a NUL byte", section="BTF strings",
                       offset=strings_at + str_len - 1)

    if base is None:
        words = array("I", bytes(12))
        start = 3
    else:
        words = array("I")
        start = 0
    words.frombytes(memoryview(data)[types_at:types_at + type_len])  # a view: no 3 MB copy of vmlinux's types
    if swapped == _LITTLE:  # file order differs from host order
        words.byteswap()
    offs = [0] if base is None else []
    kinds = _index(words, start, offs, name, types_at, base)
    btf = BTF(words, offs, strtab, base=base, name=name, raw=data, types_at=types_at)
    btf._kind_bytes = kinds if base is not None else b"\0" + kinds
    return btf


def _index(words: array, pos: int, offs: list[int], name: str, types_at: int, base: BTF | None) -> bytes:
    """Append the word offset of every record to ``offs`` and return their kinds, a byte each
    (sparing a second pass over all records); BTFError at the first unknown kind or truncated record.

    The loop does as little per record as it can (vmlinux has ~127k): the tables are indexed by
    the info word's top byte (kflag and kind), an unknown kind's step is None so adding it
    raises TypeError, and a record too short for its 3-word header can only be the last one,
    so both are checked once, outside the loop.
    """
    step, per = _STEP_BY_TOP, _VLEN_WORDS_BY_TOP
    n = len(words)
    append = offs.append
    kinds = bytearray()
    add_kind = kinds.append
    start = pos
    first = len(base) if base is not None else 0
    try:
        while pos < n:
            append(pos)
            info = words[pos + 1]
            top = info >> 24
            add_kind(top)
            if per[top]:
                pos += step[top] + (info & 0xFFFF) * per[top]
            else:
                pos += step[top]
    except (IndexError, TypeError):
        # offs ends with the bad record: past its 3-word header (IndexError), or of an unknown kind
        if pos + 3 > n:
            raise _truncated_header(name, first + len(offs) - 1, n - pos, types_at + 4 * (pos - start)) from None
        raise BTFError(f"{name}: type [{first + len(offs) - 1}] has unknown kind {(words[pos + 1] >> 24) & 0x1F}",
                       section="BTF types", offset=types_at + 4 * (pos - start)) from None
    if pos != n:
        last = offs[-1]
        if last + 3 > n:
            raise _truncated_header(name, first + len(offs) - 1, n - last, types_at + 4 * (last - start))
        raise BTFError(f"{name}: type [{first + len(offs) - 1}] {KIND_NAMES[(words[last + 1] >> 24) & 0x1F]} "
                       f"(vlen {words[last + 1] & 0xFFFF}) is truncated: it needs {4 * (pos - last)} bytes, "
                       f"the type section has {4 * (n - last)} left", section="BTF types",
                       offset=types_at + 4 * (last - start))
    if first + len(offs) > MAX_TYPE_ID + 1:
        raise BTFError(f"{name}: {first + len(offs) - 1} types is more than BTF allows ({MAX_TYPE_ID})",
                       section="BTF types")
    return bytes(kinds).translate(_KIND_OF_TOP)


def _truncated_header(name: str, tid: int, words_left: int, offset: int) -> BTFError:
    return BTFError(f"{name}: type [{tid}] is truncated: {4 * words_left} bytes left in the type "
                    f"section, a type record needs at least 12", section="BTF types", offset=offset)


# _index's tables, by the top byte of a record's info word (kflag, 2 unused bits, kind):
# record words before the vlen entries (None: unknown kind), words per vlen entry, the kind.
_STEP_BY_TOP = [3 + EXTRA_WORDS[top & 0x1F] if KNOWN[top & 0x1F] else None for top in range(256)]
_VLEN_WORDS_BY_TOP = [VLEN_WORDS[top & 0x1F] for top in range(256)]
_KIND_OF_TOP = bytes(top & 0x1F for top in range(256))
