"""Map definitions: BTF-defined ``.maps``, legacy ``maps`` (struct bpf_map_def), initial ``values``.

Map order follows libbpf's ``obj->maps`` (legacy, then ``.maps`` in DATASEC
order, then global data, then ``.kconfig``), so map indexes in instruction
placeholders agree with what libbpf would have used.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from ..errors import ELFError, ObjectError
from ..btf import BTF, Kind, VarLinkage
from .kinds import MapFlags, MapType, Pinning, ProgType
from .sections import find_section_def
from .spec import MapSpec

if TYPE_CHECKING:
    from .reader import _ObjectReader

PAGE_SIZE = 4096
_LEGACY_DEF = struct.Struct("<IIIII")
_VALUE_SIZE_FREE = (MapType.RINGBUF, MapType.USER_RINGBUF, MapType.ARENA, MapType.PERF_EVENT_ARRAY)


def collect_maps(r: "_ObjectReader") -> None:
    """Every map of the object, in libbpf's order; also global data and externs."""
    from .globaldata import collect_externs, collect_global_data

    collect_externs(r)
    if r.legacy_maps_section is not None:
        _legacy_maps(r, r.legacy_maps_section)
    if r.maps_section is not None:
        _btf_maps(r, r.maps_section)
    _arena(r)
    collect_global_data(r)
    for sec in r.struct_ops_sections:
        _struct_ops_maps(r, sec)


# --- legacy maps --------------------------------------------------------------


def _legacy_maps(r: "_ObjectReader", sec) -> None:
    """``struct bpf_map_def`` records in SEC("maps") (pre-BTF objects, iproute2 style)."""
    syms = sorted((s for s in r.symbols if s.shndx == sec.index and s.name and s.type != 3), key=lambda s: s.value)
    if not syms:
        raise ObjectError(f"{r.label}: section 'maps' has no symbols; cannot tell where each map definition starts")
    data = bytes(sec.data)
    default_size = sec.size // len(syms)
    for sym in syms:
        size = sym.size or default_size
        if size < _LEGACY_DEF.size or sym.value + size > sec.size:
            raise ELFError(f"{r.label}: legacy map {sym.name!r} definition ({size} bytes at {sym.value}) is "
                           f"smaller than struct bpf_map_def or crosses the section end", section="maps",
                           offset=sec.offset + sym.value)
        mtype, key_size, value_size, max_entries, flags = _LEGACY_DEF.unpack_from(data, sym.value)
        extra = data[sym.value + _LEGACY_DEF.size:sym.value + size]
        spec = MapSpec(sym.name, _map_type(mtype), key_size, value_size, max_entries, flags, section="maps",
                       extra=extra)
        _add_map(r, spec, sec.index, sym.value)


def _map_type(value: int):
    try:
        return MapType(value)
    except ValueError:
        return value


def _add_map(r: "_ObjectReader", spec: MapSpec, shndx: int, offset: int) -> None:
    if spec.name in r.spec.maps:
        raise ObjectError(f"{r.label}: two maps are named {spec.name!r}")
    r.spec.maps[spec.name] = spec
    r.map_by_symbol[(shndx, offset)] = spec.name


# --- BTF-defined maps ------------------------------------------------------------


def _btf_maps(r: "_ObjectReader", sec) -> None:
    btf: BTF | None = r.btf
    if btf is None:
        raise ObjectError(f"{r.label}: section .maps needs BTF to be understood; compile with -g")
    sec_ids = btf.ids_by_name(".maps", Kind.DATASEC)
    if not sec_ids:
        raise ObjectError(f"{r.label}: BTF has no DATASEC '.maps' describing section .maps")
    r.maps_datasec = btf[sec_ids[0]]
    for var_index, info in enumerate(r.maps_datasec.vars):
        var = btf[info.type_id]
        name = var.name
        if not name:
            raise ObjectError(f"{r.label}: .maps variable #{var_index} has no name")
        if var.kind != Kind.VAR:
            raise ObjectError(f"{r.label}: map {name!r}: .maps entry is a {var.kind.name}, not a VAR")
        if var.linkage != VarLinkage.GLOBAL:
            raise ObjectError(f"{r.label}: map {name!r}: unsupported linkage {_linkage(var.linkage)} "
                              "(maps must be global, non-extern variables)")
        offset = _symbol_offset(r, sec.index, name, info.offset)
        if offset + info.size > sec.size:
            raise ELFError(f"{r.label}: map {name!r} ({info.size} bytes at {offset}) lies outside section .maps",
                           section=".maps", offset=sec.offset + offset)
        def_id = btf.resolve(var.type_id)
        def_t = btf[def_id]
        if def_t.kind != Kind.STRUCT:
            raise ObjectError(f"{r.label}: map {name!r}: definition is a {def_t.kind.name}, not a struct")
        if def_t.size > info.size:
            raise ObjectError(f"{r.label}: map {name!r}: definition of {def_t.size} bytes in a {info.size}-byte slot")
        spec = parse_map_definition(r.label, btf, name, def_id, inner=False)
        spec.section = ".maps"
        _add_map(r, spec, sec.index, offset)
        r.btf_map_slots = getattr(r, "btf_map_slots", [])
        r.btf_map_slots.append((spec.name, offset, info.size, def_id))


def _symbol_offset(r: "_ObjectReader", shndx: int, name: str, btf_offset: int) -> int:
    for sym in r.symbols:
        if sym.shndx == shndx and sym.name == name:
            return sym.value
    return btf_offset


def _linkage(value: int) -> str:
    return {0: "static", 1: "global", 2: "extern"}.get(value, f"unknown ({value})")


def parse_map_definition(label: str, btf: BTF, name: str, def_id: int, inner: bool) -> MapSpec:
    """libbpf's parse_btf_map_def: the members of a ``struct { __uint(type, ...); ... }``."""
    t = btf[def_id]
    spec = MapSpec(name, MapType.UNSPEC)
    where = f"{label}: map {name!r}"
    for i, m in enumerate(t.members):
        field = m.name
        if field == "type":
            spec.type = _map_type(_field_int(btf, m, where))
        elif field == "max_entries":
            spec.max_entries = _field_int(btf, m, where)
        elif field == "map_flags":
            spec.flags = _field_int(btf, m, where)
        elif field == "numa_node":
            spec.numa_node = _field_int(btf, m, where)
        elif field == "key_size":
            size = _field_int(btf, m, where)
            _check_conflict(where, "key", spec.key_size, size)
            spec.key_size = size
        elif field == "value_size":
            size = _field_int(btf, m, where)
            _check_conflict(where, "value", spec.value_size, size)
            spec.value_size = size
        elif field in ("key", "value"):
            ptr = btf[m.type_id]
            if ptr.kind != Kind.PTR:
                raise ObjectError(f"{where}: {field} spec is a {ptr.kind.name}, expected a pointer (__type(...))")
            size = btf.sizeof(ptr.type_id)
            if field == "key":
                _check_conflict(where, "key", spec.key_size, size)
                spec.key_size, spec.key_type_id, spec.key_type = size, ptr.type_id, btf[ptr.type_id]
            else:
                _check_conflict(where, "value", spec.value_size, size)
                spec.value_size, spec.value_type_id, spec.value_type = size, ptr.type_id, btf[ptr.type_id]
        elif field == "values":
            _values_member(label, btf, spec, m, i, len(t.members), inner, where)
        elif field == "pinning":
            if inner:
                raise ObjectError(f"{where}: an inner map definition cannot be pinned")
            value = _field_int(btf, m, where)
            if value not in (Pinning.NONE, Pinning.BY_NAME):
                raise ObjectError(f"{where}: invalid pinning value {value} (use LIBBPF_PIN_NONE or LIBBPF_PIN_BY_NAME)")
            spec.pinning = Pinning(value)
        elif field == "map_extra":
            spec.map_extra = _field_long(btf, m, where)
        else:
            raise ObjectError(f"{where}: unknown field {field!r} in the map definition")
    if spec.type == MapType.UNSPEC:
        raise ObjectError(f"{where}: map type isn't specified (__uint(type, BPF_MAP_TYPE_...))")
    if spec.type in (MapType.RINGBUF, MapType.USER_RINGBUF):
        spec.max_entries = ringbuf_size(spec.max_entries)
    if spec.type in _VALUE_SIZE_FREE and spec.value_type is not None:
        # __type(value, struct event) on a ring/perf buffer documents the records; the kernel wants no value.
        spec.dropped_value_type = spec.value_type
        spec.value_type, spec.value_type_id = None, 0
        spec.value_size = 0 if spec.type != MapType.PERF_EVENT_ARRAY else 4
    return spec


def _values_member(label, btf: BTF, spec: MapSpec, m, i: int, count: int, inner: bool, where: str) -> None:
    is_mim = isinstance(spec.type, MapType) and spec.type.is_map_in_map
    is_prog_array = spec.type == MapType.PROG_ARRAY
    if inner:
        raise ObjectError(f"{where}: multi-level inner maps are not supported")
    if i != count - 1:
        raise ObjectError(f"{where}: 'values' must be the last member of the definition")
    if not is_mim and not is_prog_array:
        raise ObjectError(f"{where}: 'values' needs a map-in-map or a prog array")
    _check_conflict(where, "value", spec.value_size, 4)
    spec.value_size = 4
    arr = btf[m.type_id]
    if arr.kind != Kind.ARRAY or arr.nelems:
        raise ObjectError(f"{where}: 'values' is not a zero-sized array")
    ptr = btf[btf.resolve(arr.type_id)]
    if ptr.kind != Kind.PTR:
        raise ObjectError(f"{where}: 'values' holds {ptr.kind.name}, expected pointers")
    target_id = btf.resolve(ptr.type_id)
    target = btf[target_id]
    if is_prog_array:
        if target.kind != Kind.FUNC_PROTO:
            raise ObjectError(f"{where}: prog-array 'values' point to {target.kind.name}, expected functions")
        return
    if target.kind != Kind.STRUCT:
        raise ObjectError(f"{where}: map-in-map 'values' point to {target.kind.name}, expected a map definition")
    spec.inner = parse_map_definition(label, btf, f"{spec.name}.inner", target_id, inner=True)


def _check_conflict(where: str, what: str, old: int, new: int) -> None:
    if old and old != new:
        raise ObjectError(f"{where}: conflicting {what} size {old} != {new}")


def _field_int(btf: BTF, m, where: str) -> int:
    """``__uint(name, N)`` is ``int (*name)[N]``: the number is the array length."""
    t = btf[btf.resolve(m.type_id)]
    if t.kind != Kind.PTR:
        raise ObjectError(f"{where}: attribute {m.name!r} is a {t.kind.name}, expected __uint() (a pointer)")
    arr = btf[t.type_id]
    if arr.kind != Kind.ARRAY:
        raise ObjectError(f"{where}: attribute {m.name!r} points to a {arr.kind.name}, expected an array")
    return arr.nelems


def _field_long(btf: BTF, m, where: str) -> int:
    """``__ulong(name, N)``: an enum with one value (64-bit capable), or an __uint."""
    t = btf[btf.resolve(m.type_id)]
    if t.kind == Kind.PTR:
        return _field_int(btf, m, where)
    if t.kind not in (Kind.ENUM, Kind.ENUM64):
        raise ObjectError(f"{where}: attribute {m.name!r} is a {t.kind.name}, expected __ulong() (an enum)")
    if len(t.values) != 1:
        raise ObjectError(f"{where}: attribute {m.name!r}: invalid __ulong (enum with {len(t.values)} values)")
    return t.values[0].value & 0xFFFFFFFFFFFFFFFF


def ringbuf_size(size: int) -> int:
    """libbpf rounds ring buffer sizes up to a power-of-two multiple of the page size."""
    if size == 0 or (size % PAGE_SIZE == 0 and _pow2(size // PAGE_SIZE)):
        return size
    mul = 1
    while mul * PAGE_SIZE <= 0xFFFFFFFF:
        if mul * PAGE_SIZE > size:
            return mul * PAGE_SIZE
        mul <<= 1
    return size


def _pow2(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


# --- .rel.maps: initial values of prog arrays and map-in-maps ------------------------


def collect_map_relocations(r: "_ObjectReader", rel_sec) -> None:
    """Slots of ``.values = { [1] = &prog, [3] = &inner_map }`` become MapSpec.contents."""
    slots = getattr(r, "btf_map_slots", [])
    if r.btf is None or not slots:
        raise ObjectError(f"{r.label}: relocations for .maps but no BTF-defined maps")
    btf = r.btf
    init: dict[str, dict[int, str]] = {}
    for i, rel in enumerate(r.elf.relocations(rel_sec)):
        where = rel_sec.offset + i * 16
        sym = r.symbols[rel.symbol]
        name = sym.name
        owner = next((s for s in slots if s[1] <= rel.offset and rel.offset + 8 <= s[1] + s[2]), None)
        if owner is None:
            raise ELFError(f"{r.label}: .maps relocation #{i} at {rel.offset} belongs to no map", section=rel_sec.name,
                           offset=where)
        map_name, map_off, _size, def_id = owner
        spec = r.spec.maps[map_name]
        def_t = btf[def_id]
        if not def_t.members or def_t.members[-1].name != "values":
            raise ObjectError(f"{r.label}: map {map_name!r}: relocation outside its 'values' member")
        moff = def_t.members[-1].offset // 8
        rel_off = rel.offset - map_off
        if rel_off < moff or (rel_off - moff) % 8:
            raise ObjectError(f"{r.label}: map {map_name!r}: relocation at {rel_off} is not a 'values' slot")
        index = (rel_off - moff) // 8
        if isinstance(spec.type, MapType) and spec.type.is_map_in_map:
            if r.maps_section is None or sym.shndx != r.maps_section.index:
                raise ObjectError(f"{r.label}: map {map_name!r}: 'values' slot {index} refers to {name!r}, "
                                  "which is not a BTF-defined map")
            if spec.type == MapType.HASH_OF_MAPS and spec.key_size != 4:
                raise ObjectError(f"{r.label}: hash-of-maps {map_name!r} with initial values needs 4-byte keys")
            if name not in r.spec.maps:
                raise ObjectError(f"{r.label}: map {map_name!r}: {name!r} is not a valid map reference")
        elif spec.type == MapType.PROG_ARRAY:
            fn = next((f for f in r.functions if f.name == name), None)
            if fn is None or fn.is_subprogram or fn.section.index != sym.shndx or fn.offset != sym.value:
                raise ObjectError(f"{r.label}: map {map_name!r}: {name!r} is not an entry-point program")
        else:
            raise ObjectError(f"{r.label}: map {map_name!r} of type {spec.type} cannot have initial values")
        init.setdefault(map_name, {})[index] = name
    for map_name, values in init.items():
        r.spec.maps[map_name].contents = [(index, values[index]) for index in sorted(values)]


def _arena(r: "_ObjectReader") -> None:
    """``__arena`` globals live in the (single) ARENA map; references are offsets from where the backend
    places them (libbpf: at the end of the arena)."""
    arenas = [m for m in r.spec.maps.values() if m.type == MapType.ARENA]
    if len(arenas) > 1:
        raise ObjectError(f"{r.label}: maps {arenas[0].name!r} and {arenas[1].name!r} are both ARENA maps; "
                          "only one is supported")
    sec = r.arena_section
    if sec is None:
        return
    if not arenas:
        raise ObjectError(f"{r.label}: section {sec.name} holds __arena globals, but no ARENA map is declared in "
                          "SEC(\".maps\")")
    arenas[0].data = bytearray(sec.data)
    r.data_map_by_section[sec.index] = arenas[0].name


# --- struct_ops ------------------------------------------------------------------------


def _struct_ops_maps(r: "_ObjectReader", sec) -> None:
    """Each variable of SEC(".struct_ops[.link]") is a STRUCT_OPS map (libbpf's init_struct_ops_maps).

    Its bytes are the local struct; the kernel's ``bpf_struct_ops_<name>`` layout,
    and the member indexes programs attach as, come from kernel BTF at load time.
    """
    btf = r.btf
    if btf is None:
        raise ObjectError(f"{r.label}: section {sec.name} needs BTF to be understood; compile with -g")
    ids = btf.ids_by_name(sec.name, Kind.DATASEC)
    if not ids:
        raise ObjectError(f"{r.label}: BTF has no DATASEC {sec.name!r} describing the struct_ops section")
    name = sec.name.lstrip("?")
    for info in btf[ids[0]].vars:
        var = btf[info.type_id]
        type_id = btf.resolve(var.type_id) if var.kind == Kind.VAR else btf.resolve(info.type_id)
        t = btf[type_id]
        if not t.name:
            raise ObjectError(f"{r.label}: struct_ops variable {var.name!r} has an anonymous type")
        if t.kind != Kind.STRUCT:
            raise ObjectError(f"{r.label}: struct_ops variable {var.name!r} is a {t.kind.name}, not a struct")
        offset = _symbol_offset(r, sec.index, var.name, info.offset)
        if offset + t.size > sec.size:
            raise ELFError(f"{r.label}: struct_ops variable {var.name!r} lies beyond the end of {sec.name}",
                           section=sec.name, offset=sec.offset + offset)
        spec = MapSpec(var.name, MapType.STRUCT_OPS, key_size=4, value_size=t.size, max_entries=1,
                       flags=MapFlags.LINK if name == ".struct_ops.link" else 0, section=sec.name,
                       value_type=t, value_type_id=type_id, data=bytearray(sec.data[offset:offset + t.size]),
                       autocreate=not sec.name.startswith("?"), struct_ops={})
        _add_map(r, spec, sec.index, offset)
        r.struct_ops_slots = getattr(r, "struct_ops_slots", [])
        r.struct_ops_slots.append((sec.index, offset, t.size, spec))


def collect_struct_ops_relocations(r: "_ObjectReader", rel_sec, target) -> None:
    """``.ops = { .init = (void *)my_init }``: which program implements which member."""
    btf = r.btf
    slots = [s for s in getattr(r, "struct_ops_slots", []) if s[0] == target.index]
    for i, rel in enumerate(r.elf.relocations(rel_sec)):
        where = rel_sec.offset + i * 16
        sym = r.symbols[rel.symbol]
        owner = next((s for s in slots if s[1] <= rel.offset < s[1] + s[2]), None)
        if owner is None:
            raise ELFError(f"{r.label}: struct_ops relocation #{i} at {rel.offset} belongs to no struct_ops map",
                           section=rel_sec.name, offset=where)
        spec = owner[3]
        moff = rel.offset - owner[1]
        member = next((m for m in spec.value_type.members if m.offset == moff * 8), None)
        if member is None:
            raise ObjectError(f"{r.label}: struct_ops map {spec.name!r}: no member at offset {moff}")
        ptr = btf[btf.resolve(member.type_id)]
        if ptr.kind != Kind.PTR or btf[btf.resolve(ptr.type_id)].kind != Kind.FUNC_PROTO:
            raise ObjectError(f"{r.label}: struct_ops map {spec.name!r}: member {member.name!r} is not a function "
                              "pointer")
        if sym.value % 8:
            raise ELFError(f"{r.label}: struct_ops relocation #{i}: program offset {sym.value} is not an "
                           "instruction boundary", section=rel_sec.name, offset=where)
        fn = r._function_at(sym.shndx, sym.value // 8) if sym.shndx in r.functions_by_section else None
        if fn is None or fn.is_subprogram:
            raise ObjectError(f"{r.label}: struct_ops map {spec.name!r}: member {member.name!r} points to no "
                              "program")
        prog_def = find_section_def(fn.section.name.lstrip("?"))
        if prog_def is None or prog_def.prog_type != ProgType.STRUCT_OPS:
            raise ObjectError(f"{r.label}: struct_ops map {spec.name!r}: program {fn.name!r} for member "
                              f"{member.name!r} is not a SEC(\"struct_ops/...\") program")
        spec.struct_ops[member.name] = fn.name


__all__ = ["collect_maps", "collect_map_relocations", "collect_struct_ops_relocations", "parse_map_definition",
           "ringbuf_size"]
