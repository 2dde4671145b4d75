"""`pybpf object`: what a BPF object file contains, and how its CO-RE relocations resolve here."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

EXAMPLES = """\
examples:
  pybpf object show execsnoop.bpf.o            programs, maps, global variables, externs
  pybpf object show execsnoop.bpf.o --json     the same as JSON
  pybpf object core execsnoop.bpf.o            every CO-RE relocation against this kernel
  pybpf object core x.bpf.o --btf 5.4.0.btf    ... against another kernel's BTF (BTFHub file)

Programs are listed with the type, expected attach type and target their SEC()
name gives them (libbpf's convention), and the number of instructions after
their subprograms are appended.  Relocations are shown in libbpf's notation:
  struct task_struct.real_parent (0:95 @ offset 1280)
the access (C field path), the raw access string, and the byte offset.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "object", help="inspect a compiled BPF object (.o): programs, maps, variables, CO-RE",
        description="Read a clang-compiled BPF ELF object the way libbpf does and show what it would "
                    "load, without touching the kernel.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="verb", metavar="VERB")
    show = sub.add_parser("show", help="list programs, maps, global variables and externs", epilog=EXAMPLES,
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    show.add_argument("file", help="BPF object file (clang -target bpf -c)")
    show.add_argument("--json", action="store_true", help="print JSON instead of tables")
    show.set_defaults(func=run_show)
    core = sub.add_parser("core", help="resolve every CO-RE relocation and show old -> new values", epilog=EXAMPLES,
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    core.add_argument("file", help="BPF object file")
    core.add_argument("--btf", metavar="PATH",
                      help="target kernel BTF (raw BTF or an ELF with .BTF); default: the running kernel "
                           "(/sys/kernel/btf/vmlinux and module BTF)")
    core.add_argument("--json", action="store_true", help="print JSON instead of a table")
    core.set_defaults(func=run_core)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


# --- show -------------------------------------------------------------------------


def describe(spec) -> dict[str, Any]:
    """Everything `object show` prints, as plain data."""
    from ..object.kinds import enum_name

    btf = spec.btf
    programs = []
    for prog in spec.programs.values():
        programs.append({
            "name": prog.name, "section": prog.section, "type": enum_name(type(prog.type), prog.type),
            "attach_type": enum_name(type(prog.expected_attach_type), prog.expected_attach_type)
            if prog.expected_attach_type is not None else None,
            "attach_target": prog.attach_target, "instructions": len(prog.instructions),
            "slots": prog.instructions.slot_count, "subprograms": [f.name for f in prog.functions[1:]],
            "autoload": prog.autoload, "sleepable": prog.sleepable, "reason": prog.reason,
        })
    maps = [_map_record(m, btf, enum_name) for m in spec.maps.values()]
    variables = []
    for v in spec.variables.values():
        try:
            value = _jsonable(v.value)
        except Exception as exc:  # a type the codec cannot show: show bytes
            value = v.raw.hex() if v.map.data is not None else f"<{exc}>"
        variables.append({"name": v.name, "section": v.section, "map": v.map.name, "offset": v.offset,
                          "size": v.size, "type": c_type_name(btf, v.type_id) if btf is not None and v.type_id
                          else None, "linkage": v.linkage, "value": value})
    externs = []
    for e in spec.externs.values():
        rec = {"name": e.name, "kind": e.kind, "weak": e.weak}
        if e.kind == "kconfig":
            rec.update(type=e.kconfig_type, offset=e.offset, size=e.size)
        elif e.kind == "ksym":
            rec.update(type="function" if e.is_function else ("typed" if e.typed else "typeless"))
        externs.append(rec)
    return {"name": spec.name, "path": spec.path, "license": spec.license, "kern_version": spec.kern_version,
            "programs": programs, "maps": maps, "variables": variables, "externs": externs, "notes": spec.notes}


def _map_record(m, btf, enum_name) -> dict[str, Any]:
    def tname(type_id: int) -> str | None:
        return c_type_name(btf, type_id) if btf is not None and type_id else None

    rec = {
        "name": m.name, "type": enum_name(type(m.type), m.type) if not isinstance(m.type, int) or
        hasattr(m.type, "name") else str(m.type), "key_size": m.key_size, "value_size": m.value_size,
        "key_type": tname(m.key_type_id), "value_type": tname(m.value_type_id) if not m.is_internal else None,
        "max_entries": m.max_entries, "flags": int(m.flags), "pinning": "by_name" if m.pinning else None,
        "section": m.section, "inner": None, "initial_values": [[k, v] for k, v in m.contents],
        "autocreate": m.autocreate,
    }
    if m.struct_ops is not None:
        rec["struct_ops"] = {"type": m.value_type.name, "programs": dict(m.struct_ops)}
    if m.dropped_value_type is not None and btf is not None:
        rec["record_type"] = tname(m.dropped_value_type.id)
    if m.inner is not None:
        rec["inner"] = _map_record(m.inner, btf, enum_name)
    return rec


def c_type_name(btf, type_id: int, depth: int = 0) -> str:
    """How C spells a BTF type: ``int``, ``struct event``, ``char[16]``, ``const u8 *``."""
    from ..btf import Kind

    if depth > 32:
        return "..."
    t = btf[type_id]
    k = t.kind
    if k == Kind.UNKN:
        return "void"
    if k == Kind.PTR:
        inner = c_type_name(btf, t.type_id, depth + 1)
        return inner + ("*" if inner.endswith("*") else " *")
    if k == Kind.ARRAY:
        return f"{c_type_name(btf, t.type_id, depth + 1)}[{t.nelems}]"
    if k in (Kind.CONST, Kind.VOLATILE, Kind.RESTRICT):
        return f"{k.name.lower()} {c_type_name(btf, t.type_id, depth + 1)}"
    if k in (Kind.TYPE_TAG, Kind.VAR, Kind.FUNC, Kind.DECL_TAG):
        return c_type_name(btf, t.type_id, depth + 1)
    if k == Kind.FUNC_PROTO:
        args = ", ".join(c_type_name(btf, p.type_id, depth + 1) for p in t.params) or "void"
        return f"{c_type_name(btf, t.return_type_id, depth + 1)} (*)({args})"
    if k in (Kind.STRUCT, Kind.UNION, Kind.ENUM, Kind.ENUM64, Kind.FWD):
        word = {Kind.STRUCT: "struct", Kind.UNION: "union", Kind.FWD: "union" if getattr(t, "union", False)
                else "struct"}.get(k, "enum")
        return f"{word} {t.name or '(anon)'}"
    return t.name


def _jsonable(value: Any) -> Any:
    from ..btf.codec import as_dict

    value = as_dict(value)
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def run_show(args: argparse.Namespace) -> int:
    from ..object import ObjectSpec

    spec = ObjectSpec.from_file(args.file)
    info = describe(spec)
    if args.json:
        json.dump(info, sys.stdout, indent=2)
        print()
        return 0
    out = sys.stdout
    out.write(f"object {info['name']} ({info['path']})  license {info['license'] or '-'!s}"
              f"{'  kern_version ' + hex(info['kern_version']) if info['kern_version'] else ''}\n")
    out.write("\nprograms:\n")
    _table(out, ["NAME", "SECTION", "TYPE", "ATTACH TYPE", "TARGET", "INSNS"],
           [[p["name"] + ("" if p["autoload"] else " (not loaded)"), p["section"], p["type"],
             p["attach_type"] or "-", p["attach_target"] or "-",
             str(p["instructions"]) + (f" (+{', '.join(p['subprograms'])})" if p["subprograms"] else "")]
            for p in info["programs"]])
    for p in info["programs"]:
        if p["reason"]:
            out.write(f"  ! {p['name']}: {p['reason']}\n")
    out.write("\nmaps:\n")
    rows = []
    for m in info["maps"]:
        inner = m["inner"]
        rows.append([m["name"], m["type"], _sized(m["key_size"], m["key_type"]),
                     _sized(m["value_size"], m["value_type"] or m.get("record_type")), str(m["max_entries"]),
                     hex(m["flags"]) if m["flags"] else "0", m["pinning"] or "-",
                     f"{inner['type']} {inner['key_size']}/{inner['value_size']}x{inner['max_entries']}"
                     if inner else "-"])
    _table(out, ["NAME", "TYPE", "KEY", "VALUE", "MAX_ENTRIES", "FLAGS", "PINNING", "INNER"], rows)
    if info["variables"]:
        out.write("\nglobal variables:\n")
        _table(out, ["NAME", "SECTION", "TYPE", "VALUE"],
               [[v["name"], v["section"], v["type"] or f"{v['size']} bytes", _short(v["value"])]
                for v in info["variables"]])
    if info["externs"]:
        out.write("\nexterns:\n")
        _table(out, ["NAME", "KIND", "TYPE", "WEAK"],
               [[e["name"], e["kind"], e.get("type") or "-", "weak" if e["weak"] else "strong"]
                for e in info["externs"]])
    for note in info["notes"]:
        out.write(f"\nnote: {note}\n")
    return 0


def _sized(size: int, type_name: str | None) -> str:
    return f"{size} ({type_name})" if type_name else str(size)


def _short(value: Any, limit: int = 60) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _table(out, header: list[str], rows: list[list[str]]) -> None:
    if not rows:
        out.write("  (none)\n")
        return
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        out.write("  " + "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() + "\n")


# --- core ---------------------------------------------------------------------------


def run_core(args: argparse.Namespace) -> int:
    from ..object import ObjectSpec
    from ..object.core import apply_core

    spec = ObjectSpec.from_file(args.file)
    results = apply_core(spec, args.btf, strict=False)
    records = [{
        "function": r.function, "programs": r.programs, "section": r.section, "relocation": r.index,
        "insn": r.function_insn, "kind": r.kind.label, "local_type": r.local, "access": r.access,
        "local": r.local_spec, "target": r.target_spec, "old": r.orig_value, "new": r.new_value,
        "poisoned": r.poisoned, "reason": r.reason or None, "error": r.error or None, "candidates": r.candidates,
    } for r in results]
    if args.json:
        json.dump({"object": spec.name, "target": results[0].target_btf if results else args.btf or "vmlinux",
                   "relocations": records}, sys.stdout, indent=2)
        print()
        return 1 if any(r["error"] for r in records) else 0
    if not records:
        print(f"{spec.name}: no CO-RE relocations")
        return 0
    rows = []
    for r in records:
        if r["error"]:
            outcome = f"error: {r['error']}"
        elif r["poisoned"]:
            outcome = f"poisoned: {r['reason']}"
        else:
            outcome = f"{r['old']} -> {r['new']}"
        rows.append([r["function"], f"#{r['insn']}", r["kind"], r["local"] or r["local_type"], outcome])
    _table(sys.stdout, ["PROGRAM", "INSN", "KIND", "ACCESS", "OLD -> NEW"], rows)
    errors = sum(1 for r in records if r["error"])
    poisoned = sum(1 for r in records if r["poisoned"])
    print(f"\n{len(records)} relocations, {poisoned} poisoned, {errors} errors "
          f"(target: {results[0].target_btf})")
    return 1 if errors else 0


__all__ = ["c_type_name", "describe", "register"]
