"""BTF type objects: one immutable class per kind.

Objects are views a :class:`~pybpf.btf.BTF` builds on demand (``btf[id]``);
they carry their ``id`` and the ``btf`` they came from so references resolve
(``ptr.type``, ``member.type``).  They are frozen: to change BTF, build a new
object (``t.replace(name="x")`` or a constructor) and hand it to
``BTF.replace(id, obj)`` or ``BTF.add(obj)``.  That keeps the raw BTF the one
source of truth, so the fast paths (name index, C dump) never see stale data.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from dataclasses import replace as _replace
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


class _Replaceable:
    __slots__ = ()

    def replace(self, **changes: Any) -> Any:
        """A copy with some fields changed (``dataclasses.replace`` works as well)."""
        return _replace(self, **changes)


# --- parts of composite types ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class Member(_Replaceable):
    """A struct/union member; ``offset`` is in bits from the start of the struct."""

    name: str
    type_id: int
    offset: int
    bitfield_size: int = 0
    btf: "BTF | None" = field(default=None, compare=False, repr=False)

    @property
    def type(self) -> "Type":
        return _bound(self.btf, self)[self.type_id]

    @property
    def byte_offset(self) -> int:
        return self.offset // 8


@dataclass(frozen=True, slots=True)
class EnumValue(_Replaceable):
    name: str
    value: int


@dataclass(frozen=True, slots=True)
class Param(_Replaceable):
    """A function prototype parameter; a last parameter of type 0 means '...'."""

    name: str
    type_id: int
    btf: "BTF | None" = field(default=None, compare=False, repr=False)

    @property
    def type(self) -> "Type":
        return _bound(self.btf, self)[self.type_id]


@dataclass(frozen=True, slots=True)
class VarSecinfo(_Replaceable):
    """A variable placed in a DATASEC: its VAR (or FUNC for externs), offset and size in bytes."""

    type_id: int
    offset: int
    size: int
    btf: "BTF | None" = field(default=None, compare=False, repr=False)

    @property
    def type(self) -> "Type":
        return _bound(self.btf, self)[self.type_id]


def _bound(btf: "BTF | None", obj: object) -> "BTF":
    if btf is None:
        from ..errors import BTFError

        raise BTFError(f"{obj!r} is not part of a BTF yet; add its type to a BTF to resolve references")
    return btf


# --- types -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Type(_Replaceable):
    """Base of all kinds.  ``id`` and ``btf`` are set when the object comes from a BTF."""

    name: str = ""
    id: int | None = field(default=None, compare=False)
    btf: "BTF | None" = field(default=None, compare=False, repr=False)

    kind = Kind.UNKN

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


@dataclass(frozen=True, slots=True, kw_only=True)
class Void(Type):
    name: str = "void"
    kind = Kind.UNKN


@dataclass(frozen=True, slots=True, kw_only=True)
class Int(Type):
    size: int  # type: ignore[assignment]
    encoding: IntEncoding = IntEncoding.NONE
    bits: int = 0  # nr_bits; 0 means size * 8 when building
    offset: int = 0  # bits_offset (legacy bitfield encoding)
    kind = Kind.INT

    def __post_init__(self) -> None:
        if not self.bits:
            object.__setattr__(self, "bits", self.size * 8)

    @property
    def signed(self) -> bool:
        return bool(self.encoding & IntEncoding.SIGNED)

    @property
    def is_char(self) -> bool:
        return bool(self.encoding & IntEncoding.CHAR)

    @property
    def is_bool(self) -> bool:
        return bool(self.encoding & IntEncoding.BOOL)


@dataclass(frozen=True, slots=True, kw_only=True)
class Float(Type):
    size: int  # type: ignore[assignment]
    kind = Kind.FLOAT


@dataclass(frozen=True, slots=True, kw_only=True)
class _Ref(Type):
    """Kinds that point at one other type through the ``type`` field."""

    type_id: int

    @property
    def type(self) -> Type:
        return self._resolve(self.type_id)


@dataclass(frozen=True, slots=True, kw_only=True)
class Pointer(_Ref):
    kind = Kind.PTR


@dataclass(frozen=True, slots=True, kw_only=True)
class Typedef(_Ref):
    kind = Kind.TYPEDEF


@dataclass(frozen=True, slots=True, kw_only=True)
class Volatile(_Ref):
    kind = Kind.VOLATILE


@dataclass(frozen=True, slots=True, kw_only=True)
class Const(_Ref):
    kind = Kind.CONST


@dataclass(frozen=True, slots=True, kw_only=True)
class Restrict(_Ref):
    kind = Kind.RESTRICT


@dataclass(frozen=True, slots=True, kw_only=True)
class TypeTag(_Ref):
    """``__attribute__((btf_type_tag("name")))``; the tag text is ``name``."""

    kind = Kind.TYPE_TAG


@dataclass(frozen=True, slots=True, kw_only=True)
class Func(_Ref):
    """A function; ``type_id`` is its FUNC_PROTO."""

    linkage: FuncLinkage = FuncLinkage.STATIC
    kind = Kind.FUNC


@dataclass(frozen=True, slots=True, kw_only=True)
class Var(_Ref):
    linkage: VarLinkage = VarLinkage.STATIC
    kind = Kind.VAR


@dataclass(frozen=True, slots=True, kw_only=True)
class DeclTag(_Ref):
    """``__attribute__((btf_decl_tag("name")))`` on a type, or on its member/param ``component_idx``."""

    component_idx: int = -1
    kind = Kind.DECL_TAG


@dataclass(frozen=True, slots=True, kw_only=True)
class Array(Type):
    type_id: int
    index_type_id: int
    nelems: int
    kind = Kind.ARRAY

    @property
    def type(self) -> Type:
        return self._resolve(self.type_id)

    @property
    def index_type(self) -> Type:
        return self._resolve(self.index_type_id)


@dataclass(frozen=True, slots=True, kw_only=True)
class Composite(Type):
    """STRUCT or UNION.  ``kflag`` says member offsets carry bitfield sizes (BTF's kind_flag)."""

    size: int  # type: ignore[assignment]
    members: tuple[Member, ...] = ()
    kflag: bool = False

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


@dataclass(frozen=True, slots=True, kw_only=True)
class Struct(Composite):
    kind = Kind.STRUCT


@dataclass(frozen=True, slots=True, kw_only=True)
class Union(Composite):
    kind = Kind.UNION


@dataclass(frozen=True, slots=True, kw_only=True)
class _EnumBase(Type):
    size: int = 4  # type: ignore[assignment]
    values: tuple[EnumValue, ...] = ()
    signed: bool = False  # kind_flag

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


@dataclass(frozen=True, slots=True, kw_only=True)
class Enum(_EnumBase):
    kind = Kind.ENUM


@dataclass(frozen=True, slots=True, kw_only=True)
class Enum64(_EnumBase):
    size: int = 8  # type: ignore[assignment]
    kind = Kind.ENUM64


@dataclass(frozen=True, slots=True, kw_only=True)
class Fwd(Type):
    """A forward declaration: ``struct name;`` or, with ``union=True``, ``union name;``."""

    union: bool = False
    kind = Kind.FWD


@dataclass(frozen=True, slots=True, kw_only=True)
class FuncProto(Type):
    return_type_id: int = 0
    params: tuple[Param, ...] = ()
    kind = Kind.FUNC_PROTO

    @property
    def return_type(self) -> Type:
        return self._resolve(self.return_type_id)

    @property
    def variadic(self) -> bool:
        return bool(self.params) and self.params[-1].type_id == 0 and len(self.params) > 1


@dataclass(frozen=True, slots=True, kw_only=True)
class Datasec(Type):
    size: int = 0  # type: ignore[assignment]
    vars: tuple[VarSecinfo, ...] = ()
    kind = Kind.DATASEC

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
