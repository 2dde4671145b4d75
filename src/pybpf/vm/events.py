"""Event channels of the VM: the BPF ring buffer and the perf event array, with their readers.

The readers have the kernel backend's API (``read``, ``consume``, ``poll`` with
a callback, ``events``/iteration, a codec for decoding), so code written
against ``obj.maps["events"].reader()`` runs unchanged on either backend.
Records are kept as Python objects rather than in a byte ring, but the
accounting is the kernel's: a ring buffer record takes its length rounded up
to 8 plus an 8-byte header, reservations are consumed in order (an
uncommitted one holds back later ones), and a perf buffer drops samples when
a CPU's ring is full and reports them as lost.
"""

from __future__ import annotations

import abc
import errno
import threading
import warnings
from collections import deque
from typing import TYPE_CHECKING, Any, Callable, Iterator

from ..errors import MapError
from ..object.eventreader import EventReader
from .constants import BPF_F_CURRENT_CPU, BPF_F_INDEX_MASK, BPF_RB_AVAIL_DATA, BPF_RB_CONS_POS, BPF_RB_PROD_POS, \
    BPF_RB_RING_SIZE
from ..object.mapdict import round8
from .maps import VMMap

if TYPE_CHECKING:
    from .machine import Run

M64 = (1 << 64) - 1
RINGBUF_HDR_SIZE = 8
PAGE_SIZE = 4096
_BUSY, _COMMITTED, _DISCARDED = range(3)


class _Waitable:
    """A condition variable readers wait on and producers notify."""

    def __init__(self) -> None:
        self.cond = threading.Condition()

    def notify(self) -> None:
        with self.cond:
            self.cond.notify_all()

    def wait(self, timeout: float | None) -> None:
        with self.cond:
            self.cond.wait(timeout)


class _Record:
    __slots__ = ("ring", "length", "data", "state", "region")

    def __init__(self, ring: "RingBuf", size: int):
        self.ring = ring
        self.length = round8(size + RINGBUF_HDR_SIZE)
        self.data = bytearray(size)
        self.state = _BUSY
        self.region: Any = None

    def release(self, run: "Run", discard: bool) -> None:
        self.state = _DISCARDED if discard else _COMMITTED
        if self.region is not None:
            run.memory.unmap(self.region)
            run.ringbuf_records.pop(self.region.id, None)
        self.ring._events.notify()

    def discard(self, run: "Run") -> None:
        self.release(run, True)


class RingBuf(VMMap):
    """BPF_MAP_TYPE_RINGBUF: max_entries bytes of records; read with :meth:`reader` or :meth:`events`."""

    def __init__(self, vm, type: int, key_size: int, value_size: int, max_entries: int, **kw: Any):
        super().__init__(vm, type, key_size, value_size, max_entries, **kw)
        self._records: deque[_Record] = deque()
        self.producer_pos = 0
        self.consumer_pos = 0
        self._events = _Waitable()

    def _check_key(self, key: bytes | None) -> bytes:
        raise MapError(f"lookup on {self.describe()}: this operation is not supported on RINGBUF maps")

    def _next_key(self, key: bytes | None) -> bytes | None:
        raise MapError(f"iterate on {self.describe()}: this operation is not supported on RINGBUF maps")

    # -- program side --------------------------------------------------------

    def reserve(self, run: "Run", size: int, flags: int) -> int:
        """Address of a new record of ``size`` bytes, or 0 when the ring has no room (or bad flags)."""
        if flags or size > self.max_entries:
            return 0
        record = _Record(self, size)
        if self.producer_pos + record.length - self.consumer_pos > self.max_entries:
            return 0
        self.producer_pos += record.length
        self._records.append(record)
        record.region = run.memory.map(record.data, f"record of {self.describe()} ({size} bytes)", "ringbuf",
                                       owner=record)
        run.ringbuf_records[record.region.id] = record
        return record.region.address

    def output(self, run: "Run", data: bytes, flags: int) -> int:
        if flags & ~3:
            return (-errno.EINVAL) & M64
        address = self.reserve(run, len(data), 0)
        if not address:
            return (-errno.EAGAIN) & M64
        record = run.ringbuf_records[address >> 24]
        record.data[:] = data
        record.release(run, False)
        return 0

    def query(self, flag: int) -> int:
        return {BPF_RB_AVAIL_DATA: self.producer_pos - self.consumer_pos, BPF_RB_RING_SIZE: self.max_entries,
                BPF_RB_CONS_POS: self.consumer_pos, BPF_RB_PROD_POS: self.producer_pos}.get(flag, 0)

    # -- consumer side -------------------------------------------------------

    def _take(self, limit: int) -> list[bytes]:
        out: list[bytes] = []
        records = self._records
        while records and len(out) < limit:
            rec = records[0]
            if rec.state == _BUSY:
                break
            records.popleft()
            self.consumer_pos += rec.length
            if rec.state == _COMMITTED:
                out.append(bytes(rec.data))
        return out

    def reader(self, codec: Any = None, callback: Callable[[Any], Any] | None = None) -> "RingBufReader":
        return RingBufReader(self, codec=codec, callback=callback)

    def events(self, timeout: float | None = None, codec: Any = None) -> Iterator[Any]:
        with self.reader(codec) as r:
            yield from r.events(timeout)


class _Reader(EventReader):
    """The VM's readers: records of one ring or per-CPU queues, waiting on the map's ``_Waitable``."""

    def __init__(self, codec: Any, callback: Callable[[Any], Any] | None, batch_size: int, events: _Waitable):
        super().__init__(codec, callback, batch_size)
        self._waitable = events

    def _decode(self, raw: list[bytes]) -> list:
        if self.codec is None:
            return raw
        dec = self.codec.decode
        return [dec(r) for r in raw]

    @abc.abstractmethod
    def _batch(self, limit: int) -> list:
        """Decode up to ``limit`` waiting records and release them; [] when none."""

    def _drains(self) -> tuple[Callable[[int], list]]:
        return (self._batch,)

    def _wait(self, timeout: float | None) -> None:
        self._waitable.wait(timeout)

    def close(self) -> None:
        self.closed = True


class RingBufReader(_Reader):
    """Consume records of a VM ring buffer (the kernel backend's RingBufReader API)."""

    def __init__(self, ring: RingBuf, codec: Any = None, callback: Callable[[Any], Any] | None = None,
                 batch_size: int = 1024):
        if not isinstance(ring, RingBuf):
            raise MapError(f"{ring!r} is not a VM ring buffer map")
        super().__init__(codec, callback, batch_size, ring._events)
        self.ring = ring
        self.size = ring.max_entries

    def available(self) -> int:
        """Bytes committed or in flight that the consumer has not passed yet."""
        return self.ring.producer_pos - self.ring.consumer_pos

    def _batch(self, limit: int) -> list:
        return self._decode(self.ring._take(limit))


# --- perf event array ------------------------------------------------------------------------------


class _CPUBuffer:
    """One CPU's perf ring: samples with the kernel's size accounting."""

    def __init__(self, size: int):
        self.size = size
        self.used = 0
        self.samples: deque[bytes] = deque()
        self.lost = 0


class PerfEventArray(VMMap):
    """BPF_MAP_TYPE_PERF_EVENT_ARRAY: bpf_perf_event_output writes here; read with :meth:`reader`."""

    fixed_size = True

    def __init__(self, vm, type: int, key_size: int, value_size: int, max_entries: int, **kw: Any):
        super().__init__(vm, type, key_size, value_size, max_entries, **kw)
        self._buffers: dict[int, _CPUBuffer] = {}
        self._events = _Waitable()

    def _check_key(self, key: bytes | None) -> bytes:
        raise MapError(f"lookup on {self.describe()}: this operation is not supported on PERF_EVENT_ARRAY maps "
                       "(open a reader())")

    def _next_key(self, key: bytes | None) -> bytes | None:
        raise MapError(f"iterate on {self.describe()}: this operation is not supported on PERF_EVENT_ARRAY maps")

    def output(self, run: "Run", flags: int, data: bytes) -> int:
        """bpf_perf_event_output: 0, or -errno like the kernel."""
        if flags & ~BPF_F_INDEX_MASK:
            return (-errno.EINVAL) & M64
        index = flags & BPF_F_INDEX_MASK
        if index == BPF_F_CURRENT_CPU:
            index = run.cpu
        if index >= self.max_entries:
            return (-errno.E2BIG) & M64
        buf = self._buffers.get(index)
        if buf is None:
            return (-errno.ENOENT) & M64
        if index != run.cpu:
            return (-errno.EOPNOTSUPP) & M64
        raw_size = round8(len(data) + 4) - 4  # the kernel pads the raw sample so the record stays 8-aligned
        need = 8 + 4 + raw_size
        if buf.used + need > buf.size:
            buf.lost += 1
            return (-errno.ENOSPC) & M64
        buf.used += need
        buf.samples.append(bytes(data) + bytes(raw_size - len(data)))
        self._events.notify()
        return 0

    def reader(self, codec: Any = None, callback: Callable[[Any], Any] | None = None,
               **options: Any) -> "PerfBufReader":
        return PerfBufReader(self, codec=codec, callback=callback, **options)


class PerfBufReader(_Reader):
    """Consume a VM perf event array from every CPU (the kernel backend's PerfBufReader API).

    ``pages`` sizes each CPU's buffer (a power of 2 of 4 KiB pages); samples
    that do not fit are lost: counted in ``lost``/``lost_per_cpu`` and reported
    to ``lost_callback(cpu, count)`` (a RuntimeWarning without one).
    """

    def __init__(self, perf_map: PerfEventArray, codec: Any = None, callback: Callable[[Any], Any] | None = None, *,
                 lost_callback: Callable[[int, int], Any] | None = None, pages: int = 8, wakeup_events: int = 1,
                 watermark: int = 0, cpus: list[int] | None = None, batch_size: int = 1024):
        if not isinstance(perf_map, PerfEventArray):
            raise MapError(f"{perf_map!r} is not a VM perf event array map")
        if pages <= 0 or pages & (pages - 1):
            raise MapError(f"pages must be a power of 2, not {pages}")
        super().__init__(codec, callback, batch_size, perf_map._events)
        self.map = perf_map
        self.lost_callback = lost_callback
        self.lost = 0
        self.lost_per_cpu: dict[int, int] = {}
        cpu_list = list(cpus) if cpus is not None else list(range(perf_map.vm.cpus))
        too_big = [c for c in cpu_list if c >= perf_map.max_entries]
        if too_big:
            raise MapError(f"{perf_map.describe()} has {perf_map.max_entries} slots but the VM has CPU {too_big[0]}: "
                           "create it with max_entries=0 (one slot per CPU)")
        self._cpus = cpu_list
        for cpu in cpu_list:
            perf_map._buffers[cpu] = _CPUBuffer(pages * PAGE_SIZE)

    def _batch(self, limit: int) -> list:
        out: list[bytes] = []
        for cpu in self._cpus:
            buf = self.map._buffers.get(cpu)
            if buf is None:
                continue
            if buf.lost:
                count, buf.lost = buf.lost, 0
                self.lost += count
                self.lost_per_cpu[cpu] = self.lost_per_cpu.get(cpu, 0) + count
                if self.lost_callback is not None:
                    self.lost_callback(cpu, count)
                else:
                    warnings.warn(f"{self.map.describe()}: {count} samples lost on CPU {cpu} (the buffer was full)",
                                  RuntimeWarning, stacklevel=3)
            while buf.samples and len(out) < limit:
                sample = buf.samples.popleft()
                buf.used -= 8 + 4 + len(sample)
                out.append(sample)
        return self._decode(out)

    def close(self) -> None:
        if not self.closed:
            for cpu in self._cpus:
                self.map._buffers.pop(cpu, None)
        super().close()
