"""Measure how many filter expressions pybpf compiles exactly like the installed libpcap.

usage: python tests/cbpf/compare_with_libpcap.py FILE [-v]
FILE holds lines 'DLT<TAB>snaplen<TAB>netmask<TAB>expression' (netmask may be empty).
Prints the identical-percentage with the optimizer and without (-O), over the
expressions libpcap accepts on the link types pybpf supports, and lists differences.
"""

from __future__ import annotations

import ipaddress
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import libpcap_reference as ref  # noqa: E402

from pybpf.cbpf import compile as pybpf_compile  # noqa: E402
from pybpf.cbpf import linktypes  # noqa: E402
from pybpf.errors import BPFError, NotSupportedError  # noqa: E402


def _netmask(text: str) -> int:
    if not text:
        return 0xFFFFFFFF
    if text.isdigit():
        return int(text)
    return int(ipaddress.IPv4Address(text))


def compare(dlt_name: str, snaplen: int, netmask: int, expr: str, optimize: bool) -> str:
    """'same', 'differs', 'both-refuse', 'ref-refuses', 'we-refuse', 'unsupported'."""
    try:
        want = ref.compile(expr, ref.dlt(dlt_name), snaplen, optimize, netmask)
    except ref.ReferenceError:
        want = None
    try:
        got = [tuple(i) for i in pybpf_compile(expr, dlt_name, snaplen, optimize, netmask)]
    except NotSupportedError:
        return "unsupported"
    except BPFError:
        got = None
    except RecursionError:
        got = "crash"
    if want is None:
        return "both-refuse" if got is None else "ref-refuses"
    if got is None or got == "crash":
        return "we-refuse"
    return "same" if got == want else "differs"


def main(argv: list[str]) -> int:
    verbose = "-v" in argv
    rows = [line.rstrip("\n").split("\t", 3) for line in Path(argv[1]).read_text().splitlines() if line.strip()]
    totals = {True: {}, False: {}}
    for dlt_name, snaplen, netmask, expr in rows:
        for optimize in (True, False):
            kind = compare(dlt_name, int(snaplen), _netmask(netmask), expr, optimize)
            supported = dlt_name in linktypes.SUPPORTED
            totals[optimize].setdefault((supported, kind), 0)
            totals[optimize][(supported, kind)] += 1
            if verbose and kind not in ("same", "both-refuse", "unsupported") and supported:
                print(f"{'opt' if optimize else 'unopt'}\t{kind}\t{dlt_name}\t{expr}")
    for optimize in (True, False):
        t = totals[optimize]
        same = t.get((True, "same"), 0)
        accepted = sum(v for (sup, kind), v in t.items() if sup and kind in ("same", "differs", "we-refuse"))
        all_same = sum(v for (sup, kind), v in t.items() if kind == "same")
        all_accepted = sum(v for (sup, kind), v in t.items()
                           if kind in ("same", "differs", "we-refuse", "unsupported"))
        label = "optimized  " if optimize else "unoptimized"
        print(f"{label}: identical {same}/{accepted} = {100.0 * same / max(accepted, 1):.1f}% on supported link types; "
              f"{all_same}/{all_accepted} = {100.0 * all_same / max(all_accepted, 1):.1f}% on all; "
              + ", ".join(f"{'' if sup else 'other-dlt:'}{kind}={v}" for (sup, kind), v in sorted(t.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
