"""CO-RE: rewrite field offsets, sizes, existence checks, type ids and enum values for the target kernel.

A faithful port of the semantics of libbpf's relo_core.c (candidate search by
essential name, spec parsing and matching, compatibility and ``matches``
rules, bitfield arithmetic, ambiguity checks, instruction poisoning), so the
numbers pybpf writes into instructions are the ones libbpf writes.

Relocations are resolved once per .BTF.ext record, in file order, with one
candidate cache per local type that is pruned as matches are found - the
order and pruning libbpf uses - and the results are then written into every
program that contains a copy of the instruction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable

from ..errors import BPFError, CORERelocationError
from ..isa import CALL, LD_IMM64, Instruction, Program
from ..isa.opcodes import CLASS_MASK, MODE_MASK, SOURCE_MASK, Class, Size
from ..btf import BTF, IntEncoding, Kind, essential_name, kernel_btf, kernel_modules_with_btf, module_btf
from ..btf.ext import CoreReloKind
from .spec import CORE_POISON_IMM

if TYPE_CHECKING:
    from .spec import ObjectSpec, ProgramSpec

SPEC_MAX_LEN = 64
_MASK64 = (1 << 64) - 1


# The relocation kinds are .BTF.ext's enum bpf_core_relo_kind; the resolver keeps its own name for it.
COREKind = CoreReloKind


@dataclass
class CORERelocation:
    """One CO-RE record in a (linked) program; ``result`` is set by :func:`apply_core`."""

    slot: int  # in the linked program
    type_id: int  # local BTF type id
    access: str  # "0:1:2"
    kind: int
    function: str = ""  # the function (program or subprogram) the instruction belongs to
    section: str = ""  # ELF section of that function
    section_offset: int = 0  # byte offset of the instruction in its ELF section
    function_insn: int = 0  # instruction (slot) index within its function: libbpf's "insn #N"
    result: "CORERelocationResult | None" = None


@dataclass
class CORERelocationResult:
    """What libbpf's debug log says about one relocation, as data."""

    section: str
    index: int  # relo #N within the section (libbpf's numbering)
    insn: int  # instruction index within the section (insn_off / 8)
    kind: COREKind
    local: str  # "[7] struct task_struct"
    access: str  # the access string
    local_spec: str = ""  # "struct task_struct.real_parent (0:95 @ offset 1280)"
    target_spec: str = ""
    target_btf: str = ""
    orig_value: int = 0
    new_value: int = 0
    poisoned: bool = False
    reason: str = ""  # why it was poisoned or failed
    error: str = ""  # set when the relocation cannot be applied at all (libbpf fails the load)
    candidates: int = 0
    function: str = ""  # function containing the instruction (libbpf's "prog 'x'")
    function_insn: int = 0  # its index within that function (libbpf's "insn #N")
    orig_size: int = 0
    new_size: int = 0
    validate: bool = True
    fail_memsz_adjust: bool = False
    programs: list[str] = field(default_factory=list)

    def describe(self) -> str:
        """One line in C terms, for messages and ``pybpf object core``."""
        what = self.local_spec or self.local
        if self.error:
            return f"{self.kind.label} {what}: error: {self.error}"
        if self.poisoned:
            return f"{self.kind.label} {what}: poisoned ({self.reason})"
        return f"{self.kind.label} {what}: {self.orig_value} -> {self.new_value}"


class _Fail(Exception):
    """A relocation error (libbpf returns -EINVAL/-E2BIG/-EOPNOTSUPP)."""


class _Poison(Exception):
    """libbpf's -EUCLEAN: the instruction must be poisoned."""


# --- specs ----------------------------------------------------------------------


@dataclass
class _Accessor:
    type_id: int
    idx: int
    name: str | None


@dataclass
class _Spec:
    btf: BTF
    root_type_id: int
    kind: COREKind
    spec: list[_Accessor] = field(default_factory=list)
    raw_spec: list[int] = field(default_factory=list)
    bit_offset: int = 0


_ACCESS = re.compile(r"^\d+(?::\d+)*$")
_COMPOSITE = (Kind.STRUCT, Kind.UNION)
_ENUMS = (Kind.ENUM, Kind.ENUM64)


def _kind_compat(k1: Kind, k2: Kind) -> bool:
    return k1 == k2 or (k1 in _ENUMS and k2 in _ENUMS)


def _name(t) -> str:
    """libbpf's view of a name: void has none."""
    return "" if t.kind == Kind.UNKN else t.name


def _size(btf: BTF, type_id: int) -> int:
    try:
        return btf.sizeof(type_id)
    except BPFError as exc:  # no size, or a loop
        raise _Fail(f"cannot size type [{type_id}]: {exc}") from None


def _is_flex_arr(btf: BTF, acc: _Accessor | None, nelems: int) -> bool:
    if acc is None or not acc.name or nelems > 0:
        return False
    return acc.idx == len(btf[acc.type_id].members) - 1


def parse_spec(btf: BTF, type_id: int, access: str, kind: COREKind) -> _Spec:
    """libbpf's bpf_core_parse_spec: access string -> high- and low-level accessors + bit offset."""
    if not access or access[0] == ":":
        raise _Fail(f"invalid access string {access!r}")
    spec = _Spec(btf, type_id, kind)
    if kind.is_type:
        if access != "0":
            raise _Fail(f"type-based relocation with access string {access!r} (expected '0')")
        return spec
    if not _ACCESS.match(access):
        raise _Fail(f"invalid access string {access!r}")
    raw = [int(x) for x in access.split(":")]
    if len(raw) > SPEC_MAX_LEN:
        raise _Fail(f"access string {access!r} is too long")
    spec.raw_spec = raw
    id_ = btf.resolve(type_id)
    t = btf[id_]
    spec.spec.append(_Accessor(id_, raw[0], None))
    if kind.is_enumval:
        if t.kind not in _ENUMS or len(raw) > 1 or raw[0] >= len(t.values):
            raise _Fail(f"enum value relocation {access!r} against {t.describe()}")
        spec.spec[0].name = t.values[raw[0]].name
        return spec
    if not kind.is_field:
        raise _Fail(f"unknown relocation kind {int(kind)}")
    spec.bit_offset = raw[0] * _size(btf, id_) * 8
    for access_idx in raw[1:]:
        id_ = btf.resolve(id_)
        t = btf[id_]
        if t.kind in _COMPOSITE:
            if access_idx >= len(t.members):
                raise _Fail(f"member #{access_idx} of {t.describe()} does not exist")
            m = t.members[access_idx]
            spec.bit_offset += m.offset
            if m.name:
                spec.spec.append(_Accessor(id_, access_idx, m.name))
            id_ = m.type_id
        elif t.kind == Kind.ARRAY:
            elem = btf.resolve(t.type_id)
            flex = _is_flex_arr(btf, spec.spec[-1] if spec.spec else None, t.nelems)
            if not flex and access_idx >= t.nelems:
                raise _Fail(f"index {access_idx} out of bounds of an array of {t.nelems}")
            spec.spec.append(_Accessor(elem, access_idx, None))
            spec.bit_offset += access_idx * _size(btf, elem) * 8
            id_ = elem
        else:
            raise _Fail(f"access {access!r} of [{type_id}] steps into {t.kind.name} [{id_}]")
    return spec


def format_spec(spec: _Spec) -> str:
    """libbpf's bpf_core_format_spec, without the ``<kind>`` prefix."""
    btf = spec.btf
    t = btf[spec.root_type_id]
    out = [f"[{spec.root_type_id}] {t.kind.name.lower()} {_name(t) or '<anon>'}"]
    if spec.kind.is_type:
        return out[0]
    if spec.kind.is_enumval:
        et = btf[btf.resolve(spec.root_type_id)]
        if spec.raw_spec:
            e = et.values[spec.raw_spec[0]]
            out.append(f"::{e.name} = {e.value}")
        return "".join(out)
    for i, acc in enumerate(spec.spec):
        if acc.name:
            out.append(f".{acc.name}")
        elif i > 0 or acc.idx > 0:
            out.append(f"[{acc.idx}]")
    raw = ":".join(str(x) for x in spec.raw_spec)
    if spec.bit_offset % 8:
        out.append(f" ({raw} @ offset {spec.bit_offset // 8}.{spec.bit_offset % 8})")
    else:
        out.append(f" ({raw} @ offset {spec.bit_offset // 8})")
    return "".join(out)


def c_access(spec: _Spec) -> str:
    """The access in C terms: ``struct task_struct.real_parent (0:95 @ offset 1280)``."""
    text = format_spec(spec)
    return text[text.index("] ") + 2:]


# --- compatibility ------------------------------------------------------------------


def types_are_compat(local: BTF, local_id: int, targ: BTF, targ_id: int, level: int = 32) -> int:
    """libbpf's __bpf_core_types_are_compat (1 compatible, 0 not; _Fail on loops)."""
    if not _kind_compat(local.kind_of(local_id), targ.kind_of(targ_id)):
        return 0
    depth = 32
    while True:
        depth -= 1
        if depth < 0:
            raise _Fail("type chain too deep while checking compatibility")
        local_id = local.resolve(local_id)
        targ_id = targ.resolve(targ_id)
        lt, tt = local[local_id], targ[targ_id]
        if not _kind_compat(lt.kind, tt.kind):
            return 0
        k = lt.kind
        if k in (Kind.UNKN, Kind.STRUCT, Kind.UNION, Kind.ENUM, Kind.FWD, Kind.ENUM64):
            return 1
        if k == Kind.INT:
            return int(lt.offset == 0 and tt.offset == 0)
        if k in (Kind.PTR, Kind.ARRAY):
            local_id, targ_id = lt.type_id, tt.type_id
            continue
        if k == Kind.FUNC_PROTO:
            if len(lt.params) != len(tt.params):
                return 0
            for lp, tp in zip(lt.params, tt.params):
                if level <= 0:
                    raise _Fail("function prototypes nested too deep")
                r = types_are_compat(local, local.resolve(lp.type_id), targ, targ.resolve(tp.type_id), level - 1)
                if r <= 0:
                    return r
            local_id = local.resolve(lt.return_type_id)
            targ_id = targ.resolve(tt.return_type_id)
            continue
        return 0


def _fields_are_compat(local: BTF, local_id: int, targ: BTF, targ_id: int) -> int:
    for _ in range(64):
        local_id = local.resolve(local_id)
        targ_id = targ.resolve(targ_id)
        lt, tt = local[local_id], targ[targ_id]
        if lt.kind in _COMPOSITE and tt.kind in _COMPOSITE:
            return 1
        if not _kind_compat(lt.kind, tt.kind):
            return 0
        k = lt.kind
        if k in (Kind.PTR, Kind.FLOAT):
            return 1
        if k in (Kind.FWD, Kind.ENUM, Kind.ENUM64):
            ln, tn = essential_name(_name(lt)), essential_name(_name(tt))
            return int(not ln or not tn or ln == tn)
        if k == Kind.INT:
            return int(lt.offset == 0 and tt.offset == 0)
        if k == Kind.ARRAY:
            local_id, targ_id = lt.type_id, tt.type_id
            continue
        return 0
    raise _Fail("array nesting too deep while checking field compatibility")


def _names_match(local_name: str, targ_name: str) -> bool:
    if not targ_name:
        return not local_name
    return essential_name(local_name) == essential_name(targ_name)


def types_match(local: BTF, local_id: int, targ: BTF, targ_id: int, behind_ptr: bool = False,
                level: int = 32) -> int:
    """libbpf's __bpf_core_types_match (bpf_core_type_matches())."""
    if level <= 0:
        raise _Fail("types nested too deep while matching")
    depth = 32
    while True:
        depth -= 1
        if depth < 0:
            raise _Fail("type chain too deep while matching")
        local_id = local.resolve(local_id)
        targ_id = targ.resolve(targ_id)
        lt, tt = local[local_id], targ[targ_id]
        if not _names_match(_name(lt), _name(tt)):
            return 0
        lk, tk = lt.kind, tt.kind
        if lk == Kind.UNKN:
            return int(lk == tk)
        if lk == Kind.FWD:
            if behind_ptr:
                if lk == tk:
                    return int(lt.union == tt.union)
                return int((tk == Kind.STRUCT and not lt.union) or (tk == Kind.UNION and lt.union))
            if lk != tk:
                return 0
            return int(lt.union == tt.union)
        if lk in _ENUMS:
            if tk not in _ENUMS:
                return 0
            return _enums_match(lt, tt)
        if lk in _COMPOSITE:
            if behind_ptr:
                if lk == tk:
                    return 1
                if tk != Kind.FWD:
                    return 0
                return int((lk == Kind.UNION) == tt.union)
            if lk != tk:
                return 0
            return _composites_match(local, lt, targ, tt, behind_ptr, level)
        if lk == Kind.INT:
            if lk != tk:
                return 0
            return int(lt.size == tt.size and (lt.encoding & IntEncoding.SIGNED) == (tt.encoding & IntEncoding.SIGNED))
        if lk == Kind.PTR:
            if lk != tk:
                return 0
            behind_ptr = True
            local_id, targ_id = lt.type_id, tt.type_id
            continue
        if lk == Kind.ARRAY:
            if lk != tk or lt.nelems != tt.nelems:
                return 0
            local_id, targ_id = lt.type_id, tt.type_id
            continue
        if lk == Kind.FUNC_PROTO:
            if lk != tk or len(lt.params) != len(tt.params):
                return 0
            for lp, tp in zip(lt.params, tt.params):
                r = types_match(local, lp.type_id, targ, tp.type_id, behind_ptr, level - 1)
                if r <= 0:
                    return r
            local_id, targ_id = lt.return_type_id, tt.return_type_id
            continue
        return 0


def _enums_match(lt, tt) -> int:
    if lt.size != tt.size or len(lt.values) > len(tt.values):
        return 0
    for lv in lt.values:
        if not any(_names_match(lv.name, tv.name) for tv in tt.values):
            return 0
    return 1


def _composites_match(local: BTF, lt, targ: BTF, tt, behind_ptr: bool, level: int) -> int:
    if len(lt.members) > len(tt.members):
        return 0
    for lm in lt.members:
        for tm in tt.members:
            if not _names_match(lm.name, tm.name):
                continue
            if types_match(local, lm.type_id, targ, tm.type_id, behind_ptr, level - 1) > 0:
                break
        else:
            return 0
    return 1


# --- matching a local spec against a candidate ----------------------------------------


def _match_member(local: BTF, local_acc: _Accessor, targ: BTF, targ_id: int, spec: _Spec) -> tuple[int, int]:
    targ_id = targ.resolve(targ_id)
    tt = targ[targ_id]
    if tt.kind not in _COMPOSITE:
        return 0, 0
    local_member = local[local_acc.type_id].members[local_acc.idx]
    for i, m in enumerate(tt.members):
        if len(spec.raw_spec) == SPEC_MAX_LEN:
            raise _Fail("struct/union/array nesting too deep")
        spec.bit_offset += m.offset
        spec.raw_spec.append(i)
        if not m.name:
            found, next_id = _match_member(local, local_acc, targ, m.type_id, spec)
            if found:
                return found, next_id
        elif m.name == local_member.name:
            spec.spec.append(_Accessor(targ_id, i, m.name))
            found = _fields_are_compat(local, local_member.type_id, targ, m.type_id)
            if not found:
                spec.spec.pop()
            return found, m.type_id
        spec.bit_offset -= m.offset
        spec.raw_spec.pop()
    return 0, 0


def _spec_match(local_spec: _Spec, targ: BTF, targ_id: int) -> tuple[int, _Spec]:
    targ_spec = _Spec(targ, targ_id, local_spec.kind)
    kind = local_spec.kind
    if kind.is_type:
        if kind == COREKind.TYPE_MATCHES:
            return types_match(local_spec.btf, local_spec.root_type_id, targ, targ_id), targ_spec
        return types_are_compat(local_spec.btf, local_spec.root_type_id, targ, targ_id), targ_spec
    local_acc = local_spec.spec[0]
    if kind.is_enumval:
        targ_id = targ.resolve(targ_id)
        tt = targ[targ_id]
        if tt.kind not in _ENUMS:
            return 0, targ_spec
        want = essential_name(local_acc.name or "")
        for i, v in enumerate(tt.values):
            if essential_name(v.name) == want:
                targ_spec.spec.append(_Accessor(targ_id, i, v.name))
                targ_spec.raw_spec.append(i)
                return 1, targ_spec
        return 0, targ_spec
    if not kind.is_field:
        raise _Fail(f"unknown relocation kind {int(kind)}")
    for i, acc in enumerate(local_spec.spec):
        targ_id = targ.resolve(targ_id)
        tt = targ[targ_id]
        if acc.name:
            matched, targ_id = _match_member(local_spec.btf, acc, targ, targ_id, targ_spec)
            if matched <= 0:
                return matched, targ_spec
        else:
            if i > 0:
                if tt.kind != Kind.ARRAY:
                    return 0, targ_spec
                flex = _is_flex_arr(targ, targ_spec.spec[-1] if targ_spec.spec else None, tt.nelems)
                if not flex and acc.idx >= tt.nelems:
                    return 0, targ_spec
                targ_id = targ.resolve(tt.type_id)
            if len(targ_spec.raw_spec) == SPEC_MAX_LEN:
                raise _Fail("struct/union/array nesting too deep")
            targ_spec.spec.append(_Accessor(targ_id, acc.idx, None))
            targ_spec.raw_spec.append(acc.idx)
            targ_spec.bit_offset += acc.idx * _size(targ, targ_id) * 8
    return 1, targ_spec


# --- computing values ---------------------------------------------------------------


@dataclass
class _Res:
    orig_val: int = 0
    new_val: int = 0
    poison: bool = False
    validate: bool = True
    fail_memsz_adjust: bool = False
    orig_sz: int = 0
    new_sz: int = 0
    orig_type_id: int = 0
    new_type_id: int = 0
    poison_reason: str = ""


def _elem_size(btf: BTF, type_id: int) -> int:
    elem = btf.resolve(type_id)
    for _ in range(64):
        t = btf[elem]
        if t.kind != Kind.ARRAY:
            break
        elem = btf.resolve(t.type_id)
    return _size(btf, elem)


def _calc_field(kind: COREKind, spec: _Spec | None, insn_off: int) -> tuple[int, int, int, bool]:
    """-> (value, field size for mem-size adjustment, field type id, validate)."""
    if kind == COREKind.FIELD_EXISTS:
        return (1 if spec else 0), 0, 0, True
    if spec is None:
        raise _Poison("field not found in the target")
    btf = spec.btf
    acc = spec.spec[-1]
    if not acc.name:
        if kind == COREKind.FIELD_BYTE_OFFSET:
            return spec.bit_offset // 8, _elem_size(btf, acc.type_id), acc.type_id, True
        if kind == COREKind.FIELD_BYTE_SIZE:
            return _size(btf, acc.type_id), 0, 0, True
        raise _Fail(f"relocation {kind.label} at insn #{insn_off // 8} can't be applied to an array access")
    t = btf[acc.type_id]
    m = t.members[acc.idx]
    field_type_id = btf.resolve(m.type_id)
    mt = btf[field_type_id]
    bit_off = spec.bit_offset
    bit_sz = m.bitfield_size if t.kflag else 0
    bitfield = bit_sz > 0
    if bitfield:
        byte_sz = _size(btf, field_type_id)
        if byte_sz <= 0:
            raise _Fail(f"bitfield {m.name!r} has a type without size")
        byte_off = bit_off // 8 // byte_sz * byte_sz
        while bit_off + bit_sz - byte_off * 8 > byte_sz * 8:
            if byte_sz >= 8:
                raise _Fail(f"relocation {kind.label} at insn #{insn_off // 8} can't be satisfied for bitfield")
            byte_sz *= 2
            byte_off = bit_off // 8 // byte_sz * byte_sz
    else:
        byte_sz = _size(btf, field_type_id)
        byte_off = spec.bit_offset // 8
        bit_sz = byte_sz * 8
    validate = not bitfield
    field_sz = type_id = 0
    if kind == COREKind.FIELD_BYTE_OFFSET:
        val = byte_off
        if not bitfield:
            field_sz, type_id = _elem_size(btf, field_type_id), field_type_id
    elif kind == COREKind.FIELD_BYTE_SIZE:
        val = byte_sz
    elif kind == COREKind.FIELD_SIGNED:
        val = int((mt.kind in _ENUMS and mt.signed)
                  or (mt.kind == Kind.INT and bool(mt.encoding & IntEncoding.SIGNED)))
        validate = True
    elif kind == COREKind.FIELD_LSHIFT_U64:
        val = 64 - (bit_off + bit_sz - byte_off * 8)
    elif kind == COREKind.FIELD_RSHIFT_U64:
        val = 64 - bit_sz
        validate = True
    else:
        raise _Fail(f"unsupported field relocation {kind.label}")
    return val & _MASK64, field_sz, type_id, validate


def _calc_type(kind: COREKind, spec: _Spec | None) -> tuple[int, bool]:
    validate = True
    if spec is None:
        return 0, validate
    if kind == COREKind.TYPE_ID_TARGET:
        return spec.root_type_id, False
    if kind in (COREKind.TYPE_EXISTS, COREKind.TYPE_MATCHES):
        return 1, validate
    if kind == COREKind.TYPE_SIZE:
        return _size(spec.btf, spec.root_type_id), validate
    raise _Fail(f"unsupported type relocation {kind.label}")


def _calc_enumval(kind: COREKind, spec: _Spec | None) -> int:
    if kind == COREKind.ENUMVAL_EXISTS:
        return 1 if spec else 0
    if kind == COREKind.ENUMVAL_VALUE:
        if spec is None:
            raise _Poison("enum value not found in the target")
        t = spec.btf[spec.spec[0].type_id]
        value = t.values[spec.spec[0].idx].value
        if t.kind == Kind.ENUM and value >= 1 << 31:
            value -= 1 << 32  # libbpf reads a 32-bit enum value as __s32: it sign-extends
        return value & _MASK64
    raise _Fail(f"unsupported enum relocation {kind.label}")


def _calc_relo(kind: COREKind, insn_off: int, local_spec: _Spec, targ_spec: _Spec | None) -> _Res:
    res = _Res()
    try:
        if kind.is_field:
            res.orig_val, res.orig_sz, res.orig_type_id, res.validate = _calc_field(kind, local_spec, insn_off)
            res.new_val, res.new_sz, res.new_type_id, _ = _calc_field(kind, targ_spec, insn_off)
            if res.orig_sz != res.new_sz:
                ot = local_spec.btf[res.orig_type_id]
                nt = targ_spec.btf[res.new_type_id] if targ_spec else None
                if nt is not None and ot.kind == Kind.PTR and nt.kind == Kind.PTR:
                    pass
                elif (nt is not None and ot.kind == Kind.INT and nt.kind == Kind.INT
                      and ot.encoding != IntEncoding.SIGNED and nt.encoding != IntEncoding.SIGNED):
                    pass
                else:
                    res.fail_memsz_adjust = True
        elif kind.is_type:
            res.orig_val, res.validate = _calc_type(kind, local_spec)
            res.new_val, _ = _calc_type(kind, targ_spec)
        elif kind.is_enumval:
            res.orig_val = _calc_enumval(kind, local_spec)
            res.new_val = _calc_enumval(kind, targ_spec)
        else:
            raise _Fail(f"unrecognized CO-RE relocation kind {int(kind)}")
    except _Poison as p:
        res.poison = True
        res.poison_reason = str(p)
    return res


# --- targets and candidates -------------------------------------------------------------


@dataclass(frozen=True)
class _Candidate:
    btf: BTF
    id: int


class CORETarget:
    """Where relocations look for types: a kernel BTF, plus module BTFs when none was given explicitly."""

    def __init__(self, main: BTF, modules: Iterable[BTF] | None = None, label: str = "vmlinux"):
        self.main = main
        self._modules = list(modules) if modules is not None else None
        self.label = label

    @classmethod
    def running_kernel(cls) -> "CORETarget":
        return cls(kernel_btf(), None, "vmlinux")

    def modules(self) -> list[BTF]:
        """Module BTFs (the running kernel's are read on first need: libbpf looks there last)."""
        if self._modules is None:
            found = []
            for name in kernel_modules_with_btf():
                try:
                    found.append(module_btf(name))
                except BPFError:
                    continue  # unloaded meanwhile
            self._modules = found
        return self._modules

    def candidates(self, local: BTF, local_id: int) -> list[_Candidate]:
        """libbpf's bpf_core_find_cands: same essential name, compatible kind; vmlinux first, then modules."""
        lt = local[local_id]
        found = self._from(self.main, lt.name, lt.kind, 1)
        if found:
            return found
        for mod in self.modules():
            found.extend(self._from(mod, lt.name, lt.kind, mod.start_id))
        return found

    @staticmethod
    def _from(btf: BTF, name: str, kind: Kind, start: int) -> list[_Candidate]:
        want = essential_name(name)
        return [_Candidate(btf, t.id) for t in btf.find_by_essential_name(name)
                if t.id >= start and t.name and essential_name(t.name) == want and _kind_compat(t.kind, kind)]


def resolve_target(target: Any) -> CORETarget:
    if target is None:
        return CORETarget.running_kernel()
    if isinstance(target, CORETarget):
        return target
    if isinstance(target, BTF):
        return CORETarget(target, [], target.name)
    path = str(target)
    try:
        return CORETarget(BTF.from_file(path), [], path)
    except OSError as exc:
        raise CORERelocationError(f"cannot read target BTF {path}: {exc.strerror}") from None


def calc_relocation(local: BTF, type_id: int, access: str, kind: int, insn_off: int, target: CORETarget,
                    cache: dict[int, list[_Candidate]]) -> tuple[_Res, _Spec, _Spec | None, int]:
    """libbpf's bpf_core_calc_relo_insn for one record. -> (result, local spec, target spec, candidates)."""
    try:
        kind = COREKind(kind)
    except ValueError:
        raise _Fail(f"unrecognized CO-RE relocation kind {kind}") from None
    local_t = local[type_id]
    local_spec = parse_spec(local, type_id, access, kind)
    if kind == COREKind.TYPE_ID_LOCAL:
        return _Res(orig_val=type_id, new_val=type_id, validate=False), local_spec, None, 0
    if not _name(local_t):
        raise _Fail(f"<{kind.label}> relocation doesn't support anonymous types")
    cands = cache.get(type_id)
    if cands is None:
        cands = cache[type_id] = target.candidates(local, type_id)
    kept: list[_Candidate] = []
    targ_res: _Res | None = None
    targ_spec: _Spec | None = None
    for cand in cands:
        matched, cand_spec = _spec_match(local_spec, cand.btf, cand.id)
        if matched <= 0:
            continue
        cand_res = _calc_relo(kind, insn_off, local_spec, cand_spec)
        if targ_res is None:
            targ_res, targ_spec = cand_res, cand_spec
        elif cand_spec.bit_offset != targ_spec.bit_offset:
            raise _Fail(f"field offset ambiguity: {cand_spec.bit_offset} != {targ_spec.bit_offset}")
        elif cand_res.poison != targ_res.poison or cand_res.new_val != targ_res.new_val:
            raise _Fail(f"relocation decision ambiguity: {'failure' if cand_res.poison else 'success'} "
                        f"{cand_res.new_val} != {'failure' if targ_res.poison else 'success'} {targ_res.new_val}")
        kept.append(cand)
    if kept:
        cands[:] = kept
    if targ_res is None:
        targ_res = _calc_relo(kind, insn_off, local_spec, None)
    return targ_res, local_spec, targ_spec, len(kept)


# --- patching ---------------------------------------------------------------------------

_SIZE_OF = {Size.DW: 8, Size.W: 4, Size.H: 2, Size.B: 1}
_SIZE_FOR = {v: k for k, v in _SIZE_OF.items()}


def _s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


def patch_instruction(insn: Instruction, res: _Res, where: str) -> list[Instruction]:
    """libbpf's bpf_core_patch_insn; returns the replacement (two calls for a poisoned ld_imm64)."""
    poison = [Instruction(CALL, imm=CORE_POISON_IMM)]
    if res.poison:
        return poison * (2 if insn.opcode == LD_IMM64 else 1)
    cls = insn.opcode & CLASS_MASK
    orig, new = res.orig_val, res.new_val
    if cls in (Class.ALU, Class.ALU64):
        if insn.opcode & SOURCE_MASK:
            raise _Fail(f"{where}: ALU instruction with a register operand cannot be relocated")
        if res.validate and (insn.imm & _MASK64) != orig:
            raise _Fail(f"{where}: unexpected instruction value: imm {insn.imm}, expected {orig} -> {new}")
        return [insn.replace(imm=_s32(new))]
    if cls in (Class.LDX, Class.ST, Class.STX):
        if res.validate and (insn.off & _MASK64) != orig:
            raise _Fail(f"{where}: unexpected instruction value: off {insn.off}, expected {orig} -> {new}")
        if new > 0x7FFF:
            raise _Fail(f"{where}: offset {new} is too big for a load/store")
        if res.fail_memsz_adjust:
            res.poison_reason = ("accesses field incorrectly; access pointers, unsigned integers, or fields of "
                                 "matching type and size")
            return poison
        out = insn.replace(off=new)
        if res.new_sz != res.orig_sz:
            size_bits = insn.opcode & 0x18
            if _SIZE_OF.get(Size(size_bits)) != res.orig_sz:
                raise _Fail(f"{where}: unexpected memory size {_SIZE_OF.get(Size(size_bits))}, expected "
                            f"{res.orig_sz}")
            new_size = _SIZE_FOR.get(res.new_sz)
            if new_size is None:
                raise _Fail(f"{where}: invalid new memory size {res.new_sz}")
            out = out.replace(opcode=(insn.opcode & (MODE_MASK | CLASS_MASK)) | new_size)
        return [out]
    if insn.opcode == LD_IMM64:
        if insn.src != 0 or insn.off != 0:
            raise _Fail(f"{where}: ld_imm64 has an unexpected form")
        if res.validate and insn.imm != orig:
            raise _Fail(f"{where}: unexpected ld_imm64 value {insn.imm}, expected {orig} -> {new}")
        return [insn.replace(imm=new & _MASK64)]
    raise _Fail(f"{where}: instruction with opcode {insn.opcode:#04x} cannot be relocated")


# --- the spec transformation --------------------------------------------------------------


def apply_core(spec: "ObjectSpec", target_btf: Any = None, programs: Any = None, strict: bool = True
               ) -> list[CORERelocationResult]:
    """Resolve all CO-RE relocations of ``spec`` and patch its programs.  See ObjectSpec.apply_core."""
    if spec.btf is None or spec.btf_ext is None or not any(spec.btf_ext.core_relos.values()):
        spec.core_results = []
        for prog in spec.programs.values():
            prog.instructions = prog.original_instructions or prog.instructions
        return []
    target = resolve_target(target_btf)
    wanted = set(programs) if programs is not None else None
    local = spec.btf
    by_record: dict[tuple[str, int], CORERelocationResult] = {}
    raw_by_record: dict[tuple[str, int], _Res] = {}
    cache: dict[int, list[_Candidate]] = {}
    owners, functions = _record_owners(spec)
    results: list[CORERelocationResult] = []
    for section, records in spec.btf_ext.core_relos.items():
        for index, rec in enumerate(records):
            key = (section, rec.insn_off)
            function = functions.get(key) or _function_at(spec, section, rec.insn_off)
            if function is None:
                continue  # instruction of an overridden weak function: libbpf skips it too
            progs = owners.get(key, [])
            # libbpf relocates every .text function, and entry programs that will be loaded
            if section != ".text" and not any(spec.programs[p].autoload and (wanted is None or p in wanted)
                                               for p in progs):
                continue
            result = _resolve_one(local, rec, section, index, target, cache, raw_by_record, key)
            result.programs, result.function, result.function_insn = progs, *function
            by_record[key] = result
            results.append(result)
    for prog in spec.programs.values():
        if wanted is not None and prog.name not in wanted:
            continue
        _patch_program(prog, by_record, raw_by_record)
    spec.core_results = results
    errors = [r for r in results if r.error]
    if errors and strict:
        first = errors[0]
        raise CORERelocationError(
            f"{spec.name}: {first.function!r}: CO-RE relocation #{first.index} ({first.section}, insn "
            f"#{first.function_insn}) cannot be applied: {first.describe()}"
            + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""))
    return results


def _record_owners(spec: "ObjectSpec") -> tuple[dict, dict]:
    """(section, offset) -> programs holding a copy; and -> (function, index in the function)."""
    owners: dict[tuple[str, int], list[str]] = {}
    functions: dict[tuple[str, int], tuple[str, int]] = {}
    for prog in spec.programs.values():
        for relo in prog.core_relocations:
            key = (relo.section, relo.section_offset)
            owners.setdefault(key, []).append(prog.name)
            functions[key] = (relo.function, relo.function_insn)
    return owners, functions


def _function_at(spec: "ObjectSpec", section: str, insn_off: int) -> tuple[str, int] | None:
    for name, sec, off, size in spec.functions:
        if sec == section and off <= insn_off < off + size:
            return name, (insn_off - off) // 8
    return None


def _resolve_one(local: BTF, rec, section: str, index: int, target: CORETarget, cache, raw_by_record, key
                 ) -> CORERelocationResult:
    try:
        kind = COREKind(rec.kind)
    except ValueError:
        kind = None
    try:
        local_t = local[rec.type_id]
        local_desc = f"[{rec.type_id}] {local_t.kind.name.lower()} {_name(local_t) or '<anon>'}"
        access = rec.access_str
    except BPFError as exc:
        return CORERelocationResult(section, index, rec.insn_off // 8, kind or COREKind.FIELD_BYTE_OFFSET,
                                    f"[{rec.type_id}]", "?", error=str(exc))
    result = CORERelocationResult(section, index, rec.insn_off // 8, kind or COREKind.FIELD_BYTE_OFFSET,
                                  local_desc, access, target_btf=target.label)
    if kind is None:
        result.error = f"unrecognized CO-RE relocation kind {rec.kind}"
        return result
    try:
        result.local_spec = c_access(parse_spec(local, rec.type_id, access, kind))
        res, local_spec, targ_spec, ncands = calc_relocation(local, rec.type_id, access, kind, rec.insn_off,
                                                             target, cache)
    except _Fail as exc:
        result.error = str(exc)
        return result
    except (BPFError, IndexError, KeyError, ValueError) as exc:  # malformed local BTF: report it here
        result.error = f"{type(exc).__name__}: {exc}"
        return result
    result.local_spec = c_access(local_spec)
    result.target_spec = c_access(targ_spec) if targ_spec is not None else ""
    result.orig_value, result.new_value = res.orig_val, res.new_val
    result.poisoned, result.validate = res.poison, res.validate
    result.orig_size, result.new_size, result.fail_memsz_adjust = res.orig_sz, res.new_sz, res.fail_memsz_adjust
    result.candidates = ncands
    if res.poison:
        result.reason = res.poison_reason or "no matching target"
    raw_by_record[key] = res
    return result


def _patch_program(prog: "ProgramSpec", by_record, raw_by_record) -> None:
    base = prog.original_instructions or prog.instructions
    insns = list(base)
    patched: dict[int, list[Instruction]] = {}
    for relo in prog.core_relocations:
        key = (relo.section, relo.section_offset)
        result = by_record.get(key)
        relo.result = result
        if result is None or result.error or key not in raw_by_record:
            continue
        index = base.index_at_slot(relo.slot)
        where = f"program {prog.name!r}: relocation #{result.index} at insn #{index}"
        try:
            patched[index] = patch_instruction(base[index], raw_by_record[key], where)
        except _Fail as exc:
            result.error = str(exc)
            continue
        if patched[index][0].opcode == CALL and patched[index][0].imm == CORE_POISON_IMM and not result.poisoned:
            result.poisoned = True
            result.reason = raw_by_record[key].poison_reason
    for index in sorted(patched, reverse=True):
        insns[index:index + 1] = patched[index]
    prog.instructions = Program(insns)


def poisoned_relocation(prog: "ProgramSpec", slot: int) -> CORERelocationResult | None:
    """The CO-RE relocation that poisoned the instruction at ``slot`` (the verifier's instruction number)."""
    for relo in prog.core_relocations:
        if relo.result is not None and relo.result.poisoned and relo.slot in (slot, slot - 1):
            return relo.result
    return None


__all__ = [
    "COREKind", "CORERelocation", "CORERelocationResult", "CORETarget", "apply_core", "poisoned_relocation",
    "types_are_compat", "types_match",
]
