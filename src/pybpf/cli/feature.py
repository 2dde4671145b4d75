"""`pybpf feature`: what the running kernel offers for BPF, like `bpftool feature probe kernel`."""

from __future__ import annotations

import argparse

from .bpfobjects import print_json

EXAMPLES = """\
examples:
  pybpf feature                          program types, map types, helpers, ISA, BTF kinds
  pybpf feature --json | jq .misc        bpftool's JSON layout (plus btf_kinds, v4 ISA)
  pybpf feature --section map_types
  pybpf feature --no-cache               probe again (results are cached per kernel and boot
                                         in ~/.cache/pybpf)
  pybpf feature --no-helpers             skip the (thousands of) helper probes
"""

SECTIONS = ("system_config", "syscall_config", "program_types", "map_types", "helpers", "misc", "btf_kinds")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "feature", help="probe which BPF features the running kernel has (like bpftool feature probe)",
        description="Probe the running kernel by loading tiny programs, maps and BTF: program and map "
                    "types, helpers per program type, instruction set versions, bounded loops, large "
                    "programs, BTF kinds, and the kernel's BPF-related configuration.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-j", "--json", action="store_true", help="JSON output (bpftool's layout)")
    p.add_argument("-p", "--pretty", action="store_true", help="indented JSON output")
    p.add_argument("--section", choices=SECTIONS, action="append", help="only these sections (repeatable)")
    p.add_argument("--no-cache", action="store_true", help="probe again instead of using cached results")
    p.add_argument("--no-helpers", action="store_true", help="skip probing helpers per program type")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..kernel.features import probe_features

    report = probe_features(use_cache=not args.no_cache, helpers=not args.no_helpers)
    wanted = args.section or [s for s in SECTIONS if s != "helpers" or not args.no_helpers]
    report = {k: v for k, v in report.items() if k in wanted}
    if args.json or args.pretty:
        print_json(report, args.pretty)
        return 0
    for line in plain_lines(report):
        print(line)
    return 0


def _name(key: str, prefix: str, suffix: str) -> str:
    return key.removeprefix(prefix).removesuffix(suffix)


def plain_lines(report: dict) -> list[str]:
    """The report in bpftool's sentence style."""
    out: list[str] = []
    if "system_config" in report:
        out.append("Scanning system configuration...")
        for key, value in report["system_config"].items():
            if key.startswith("CONFIG_"):
                out.append(f"{key} is " + (f"set to {value}" if value is not None else "not set"))
            elif value is not None:
                out.append(f"{key} is {value}")
        out.append("")
    if "syscall_config" in report:
        out += ["Scanning system call availability...", "bpf() syscall is available"
                if report["syscall_config"].get("have_bpf_syscall") else "bpf() syscall is NOT available", ""]
    if "program_types" in report:
        out.append("Scanning eBPF program types...")
        for key, ok in report["program_types"].items():
            out.append(f"eBPF program_type {_name(key, 'have_', '_prog_type')} is {'' if ok else 'NOT '}available")
        out.append("")
    if "map_types" in report:
        out.append("Scanning eBPF map types...")
        for key, ok in report["map_types"].items():
            out.append(f"eBPF map_type {_name(key, 'have_', '_map_type')} is {'' if ok else 'NOT '}available")
        out.append("")
    if report.get("helpers"):
        out.append("Scanning eBPF helper functions...")
        for key, helpers in report["helpers"].items():
            out.append(f"eBPF helpers supported for program type {_name(key, '', '_available_helpers')}:")
            out += [f"\t- {h}" for h in helpers]
        out.append("")
    if "misc" in report:
        out.append("Scanning miscellaneous eBPF features...")
        texts = {"have_large_insn_limit": "Large program size limit",
                 "have_bounded_loops": "Bounded loop support",
                 "have_v2_isa_extension": "ISA extension v2",
                 "have_v3_isa_extension": "ISA extension v3",
                 "have_v4_isa_extension": "ISA extension v4"}
        for key, ok in report["misc"].items():
            out.append(f"{texts.get(key, key)} is {'' if ok else 'NOT '}available")
        out.append("")
    if "btf_kinds" in report:
        out.append("Scanning BTF kinds...")
        for key, ok in report["btf_kinds"].items():
            out.append(f"BTF kind {_name(key, 'have_', '_btf_kind').upper()} is {'' if ok else 'NOT '}available")
    return out
