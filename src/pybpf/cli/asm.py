"""`pybpf asm`: assemble BPF assembly text into raw bytecode."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import AssemblerError
from ..isa import assemble_listing

EPILOG = """\
examples:
  pybpf asm prog.s -o prog.bin              LLVM, kernel or conformance-suite syntax
  pybpf disasm --exact x.o | pybpf asm - --section xdp -o xdp.bin
  echo 'r0 = 0x2; exit' | tr ';' '\\n' | pybpf asm - -o ret2.bin

Accepted syntax, even mixed in one file:
  LLVM (llvm-objdump):   r1 = *(u64 *)(r2 + 0x8)   if r1 > 0x3 goto +0x2   call 0x1
                         whole 'llvm-objdump -d' listings (with -r lines and raw bytes)
  kernel (verifier log,  (bf) r1 = r10   goto pc+2   call bpf_map_lookup_elem#1
  bpftool xlated):       (18) r1 = map[id:5]
  conformance suite /    mov %r0, 1   ldxw %r0, [%r1+4]   lock fetch add [%r10-8], %r1
  uBPF:                  call local func   lddw %r0, 0x1122334455667788
Labels ('name:') can be jump and call targets.  The output is the bytecode:
8 bytes per instruction slot, little-endian, as the kernel and the VM load it.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "asm", help="assemble BPF assembly text into bytecode",
        description="Assemble BPF assembly (LLVM, kernel or conformance-suite syntax) into raw bytecode.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", help="assembly text ('-' reads stdin)")
    p.add_argument("-o", "--output", required=True, help="bytecode file to write ('-' writes stdout)")
    p.add_argument("-j", "--section", metavar="S",
                   help="the section to assemble, when the text is a listing of several sections")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text()
    sections = assemble_listing(text)
    if args.section is not None:
        if args.section not in sections:
            raise AssemblerError(f"{args.file}: no section {args.section!r} in the listing "
                                 f"(it has {', '.join(map(repr, sections))})")
        program = sections[args.section]
    elif len(sections) > 1:
        raise AssemblerError(f"{args.file}: the listing has {len(sections)} sections "
                             f"({', '.join(map(repr, sections))}); choose one with --section")
    else:
        program = next(iter(sections.values()))
    if not len(program):
        raise AssemblerError(f"{args.file}: no instructions")
    code = program.encode()
    if args.output == "-":
        sys.stdout.buffer.write(code)
    else:
        Path(args.output).write_bytes(code)
    return 0
