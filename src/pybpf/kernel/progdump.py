"""A loaded program's code, the way ``bpftool prog dump xlated|jited`` shows it.

xlated: the instructions after the verifier rewrote them, each function headed by
its C prototype (pybpf.btf.valuedump.type_signature, bpftool's rendering), each
instruction by the C source line its BTF line info names; calls resolved to
kernel symbols (helpers and kfuncs sit at ``__bpf_call_base + imm``), map
references as ``map[id:N]``.  The text of an instruction comes from the
instruction set's formatter (pybpf.isa) in kernel or llvm style; instructions
LLVM has no syntax for are shown in kernel style.

jited: the machine code, split into the program's functions (jited_ksyms and
jited_func_lens), disassembled with capstone (the optional ``pybpf[jited]``
extra) in AT&T syntax like bpftool's LLVM back end, with the source lines
placed at the addresses jited_line_info gives.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

from ..btf import BTF
from ..btf.valuedump import type_signature
from ..errors import BPFError, NotSupportedError
from ..isa import Instruction, format_instruction
from ..isa.helpers import helper_name
from .introspect import ProgramImage, SourceRecord, btf_by_id, program_image, source_records
from .symbolize import kernel_symbols

LD_IMM64 = 0x18
CALL = 0x85
PSEUDO_MAP_FD, PSEUDO_MAP_VALUE, PSEUDO_FUNC, PSEUDO_MAP_IDX_VALUE = 1, 2, 4, 6
PSEUDO_CALL = 1
MASK64 = (1 << 64) - 1


@dataclass
class XlatedInsn:
    index: int                    # slot index, as bpftool numbers them
    insn: Instruction
    raw: bytes                    # 8 or 16 bytes
    text: str
    source: SourceRecord | None = None
    proto: str | None = None      # the C prototype (from BTF) on the first instruction of each function


@dataclass
class JitedInsn:
    pc: int
    mnemonic: str
    operands: str
    raw: bytes
    source: SourceRecord | None = None


@dataclass
class JitedFunction:
    name: str
    address: int
    insns: list[JitedInsn] = field(default_factory=list)
    proto: str | None = None      # the C prototype, from BTF


class _Annotations:
    """What bpftool's print_call / print_imm callbacks add: symbol names and map ids."""

    def __init__(self, image: ProgramImage):
        self.image = image
        self.ksyms = kernel_symbols()
        self.call_base = self.ksyms.address_of("__bpf_call_base") or 0

    def _symbol(self, address: int) -> str | None:
        frame = self.ksyms.resolve(address)
        return frame.symbol if frame.symbol and frame.offset == 0 else None

    def call(self, insn: Instruction) -> str:
        if insn.src == PSEUDO_CALL:
            ksyms = self.image.jited_ksyms
            if not ksyms:  # interpreted: bpftool shows no address
                return f"{insn.off:+d}"
            address = ksyms[insn.imm] if 0 <= insn.imm < len(ksyms) else (self.call_base + insn.imm) & MASK64
            name = self._symbol(address)
            return f"{insn.off:+d}#{name}" if name else f"{insn.off:+d}#{address:#x}"
        if insn.src == 0 and helper_name(insn.imm):
            # the helper table of bpftool's disassembler comes first; rewritten calls hold large offsets
            return f"{helper_name(insn.imm)}#{insn.imm}"
        address = (self.call_base + insn.imm) & MASK64  # helpers and kfuncs: offsets from __bpf_call_base
        return f"{self._symbol(address) or f'{address:#x}'}#{insn.imm}"

    @staticmethod
    def imm(insn: Instruction) -> str:
        low, high = insn.imm & 0xFFFFFFFF, insn.imm >> 32
        if insn.src == PSEUDO_MAP_FD:
            return f"map[id:{low}]"
        if insn.src == PSEUDO_MAP_VALUE:
            return f"map[id:{low}][0]+{high}"
        if insn.src == PSEUDO_MAP_IDX_VALUE:
            return f"map[idx:{low}]+{high}"
        if insn.src == PSEUDO_FUNC:
            return f"subprog[{low - (1 << 32) if low >= 1 << 31 else low:+d}]"
        return f"{insn.imm:#x}"


def _decode(raw: bytes) -> Instruction:
    """An instruction as the kernel left it, without pybpf.isa's checks: the verifier's rewrites use
    fields no compiler emits (a bpf-to-bpf call's offset, for one)."""
    opcode, regs, off, imm = struct.unpack_from("<BBhi", raw)
    if len(raw) == 16:
        imm = (imm & 0xFFFFFFFF) | (struct.unpack_from("<I", raw, 12)[0] << 32)
    return Instruction(opcode, regs & 0x0F, regs >> 4, off, imm)


def _text(insn: Instruction, style: str, notes: _Annotations) -> str:
    if style == "llvm":
        try:
            return format_instruction(insn, style="llvm")
        except BPFError:
            pass  # a kernel-internal instruction LLVM has no syntax for: show it the kernel's way
    return format_instruction(insn, style="kernel", call_name=notes.call, imm_name=notes.imm)


def dump_xlated(fd: int, *, style: str = "kernel", image: ProgramImage | None = None,
                btf: BTF | None = None) -> list[XlatedInsn]:
    """The verifier's view of the program behind ``fd``, one record per instruction."""
    if style not in ("kernel", "llvm"):
        raise ValueError(f"style must be 'kernel' or 'llvm', not {style!r}")
    image = image or program_image(fd)
    if not image.xlated:
        raise NotSupportedError("reading the translated instructions of this program",
                                reason="the kernel returned none (kernel.kptr_restrict or bpf_jit_harden hides them)")
    btf = btf if btf is not None else (btf_by_id(image.btf_id) if image.btf_id else None)
    sources = {r.insn: r for r in source_records(image, btf)}
    protos = {off: type_signature(btf, type_id) for off, type_id in image.func_info} if btf is not None else {}
    notes = _Annotations(image)
    out: list[XlatedInsn] = []
    data = image.xlated
    slot = 0
    while slot * 8 + 8 <= len(data):
        wide = data[slot * 8] == LD_IMM64 and (slot + 2) * 8 <= len(data)
        raw = data[slot * 8:(slot + 2 if wide else slot + 1) * 8]
        insn = _decode(raw)
        out.append(XlatedInsn(slot, insn, raw, _text(insn, style, notes), sources.get(slot),
                              protos.get(slot) or None))
        slot += 2 if wide else 1
    return out


def _capstone():
    try:
        import capstone
    except ImportError:
        raise NotSupportedError("disassembling JITed code", reason="capstone is not installed: "
                                "pip install 'pybpf[jited]' (or pip install capstone)") from None
    md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    md.syntax = capstone.CS_OPT_SYNTAX_ATT
    return md


def dump_jited(fd: int, *, image: ProgramImage | None = None, btf: BTF | None = None) -> list[JitedFunction]:
    """The JITed machine code of the program behind ``fd``, per function, disassembled."""
    image = image or program_image(fd)
    if not image.jited:
        raise NotSupportedError("dumping JITed code of this program", reason="it is not JIT-compiled "
                                "(or kernel.kptr_restrict / bpf_jit_harden hides the image)")
    md = _capstone()
    btf = btf if btf is not None else (btf_by_id(image.btf_id) if image.btf_id else None)
    records = source_records(image, btf)
    ks = kernel_symbols(reload=True)  # programs are added to kallsyms as they load
    lens = image.jited_func_lens or [len(image.jited)]
    addrs = image.jited_ksyms or [0]
    functions: list[JitedFunction] = []
    start = 0
    for index, (address, length) in enumerate(zip(addrs, lens)):
        frame = ks.resolve(address) if address else None
        name = frame.symbol if frame is not None and frame.symbol and frame.offset == 0 else f"0x{address:016x}"
        code = image.jited[start:start + length]
        by_pc: dict[int, SourceRecord] = {}
        if address and image.jited_line_info and len(image.jited_line_info) == len(records):
            for jaddr, rec in zip(image.jited_line_info, records):
                if address <= jaddr < address + length:
                    by_pc.setdefault(jaddr - address, rec)
        proto = type_signature(btf, image.func_info[index][1]) if btf and index < len(image.func_info) else ""
        func = JitedFunction(name, address, proto=proto or None)
        for ins in md.disasm(code, address):  # at the real address, so call and jump targets are absolute
            pc = ins.address - address
            func.insns.append(JitedInsn(pc, ins.mnemonic, ins.op_str, bytes(ins.bytes), by_pc.get(pc)))
        functions.append(func)
        start += length
    return functions


def source_text(record: SourceRecord, linum: bool) -> str:
    """bpftool's '; source' line, with ' [file:... line_num:... line_col:...]' when ``linum``."""
    text = record.text.lstrip()
    if linum:
        text += f" [file:{record.file} line_num:{record.line} line_col:{record.column}]"
    return text


def xlated_json(records: list[XlatedInsn], *, opcodes: bool = False, linum: bool = False) -> list[dict[str, Any]]:
    out = []
    for r in records:
        entry: dict[str, Any] = {}
        if r.proto:
            entry["proto"] = r.proto
        if r.source is not None:
            entry["src"] = r.source.text.lstrip()
            if linum:
                entry["file"] = r.source.file
                if r.source.line:
                    entry["line_num"] = r.source.line
                if r.source.column:
                    entry["line_col"] = r.source.column
        entry["disasm"] = r.text
        if opcodes:
            entry["opcodes"] = {"code": f"0x{r.insn.opcode:02x}", "src_reg": f"0x{r.insn.src:x}",
                                "dst_reg": f"0x{r.insn.dst:x}", "off": [f"0x{b:02x}" for b in r.raw[2:4]],
                                "imm": [f"0x{b:02x}" for b in r.raw[4:]]}  # ld_imm64: bpftool shows 12 bytes
        out.append(entry)
    return out


def xlated_plain(records: list[XlatedInsn], *, opcodes: bool = False, linum: bool = False) -> list[str]:
    lines = []
    for r in records:
        if r.proto:
            lines.append(f"{r.proto}:")
        if r.source is not None:
            lines.append("; " + source_text(r.source, linum))
        lines.append(f"{r.index: 4d}: {r.text}")  # printf's "% 4d"
        if opcodes:
            lines.append("       " + " ".join(f"{b:02x}" for b in r.raw[:8]) +
                         (" " + " ".join(f"{b:02x}" for b in r.raw[8:]) if len(r.raw) > 8 else ""))
    return lines


def jited_plain(functions: list[JitedFunction], *, opcodes: bool = False, linum: bool = False) -> list[str]:
    lines = []
    for i, func in enumerate(functions):
        if i:
            lines.append("")
        if func.proto:
            lines.append(f"{func.proto}:")
        lines.append(f"{func.name}:")
        for ins in func.insns:
            if ins.source is not None:
                lines.append("; " + source_text(ins.source, linum))
            text = f"{ins.pc:4x}:\t{ins.mnemonic}" + (f"\t{ins.operands}" if ins.operands else "")
            lines.append(text)
            if opcodes:
                lines.append("\t" + " ".join(f"{b:02x}" for b in ins.raw))
    return lines


def jited_json(functions: list[JitedFunction], *, opcodes: bool = False, linum: bool = False) -> list[dict[str, Any]]:
    out = []
    for func in functions:
        insns = []
        for ins in func.insns:
            entry: dict[str, Any] = {}
            if ins.source is not None:
                entry["src"] = ins.source.text.lstrip()
                if linum:
                    entry.update(file=ins.source.file, line_num=ins.source.line, line_col=ins.source.column)
            entry.update(pc=f"{ins.pc:#x}", operation=ins.mnemonic, operands=_operands(ins.operands))
            if opcodes:
                entry["opcodes"] = [f"0x{b:02x}" for b in ins.raw]
            insns.append(entry)
        out.append({**({"proto": func.proto} if func.proto else {}), "name": func.name, "insns": insns})
    return out


def _operands(text: str) -> list[str]:
    """AT&T operands split at the commas between them (not those inside '(%rax,%rbx,8)')."""
    out, depth, cur = [], 0, ""
    for ch in text:
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
            continue
        depth += (ch == "(") - (ch == ")")
        cur += ch
    if cur.strip():
        out.append(cur.strip())
    return out
