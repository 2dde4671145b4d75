#!/usr/bin/env python3
"""Disassembler and assembler speed, side by side with llvm-objdump-19 and llvm-mc-19.

    python bench/bench_isa.py [N]        (default 100000 instructions)

Builds an object with N random valid instructions (clang-19 assembles them),
then times: llvm-objdump -d vs pybpf's listing of it (which must be
identical), and llvm-mc vs pybpf.isa.assemble on the same instruction text
(which must give identical bytes).  The llvm tools' times include process
start; pybpf's are in-process, and the CLI (with interpreter start) is timed
too.
"""

from __future__ import annotations

import random
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from pybpf.cli.disasm import disassemble_elf  # noqa: E402
from pybpf.elf.reader import ELFFile  # noqa: E402
from pybpf.errors import InstructionError  # noqa: E402
from pybpf.isa import LD_IMM64, OPCODES, Instruction, Program, assemble, objdump_text  # noqa: E402

CLANG = shutil.which("clang-19") or "clang"
OBJDUMP = shutil.which("llvm-objdump-19") or "llvm-objdump"
LLVM_MC = shutil.which("llvm-mc-19") or "llvm-mc"


def random_program(count: int, seed: int = 1) -> Program:
    """Valid instructions that llvm-objdump prints and llvm-mc parses the same way."""
    rng = random.Random(seed)
    # not: 32-bit atomics, load-acquire (LLVM 19 cannot print them), callx, gotol (llvm-mc 19 limits it to 16 bits)
    usable = [op for op in OPCODES if op not in (0xC3, 0xCB, 0xD3, 0x8D, 0x06)]
    out = []
    while len(out) < count:
        op = rng.choice(usable)
        info = OPCODES[op]
        pick = lambda allowed, any_value: (any_value() if allowed == "any" else  # noqa: E731
                                           0 if allowed is None else rng.choice(sorted(allowed)))
        dst = pick(info.dst, lambda: rng.randrange(11))
        src = 0 if op in (0x85, LD_IMM64) else pick(info.src, lambda: rng.randrange(11))
        off = pick(info.off, lambda: rng.randrange(-0x8000, 0x8000))
        imm = rng.randrange(1 << 64) if op == LD_IMM64 else pick(info.imm, lambda: rng.randrange(-2 ** 31, 2 ** 31))
        if op == 0x85:
            off, imm = 0, rng.randrange(212)
        if op == 0xDB and imm in (0x100, 0x110) or op & 0xC7 == 0x40 or op == 0xBF and off == 1:
            continue  # load-acquire (LLVM 21), ld_ind with imm, addr_space_cast: no LLVM 19 text
        try:
            out.append(Instruction(op, dst, src, off, imm).validate())
        except InstructionError:
            continue
    return Program(out)


def timed(fn):
    t0 = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - t0


def main() -> int:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    program = random_program(count)
    code = program.encode()
    with tempfile.TemporaryDirectory() as tmp:
        tmpd = Path(tmp)
        words = struct.unpack(f"<{len(code) // 8}Q", code)
        (tmpd / "big.c").write_text('asm(".section big,\\"ax\\",@progbits\\n"\n'
                                    + "".join(f'".quad {w:#x}\\n"\n' for w in words) + ");\n")
        subprocess.run([CLANG, "-target", "bpf", "-c", str(tmpd / "big.c"), "-o", str(tmpd / "big.o")], check=True)
        obj = tmpd / "big.o"

        ref, t_objdump = timed(lambda: subprocess.run([OBJDUMP, "-d", "--no-show-raw-insn", str(obj)],
                                                      capture_output=True, text=True, check=True).stdout)
        mine, t_pybpf = timed(lambda: disassemble_elf(ELFFile.from_file(obj)))
        _, t_cli = timed(lambda: subprocess.run([sys.executable, "-m", "pybpf", "disasm", str(obj)],
                                                capture_output=True, check=True, env={"PYTHONPATH": str(ROOT / "src")}))
        identical = ref.splitlines()[3:] == mine[1:]

        text = "\n".join(objdump_text(i.opcode, i.dst, i.src, i.off, i.imm)
                         if i.opcode != LD_IMM64 else objdump_text(i.opcode, i.dst, i.src, i.off, i.imm & 0xFFFFFFFF,
                                                                   i.imm >> 32)
                         for i in program)
        (tmpd / "big.s").write_text(text + "\n")
        _, t_mc = timed(lambda: subprocess.run([LLVM_MC, "-triple", "bpfel", "-filetype=obj", str(tmpd / "big.s"),
                                                "-o", str(tmpd / "mc.o")], check=True, capture_output=True))
        assembled, t_asm = timed(lambda: assemble(text))
        mc_code = bytes(ELFFile.from_file(tmpd / "mc.o").section(".text").data)

    slots = len(code) // 8
    print(f"{len(program)} instructions ({slots} slots)")
    print(f"disassemble: llvm-objdump-19 {t_objdump:.2f}s | pybpf in-process {t_pybpf:.2f}s "
          f"({t_pybpf / t_objdump:.1f}x), pybpf CLI {t_cli:.2f}s ({t_cli / t_objdump:.1f}x); "
          f"listings identical: {identical}")
    print(f"assemble:    llvm-mc-19 {t_mc:.2f}s | pybpf in-process {t_asm:.2f}s ({t_asm / t_mc:.1f}x); "
          f"bytes identical to the program: {assembled.encode() == code}, to llvm-mc's: {mc_code == code}")
    print(f"pybpf: {slots / t_pybpf / 1000:.0f}k slots/s disassembled, {len(program) / t_asm / 1000:.0f}k lines/s "
          f"assembled")
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
