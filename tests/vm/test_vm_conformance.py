"""The BPF ISA conformance suite (shared test vectors) in the VM: every case, both engines, and the
suite's plugin protocol through the CLI."""

from __future__ import annotations

import pytest

from conftest import SHARED, run_cli

conformance = pytest.importorskip("pybpf.isa.conformance", reason="the suite's parser comes with pybpf.isa")

from pybpf.vm.conformance import run_case, run_directory, summary  # noqa: E402

TESTS = SHARED / "bpf_conformance" / "tests"
NEGATIVE = SHARED / "bpf_conformance" / "negative"
CASES = sorted(TESTS.glob("*.data"))
if not CASES:
    pytest.skip(f"no conformance suite at {TESTS} (SHARED must point at the shared test data)",
                allow_module_level=True)


def test_the_suite_has_313_cases():
    assert len(CASES) == 313


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_conformance_case(path):
    case = conformance.load_case(path)
    result = run_case(case)
    assert result.status == "pass", result.detail


def test_the_interpreter_passes_the_whole_suite_too():
    passed, failed, skipped, total = summary(run_directory(TESTS, engine="interpreter"))
    assert (passed, failed, skipped) == (313, 0, 0)


@pytest.mark.parametrize("name,reason", [
    ("empty", "no instructions"),
    ("empty_instructions", "no instructions"),
    ("error", "expected an error"),
    ("incorrect_return_value_high_bits", "expected 0x8977665544332211"),
])
def test_negative_cases_that_only_running_can_reject_fail(name, reason):
    result = run_case(conformance.load_case(NEGATIVE / f"{name}.data"))
    assert result.status == "fail" and reason in result.detail


def test_cli_runs_a_directory_and_reports_failures():
    proc = run_cli("vm", "conformance", NEGATIVE, "--include", "^(empty|error|incorrect)")
    out = proc.stdout.decode()
    assert proc.returncode == 1
    assert "FAIL: empty: the case has no instructions" in out
    assert "FAIL: incorrect_return_value_high_bits: r0 = 0x8877665544332211" in out
    assert "Passed 0 out of 4 tests (4 failed, 0 skipped)." in out
    proc = run_cli("vm", "conformance", TESTS, "--include", "^(lddw|mem-len|callx)", "-q")
    assert proc.returncode == 0 and "Passed 4 out of 4 tests" in proc.stdout.decode()


def _suite_hex(data: bytes) -> str:
    """How the suite's runner encodes bytes for a plugin: hex pairs separated by two spaces."""
    return "".join(f"{b:02x}  " for b in data)


def test_plugin_protocol_program_on_stdin_memory_as_argument():
    case = conformance.load_case(TESTS / "subnet.data")
    proc = run_cli("vm", "conformance-plugin", _suite_hex(case.mem), input=_suite_hex(case.program.encode()).encode())
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout.decode(), 16) == case.result == 1
    # r0 is printed in hex, no matter how large
    lddw = conformance.load_case(TESTS / "lddw.data")
    proc = run_cli("vm", "conformance-plugin", input=_suite_hex(lddw.program.encode()).encode())
    assert proc.stdout.decode().strip() == "1122334455667788"


def test_plugin_reports_errors_on_stderr_with_status_1():
    # ldxw through r1 = 0 (no memory): a null pointer fault
    proc = run_cli("vm", "conformance-plugin", input=b"61 10 00 00 00 00 00 00  95 00 00 00 00 00 00 00")
    assert proc.returncode == 1 and proc.stdout == b""
    assert b"null pointer dereference" in proc.stderr
    proc = run_cli("vm", "conformance-plugin", input=b"ff 00 00 00 00 00 00 00")
    assert proc.returncode == 1 and b"unknown opcode 0xff" in proc.stderr
