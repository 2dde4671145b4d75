"""`pybpf disasm` and `pybpf asm` as a user runs them."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from conftest import LLVM_OBJDUMP, compile_bpf, run_cli
from pybpf.elf.reader import ELFFile

PROGS = Path(__file__).parent / "progs"


@pytest.mark.skipif(LLVM_OBJDUMP is None, reason="llvm-objdump-19 is not installed")
def test_disasm_prints_what_llvm_objdump_prints(tmp_path):
    obj = compile_bpf(PROGS / "isa_calls.bpf.c", cpu="v3", name="isa_calls")
    for flags in ((), ("-r",), ("--section", "tc")):
        ref = subprocess.run([LLVM_OBJDUMP, "-d", "--no-show-raw-insn", *flags, str(obj)],
                             capture_output=True, text=True, check=True).stdout
        assert run_cli("disasm", *flags, obj, check=True).stdout.decode() == ref


def test_disasm_then_asm_gives_the_section_back(tmp_path):
    obj = compile_bpf(PROGS / "isa_memory.bpf.c", cpu="v4", name="isa_memory")
    section = "tracepoint/syscalls/sys_enter_getpid"
    listing = tmp_path / "memory.s"
    listing.write_bytes(run_cli("disasm", "--exact", obj, check=True).stdout)
    out = tmp_path / "memory.bin"
    run_cli("asm", listing, "--section", section, "-o", out, check=True)
    assert out.read_bytes() == bytes(ELFFile.from_file(obj).section(section).data)
    # and back again, through --raw and the kernel style
    raw_listing = run_cli("disasm", "--raw", out, "--style", "kernel", check=True).stdout
    again = run_cli("asm", "-", "-o", "-", input=raw_listing, check=True).stdout
    assert again == out.read_bytes()


def test_asm_reads_stdin_and_writes_bytecode():
    proc = run_cli("asm", "-", "-o", "-", input=b"mov %r0, 2\nexit\n", check=True)
    assert proc.stdout == bytes.fromhex("b700000002000000 9500000000000000")


@pytest.mark.parametrize("args, stdin, message", [
    (("disasm", "--raw", "-"), b"\x67\x60\x00\x00\x01\x00\x00\x00",
     b"<stdin>: instruction 0: lsh (opcode 0x67): reserved field src must be 0, is 6"),
    (("disasm", "--raw", "-"), b"\x95\x00\x00", b"bytecode length 3 is not a multiple of 8"),
    (("disasm", "--raw", "-"), b"", b"no bytecode"),
    (("disasm", "--raw", "-"), b"\x18\x01\x00\x00\x00\x00\x00\x00", b"truncated lddw"),
    (("asm", "-", "-o", "-"), b"r0 = 0\nbogus r1, r2\n", b"line 2: unknown mnemonic 'bogus'"),
    (("asm", "-", "-o", "-"), b"# nothing\n", b"no instructions"),
    (("disasm", "NOT_ELF"), None, b"not an ELF file"),
])
def test_errors_are_one_line_and_fail(tmp_path, args, stdin, message):
    (tmp_path / "NOT_ELF").write_bytes(b"#!/bin/sh\n" + b"echo this is a shell script, not a BPF object\n" * 3)
    args = [str(tmp_path / a) if a == "NOT_ELF" else a for a in args]
    proc = run_cli(*args, input=stdin)
    assert proc.returncode == 1
    err = proc.stderr.decode()
    assert message.decode() in err and err.count("\n") == 1 and "Traceback" not in err


def test_disasm_unknown_section_fails_before_printing():
    obj = compile_bpf(PROGS / "isa_jumps.bpf.c", cpu="v3", name="isa_jumps")
    proc = run_cli("disasm", "--section", "nope", obj)
    assert proc.returncode == 1 and proc.stdout == b"" and b"no section named 'nope'" in proc.stderr


def test_help_teaches():
    for command in ("disasm", "asm"):
        text = run_cli(command, "--help", check=True).stdout.decode()
        assert "examples:" in text
