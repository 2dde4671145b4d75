"""Measure how many filter expressions pybpf compiles exactly like the installed libpcap.

usage: python tests/cbpf/compare_with_libpcap.py FILE [-v]
       python tests/cbpf/compare_with_libpcap.py --every-linktype [-v]
FILE holds lines 'DLT<TAB>snaplen<TAB>netmask<TAB>expression' (netmask may be empty);
--every-linktype takes every expression of filter_expressions.txt on every link
type libpcap names (the unit tests run it on one link type of each kind).
Prints, with the optimizer and without (-O), the share of expressions whose
outcome is identical: the same instructions, or a refusal with the same message
(pybpf may append how it resolves names, after libpcap's message).  -v lists
the others.
"""

from __future__ import annotations

import ipaddress
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import filter_cases as cases  # noqa: E402


def _netmask(text: str) -> int:
    if not text:
        return 0xFFFFFFFF
    if text.isdigit():
        return int(text)
    return int(ipaddress.IPv4Address(text))


def outcome(dlt_name: str, snaplen: int, netmask: int, expr: str, optimize: bool):
    """(libpcap's outcome, pybpf's outcome): instructions or 'error: MESSAGE'."""
    return (cases.outcome_ref(expr, dlt_name, snaplen, optimize, netmask),
            cases.outcome_ours(expr, dlt_name, snaplen, optimize, netmask))


def compare(dlt_name: str, snaplen: int, netmask: int, expr: str, optimize: bool) -> str:
    """'same', 'same-refusal', 'differs', 'refusal-differs', 'ref-refuses', 'we-refuse'."""
    want, got = outcome(dlt_name, snaplen, netmask, expr, optimize)
    want_refused, got_refused = isinstance(want, str), isinstance(got, str)
    if cases.same(want, got):
        return "same-refusal" if want_refused else "same"
    if want_refused and got_refused:
        return "refusal-differs"
    return "ref-refuses" if want_refused else "we-refuse" if got_refused else "differs"


def main(argv: list[str]) -> int:
    verbose = "-v" in argv
    if argv[1] == "--every-linktype":
        from pybpf.cbpf import linktypes

        rows = [(dlt, "262144", str(cases.NETMASK), expr) for dlt in linktypes.DLT for expr in cases.EXPRESSIONS]
    else:
        rows = [line.rstrip("\n").split("\t", 3) for line in Path(argv[1]).read_text().splitlines()
                if line.strip()]
    for optimize in (True, False):
        kinds: Counter[str] = Counter()
        for dlt_name, snaplen, netmask, expr in rows:
            kind = compare(dlt_name, int(snaplen), _netmask(netmask), expr, optimize)
            kinds[kind] += 1
            if verbose and not kind.startswith("same"):
                print(f"{'opt' if optimize else 'unopt'}\t{kind}\t{dlt_name}\t{expr}")
        identical = kinds["same"] + kinds["same-refusal"]
        label = "optimized  " if optimize else "unoptimized"
        print(f"{label}: identical {identical}/{len(rows)} = {100.0 * identical / max(len(rows), 1):.1f}% ("
              + ", ".join(f"{k}={v}" for k, v in sorted(kinds.items())) + ")")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
