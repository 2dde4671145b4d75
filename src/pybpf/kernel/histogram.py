"""Log2 histograms as BCC's libbpf-tools print them: programs count into power-of-two slots, we draw bars.

Tools like runqlat and biolatency keep ``slots[log2l(value)]++`` in a map;
:func:`log2_hist_lines` draws such counts the way libbpf-tools'
``print_log2_hist`` does (slot 0 holds 0..1, slot i holds 2**i..2**(i+1)-1),
so the output reads the same whichever library collected it.
"""

from __future__ import annotations

from typing import Sequence

BAR_WIDTH = 40


def _bar(count: int, peak: int, width: int) -> str:
    filled = int(count * width / peak) if peak else 0
    return "*" * filled + " " * (width - filled)


def log2_hist_lines(counts: Sequence[int], label: str = "value", width: int = BAR_WIDTH) -> list[str]:
    """Lines of a log2 histogram: slot ``i`` counts values in [2**i, 2**(i+1) - 1] (slot 0: 0 and 1).

    Trailing empty buckets are left out; an all-zero histogram gives no lines.
    """
    last = max((i for i, c in enumerate(counts) if c), default=-1)
    if last < 0:
        return []
    peak = max(counts)
    wide = last > 32  # ranges past 32 bits need wider columns, as in BCC
    lines = [f"               {label:<29} : count    distribution" if wide else
             f"     {label:<19} : count    distribution"]
    for i in range(last + 1):
        low, high = 1 << i, (1 << (i + 1)) - 1
        if i == 0:
            low = 0
        if wide:
            lines.append(f"{low:>20} -> {high:<20} : {counts[i]:<8} |{_bar(counts[i], peak, width)}|")
        else:
            lines.append(f"{low:>10} -> {high:<10} : {counts[i]:<8} |{_bar(counts[i], peak, width)}|")
    return lines


def linear_hist_lines(counts: Sequence[int], label: str = "value", width: int = BAR_WIDTH) -> list[str]:
    """Lines of a linear histogram (BCC's print_linear_hist): one bucket per value."""
    last = max((i for i, c in enumerate(counts) if c), default=-1)
    if last < 0:
        return []
    peak = max(counts)
    lines = [f"     {label:<13} : count    distribution"]
    for i in range(last + 1):
        lines.append(f"{i:>13} : {counts[i]:<8} |{_bar(counts[i], peak, width)}|")
    return lines


__all__ = ["linear_hist_lines", "log2_hist_lines"]
