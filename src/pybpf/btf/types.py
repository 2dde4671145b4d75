"""BTF type objects: one immutable class per kind.

Objects are views a :class:`~pybpf.btf.BTF` builds on demand (``btf[id]``);
they carry their ``id`` and the ``btf`` they came from so references resolve
(``ptr.type``, ``member.type``).  They are immutable values (equal when their
fields are, ``id`` and ``btf`` aside): to change BTF, build a new object
(``t.replace(name="x")`` or a constructor) and hand it to
``BTF.replace(id, obj)`` or ``BTF.add(obj)``.  That keeps the raw BTF the one
source of truth, so the fast paths (name index, C dump) never see stale data.
"""

from __future__ import annotations

import enum
from operator import attrgetter
from typing import TYPE_CHECKING, Any, Iterator

if TYPE_CHECKING:
    from .btf import BTF


class Kind(enum.IntEnum):
    """BTF_KIND_* of include/uapi/linux/btf.h."""

    UNKN = 0
    INT = 1
    PTR = 2
    ARRAY = 3
    STRUCT = 4
    UNION = 5
    ENUM = 6
    FWD = 7
    TYPEDEF = 8
    VOLATILE = 9
    CONST = 10
    RESTRICT = 11
    FUNC = 12
    FUNC_PROTO = 13
    VAR = 14
    DATASEC = 15
    FLOAT = 16
    DECL_TAG = 17
    TYPE_TAG = 18
    ENUM64 = 19

    @classmethod
    def parse(cls, value: "Kind | int | str") -> "Kind":
        """A kind from its number or its name in any spelling ('struct', 'FUNC_PROTO', 'func-proto')."""
        if isinstance(value, cls):
            return value
        if isinstance(value, int):
            return cls(value)
        key = value.strip().upper().replace("-", "_").replace(" ", "_")
        key = _KIND_ALIASES.get(key, key)
        try:
            return cls[key]
        except KeyError:
            names = ", ".join(k.name.lower() for k in cls if k)
            raise ValueError(f"unknown BTF kind {value!r}; expected one of {names}") from None


_KIND_ALIASES = {"POINTER": "PTR", "FUNCTION": "FUNC", "PROTO": "FUNC_PROTO", "SECTION": "DATASEC"}

#: Kinds that only qualify another type (skipped when resolving a type's "real" shape).
MODIFIER_KINDS = frozenset({Kind.VOLATILE, Kind.CONST, Kind.RESTRICT, Kind.TYPE_TAG})


class IntEncoding(enum.IntFlag):
    """BTF_INT_* encoding bits of an INT."""

    NONE = 0
    SIGNED = 1
    CHAR = 2
    BOOL = 4


class FuncLinkage(enum.IntEnum):
    STATIC = 0
    GLOBAL = 1
    EXTERN = 2


class VarLinkage(enum.IntEnum):
    STATIC = 0
    GLOBAL = 1  # BTF_VAR_GLOBAL_ALLOCATED
    EXTERN = 2  # BTF_VAR_GLOBAL_EXTERN


class FrozenError(AttributeError):
    """Type objects cannot be changed: build a changed copy with ``replace``."""


class _Record:
    """Immutable records with value equality, a readable repr and ``replace``.

    Written out rather than made with dataclasses: a command that only dumps BTF
    would otherwise spend more time generating these classes than parsing vmlinux.
    Subclasses list their fields in ``_fields`` (constructor order); ``_hidden`` are
    left out of equality and hashing (``id``, ``btf``), ``_unshown`` out of the repr.
    """

    __slots__ = ()
    _fields: tuple[str, ...] = ()
    _hidden: frozenset[str] = frozenset(("btf",))
    _unshown: frozenset[str] = frozenset(("btf",))

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        compared = tuple(f for f in cls._fields if f not in cls._hidden)
        cls._key = staticmethod(attrgetter(*compared) if len(compared) > 1 else  # type: ignore[attr-defined]
                                (lambda obj, f=compared[0]: (getattr(obj, f),)) if compared else (lambda obj: ()))
        cls._shown = tuple(f for f in cls._fields if f not in cls._unshown)  # type: ignore[attr-defined]

    def __setattr__(self, name: str, value: Any) -> None:
        raise FrozenError(f"cannot assign to field {name!r}: {type(self).__name__} objects are immutable "
                          f"(use .replace({name}=...) for a changed copy)")

    def __delattr__(self, name: str) -> None:
        raise FrozenError(f"cannot delete field {name!r}: {type(self).__name__} objects are immutable")

    def __eq__(self, other: object) -> bool:
        if other.__class__ is self.__class__:
            return self._key(self) == self._key(other)  # type: ignore[attr-defined]
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._key(self))  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        fields = ", ".join(f"{f}={getattr(self, f)!r}" for f in self._shown)  # type: ignore[attr-defined]
        return f"{type(self).__qualname__}({fields})"

    def __copy__(self) -> Any:
        return self

    def __deepcopy__(self, memo: Any) -> Any:
        return self

    def __reduce__(self) -> Any:
        return _rebuild, (type(self), {f: getattr(self, f) for f in self._fields})

    def replace(self, **changes: Any) -> Any:
        """A copy with some fields changed."""
        unknown = changes.keys() - set(self._fields)
        if unknown:
            raise TypeError(f"{type(self).__name__} has no field {sorted(unknown)[0]!r}")
        values = {f: getattr(self, f) for f in self._fields}
        values.update(changes)
        return type(self)(**values)


def _rebuild(cls: type, values: dict[str, Any]) -> Any:
    return cls(**values)


_set = object.__setattr__


# --- parts of composite types ---------------------------------------------------


class Member(_Record):
    """A struct/union member; ``offset`` is in bits from the start of the struct."""

    __slots__ = ("name", "type_id", "offset", "bitfield_size", "btf")
    _fields = __slots__

    def __init__(self, name: str, type_id: int, offset: int, bitfield_size: int = 0, btf: "BTF | None" = None):
        _set(self, "name", name)
        _set(self, "type_id", type_id)
        _set(self, "offset", offset)
        _set(self, "bitfield_size", bitfield_size)
        _set(self, "btf", btf)

    @property
    def type(self) -> "Type":
        return _bound(self.btf, self)[self.type_id]

    @property
    def byte_offset(self) -> int:
        return self.offset // 8


class EnumValue(_Record):
    __slots__ = ("name", "value")
    _fields = __slots__

    def __init__(self, name: str, value: int):
        _set(self, "name", name)
        _set(self, "value", value)


class Param(_Record):
    """A function prototype parameter; a last parameter of type 0 means '...'."""

    __slots__ = ("name", "type_id", "btf")
    _fields = __slots__

    def __init__(self, name: str, type_id: int, btf: "BTF | None" = None):
        _set(self, "name", name)
        _set(self, "type_id", type_id)
        _set(self, "btf", btf)

    @property
    def type(self) -> "Type":
        return _bound(self.btf, self)[self.type_id]


class VarSecinfo(_Record):
    """A variable placed in a DATASEC: its VAR (or FUNC for externs), offset and size in bytes."""

    __slots__ = ("type_id", "offset", "size", "btf")
    _fields = __slots__

    def __init__(self, type_id: int, offset: int, size: int, btf: "BTF | None" = None):
        _set(self, "type_id", type_id)
        _set(self, "offset", offset)
        _set(self, "size", size)
        _set(self, "btf", btf)

    @property
    def type(self) -> "Type":
        return _bound(self.btf, self)[self.type_id]


def _bound(btf: "BTF | None", obj: object) -> "BTF":
    if btf is None:
        from ..errors import BTFError

        raise BTFError(f"{obj!r} is not part of a BTF yet; add its type to a BTF to resolve references")
    return btf


# --- types -------------------------------------------------------------------------
# Constructors take keywords only; ``id`` and ``btf`` are set when the object comes from a BTF.


class Type(_Record):
    """Base of all kinds."""

    __slots__ = ("name", "id", "btf")
    _fields = ("name", "id", "btf")
    _hidden = frozenset(("id", "btf"))

    kind = Kind.UNKN

    def __init__(self, *, name: str = "", id: int | None = None, btf: "BTF | None" = None):
        _set(self, "name", name)
        _set(self, "id", id)
        _set(self, "btf", btf)

    def _resolve(self, type_id: int) -> "Type":
        return _bound(self.btf, self)[type_id]

    @property
    def size(self) -> int:
        """Size in bytes (typedefs, modifiers and arrays resolved); BTFError for sizeless kinds."""
        return _bound(self.btf, self).sizeof(self._require_id())

    def _require_id(self) -> int:
        if self.id is None:
            from ..errors import BTFError

            raise BTFError(f"{self!r} is not part of a BTF yet")
        return self.id

    @property
    def is_anonymous(self) -> bool:
        return not self.name

    def describe(self) -> str:
        """'struct task_struct', 'typedef u32', 'int' — how C or bpftool would name it."""
        label = _DESCRIBE.get(self.kind, self.kind.name.lower())
        return f"{label} {self.name or '(anon)'}" if label else self.name or "(anon)"

    def resolved(self) -> "Type":
        """This type with typedefs and modifiers (const, volatile, restrict, type tags) skipped."""
        btf = _bound(self.btf, self)
        return btf[btf.resolve(self._require_id())]


_DESCRIBE = {Kind.STRUCT: "struct", Kind.UNION: "union", Kind.ENUM: "enum", Kind.ENUM64: "enum",
             Kind.TYPEDEF: "typedef", Kind.FWD: "fwd", Kind.INT: "", Kind.FLOAT: "", Kind.FUNC: "func",
             Kind.VAR: "var", Kind.DATASEC: "datasec", Kind.UNKN: ""}


class Void(Type):
    __slots__ = ()
    kind = Kind.UNKN

    def __init__(self, *, name: str = "void", id: int | None = None, btf: "BTF | None" = None):
        Type.__init__(self, name=name, id=id, btf=btf)


class Int(Type):
    """``bits`` is nr_bits (0 when building means ``size * 8``); ``offset`` the legacy bitfield offset."""

    __slots__ = ("size", "encoding", "bits", "offset")
    _fields = Type._fields + __slots__
    kind = Kind.INT

    def __init__(self, *, size: int, encoding: IntEncoding = IntEncoding.NONE, bits: int = 0, offset: int = 0,
                 name: str = "", id: int | None = None, btf: "BTF | None" = None):
        Type.__init__(self, name=name, id=id, btf=btf)
        _set(self, "size", size)
        _set(self, "encoding", encoding)
        _set(self, "bits", bits or size * 8)
        _set(self, "offset", offset)

    @property
    def signed(self) -> bool:
        return bool(self.encoding & IntEncoding.SIGNED)

    @property
    def is_char(self) -> bool:
        return bool(self.encoding & IntEncoding.CHAR)

    @property
    def is_bool(self) -> bool:
        return bool(self.encoding & IntEncoding.BOOL)


class Float(Type):
    __slots__ = ("size",)
    _fields = Type._fields + __slots__
    kind = Kind.FLOAT

    def __init__(self, *, size: int, name: str = "", id: int | None = None, btf: "BTF | None" = None):
        Type.__init__(self, name=name, id=id, btf=btf)
        _set(self, "size", size)


class _Ref(Type):
    """Kinds that point at one other type through the ``type`` field."""

    __slots__ = ("type_id",)
    _fields = Type._fields + __slots__

    def __init__(self, *, type_id: int, name: str = "", id: int | None = None, btf: "BTF | None" = None):
        Type.__init__(self, name=name, id=id, btf=btf)
        _set(self, "type_id", type_id)

    @property
    def type(self) -> Type:
        return self._resolve(self.type_id)


class Pointer(_Ref):
    __slots__ = ()
    kind = Kind.PTR


class Typedef(_Ref):
    __slots__ = ()
    kind = Kind.TYPEDEF


class Volatile(_Ref):
    __slots__ = ()
    kind = Kind.VOLATILE


class Const(_Ref):
    __slots__ = ()
    kind = Kind.CONST


class Restrict(_Ref):
    __slots__ = ()
    kind = Kind.RESTRICT


class TypeTag(_Ref):
    """``__attribute__((btf_type_tag("name")))``; the tag text is ``name``."""

    __slots__ = ()
    kind = Kind.TYPE_TAG


class Func(_Ref):
    """A function; ``type_id`` is its FUNC_PROTO."""

    __slots__ = ("linkage",)
    _fields = _Ref._fields + __slots__
    kind = Kind.FUNC

    def __init__(self, *, type_id: int, linkage: FuncLinkage | int = FuncLinkage.STATIC, name: str = "",
                 id: int | None = None, btf: "BTF | None" = None):
        _Ref.__init__(self, type_id=type_id, name=name, id=id, btf=btf)
        _set(self, "linkage", linkage)


class Var(_Ref):
    __slots__ = ("linkage",)
    _fields = _Ref._fields + __slots__
    kind = Kind.VAR

    def __init__(self, *, type_id: int, linkage: VarLinkage | int = VarLinkage.STATIC, name: str = "",
                 id: int | None = None, btf: "BTF | None" = None):
        _Ref.__init__(self, type_id=type_id, name=name, id=id, btf=btf)
        _set(self, "linkage", linkage)


class DeclTag(_Ref):
    """``__attribute__((btf_decl_tag("name")))`` on a type, or on its member/param ``component_idx``."""

    __slots__ = ("component_idx",)
    _fields = _Ref._fields + __slots__
    kind = Kind.DECL_TAG

    def __init__(self, *, type_id: int, component_idx: int = -1, name: str = "", id: int | None = None,
                 btf: "BTF | None" = None):
        _Ref.__init__(self, type_id=type_id, name=name, id=id, btf=btf)
        _set(self, "component_idx", component_idx)


class Array(Type):
    __slots__ = ("type_id", "index_type_id", "nelems")
    _fields = Type._fields + __slots__
    kind = Kind.ARRAY

    def __init__(self, *, type_id: int, index_type_id: int, nelems: int, name: str = "", id: int | None = None,
                 btf: "BTF | None" = None):
        Type.__init__(self, name=name, id=id, btf=btf)
        _set(self, "type_id", type_id)
        _set(self, "index_type_id", index_type_id)
        _set(self, "nelems", nelems)

    @property
    def type(self) -> Type:
        return self._resolve(self.type_id)

    @property
    def index_type(self) -> Type:
        return self._resolve(self.index_type_id)


class Composite(Type):
    """STRUCT or UNION.  ``kflag`` says member offsets carry bitfield sizes (BTF's kind_flag)."""

    __slots__ = ("size", "members", "kflag")
    _fields = Type._fields + __slots__

    def __init__(self, *, size: int, members: tuple[Member, ...] = (), kflag: bool = False, name: str = "",
                 id: int | None = None, btf: "BTF | None" = None):
        Type.__init__(self, name=name, id=id, btf=btf)
        _set(self, "size", size)
        _set(self, "members", members)
        _set(self, "kflag", kflag)

    def __iter__(self) -> Iterator[Member]:
        return iter(self.members)

    def __len__(self) -> int:
        return len(self.members)

    def member(self, name: str) -> Member:
        """The direct member called ``name`` (see BTF.find_member for anonymous members)."""
        for m in self.members:
            if m.name == name:
                return m
        from ..errors import TypeNotFoundError

        raise TypeNotFoundError(f"{self.describe()} has no member {name!r}")


class Struct(Composite):
    __slots__ = ()
    kind = Kind.STRUCT


class Union(Composite):
    __slots__ = ()
    kind = Kind.UNION


class _EnumBase(Type):
    __slots__ = ("size", "values", "signed")
    _fields = Type._fields + __slots__

    def __init__(self, *, size: int = 4, values: tuple[EnumValue, ...] = (), signed: bool = False, name: str = "",
                 id: int | None = None, btf: "BTF | None" = None):
        Type.__init__(self, name=name, id=id, btf=btf)
        _set(self, "size", size)
        _set(self, "values", values)
        _set(self, "signed", signed)  # kind_flag

    def __iter__(self) -> Iterator[EnumValue]:
        return iter(self.values)

    def __len__(self) -> int:
        return len(self.values)

    def value(self, name: str) -> int:
        """The value of enumerator ``name``."""
        for v in self.values:
            if v.name == name:
                return v.value
        from ..errors import TypeNotFoundError

        raise TypeNotFoundError(f"{self.describe()} has no enumerator {name!r}")

    def name_of(self, value: int) -> str | None:
        """The first enumerator with this value, or None."""
        for v in self.values:
            if v.value == value:
                return v.name
        return None

    def as_dict(self) -> dict[str, int]:
        return {v.name: v.value for v in self.values}


class Enum(_EnumBase):
    __slots__ = ()
    kind = Kind.ENUM


class Enum64(_EnumBase):
    __slots__ = ()
    kind = Kind.ENUM64

    def __init__(self, *, size: int = 8, values: tuple[EnumValue, ...] = (), signed: bool = False, name: str = "",
                 id: int | None = None, btf: "BTF | None" = None):
        _EnumBase.__init__(self, size=size, values=values, signed=signed, name=name, id=id, btf=btf)


class Fwd(Type):
    """A forward declaration: ``struct name;`` or, with ``union=True``, ``union name;``."""

    __slots__ = ("union",)
    _fields = Type._fields + __slots__
    kind = Kind.FWD

    def __init__(self, *, union: bool = False, name: str = "", id: int | None = None, btf: "BTF | None" = None):
        Type.__init__(self, name=name, id=id, btf=btf)
        _set(self, "union", union)


class FuncProto(Type):
    __slots__ = ("return_type_id", "params")
    _fields = Type._fields + __slots__
    kind = Kind.FUNC_PROTO

    def __init__(self, *, return_type_id: int = 0, params: tuple[Param, ...] = (), name: str = "",
                 id: int | None = None, btf: "BTF | None" = None):
        Type.__init__(self, name=name, id=id, btf=btf)
        _set(self, "return_type_id", return_type_id)
        _set(self, "params", params)

    @property
    def return_type(self) -> Type:
        return self._resolve(self.return_type_id)

    @property
    def variadic(self) -> bool:
        return bool(self.params) and self.params[-1].type_id == 0 and len(self.params) > 1


class Datasec(Type):
    __slots__ = ("size", "vars")
    _fields = Type._fields + __slots__
    kind = Kind.DATASEC

    def __init__(self, *, size: int = 0, vars: tuple[VarSecinfo, ...] = (), name: str = "", id: int | None = None,
                 btf: "BTF | None" = None):
        Type.__init__(self, name=name, id=id, btf=btf)
        _set(self, "size", size)
        _set(self, "vars", vars)

    def __iter__(self) -> Iterator[VarSecinfo]:
        return iter(self.vars)

    def __len__(self) -> int:
        return len(self.vars)


#: Class per kind, for readers that build objects from raw records.
CLASS_OF_KIND: dict[Kind, type[Type]] = {
    Kind.UNKN: Void, Kind.INT: Int, Kind.PTR: Pointer, Kind.ARRAY: Array, Kind.STRUCT: Struct,
    Kind.UNION: Union, Kind.ENUM: Enum, Kind.FWD: Fwd, Kind.TYPEDEF: Typedef, Kind.VOLATILE: Volatile,
    Kind.CONST: Const, Kind.RESTRICT: Restrict, Kind.FUNC: Func, Kind.FUNC_PROTO: FuncProto, Kind.VAR: Var,
    Kind.DATASEC: Datasec, Kind.FLOAT: Float, Kind.DECL_TAG: DeclTag, Kind.TYPE_TAG: TypeTag,
    Kind.ENUM64: Enum64,
}


def essential_name(name: str) -> str:
    """A CO-RE "flavor" name without its ``___suffix`` (``task_struct___old`` -> ``task_struct``).

    The separator is the last ``___`` with a non-underscore on both sides, as libbpf
    matches it, so ``__u32`` and ``a____b`` keep their names.
    """
    i = name.rfind("___")
    while i > 0:
        if name[i - 1] != "_" and i + 3 < len(name) and name[i + 3] != "_":
            return name[:i]
        i = name.rfind("___", 0, i + 2)
    return name
