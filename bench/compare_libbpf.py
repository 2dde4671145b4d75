"""Compare pybpf's view of BPF objects with libbpf's, object by object.

    python bench/compare_libbpf.py DIR_OR_FILES... [--btf PATH] [-v]

For every ``*.o``: opens it with the system libbpf (libbpf.so.1, through
ctypes) and with :class:`pybpf.object.ObjectSpec`, and compares

* programs: name, section, program type, expected attach type;
* maps: name, type, key/value size, max_entries, flags (libbpf's own maps
  only; legacy ``maps`` sections are refused by libbpf 1.x and skipped);
* CO-RE: every relocation libbpf's debug log reports while loading
  ("patched insn #N ... A -> B" or "substituting insn #N w/ invalid insn")
  against pybpf's result for the same program, relocation and instruction.

Loading goes through libbpf into the real kernel (as root), so CO-RE is
resolved against the running kernel on both sides; programs the kernel
refuses still have their relocations logged first.  Prints a line per object
and totals.  Not a test: a tool to measure agreement on objects that are not
in the repository.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests" / "object"))

from pybpf.errors import BPFError  # noqa: E402
from pybpf.object import ObjectSpec  # noqa: E402
from pybpf.object.core import apply_core  # noqa: E402
from libbpf_ref import LibBPF, libbpf_core  # noqa: E402

def pybpf_core(spec: ObjectSpec, btf: str | None) -> dict[tuple[str, int, int], tuple]:
    out: dict[tuple[str, int, int], tuple] = {}
    for r in apply_core(spec, btf, strict=False):
        key = (r.function, r.index, r.function_insn)
        if r.error:
            out[key] = ("error", r.error)
        elif r.poisoned:
            out[key] = ("poisoned",)
        else:
            out[key] = ("patched", r.new_value)
    return out


def compare(path: Path, lib: LibBPF, btf: str | None, verbose: bool) -> dict:
    stats = {"object": path.name, "parsed": False, "progs_ok": False, "maps_ok": False, "core": 0, "core_ok": 0,
             "insn_progs": 0, "insn_ok": 0, "btf": 0, "btf_ok": 0, "problems": []}
    try:
        spec = ObjectSpec.from_file(path)
    except BPFError as exc:
        stats["problems"].append(f"pybpf: {exc}")
        return stats
    stats["parsed"] = True
    l_progs, l_maps, log, error = lib.view(str(path), load=btf is None)
    if not l_progs and error:
        stats["problems"].append(error)
        return stats
    mine = {p.name: (p.section, int(p.type), int(p.expected_attach_type or 0))
            for p in spec.programs.values()}
    stats["progs_ok"] = mine == l_progs
    if not stats["progs_ok"]:
        for name in sorted(set(mine) | set(l_progs)):
            if mine.get(name) != l_progs.get(name):
                stats["problems"].append(f"program {name}: pybpf {mine.get(name)} libbpf {l_progs.get(name)}")
    my_maps = {m.name: (int(m.type), m.key_size, m.value_size, m.max_entries, int(m.flags))
               for m in spec.maps.values() if m.section != "maps"}
    stats["maps_ok"] = my_maps == l_maps
    if not stats["maps_ok"]:
        for name in sorted(set(my_maps) | set(l_maps)):
            if my_maps.get(name) != l_maps.get(name):
                stats["problems"].append(f"map {name}: pybpf {my_maps.get(name)} libbpf {l_maps.get(name)}")
    if lib.btf is not None:
        stats["btf"] = 1
        try:
            stats["btf_ok"] = int(spec.kernel_btf().to_bytes() == lib.btf)
        except BPFError as exc:
            stats["problems"].append(f"kernel BTF: {exc}")
        if not stats["btf_ok"]:
            stats["problems"].append("the BTF for the kernel differs from libbpf's")
    if btf is None:
        theirs = libbpf_core(log)
        ours = pybpf_core(spec, None)
        stats["core"] = len(theirs)
        for key, value in theirs.items():
            if ours.get(key) == value:
                stats["core_ok"] += 1
            else:
                stats["problems"].append(f"CO-RE {key}: pybpf {ours.get(key)} libbpf {value}")
        for key in set(ours) - set(theirs):
            stats["problems"].append(f"CO-RE {key}: pybpf {ours[key]}, not in libbpf's log")
    if lib.instructions:
        # the bytes libbpf handed to BPF_PROG_LOAD vs pybpf's linked, CO-RE-relocated instructions with the
        # same map fds (and ksyms resolved here)
        ksyms = spec.resolve_ksyms() if any(e.kind == "ksym" for e in spec.externs.values()) else {}
        for name, code in lib.instructions.items():
            stats["insn_progs"] += 1
            try:
                mine = spec.link_instructions(name, lib.map_fds, ksyms).encode()
            except BPFError as exc:
                stats["problems"].append(f"program {name}: {exc}")
                continue
            if mine == code:
                stats["insn_ok"] += 1
            else:
                first = next((i for i in range(0, min(len(mine), len(code)), 8) if mine[i:i + 8] != code[i:i + 8]),
                             min(len(mine), len(code)))
                stats["problems"].append(f"program {name}: instructions differ from libbpf's at insn #{first // 8} "
                                         f"({len(mine) // 8} vs {len(code) // 8} slots)")
    return stats


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("paths", nargs="+", help="object files or directories of *.o")
    ap.add_argument("--btf", help="resolve CO-RE against this BTF (skips libbpf loading and the CO-RE comparison)")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every difference")
    args = ap.parse_args()
    files: list[Path] = []
    for p in map(Path, args.paths):
        files.extend(sorted(p.glob("*.o")) if p.is_dir() else [p])
    lib = LibBPF()
    rows = [compare(f, lib, args.btf, args.verbose) for f in files]
    for r in rows:
        if r["problems"] and r["problems"][0].startswith("libbpf cannot open"):
            print(f"ONLY {r['object']:31} parsed={r['parsed']!s:5} (libbpf 1.1 refuses this object: "
                  f"{r['problems'][0]})")
            continue
        flag = ("OK " if r["parsed"] and r["progs_ok"] and r["maps_ok"] and r["core"] == r["core_ok"]
                and r["insn_ok"] == r["insn_progs"] and r["btf_ok"] == r["btf"] else "DIFF")
        print(f"{flag} {r['object']:32} parsed={r['parsed']!s:5} programs={r['progs_ok']!s:5} maps={r['maps_ok']!s:5} "
              f"CO-RE {r['core_ok']}/{r['core']} same instructions {r['insn_ok']}/{r['insn_progs']} "
              f"same BTF {r['btf_ok']}/{r['btf']}")
        for problem in r["problems"][: None if args.verbose else 3]:
            print("      ", problem)
    n = len(rows)
    refused = sum(1 for r in rows if r["problems"] and r["problems"][0].startswith("libbpf cannot open"))
    core = sum(r["core"] for r in rows)
    core_ok = sum(r["core_ok"] for r in rows)
    print(f"\nobjects: {n}, parsed by pybpf: {sum(r['parsed'] for r in rows)}, refused by libbpf 1.1: {refused}, "
          f"program lists equal: "
          f"{sum(r['progs_ok'] for r in rows)}, map lists equal: {sum(r['maps_ok'] for r in rows)}, "
          f"CO-RE relocations equal: {core_ok}/{core} ({100.0 * core_ok / core if core else 100:.1f}%), "
          f"programs with byte-identical instructions: {sum(r['insn_ok'] for r in rows)}/"
          f"{sum(r['insn_progs'] for r in rows)} (of those libbpf loaded), kernel BTF byte-identical: "
          f"{sum(r['btf_ok'] for r in rows)}/{sum(r['btf'] for r in rows)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
