"""`pybpf prog`: programs in the kernel, like `bpftool prog` (list, show, dump xlated|jited, pin)."""

from __future__ import annotations

import argparse
import time

from ..errors import BPFError
from .bpfobjects import (
    add_output_options, emit, print_json, selector_help, show_records, split_selector, wants_json,
)

EXAMPLES = """\
examples:
  pybpf prog list                          every program, like 'bpftool prog'
  pybpf prog show 42 --json                one program as JSON (bpftool -j field names)
  pybpf prog show name on_getppid          every program of that name
  pybpf prog show --enable-stats 5         count runs and run time for 5 s, then show them
  pybpf prog dump xlated id 42             the verifier's instructions with C source lines and
                                           each function's prototype, as bpftool prints them
  pybpf prog dump xlated tag 6d0e5812b1d3ffbc opcodes   every program with that tag, bpftool's spelling
  pybpf prog dump xlated 42 --style llvm --linum
  pybpf prog dump jited pinned /sys/fs/bpf/myprog --opcodes
  pybpf prog pin 42 /sys/fs/bpf/myprog
  pybpf prog load xdp.bpf.o /sys/fs/bpf/xdp       load every program, pin each as /sys/fs/bpf/xdp/NAME
  pybpf prog load tools.bpf.o /sys/fs/bpf/t --only trace_exec --pinmaps /sys/fs/bpf/t_maps
  pybpf prog run xdp.bpf.o xdp_firewall --data-in packet.bin --repeat 1000
  pybpf prog run xdp.bpf.o xdp_firewall --data-in packet.bin --backend vm --json

PROG is """ + selector_help("prog") + """.
'dump jited' needs capstone (pip install 'pybpf[jited]').
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "prog", help="list, show, dump and pin programs loaded in the kernel (like bpftool prog)",
        description="Inspect BPF programs loaded in the kernel: their ids, types, tags, sizes, maps, "
                    "run statistics, translated and JITed code.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="verb", metavar="VERB")
    for verb in ("list", "show"):
        s = sub.add_parser(verb, help="show programs (all, or the PROG given)", epilog=EXAMPLES,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        s.add_argument("prog", nargs="*", metavar="PROG", help=selector_help("prog"))
        s.add_argument("--enable-stats", type=float, metavar="SECONDS", default=None,
                       help="collect run counts and run time for SECONDS before showing (BPF_ENABLE_STATS)")
        add_output_options(s)
        s.set_defaults(func=run_show)
    d = sub.add_parser("dump", help="dump a program's translated or JITed code", epilog=EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    d.add_argument("what", choices=("xlated", "jited"), help="the verifier's instructions or the machine code")
    d.add_argument("prog", nargs="+", metavar="PROG", help=selector_help("prog"))
    d.add_argument("--style", choices=("kernel", "llvm"), default="kernel",
                   help="instruction syntax of 'xlated' (default: kernel, as bpftool prints it)")
    d.add_argument("--opcodes", action="store_true", help="also print the raw bytes of each instruction")
    d.add_argument("--linum", action="store_true", help="add file, line and column to source lines")
    add_output_options(d)
    d.set_defaults(func=run_dump)
    pin = sub.add_parser("pin", help="pin a program on bpffs")
    pin.add_argument("prog", nargs="+", metavar="PROG PATH", help=f"{selector_help('prog')}, then the path")
    pin.set_defaults(func=run_pin)
    load = sub.add_parser("load", help="load an object's programs and pin them (like bpftool prog loadall)",
                          epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    load.add_argument("object", metavar="FILE", help="BPF object (.o) or BPF C source (.c, compiled with clang)")
    load.add_argument("pindir", metavar="PINDIR", help="directory on bpffs to create; each program is pinned there")
    load.add_argument("--only", action="append", metavar="PROG", help="load only this program (repeatable)")
    load.add_argument("--pinmaps", metavar="MAPDIR", help="also pin every map in this directory")
    load.set_defaults(func=run_load)
    test = sub.add_parser("run", help="run a program of an object on input data (BPF_PROG_TEST_RUN, or the VM)",
                          epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    test.add_argument("object", metavar="FILE", help="BPF object (.o) or BPF C source (.c)")
    test.add_argument("program", metavar="PROG", help="name of the program to run")
    test.add_argument("--data-in", metavar="FILE", help="input packet or buffer ('-' for stdin)")
    test.add_argument("--ctx-in", metavar="FILE", help="input context (struct __sk_buff, xdp_md, ...)")
    test.add_argument("--data-out", metavar="FILE", help="write the output data here instead of a hex dump")
    test.add_argument("--ctx-out", metavar="FILE", help="write the output context here")
    test.add_argument("--repeat", type=int, default=1, metavar="N", help="run N times (duration is the average)")
    test.add_argument("--backend", choices=("kernel", "vm"), default="kernel",
                      help="the kernel (BPF_PROG_TEST_RUN) or pybpf's VM")
    test.add_argument("--json", action="store_true", help="print the result as JSON")
    test.set_defaults(func=run_test)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def run_show(args: argparse.Namespace) -> int:
    from ..kernel.introspect import enable_stats, program_record

    if args.enable_stats is not None:
        with enable_stats():
            time.sleep(max(0.0, args.enable_stats))
    return show_records("prog", args, args.prog, program_record, format_plain)


def format_plain(rec: dict) -> str:
    """A program the way bpftool prints it without -j."""
    from ..kernel.introspect import format_time

    head = f"{rec['id']}: {rec['type']}  "
    if "name" in rec:
        head += f"name {rec['name']}  "
    head += f"tag {rec['tag']}"
    if "dev" in rec:
        head += f"  offloaded_to ifindex {rec['dev']['ifindex']}"
    if rec.get("gpl_compatible"):
        head += "  gpl"
    if "run_time_ns" in rec:
        head += f" run_time_ns {rec['run_time_ns']} run_cnt {rec['run_cnt']}"
    if "recursion_misses" in rec:
        head += f" recursion_misses {rec['recursion_misses']}"
    lines = [head]
    if "loaded_at" in rec:
        lines.append(f"\tloaded_at {format_time(rec['loaded_at'])}  uid {rec['uid']}")
    body = f"\txlated {rec['bytes_xlated']}B"
    body += f"  jited {rec['bytes_jited']}B" if rec.get("jited") else "  not jited"
    if "bytes_memlock" in rec:
        body += f"  memlock {rec['bytes_memlock']}B"
    if rec.get("map_ids"):
        body += "  map_ids " + ",".join(map(str, rec["map_ids"]))
    for path in rec.get("pinned", ()):
        body += f"\n\tpinned {path}"
    if "btf_id" in rec:
        body += f"\n\tbtf_id {rec['btf_id']}"
    if rec.get("pids"):
        body += "\n\tpids " + ", ".join(f"{p['comm']}({p['pid']})" for p in rec["pids"])
    lines.append(body)
    return "\n".join(lines)


_HEADER_FIELDS = ("id", "type", "name", "tag", "gpl_compatible", "run_time_ns", "run_cnt", "recursion_misses")
_DUMP_KEYWORDS = ("opcodes", "linum")


def run_dump(args: argparse.Namespace) -> int:
    from ..kernel.syscall import close_fd
    from .bpfobjects import open_selected

    selector, rest = split_selector("prog", args.prog)
    for word in [w for w in rest if w in _DUMP_KEYWORDS]:  # bpftool's spelling: '... id 42 opcodes'
        setattr(args, word, True)
        rest.remove(word)
    if rest:
        raise BPFError(f"unexpected arguments after the program: {' '.join(rest)} (options: --opcodes, --linum)")
    fds = open_selected("prog", selector)
    try:
        outputs = [_dump_one(fd, args, several=len(fds) > 1) for fd in fds]
    finally:
        for fd in fds:
            close_fd(fd)
    if wants_json(args):
        print_json(outputs if len(outputs) > 1 else outputs[0], args.pretty)
    else:
        emit("\n\n".join("\n".join(lines) for lines in outputs) + "\n")
    return 0


def _dump_one(fd: int, args: argparse.Namespace, several: bool):
    """One program's dump; with ``several``, headed by the program like bpftool heads it."""
    from ..kernel import progdump
    from ..kernel.introspect import program_record

    if args.what == "xlated":
        records = progdump.dump_xlated(fd, style=args.style)
        dump = progdump.xlated_json(records, opcodes=args.opcodes, linum=args.linum) if wants_json(args) \
            else progdump.xlated_plain(records, opcodes=args.opcodes, linum=args.linum)
    else:
        functions = progdump.dump_jited(fd)
        dump = progdump.jited_json(functions, opcodes=args.opcodes, linum=args.linum) if wants_json(args) \
            else progdump.jited_plain(functions, opcodes=args.opcodes, linum=args.linum)
    if several:
        rec = program_record(fd)
        if wants_json(args):
            return {**{k: rec[k] for k in _HEADER_FIELDS if k in rec}, "insns": dump}
        return [format_plain(rec).split("\n")[0], *dump]
    return dump


def run_pin(args: argparse.Namespace) -> int:
    from ..kernel.syscall import close_fd, obj_pin
    from .bpfobjects import open_selected

    selector, rest = split_selector("prog", args.prog)
    if len(rest) != 1:
        raise BPFError("usage: pybpf prog pin PROG PATH")
    fds = open_selected("prog", selector)
    try:
        if len(fds) != 1:
            raise BPFError(f"{' '.join(selector)} names {len(fds)} programs; pin needs exactly one")
        obj_pin(fds[0], rest[0], f"program {' '.join(selector)}")
    finally:
        for fd in fds:
            close_fd(fd)
    return 0


def _open_spec(path: str):
    from .objfile import open_spec

    return open_spec(path)


def run_load(args: argparse.Namespace) -> int:
    import os
    import sys

    from ..kernel.fs import ensure_bpffs, pin_name

    spec = _open_spec(args.object)
    if args.only:
        unknown = [p for p in args.only if p not in spec.programs]
        if unknown:
            raise BPFError(f"{args.object}: no program {unknown[0]!r} (there are: {', '.join(spec.programs)})")
        for name, prog in spec.programs.items():
            prog.autoload = name in args.only
    ensure_bpffs()
    made: list[str] = []
    try:
        with spec.load(backend="kernel") as obj:
            for directory in filter(None, (args.pindir, args.pinmaps)):
                if not os.path.isdir(directory):
                    os.makedirs(directory)
                    made.append(directory)
            for name, prog in obj.programs.items():
                prog.pin(os.path.join(args.pindir, name))
                made.append(prog.pinned_path)
            if args.pinmaps:
                for name, live in obj.maps.items():
                    if live.pinned_path is None:  # maps pinned by name already live somewhere
                        live.pin(os.path.join(args.pinmaps, pin_name(name)))
                        made.append(live.pinned_path)
    except BaseException:
        for path in reversed(made):  # nothing half-pinned
            try:
                os.rmdir(path) if os.path.isdir(path) else os.unlink(path)
            except OSError:
                pass
        raise
    print(f"pinned {len(obj.programs)} program{'s' if len(obj.programs) != 1 else ''} under {args.pindir}"
          + (f" and {len(obj.maps)} maps under {args.pinmaps}" if args.pinmaps else ""), file=sys.stderr)
    return 0


def _read_input(path: str | None) -> bytes | None:
    import sys

    if path is None:
        return None
    if path == "-":
        return sys.stdin.buffer.read()
    with open(path, "rb") as f:
        return f.read()


def hexdump(data: bytes) -> list[str]:
    """16 bytes a line: offset, hex in two groups of 8, printable ASCII."""
    lines = []
    for off in range(0, len(data), 16):
        chunk = data[off:off + 16]
        hexes = " ".join(f"{b:02x}" for b in chunk[:8]) + "  " + " ".join(f"{b:02x}" for b in chunk[8:])
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"{off:08x}  {hexes:<49} |{text}|")
    return lines


def run_test(args: argparse.Namespace) -> int:
    spec = _open_spec(args.object)
    if args.program not in spec.programs:
        raise BPFError(f"{args.object}: no program {args.program!r} (there are: {', '.join(spec.programs)})")
    for name, prog in spec.programs.items():
        prog.autoload = name == args.program
    data = _read_input(args.data_in) or b""
    ctx = _read_input(args.ctx_in)
    if args.repeat < 1:
        raise BPFError("--repeat must be at least 1")
    with spec.load(backend=args.backend) as obj:
        result = obj.programs[args.program].test_run(data, ctx, repeat=args.repeat)
    for path, out in ((args.data_out, result.data_out), (args.ctx_out, result.ctx_out)):
        if path:
            with open(path, "wb") as f:
                f.write(out)
    if args.json:
        record = {"retval": result.retval, "duration": result.duration}
        if not args.data_out:
            record["data_out"] = result.data_out.hex()
        if not args.ctx_out and result.ctx_out:
            record["ctx_out"] = result.ctx_out.hex()
        print_json(record, False)
        return 0
    print(f"retval: {result.retval} ({result.retval:#x})")
    print(f"duration: {result.duration} ns (average of {args.repeat} run{'s' if args.repeat != 1 else ''})")
    if not args.data_out and result.data_out:
        print(f"data_out: {len(result.data_out)} bytes")
        print("\n".join(hexdump(result.data_out)))
    if not args.ctx_out and result.ctx_out:
        print(f"ctx_out: {len(result.ctx_out)} bytes")
        print("\n".join(hexdump(result.ctx_out)))
    return 0
