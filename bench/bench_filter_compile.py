"""Filter compile time: pybpf vs libpcap (tcpdump), side by side.

Two views: whole commands (`pybpf filter -d EXPR` vs `tcpdump -d -i lo EXPR`,
process start included for both) and in-process (pybpf.cbpf.compile vs
pcap_compile through ctypes).  Run: python bench/bench_filter_compile.py
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests" / "cbpf"))

import libpcap_reference as ref  # noqa: E402

from pybpf.cbpf import compile  # noqa: E402

EXPRESSIONS = [line for line in (ROOT / "tests" / "cbpf" / "filter_expressions.txt").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
SAMPLE = ["tcp port 80", "host 198.18.0.1 and not port 22", "icmp[icmptype] == icmp-echo",
          "vlan 100 and tcp portrange 1-1023", "ip6 protochain 6",
          "(host 198.18.0.1 or host 198.18.0.2) and (tcp port 80 or tcp port 443) and not (src net 10.0.0.0/8 "
          "or dst net 10.0.0.0/8)"]


def _compilable(expr: str) -> bool:
    try:
        ref.compile(expr)
        compile(expr)
        return True
    except Exception:
        return False


def in_process(exprs: list[str], optimize: bool, repeat: int = 5) -> tuple[float, float]:
    best_py = best_c = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        for e in exprs:
            compile(e, "EN10MB", 262144, optimize)
        best_py = min(best_py, time.perf_counter() - t)
        t = time.perf_counter()
        for e in exprs:
            ref.compile(e, 1, 262144, optimize)
        best_c = min(best_c, time.perf_counter() - t)
    return best_py, best_c


def commands(exprs: list[str]) -> tuple[float, float] | None:
    tcpdump = shutil.which("tcpdump") or "/usr/bin/tcpdump"
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    if subprocess.run([tcpdump, "-d", "-i", "lo", "ip"], capture_output=True).returncode != 0:
        return None
    t = time.perf_counter()
    for e in exprs:
        subprocess.run([sys.executable, "-m", "pybpf", "filter", "-d", e], capture_output=True, env=env, check=True)
    py = time.perf_counter() - t
    t = time.perf_counter()
    for e in exprs:
        subprocess.run([tcpdump, "-d", "-i", "lo", e], capture_output=True, check=True)
    return py, time.perf_counter() - t


def main() -> int:
    exprs = [e for e in EXPRESSIONS if _compilable(e)]
    print(f"{len(exprs)} expressions (tests/cbpf/filter_expressions.txt accepted on EN10MB), {ref.version()}")
    print(f"{'':34}{'pybpf':>12}{'libpcap':>12}{'ratio':>9}")
    for optimize in (True, False):
        py, c = in_process(exprs, optimize)
        label = f"in-process, all, {'optimized' if optimize else 'unoptimized (-O)'}"
        print(f"{label:34}{py * 1e3:10.1f}ms{c * 1e3:10.1f}ms{py / c:8.1f}x")
        print(f"{'  per expression':34}{py / len(exprs) * 1e6:10.0f}us{c / len(exprs) * 1e6:10.0f}us")
    big = " or ".join(f"host 198.18.{i // 256}.{i % 256}" for i in range(200))
    py, c = in_process([big], True, repeat=3)
    print(f"{'in-process, 200-host filter, opt.':34}{py * 1e3:10.1f}ms{c * 1e3:10.1f}ms{py / c:8.1f}x")
    cmd = commands(SAMPLE)
    if cmd is None:
        print("commands: tcpdump cannot open lo here (needs root); skipped")
    else:
        py, c = cmd
        label = f"commands, {len(SAMPLE)} runs each"
        print(f"{label:34}{py * 1e3:10.1f}ms{c * 1e3:10.1f}ms{py / c:8.1f}x")
        print(f"{'  per run (process start incl.)':34}{py / len(SAMPLE) * 1e3:10.1f}ms{c / len(SAMPLE) * 1e3:10.1f}ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
