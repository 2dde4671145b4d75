"""Global data as internal maps, their variables, and ``__kconfig``/``__ksym`` externs.

Each ``.data``/``.rodata``/``.bss`` (and ``.data.*``/``.rodata.*``/``.bss.*``)
section becomes a one-element array map named the way libbpf names it
(object-name prefix + section, 15 characters at most), so ``bpftool map show``
and pybpf agree.  Variables come from the section's BTF DATASEC (types) and
from ELF symbols (offsets, and the layout when there is no BTF).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import ObjectError
from ..btf import BTF, FuncLinkage, IntEncoding, Kind, VarLinkage, essential_name
from .kinds import MapFlags, MapType
from .spec import ExternSpec, MapSpec, VariableSpec

if TYPE_CHECKING:
    from .reader import _ObjectReader

BPF_OBJ_NAME_LEN = 16
STT_OBJECT, STT_SECTION = 1, 3


def internal_map_name(obj_name: str, section: str) -> str:
    """libbpf's internal_map_name: ``hello_bp.rodata``, ``.rodata.str1.1``, ``hello_b.kconfig``."""
    sfx_len = min(max(7, len(section)), BPF_OBJ_NAME_LEN - 1)
    pfx_len = 0 if "." in section[1:] else min(BPF_OBJ_NAME_LEN - sfx_len - 1, len(obj_name))
    name = (obj_name[:pfx_len] + section[:sfx_len])[:BPF_OBJ_NAME_LEN - 1]
    return "".join(c if c.isalnum() or c in "_." else "_" for c in name)


# --- internal maps and variables ---------------------------------------------------


def collect_global_data(r: "_ObjectReader") -> None:
    for sec, kind in sorted(r.data_sections, key=lambda p: p[0].index):
        _data_map(r, sec, kind)
    _kconfig_map(r)


MAX_DATA_SECTION = 1 << 30  # no BPF map value comes close; a bigger .bss is a corrupt header


def _data_map(r: "_ObjectReader", sec, kind: str) -> None:
    name = internal_map_name(r.name, sec.name)
    if sec.size > MAX_DATA_SECTION:
        from ..errors import ELFError

        raise ELFError(f"{r.label}: section {sec.name} claims {sec.size} bytes of global data, more than any BPF "
                       "map can hold", section=sec.name, offset=sec.offset)
    if name in r.spec.maps:
        raise ObjectError(f"{r.label}: section {sec.name} makes map {name!r}, which already exists")
    data = bytearray(sec.size) if kind == "bss" else bytearray(sec.data)
    flags = MapFlags(0)
    if kind == "rodata":
        flags |= MapFlags.RDONLY_PROG
    datasec = None
    if r.btf is not None:
        ids = r.btf.ids_by_name(sec.name, Kind.DATASEC)
        datasec = r.btf[ids[0]] if ids else None
    spec = MapSpec(name, MapType.ARRAY, key_size=4, value_size=sec.size, max_entries=1, flags=flags,
                   section=sec.name, internal=sec.name, data=data, frozen=kind == "rodata",
                   value_type_id=datasec.id if datasec is not None else 0, value_type=datasec)
    r.spec.maps[name] = spec
    r.data_map_by_section[sec.index] = name
    variables = _variables(r, sec, spec, datasec)
    # libbpf: mmap-able (BPF_F_MMAPABLE) when some variable is visible to user space (not static/hidden)
    if any(v.linkage != "static" for v in variables):
        spec.flags = MapFlags(spec.flags | MapFlags.MMAPABLE)
    for v in variables:
        if v.name in r.spec.variables:
            # two statics of the same name in different sections: keep the first, name the second by section
            r.spec.variables[f"{sec.name}:{v.name}"] = v
        else:
            r.spec.variables[v.name] = v


def _variables(r: "_ObjectReader", sec, spec: MapSpec, datasec) -> list[VariableSpec]:
    symbols = {s.name: s for s in r.symbols if s.shndx == sec.index and s.name and s.type != STT_SECTION}
    out: list[VariableSpec] = []
    if datasec is not None:
        btf: BTF = r.btf
        for info in datasec.vars:
            var = btf[info.type_id]
            if var.kind != Kind.VAR:
                continue
            sym = symbols.get(var.name)
            offset = sym.value if sym is not None else info.offset
            size = info.size or (sym.size if sym is not None else 0)
            if offset + size > sec.size:
                raise ObjectError(f"{r.label}: variable {var.name!r} ({size} bytes at {offset}) lies outside "
                                  f"section {sec.name} ({sec.size} bytes)")
            hidden = sym is not None and sym.visibility in (1, 2)
            linkage = "static" if var.linkage == VarLinkage.STATIC or hidden else "global"
            out.append(VariableSpec(var.name, spec, offset, size, type=btf[var.type_id], type_id=var.type_id,
                                    linkage=linkage, btf=btf))
        return out
    for sym in sorted(symbols.values(), key=lambda s: s.value):
        if sym.type != STT_OBJECT:
            continue
        if sym.value + sym.size > sec.size:
            raise ObjectError(f"{r.label}: variable {sym.name!r} ({sym.size} bytes at {sym.value}) lies outside "
                              f"section {sec.name} ({sec.size} bytes)")
        out.append(VariableSpec(sym.name, spec, sym.value, sym.size, linkage="static" if sym.bind == 0 else "global"))
    return out


# --- externs -----------------------------------------------------------------------


def collect_externs(r: "_ObjectReader") -> None:
    """libbpf's bpf_object__collect_externs: classify every undefined global symbol."""
    btf = r.btf
    externs: list[ExternSpec] = []
    for sym in r.symbols:
        if not (sym.shndx == 0 and sym.bind in (1, 2) and sym.type == 0 and sym.name):
            continue
        ext_id = _find_extern_btf(btf, sym.name, r.label) if btf is not None else None
        sec_name = _extern_section(btf, ext_id) if ext_id is not None else None
        if sec_name is None:
            # A forward declaration never defined, or a symbol only inline assembly names: libbpf refuses
            # the object; pybpf keeps it and says why the programs using it cannot load.
            externs.append(ExternSpec(sym.name, "undefined", sym.bind == 2, essential_name=essential_name(sym.name)))
            continue
        t = btf[ext_id]
        ext = ExternSpec(t.name, "", sym.bind == 2, type_id=ext_id, essential_name=essential_name(t.name))
        if sec_name == ".kconfig":
            if t.kind == Kind.FUNC:
                raise ObjectError(f"{r.label}: extern function {t.name!r} cannot live in .kconfig")
            ext.kind = "kconfig"
            ext.size = btf.sizeof(t.type_id)
            ext.align = btf.alignof(t.type_id)
            if ext.size <= 0 or ext.align <= 0:
                raise ObjectError(f"{r.label}: kconfig extern {t.name!r} has no usable size")
            ext.kconfig_type, ext.signed = kconfig_type(btf, t.type_id)
            if not ext.kconfig_type:
                raise ObjectError(f"{r.label}: kconfig extern {t.name!r}: type is unsupported (use bool, "
                                  "enum libbpf_tristate, char, an integer or a char array)")
            ext.type = btf[t.type_id]
        elif sec_name == ".ksyms":
            ext.kind = "ksym"
            ext.is_function = t.kind == Kind.FUNC
            target = btf.resolve(t.type_id)
            ext.type = btf[target]
            ext.typed = target != 0  # `extern const void sym __ksym` is typeless: its address comes from kallsyms
        else:
            raise ObjectError(f"{r.label}: extern {t.name!r} lives in unrecognized section {sec_name!r} "
                              "(use __kconfig or __ksym)")
        externs.append(ext)
    # libbpf orders externs by kind, kconfig ones by (alignment desc, size, name); the .kconfig layout follows
    externs.sort(key=lambda e: ({"kconfig": 0, "ksym": 1}.get(e.kind, 2), -e.align if e.kind == "kconfig" else 0,
                                e.size if e.kind == "kconfig" else 0, e.name))
    off = 0
    for ext in externs:
        if ext.kind == "kconfig":
            ext.offset = (off + ext.align - 1) // ext.align * ext.align
            off = ext.offset + ext.size
        r.spec.externs[ext.name] = ext


def _find_extern_btf(btf: BTF, name: str, label: str) -> int | None:
    for type_id in btf.ids_by_name(name):
        t = btf[type_id]
        if t.kind == Kind.VAR:
            if t.linkage != VarLinkage.EXTERN:
                raise ObjectError(f"{label}: extern {name!r}: BTF VAR is not extern")
            return type_id
        if t.kind == Kind.FUNC:
            if t.linkage != FuncLinkage.EXTERN:
                raise ObjectError(f"{label}: extern {name!r}: BTF FUNC is not extern")
            return type_id
    return None


def _extern_section(btf: BTF, ext_id: int) -> str | None:
    for t in btf.types(Kind.DATASEC):
        if any(info.type_id == ext_id for info in t.vars):
            return t.name
    return None


def kconfig_type(btf: BTF, type_id: int) -> tuple[str, bool]:
    """libbpf's find_kcfg_type: how a Kconfig value is written into the extern."""
    t = btf[btf.resolve(type_id)]
    if t.kind == Kind.INT:
        if t.encoding & IntEncoding.BOOL:
            return ("bool" if t.size == 1 else ""), False
        signed = bool(t.encoding & IntEncoding.SIGNED)
        if t.size == 1:
            return "char", signed
        if t.size < 1 or t.size > 8 or t.size & (t.size - 1):
            return "", signed
        return "int", signed
    if t.kind in (Kind.ENUM, Kind.ENUM64):
        if t.name != "libbpf_tristate" or (t.kind == Kind.ENUM and t.size != 4):
            return "", False
        return "tristate", False
    if t.kind == Kind.ARRAY:
        if t.nelems == 0 or kconfig_type(btf, t.type_id)[0] != "char":
            return "", False
        return "char_array", False
    return "", False


def _kconfig_map(r: "_ObjectReader") -> None:
    kconfig = [e for e in r.spec.externs.values() if e.kind == "kconfig"]
    if not kconfig:
        return
    size = max(e.offset + e.size for e in kconfig)
    name = internal_map_name(r.name, ".kconfig")
    spec = MapSpec(name, MapType.ARRAY, key_size=4, value_size=size, max_entries=1,
                   flags=MapFlags.RDONLY_PROG | MapFlags.MMAPABLE, section=".kconfig", internal=".kconfig",
                   data=bytearray(size), frozen=True)
    r.spec.maps[name] = spec
    r.kconfig_map = name
    for e in kconfig:
        r.spec.variables.setdefault(e.name, VariableSpec(e.name, spec, e.offset, e.size, type=e.type,
                                                         type_id=r.btf[e.type_id].type_id, btf=r.btf))


__all__ = ["collect_externs", "collect_global_data", "internal_map_name", "kconfig_type"]
