"""The object's BTF as BPF_BTF_LOAD must receive it: libbpf's open-time and load-time rewrites.

clang leaves work for the loader: ``.ksyms`` and ``.kconfig`` externs must
become allocated variables (a kfunc in ``.ksyms`` is replaced by a dummy int
variable, as libbpf does), DATASEC sizes and offsets must come from the ELF
file, and hidden global subprograms must be marked static so the verifier
checks them with their callers' context.  The BTF layer does the generic parts
(:func:`~pybpf.btf.sanitize.fixup_datasecs`, :func:`~pybpf.btf.sanitize.sanitize`
for older kernels); the extern and subprogram rules are the loader's and live here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..btf import BTF, FuncLinkage, Kind, Var, VarLinkage
from ..btf.sanitize import BTFFeatures, fixup_datasecs, sanitize
from ..errors import ObjectError

if TYPE_CHECKING:
    from .spec import ObjectSpec

DUMMY_KSYM = "dummy_ksym"
STB_LOCAL, STT_FUNC, STV_INTERNAL, STV_HIDDEN = 0, 2, 1, 2


def kernel_btf(spec: "ObjectSpec", features: BTFFeatures | None = None) -> BTF:
    """A new BTF for the kernel (``spec.btf`` is left as parsed); ``features`` sanitizes for older kernels."""
    if spec.btf is None:
        raise ObjectError(f"{spec.name}: the object has no BTF (compile with -g)")
    btf = spec.btf.copy()
    _externs(btf, spec)
    if spec.elf is not None:
        btf = fixup_datasecs(btf, spec.elf)
        _static_subprograms(btf, spec)
    if features is not None:
        btf = sanitize(btf, features)
    return btf


def _first_int32(btf: BTF) -> int:
    """libbpf's find_int_btf_id: the first 32-bit INT (0 when there is none)."""
    for t in btf.types(Kind.INT):
        if t.bits == 32:
            return t.id
    return 0


def _externs(btf: BTF, spec: "ObjectSpec") -> None:
    """libbpf's collect_externs rewrites: .ksyms entries become 4-byte ints, .kconfig gets its layout."""
    ksyms = btf.ids_by_name(".ksyms", Kind.DATASEC)
    if ksyms:
        sec = btf[ksyms[0]]
        int_id = _first_int32(btf)
        dummy = None
        if any(btf[v.type_id].kind == Kind.FUNC for v in sec.vars):
            dummy = btf.add(Var(name=DUMMY_KSYM, type_id=int_id, linkage=VarLinkage.GLOBAL))
        infos = []
        for i, v in enumerate(sec.vars):
            t = btf[v.type_id]
            type_id = v.type_id
            if t.kind == Kind.FUNC:
                proto = btf[t.type_id]
                if proto.kind == Kind.FUNC_PROTO:
                    params = tuple(p.replace(name=DUMMY_KSYM) if p.type_id and not p.name else p
                                   for p in proto.params)
                    btf.replace(proto.id, proto.replace(params=params))
                btf.replace(t.id, t.replace(linkage=FuncLinkage.GLOBAL))
                type_id = dummy
            elif t.kind == Kind.VAR:
                btf.replace(t.id, t.replace(linkage=VarLinkage.GLOBAL, type_id=int_id))
            infos.append(v.replace(type_id=type_id, offset=4 * i, size=4))
        btf.replace(sec.id, btf[sec.id].replace(size=4 * len(infos), vars=tuple(infos)))
    kconfig = btf.ids_by_name(".kconfig", Kind.DATASEC)
    if kconfig:
        sec = btf[kconfig[0]]
        layout = {e.name: e for e in spec.externs.values() if e.kind == "kconfig"}
        infos = []
        for v in sec.vars:
            t = btf[v.type_id]
            ext = layout.get(t.name)
            if ext is None:
                raise ObjectError(f"{spec.name}: BTF variable {t.name!r} of .kconfig has no extern symbol")
            btf.replace(t.id, t.replace(linkage=VarLinkage.GLOBAL))
            infos.append(v.replace(offset=ext.offset))
        size = max((e.offset + e.size for e in layout.values()), default=0)
        btf.replace(sec.id, btf[sec.id].replace(size=size, vars=tuple(infos)))


def _static_subprograms(btf: BTF, spec: "ObjectSpec") -> None:
    """Hidden global .text functions get static BTF FUNCs (libbpf's mark_btf_static)."""
    elf: Any = spec.elf
    text = elf.section(".text")
    if text is None:
        return
    hidden = {s.name for s in elf.symbols if s.type == STT_FUNC and s.shndx == text.index
              and s.bind != STB_LOCAL and s.visibility in (STV_INTERNAL, STV_HIDDEN)}
    for name in hidden:
        for type_id in btf.ids_by_name(name, Kind.FUNC):
            t = btf[type_id]
            if t.linkage == FuncLinkage.GLOBAL:
                btf.replace(type_id, t.replace(linkage=FuncLinkage.STATIC))
                break


__all__ = ["BTFFeatures", "kernel_btf"]
