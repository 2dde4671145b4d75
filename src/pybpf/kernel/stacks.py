"""Stack traces from BPF programs, symbolized, and folded for flame graphs.

Two ways a program hands over a stack: ``bpf_get_stackid`` stores it in a
BPF_MAP_TYPE_STACK_TRACE map and returns an id (values are arrays of u64
instruction pointers, innermost first, zero-padded), and ``bpf_get_stack``
copies it into a buffer (the return value is its length in bytes).  Folded
output (``comm;outer;...;inner count``, one line per distinct stack) is what
flamegraph.pl, speedscope and inferno read.
"""

from __future__ import annotations

import struct
from collections import Counter
from typing import Any, Iterable, Iterator, Sequence

from .maps import Map
from .symbolize import Frame, ProcessSymbols, kernel_symbols

# get_stackid / get_stack flags
SKIP_FIELD_MASK = 0xFF
USER_STACK = 1 << 8
FAST_STACK_CMP = 1 << 9
REUSE_STACKID = 1 << 10
USER_BUILD_ID = 1 << 11


def decode_stack(data: bytes | memoryview, length: int | None = None) -> list[int]:
    """Instruction pointers from a stack buffer (``length`` bytes used; trailing zeros dropped)."""
    raw = bytes(data[:length]) if length is not None else bytes(data)
    raw = raw[:len(raw) - len(raw) % 8]
    ips = list(struct.unpack(f"<{len(raw) // 8}Q", raw))
    while ips and ips[-1] == 0:
        ips.pop()
    return ips


class StackTraceMap(Map):
    """BPF_MAP_TYPE_STACK_TRACE: stack id -> instruction pointers (innermost first)."""

    def stack(self, stack_id: int) -> list[int]:
        """The addresses stored under ``stack_id``; KeyError when absent, [] for a negative id
        (the error code bpf_get_stackid returned instead of an id)."""
        if stack_id < 0:
            return []
        raw = self.lookup_raw(stack_id.to_bytes(4, "little"))
        if raw is None:
            raise KeyError(stack_id)
        return decode_stack(raw)

    def stacks(self) -> Iterator[tuple[int, list[int]]]:
        for key in self.iter_keys_raw():
            raw = self.lookup_raw(key)
            if raw is not None:
                yield int.from_bytes(key, "little"), decode_stack(raw)

    def frames(self, stack_id: int, *, pid: int | None = None, kernel: bool = False,
               process: ProcessSymbols | None = None) -> list[Frame]:
        """Symbolized frames of ``stack_id``: kernel symbols, or user symbols of ``pid``."""
        ips = self.stack(stack_id)
        if kernel:
            ks = kernel_symbols()
            return [ks.resolve(ip) for ip in ips]
        resolver = process or (ProcessSymbols(pid) if pid is not None else None)
        return [resolver.resolve(ip) if resolver else Frame(ip, None) for ip in ips]


class FoldedStacks:
    """Count stacks and write them folded: ``comm;user outer..inner;kernel outer..inner count``.

    Add stacks innermost first (the order the kernel gives them); user and
    kernel frames of one sample are joined like perf's stackcollapse does.
    Processes are symbolized once each (their /proc/PID/maps are read at the
    first stack from them), so add stacks while the processes still live.
    """

    def __init__(self, *, kernel_suffix: str = "", offsets: bool = False):
        self.counts: Counter[tuple[str, ...]] = Counter()
        self.kernel_suffix = kernel_suffix
        self.offsets = offsets
        self._processes: dict[int, ProcessSymbols] = {}

    def process(self, pid: int) -> ProcessSymbols:
        found = self._processes.get(pid)
        if found is None:
            found = self._processes[pid] = ProcessSymbols(pid)
        return found

    def _label(self, frame: Frame) -> str:
        if self.offsets and frame.symbol:
            return f"{frame.symbol}+{frame.offset:#x}"
        return frame.name

    def add(self, comm: str, *, user: Sequence[int] = (), kernel: Sequence[int] = (), pid: int | None = None,
            count: int = 1) -> tuple[str, ...]:
        """Count one stack (addresses innermost first); returns its folded frames."""
        frames = [comm.replace(";", "_").replace(" ", "_") or "[unknown]"]
        if user:
            resolver = self.process(pid) if pid is not None else None
            frames += [self._label(resolver.resolve(ip)) if resolver else "[unknown]" for ip in reversed(user)]
        if kernel:
            ks = kernel_symbols()
            frames += [self._label(ks.resolve(ip)) + self.kernel_suffix for ip in reversed(kernel)]
        key = tuple(f.replace(";", ":") for f in frames)
        self.counts[key] += count
        return key

    def lines(self) -> list[str]:
        """Folded lines, most frequent first (ties in name order)."""
        return [f"{';'.join(k)} {n}" for k, n in sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0]))]

    def write(self, out: Any) -> None:
        for line in self.lines():
            out.write(line + "\n")

    def __str__(self) -> str:
        return "".join(line + "\n" for line in self.lines())


def fold(samples: Iterable[tuple[str, int | None, Sequence[int], Sequence[int]]], **options: Any) -> FoldedStacks:
    """Fold (comm, pid, user ips, kernel ips) samples."""
    folded = FoldedStacks(**options)
    for comm, pid, user, kernel in samples:
        folded.add(comm, user=user, kernel=kernel, pid=pid)
    return folded

