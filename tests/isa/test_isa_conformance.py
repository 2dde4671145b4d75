"""The BPF conformance suite's data: every test assembles, every negative case is classified."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import SHARED
from pybpf import AssemblerError
from pybpf.isa import Group, Program, assemble
from pybpf.isa.conformance import load_case, load_suite, parse_case

# PYBPF_CONFORMANCE_DIR points elsewhere (a git worktree has no ../shared next to it)
SUITE = Path(os.environ.get("PYBPF_CONFORMANCE_DIR", SHARED / "bpf_conformance"))
TESTS = sorted((SUITE / "tests").glob("*.data"))
NEGATIVE = sorted((SUITE / "negative").glob("*.data"))

pytestmark = pytest.mark.skipif(not TESTS, reason=f"the conformance suite is not at {SUITE}")

# Negative cases whose code is valid: they are wrong only in what they expect (error.data expects an
# error from a program that runs fine, incorrect_return_value_high_bits.data a wrong r0) or have no
# program at all.  Only running them can reject them: the VM's conformance runner must.
NEEDS_EXECUTION = ["empty", "empty_instructions", "error", "incorrect_return_value_high_bits"]


def test_the_suite_is_complete():
    assert len(TESTS) == 313
    assert len(NEGATIVE) == 60


def test_every_test_assembles_and_raw_matches_asm():
    cases = load_suite(SUITE / "tests")
    with_raw = 0
    for case in cases:
        program = case.program
        assert len(program) > 0, case.name
        assert case.result is not None or case.error is not None, case.name
        if case.raw is not None and case.asm is not None:
            with_raw += 1
            assert assemble(case.asm).encode() == case.raw, case.name
    assert with_raw == 1  # lddw.data


def test_negative_cases_are_classified():
    rejected, runnable = [], []
    for path in NEGATIVE:
        try:
            case = load_case(path)
            case.program
        except AssemblerError as exc:
            assert exc.line is not None and exc.line > 0, f"{path.name}: {exc}"
            assert f"line {exc.line}: {path.stem}: " in str(exc)
            rejected.append(path.stem)
        else:
            runnable.append(path.stem)
    assert runnable == NEEDS_EXECUTION
    assert len(rejected) == 56


@pytest.mark.parametrize("name, line, message", [
    ("invalid_mnemonic", 5, "unknown mnemonic 'ldxq'"),
    ("invalid_register", 4, "invalid register '%r50'"),
    ("invalid_label", 4, "unknown label 'NOT_A_LABEL'"),
    ("invalid_unknown_directive", 4, "unknown section '-- Unknown directive'"),
    ("unused-call-offset", 5, "raw instruction 0: call .* only allowed on kfunc calls"),
    ("unused-mov64_reg-offset", 5, "addr_space_cast converts between address spaces 0 and 1"),
])
def test_rejections_say_what_and_where(name, line, message):
    with pytest.raises(AssemblerError, match=message) as info:
        load_case(SUITE / "negative" / f"{name}.data").program
    assert info.value.line == line


def test_required_cpu_versions_and_groups():
    cases = {case.name: case for case in load_suite(SUITE / "tests")}
    assert cases["sdiv64-imm"].cpu_version == 4 and cases["movsx1632-reg"].cpu_version == 4
    assert cases["ja32"].cpu_version == 4 and cases["bswap16"].cpu_version == 4
    assert cases["jeq32-imm"].cpu_version == 3 and cases["lock_fetch_add"].cpu_version == 3
    assert cases["jlt-imm"].cpu_version == 2 and cases["exit"].cpu_version == 1
    assert cases["lock_add32"].groups & Group.ATOMIC32 and cases["lock_add"].groups & Group.ATOMIC64
    assert cases["callx"].groups & Group.CALLX
    assert cases["div32-imm"].groups & Group.DIVMUL32 and cases["mul64-reg"].groups & Group.DIVMUL64
    assert cases["exit"].groups == Group.BASE32 | Group.BASE64  # mov64 + exit
    assert sum(1 for c in cases.values() if c.cpu_version == 4) >= 40


def test_parse_case_sections():
    case = parse_case("""# a comment
-- asm
mov %r0, 1  # trailing comment
exit
-- mem
aa bb
 0c
-- result
0x1# comment
-- c
int main() { return 1; }
""", "sample")
    assert case.asm.splitlines()[0].strip() == "mov %r0, 1"
    assert case.mem == b"\xaa\xbb\x0c" and case.result == 1 and case.error is None
    assert case.program.encode() == bytes.fromhex("b700000001000000 9500000000000000")
    words = parse_case("-- raw\n0x0000000100000007\n0x0000000000000095\n-- result\n7\n", "words")
    raw_bytes = parse_case("-- raw\n07 00 00 00 01 00 00 00\n95 00 00 00 00 00 00 00\n-- error\n", "bytes")
    assert words.raw == raw_bytes.raw and raw_bytes.error == "" and words.result == 7
    assert Program.decode(words.raw)[0].imm == 1


@pytest.mark.parametrize("text, message", [
    ("-- asm\nexit\n-- bogus\n", "unknown section '-- bogus'"),
    ("exit\n", "text before the first"),
    ("-- raw\n07 00 01\n", "not a multiple of 8"),
    ("-- raw\n0x123456789abcdef012\n", "neither a 64-bit word"),
    ("-- mem\nzz\n", "hex bytes"),
])
def test_parse_case_errors(text, message):
    with pytest.raises(AssemblerError, match=message):
        parse_case(text, "bad")
