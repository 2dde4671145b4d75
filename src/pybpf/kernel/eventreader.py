"""What the ring buffer and perf buffer readers share.

Both drain records the kernel writes into memory mapped into this process and
sleep on an epoll fd in between; only draining differs (one ring with a
consumer position, or one ring per CPU).  The forms of use — a list within a
timeout, an endless or timed iterator, an fd for select/asyncio, ``with`` —
are written once here.
"""

from __future__ import annotations

import abc
import select
import time
from typing import Any, Callable, Iterable, Iterator, Self


class EventReader(abc.ABC):
    """Base of RingBufReader and PerfBufReader.

    Subclasses set ``_epoll`` and ``batch_size`` and define ``_drains`` (one
    ``drain(limit) -> records`` per ring, which releases what it read) and ``close``.
    """

    _epoll: select.epoll
    batch_size: int

    @abc.abstractmethod
    def _drains(self) -> Iterable[Callable[[int], list]]:
        """For each ring: a function decoding up to ``limit`` waiting records of it."""

    def consume(self, max_records: int | None = None) -> list:
        """Drain what is available now (up to ``max_records``), without waiting."""
        limit = max_records if max_records is not None else 1 << 62
        out: list = []
        for drain in self._drains():
            while len(out) < limit:
                batch = drain(min(self.batch_size, limit - len(out)))
                if not batch:
                    break
                out += batch
        return out

    @abc.abstractmethod
    def close(self) -> None:
        """Stop reading and release the rings."""

    def _wait(self, timeout: float | None) -> None:
        self._epoll.poll(-1 if timeout is None else timeout)

    def read(self, timeout: float | None = 0, max_records: int | None = None) -> list:
        """Drain available records (up to ``max_records``); if there are none, wait up to
        ``timeout`` seconds (None: forever) for some."""
        events = self.consume(max_records)
        if events or timeout == 0:
            return events
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            self._wait(left)
            events = self.consume(max_records)
            if events or (deadline is not None and time.monotonic() >= deadline):
                return events

    def events(self, timeout: float | None = None) -> Iterator[Any]:
        """Yield records as they come; stop after ``timeout`` seconds in total (None: never)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            batch = self.consume(self.batch_size)
            if batch:
                yield from batch
                continue
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return
            self._wait(left)

    def __iter__(self) -> Iterator[Any]:
        return self.events(None)

    def fileno(self) -> int:
        """The epoll fd: readable when records wait (for select/asyncio loops)."""
        return self._epoll.fileno()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def uniform_run(words: memoryview, first: int, step: int, limit: int, header: int) -> int:
    """How many consecutive records from word ``first`` (every ``step`` words) have header word ``header``.

    Reads the header words in one strided slice; the run stops at the first
    header that differs (another length, or a record not ready), since past it
    the stride no longer lands on headers.  Records of one run decode together.
    """
    if limit <= 1:
        return 1
    headers = words[first:first + limit * step:step].tolist()
    if headers.count(header) == limit:
        return limit
    lo, hi = 1, limit  # headers[:lo] all equal; headers[:hi] not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if headers[:mid] == [header] * mid:
            lo = mid
        else:
            hi = mid
    return lo
