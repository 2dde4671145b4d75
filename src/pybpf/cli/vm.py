"""`pybpf vm`: run programs in pybpf's userspace VM, and run the BPF conformance suite on it."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import BPFError

EXAMPLES = """
examples:
  pybpf vm run firewall.bpf.o xdp_firewall --data-in packet.bin
  pybpf vm run prog.bin --mem "01 02 03 04"            # raw bytecode: r1 = memory, r2 = its length
  pybpf vm run firewall.bpf.o --data-in packet.bin --repeat 1000 --json
  pybpf vm conformance /path/to/bpf_conformance/tests
  bpf_conformance_runner --test_file_directory tests --plugin_path ./pybpf-plugin
      (with pybpf-plugin a script running: pybpf vm conformance-plugin "$@")
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "vm", help="run BPF programs in pybpf's userspace VM (no kernel needed)",
        description="Run eBPF programs in pybpf's own VM: from a clang-built object (by program name) or "
                    "raw bytecode, with packet data and context as the kernel's BPF_PROG_TEST_RUN takes "
                    "them; or run the BPF ISA conformance suite against the VM.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="vm_command", metavar="COMMAND")
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])

    r = sub.add_parser("run", help="run one program like BPF_PROG_TEST_RUN", epilog=EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Run a program once (or --repeat times) and print its return value, the "
                                   "time per run and the output data.  FILE is a BPF ELF object (PROG names "
                                   "the program; optional when there is one) or raw bytecode (.bin) or its hex "
                                   "text; raw bytecode runs with r1 = --mem/--data-in and r2 = its length.")
    r.add_argument("file", type=Path, metavar="FILE")
    r.add_argument("program", nargs="?", metavar="PROG", help="program name in the object")
    source = r.add_mutually_exclusive_group()
    source.add_argument("--data-in", type=Path, metavar="F", help="packet data (or memory) read from file F")
    source.add_argument("--mem", metavar="HEX", help="packet data (or memory) as hex bytes")
    r.add_argument("--ctx-in", type=Path, metavar="F", help="context struct read from file F")
    r.add_argument("--data-out", type=Path, metavar="F", help="write the output data to file F")
    r.add_argument("--repeat", type=int, default=1, metavar="N", help="run N times (the duration is per run)")
    r.add_argument("--engine", choices=("compiled", "interpreter"), default="compiled",
                   help="the VM engine (default: compiled)")
    r.add_argument("--budget", type=int, default=None, metavar="N", help="instruction budget per run")
    r.add_argument("--cpus", type=int, default=None, metavar="N", help="virtual CPUs (per-CPU maps)")
    r.add_argument("--json", action="store_true", help="print the result as JSON")
    r.set_defaults(func=run_program)

    c = sub.add_parser("conformance", help="run a directory of BPF conformance tests (.data files)",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES,
                       description="Run every .data case of DIR (the BPF ISA conformance suite's format) in the VM "
                                   "and print PASS/FAIL/SKIP per case and a summary; exits 1 when any case fails. "
                                   "Cases needing a newer CPU version than --cpu are skipped.")
    c.add_argument("directory", type=Path, metavar="DIR")
    c.add_argument("--cpu", choices=("v1", "v2", "v3", "v4"), default="v4", help="CPU version (default v4)")
    c.add_argument("--include", metavar="REGEX", help="only cases whose file name matches")
    c.add_argument("--exclude", metavar="REGEX", help="skip cases whose file name matches")
    c.add_argument("--engine", choices=("compiled", "interpreter"), default="compiled")
    c.add_argument("-q", "--quiet", action="store_true", help="print only failures and the summary")
    c.set_defaults(func=run_conformance)

    g = sub.add_parser("conformance-plugin",
                       help="be a plugin of the bpf_conformance runner (program in hex on stdin)",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES,
                       description="The BPF conformance suite's plugin protocol: the program arrives on stdin as "
                                   "hex bytes (an ELF object with --elf), the memory as the first argument (hex "
                                   "bytes); r0 is printed in hex; an error goes to stderr with exit status 1.")
    g.add_argument("memory", nargs="?", default="", metavar="MEM")
    g.add_argument("options", nargs="*", metavar="OPTION", help="plugin options (ignored)")
    g.add_argument("--elf", action="store_true", help="stdin holds an ELF object, not bytecode")
    g.add_argument("--debug", action="store_true", help="print the disassembly to stderr")
    g.set_defaults(func=run_plugin)


def _read_input(args: argparse.Namespace) -> bytes:
    from ..vm.conformance import parse_hex_bytes

    if args.data_in is not None:
        return args.data_in.read_bytes()
    if args.mem:
        return parse_hex_bytes(args.mem)
    return b""


def _load(args: argparse.Namespace):
    """The VMProgram FILE/PROG names."""
    from ..vm import VM

    options = {k: v for k, v in (("budget", args.budget), ("cpus", args.cpus)) if v is not None}
    vm = VM(engine=args.engine, trace_output=sys.stderr, **options)
    data = args.file.read_bytes()
    if data[:4] == b"\x7fELF":
        from ..object import ObjectSpec
        from ..vm import load_spec

        spec = ObjectSpec.from_file(args.file)
        if args.program is None:
            loadable = [n for n, p in spec.programs.items() if p.autoload]
            if len(loadable) != 1:
                raise BPFError(f"{args.file} has {len(loadable)} programs ({', '.join(loadable)}): name one")
            args.program = loadable[0]
        spec.program(args.program)
        for name, prog in spec.programs.items():
            prog.autoload = name == args.program
        return load_spec(spec, vm=vm).programs[args.program]
    if args.program is not None:
        raise BPFError(f"{args.file} is raw bytecode: it has no program names")
    try:
        text = data.decode("ascii")
        if any(c not in "0123456789abcdefABCDEF \t\r\n" for c in text):
            raise ValueError
        from ..vm.conformance import parse_hex_bytes

        data = parse_hex_bytes(text)
    except (UnicodeDecodeError, ValueError):
        pass
    return vm.load(data, name=args.file.stem)


def run_program(args: argparse.Namespace) -> int:
    prog = _load(args)
    data = _read_input(args)
    ctx = args.ctx_in.read_bytes() if args.ctx_in is not None else None
    result = prog.test_run(data, ctx, repeat=args.repeat)
    if args.data_out is not None:
        args.data_out.write_bytes(result.data_out)
    if args.json:
        print(json.dumps({"retval": result.retval, "duration_ns": result.duration, "data_out": result.data_out.hex(),
                          "ctx_out": result.ctx_out.hex(), "instructions": prog.vm.last_instructions}))
        return 0
    print(f"retval: {result.retval} ({result.retval:#x})")
    print(f"duration: {result.duration} ns per run, {prog.vm.last_instructions} instructions")
    if result.data_out and args.data_out is None:
        print(f"data_out: {len(result.data_out)} bytes")
        print(_hexdump(result.data_out))
    if result.ctx_out:
        print(f"ctx_out: {result.ctx_out.hex()}")
    return 0


def _hexdump(data: bytes, limit: int = 256) -> str:
    lines = []
    for i in range(0, min(len(data), limit), 16):
        chunk = data[i:i + 16]
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"  {i:04x}  {chunk.hex(' '):<47}  {text}")
    if len(data) > limit:
        lines.append(f"  ... {len(data) - limit} more bytes")
    return "\n".join(lines)


def run_conformance(args: argparse.Namespace) -> int:
    from ..vm.conformance import run_directory, summary

    results = []
    for res in run_directory(args.directory, cpu=int(args.cpu[1]), engine=args.engine, include=args.include,
                             exclude=args.exclude):
        results.append(res)
        if not args.quiet or res.status == "fail":
            print(f"{res.status.upper()}: {res.name}" + (f": {res.detail}" if res.detail and res.status != "pass"
                                                          else ""))
    passed, failed, skipped, total = summary(results)
    print(f"Passed {passed} out of {total - skipped} tests ({failed} failed, {skipped} skipped).")
    return 1 if failed else 0


def run_plugin(args: argparse.Namespace) -> int:
    from ..isa import Program
    from ..vm.conformance import parse_hex_bytes, run_program

    try:
        code = parse_hex_bytes(sys.stdin.read())
        memory = parse_hex_bytes(args.memory) if args.memory and not args.memory.startswith("--") else b""
        if args.elf:
            from ..object import ObjectSpec

            spec = ObjectSpec.from_bytes(code, name="conformance")
            if not spec.programs:
                raise BPFError("the ELF object has no program")
            prog = next(iter(spec.programs))
            program = spec.link_instructions(prog, {})
        else:
            program = Program.decode(code)
        if args.debug:
            from ..isa import format_llvm

            for insn in program:
                print(format_llvm(insn), file=sys.stderr)
        r0 = run_program(program, memory)
    except BPFError as exc:
        print(str(exc).splitlines()[0], file=sys.stderr)
        return 1
    print(f"{r0:x}")
    return 0
