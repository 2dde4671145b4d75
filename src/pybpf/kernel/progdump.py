"""A loaded program's code, the way ``bpftool prog dump xlated|jited`` shows it.

xlated: the instructions after the verifier rewrote them, each with the C source
line its BTF line info names, calls resolved to kernel symbols (helpers sit at
``__bpf_call_base + imm``), map references as ``map[id:N]``.  The text of an
instruction comes from the instruction set's formatter (pybpf.isa) in kernel or
llvm style; when that formatter is not available a field view is printed.

jited: the machine code, split into the program's functions (jited_ksyms and
jited_func_lens), disassembled with capstone (the optional ``pybpf[jited]``
extra) in AT&T syntax like bpftool's LLVM back end, with the source lines
placed at the addresses jited_line_info gives.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import NotSupportedError
from ..isa import Instruction
from .introspect import ProgramImage, SourceRecord, btf_by_id, btf_name, program_image, source_records
from .symbolize import kernel_symbols

LD_IMM64 = 0x18
CALL = 0x85
PSEUDO_MAP_FD, PSEUDO_MAP_VALUE, PSEUDO_FUNC, PSEUDO_MAP_IDX_VALUE = 1, 2, 4, 6
PSEUDO_CALL, PSEUDO_KFUNC_CALL = 1, 2


@dataclass
class XlatedInsn:
    index: int                    # slot index, as bpftool numbers them
    insn: Instruction
    raw: bytes                    # 8 or 16 bytes
    text: str
    source: SourceRecord | None = None
    function: str | None = None   # set on the first instruction of each function


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


class _Annotations:
    """What bpftool's print_call / print_imm callbacks add: symbol names and map ids."""

    def __init__(self, image: ProgramImage):
        self.image = image
        ks = kernel_symbols()
        self.ksyms = ks
        self.call_base = ks.address_of("__bpf_call_base") or 0

    def call(self, insn: Instruction) -> str:
        if insn.src == PSEUDO_CALL:
            imm = insn.imm
            if 0 <= imm < len(self.image.jited_ksyms):
                frame = self.ksyms.resolve(self.image.jited_ksyms[imm])
                return f"{insn.off:+d}#{frame.symbol}" if frame.symbol and not frame.offset else \
                    f"{insn.off:+d}#{self.image.jited_ksyms[imm]:#x}"
            return f"{insn.off:+d}"
        if insn.src == PSEUDO_KFUNC_CALL:
            return f"kernel-function#{insn.imm}"
        address = (self.call_base + insn.imm) & (2**64 - 1)
        frame = self.ksyms.resolve(address)
        name = frame.symbol if frame.symbol and frame.offset == 0 else f"{address:#x}"
        return f"{name}#{insn.imm}"

    @staticmethod
    def imm(insn: Instruction) -> str:
        low, high = insn.imm & 0xFFFFFFFF, insn.imm >> 32
        low_signed = low - (1 << 32) if low >= 1 << 31 else low
        high_signed = high - (1 << 32) if high >= 1 << 31 else high
        if insn.src == PSEUDO_MAP_FD:
            return f"map[id:{low_signed}]"
        if insn.src == PSEUDO_MAP_VALUE:
            return f"map[id:{low_signed}][0]+{high_signed}"
        if insn.src == PSEUDO_MAP_IDX_VALUE:
            return f"map[idx:{low_signed}]+{high_signed}"
        if insn.src == PSEUDO_FUNC:
            return f"subprog[{low_signed:+d}]"
        return f"{insn.imm:#x}"


def _isa_formatter(style: str) -> Callable[..., str] | None:
    """The instruction set's formatter (pybpf.isa.format_instruction), when this checkout has one."""
    from .. import isa

    return getattr(isa, "format_instruction", None)


def _field_view(insn: Instruction, notes: _Annotations) -> str:
    """Without the ISA formatter: opcode and fields, calls and map references resolved."""
    text = f"({insn.opcode:02x}) "
    if insn.opcode == CALL:
        return text + ("call pc" if insn.src == PSEUDO_CALL else "call ") + notes.call(insn)
    if insn.opcode == LD_IMM64:
        return text + f"r{insn.dst} = {notes.imm(insn)}"
    return text + f"dst r{insn.dst} src r{insn.src} off {insn.off} imm {insn.imm}"


def _text(insn: Instruction, style: str, notes: _Annotations, formatter: Callable[..., str] | None) -> str:
    if formatter is not None:
        return formatter(insn, style=style, call_name=notes.call, imm_name=notes.imm)
    return _field_view(insn, notes)


def dump_xlated(fd: int, *, style: str = "kernel", image: ProgramImage | None = None,
                btf: Any = None) -> list[XlatedInsn]:
    """The verifier's view of the program behind ``fd``, one record per instruction."""
    if style not in ("kernel", "llvm"):
        raise ValueError(f"style must be 'kernel' or 'llvm', not {style!r}")
    image = image or program_image(fd)
    if not image.xlated:
        raise NotSupportedError("reading the translated instructions of this program",
                                reason="the kernel returned none (kernel.kptr_restrict or bpf_jit_harden hides them)")
    btf = btf if btf is not None else (btf_by_id(image.btf_id) if image.btf_id else None)
    sources = {r.insn: r for r in source_records(image, btf)}
    functions = {off: (btf_name(btf, type_id) if btf else "") for off, type_id in image.func_info}
    notes = _Annotations(image)
    formatter = _isa_formatter(style)
    out: list[XlatedInsn] = []
    data = image.xlated
    slot = 0
    while slot * 8 < len(data):
        wide = data[slot * 8] == LD_IMM64 and (slot + 1) * 8 < len(data)
        raw = data[slot * 8:(slot + 2 if wide else slot + 1) * 8]
        insn = Instruction.decode(raw, 0)
        out.append(XlatedInsn(slot, insn, raw, _text(insn, style, notes, formatter), sources.get(slot),
                              functions.get(slot)))
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


def dump_jited(fd: int, *, image: ProgramImage | None = None, btf: Any = None) -> list[JitedFunction]:
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
    for address, length in zip(addrs, lens):
        frame = ks.resolve(address) if address else None
        name = frame.symbol if frame is not None and frame.symbol and frame.offset == 0 else f"{address:#x}"
        code = image.jited[start:start + length]
        by_pc: dict[int, SourceRecord] = {}
        if address and image.jited_line_info and len(image.jited_line_info) == len(records):
            for jaddr, rec in zip(image.jited_line_info, records):
                if address <= jaddr < address + length:
                    by_pc.setdefault(jaddr - address, rec)
        func = JitedFunction(name, address)
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
        if r.function:
            entry["proto"] = r.function
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
                                "imm": [f"0x{b:02x}" for b in (r.raw[4:8] + r.raw[12:16] if len(r.raw) == 16
                                                                else r.raw[4:8])]}
        out.append(entry)
    return out


def xlated_plain(records: list[XlatedInsn], *, opcodes: bool = False, linum: bool = False) -> list[str]:
    lines = []
    for r in records:
        if r.function:
            lines.append(f"{r.function}:")
        if r.source is not None:
            lines.append("; " + source_text(r.source, linum))
        lines.append(f"{r.index:4d}: {r.text}")
        if opcodes:
            lines.append("       " + " ".join(f"{b:02x}" for b in r.raw[:8]) +
                         (" " + " ".join(f"{b:02x}" for b in r.raw[8:]) if len(r.raw) > 8 else ""))
    return lines


def jited_plain(functions: list[JitedFunction], *, opcodes: bool = False, linum: bool = False) -> list[str]:
    lines = []
    for i, func in enumerate(functions):
        if i:
            lines.append("")
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
        out.append({"name": func.name, "insns": insns})
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
