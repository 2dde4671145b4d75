"""Reading a BPF ring buffer (BPF_MAP_TYPE_RINGBUF) from Python, fast.

The ring is mapped into this process: one writable page holding the consumer
position, then the read-only producer position page and the data area, which
the kernel maps twice in a row so that a record wrapping past the end is still
contiguous.  Each wakeup drains every committed record in one batch and
publishes the consumer position once; runs of equal-length records (the usual
case: one C struct per event) are decoded in one ``struct.iter_unpack`` call
rather than record by record.
"""

from __future__ import annotations

import mmap
import select
import time
from typing import Any, Callable, Iterator

from ..errors import MapError
from ..object.codec import as_codec, decode_many
from .uapi import RINGBUF_BUSY_BIT, RINGBUF_DISCARD_BIT, RINGBUF_HDR_SIZE, MapType

PAGE_SIZE = mmap.PAGESIZE
_FLAGS = RINGBUF_BUSY_BIT | RINGBUF_DISCARD_BIT


class RingBufReader:
    """Consume records from a ring buffer map.

    ``codec`` decodes each record (a StructCodec, the BTF codec, or None for
    raw bytes).  Forms of use:

    - ``read(timeout)`` -> list of records (waits up to ``timeout`` s for the first);
    - ``poll(timeout)`` -> count, calling ``callback(record)`` for each;
    - ``for rec in reader.events(timeout)`` / ``for rec in reader`` (forever).

    Records are decoded in batches of at most ``batch_size``; the consumer
    position is published once per batch, which frees that space for the
    producer.  Small batches keep the decoded objects in the CPU cache and
    spare the garbage collector, which is faster than one huge batch.
    """

    def __init__(self, ring: Any, codec: Any = None, callback: Callable[[Any], Any] | None = None,
                 batch_size: int = 1024):
        if getattr(ring, "type", None) != MapType.RINGBUF:
            raise MapError(f"{ring.describe() if hasattr(ring, 'describe') else ring!r} is not a ring buffer map")
        self.ring = ring
        self.size = ring.max_entries
        self.codec = as_codec(codec, None) if codec is not None else None
        self.callback = callback
        self.batch_size = batch_size
        self._mask = self.size - 1
        fd = ring.fd
        self._consumer_map = mmap.mmap(fd, PAGE_SIZE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=0)
        try:
            self._producer_map = mmap.mmap(fd, PAGE_SIZE + 2 * self.size, mmap.MAP_SHARED, mmap.PROT_READ,
                                           offset=PAGE_SIZE)
        except BaseException:
            self._consumer_map.close()
            raise
        self._consumer = memoryview(self._consumer_map)[:8].cast("Q")
        self._producer = memoryview(self._producer_map)[:8].cast("Q")
        self._data = memoryview(self._producer_map)[PAGE_SIZE:]
        self._words = self._data.cast("I")
        self._epoll = select.epoll()
        self._epoll.register(fd, select.EPOLLIN)
        self.closed = False

    # -- draining ------------------------------------------------------------

    def available(self) -> int:
        """Bytes committed or in flight that the consumer has not passed yet."""
        return self._producer[0] - self._consumer[0]

    def _batch(self, limit: int) -> list:
        """Decode up to ``limit`` committed records and release their space; [] when none."""
        out: list = []
        words, data, mask, codec = self._words, self._data, self._mask, self.codec
        pos = start = self._consumer[0]
        end = self._producer[0]
        while pos < end and len(out) < limit:
            off = pos & mask
            header = words[off >> 2]
            if header & RINGBUF_BUSY_BIT:
                break  # reserved but not committed yet: resume here next time
            length = header & ~_FLAGS
            stride = (length + RINGBUF_HDR_SIZE + 7) & ~7
            if header & RINGBUF_DISCARD_BIT:
                pos += stride
                continue
            count = _uniform_run(words, off >> 2, stride >> 2, min((end - pos) // stride, limit - len(out)), header)
            region = data[off:off + count * stride]
            if codec is None:
                records = [bytes(region[i:i + length]) for i in range(RINGBUF_HDR_SIZE, count * stride, stride)]
            elif count == 1 or getattr(codec, "size", None) is None or codec.size > length:
                dec = codec.decode
                records = [dec(region[i:i + length]) for i in range(RINGBUF_HDR_SIZE, count * stride, stride)]
            else:
                records = decode_many(codec, region, count, stride, RINGBUF_HDR_SIZE, length)
            if out:
                out += records
            else:
                out = records
            pos += count * stride
        if pos != start:
            self._consumer[0] = pos  # one release of the space per batch
        return out

    def consume(self, max_records: int | None = None) -> list:
        """Drain what is available now (up to ``max_records``), without waiting."""
        limit = max_records if max_records is not None else 1 << 62
        out: list = []
        while len(out) < limit:
            batch = self._batch(min(self.batch_size, limit - len(out)))
            if not batch:
                break
            out += batch
        return out

    # -- waiting -------------------------------------------------------------

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

    def poll(self, timeout: float | None = None) -> int:
        """Wait up to ``timeout`` s for records, hand each to the callback; returns how many."""
        if self.callback is None:
            raise MapError("RingBufReader.poll() needs a callback; use read() to get a list")
        cb, n = self.callback, 0
        batch = self._batch(self.batch_size)
        if not batch and timeout != 0:
            self._wait(timeout)
            batch = self._batch(self.batch_size)
        while batch:
            for ev in batch:
                cb(ev)
            n += len(batch)
            batch = self._batch(self.batch_size)
        return n

    def events(self, timeout: float | None = None) -> Iterator[Any]:
        """Yield records as they come; stop after ``timeout`` seconds in total (None: never)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            batch = self._batch(self.batch_size)
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

    # -- lifetime ------------------------------------------------------------

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._epoll.close()
        for view in (self._consumer, self._producer, self._words, self._data):
            view.release()
        self._consumer_map.close()
        self._producer_map.close()

    def __enter__(self) -> "RingBufReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _uniform_run(words: memoryview, first: int, step: int, limit: int, header: int) -> int:
    """How many consecutive records from word ``first`` share ``header`` (same length, committed).

    Reads every ``step``-th header word in one strided slice; the run stops at
    the first header that differs (busy, discarded, or another length), since
    past it the stride no longer lands on headers.
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
