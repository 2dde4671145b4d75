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
from typing import Any, Callable

from ..errors import MapError
from ..object.codec import decode_many
from .eventreader import EpollEventReader, uniform_run
from .uapi import RINGBUF_BUSY_BIT, RINGBUF_DISCARD_BIT, RINGBUF_HDR_SIZE, MapType

PAGE_SIZE = mmap.PAGESIZE
_FLAGS = RINGBUF_BUSY_BIT | RINGBUF_DISCARD_BIT


class RingBufReader(EpollEventReader):
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
        super().__init__(codec, callback, batch_size)
        self.ring = ring
        self.size = ring.max_entries
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
            count = uniform_run(words, off >> 2, stride >> 2, min((end - pos) // stride, limit - len(out)), header)
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

    def _drains(self) -> tuple[Callable[[int], list]]:
        return (self._batch,)

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
