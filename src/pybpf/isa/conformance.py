"""Test cases of the BPF ISA conformance suite (github.com/Alan-Jowett/bpf_conformance).

A ``.data`` file has sections introduced by ``-- NAME`` lines: ``asm`` (the
suite's assembler syntax), ``raw`` (the bytecode: 64-bit words ``0x...``, one
per line, or bytes ``07 00 01 00 ...``), ``mem`` (input memory, hex bytes),
``result`` (expected r0) and ``error`` (an expected failure, possibly with
its message).  ``c`` and ``no register offset`` are notes.  ``#`` starts a
comment anywhere.  :func:`parse_case` reads one; :attr:`ConformanceCase.program`
is the program (from ``raw`` when given, else from ``asm``), and the CPU
version and conformance groups a runtime needs follow from its instructions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from ..errors import AssemblerError, InstructionError
from .assembler import assemble
from .instruction import SLOT_SIZE, Program
from .opcodes import Group, conformance_group, cpu_version

SECTIONS = ("asm", "raw", "mem", "result", "error", "c", "no register offset")


@dataclass(frozen=True)
class ConformanceCase:
    """One conformance test: a program, its input memory and what it must return or fail with."""

    name: str
    asm: str | None = None
    raw: bytes | None = None
    mem: bytes = b""
    result: int | None = None
    error: str | None = None  # "" = an error is expected, without a message
    path: Path | None = None
    asm_line: int = 0  # file line of the first asm line, so errors name file lines
    raw_lines: tuple[int, ...] = field(default=(), repr=False)  # file line of each raw slot

    @cached_property
    def program(self) -> Program:
        """The program (raw bytecode if the case has it, else the assembled ``asm``).

        Raises AssemblerError naming the file line of a bad instruction; an
        empty case gives an empty program (only running it can reject that).
        """
        if self.raw is not None:
            try:
                return Program.decode(self.raw)
            except InstructionError as exc:
                line = self.raw_lines[exc.index] if exc.index is not None and exc.index < len(self.raw_lines) else None
                raise AssemblerError(f"{self.name}: raw {exc}", line) from None
        if self.asm is None:
            return Program()
        try:
            return assemble(self.asm)
        except AssemblerError as exc:
            line = exc.line + self.asm_line - 1 if exc.line is not None else None
            message = str(exc).split(": ", 1)[1] if exc.line is not None else str(exc)
            if exc.text:
                message = message.rsplit(" (in ", 1)[0]
            raise AssemblerError(f"{self.name}: {message}", line, exc.text) from None

    @property
    def cpu_version(self) -> int:
        """The -mcpu version (1-4) of the newest instruction the program uses."""
        return max((cpu_version(i.opcode, i.src, i.off, i.imm) for i in self.program), default=1)

    @property
    def groups(self) -> Group:
        """The RFC 9669 conformance groups the program's instructions belong to."""
        groups = Group(0)
        for insn in self.program:
            groups |= conformance_group(insn.opcode, insn.src, insn.off, insn.imm)
        return groups

    @property
    def expects_error(self) -> bool:
        return self.error is not None


def parse_case(text: str, name: str = "<case>", path: Path | None = None) -> ConformanceCase:
    """Parse the text of one ``.data`` file; AssemblerError for an unknown section or bad data."""
    section: str | None = None
    asm: list[str] | None = None
    asm_line = 0
    raw_tokens: list[tuple[int, str]] = []
    has_raw = False
    mem: list[str] = []
    result: str | None = None
    error: str | None = None
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.rstrip("\r").split("#", 1)[0]
        stripped = line.strip()
        if stripped.startswith("--"):
            section = stripped[2:].strip()
            if section not in SECTIONS:
                raise AssemblerError(f"{name}: unknown section '-- {section}' (known: "
                                     f"{', '.join(SECTIONS)})", lineno, line)
            if section == "asm":
                asm, asm_line = [], lineno + 1
            elif section == "raw":
                has_raw = True
            elif section == "error":
                error = ""
            continue
        if section == "asm":
            asm.append(line)
        if not stripped:
            continue
        if section is None:
            raise AssemblerError(f"{name}: text before the first '-- section' line", lineno, line)
        if section == "raw":
            raw_tokens += [(lineno, tok) for tok in stripped.split()]
        elif section == "mem":
            mem += stripped.split()
        elif section == "result":
            result = stripped
        elif section == "error":
            error = stripped
    raw, raw_lines = _raw_bytes(raw_tokens, name) if has_raw else (None, ())
    try:
        memory = bytes(int(tok, 16) for tok in mem)
    except ValueError:
        raise AssemblerError(f"{name}: -- mem must be hex bytes like 'aa bb 11'") from None
    expected = None
    if result is not None:
        try:
            expected = int(result, 0) & ((1 << 64) - 1)
        except ValueError:
            raise AssemblerError(f"{name}: -- result {result!r} is not a number") from None
    return ConformanceCase(name, "\n".join(asm) if asm is not None else None, raw, memory, expected, error, path,
                           asm_line, raw_lines)


def _raw_bytes(tokens: list[tuple[int, str]], name: str) -> tuple[bytes, tuple[int, ...]]:
    out = bytearray()
    lines: list[int] = []
    for lineno, tok in tokens:
        t = tok.lower()
        if t.startswith("0x") and len(t) <= 18:  # one 64-bit little-endian word
            out += int(t, 16).to_bytes(8, "little")
            lines.append(lineno)
        elif len(t) == 2:  # one byte
            out.append(int(t, 16))
            if len(out) % SLOT_SIZE == 1:
                lines.append(lineno)
        else:
            raise AssemblerError(f"{name}: raw token {tok!r} is neither a 64-bit word (0x...) nor a byte",
                                 lineno, tok)
    if len(out) % SLOT_SIZE:
        raise AssemblerError(f"{name}: raw bytecode is {len(out)} bytes, not a multiple of 8",
                             tokens[-1][0] if tokens else None)
    return bytes(out), tuple(lines)


def load_case(path: str | Path) -> ConformanceCase:
    p = Path(path)
    return parse_case(p.read_text(), p.stem, p)


def load_suite(directory: str | Path) -> list[ConformanceCase]:
    """Every ``*.data`` case in a directory, sorted by name (parse errors propagate)."""
    return [load_case(p) for p in sorted(Path(directory).glob("*.data"))]

