"""`pybpf btf`: BTF files and the kernel's BTF objects.

``dump`` and ``ext`` read BTF from files (raw BTF, /sys/kernel/btf/*, ELF objects) and
print it as bpftool does; ``list``/``show`` list the BTF objects loaded in the kernel,
like `bpftool btf list`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .bpfobjects import add_output_options, selector_help, show_records

EPILOG = """\
examples:
  pybpf btf dump /sys/kernel/btf/vmlinux --format c > vmlinux.h
                                          the kernel's types as a C header for CO-RE programs
  pybpf btf dump prog.bpf.o               raw listing of an object's .BTF (like bpftool btf dump file)
  pybpf btf dump prog.bpf.o --json        the same as JSON (bpftool -j)
  pybpf btf dump /sys/kernel/btf/nf_conntrack
                                          a module's BTF (split on vmlinux automatically)
  pybpf btf dump mod.btf --base vmlinux.btf --format c
                                          split BTF from a file on an explicit base (bpftool -B)
  pybpf btf dump vmlinux.btf --type task_struct --format c
                                          one type and everything it needs
  pybpf btf ext prog.bpf.o                .BTF.ext: func_info, line_info (with source) and CO-RE relocations
  pybpf btf list                          BTF objects in the kernel, with the programs and maps using them
  pybpf btf show 1 --json                 vmlinux's BTF object as JSON (bpftool -j field names)

FILE is raw BTF (/sys/kernel/btf/*, a .btf file) or an ELF file with a .BTF section.
The C output is declaration for declaration what `bpftool btf dump file FILE format c`
prints, so a diff against bpftool's vmlinux.h is empty.
"""


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "btf", help="dump BTF files (raw, JSON, C header) and list the kernel's BTF objects",
        description="Inspect BTF, the type information of BPF objects, the kernel and its modules: dump\n"
                    "files as bpftool does, or list the BTF objects loaded in the kernel.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="btf_command", metavar="SUBCOMMAND")

    d = sub.add_parser("dump", help="print the types of a BTF file",
                       description="Print the types of raw BTF or of an ELF file's .BTF section.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    d.add_argument("file", metavar="FILE", help="raw BTF file or ELF object (e.g. /sys/kernel/btf/vmlinux, prog.o)")
    d.add_argument("--format", "-f", choices=("raw", "c"), default="raw",
                   help="raw: bpftool's listing (default); c: a compilable C header like vmlinux.h")
    d.add_argument("--base", "-B", metavar="FILE", help="base BTF for split BTF (default for /sys/kernel/btf/MODULE: "
                                                         "/sys/kernel/btf/vmlinux)")
    d.add_argument("--json", "-j", action="store_true", help="raw format as JSON (like bpftool -j)")
    d.add_argument("--type", "-t", action="append", metavar="NAME",
                   help="only this type (by name or id) and, for C, what it needs; repeatable")
    d.set_defaults(func=run_dump, quick_exit=True)

    e = sub.add_parser("ext", help="print an object's .BTF.ext (func_info, line_info, CO-RE relocations)",
                       description="Print the .BTF.ext section of a BPF ELF object: function info, line info "
                                   "(source file, line, column, text) and CO-RE relocation records.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    e.add_argument("file", metavar="OBJ", help="BPF ELF object compiled with clang -g")
    e.add_argument("--json", "-j", action="store_true", help="print as JSON")
    e.set_defaults(func=run_ext)

    for verb in ("list", "show"):
        s = sub.add_parser(verb, help="show BTF objects loaded in the kernel (all, or the ones given)")
        s.add_argument("btf", nargs="*", metavar="BTF", help=selector_help("btf"))
        add_output_options(s)
        s.set_defaults(func=run_show)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _load(path: str, base_path: str | None):
    from ..btf import BTF

    sysfs = path.startswith("/sys/kernel/btf/")
    base = None
    if base_path:
        base = BTF.from_file(base_path, validate=not base_path.startswith("/sys/kernel/btf/"))
    elif sysfs and Path(path).name != "vmlinux":
        from ..btf import kernel_btf

        base = kernel_btf()
    # BTF the kernel serves was verified by the kernel; anything else is checked in full.
    return BTF.from_file(path, base=base, validate=not sysfs)


def _type_ids(btf, names: list[str] | None) -> list[int] | None:
    if not names:
        return None
    ids = []
    for name in names:
        if name.isdigit():
            ids.append(int(name))
        else:
            ids.append(btf.find(name).id)
    return ids


def _write(text: str) -> None:
    out = sys.stdout
    out.flush()
    out.buffer.write(text.encode("utf-8", "surrogateescape"))
    out.buffer.flush()


def run_dump(args) -> int:
    btf = _load(args.file, args.base)
    ids = _type_ids(btf, args.type)
    if args.format == "c":
        if args.json:
            print("pybpf: error: JSON output is only available for the raw format", file=sys.stderr)
            return 2
        from ..btf.cdump import dump_c

        _write(dump_c(btf, ids))
    elif args.json:
        import json

        from ..btf.rawdump import raw_json

        _write(json.dumps(raw_json(btf, ids), separators=(",", ":"), ensure_ascii=False) + "\n")
    else:
        from ..btf.rawdump import dump_raw

        _write(dump_raw(btf, ids))
    return 0


def run_ext(args) -> int:
    import json

    from ..btf import BTFExt

    ext = BTFExt.from_elf(args.file)
    if args.json:
        _write(json.dumps(ext.as_dict(), indent=1) + "\n")
    else:
        _write(ext.describe())
    return 0


def run_show(args: argparse.Namespace) -> int:
    from ..kernel.introspect import btf_record, btf_users

    users = btf_users()
    return show_records("btf", args, args.btf, lambda fd, owners: btf_record(fd, users, owners), format_plain,
                        pinnable=False)


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
