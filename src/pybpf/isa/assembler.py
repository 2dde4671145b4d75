"""Assembly text to programs: LLVM syntax, kernel syntax and the conformance-suite syntax.

One line is one instruction, a label (``name:``), a comment or listing
furniture.  Three syntaxes are accepted, even mixed:

* LLVM's (``r1 = *(u64 *)(r2 + 0x8)``, ``if r1 > 0x3 goto +0x2``, ``call 0x1``,
  labels as jump targets), including whole ``llvm-objdump -d`` listings with
  line numbers, raw bytes (which then decide the encoding), section and symbol
  headers, branch annotations and ``-r`` relocation lines;
* the kernel's (``(bf) r1 = r10``, ``goto pc+2``, ``call bpf_map_lookup_elem#1``,
  ``r1 = map[id:5]``), as the verifier log and ``bpftool prog dump xlated`` print;
* the BPF conformance suite's / uBPF's (``mov %r0, 1``, ``ldxw %r0, [%r1+4]``,
  ``lock fetch add [%r10-8], %r1``, ``call local label``, ``ja exit``).

Every error is an :class:`~pybpf.errors.AssemblerError` naming the line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..errors import AssemblerError, InstructionError
from .helpers import helper_id
from .instruction import MAX_REGISTER, SLOT_SIZE, Instruction, Program
from .opcodes import (
    ADDR_SPACE_CAST_OFF, CALL, CALLX, EXIT, LD_IMM64, AluOp, AtomicOp, Class, JmpOp, Mode, PseudoCall, PseudoLoad,
    Size, Source,
)

_MASK64 = (1 << 64) - 1

_ALU_BY_SYMBOL = {
    "+=": (AluOp.ADD, 0), "-=": (AluOp.SUB, 0), "*=": (AluOp.MUL, 0), "/=": (AluOp.DIV, 0), "|=": (AluOp.OR, 0),
    "&=": (AluOp.AND, 0), "<<=": (AluOp.LSH, 0), ">>=": (AluOp.RSH, 0), "%=": (AluOp.MOD, 0), "^=": (AluOp.XOR, 0),
    "s>>=": (AluOp.ARSH, 0), "s/=": (AluOp.DIV, 1), "s%=": (AluOp.MOD, 1),
}
_JMP_BY_SYMBOL = {
    "==": JmpOp.JEQ, "!=": JmpOp.JNE, ">": JmpOp.JGT, ">=": JmpOp.JGE, "<": JmpOp.JLT, "<=": JmpOp.JLE,
    "s>": JmpOp.JSGT, "s>=": JmpOp.JSGE, "s<": JmpOp.JSLT, "s<=": JmpOp.JSLE, "&": JmpOp.JSET,
}
_SIZES = {"8": Size.B, "16": Size.H, "32": Size.W, "64": Size.DW}
_ATOMIC_BY_SYMBOL = {"+=": AtomicOp.ADD, "|=": AtomicOp.OR, "&=": AtomicOp.AND, "^=": AtomicOp.XOR}
_ATOMIC_BY_NAME = {"add": AtomicOp.ADD, "or": AtomicOp.OR, "and": AtomicOp.AND, "xor": AtomicOp.XOR}

_NUM = r"[+-]?\s*(?:0[xX][0-9a-fA-F]+|\d+)"
_REG = r"[rw]\d+"
_TYPE = r"\*?\(\s*([us])(8|16|32|64)\s*\*\s*\)"  # "*(u32 *)" for a dereference, "(u32 *)" for a pointer
_ADDRESS = r"(r\d+)\s*(?:([+-])\s*(0[xX][0-9a-fA-F]+|\d+))?"  # "r1 + 0x8", "r10 -4"
_MEM = rf"\(\s*{_ADDRESS}\s*\)"
_TARGET = r"(?:pc)?\s*[+-]\s*(?:0[xX][0-9a-fA-F]+|\d+)|[A-Za-z_.$][\w.$]*"

_RE_IF = re.compile(rf"if\s+({_REG})\s*(==|!=|s?[<>]=?|&)\s*({_REG}|{_NUM})\s+goto\s+({_TARGET})$")
_RE_GOTO = re.compile(rf"(goto|gotol|may_goto|ja|ja32)\s+({_TARGET})$")
_RE_ASSIGN = re.compile(rf"({_REG})\s*(s>>=|s/=|s%=|<<=|>>=|[-+*/|&%^]=|=)\s*(.+)$")
_RE_STORE = re.compile(rf"{_TYPE}\s*{_MEM}\s*=\s*({_REG}|{_NUM})$")
_RE_LOCK = re.compile(rf"lock\s+{_TYPE}\s*{_MEM}\s*(\+=|\|=|&=|\^=)\s*({_REG})$")
_RE_LOAD = re.compile(rf"{_TYPE}\s*{_MEM}$")
_RE_SKB = re.compile(rf"{_TYPE}\s*skb\[\s*(?:(r\d+)\s*(?:([+-])\s*({_NUM}))?|({_NUM}))\s*\]$")
_RE_END = re.compile(rf"(le|be|bswap)(16|32|64)\s+({_REG})$")
_RE_MOVSX = re.compile(rf"\(s(8|16|32)\)\s*({_REG})$")
_RE_NEG = re.compile(rf"-\s*({_REG})$")
_RE_ASC = re.compile(rf"addr_space_cast\(\s*({_REG})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*\)$")
_RE_FETCH = re.compile(rf"atomic(?:64)?_fetch_(add|or|and|xor)\(\s*{_TYPE}\s*{_MEM}\s*,\s*({_REG})\s*\)$")
_RE_XCHG_LLVM = re.compile(rf"xchg(?:32)?_(32|64)\(\s*{_ADDRESS}\s*,\s*({_REG})\s*\)$")
_RE_CMPXCHG_LLVM = re.compile(rf"cmpxchg(?:32)?_(32|64)\(\s*{_ADDRESS}\s*,\s*[rw]0\s*,\s*({_REG})\s*\)$")
_RE_XCHG_KERNEL = re.compile(rf"atomic(?:64)?_xchg\(\s*{_TYPE}\s*{_MEM}\s*,\s*({_REG})\s*\)$")
_RE_CMPXCHG_KERNEL = re.compile(rf"atomic(?:64)?_cmpxchg\(\s*{_TYPE}\s*{_MEM}\s*,\s*[rw]0\s*,\s*({_REG})\s*\)$")
_RE_LOAD_ACQ = re.compile(rf"load_acquire\(\s*{_TYPE}\s*{_MEM}\s*\)$")
_RE_STORE_REL = re.compile(rf"store_release\(\s*{_TYPE}\s*{_MEM}\s*,\s*({_REG})\s*\)$")
_RE_LD_PSEUDO = re.compile(rf"ld_pseudo\s+(r\d+)\s*,\s*({_NUM})\s*,\s*({_NUM})(?:\s*,\s*({_NUM}))?$")
_RE_MAP = re.compile(r"map\[(id|idx):(\d+)\](?:(\[0\])?\+(\d+))?$")
_RE_PSEUDO_OTHER = re.compile(r"(subprog)\[([+-]\d+)\]$|(btf_id)\[(\d+)\](?:\[fd:(\d+)\])?$")

# Listing furniture
_RE_INDEX = re.compile(r"\s*(\d+):\s*")
_RE_RAW = re.compile(r"((?:[0-9a-f]{2} ){7}[0-9a-f]{2}(?: (?:[0-9a-f]{2} ){7}[0-9a-f]{2})?)\t\s*")
_RE_RAW_BYTE = re.compile(r"[0-9a-f]{2}\t<unknown>$")
_RE_OPCODE = re.compile(r"\(([0-9a-fA-F]{2})\)\s*")
_RE_SECTION = re.compile(r"Disassembly of section (.*):$")
_RE_SYMBOL = re.compile(r"([0-9a-f]{8,16}) <(.+)>:$")
_RE_LABEL = re.compile(r"([A-Za-z_.$][\w.$]*|<[^<>]+>):$")
_RE_RELOC = re.compile(r"[0-9a-f]{8,16}:\s+(R_BPF_\w+|CO-RE\b)")
_RE_ANNOTATION = re.compile(r"\s+<[^<>]*>$")
_RE_FUNC_HEADER = re.compile(r"[\w\s\*]+\(.*\):$")  # bpftool: "int prog(void * ctx):"
_RE_COMMENT = re.compile(r"\s(#|//).*$")  # after a blank only: "uretprobe//proc/..." is a section name
_RE_REG_ONLY = re.compile(_REG)
_RE_NUM_ONLY = re.compile(_NUM)
_RE_NUM_LL = re.compile(rf"{_NUM}\s*ll")
_HEX = frozenset("0123456789abcdef")


def _num(text: str, what: str) -> tuple[int, bool]:
    t = text.replace(" ", "")
    try:
        return int(t, 0), "x" in t.lower()
    except ValueError:
        raise ValueError(f"{what} {text!r} is not a number") from None


def _imm32(text: str, what: str = "immediate") -> int:
    value, is_hex = _num(text, what)
    if -0x80000000 <= value <= 0x7FFFFFFF:
        return value
    if is_hex and 0x80000000 <= value <= 0xFFFFFFFF:
        return value - (1 << 32)
    raise ValueError(f"{what} {text.strip()} does not fit in 32 bits")


def _off16(text: str, what: str = "offset") -> int:
    value, is_hex = _num(text, what)
    if -0x8000 <= value <= 0x7FFF:
        return value
    if is_hex and 0x8000 <= value <= 0xFFFF:
        return value - (1 << 16)
    raise ValueError(f"{what} {text.strip()} does not fit in 16 bits")


def _imm64(text: str) -> int:
    value, _ = _num(text, "immediate")
    if not -(1 << 63) <= value < 1 << 64:
        raise ValueError(f"immediate {text.strip()} does not fit in 64 bits")
    return value & _MASK64


_REGISTERS = {f"{prefix}{kind}{n}": (n, kind == "r") for prefix in ("", "%") for kind in "rw" for n in range(11)}


def _reg(text: str) -> tuple[int, bool]:
    """(number, is_64bit) of r0-r10 / w0-w10."""
    found = _REGISTERS.get(text)
    if found is not None:
        return found
    t = text.strip()
    if t.startswith("%"):
        t = t[1:]
    if len(t) >= 2 and t[0] in "rw" and t[1:].isdigit():
        n = int(t[1:])
        if n <= MAX_REGISTER:
            return n, t[0] == "r"
    raise ValueError(f"invalid register {text.strip()!r} (registers are r0-r10, w0-w10 for 32 bits)")


def _signed(sign: str | None, num: str, parse) -> int:
    """``base - 0x8000``, ``skb[r1 + -4]``: apply the sign before the range check (so -0x8000 fits)."""
    num = num.replace(" ", "")
    if sign == "-":
        num = num[1:] if num.startswith("-") else "-" + num.lstrip("+")
    return parse(num)


def _size(sign: str, bits: str) -> int:
    """The size field of an unsigned access ``u8``..``u64``."""
    if sign == "s":
        raise ValueError("a signed type is only allowed in a load (s8/s16/s32)")
    return _SIZES[bits]


def _mem(reg: str, sign: str | None, num: str | None) -> tuple[int, int]:
    base, _ = _reg(reg)
    if num is None:
        return base, 0
    return base, _signed(sign, num, _off16)


@dataclass
class _Pending:
    """An instruction whose offset or imm waits for a label's position."""

    index: int
    label: str
    field: str  # "off" or "imm"
    line: int
    text: str


@dataclass
class _Section:
    name: str
    insns: list[Instruction] = field(default_factory=list)
    slot: int = 0
    labels: dict[str, int] = field(default_factory=dict)
    pending: list[_Pending] = field(default_factory=list)
    first_exit: int | None = None

    def add(self, insn: Instruction) -> int:
        self.insns.append(insn)
        if insn.opcode == EXIT and self.first_exit is None:
            self.first_exit = self.slot
        self.slot += insn.slots
        return len(self.insns) - 1


class _Assembler:
    def __init__(self) -> None:
        self.sections: list[_Section] = [_Section("")]

    @property
    def sec(self) -> _Section:
        return self.sections[-1]

    # -- driver ---------------------------------------------------------------

    def run(self, text: str) -> None:
        for lineno, raw in enumerate(text.splitlines(), 1):
            try:
                self.line(raw, lineno)
            except AssemblerError:
                raise
            except (ValueError, InstructionError) as exc:
                raise AssemblerError(str(exc), lineno, raw) from None
        for sec in self.sections:
            self.finish(sec)

    def line(self, raw: str, lineno: int) -> None:
        s = raw.strip()
        if not s or s[0] in ";#" or s.startswith("//"):
            return
        if " #" in s or "//" in s or "\t#" in s:
            s = _RE_COMMENT.sub("", s).strip()
            if not s:
                return
        m = _RE_INDEX.match(s) if s[0].isdigit() and "R_BPF_" not in s and "CO-RE" not in s else None
        if m is None:
            # instructions never end in ':' nor mention relocations: only then can this be furniture
            if (s[-1] == ":" or s == "..." or "R_BPF_" in s or "CO-RE" in s or "file format" in s
                    or s.startswith("Symbol table")) and self.furniture(s, lineno, raw):
                return
        else:
            s = s[m.end():]
            if len(s) > 23 and s[2] == " " and s[0] in _HEX and s[1] in _HEX:
                m = _RE_RAW.match(s)
                if m:
                    self.raw_bytes(m.group(1), lineno, raw)
                    return
            if _RE_RAW_BYTE.match(s):
                raise AssemblerError("a single byte that llvm-objdump could not decode (truncated instruction)",
                                     lineno, raw)
        opcode = None
        if s[0] == "(":
            m = _RE_OPCODE.match(s)
            if m:
                opcode = int(m.group(1), 16)
                s = s[m.end():]
        if s[-1] == ">":
            if s == "<unknown>":
                raise AssemblerError("llvm-objdump could not decode this instruction, so its text says nothing "
                                     "about its bytes; disassemble with --exact or --show-raw-insn", lineno, raw)
            s = _RE_ANNOTATION.sub("", s)
        insn = self.instruction(s, opcode, lineno, raw)
        if opcode is not None and insn.opcode != opcode:
            raise AssemblerError(f"the text is instruction ({insn.opcode:02x}), but the line says ({opcode:02x})",
                                 lineno, raw)

    def furniture(self, s: str, lineno: int, raw: str) -> bool:
        """Listing lines that are no instructions: headers, symbols, labels, relocations. True if handled."""
        if s.endswith(("file format elf64-bpf", "file format elf64-bpfel")) or s.startswith("Symbol table"):
            return True
        m = _RE_SECTION.match(s)
        if m:
            if self.sec.insns or self.sec.name or self.sec.labels:
                self.sections.append(_Section(m.group(1)))
            else:
                self.sec.name = m.group(1)
            return True
        m = _RE_SYMBOL.match(s)
        if m:
            slot = int(m.group(1), 16) // SLOT_SIZE
            if slot != self.sec.slot:
                raise AssemblerError(f"symbol <{m.group(2)}> is at slot {slot} but the listing is at slot "
                                     f"{self.sec.slot}", lineno, raw)
            self.sec.labels.setdefault(m.group(2), slot)
            return True
        if s == "...":
            raise AssemblerError("a '...' line stands for skipped zero bytes, which are no instructions; "
                                 "disassemble with --exact so that nothing is skipped", lineno, raw)
        m = _RE_RELOC.match(s)
        if m:
            if m.group(1) == "R_BPF_64_32" and self.sec.insns:
                last = self.sec.insns[-1]
                if last.opcode == CALL and last.src == PseudoCall.HELPER:  # relocated call: a bpf-to-bpf call
                    self.sec.insns[-1] = last.replace(src=PseudoCall.CALL)
            return True
        m = _RE_LABEL.match(s)
        if m:
            name = m.group(1).strip("<>")
            if name in self.sec.labels and self.sec.labels[name] != self.sec.slot:
                raise AssemblerError(f"label {name!r} is defined twice", lineno, raw)
            self.sec.labels[name] = self.sec.slot
            return True
        return _RE_FUNC_HEADER.match(s) is not None

    def raw_bytes(self, hex_text: str, lineno: int, raw: str) -> None:
        data = bytes.fromhex(hex_text.replace(" ", ""))
        try:
            insn = Instruction.decode(data)
        except InstructionError as exc:
            raise AssemblerError(f"the bytes {hex_text} are no valid instruction: {exc}", lineno, raw) from None
        if insn.slots * SLOT_SIZE != len(data):
            raise AssemblerError(f"{len(data)} bytes given for a {insn.slots * SLOT_SIZE}-byte instruction",
                                 lineno, raw)
        self.sec.add(insn)

    def finish(self, sec: _Section) -> None:
        labels = dict(sec.labels)
        if "exit" not in labels and sec.first_exit is not None:
            labels["exit"] = sec.first_exit  # the conformance suite's implicit label
        slots = []
        slot = 0
        for insn in sec.insns:
            slots.append(slot)
            slot += insn.slots
        for p in sec.pending:
            if p.label not in labels:
                raise AssemblerError(f"unknown label {p.label!r}", p.line, p.text)
            delta = labels[p.label] - slots[p.index] - 1
            try:
                if p.field == "off" and not -0x8000 <= delta <= 0x7FFF:
                    raise ValueError(f"label {p.label!r} is {delta} slots away, beyond the 16-bit jump range; "
                                     f"use gotol")
                sec.insns[p.index] = sec.insns[p.index].replace(**{p.field: delta}).validate()
            except (ValueError, InstructionError) as exc:
                raise AssemblerError(str(exc), p.line, p.text) from None

    # -- one instruction --------------------------------------------------------

    def emit(self, insn: Instruction, lineno: int, raw: str, label: str | None = None,
             label_field: str = "off") -> Instruction:
        index = self.sec.add(insn)
        if label is not None:
            self.sec.pending.append(_Pending(index, label, label_field, lineno, raw))
        else:
            insn.validate()
        return insn

    @staticmethod
    def target(text: str, parse=_off16) -> tuple[int, str | None]:
        """A jump target: (slot offset, None) or (0, label); ``parse`` checks the field's range."""
        t = text.strip()
        if t.startswith("pc"):
            t = t[2:].strip()
        if t[:1] in "+-":
            return parse(t, "jump offset"), None
        return 0, t

    def instruction(self, s: str, opcode: int | None, lineno: int, raw: str) -> Instruction:
        first = s.split(None, 1)[0]
        if first in _CONFORMANCE and "=" not in s and not (first == "lock" and "*" in s):
            return self.conformance(s, lineno, raw)
        if s == "exit":
            return self.emit(Instruction(EXIT), lineno, raw)
        if first[0] in "rw" and first[1:2].isdigit():
            m = _RE_ASSIGN.match(s)
            if m:
                return self.assign(m.group(1), m.group(2), m.group(3).strip(), opcode, lineno, raw)
        if first in ("call", "callx"):
            return self.call(s, lineno, raw)
        m = _RE_IF.match(s)
        if m:
            dst, wide = _reg(m.group(1))
            op = _JMP_BY_SYMBOL[m.group(2)]
            cls = Class.JMP if wide else Class.JMP32
            off, label = self.target(m.group(4))
            if _RE_REG_ONLY.fullmatch(m.group(3)):
                src, wide2 = _reg(m.group(3))
                if wide2 != wide:
                    raise ValueError("a comparison mixes 64-bit (r) and 32-bit (w) registers")
                insn = Instruction(cls | op | Source.X, dst, src, off)
            else:
                insn = Instruction(cls | op | Source.K, dst, 0, off, _imm32(m.group(3)))
            return self.emit(insn, lineno, raw, label)
        m = _RE_GOTO.match(s)
        if m:
            kind = m.group(1)
            if kind in ("gotol", "ja32"):
                imm, label = self.target(m.group(2), _imm32)
                return self.emit(Instruction(Class.JMP32 | JmpOp.JA, imm=imm), lineno, raw, label, "imm")
            off, label = self.target(m.group(2))
            op = Class.JMP | (JmpOp.JCOND if kind == "may_goto" else JmpOp.JA)
            return self.emit(Instruction(op, off=off), lineno, raw, label)
        m = _RE_LOCK.match(s)
        if m:
            size = _size(m.group(1), m.group(2))
            dst, off = _mem(m.group(3), m.group(4), m.group(5))
            src, _ = _reg(m.group(7))
            return self.emit(Instruction(Class.STX | Mode.ATOMIC | size, dst, src, off,
                                         _ATOMIC_BY_SYMBOL[m.group(6)]), lineno, raw)
        m = _RE_STORE.match(s)
        if m:
            size = _size(m.group(1), m.group(2))
            dst, off = _mem(m.group(3), m.group(4), m.group(5))
            if _RE_REG_ONLY.fullmatch(m.group(6)):
                src, _ = _reg(m.group(6))
                return self.emit(Instruction(Class.STX | Mode.MEM | size, dst, src, off), lineno, raw)
            return self.emit(Instruction(Class.ST | Mode.MEM | size, dst, 0, off, _imm32(m.group(6))), lineno, raw)
        m = _RE_STORE_REL.match(s)
        if m:
            size = _size(m.group(1), m.group(2))
            dst, off = _mem(m.group(3), m.group(4), m.group(5))
            src, _ = _reg(m.group(6))
            return self.emit(Instruction(Class.STX | Mode.ATOMIC | size, dst, src, off, AtomicOp.STORE_REL),
                             lineno, raw)
        m = _RE_LD_PSEUDO.match(s)
        if m:
            dst, _ = _reg(m.group(1))
            src, _ = _num(m.group(2), "pseudo source")
            lo = _imm32(m.group(3)) & 0xFFFFFFFF
            hi = (_imm32(m.group(4)) & 0xFFFFFFFF) if m.group(4) else 0
            return self.emit(Instruction(LD_IMM64, dst, src, 0, lo | hi << 32), lineno, raw)
        if re.match(r"[a-z_][\w.]*(\s|$)", s) and "=" not in s:
            raise ValueError(f"unknown mnemonic {first!r}")
        raise ValueError(f"cannot parse {s!r} as an instruction")

    def assign(self, dst_text: str, symbol: str, rhs: str, opcode: int | None, lineno: int, raw: str) -> Instruction:
        dst, wide = _reg(dst_text)
        cls = Class.ALU64 if wide else Class.ALU
        if symbol != "=":
            op, signed = _ALU_BY_SYMBOL[symbol]
            if _RE_REG_ONLY.fullmatch(rhs):
                src, wide2 = _reg(rhs)
                if wide2 != wide:
                    raise ValueError("the operation mixes 64-bit (r) and 32-bit (w) registers")
                return self.emit(Instruction(cls | op | Source.X, dst, src, signed), lineno, raw)
            return self.emit(Instruction(cls | op | Source.K, dst, 0, signed, _imm32(rhs)), lineno, raw)
        if _RE_REG_ONLY.fullmatch(rhs):
            src, wide2 = _reg(rhs)
            if wide2 != wide:
                raise ValueError("a move between 64-bit (r) and 32-bit (w) registers; write both alike")
            return self.emit(Instruction(cls | AluOp.MOV | Source.X, dst, src), lineno, raw)
        if rhs.endswith("ll") and _RE_NUM_LL.fullmatch(rhs):
            self.need_r(wide, "a 64-bit load")
            return self.emit(Instruction(LD_IMM64, dst, 0, 0, _imm64(rhs[:-2])), lineno, raw)
        if _RE_NUM_ONLY.fullmatch(rhs):
            value, _ = _num(rhs, "immediate")
            if opcode == LD_IMM64 or not -0x80000000 <= value <= 0xFFFFFFFF:
                self.need_r(wide, "a 64-bit load")
                return self.emit(Instruction(LD_IMM64, dst, 0, 0, _imm64(rhs)), lineno, raw)
            return self.emit(Instruction(cls | AluOp.MOV | Source.K, dst, 0, 0, _imm32(rhs)), lineno, raw)
        m = _RE_NEG.match(rhs)
        if m:
            src, wide2 = _reg(m.group(1))
            if src != dst or wide2 != wide:
                raise ValueError("negation works in place: write rN = -rN")
            return self.emit(Instruction(cls | AluOp.NEG, dst), lineno, raw)
        m = _RE_MOVSX.match(rhs)
        if m:
            src, wide2 = _reg(m.group(2))
            if wide2 != wide:
                raise ValueError("a sign-extending move between 64-bit (r) and 32-bit (w) registers")
            return self.emit(Instruction(cls | AluOp.MOV | Source.X, dst, src, int(m.group(1))), lineno, raw)
        m = _RE_LOAD.match(rhs)
        if m:
            mode = Mode.MEMSX if m.group(1) == "s" else Mode.MEM
            size = _SIZES[m.group(2)]
            if mode == Mode.MEMSX and size == Size.DW:
                raise ValueError("there is no sign-extending 64-bit load; use u64")
            src, off = _mem(m.group(3), m.group(4), m.group(5))
            return self.emit(Instruction(Class.LDX | mode | size, dst, src, off), lineno, raw)
        m = _RE_SKB.match(rhs)
        if m:
            if dst != 0:
                raise ValueError("packet loads (skb[...]) always load into r0")
            size = _size(m.group(1), m.group(2))
            if m.group(6) is not None:
                return self.emit(Instruction(Class.LD | Mode.ABS | size, 0, 0, 0, _imm32(m.group(6))), lineno, raw)
            src, _ = _reg(m.group(3))
            imm = _signed(m.group(4), m.group(5), _imm32) if m.group(5) else 0
            return self.emit(Instruction(Class.LD | Mode.IND | size, 0, src, 0, imm), lineno, raw)
        m = _RE_END.match(rhs)
        if m:
            src, _ = _reg(m.group(3))
            if src != dst:
                raise ValueError("byte swaps work in place: write rN = be16 rN")
            op = {"le": Class.ALU | AluOp.END | Source.K, "be": Class.ALU | AluOp.END | Source.X,
                  "bswap": Class.ALU64 | AluOp.END}[m.group(1)]
            return self.emit(Instruction(op, dst, 0, 0, int(m.group(2))), lineno, raw)
        m = _RE_ASC.match(rhs)
        if m:
            src, _ = _reg(m.group(1))
            dst_as, src_as = _num(m.group(2), "address space")[0], _num(m.group(3), "address space")[0]
            if not (0 <= dst_as <= 0xFFFF and 0 <= src_as <= 0xFFFF):
                raise ValueError("address spaces are 16-bit numbers")
            imm = _imm32(hex(dst_as << 16 | src_as))
            return self.emit(Instruction(Class.ALU64 | AluOp.MOV | Source.X, dst, src, ADDR_SPACE_CAST_OFF, imm),
                             lineno, raw)
        m = _RE_FETCH.match(rhs)
        if m:
            size = _size(m.group(2), m.group(3))
            base, off = _mem(m.group(4), m.group(5), m.group(6))
            src, _ = _reg(m.group(7))
            if src != dst:
                raise ValueError("a fetching atomic returns the old value in its source register: rS = ...(rS)")
            return self.emit(Instruction(Class.STX | Mode.ATOMIC | size, base, src, off,
                                         _ATOMIC_BY_NAME[m.group(1)] | 1), lineno, raw)
        for pattern, op in ((_RE_XCHG_LLVM, AtomicOp.XCHG), (_RE_CMPXCHG_LLVM, AtomicOp.CMPXCHG)):
            m = pattern.match(rhs)
            if m:
                base, off = _mem(m.group(2), m.group(3), m.group(4))
                src, _ = _reg(m.group(5))
                return self.atomic_exchange(op, _SIZES[m.group(1)], dst, base, src, off, lineno, raw)
        for pattern, op in ((_RE_XCHG_KERNEL, AtomicOp.XCHG), (_RE_CMPXCHG_KERNEL, AtomicOp.CMPXCHG)):
            m = pattern.match(rhs)
            if m:
                size = _size(m.group(1), m.group(2))
                base, off = _mem(m.group(3), m.group(4), m.group(5))
                src, _ = _reg(m.group(6))
                return self.atomic_exchange(op, size, dst, base, src, off, lineno, raw)
        m = _RE_LOAD_ACQ.match(rhs)
        if m:
            size = _size(m.group(1), m.group(2))
            src, off = _mem(m.group(3), m.group(4), m.group(5))
            return self.emit(Instruction(Class.STX | Mode.ATOMIC | size, dst, src, off, AtomicOp.LOAD_ACQ),
                             lineno, raw)
        m = _RE_MAP.match(rhs)
        if m:
            self.need_r(wide, "a 64-bit load")
            number, extra = int(m.group(2)), int(m.group(4) or 0)
            if m.group(1) == "id":
                if m.group(4) is not None and not m.group(3):
                    raise ValueError("a map value reference by id is written map[id:N][0]+OFF")
                src = PseudoLoad.MAP_VALUE if m.group(4) is not None else PseudoLoad.MAP_FD
            else:
                src = PseudoLoad.MAP_IDX_VALUE if m.group(4) is not None else PseudoLoad.MAP_IDX
            return self.emit(Instruction(LD_IMM64, dst, src, 0, (number & 0xFFFFFFFF) | (extra & 0xFFFFFFFF) << 32),
                             lineno, raw)
        m = _RE_PSEUDO_OTHER.match(rhs)
        if m:
            self.need_r(wide, "a 64-bit load")
            if m.group(1):
                return self.emit(Instruction(LD_IMM64, dst, PseudoLoad.FUNC, 0, int(m.group(2)) & 0xFFFFFFFF),
                                 lineno, raw)
            value = int(m.group(4)) & 0xFFFFFFFF | (int(m.group(5) or 0) & 0xFFFFFFFF) << 32
            return self.emit(Instruction(LD_IMM64, dst, PseudoLoad.BTF_ID, 0, value), lineno, raw)
        raise ValueError(f"cannot parse the right-hand side {rhs!r}")

    def atomic_exchange(self, op: int, size: int, dst: int, base: int, src: int, off: int,
                        lineno: int, raw: str) -> Instruction:
        if op == AtomicOp.CMPXCHG and dst != 0:
            raise ValueError("cmpxchg compares with and returns into r0: r0 = cmpxchg_64(...)")
        if op == AtomicOp.XCHG and dst != src:
            raise ValueError("xchg returns the old value in its source register: rS = xchg_64(..., rS)")
        return self.emit(Instruction(Class.STX | Mode.ATOMIC | size, base, src, off, op), lineno, raw)

    @staticmethod
    def need_r(wide: bool, what: str) -> None:
        if not wide:
            raise ValueError(f"{what} needs a 64-bit register (rN)")

    def call(self, s: str, lineno: int, raw: str) -> Instruction:
        parts = s.split(None, 1)
        if len(parts) < 2:
            raise ValueError(f"{parts[0]} needs a target")
        word, arg = parts[0], parts[1].strip()
        if word == "callx" or arg.startswith(("%r", "%w")):
            reg, _ = _reg(arg)
            return self.emit(Instruction(CALLX, reg), lineno, raw)
        words = arg.split()
        if words[0] in ("local", "helper", "runtime", "kfunc") and len(words) >= 2:
            mode, value = words[0], words[1].rstrip(",")
            if mode == "local":
                offset, label = self.target(value if not value[:1].isdigit() else "+" + value, _imm32)
                return self.emit(Instruction(CALL, 0, PseudoCall.CALL, 0, offset), lineno, raw, label, "imm")
            if mode == "helper":
                if value.startswith("%"):
                    return self.emit(Instruction(CALLX, _reg(value)[0]), lineno, raw)
                return self.emit(Instruction(CALL, 0, 0, 0, _imm32(value)), lineno, raw)
            module = 0
            if len(words) == 4 and words[2] == "module":
                module = _off16(words[3], "kfunc module index")
            elif len(words) != 2:
                raise ValueError(f"cannot parse call {arg!r}")
            return self.emit(Instruction(CALL, 0, PseudoCall.KFUNC_CALL, module, _imm32(value)), lineno, raw)
        if len(words) != 1:
            raise ValueError(f"cannot parse call {arg!r}")
        if arg.startswith("pc") or arg[:1] in "+-":
            offset, label = self.target(arg.split("#", 1)[0], _imm32)
            return self.emit(Instruction(CALL, 0, PseudoCall.CALL, 0, offset), lineno, raw, label, "imm")
        if "#" in arg:  # kernel: name#imm
            name, number = arg.rsplit("#", 1)
            src = PseudoCall.KFUNC_CALL if name == "kernel-function" else PseudoCall.HELPER
            return self.emit(Instruction(CALL, 0, src, 0, _imm32(number)), lineno, raw)
        if _RE_NUM_ONLY.fullmatch(arg):
            return self.emit(Instruction(CALL, 0, 0, 0, _imm32(arg)), lineno, raw)
        hid = helper_id(arg)
        if hid is not None and arg not in self.sec.labels:
            return self.emit(Instruction(CALL, 0, 0, 0, hid), lineno, raw)
        return self.emit(Instruction(CALL, 0, PseudoCall.CALL, 0, 0), lineno, raw, arg, "imm")

    # -- the conformance suite's syntax ---------------------------------------

    def conformance(self, s: str, lineno: int, raw: str) -> Instruction:
        mnemonic, _, rest = s.partition(" ")
        ops = [o.strip() for o in rest.replace(",", " , ").split(",")] if rest.strip() else []
        ops = [" ".join(o.split()) for o in ops]
        if mnemonic == "lock":
            return self.conformance_lock(ops[0].split() if ops else [], ops[1:], lineno, raw)
        kind, opcode, extra = _CONFORMANCE[mnemonic]
        want = _CONFORMANCE_ARITY[kind]
        if len(ops) != want:
            raise ValueError(f"{mnemonic} takes {want} operand{'s' * (want != 1)}, not {len(ops)}")
        if kind == "neg":
            return self.emit(Instruction(opcode, _reg(ops[0])[0]), lineno, raw)
        if kind == "alu":
            dst, _ = _reg(ops[0])
            if ops[1].startswith("%"):
                src, _ = _reg(ops[1])
                return self.emit(Instruction(opcode | Source.X, dst, src, extra), lineno, raw)
            if opcode & 0xF0 == AluOp.MOV and extra:
                raise ValueError(f"{mnemonic} needs a register source")
            return self.emit(Instruction(opcode, dst, 0, extra, _imm32(ops[1])), lineno, raw)
        if kind == "end":
            dst, _ = _reg(ops[0])
            return self.emit(Instruction(opcode, dst, 0, 0, extra), lineno, raw)
        if kind == "jmp":
            dst, _ = _reg(ops[0])
            off, label = self.target(ops[2])
            if ops[1].startswith("%"):
                src, _ = _reg(ops[1])
                return self.emit(Instruction(opcode | Source.X, dst, src, off), lineno, raw, label)
            return self.emit(Instruction(opcode, dst, 0, off, _imm32(ops[1])), lineno, raw, label)
        if kind == "ja":
            if opcode == Class.JMP32 | JmpOp.JA:
                imm, label = self.target(ops[0], _imm32)
                return self.emit(Instruction(opcode, imm=imm), lineno, raw, label, "imm")
            off, label = self.target(ops[0])
            return self.emit(Instruction(opcode, off=off), lineno, raw, label)
        if kind == "ldx":
            dst, _ = _reg(ops[0])
            src, off = self.conformance_mem(ops[1])
            return self.emit(Instruction(opcode, dst, src, off), lineno, raw)
        if kind == "st":
            dst, off = self.conformance_mem(ops[0])
            return self.emit(Instruction(opcode, dst, 0, off, _imm32(ops[1])), lineno, raw)
        if kind == "stx":
            dst, off = self.conformance_mem(ops[0])
            src, _ = _reg(ops[1])
            return self.emit(Instruction(opcode, dst, src, off), lineno, raw)
        if kind == "lddw":
            dst, _ = _reg(ops[0])
            return self.emit(Instruction(LD_IMM64, dst, 0, 0, _imm64(ops[1])), lineno, raw)
        if kind == "ldabs":
            return self.emit(Instruction(opcode, imm=_imm32(ops[0])), lineno, raw)
        if kind == "ldind":
            src, _ = _reg(ops[0])
            return self.emit(Instruction(opcode, 0, src, 0, _imm32(ops[1])), lineno, raw)
        return self.emit(Instruction(EXIT), lineno, raw)  # exit

    @staticmethod
    def conformance_mem(text: str) -> tuple[int, int]:
        m = re.fullmatch(r"\[\s*(%?r\d+)\s*(?:([+-])\s*(0[xX][0-9a-fA-F]+|\d+))?\s*\]", text)
        if not m:
            raise ValueError(f"expected a memory operand like [%r1+8], got {text!r}")
        return _mem(m.group(1).lstrip("%"), m.group(2), m.group(3))

    def conformance_lock(self, head: list[str], ops: list[str], lineno: int, raw: str) -> Instruction:
        # lock [fetch] OP[32] [%rD+off], %rS  (head holds "fetch" and OP, the first operand follows)
        if not head or len(ops) != 1:
            raise ValueError("Invalid number of operands for lock: write lock [fetch] OP[32] [%rD+OFF], %rS")
        fetch = head[0] == "fetch"
        words = head[1:] if fetch else head
        if len(words) != 2:
            raise ValueError("Invalid number of operands for lock: write lock [fetch] OP[32] [%rD+OFF], %rS")
        name, mem = words
        size = Size.DW
        if name.endswith("32"):
            size, name = Size.W, name[:-2]
        if name in _ATOMIC_BY_NAME:
            imm = _ATOMIC_BY_NAME[name] | (1 if fetch else 0)
        elif name == "xchg":
            imm = AtomicOp.XCHG
        elif name == "cmpxchg":
            imm = AtomicOp.CMPXCHG
        else:
            raise ValueError(f"unknown atomic operation {name!r} (add, or, and, xor, xchg, cmpxchg)")
        dst, off = self.conformance_mem(mem)
        src, _ = _reg(ops[0])
        return self.emit(Instruction(Class.STX | Mode.ATOMIC | size, dst, src, off, imm), lineno, raw)


def _conformance_table() -> dict[str, tuple[str, int, int]]:
    """mnemonic -> (kind, opcode with source K, extra: off for ALU, width for END)."""
    table: dict[str, tuple[str, int, int]] = {}
    for cls, suffix in ((Class.ALU64, ""), (Class.ALU, "32")):
        for op in AluOp:
            if op != AluOp.END:
                table[op.name.lower() + suffix] = ("neg" if op == AluOp.NEG else "alu", cls | op, 0)
        table["sdiv" + suffix] = ("alu", cls | AluOp.DIV, 1)
        table["smod" + suffix] = ("alu", cls | AluOp.MOD, 1)
    for bits in (8, 16, 32):
        table[f"movsx{bits}64"] = ("alu", Class.ALU64 | AluOp.MOV, bits)
        if bits < 32:
            table[f"movsx{bits}32"] = ("alu", Class.ALU | AluOp.MOV, bits)
    table["mov64"] = table["mov"]
    for width in (16, 32, 64):
        table[f"le{width}"] = ("end", Class.ALU | AluOp.END | Source.K, width)
        table[f"be{width}"] = ("end", Class.ALU | AluOp.END | Source.X, width)
        table[f"bswap{width}"] = table[f"swap{width}"] = ("end", Class.ALU64 | AluOp.END, width)
    for cls, suffix in ((Class.JMP, ""), (Class.JMP32, "32")):
        for op in JmpOp:
            if op not in (JmpOp.JA, JmpOp.CALL, JmpOp.EXIT, JmpOp.JCOND):
                table[op.name.lower() + suffix] = ("jmp", cls | op, 0)
    table["ja"] = ("ja", Class.JMP | JmpOp.JA, 0)
    table["ja32"] = ("ja", Class.JMP32 | JmpOp.JA, 0)
    for size, sfx in ((Size.B, "b"), (Size.H, "h"), (Size.W, "w"), (Size.DW, "dw")):
        table["ldx" + sfx] = ("ldx", Class.LDX | Mode.MEM | size, 0)
        table["st" + sfx] = ("st", Class.ST | Mode.MEM | size, 0)
        table["stx" + sfx] = ("stx", Class.STX | Mode.MEM | size, 0)
        if size != Size.DW:
            table["ldxs" + sfx] = ("ldx", Class.LDX | Mode.MEMSX | size, 0)
            table["ldabs" + sfx] = ("ldabs", Class.LD | Mode.ABS | size, 0)
            table["ldind" + sfx] = ("ldind", Class.LD | Mode.IND | size, 0)
    table["lddw"] = ("lddw", LD_IMM64, 0)
    table["lock"] = ("lock", 0, 0)
    return table


_CONFORMANCE = _conformance_table()
_CONFORMANCE_ARITY = {"alu": 2, "neg": 1, "end": 1, "jmp": 3, "ja": 1, "ldx": 2, "st": 2, "stx": 2, "lddw": 2,
                      "ldabs": 1, "ldind": 2, "lock": 2}


def assemble_listing(text: str) -> dict[str, Program]:
    """Assemble a listing that may hold several sections (``llvm-objdump -d`` of a whole object).

    Returns section name -> Program; text without section headers is one
    section named "".
    """
    asm = _Assembler()
    asm.run(text)
    return {sec.name: Program(sec.insns) for sec in asm.sections}


def assemble(text: str) -> Program:
    """Assemble one program from text in LLVM, kernel or conformance-suite syntax (even mixed).

    Raises AssemblerError naming the line for anything it cannot encode:
    unknown mnemonics, wrong operand counts, registers beyond r10, values out
    of range, unknown labels.
    """
    sections = assemble_listing(text)
    if len(sections) > 1:
        names = ", ".join(repr(name) for name in sections)
        raise AssemblerError(f"the text holds {len(sections)} sections ({names}); "
                             f"use assemble_listing() or 'pybpf asm --section'")
    return next(iter(sections.values()))
