"""The one exception hierarchy of pybpf.

Every error pybpf raises on purpose derives from :class:`BPFError`, so a caller
(and the CLI) can catch one type and print one line.  Subclasses carry the facts
a user needs to act: the instruction index or source line, the ELF section and
offset, the errno and verifier log.
"""

from __future__ import annotations

import errno as _errno
import os


class BPFError(Exception):
    """Base of every error pybpf raises on purpose."""


# --- instruction set -------------------------------------------------------


class InstructionError(BPFError, ValueError):
    """An instruction that cannot be encoded or decoded (bad opcode, field, range)."""

    def __init__(self, message: str, index: int | None = None):
        self.index = index
        super().__init__(f"instruction {index}: {message}" if index is not None else message)


class AssemblerError(BPFError, ValueError):
    """Assembly text that does not parse; names the source line."""

    def __init__(self, message: str, line: int | None = None, text: str | None = None):
        self.line = line
        self.text = text
        where = f"line {line}: " if line is not None else ""
        shown = f" (in {text.strip()!r})" if text else ""
        super().__init__(f"{where}{message}{shown}")


class FilterValidationError(InstructionError):
    """A classic BPF program the kernel would refuse (bpf_check_classic, seccomp rules)."""


# --- file formats ----------------------------------------------------------


class FormatError(BPFError, ValueError):
    """A malformed file: names the section (or structure) and byte offset."""

    def __init__(self, message: str, section: str | None = None, offset: int | None = None):
        self.section = section
        self.offset = offset
        where = []
        if section is not None:
            where.append(f"section {section}")
        if offset is not None:
            where.append(f"offset {offset:#x}")
        prefix = f"{', '.join(where)}: " if where else ""
        super().__init__(prefix + message)


class ELFError(FormatError):
    """A BPF ELF object that cannot be read."""


class BTFError(FormatError):
    """BTF or BTF.ext data that cannot be read or resolved."""


class TypeNotFoundError(BTFError, KeyError):
    """A BTF type, member or enumerator looked up by name that is not there."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class ObjectError(BPFError):
    """An ObjectSpec that is inconsistent or asks for something unsupported."""


class CORERelocationError(ObjectError):
    """A CO-RE relocation that cannot be satisfied against the target BTF."""


# --- backends --------------------------------------------------------------


class KernelError(BPFError, OSError):
    """The kernel refused a request; carries errno like OSError."""

    def __init__(self, err: int, message: str):
        self.message = message
        OSError.__init__(self, err, f"{message}: {os.strerror(err)} ({_errno.errorcode.get(err, err)})")

    def __str__(self) -> str:
        return self.args[1] if len(self.args) > 1 else super().__str__()


class BPFPermissionError(KernelError, PermissionError):
    """Missing privilege (EPERM/EACCES); says which capability is needed."""


class NotSupportedError(BPFError):
    """A feature this kernel (or backend) does not offer."""

    def __init__(self, feature: str, min_kernel: str | None = None, reason: str | None = None):
        self.feature = feature
        self.min_kernel = min_kernel
        self.reason = reason
        msg = f"{feature} is not supported"
        if reason:
            msg += f": {reason}"
        if min_kernel:
            msg += f" (needs Linux {min_kernel} or newer)"
        super().__init__(msg)


class VerifierError(KernelError):
    """The kernel verifier rejected a program; carries the log and the failing C line."""

    def __init__(
        self,
        err: int,
        program: str,
        log: str,
        summary: str | None = None,
        source: str | None = None,
    ):
        self.program = program
        self.log = log
        self.summary = summary or _last_meaningful_line(log)
        self.source = source
        msg = f"verifier rejected program {program!r}: {self.summary}"
        if source:
            msg += f"\n  at {source}"
        KernelError.__init__(self, err, msg)


class BTFLoadError(KernelError):
    """The kernel rejected BTF data (BPF_BTF_LOAD); carries the kernel's BTF verifier log."""

    def __init__(self, err: int, message: str, log: str = ""):
        self.log = log
        KernelError.__init__(self, err, message)


class MapError(BPFError):
    """A map operation with a key or value of the wrong shape or size."""


class LinkError(BPFError):
    """A program that cannot be attached where it was asked to go."""


class VMError(BPFError):
    """pybpf's userspace VM refused to load or run a program."""


class VMFault(VMError):
    """A program fault while running in the VM: names instruction, region and C line."""

    def __init__(self, message: str, pc: int | None = None, source: str | None = None):
        self.pc = pc
        self.source = source
        text = f"instruction {pc}: {message}" if pc is not None else message
        if source:
            text += f"\n  at {source}"
        super().__init__(text)


class CompileError(BPFError):
    """A C compiler or a language front end refused the source; carries its message."""


class FilterSyntaxError(BPFError, ValueError):
    """A pcap filter expression that does not parse; shows a caret under the token."""

    def __init__(self, message: str, expression: str = "", position: int | None = None):
        self.expression = expression
        self.position = position
        text = message
        if expression and position is not None:
            text += f"\n  {expression}\n  {' ' * position}^"
        super().__init__(text)


def _last_meaningful_line(log: str) -> str:
    lines = [ln.strip() for ln in log.splitlines() if ln.strip()]
    for ln in reversed(lines):
        if not ln.startswith(("processed ", "verification time")):
            return ln
    return lines[-1] if lines else "no verifier log"
