"""Load real-world objects with libbpf and with pybpf; compare the outcome of every program.

    python bench/compare_load.py DIR_OR_FILES... [--programs] [--fixup] [-v] [--json OUT]

For every ``*.o``:

* whole object: ``bpftool prog loadall OBJ /sys/fs/bpf/<unique>`` (libbpf) against
  ``ObjectSpec.from_file(OBJ).load(backend="kernel")``: both load, or both refuse;
* with ``--programs``, program by program: libbpf (libbpf.so.1 through ctypes)
  with only that program's autoload on, against pybpf with the same autoload
  settings: the same program loads or is rejected on both sides.

Maps pinned by name go to a private directory on both sides (bpftool cannot be
told one: its by-name pins under /sys/fs/bpf that did not exist before are
removed afterwards).  Prints a line per object, the differences with both
sides' reasons, and totals.  Not a test: a measurement on objects that are not
in the repository (run as root).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests" / "object"))

from pybpf.errors import BPFError  # noqa: E402
from pybpf.object import ObjectSpec  # noqa: E402
from pybpf.object.kinds import MapType, Pinning  # noqa: E402

BPFFS = "/sys/fs/bpf"
STACK_VALUE_SIZE = 127 * 8  # PERF_MAX_STACK_DEPTH frames, what the tools set


class _OpenOpts(ctypes.Structure):
    """struct bpf_object_open_opts of libbpf 1.1, up to pin_root_path."""

    _fields_ = [("sz", ctypes.c_size_t), ("object_name", ctypes.c_char_p), ("relaxed_maps", ctypes.c_bool),
                ("pin_root_path", ctypes.c_char_p)]


class LibBPF:
    """Open, choose what to autoload, load: libbpf's own loader, for program-by-program outcomes."""

    def __init__(self) -> None:
        from libbpf_ref import LibBPF as Ref

        self.ref = Ref()  # sets up the entry points and captures libbpf's log
        lib = self.ref.lib
        lib.bpf_program__set_autoload.restype = ctypes.c_int
        lib.bpf_program__set_autoload.argtypes = [ctypes.c_void_p, ctypes.c_bool]
        self.lib = lib

    def programs(self, path: Path) -> list[str]:
        obj = self.lib.bpf_object__open_file(str(path).encode(), None)
        if not obj:
            return []
        names = []
        p = self.lib.bpf_object__next_program(obj, None)
        while p:
            names.append(self.lib.bpf_program__name(p).decode())
            p = self.lib.bpf_object__next_program(obj, p)
        self.lib.bpf_object__close(obj)
        return names

    def load(self, path: Path, program: str | None, pin_root: str, fixup: bool) -> tuple[bool, str]:
        """Load the object (only ``program``, when given); ``fixup`` sizes maps the tools size at run time."""
        self.ref.log = []
        opts = _OpenOpts(sz=ctypes.sizeof(_OpenOpts), pin_root_path=pin_root.encode())
        obj = self.lib.bpf_object__open_file(str(path).encode(), ctypes.addressof(opts))
        if not obj:
            return False, "libbpf cannot open it"
        if program is not None:
            p = self.lib.bpf_object__next_program(obj, None)
            while p:
                self.lib.bpf_program__set_autoload(p, self.lib.bpf_program__name(p).decode() == program)
                p = self.lib.bpf_object__next_program(obj, p)
        if fixup:
            m = self.lib.bpf_object__next_map(obj, None)
            while m:
                if self.lib.bpf_map__max_entries(m) == 0:
                    self.lib.bpf_map__set_max_entries(m, 1)
                if self.lib.bpf_map__value_size(m) == 0 and self.lib.bpf_map__type(m) == 7:  # STACK_TRACE
                    self.lib.bpf_map__set_value_size(m, STACK_VALUE_SIZE)
                m = self.lib.bpf_object__next_map(obj, m)
        ok = self.lib.bpf_object__load(obj) == 0
        err = ctypes.get_errno()
        self.lib.bpf_object__close(obj)
        return ok, "" if ok else _libbpf_reason(self.ref.log, err)


def _libbpf_reason(log: list[str], err: int) -> str:
    lines = [ln.strip() for ln in log if ln.strip() and not ln.startswith("libbpf: prog") or "failed" in ln]
    interesting = [ln for ln in lines if "fail" in ln or "error" in ln.lower() or "invalid" in ln]
    return (interesting or lines or [f"errno {err}"])[-1][:200]


def bpftool_loadall(path: Path, pinned_by_name: list[str]) -> tuple[bool, str, float]:
    target = f"{BPFFS}/pybpf_cmp_{os.getpid()}_{time.monotonic_ns()}"
    before = {name for name in pinned_by_name if os.path.exists(f"{BPFFS}/{name}")}
    start = time.perf_counter()
    proc = subprocess.run(["bpftool", "prog", "loadall", str(path), target], capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    shutil.rmtree(target, ignore_errors=True)
    for name in pinned_by_name:
        if name not in before:
            try:
                os.unlink(f"{BPFFS}/{name}")
            except OSError:
                pass
    reason = ""
    if proc.returncode:
        errors = [ln for ln in proc.stderr.splitlines() if "rror" in ln or "fail" in ln]
        reason = (errors or proc.stderr.splitlines() or ["failed"])[-1][:200]
    return proc.returncode == 0, reason, elapsed


def pybpf_load(path: Path, only: str | None, pin_root: str, fixup: bool = False) -> tuple[bool, str]:
    try:
        spec = ObjectSpec.from_file(path)
        if only is not None and only not in spec.programs:
            # libbpf lists a lone .text function as a program, which then has no type to load with
            return False, f"{only!r} is a .text function, not a SEC() program"
        if only is not None:
            for name, prog in spec.programs.items():
                prog.autoload = name == only
        if fixup:
            for ms in spec.maps.values():
                if ms.max_entries == 0:
                    ms.max_entries = 1
                if ms.value_size == 0 and ms.type == MapType.STACK_TRACE:
                    ms.value_size = STACK_VALUE_SIZE
        with spec.load(backend="kernel", pin_root=pin_root):
            pass
    except BPFError as exc:
        return False, f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    return True, ""


def compare(path: Path, lib: LibBPF | None, programs: bool, fixup: bool) -> dict:
    pin_root = f"{BPFFS}/pybpf_cmp_pins_{os.getpid()}"
    os.makedirs(pin_root, exist_ok=True)
    try:
        try:
            pinned = [m.name for m in ObjectSpec.from_file(path).maps.values() if m.pinning == Pinning.BY_NAME]
        except BPFError:
            pinned = []
        result: dict = {"object": str(path), "programs": {}}
        if fixup:
            ok, why = lib.load(path, None, pin_root, fixup)
            _clean(pin_root)
        else:
            ok, why, _ = bpftool_loadall(path, pinned)
        result["libbpf"] = [ok, why]
        ok, why = pybpf_load(path, None, pin_root, fixup)
        result["pybpf"] = [ok, why]
        _clean(pin_root)
        if programs:
            for name in lib.programs(path):
                lok, lwhy = lib.load(path, name, pin_root, fixup)
                _clean(pin_root)
                pok, pwhy = pybpf_load(path, name, pin_root, fixup)
                _clean(pin_root)
                result["programs"][name] = {"libbpf": [lok, lwhy], "pybpf": [pok, pwhy]}
        return result
    finally:
        shutil.rmtree(pin_root, ignore_errors=True)


def _clean(directory: str) -> None:
    for entry in os.listdir(directory):
        try:
            os.unlink(os.path.join(directory, entry))
        except OSError:
            pass


def _state(ok: bool) -> str:
    return "loaded" if ok else "rejected"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+", type=Path, help="object files or directories of them (*.o)")
    parser.add_argument("--programs", action="store_true", help="also compare program by program (slower)")
    parser.add_argument("--fixup", action="store_true",
                        help="size what the tools size from user space before loading (max_entries 0 -> 1, stack "
                             "trace values), on both sides (the whole object then loads through libbpf.so, not "
                             "bpftool)")
    parser.add_argument("--json", type=Path, help="write every result to this file")
    parser.add_argument("-v", "--verbose", action="store_true", help="print both sides' reasons for every object")
    args = parser.parse_args(argv)
    files = sorted(p for path in args.paths for p in (path.rglob("*.o") if path.is_dir() else [path]))
    lib = LibBPF() if args.programs or args.fixup else None
    results = []
    whole_same = prog_total = prog_same = 0
    counts = {"libbpf": [0, 0], "pybpf": [0, 0], "libbpf_progs": [0, 0], "pybpf_progs": [0, 0]}
    for path in files:
        r = compare(path, lib, args.programs, args.fixup)
        results.append(r)
        same = r["libbpf"][0] == r["pybpf"][0]
        whole_same += same
        counts["libbpf"][r["libbpf"][0]] += 1
        counts["pybpf"][r["pybpf"][0]] += 1
        diffs = []
        for name, p in r["programs"].items():
            prog_total += 1
            counts["libbpf_progs"][p["libbpf"][0]] += 1
            counts["pybpf_progs"][p["pybpf"][0]] += 1
            if p["libbpf"][0] == p["pybpf"][0]:
                prog_same += 1
            else:
                diffs.append(name)
        mark = "ok  " if same and not diffs else "DIFF"
        label = f"{path.parent.name}/{path.name}"
        print(f"{mark} {label}: libbpf {_state(r['libbpf'][0])}, pybpf {_state(r['pybpf'][0])}"
              + (f", programs {len(r['programs']) - len(diffs)}/{len(r['programs'])} agree" if r["programs"] else ""))
        if not same or args.verbose:
            for side in ("libbpf", "pybpf"):
                if r[side][1]:
                    print(f"       {side}: {r[side][1]}")
        for name in diffs:
            p = r["programs"][name]
            print(f"       program {name}: libbpf {_state(p['libbpf'][0])} {p['libbpf'][1]!r}; "
                  f"pybpf {_state(p['pybpf'][0])} {p['pybpf'][1]!r}")
        sys.stdout.flush()
    print()
    print(f"objects: {len(files)}; whole-object outcome agrees on {whole_same}/{len(files)} "
          f"(libbpf loads {counts['libbpf'][1]}, pybpf loads {counts['pybpf'][1]})")
    if lib is not None:
        print(f"programs: {prog_total}; per-program outcome agrees on {prog_same}/{prog_total} "
              f"(libbpf loads {counts['libbpf_progs'][1]}, pybpf loads {counts['pybpf_progs'][1]})")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0 if whole_same == len(files) and prog_same == prog_total else 1


if __name__ == "__main__":
    sys.exit(main())
