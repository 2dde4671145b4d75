"""`pybpf prog`: programs in the kernel, like `bpftool prog` (list, show, dump xlated|jited, pin)."""

from __future__ import annotations

import argparse
import time

from ..errors import BPFError
from .bpfobjects import add_output_options, each_selected, print_json, selector_help, split_selector, wants_json

EXAMPLES = """\
examples:
  pybpf prog list                          every program, like 'bpftool prog'
  pybpf prog show 42 --json                one program as JSON (bpftool -j field names)
  pybpf prog show name on_getppid          every program of that name
  pybpf prog show --enable-stats 5         count runs and run time for 5 s, then show them
  pybpf prog dump xlated id 42             the verifier's instructions with C source lines
  pybpf prog dump xlated 42 --style llvm --linum
  pybpf prog dump jited pinned /sys/fs/bpf/myprog --opcodes
  pybpf prog pin 42 /sys/fs/bpf/myprog

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
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _context(args: argparse.Namespace) -> dict:
    from ..kernel.introspect import object_owners, pinned_paths

    return {"owners": object_owners(("prog",)) if args.pids else None,
            "pinned": pinned_paths("prog") if args.bpffs else {}}


def run_show(args: argparse.Namespace) -> int:
    from ..kernel.introspect import enable_stats, program_record

    if args.enable_stats is not None:
        with enable_stats():
            time.sleep(max(0.0, args.enable_stats))
    ctx = _context(args)
    records = []
    for fd in each_selected("prog", args.prog):
        rec = program_record(fd, owners=ctx["owners"])
        if rec["id"] in ctx["pinned"]:
            rec["pinned"] = ctx["pinned"][rec["id"]]
        records.append(rec)
    if wants_json(args):
        print_json(records if not args.prog or len(records) != 1 else records[0], args.pretty)
    else:
        for rec in records:
            print(format_plain(rec))
    return 0


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


def run_dump(args: argparse.Namespace) -> int:
    from ..kernel import progdump

    selector, rest = split_selector("prog", args.prog)
    if rest:
        raise BPFError(f"unexpected arguments after the program: {' '.join(rest)} (options go as --opcodes, --linum)")
    outputs = []
    for fd in each_selected("prog", selector):
        if args.what == "xlated":
            records = progdump.dump_xlated(fd, style=args.style)
            outputs.append(progdump.xlated_json(records, opcodes=args.opcodes, linum=args.linum) if wants_json(args)
                           else progdump.xlated_plain(records, opcodes=args.opcodes, linum=args.linum))
        else:
            functions = progdump.dump_jited(fd)
            outputs.append(progdump.jited_json(functions, opcodes=args.opcodes, linum=args.linum) if wants_json(args)
                           else progdump.jited_plain(functions, opcodes=args.opcodes, linum=args.linum))
    if wants_json(args):
        print_json(outputs[0] if len(outputs) == 1 else outputs, args.pretty)
    else:
        print("\n\n".join("\n".join(lines) for lines in outputs))
    return 0


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
