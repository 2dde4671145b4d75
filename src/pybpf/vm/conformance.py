"""Running the BPF ISA conformance suite in the VM, directly or as the suite's plugin.

The suite's execution contract: r1 points to a copy of the case's memory (0
when it has none), r2 is its length, r10 is the top of a 512-byte stack, and
helper 5 exists with "unwind" semantics (the program ends with r0 = 0 when it
returns 0).  A case passes when r0 equals the expected result, or when an
error is expected and the VM refuses the program (message containing the
expected text, if any).  A case with no program, with nothing to check, or
expecting an error that does not happen fails: that is what the suite's
negative cases must do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator

from ..errors import BPFError
from .helpers import unwind_helper_registry
from .machine import VM

if TYPE_CHECKING:
    from ..isa.conformance import ConformanceCase

DEFAULT_CPU = 4


@dataclass(frozen=True)
class CaseResult:
    """The outcome of one case: ``status`` is "pass", "fail" or "skip"; ``detail`` says why."""

    name: str
    status: str
    detail: str = ""
    value: int | None = None

    @property
    def passed(self) -> bool:
        return self.status == "pass"


def run_program(program: Any, memory: bytes = b"", *, engine: str = "compiled", budget: int | None = None) -> int:
    """r0 of ``program`` under the conformance contract (raises BPFError when it is refused or faults)."""
    vm = VM(engine=engine, helpers=unwind_helper_registry(), **({"budget": budget} if budget else {}))
    return vm.execute(vm.load(program), memory=bytearray(memory))


def all_groups() -> Any:
    """Every conformance group (base32/64, atomic32/64, divmul32/64, packet, callx)."""
    from ..isa import Group

    groups = Group(0)
    for g in Group:
        groups |= g
    return groups


def run_case(case: "ConformanceCase", *, cpu: int = DEFAULT_CPU, groups: Any = None,
             engine: str = "compiled") -> CaseResult:
    name = case.name
    try:
        program = case.program
    except BPFError as exc:  # the assembler refused the text
        if case.expects_error and case.error in str(exc):
            return CaseResult(name, "pass", f"refused as expected: {exc}")
        return CaseResult(name, "fail", f"does not assemble: {exc}")
    if len(program) == 0:
        return CaseResult(name, "fail", "the case has no instructions")
    if case.result is None and not case.expects_error:
        return CaseResult(name, "fail", "the case has neither a result nor an expected error")
    allowed = all_groups() if groups is None else groups
    if case.cpu_version > cpu:
        return CaseResult(name, "skip", f"needs CPU v{case.cpu_version} (running v{cpu})")
    missing = case.groups & ~allowed
    if missing:
        return CaseResult(name, "skip", f"needs conformance group(s) {missing!r}")
    try:
        r0 = run_program(program, case.mem, engine=engine)
    except BPFError as exc:
        if case.expects_error and case.error in str(exc):
            return CaseResult(name, "pass", f"refused as expected: {exc}")
        return CaseResult(name, "fail", f"error: {exc}")
    if case.expects_error:
        return CaseResult(name, "fail", f"expected an error{f' ({case.error})' if case.error else ''}, "
                                        f"got r0 = {r0:#x}", r0)
    if r0 != case.result:
        return CaseResult(name, "fail", f"r0 = {r0:#x}, expected {case.result:#x}", r0)
    return CaseResult(name, "pass", "", r0)


def case_files(directory: str | Path, include: str | None = None, exclude: str | None = None) -> list[Path]:
    root = Path(directory)
    if not root.is_dir():
        raise BPFError(f"{root}: not a directory of conformance .data files")
    files = sorted(root.glob("*.data"))
    if include:
        files = [f for f in files if re.search(include, f.name)]
    if exclude:
        files = [f for f in files if not re.search(exclude, f.name)]
    return files


def run_directory(directory: str | Path, *, cpu: int = DEFAULT_CPU, groups: Any = None, engine: str = "compiled",
                  include: str | None = None, exclude: str | None = None) -> Iterator[CaseResult]:
    """Run every ``*.data`` case of ``directory`` (sorted by name)."""
    from ..isa.conformance import load_case

    for path in case_files(directory, include, exclude):
        try:
            case = load_case(path)
        except BPFError as exc:
            yield CaseResult(path.name, "fail", f"cannot be read: {exc}")
            continue
        yield run_case(case, cpu=cpu, groups=groups, engine=engine)


def summary(results: Iterable[CaseResult]) -> tuple[int, int, int, int]:
    """(passed, failed, skipped, total)."""
    results = list(results)
    passed = sum(r.status == "pass" for r in results)
    skipped = sum(r.status == "skip" for r in results)
    return passed, len(results) - passed - skipped, skipped, len(results)


def parse_hex_bytes(text: str) -> bytes:
    """Bytes from the suite's base16 encoding ("b7 00 00 ..."; whitespace separated, any case)."""
    tokens = text.split()
    try:
        return bytes(int(t, 16) for t in tokens)
    except ValueError:
        bad = next(t for t in tokens if not re.fullmatch(r"[0-9a-fA-F]{1,2}", t))
        raise BPFError(f"not a hex byte: {bad!r}") from None


__all__ = ["CaseResult", "all_groups", "case_files", "parse_hex_bytes", "run_case", "run_directory", "run_program",
           "summary"]
