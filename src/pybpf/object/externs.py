"""``__ksym`` externs: finding them in the kernel, and writing them into instructions.

:func:`resolve_ksyms` is what libbpf does in bpf_object__resolve_externs for
ksyms: typed variables and kfuncs are looked up by name in vmlinux BTF, then
in module BTF, and checked for type compatibility; typeless ksyms get their
address from /proc/kallsyms.  :func:`link_instructions` turns a program's
placeholders into what ``BPF_PROG_LOAD`` wants, given the backend's map fds
and module BTF fds.  Both are pure apart from reading kernel BTF/kallsyms.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterable, Mapping

from ..errors import ObjectError
from ..isa import CALL, Instruction, Program, PseudoCall, PseudoLoad
from ..btf import BTF, Kind
from .core import CORETarget, _Fail, resolve_target, types_are_compat
from .spec import KFUNC_POISON_BASE, MAP_POISON_BASE

if TYPE_CHECKING:
    from .spec import ExternSpec, ObjectSpec


@dataclass(frozen=True, slots=True)
class KsymResolution:
    """Where a ksym lives in the running kernel; ``resolved=False`` for an absent weak one."""

    name: str
    resolved: bool = True
    btf_id: int = 0  # VAR or FUNC id in the kernel BTF that holds it
    module: str | None = None  # kernel module whose BTF holds it (None: vmlinux)
    address: int = 0  # typeless ksyms: kallsyms address


def read_kallsyms(path: str = "/proc/kallsyms") -> Iterable[tuple[int, str, str]]:
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3:
                yield int(parts[0], 16), parts[1], parts[2]


def resolve_ksyms(spec: "ObjectSpec", target: object = None,
                  kallsyms: Callable[[], Iterable[tuple[int, str, str]]] | None = None,
                  module_names: Mapping[int, str] | None = None) -> dict[str, KsymResolution]:
    """Resolve every ``__ksym`` extern of ``spec`` against the running kernel (or ``target``).

    ``module_names`` maps id(module BTF) -> module name when ``target`` carries
    module BTFs not read from /sys/kernel/btf (their ``name`` is used otherwise).
    """
    ksyms = [e for e in spec.externs.values() if e.kind == "ksym"]
    out: dict[str, KsymResolution] = {}
    if not ksyms:
        return out
    typed = [e for e in ksyms if e.typed]
    typeless = [e for e in ksyms if not e.typed]
    if typed:
        tgt = resolve_target(target)
        for ext in typed:
            out[ext.name] = _resolve_typed(spec, ext, tgt, module_names)
    if typeless:
        want = {e.name: e for e in typeless}
        found: dict[str, int] = {}
        for addr, kind, name in (kallsyms or read_kallsyms)():
            base = name.split(".llvm.", 1)[0] if kind == "d" and ".llvm." in name else name
            if base not in want:
                continue
            if base in found and found[base] != addr:
                raise ObjectError(f"{spec.name}: ksym {base!r} is ambiguous: {found[base]:#x} or {addr:#x}")
            found[base] = addr
        for ext in typeless:
            if ext.name in found:
                out[ext.name] = KsymResolution(ext.name, address=found[ext.name])
            elif ext.weak:
                out[ext.name] = KsymResolution(ext.name, resolved=False)
            else:
                raise ObjectError(f"{spec.name}: ksym {ext.name!r} (strong) is not in /proc/kallsyms")
    return out


def _resolve_typed(spec: "ObjectSpec", ext: "ExternSpec", target: CORETarget,
                   module_names: Mapping[int, str] | None) -> KsymResolution:
    kind = Kind.FUNC if ext.is_function else Kind.VAR
    name = ext.essential_name if ext.is_function else ext.name
    found: tuple[BTF, int] | None = None
    for btf in [target.main, *target.modules()]:
        ids = [i for i in btf.ids_by_name(name, kind) if i >= btf.start_id]
        if ids:
            found = (btf, ids[0])
            break
    what = "kfunc" if ext.is_function else "ksym"
    if found is None:
        if ext.weak:
            return KsymResolution(ext.name, resolved=False)
        raise ObjectError(f"{spec.name}: {what} {ext.name!r} is not in the kernel's BTF (vmlinux or modules)")
    btf, type_id = found
    local = spec.btf
    local_type = local[ext.type_id].type_id
    if not ext.is_function:
        local_type = local.resolve(local_type)
    targ_type = btf[type_id].type_id
    if not ext.is_function:
        targ_type = btf.resolve(targ_type)
    try:
        compat = types_are_compat(local, local_type, btf, targ_type)
    except _Fail:
        compat = 0
    if compat <= 0:
        if ext.weak and ext.is_function:
            return KsymResolution(ext.name, resolved=False)
        raise ObjectError(f"{spec.name}: {what} {ext.name!r}: the program declares it as "
                          f"{local[local_type].describe()}, the kernel has {btf[targ_type].describe()}")
    module = None
    if btf is not target.main:
        module = (module_names or {}).get(id(btf)) or btf.name.rsplit("/", 1)[-1].split(" ")[0]
    return KsymResolution(ext.name, btf_id=type_id, module=module)


def link_instructions(spec: "ObjectSpec", program: str, map_fds: Mapping[str, int],
                      ksyms: Mapping[str, KsymResolution] | None = None,
                      module_btf: Callable[[str], tuple[int, int]] | None = None) -> Program:
    """The instructions of ``program`` ready for BPF_PROG_LOAD.

    ``map_fds``: map name -> fd (maps absent are treated as not created and
    their loads poisoned, as libbpf does).  ``ksyms``: from :func:`resolve_ksyms`.
    ``module_btf(module)`` -> (BTF object fd, index of that fd in the program's
    fd_array) for ksyms that live in kernel modules.
    """
    prog = spec.program(program)
    insns = list(prog.instructions)
    at = prog.instructions.index_at_slot
    map_order = list(spec.maps)
    ext_order = list(spec.externs)
    splits: dict[int, list[Instruction]] = {}
    for ref in prog.map_references:
        i = at(ref.slot)
        fd = map_fds.get(ref.map)
        if fd is None:
            index = map_order.index(ref.map) if ref.map in map_order else 0
            call = Instruction(CALL, imm=MAP_POISON_BASE + index)
            splits[i] = [call, call]
        elif ref.value:
            insns[i] = insns[i].replace(src=PseudoLoad.MAP_VALUE, imm=(fd & 0xFFFFFFFF) | (ref.offset << 32))
        else:
            insns[i] = insns[i].replace(src=PseudoLoad.MAP_FD, imm=fd & 0xFFFFFFFF)
    for ref in prog.extern_references:
        i = at(ref.slot)
        ext = spec.externs[ref.extern]
        if ext.kind == "undefined":
            raise ObjectError(f"{spec.name}: program {program!r} {prog.reason}")
        res = (ksyms or {}).get(ext.name)
        if res is None:
            raise ObjectError(f"{spec.name}: program {program!r}: ksym {ext.name!r} was not resolved; call "
                              "resolve_ksyms() first")
        btf_fd, fd_index = (0, 0)
        if res.module is not None:
            if module_btf is None:
                raise ObjectError(f"{spec.name}: ksym {ext.name!r} lives in module {res.module!r}; the backend "
                                  "must give its BTF fd")
            btf_fd, fd_index = module_btf(res.module)
        if ref.call:
            if not res.resolved:
                insns[i] = Instruction(CALL, imm=KFUNC_POISON_BASE + ext_order.index(ext.name))
            else:
                insns[i] = insns[i].replace(src=PseudoCall.KFUNC_CALL, imm=res.btf_id, off=fd_index)
        elif ext.typed and res.resolved:
            insns[i] = insns[i].replace(src=PseudoLoad.BTF_ID, imm=res.btf_id | (btf_fd << 32))
        else:
            insns[i] = insns[i].replace(src=PseudoLoad.IMM, imm=res.address & ((1 << 64) - 1))
    for i in sorted(splits, reverse=True):
        insns[i:i + 1] = splits[i]
    return Program(insns)


__all__ = ["KsymResolution", "link_instructions", "read_kallsyms", "resolve_ksyms"]
