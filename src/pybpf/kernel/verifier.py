"""Verifier logs: buffers that grow until the log fits, and rejections mapped to C source lines.

Loads run without a log first (fast path, no kernel formatting cost); only when
the kernel refuses is the load repeated with a log, grown on ENOSPC (the log was
cut) until it fits, so the user always gets the complete log.
"""

from __future__ import annotations

import bisect
import ctypes
import errno
import re
from dataclasses import dataclass
from typing import Callable, Sequence

from ..errors import VerifierError

LOG_INITIAL = 256 * 1024
LOG_MAX = 1 << 30  # the kernel's own limit (UINT_MAX >> 2)

# "12: (85) call bpf_map_lookup_elem#1": the instruction being checked.
_INSN_LINE = re.compile(r"^(\d+): \([0-9a-f]{2}\)")
# "; return x + 1; @ prog.c:12": source annotations the kernel prints from BTF line info.
_SOURCE_LINE = re.compile(r"^; (.*) @ (\S+):(\d+)$")
_TRAILER = ("processed ", "verification time", "stack depth", "max_states_per_insn", "-- END PROG LOAD LOG --")


@dataclass(frozen=True, slots=True)
class SourceLine:
    """One BTF line_info record resolved to text: instruction slot -> C file, line, column, source."""

    insn_off: int
    file: str
    line: int
    column: int = 0
    text: str = ""

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" + (f":{self.column}" if self.column else "")
        return f"{where}: {self.text.strip()}" if self.text else where


def run_with_log(
    attempt: Callable[[int, int, int], tuple[int, int, int]],
    log_level: int = 0,
    log_size: int = 0,
) -> tuple[int, int, str]:
    """Run ``attempt(level, buf_addr, buf_size) -> (result, errno, true_size)`` until the log fits.

    Returns (result, errno, log).  With ``log_level`` 0 the first attempt has no
    log; a failure is retried with level 1.  ENOSPC means the log was cut: the
    buffer grows (to the size the kernel reports, when it does) and the load
    is repeated.
    """
    level = log_level
    size = log_size or LOG_INITIAL
    if level == 0:
        result, err, _ = attempt(0, 0, 0)
        if not err:
            return result, 0, ""
        level = 1
    while True:
        buf = ctypes.create_string_buffer(size)
        result, err, true_size = attempt(level, ctypes.addressof(buf), size)
        log = buf.value.decode("utf-8", "replace")
        if err == errno.ENOSPC and size < LOG_MAX:
            size = min(LOG_MAX, max(size * 4, true_size + 1))
            continue
        return result, err, log


def failing_instruction(log: str) -> int | None:
    """The index (8-byte slot) of the instruction the verifier stopped at, from the log's last lines."""
    for line in reversed(log.splitlines()):
        m = _INSN_LINE.match(line)
        if m:
            return int(m.group(1))
    return None


def summary(log: str) -> str:
    """The verifier's own reason: the last line that is not statistics."""
    lines = [ln.strip() for ln in log.splitlines() if ln.strip()]
    for ln in reversed(lines):
        if not ln.startswith(_TRAILER) and not _INSN_LINE.match(ln):
            return ln
    return lines[-1] if lines else "no verifier log"


def source_of(insn: int | None, lines: Sequence[SourceLine], log: str = "") -> SourceLine | None:
    """The C line of instruction ``insn``: the last line_info record at or before it.

    Without records, the kernel's own '; text @ file:line' annotations in the log
    (printed when the program was loaded with BTF line info) are used.
    """
    if insn is not None and lines:
        ordered = sorted(lines, key=lambda s: s.insn_off)
        i = bisect.bisect_right([s.insn_off for s in ordered], insn) - 1
        if i >= 0:
            return ordered[i]
    last = None
    for text in log.splitlines():
        m = _SOURCE_LINE.match(text)
        if m:
            last = SourceLine(-1, m.group(2), int(m.group(3)), 0, m.group(1))
        elif insn is not None and (im := _INSN_LINE.match(text)) and int(im.group(1)) == insn and last:
            break
    return last


def verifier_error(err: int, program: str, log: str, lines: Sequence[SourceLine] = ()) -> VerifierError:
    """A VerifierError with summary, failing instruction and C source location.

    Besides the attributes of VerifierError, sets ``instruction`` (slot index or
    None) and ``location`` (a SourceLine or None).
    """
    insn = failing_instruction(log)
    where = source_of(insn, lines, log)
    text = summary(log)
    if insn is not None:
        text = f"instruction {insn}: {text}"
    exc = VerifierError(err, program, log, summary=text, source=str(where) if where else None)
    exc.instruction = insn
    exc.location = where
    return exc
