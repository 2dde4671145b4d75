"""bpf_printk output: tracefs's trace_pipe, parsed into TraceLine records.

trace_pipe is consuming and system-wide: two readers steal each other's lines.
``TracePipe(instance="name")`` creates a private tracefs instance with only the
bpf_trace_printk event enabled, so a tool (or a test) gets every line without
competing with other readers; the instance is removed on close.
"""

from __future__ import annotations

import errno
import os
import re
import select
import time
from dataclasses import dataclass
from typing import Iterator

from ..errors import BPFError
from .fs import tracefs

# "  python3-1234    [001] d..31  5678.123456: bpf_trace_printk: message"
_LINE = re.compile(
    r"^\s*(?P<task>.+?)-(?P<pid>\d+)\s+(?:\(\s*[\d-]+\)\s+)?\[(?P<cpu>\d+)\]\s+"
    r"(?:(?P<flags>[^\s\[]{4,6})\s+)?(?P<ts>\d+\.\d+):\s+(?P<func>[^:]+):\s?(?P<msg>.*)$"
)


@dataclass(frozen=True, slots=True)
class TraceLine:
    task: str
    pid: int
    cpu: int
    flags: str
    timestamp: float
    function: str
    message: str
    raw: str

    @classmethod
    def parse(cls, line: str) -> "TraceLine":
        """Parse one trace_pipe line; lines that do not match keep only ``raw``/``message``."""
        m = _LINE.match(line)
        if not m:
            return cls("", 0, -1, "", 0.0, "", line, line)
        return cls(m["task"], int(m["pid"]), int(m["cpu"]), m["flags"] or "", float(m["ts"]), m["func"],
                   m["msg"], line)


class TracePipe:
    """An open trace_pipe: ``read(timeout)`` for a batch, iterate for a stream."""

    def __init__(self, instance: str | None = None):
        self.instance_dir: str | None = None
        if instance is not None:
            if "/" in instance or instance in ("", ".", ".."):
                raise BPFError(f"bad tracefs instance name {instance!r}")
            self.instance_dir = tracefs("instances", instance)
            try:
                os.mkdir(self.instance_dir)
            except FileExistsError:
                pass
            try:
                with open(os.path.join(self.instance_dir, "events", "bpf_trace", "bpf_trace_printk", "enable"), "w") as f:
                    f.write("1")
            except OSError as exc:
                self._remove_instance()
                raise BPFError(f"cannot enable bpf_trace_printk in tracefs instance {instance!r}: {exc}") from None
            path = os.path.join(self.instance_dir, "trace_pipe")
        else:
            path = tracefs("trace_pipe")
        self.path = path
        try:
            self._fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            self._remove_instance()
            raise BPFError(f"cannot open {path}: {exc.strerror}") from None
        self._poll = select.poll()
        self._poll.register(self._fd, select.POLLIN)
        self._pending = b""

    def _read_available(self) -> list[TraceLine]:
        chunks = []
        while True:
            try:
                chunk = os.read(self._fd, 65536)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno == errno.EINTR:
                    continue
                raise
            if not chunk:
                break
            chunks.append(chunk)
        if not chunks:
            return []
        data = self._pending + b"".join(chunks)
        *lines, self._pending = data.split(b"\n")
        return [TraceLine.parse(ln.decode(errors="replace")) for ln in lines if ln]

    def read(self, timeout: float | None = 0) -> list[TraceLine]:
        """Lines available now; if none, wait up to ``timeout`` s (None: forever) for some."""
        lines = self._read_available()
        deadline = None if timeout is None else time.monotonic() + timeout
        while not lines:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                break
            self._poll.poll(None if left is None else max(1, int(left * 1000)))
            lines = self._read_available()
        return lines

    def lines(self, timeout: float | None = None) -> Iterator[TraceLine]:
        """Yield lines as they come; stop after ``timeout`` s in total (None: never)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return
            yield from self.read(left)

    __iter__ = lines

    def fileno(self) -> int:
        """The pipe's fd, to wait on it with select/poll next to other event sources."""
        return self._fd

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self._remove_instance()

    def _remove_instance(self) -> None:
        if self.instance_dir:
            try:
                os.rmdir(self.instance_dir)
            except OSError:
                pass
            self.instance_dir = None

    def __enter__(self) -> "TracePipe":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_fd", -1) >= 0:
            self.close()


def trace_pipe(timeout: float | None = None, instance: str | None = None) -> Iterator[TraceLine]:
    """Iterate over bpf_printk lines (tracefs mounted if absent) for ``timeout`` s (None: forever)."""
    with TracePipe(instance) as pipe:
        yield from pipe.lines(timeout)
