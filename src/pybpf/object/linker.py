"""Static linking of each entry program with the subprograms it uses (libbpf's reloc_code).

Every entry program gets its own copy of each ``.text`` function it reaches
(by call or by function pointer), appended in depth-first order of first use,
exactly as libbpf's ``bpf_object__reloc_code`` does; calls are re-pointed at
the copies; func_info, line_info and CO-RE records follow their code.  Map,
global-data and extern references become placeholders plus
:class:`~pybpf.object.spec.MapReference` / ``ExternReference`` records that
the backend resolves.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from ..errors import ObjectError
from ..isa import CALL, LD_IMM64, Instruction, Program, PseudoCall, PseudoLoad
from .sections import attach_target, find_section_def
from .spec import ExternReference, FuncInfo, FunctionSpan, LineInfo, MapReference, ProgramSpec, _prog_flags

if TYPE_CHECKING:
    from .reader import _Function, _ObjectReader

_MAX_DEPTH = 4096


def link_programs(r: "_ObjectReader") -> None:
    map_index = {name: i for i, name in enumerate(r.spec.maps)}
    if len(r.functions) + 50 > sys.getrecursionlimit() and len(r.functions) < _MAX_DEPTH:
        sys.setrecursionlimit(len(r.functions) + 200)
    for fn in r.functions:
        if fn.is_subprogram:
            continue
        spec = _program_spec(r, fn)
        _Linker(r, spec, map_index).link(fn)
        r.spec.programs[spec.name] = spec


def _program_spec(r: "_ObjectReader", fn: "_Function") -> ProgramSpec:
    section = fn.section.name
    autoload = True
    if section.startswith("?"):
        autoload, section = False, section[1:]
    sec_def = find_section_def(section)
    spec = ProgramSpec(
        name=fn.name, section=section, instructions=Program(), autoload=autoload, license=r.spec.license,
        kern_version=r.spec.kern_version, section_def=sec_def,
        global_function=fn.symbol.bind != 0,
    )
    if sec_def is None:
        spec.reason = (f"section {section!r} is not a SEC() name libbpf knows; choose a program type with "
                       f"spec.programs[{fn.name!r}].set_section(...)")
    else:
        spec.type = sec_def.prog_type
        spec.expected_attach_type = sec_def.attach_type
        spec.attach_target = attach_target(sec_def, section)
        spec.flags = _prog_flags(sec_def)
    if fn.name in r.spec.programs:
        raise ObjectError(f"{r.label}: two programs are named {fn.name!r}")
    return spec


class _Linker:
    def __init__(self, r: "_ObjectReader", spec: ProgramSpec, map_index: dict[str, int]):
        self.r = r
        self.spec = spec
        self.map_index = map_index
        self.insns: list[Instruction] = []
        self.slots = 0
        self.placed: dict[int, int] = {}  # id(function) -> start slot
        self.ext = getattr(r, "btf_ext", None)
        self.func_info_ok = True
        self.line_info_ok = True

    def link(self, main: "_Function") -> None:
        self._append(main)
        self.spec.map_references.sort(key=lambda ref: ref.slot)
        self.spec.extern_references.sort(key=lambda ref: ref.slot)
        self.spec.instructions = Program(self.insns)
        self.spec.original_instructions = self.spec.instructions

    def _append(self, fn: "_Function") -> None:
        start = self.slots
        base = len(self.insns)
        self.placed[id(fn)] = start
        self.insns.extend(fn.insns)
        self.slots += fn.slot_count
        self.spec.functions.append(FunctionSpan(fn.name, start, fn.slot_count))
        self._ext_info(fn, start)
        relocs = {rel.slot: rel for rel in fn.relocations}
        slot = 0
        for k, insn in enumerate(fn.insns):
            rel = relocs.get(slot)
            if rel is not None and rel.kind == "extern":
                self._extern(base + k, rel, start + slot)
            elif (insn.opcode == CALL and insn.src == PseudoCall.CALL) or (
                    insn.opcode == LD_IMM64 and (insn.src == PseudoLoad.FUNC or (rel and rel.kind == "subprog_addr"))):
                self._call(fn, base + k, insn, rel, slot, start)
            elif rel is not None:
                self._data(fn, base + k, insn, rel, start + slot)
            slot += 2 if insn.opcode == LD_IMM64 else 1

    def _call(self, fn: "_Function", index: int, insn: Instruction, rel, slot: int, start: int) -> None:
        r = self.r
        imm = _imm32(insn)
        shndx = fn.section.index if rel is None else rel.symbol.shndx
        if rel is not None and rel.kind == "call":
            target_slot = rel.sym_off // 8 + imm + 1
        elif rel is not None and rel.kind == "subprog_addr":
            target_slot = (rel.sym_off + imm) // 8
        elif rel is not None:
            raise ObjectError(f"{r.label}: program {self.spec.name!r}: instruction {slot} of {fn.name!r} is a call "
                              f"but its relocation is a {rel.kind} reference")
        elif insn.opcode == LD_IMM64:
            raise ObjectError(f"{r.label}: program {self.spec.name!r}: function pointer at instruction {slot} of "
                              f"{fn.name!r} has no relocation")
        else:
            target_slot = fn.first_slot + slot + imm + 1
        target = r._function_at(shndx, target_slot)
        if target is None:
            raise ObjectError(f"{r.label}: program {self.spec.name!r}: call at instruction {slot} of {fn.name!r} "
                              f"goes to instruction {target_slot} of section {r.elf.sections[shndx].name}, where no "
                              "function is")
        if id(target) not in self.placed:
            if len(self.placed) > _MAX_DEPTH:
                raise ObjectError(f"{r.label}: program {self.spec.name!r}: more than {_MAX_DEPTH} subprograms")
            self._append(target)
        rel_off = self.placed[id(target)] - (start + slot) - 1
        if insn.opcode == LD_IMM64:
            self.insns[index] = insn.replace(src=PseudoLoad.FUNC, imm=rel_off & 0xFFFFFFFF)
        else:
            self.insns[index] = insn.replace(imm=rel_off)

    def _data(self, fn: "_Function", index: int, insn: Instruction, rel, slot: int) -> None:
        name = rel.target
        if rel.kind == "map":
            self.insns[index] = insn.replace(src=PseudoLoad.MAP_IDX, imm=self.map_index[name])
            self.spec.map_references.append(MapReference(slot, name))
        elif rel.kind == "data":
            offset = (_imm32(insn) + rel.sym_off) & 0xFFFFFFFF
            self.insns[index] = insn.replace(src=PseudoLoad.MAP_IDX_VALUE,
                                             imm=self.map_index[name] | (offset << 32))
            self.spec.map_references.append(MapReference(slot, name, offset, value=True))
        else:
            raise ObjectError(f"{self.r.label}: program {self.spec.name!r}: unexpected {rel.kind} relocation at "
                              f"instruction {slot}")

    def _extern(self, i: int, rel, slot: int) -> None:
        ext = self.r.spec.externs[rel.target]
        insn = self.insns[i]
        if ext.kind == "kconfig":
            kmap = self.r.kconfig_map
            self.insns[i] = insn.replace(src=PseudoLoad.MAP_IDX_VALUE,
                                         imm=self.map_index[kmap] | (ext.offset << 32))
            self.spec.map_references.append(MapReference(slot, kmap, ext.offset, value=True))
            return
        is_call = insn.opcode == CALL
        if ext.kind == "undefined":
            what = "calls" if is_call else "uses"
            self.spec.reason = (f"{what} {ext.name!r}, which is declared but defined nowhere (link the objects "
                                "with 'bpftool gen object', or declare it __ksym / __kconfig)")
        elif is_call and not ext.is_function:
            raise ObjectError(f"{self.r.label}: program {self.spec.name!r}: call to {ext.name!r}, which is a "
                              "variable, not a kfunc")
        self.spec.extern_references.append(ExternReference(slot, ext.name, call=is_call))

    def _ext_info(self, fn: "_Function", start: int) -> None:
        """Copy the function's func_info/line_info/CO-RE records, re-based to where it now sits."""
        ext = self.ext
        if ext is None:
            return
        lo, hi = fn.first_slot, fn.first_slot + fn.slot_count
        sec = fn.section.name
        adj = start - lo
        funcs = [FuncInfo(rec.insn_off // 8 + adj, rec.type_id) for rec in ext.func_info.get(sec, ())
                 if lo <= rec.insn_off // 8 < hi]
        if self.func_info_ok:
            if funcs:
                self.spec.func_info.extend(funcs)
            elif self.spec.func_info or start == 0:
                # libbpf: without the main program's func_info none is used; a subprogram without it is an error
                self._drop_info("func_info", fn)
        lines = [rec for rec in ext.line_info.get(sec, ()) if lo <= rec.insn_off // 8 < hi]
        if self.line_info_ok:
            if lines:
                self.spec.line_info.extend(
                    LineInfo(rec.insn_off // 8 + adj, rec.file_name_off, rec.line_off, rec.line_col,
                             rec.file_name, rec.line_text) for rec in lines)
            elif self.spec.line_info or start == 0:
                self._drop_info("line_info", fn)
        from .core import CORERelocation

        for rec in ext.core_relos.get(sec, ()):
            if lo <= rec.insn_off // 8 < hi:
                if rec.insn_off % 8:
                    raise ObjectError(f"{self.r.label}: CO-RE relocation at unaligned offset {rec.insn_off} of {sec}")
                self.spec.core_relocations.append(
                    CORERelocation(slot=rec.insn_off // 8 + adj, type_id=rec.type_id,
                                   access=rec.access_str, kind=int(rec.kind),
                                   function=fn.name, section=sec, section_offset=rec.insn_off,
                                   function_insn=rec.insn_off // 8 - lo))

    def _drop_info(self, what: str, fn: "_Function") -> None:
        if what == "func_info":
            self.func_info_ok = False
            had = bool(self.spec.func_info)
            self.spec.func_info.clear()
        else:
            self.line_info_ok = False
            had = bool(self.spec.line_info)
            self.spec.line_info.clear()
        if had:
            self.r.spec.notes.append(f"program {self.spec.name!r}: subprogram {fn.name!r} has no .BTF.ext {what}; "
                                     f"the program is loaded without {what}")


def _imm32(insn: Instruction) -> int:
    v = insn.imm & 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


__all__ = ["link_programs"]
