"""Where `pybpf prog load OBJ DIR` spends its time, next to `bpftool prog loadall OBJ DIR`.

    python bench/bench_startup.py OBJ.bpf.o [--runs N]

Prints, best of N runs each (fresh interpreters, this checkout's src):

* the whole command against bpftool's, and an empty interpreter (``python -c pass``);
* the imports the command needs: every module it imports, imported in that order alone;
* in a process: parsing the kernel's BTF, CO-RE against it, and
  ``ObjectSpec.from_file(OBJ).load(backend="kernel")`` the first time (the lazy
  imports and the kernel BTF included) and the second time (what a long-lived
  process pays per object).

Run as root; PYTHONDONTWRITEBYTECODE is dropped for the children (without
bytecode caches every import compiles and the figures mean nothing).  Pins go to
a private directory under /sys/fs/bpf, removed after each run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"

LIST_IMPORTS = """
import shutil, sys
before = set(sys.modules)
from pybpf.cli.main import main
main(["prog", "load", sys.argv[1], sys.argv[2]])
shutil.rmtree(sys.argv[2])
print(" ".join(n for n in sys.modules if n not in before))
"""

TIME_IMPORTS = """
import sys, time
t = time.perf_counter()
for name in sys.argv[1:]:
    __import__(name)
print(time.perf_counter() - t)
"""

IN_PROCESS = """
import sys, time
from pybpf.btf import BTF
from pybpf.object import ObjectSpec, apply_core
from pybpf.object.core import CORETarget
t = time.perf_counter(); obj = ObjectSpec.from_file(sys.argv[1]).load(backend="kernel"); first = time.perf_counter() - t
obj.close()
t = time.perf_counter(); obj = ObjectSpec.from_file(sys.argv[1]).load(backend="kernel"); second = time.perf_counter() - t
obj.close()
t = time.perf_counter(); vmlinux = BTF.from_file("/sys/kernel/btf/vmlinux", validate=False); parse = time.perf_counter() - t
spec = ObjectSpec.from_file(sys.argv[1])
t = time.perf_counter(); apply_core(spec, CORETarget(vmlinux, [], "vmlinux")); core = time.perf_counter() - t
print(first, second, parse, core)
"""


def _env() -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(SRC))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _run(argv: list[str], pin: str | None = None) -> tuple[float, str]:
    t = time.perf_counter()
    proc = subprocess.run(argv, env=_env(), capture_output=True, text=True)
    elapsed = time.perf_counter() - t
    if pin:
        shutil.rmtree(pin, ignore_errors=True)
    if proc.returncode:
        sys.exit(f"{' '.join(argv)} failed:\n{proc.stderr}")
    return elapsed, proc.stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("object", help="a compiled BPF object that loads here (a CO-RE tool shows the CO-RE cost)")
    parser.add_argument("--runs", type=int, default=5, help="runs of each measurement; the best counts (default 5)")
    args = parser.parse_args(argv)
    py, obj, runs = sys.executable, str(Path(args.object).resolve()), args.runs
    pin = f"/sys/fs/bpf/bench_startup_{os.getpid()}"

    def best(argv: list[str], pinned: bool = False) -> float:
        return min(_run(argv, pin if pinned else None)[0] for _ in range(runs))

    pybpf = best([py, "-m", "pybpf", "prog", "load", obj, pin], pinned=True)
    bpftool = best(["bpftool", "prog", "loadall", obj, pin], pinned=True)
    empty = best([py, "-c", "pass"])
    modules = _run([py, "-c", LIST_IMPORTS, obj, pin])[1].split()
    imports = min(float(_run([py, "-c", TIME_IMPORTS, *modules])[1]) for _ in range(runs))
    rows = [[float(x) for x in _run([py, "-c", IN_PROCESS, obj])[1].split()] for _ in range(runs)]
    first, second, parse, core = (min(column) for column in zip(*rows))

    ms = 1e3
    print(f"{Path(obj).name}, best of {runs}:")
    print(f"  pybpf prog load        {pybpf * ms:6.0f} ms   ({pybpf / bpftool:.1f}x bpftool prog loadall: "
          f"{bpftool * ms:.0f} ms; python -c pass: {empty * ms:.0f} ms)")
    print(f"  its imports            {imports * ms:6.0f} ms   ({len(modules)} modules, "
          f"{sum(m.startswith('pybpf') for m in modules)} of pybpf)")
    print(f"  kernel BTF parse       {parse * ms:6.0f} ms")
    print(f"  CO-RE                  {core * ms:6.0f} ms")
    print(f"  from_file+load, first  {first * ms:6.0f} ms   (lazy imports and kernel BTF included)")
    print(f"  from_file+load, again  {second * ms:6.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
