#!/usr/bin/env python3
"""Compare `pybpf disasm` with llvm-objdump-19 over every BPF object (*.o, *.elf) in a directory.

    python bench/compare_objdump.py DIR [--reloc] [--no-reassemble] [-v]

For each *.o / *.elf under DIR (recursively): the whole llvm-objdump-19 -d listing
(--no-show-raw-insn; -r with --reloc) against pybpf's, line by line apart from
the file header, and each program section reassembled from pybpf's default
text and from --exact text, compared with the section's bytes.  Prints the
identical percentages, the first differences, and the time both tools took.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from pybpf.cli.disasm import disassemble_elf  # noqa: E402
from pybpf.elf.reader import SHF_EXECINSTR, SHT_NOBITS, ELFFile  # noqa: E402
from pybpf.errors import BPFError  # noqa: E402
try:
    from pybpf.isa import assemble_listing  # noqa: E402
except ImportError:
    assemble_listing = None

OBJDUMP = shutil.which("llvm-objdump-19") or "llvm-objdump"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("directory", type=Path)
    ap.add_argument("--reloc", action="store_true", help="compare with -r (relocation lines too)")
    ap.add_argument("--no-reassemble", action="store_true", help="skip the reassembly check")
    ap.add_argument("-v", "--verbose", action="store_true", help="show every differing line")
    args = ap.parse_args()
    objects = sorted(p for p in args.directory.rglob("*") if p.suffix in (".o", ".elf") and p.is_file())
    if not objects:
        print(f"no .o or .elf files under {args.directory}", file=sys.stderr)
        return 2
    lines = same = insn_lines = insn_same = 0
    files_identical = 0
    slots = slots_exact = slots_default = 0
    sections = sections_default = sections_exact = 0
    t_objdump = t_pybpf = t_asm = 0.0
    shown = 0
    for path in objects:
        t0 = time.perf_counter()
        cmd = [OBJDUMP, "-d", "--no-show-raw-insn", *(["-r"] if args.reloc else []), str(path)]
        ref = subprocess.run(cmd, capture_output=True, text=True).stdout.splitlines()[3:]
        t1 = time.perf_counter()
        try:
            elf = ELFFile.from_file(path)
            mine = disassemble_elf(elf, relocations=args.reloc)[1:]
        except BPFError as exc:
            print(f"{path}: pybpf failed: {exc}")
            continue
        t_objdump += t1 - t0
        t_pybpf += time.perf_counter() - t1
        identical = ref == mine
        files_identical += identical
        for a, b in zip(ref, mine):
            lines += 1
            same += a == b
            if ":\t" in a:
                insn_lines += 1
                insn_same += a == b
            if a != b and (args.verbose or shown < 10):
                shown += 1
                print(f"{path.name}:\n  llvm-objdump: {a!r}\n  pybpf:        {b!r}")
        if len(ref) != len(mine):
            lines += abs(len(ref) - len(mine))
            print(f"{path.name}: {len(ref)} lines from llvm-objdump, {len(mine)} from pybpf")
        if args.no_reassemble:
            continue
        t2 = time.perf_counter()
        reassembled = {}
        for exact in (False, True):
            try:
                reassembled[exact] = assemble_listing("\n".join(mine if not exact else
                                                                disassemble_elf(elf, exact=True)))
            except BPFError as exc:
                reassembled[exact] = {}
                print(f"{path.name}: {'--exact' if exact else 'default'} listing does not assemble: {exc}")
        for sec in elf.sections:
            if not sec.flags & SHF_EXECINSTR or sec.type == SHT_NOBITS or not sec.size:
                continue
            sections += 1
            want = bytes(sec.data)
            slots += len(want) // 8
            for exact in (False, True):
                program = reassembled[exact].get(sec.name)
                got = program.encode() if program is not None else b""
                ok = sum(got[i:i + 8] == want[i:i + 8] for i in range(0, len(want), 8))
                if exact:
                    slots_exact += ok
                    sections_exact += got == want
                else:
                    slots_default += ok
                    sections_default += got == want
                    if got != want and (args.verbose or shown < 20):
                        shown += 1
                        bad = next((i // 8 for i in range(0, len(want), 8) if got[i:i + 8] != want[i:i + 8]), None)
                        print(f"{path.name} [{sec.name}]: default text reassembles differently from slot {bad}")
        t_asm += time.perf_counter() - t2
    pct = lambda a, b: f"{100.0 * a / b:.3f}%" if b else "n/a"  # noqa: E731
    print(f"\n{len(objects)} objects: {files_identical} listings identical ({pct(files_identical, len(objects))})")
    print(f"lines: {same}/{lines} identical ({pct(same, lines)}); "
          f"instruction lines: {insn_same}/{insn_lines} ({pct(insn_same, insn_lines)})")
    if not args.no_reassemble:
        print(f"reassembled from default text: {sections_default}/{sections} sections byte-identical, "
              f"{slots_default}/{slots} slots ({pct(slots_default, slots)})")
        print(f"reassembled from --exact text:  {sections_exact}/{sections} sections byte-identical, "
              f"{slots_exact}/{slots} slots ({pct(slots_exact, slots)})")
    print(f"time: llvm-objdump-19 {t_objdump:.2f}s (incl. process start), pybpf disasm {t_pybpf:.2f}s, "
          f"pybpf asm x2 {t_asm:.2f}s")
    return 0 if files_identical == len(objects) else 1


if __name__ == "__main__":
    sys.exit(main())
