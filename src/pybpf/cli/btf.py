"""`pybpf btf list`: the BTF objects in the kernel (vmlinux, modules, programs'), like `bpftool btf list`."""

from __future__ import annotations

import argparse

from .bpfobjects import add_output_options, each_selected, print_json, selector_help, wants_json

EXAMPLES = """\
examples:
  pybpf btf list                 every BTF object, with the programs and maps using it
  pybpf btf show 1 --json        vmlinux's BTF as JSON (bpftool -j field names)
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "btf", help="list BTF objects loaded in the kernel (like bpftool btf list)",
        description="List the BTF (type information) objects in the kernel and who uses them.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="verb", metavar="VERB")
    for verb in ("list", "show"):
        s = sub.add_parser(verb, help="show BTF objects (all, or the one given)")
        s.add_argument("btf", nargs="*", metavar="BTF", help=selector_help("btf"))
        add_output_options(s)
        s.set_defaults(func=run_show)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def run_show(args: argparse.Namespace) -> int:
    from ..kernel.introspect import btf_record, btf_users, object_owners

    users = btf_users()
    owners = object_owners(("btf",)) if args.pids else None
    records = [btf_record(fd, users, owners) for fd in each_selected("btf", args.btf)]
    if wants_json(args):
        print_json(records if not args.btf or len(records) != 1 else records[0], args.pretty)
    else:
        for rec in records:
            print(format_plain(rec))
    return 0


def format_plain(rec: dict) -> str:
    name = rec.get("name")
    out = f"{rec['id']}: name " + (f"[{name}]" if rec["kernel"] else (name or "<anon>")) + f"  size {rec['size']}B"
    if rec["prog_ids"]:
        out += "  prog_ids " + ",".join(map(str, rec["prog_ids"]))
    if rec["map_ids"]:
        out += "  map_ids " + ",".join(map(str, rec["map_ids"]))
    if rec.get("pids"):
        out += "\n\tpids " + ", ".join(f"{p['comm']}({p['pid']})" for p in rec["pids"])
    return out
