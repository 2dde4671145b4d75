"""Rewrites that make an object's BTF loadable: sanitizing for older kernels, fixing DATASECs.

Both are pure BTF -> BTF functions (the input is left as it was); the kernel
layer probes what the running kernel supports (``probe_btf`` builds the tiny BTF
blobs to try loading) and calls them before BPF_BTF_LOAD.

- ``sanitize(btf, features)`` replaces kinds an older kernel lacks, the way libbpf
  does, keeping every type id stable so map and program references stay valid:
  VAR -> INT, DATASEC -> STRUCT (dots in the name become underscores), FLOAT ->
  empty STRUCT of the same size, DECL_TAG -> INT, TYPE_TAG -> CONST, ENUM64 ->
  UNION of 1-byte placeholder members (and signed ENUMs lose the kind flag),
  FUNC -> TYPEDEF and FUNC_PROTO -> ENUM without BTF functions, global FUNCs ->
  static without global-function support.
- ``fixup_datasecs(btf, elf)`` fills in what clang leaves zero: DATASEC sizes from
  the ELF section sizes and variable offsets from the ELF symbols, marks hidden
  globals static, and sorts variables by offset, as libbpf does at open time.
"""

from __future__ import annotations

from typing import Any

from ..errors import BTFError
from .btf import BTF
from .types import (
    _Record,
    Const,
    Datasec,
    Enum,
    EnumValue,
    FuncLinkage,
    Int,
    IntEncoding,
    Kind,
    Member,
    Struct,
    Typedef,
    Union,
    VarLinkage,
    VarSecinfo,
)

KCONFIG_SECTION = ".kconfig"
KSYMS_SECTION = ".ksyms"


class BTFFeatures(_Record):
    """Which BTF kinds the target kernel accepts (all of them by default)."""

    __slots__ = ("func", "func_global", "datasec", "float", "decl_tag", "type_tag", "enum64")
    _fields = __slots__
    _hidden = _unshown = frozenset()

    def __init__(self, *, func: bool = True, func_global: bool = True, datasec: bool = True, float: bool = True,
                 decl_tag: bool = True, type_tag: bool = True, enum64: bool = True):
        for name, value in (("func", func),  # FUNC and FUNC_PROTO (4.20+)
                            ("func_global", func_global),  # FUNC with global linkage (5.6+)
                            ("datasec", datasec),  # VAR and DATASEC (5.2+)
                            ("float", float),  # FLOAT (5.13+)
                            ("decl_tag", decl_tag),  # DECL_TAG (5.16+)
                            ("type_tag", type_tag),  # TYPE_TAG (5.17+)
                            ("enum64", enum64)):  # ENUM64 and signed ENUMs (6.0+)
            object.__setattr__(self, name, value)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return cls._fields

    @classmethod
    def none(cls) -> "BTFFeatures":
        """A kernel with plain BTF only (what sanitizing for the oldest BTF-capable kernel assumes)."""
        return cls(**{name: False for name in cls.names()})

    def missing(self) -> list[str]:
        return [name for name in self.names() if not getattr(self, name)]


def needs_sanitizing(btf: BTF, features: BTFFeatures) -> bool:
    """Whether ``sanitize`` would change anything (so the original can be loaded as is)."""
    kinds = set(btf._kinds())
    f = features
    return bool(
        (not f.datasec and kinds & {Kind.VAR, Kind.DATASEC})
        or (not f.decl_tag and Kind.DECL_TAG in kinds)
        or (not f.float and Kind.FLOAT in kinds)
        or (not f.type_tag and Kind.TYPE_TAG in kinds)
        or (not f.enum64 and (Kind.ENUM64 in kinds or any(t.signed for t in btf.types(Kind.ENUM))))  # type: ignore[attr-defined]
        or (not f.func and kinds & {Kind.FUNC, Kind.FUNC_PROTO})
        or (not f.func_global and any(t.linkage != FuncLinkage.STATIC for t in btf.types(Kind.FUNC)))  # type: ignore[attr-defined]
    )


def sanitize(btf: BTF, features: BTFFeatures) -> BTF:
    """A copy of ``btf`` with the kinds ``features`` lacks replaced; type ids are unchanged."""
    out = btf.copy()
    if not needs_sanitizing(btf, features):
        return out
    f = features
    placeholder: int | None = None
    for t in list(btf):
        kind = t.kind
        new: Any = None
        if (kind == Kind.VAR and not f.datasec) or (kind == Kind.DECL_TAG and not f.decl_tag):
            # 1 byte is the safe size: a bigger INT could exceed a small variable's storage
            new = Int(name=t.name, size=1, encoding=IntEncoding.NONE, bits=8)
        elif kind == Kind.DATASEC and not f.datasec:
            members = tuple(Member(btf.name_of(v.type_id), v.type_id, v.offset * 8) for v in t.vars)  # type: ignore[attr-defined]
            new = Struct(name=t.name.replace(".", "_"), size=t.size, members=members)  # type: ignore[attr-defined]
        elif kind == Kind.FUNC_PROTO and not f.func:
            # a prototype becomes an enum whose "values" are the parameter type ids (same record shape)
            values = tuple(EnumValue(p.name, p.type_id) for p in t.params)  # type: ignore[attr-defined]
            new = Enum(name=t.name, size=4, values=values)
        elif kind == Kind.FUNC and not f.func:
            new = Typedef(name=t.name, type_id=t.type_id)  # type: ignore[attr-defined]
        elif kind == Kind.FUNC and not f.func_global and t.linkage != FuncLinkage.STATIC:  # type: ignore[attr-defined]
            new = t.replace(linkage=FuncLinkage.STATIC)
        elif kind == Kind.FLOAT and not f.float:
            # an anonymous empty struct of the same size ("float" is not a valid struct name)
            new = Struct(name="", size=t.size)  # type: ignore[attr-defined]
        elif kind == Kind.TYPE_TAG and not f.type_tag:
            new = Const(type_id=t.type_id)  # type: ignore[attr-defined]
        elif kind == Kind.ENUM and not f.enum64 and t.signed:  # type: ignore[attr-defined]
            new = t.replace(signed=False)
        elif kind == Kind.ENUM64 and not f.enum64:
            if placeholder is None:
                placeholder = out.add(Int(name="enum64_placeholder", size=1))
            members = tuple(Member(v.name, placeholder, 0) for v in t.values)  # type: ignore[attr-defined]
            new = Union(name=t.name, size=t.size, members=members)  # type: ignore[attr-defined]
        if new is not None:
            out.replace(t.id, new)  # type: ignore[arg-type]
    return out


def fixup_datasecs(btf: BTF, elf: Any) -> BTF:
    """A copy of ``btf`` with DATASEC sizes and variable offsets taken from the ELF file.

    ``elf`` is the :class:`~pybpf.elf.ELFFile` the BTF came from.  Raises BTFError when
    a section or a global variable's symbol is missing, naming both.
    """
    out = btf.copy()
    section_sizes = {s.name: s.size for s in elf.sections}
    symbols: dict[str, Any] = {}
    local_symbols: dict[tuple[str, int], list[Any]] = {}
    for sym in elf.symbols:
        if sym.type != 1 or not sym.name:  # STT_OBJECT
            continue
        if sym.bind in (1, 2):  # STB_GLOBAL, STB_WEAK: the first wins, as in libbpf
            symbols.setdefault(sym.name, sym)
        else:
            local_symbols.setdefault((sym.name, sym.shndx), []).append(sym)
    for sec in list(btf.types(Kind.DATASEC)):
        assert isinstance(sec, Datasec)
        if sec.name in (KCONFIG_SECTION, KSYMS_SECTION):
            out.replace(sec.id, sec.replace(vars=tuple(sorted(sec.vars, key=lambda v: v.offset))))  # type: ignore[arg-type]
            continue
        size = sec.size
        fix_offsets = size == 0
        if fix_offsets:
            size = section_sizes.get(sec.name, 0)
            if not size:
                raise BTFError(f"{btf.name}: DATASEC {sec.name!r} has size 0 and the ELF file has no non-empty "
                               f"section {sec.name!r} to take it from", section="BTF types",
                               offset=btf._byte_offset(sec.id))  # type: ignore[arg-type]
        shndx = next((s.index for s in elf.sections if s.name == sec.name), None)
        new_vars = []
        for v in sec.vars:
            var = btf[v.type_id]
            if var.kind != Kind.VAR:
                raise BTFError(f"{btf.name}: DATASEC {sec.name!r} lists {var.describe()}, which is not a VAR")
            offset = v.offset
            linkage = var.linkage  # type: ignore[attr-defined]
            if linkage in (VarLinkage.GLOBAL, int(VarLinkage.GLOBAL)):
                sym = symbols.get(var.name)
                if sym is None:
                    raise BTFError(f"{btf.name}: DATASEC {sec.name!r}: no ELF symbol for global variable "
                                   f"{var.name!r}")
                if fix_offsets:
                    offset = sym.value
                if sym.visibility in (1, 2):  # STV_INTERNAL, STV_HIDDEN: global in name only
                    out.replace(var.id, var.replace(linkage=VarLinkage.STATIC))  # type: ignore[arg-type]
            elif linkage == VarLinkage.STATIC and fix_offsets and shndx is not None:
                # libbpf leaves statics at 0; when the object has exactly one local symbol for
                # the variable in that section, its value is the offset
                candidates = local_symbols.get((var.name, shndx), [])
                if len(candidates) == 1:
                    offset = candidates[0].value
            new_vars.append(VarSecinfo(v.type_id, offset, v.size))
        new_vars.sort(key=lambda v: v.offset)
        out.replace(sec.id, Datasec(name=sec.name, size=size, vars=tuple(new_vars)))  # type: ignore[arg-type]
    return out


def probe_btf(feature: str) -> bytes:
    """Tiny raw BTF using one feature, for the kernel layer to try loading (BPF_BTF_LOAD).

    ``feature`` is a BTFFeatures field name, or "btf" for the plainest BTF there is.
    """
    from .types import DeclTag, Enum64, Float, Func, FuncProto, Param, Pointer, TypeTag, Var

    b = BTF.new(name=f"probe {feature}")
    i32 = b.add(Int(name="int", size=4, encoding=IntEncoding.SIGNED))
    if feature in ("func", "func_global"):
        proto = b.add(FuncProto(return_type_id=0, params=(Param("a", i32),)))
        b.add(Func(name="x", type_id=proto, linkage=FuncLinkage.GLOBAL if feature == "func_global" else FuncLinkage.STATIC))
    elif feature == "datasec":
        var = b.add(Var(name="x", type_id=i32, linkage=VarLinkage.STATIC))
        b.add(Datasec(name=".data", size=4, vars=(VarSecinfo(var, 0, 4),)))
    elif feature == "float":
        b.add(Float(name="float", size=4))
    elif feature == "decl_tag":
        var = b.add(Var(name="x", type_id=i32, linkage=VarLinkage.STATIC))
        b.add(DeclTag(name="tag", type_id=var, component_idx=-1))
    elif feature == "type_tag":
        tag = b.add(TypeTag(name="tag", type_id=i32))
        b.add(Pointer(type_id=tag))
    elif feature == "enum64":
        b.add(Enum64(name="enum64", size=8))
    elif feature != "btf":
        names = ", ".join(("btf",) + BTFFeatures.names())
        raise ValueError(f"unknown BTF feature {feature!r}; expected one of {names}")
    return b.to_bytes()
