"""Values <-> bytes following a BTF type, compiled once per type.

Decoding is the hot path (ring buffers deliver millions of records a second),
so a type is compiled into one ``struct.Struct`` covering all its bytes and a
generated expression that turns the unpacked tuple into the Python value.
Structs become *records*: tuple subclasses with a property per member, built
by ``tuple.__new__`` in C.  ``char[N]`` members are kept as bytes and decoded to
``str`` (up to the first NUL) when the attribute is read, so a record whose
members need no conversion decodes entirely in C (``iter_unpack`` + ``map``).

What the values look like:

- integers and enums: ``int`` (encode also takes an enumerator name); ``_Bool``: ``bool``;
  pointers: ``int``; ``float``/``double``: ``float``; ``__int128``: ``int``
- ``char[N]``: ``str`` (encode takes str or bytes); other 1-byte integer arrays
  (``u8[N]``, ``unsigned char[N]``): ``bytes``; other arrays: ``list``
- structs: records with attribute access (``ev.pid``), ``_asdict()``, equality and a
  readable repr; members of anonymous structs and unions are reachable directly, as in C
- unions: a union record holding the bytes; each member is decoded when read

Encoding accepts a record, a mapping of member names (missing ones are zero) or
any object with the member attributes.  A wrong size or shape raises MapError.
"""

from __future__ import annotations

import keyword
import struct
from abc import ABC, abstractmethod
from collections.abc import Mapping
from functools import partial
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Callable

from ..errors import BTFError, MapError
from .types import Kind

if TYPE_CHECKING:
    from .btf import BTF

__all__ = ["Codec", "Record", "UnionRecord", "codec_for", "as_dict"]

_UINT_FMT = {1: "B", 2: "H", 4: "I", 8: "Q"}
_INT_FMT = {(1, False): "B", (1, True): "b", (2, False): "H", (2, True): "h", (4, False): "I", (4, True): "i",
            (8, False): "Q", (8, True): "q"}
_FLOAT_FMT = {2: "e", 4: "f", 8: "d"}
_MAX_DEPTH = 64
MAX_SIZE = 16 << 20  # bytes; BPF map values and ring buffer records are far smaller
_MAX_VALUES = 1 << 20  # unpacked values per type


def _cstr(data: bytes) -> str:
    """A C string from a fixed buffer: up to the first NUL, undecodable bytes replaced."""
    return data.partition(b"\0")[0].decode("utf-8", "replace")


# --- records -------------------------------------------------------------------


class _Members:
    """What decoded structs and unions share: members by name (``_fields``), as a dict or a repr."""

    __slots__ = ()
    _fields: tuple[str, ...] = ()
    _type_name = ""

    def _asdict(self, recursive: bool = False) -> dict[str, Any]:
        out = {name: getattr(self, name) for name in self._fields}
        if recursive:
            out = {k: _plain(v) for k, v in out.items()}
        return out

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields)
        return f"{self._type_name}({inner})"


class Record(_Members, tuple):
    """Base of decoded structs.  Members are attributes; ``_asdict()`` gives a dict."""

    __slots__ = ()
    _type_name = "struct"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Record):
            return type(self) is type(other) and self._asdict() == other._asdict()
        if isinstance(other, Mapping):
            return self._asdict() == dict(other)
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    def __hash__(self) -> int:
        return hash(tuple(_hashable(getattr(self, n)) for n in self._fields))

    def __reduce__(self):
        # record classes are made per type at run time and cannot be imported: pickle as a dict
        return (dict, (self._asdict(recursive=True),))


class UnionRecord(_Members):
    """A decoded union: the raw bytes, each member decoded when read."""

    __slots__ = ("_data",)
    _type_name = "union"

    def __init__(self, data: bytes):
        self._data = bytes(data)

    def __bytes__(self) -> bytes:
        return self._data


    def __eq__(self, other: object) -> bool:
        if isinstance(other, UnionRecord):
            return type(self) is type(other) and self._data == other._data
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._data)


def as_dict(value: Any) -> Any:
    """A decoded value with records turned into plain dicts (recursively), e.g. for JSON."""
    return _plain(value)


def _plain(v: Any) -> Any:
    if isinstance(v, (Record, UnionRecord)):
        return v._asdict(recursive=True)
    if isinstance(v, list):
        return [_plain(x) for x in v]
    return v


def _hashable(v: Any) -> Any:
    return tuple(_hashable(x) for x in v) if isinstance(v, list) else v


# --- layout nodes -------------------------------------------------------------------


class _Node(ABC):
    """How one type sits in bytes: a struct format, how many values it unpacks to, and
    expressions that build the Python value from those values."""

    size: int
    fmt: str
    n: int
    label: str
    lazy: Callable[[Any], Any] | None = None  # records store raw values and convert on attribute access

    @abstractmethod
    def expr(self, var: str, k: int, ns: dict) -> str:
        """Expression for the final value from var[k:k+n]."""

    def stored_expr(self, var: str, k: int, ns: dict) -> str:
        """What a record stores (the raw value when ``lazy`` converts it on access)."""
        return self.expr(var, k, ns)

    @abstractmethod
    def encode_into(self, buf: bytearray, off: int, value: Any, path: str) -> None:
        """Write ``value`` at ``off``; MapError naming ``path`` when it does not fit."""


class _Scalar(_Node):
    def __init__(self, fmt: str, size: int, label: str, enum_values: dict[str, int] | None = None):
        self.fmt, self.size, self.n, self.label = fmt, size, 1, label
        self.enum_values = enum_values
        self._struct = struct.Struct("<" + fmt)

    def expr(self, var, k, ns):
        return f"{var}[{k}]"

    def encode_into(self, buf, off, value, path):
        if isinstance(value, str) and self.enum_values is not None:
            try:
                value = self.enum_values[value]
            except KeyError:
                names = ", ".join(list(self.enum_values)[:12])
                raise MapError(f"{path}: {value!r} is not an enumerator of {self.label} ({names})") from None
        try:
            self._struct.pack_into(buf, off, value)
        except (struct.error, TypeError):
            raise MapError(f"{path}: cannot encode {value!r} as {self.label} ({self.size} bytes)") from None


class _BigInt(_Node):
    """Integers wider than 8 bytes (__int128)."""

    def __init__(self, size: int, signed: bool, label: str):
        self.fmt, self.size, self.n, self.label, self.signed = f"{size}s", size, 1, label, signed

    def expr(self, var, k, ns):
        return f"_int({var}[{k}], 'little', signed={self.signed})"

    def encode_into(self, buf, off, value, path):
        try:
            buf[off:off + self.size] = int(value).to_bytes(self.size, "little", signed=self.signed)
        except (OverflowError, TypeError, ValueError):
            raise MapError(f"{path}: cannot encode {value!r} as {self.label} ({self.size} bytes)") from None


class _Bytes(_Node):
    """char[N] (str) or another 1-byte integer array (bytes)."""

    def __init__(self, size: int, text: bool, label: str):
        self.fmt, self.size, self.n, self.label, self.text = f"{size}s", size, 1, label, text
        self.lazy = _cstr if text else None

    def expr(self, var, k, ns):
        return f"_cstr({var}[{k}])" if self.text else f"{var}[{k}]"

    def stored_expr(self, var, k, ns):
        return f"{var}[{k}]"

    def encode_into(self, buf, off, value, path):
        if isinstance(value, str):
            value = value.encode()
        elif isinstance(value, (list, tuple)) and not self.text:
            try:
                value = bytes(value)
            except (ValueError, TypeError):
                raise MapError(f"{path}: {value!r} is not a list of byte values") from None
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise MapError(f"{path}: expected {'str or ' if self.text else ''}bytes for {self.label}, "
                           f"got {type(value).__name__}")
        value = bytes(value)
        if len(value) > self.size:
            raise MapError(f"{path}: {len(value)} bytes do not fit in {self.label} ({self.size} bytes)")
        buf[off:off + len(value)] = value


class _Array(_Node):
    def __init__(self, elem: _Node, count: int, label: str):
        self.elem, self.count, self.label = elem, count, label
        self.size = elem.size * count
        self.n = elem.n * count
        self.fmt = _repeat(elem.fmt, count)

    def expr(self, var, k, ns):
        e = self.elem
        if self.count == 0:
            return "[]"
        if isinstance(e, _Scalar):
            return f"list({var}[{k}:{k + self.count}])"
        return "[" + ", ".join(e.expr(var, k + i * e.n, ns) for i in range(self.count)) + "]"

    def encode_into(self, buf, off, value, path):
        if isinstance(value, (str, bytes, bytearray)) or not hasattr(value, "__len__"):
            raise MapError(f"{path}: expected a list of {self.count} values for {self.label}, "
                           f"got {type(value).__name__}")
        if len(value) != self.count:
            raise MapError(f"{path}: expected {self.count} values for {self.label}, got {len(value)}")
        step = self.elem.size
        for i, item in enumerate(value):
            self.elem.encode_into(buf, off + i * step, item, f"{path}[{i}]")


class _Union(_Node):
    def __init__(self, cls: type, size: int, label: str, members: dict[str, tuple[int, Any]]):
        self.cls, self.size, self.n, self.label, self.fmt = cls, size, 1, label, f"{size}s"
        self.members = members  # name -> (byte offset, node or bitfield)

    def expr(self, var, k, ns):
        name = _ns_name(ns, self.cls)
        return f"{name}({var}[{k}])"

    def encode_into(self, buf, off, value, path):
        if isinstance(value, UnionRecord) or isinstance(value, (bytes, bytearray)):
            data = bytes(value)
            if len(data) != self.size:
                raise MapError(f"{path}: {len(data)} bytes for {self.label}, expected {self.size}")
            buf[off:off + self.size] = data
            return
        items = _items(value, self.members, path, self.label)
        if len(items) > 1:
            raise MapError(f"{path}: give one member of {self.label}, not {', '.join(items)}")
        for name, v in items.items():
            moff, node = self.members[name]
            node.encode_into(buf, off + moff, v, f"{path}.{name}")


class _Bitfield:
    """A bitfield member, read from the storage integer covering its bytes."""

    def __init__(self, bit_off: int, bits: int, signed: bool, label: str, enum_values: dict[str, int] | None):
        self.bit_off, self.bits, self.signed, self.label = bit_off, bits, signed, label
        self.enum_values = enum_values
        self.size = (bit_off % 8 + bits + 7) // 8

    def value_expr(self, storage: str, shift: int) -> str:
        mask = (1 << self.bits) - 1
        e = f"(({storage} >> {shift}) & {mask:#x})" if shift else f"({storage} & {mask:#x})"
        if self.signed:
            sign = 1 << (self.bits - 1)
            e = f"(({e} ^ {sign:#x}) - {sign:#x})"
        return e

    def encode_into(self, buf, off, value, path):
        """``off`` is the byte holding the first bit; read-modify-write the bytes it spans."""
        if isinstance(value, str) and self.enum_values is not None:
            if value not in self.enum_values:
                raise MapError(f"{path}: {value!r} is not an enumerator of {self.label}")
            value = self.enum_values[value]
        if isinstance(value, bool):
            value = int(value)
        if not isinstance(value, int):
            raise MapError(f"{path}: expected an int for bitfield {self.label}, got {type(value).__name__}")
        lo, hi = (-(1 << (self.bits - 1)), (1 << (self.bits - 1)) - 1) if self.signed else (0, (1 << self.bits) - 1)
        if not lo <= value <= hi:
            raise MapError(f"{path}: {value} does not fit in a {self.bits}-bit {'signed' if self.signed else 'unsigned'} "
                           f"bitfield")
        shift = self.bit_off % 8
        mask = ((1 << self.bits) - 1) << shift
        cur = int.from_bytes(buf[off:off + self.size], "little")
        cur = (cur & ~mask) | ((value << shift) & mask)
        buf[off:off + self.size] = cur.to_bytes(self.size, "little")


class _Struct(_Node):
    """A struct as a record; ``slots`` are the record's stored values in order."""

    def __init__(self, cls: type, size: int, fmt: str, n: int, label: str, slot_exprs: list[Callable],
                 encoders: dict[str, tuple[int, Any]], slot_encoders: list[tuple[int, Any]], trivial: bool):
        self.cls, self.size, self.fmt, self.n, self.label = cls, size, fmt, n, label
        self._slot_exprs = slot_exprs
        self.encoders = encoders  # member name -> (byte offset, node) for every name a record exposes
        self.slot_encoders = slot_encoders  # a record of this type re-encodes exactly from its stored values
        self.trivial = trivial  # slots are exactly the unpacked values, in order

    def expr(self, var, k, ns):
        name = _ns_name(ns, self.cls)
        slots = [build(var, k, ns) for build in self._slot_exprs]
        return f"{name}(({', '.join(slots)}{',' if len(slots) == 1 else ''}))"

    def encode_into(self, buf, off, value, path):
        if isinstance(value, (bytes, bytearray, memoryview)):
            data = bytes(value)
            if len(data) != self.size:
                raise MapError(f"{path}: {len(data)} bytes for {self.label}, expected {self.size}")
            buf[off:off + self.size] = data
            return
        if type(value) is self.cls:
            for (moff, node), stored in zip(self.slot_encoders, value):
                node.encode_into(buf, off + moff, stored, path or self.label)
            return
        for name, v in _items(value, self.encoders, path, self.label).items():
            moff, node = self.encoders[name]
            node.encode_into(buf, off + moff, v, f"{path}.{name}" if path else name)


class _Opaque(_Node):
    """Bytes the codec does not interpret (a struct whose layout it cannot express)."""

    def __init__(self, size: int, label: str):
        self.size, self.fmt, self.n, self.label = size, f"{size}s", 1, label

    def expr(self, var, k, ns):
        return f"{var}[{k}]"

    def encode_into(self, buf, off, value, path):
        data = bytes(value)
        if len(data) != self.size:
            raise MapError(f"{path}: {len(data)} bytes for {self.label}, expected {self.size}")
        buf[off:off + self.size] = data


def _repeat(fmt: str, count: int) -> str:
    if count == 0 or not fmt:
        return ""
    if len(fmt) == 1:
        return f"{count}{fmt}"
    return " ".join([fmt] * count)


def _ns_name(ns: dict, obj: Any) -> str:
    key = ("obj", id(obj))
    name = ns.get(key)
    if name is None:
        name = f"_C{len(ns)}"
        ns[key] = name
        ns[name] = obj
    return name


def _items(value: Any, known: Mapping[str, Any], path: str, label: str) -> dict[str, Any]:
    """The member values a caller gave for a struct/union: from a record, a mapping or attributes."""
    if isinstance(value, Mapping):
        unknown = [k for k in value if k not in known]
        if unknown:
            names = ", ".join(list(known)[:16])
            raise MapError(f"{path or label}: {label} has no member {unknown[0]!r} (members: {names})")
        return dict(value)
    if isinstance(value, (Record, UnionRecord)):
        return value._asdict()
    if isinstance(value, (int, float, str, list, tuple)) or value is None:
        raise MapError(f"{path or label}: expected a record or a mapping of member names for {label}, "
                       f"got {type(value).__name__} {value!r}")
    out = {}
    for name in known:
        if hasattr(value, name):
            out[name] = getattr(value, name)
    if not out:
        raise MapError(f"{path or label}: {type(value).__name__} has none of the members of {label}")
    return out


# --- compiling a BTF type into a node ---------------------------------------------------


class _Compiler:
    def __init__(self, btf: "BTF"):
        self.btf = btf
        self.ptr_size = btf.pointer_size
        self.active: list[int] = []

    def node(self, tid: int) -> _Node:
        btf = self.btf
        rid = btf.resolve(tid)
        t = btf[rid]
        kind = t.kind
        label = btf[tid].describe() if tid else "void"
        if kind == Kind.INT:
            if t.offset or t.bits != t.size * 8:  # type: ignore[attr-defined]
                raise BTFError(f"{label} is a bitfield-style INT ({t.bits} bits at {t.offset}); "  # type: ignore[attr-defined]
                               f"it can only be decoded as a struct member")
            if t.is_bool and t.size == 1:  # type: ignore[attr-defined]
                return _Scalar("?", 1, label)
            fmt = _INT_FMT.get((t.size, t.signed))  # type: ignore[attr-defined]
            if fmt is None:
                if t.size in (16, 32):
                    return _BigInt(t.size, t.signed, label)  # type: ignore[attr-defined]
                raise BTFError(f"{label}: integers of {t.size} bytes are not supported")
            return _Scalar(fmt, t.size, label)
        if kind in (Kind.ENUM, Kind.ENUM64):
            fmt = _INT_FMT.get((t.size, t.signed))  # type: ignore[attr-defined]
            if fmt is None:
                raise BTFError(f"{label}: enums of {t.size} bytes are not supported")
            return _Scalar(fmt, t.size, label, enum_values=t.as_dict())  # type: ignore[attr-defined]
        if kind == Kind.PTR:
            return _Scalar("Q" if self.ptr_size == 8 else "I", self.ptr_size, label)
        if kind == Kind.FLOAT:
            fmt = _FLOAT_FMT.get(t.size)  # type: ignore[attr-defined]
            return _Scalar(fmt, t.size, label) if fmt else _Opaque(t.size, label)  # type: ignore[attr-defined]
        if kind == Kind.ARRAY:
            return self._array(t, label)
        if kind in (Kind.STRUCT, Kind.UNION):
            if rid in self.active:
                raise btf._loop_error(self.active[self.active.index(rid):] + [rid])
            self.active.append(rid)
            if len(self.active) > _MAX_DEPTH:
                raise BTFError(f"{label}: structs nest more than {_MAX_DEPTH} levels deep")
            try:
                return self._struct(t, label) if kind == Kind.STRUCT else self._union(t, label)
            finally:
                self.active.pop()
        what = {Kind.UNKN: "void", Kind.FWD: "an incomplete (forward-declared) type",
                Kind.FUNC_PROTO: "a function type", Kind.FUNC: "a function"}.get(kind, f"a {kind.name}")
        raise BTFError(f"{label} is {what}; it has no value to encode or decode")

    def _array(self, t: Any, label: str) -> _Node:
        if t.nelems > _MAX_VALUES:
            raise BTFError(f"{label} has {t.nelems} elements; decode it as bytes instead")
        elem_id = self.btf.resolve(t.type_id)
        elem = self.btf[elem_id]
        if elem.kind == Kind.INT and elem.size == 1 and not elem.is_bool:
            text = elem.is_char or elem.name == "char"
            return _Bytes(t.nelems, text, label)
        elem = self.node(t.type_id)
        if elem.n * t.nelems > _MAX_VALUES:
            raise BTFError(f"{label} has {elem.n * t.nelems} scalar values; decode it as bytes instead")
        return _Array(elem, t.nelems, label)

    def _union(self, t: Any, label: str) -> _Node:
        members: dict[str, tuple[int, Any]] = {}
        props: dict[str, Any] = {}
        for m in t.members:
            for name, (off, node, getter) in self._member_views(m).items():
                if name in members:
                    continue
                members[name] = (off, node)
                props[name] = property(getter)
        cls = type(_class_name(t), (UnionRecord,), {"__slots__": (), "_fields": tuple(members),
                                                  "_type_name": _class_name(t), **props})
        return _Union(cls, t.size, label, members)

    def _member_views(self, m: Any) -> dict[str, tuple[int, Any, Callable]]:
        """name -> (byte offset, encoder node, getter from a UnionRecord) for a union member."""
        btf = self.btf
        mt = btf[btf.resolve(m.type_id)]
        if m.bitfield_size or (mt.kind == Kind.INT and (mt.offset or mt.bits != mt.size * 8)):
            bits = m.bitfield_size or mt.bits
            bit_off = m.offset + (0 if m.bitfield_size else mt.offset)
            bf = _Bitfield(bit_off, bits, _signed(mt), btf[m.type_id].describe(), _enum_names(mt))
            start = bit_off // 8
            shift = bit_off % 8
            mask = (1 << bits) - 1

            def get_bits(self: UnionRecord, start=start, end=start + bf.size, shift=shift, mask=mask, bf=bf):
                v = (int.from_bytes(self._data[start:end], "little") >> shift) & mask
                if bf.signed and v >> (bf.bits - 1):
                    v -= 1 << bf.bits
                return v

            return {m.name: (start, bf, get_bits)} if m.name else {}
        node = self.node(m.type_id)
        off = m.offset // 8
        decode = _decoder(node)

        def get(self: UnionRecord, off=off, end=off + node.size, decode=decode):
            return decode(self._data[off:end])

        if m.name:
            return {m.name: (off, node, get)}
        # an anonymous struct/union inside the union: its members are the union's members
        out = {}
        for name, (noff, sub) in getattr(node, "encoders", getattr(node, "members", {})).items():
            def get_inner(self: UnionRecord, name=name, get=get):
                return getattr(get(self), name)

            out[name] = (off + noff, sub, get_inner)
        return out

    def _struct(self, t: Any, label: str) -> _Node:
        """Lay the members out as struct format leaves; each record slot is an expression over them.

        Slot builders take (var, base, ns): ``base`` is the index of this struct's first value
        in the enclosing unpacked tuple, so the same layout nests anywhere.
        """
        btf = self.btf
        fmt_parts: list[str] = []
        slots: list[Callable[[str, int, dict], str]] = []
        slot_encoders: list[tuple[int, Any]] = []  # (byte offset, encoder) per slot, for records of this type
        names: list[str] = []
        props: dict[str, Any] = {}
        encoders: dict[str, tuple[int, Any]] = {}
        pos = 0  # next free byte
        nvals = 0  # values unpacked so far
        trivial = True  # every slot is the raw value with the same index

        def leaf(fmt: str, size: int, at: int) -> int:
            nonlocal pos
            if at < pos:
                raise _Overlap()
            if at > pos:
                fmt_parts.append(f"{at - pos}x")
            fmt_parts.append(fmt)
            pos = at + size
            return nvals

        def slot(name: str, builder: Callable[[str, int, dict], str], encoder: tuple[int, Any],
                 lazy: Callable | None = None, raw_index: int | None = None) -> int:
            nonlocal trivial
            idx = len(slots)
            slots.append(builder)
            slot_encoders.append(encoder)
            if raw_index != idx:
                trivial = False
            if name and name not in props:
                names.append(name)
                props[name] = property(itemgetter(idx)) if lazy is None else _lazy_getter(idx, lazy)
            return idx

        def place(members: list, base_bits: int) -> None:
            nonlocal nvals
            i = 0
            while i < len(members):
                m = members[i]
                mt = btf[btf.resolve(m.type_id)]
                if _is_bitfield(m, mt):
                    # consecutive bitfields whose bytes overlap share one storage integer
                    run = []
                    start = end = (base_bits + _bit_off(m, mt)) // 8
                    while i < len(members):
                        m2 = members[i]
                        mt2 = btf[btf.resolve(m2.type_id)]
                        b_off = base_bits + _bit_off(m2, mt2)
                        if not _is_bitfield(m2, mt2) or (run and not start * 8 <= b_off < end * 8):
                            break
                        bits = m2.bitfield_size or mt2.bits
                        end = max(end, (b_off + bits + 7) // 8)
                        run.append((m2, mt2, b_off, bits))
                        i += 1
                    width = end - start
                    k = leaf(_UINT_FMT.get(width, f"{width}s"), width, start)
                    nvals += 1
                    for m2, mt2, b_off, bits in run:
                        bf = _Bitfield(b_off, bits, _signed(mt2), btf[m2.type_id].describe(), _enum_names(mt2))

                        def build(var, base, ns, bf=bf, k=k, width=width, shift=b_off - start * 8):
                            storage = f"{var}[{base + k}]" if width in _UINT_FMT else \
                                f"_int({var}[{base + k}], 'little')"
                            return bf.value_expr(storage, shift)

                        slot(m2.name, build, (b_off // 8, bf))
                        if m2.name:
                            encoders.setdefault(m2.name, (b_off // 8, bf))
                    continue
                i += 1
                bit_off = base_bits + m.offset
                if bit_off % 8:
                    raise _Overlap()
                at = bit_off // 8
                if not m.name and mt.kind == Kind.STRUCT:
                    # an anonymous struct: its members are this record's members, as in C
                    if mt.id in self.active:
                        raise btf._loop_error(self.active + [mt.id])
                    self.active.append(mt.id)
                    try:
                        place(list(mt.members), bit_off)
                    finally:
                        self.active.pop()
                    continue
                node = self.node(m.type_id)
                k = leaf(node.fmt, node.size, at)
                nvals += node.n
                if not m.name and isinstance(node, _Union):
                    # an anonymous union: its members are reachable from this record
                    idx = slot("", lambda var, base, ns, node=node, k=k: node.expr(var, base + k, ns), (at, node))
                    for uname, (uoff, unode) in node.members.items():
                        if uname not in props:
                            names.append(uname)
                            props[uname] = property(lambda self, i=idx, n=uname: getattr(self[i], n))
                            encoders.setdefault(uname, (at + uoff, unode))
                    continue
                simple = node.n == 1 and isinstance(node, (_Scalar, _Bytes, _Opaque))
                slot(m.name, lambda var, base, ns, node=node, k=k: node.stored_expr(var, base + k, ns), (at, node),
                     node.lazy, k if simple else None)
                if m.name:
                    encoders.setdefault(m.name, (at, node))

        try:
            place(list(t.members), 0)
            if pos > t.size:
                raise _Overlap()
        except _Overlap:
            return _Opaque(t.size, label)
        if t.size > pos:
            fmt_parts.append(f"{t.size - pos}x")
        cls_name = _class_name(t)
        cls = type(cls_name, (Record,), {"__slots__": (), "_fields": tuple(names), "_type_name": cls_name, **props})
        return _Struct(cls, t.size, " ".join(p for p in fmt_parts if p), nvals, label, slots, encoders,
                       slot_encoders, trivial and len(slots) == nvals)


class _Overlap(Exception):
    """A struct layout the flat format cannot express (overlapping or bit-misaligned members)."""


def _is_bitfield(m: Any, mt: Any) -> bool:
    return bool(m.bitfield_size) or (mt.kind == Kind.INT and (mt.offset or mt.bits != mt.size * 8))


def _bit_off(m: Any, mt: Any) -> int:
    return m.offset + (0 if m.bitfield_size or mt.kind != Kind.INT else mt.offset)


def _signed(t: Any) -> bool:
    return bool(getattr(t, "signed", False))


def _enum_names(t: Any) -> dict[str, int] | None:
    return t.as_dict() if t.kind in (Kind.ENUM, Kind.ENUM64) else None


def _class_name(t: Any) -> str:
    name = t.name or f"anon_{t.kind.name.lower()}"
    if not name.isidentifier() or keyword.iskeyword(name):
        name = "_" + "".join(c if c.isalnum() else "_" for c in name)
    return name


def _lazy_getter(index: int, convert: Callable[[Any], Any]) -> property:
    """A record attribute converting its stored value on access (one Python call, not two)."""
    if convert is _cstr:
        ns: dict = {}
        exec(f"def get(self):\n    return self[{index}].partition(b'\\0')[0].decode('utf-8', 'replace')\n", ns)
        return property(ns["get"])
    return property(lambda self: convert(self[index]))


def _decoder(node: _Node) -> Callable[[bytes], Any]:
    """A function bytes -> value for one node (used for union members, decoded lazily)."""
    ns: dict = {"_cstr": _cstr, "_int": int.from_bytes}
    body = node.expr("v", 0, ns)
    s = struct.Struct("<" + node.fmt)
    ns["_unpack"] = s.unpack_from
    code = f"def _decode(data):\n    v = _unpack(data)\n    return {body}\n"
    exec(compile(code, f"<pybpf codec {node.label}>", "exec"), ns)
    return ns["_decode"]


# --- the public codec --------------------------------------------------------------------


class Codec:
    """Encode/decode values of one BTF type.  ``size`` in bytes; ``record_class`` for structs.

    Implements the codec protocol of :mod:`pybpf.object.codec` (``size``, ``encode``,
    ``decode``, ``decode_many``), so maps and ring buffers can use it directly.
    """

    def __init__(self, btf: "BTF", type_id: int):
        self.btf = btf
        self.type_id = type_id
        self.type = btf[type_id]
        size = btf.sizeof(type_id) if btf.kind_of(btf.resolve(type_id)) not in _SIZELESS else 0
        if size > MAX_SIZE:
            raise BTFError(f"{btf[type_id].describe()} is {size} bytes; values over {MAX_SIZE} bytes are not decoded")
        compiler = _Compiler(btf)
        node = compiler.node(type_id)
        if node.n > _MAX_VALUES:
            raise BTFError(f"{node.label} has {node.n} scalar values; decode it as bytes instead")
        self._node = node
        self.size = node.size
        self.label = node.label
        self.record_class = getattr(node, "cls", None)
        self.format = "<" + node.fmt
        self._struct = struct.Struct(self.format)
        ns: dict = {"_cstr": _cstr, "_int": int.from_bytes}
        body = node.expr("v", 0, ns)
        ns["_unpack"] = self._struct.unpack_from
        ns["_size"] = self.size
        code = (f"def _build(v):\n    return {body}\n"
                f"def _decode(data):\n    return _build(_unpack(data))\n")
        exec(compile(code, f"<pybpf codec {self.label}>", "exec"), ns)
        self._build = ns["_build"]
        self._decode = ns["_decode"]
        self._fast = isinstance(node, _Struct) and node.trivial
        if self._fast:
            self._make = partial(tuple.__new__, node.cls)
        self._many: dict[tuple[int, int], struct.Struct] = {}

    def decode(self, data: bytes | bytearray | memoryview) -> Any:
        if len(data) != self.size:
            raise MapError(f"{self.label}: expected {self.size} bytes, got {len(data)}")
        return self._decode(data)

    def decode_from(self, buffer: Any, offset: int = 0) -> Any:
        """Decode the value starting at ``offset`` of a larger buffer."""
        if offset < 0 or offset + self.size > len(buffer):
            raise MapError(f"{self.label}: {self.size} bytes at offset {offset} run past the buffer "
                           f"({len(buffer)} bytes)")
        return self._build(self._struct.unpack_from(buffer, offset))

    def decode_many(self, buffer: Any, count: int, stride: int, offset: int = 0) -> list:
        """Decode ``count`` values laid out every ``stride`` bytes, each ``offset`` bytes into its slot."""
        if stride < offset + self.size:
            raise MapError(f"{self.label}: stride {stride} is smaller than offset {offset} + size {self.size}")
        key = (stride, offset)
        layout = self._many.get(key)
        if layout is None:
            layout = self._many[key] = struct.Struct(f"<{offset}x {self._struct.format[1:]} "
                                                     f"{stride - offset - self.size}x")
        rows = layout.iter_unpack(memoryview(buffer)[:count * stride])
        if self._fast:
            return list(map(self._make, rows))
        return list(map(self._build, rows))

    def encode(self, value: Any) -> bytes:
        if isinstance(value, (bytes, bytearray, memoryview)) and not isinstance(self._node, _Bytes):
            data = bytes(value)
            if len(data) != self.size:
                raise MapError(f"{self.label}: got {len(data)} bytes, expected {self.size}")
            return data
        if self._fast and type(value) is self.record_class:
            return self._struct.pack(*value)
        buf = bytearray(self.size)
        self._node.encode_into(buf, 0, value, "")
        return bytes(buf)

    def zero(self) -> Any:
        """The value of all-zero bytes (a fresh map value)."""
        return self.decode(bytes(self.size))

    def __repr__(self) -> str:
        return f"<Codec {self.label}: {self.size} bytes, format {self.format!r}>"


_SIZELESS = frozenset({Kind.UNKN, Kind.FWD, Kind.FUNC, Kind.FUNC_PROTO})


def codec_for(btf: "BTF", type_id: int) -> Codec:
    codec = btf._codecs.get(type_id)
    if codec is None:
        codec = btf._codecs[type_id] = Codec(btf, type_id)
    return codec
