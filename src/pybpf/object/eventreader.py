"""What every event reader shares, whichever backend fills its rings.

The kernel's ring and perf buffer readers and the VM's drain records from
rings and sleep in between; only draining and sleeping differ (mmap'd memory
and an epoll fd in the kernel, Python queues and a condition variable in the
VM).  The forms of use — a list within a timeout, a callback per record, an
endless or timed iterator, ``with`` — are written once here, so both backends
behave alike.
"""

from __future__ import annotations

import abc
import time
from typing import Any, Callable, Iterable, Iterator, Self

from ..errors import MapError
from .codec import as_codec


class EventReader(abc.ABC):
    """Base of the ring buffer and perf buffer readers of both backends.

    Subclasses define ``_drains`` (one ``drain(limit) -> records`` per ring,
    which releases what it read), ``_wait`` (sleep until records may wait, or
    the timeout passes) and ``close``.
    """

    def __init__(self, codec: Any, callback: Callable[[Any], Any] | None, batch_size: int):
        self.codec = as_codec(codec, None) if codec is not None else None
        self.callback = callback
        self.batch_size = batch_size
        self.closed = False

    @abc.abstractmethod
    def _drains(self) -> Iterable[Callable[[int], list]]:
        """For each ring: a function decoding up to ``limit`` waiting records of it."""

    @abc.abstractmethod
    def _wait(self, timeout: float | None) -> None:
        """Sleep until records may be waiting or ``timeout`` seconds pass (None: forever)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Stop reading and release the rings."""

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

    def poll(self, timeout: float | None = None) -> int:
        """Wait up to ``timeout`` s for records, hand each to the callback; returns how many.

        Records go to the callback a batch at a time, so a long backlog is
        never held in memory all at once.
        """
        if self.callback is None:
            raise MapError(f"{type(self).__name__}.poll() needs a callback; use read() to get a list")
        callback, count = self.callback, 0
        batch = self.read(timeout, self.batch_size)
        while batch:
            for event in batch:
                callback(event)
            count += len(batch)
            batch = self.consume(self.batch_size)
        return count

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

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
