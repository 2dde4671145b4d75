"""Reading a perf event array (BPF_MAP_TYPE_PERF_EVENT_ARRAY): one mmap'd ring per CPU.

This is what ``bpf_perf_event_output`` writes to, and the only event channel
on kernels before 5.8.  For each CPU the reader opens a PERF_COUNT_SW_BPF_OUTPUT
event, maps its ring (a control page + 2^n data pages), stores the event fd in
the map slot of that CPU and waits on all of them with one epoll.  Records are
PERF_RECORD_SAMPLE (the program's bytes, decoded through a codec) or
PERF_RECORD_LOST (how many samples the kernel dropped because the ring was
full): those are counted in ``lost`` and handed to ``lost_callback``, or
warned about, never silently ignored.  A record may wrap past the end of the
ring; it is reassembled.
"""

from __future__ import annotations

import fcntl
import functools
import mmap
import os
import select
import struct
import warnings
from typing import Any, Callable

from ..errors import MapError
from ..object.codec import decode_many
from .eventreader import EpollEventReader, uniform_run
from .fs import online_cpus
from .maps import Map
from .perf import (
    FLAG_WATERMARK, PERF_EVENT_IOC_DISABLE, PERF_EVENT_IOC_ENABLE, PERF_SAMPLE_RAW, PerfEventAttr, PerfType,
    SoftwareEvent, open_event,
)
from .uapi import MapType

PAGE_SIZE = mmap.PAGESIZE
PERF_RECORD_LOST = 2
PERF_RECORD_SAMPLE = 9
_HEAD_OFF, _TAIL_OFF = 1024, 1032  # data_head / data_tail in struct perf_event_mmap_page
_HEADER = struct.Struct("<IHH")
_SAMPLE_HDR = 12  # perf_event_header + u32 raw size


class PerfEventArray(Map):
    """A perf event array map: read it with :meth:`reader`."""

    def reader(self, codec: Any = None, callback: Callable[[Any], Any] | None = None, **options: Any) -> "PerfBufReader":
        return PerfBufReader(self, codec=codec if codec is not None else self.record_codec, callback=callback,
                             **options)


class _CPURing:
    """The mmap'd ring of one CPU's BPF output event."""

    def __init__(self, cpu: int, fd: int, pages: int):
        self.cpu = cpu
        self.fd = fd
        self.size = pages * PAGE_SIZE
        self.mask = self.size - 1
        self.mm = mmap.mmap(fd, PAGE_SIZE + self.size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        meta = memoryview(self.mm)
        self.head = meta[_HEAD_OFF:_HEAD_OFF + 8].cast("Q")
        self.tail = meta[_TAIL_OFF:_TAIL_OFF + 8].cast("Q")
        self.data = meta[PAGE_SIZE:]
        self.words = self.data.cast("Q")
        self._meta = meta

    def close(self) -> None:
        for view in (self.head, self.tail, self.words, self.data, self._meta):
            view.release()
        self.mm.close()


class PerfBufReader(EpollEventReader):
    """Consume a perf event array from every CPU (the perf buffer of libbpf and BCC).

    ``codec`` decodes each sample (StructCodec, BTF codec, None: bytes; note that
    the kernel pads samples to 8 bytes minus 4, so raw samples may be longer than
    what the program wrote).  ``pages`` (a power of 2) sizes each CPU's ring.
    The kernel wakes the reader after ``wakeup_events`` samples, or, with
    ``watermark`` (bytes), when that much data waits; ``read``/``poll`` with a
    timeout drain whatever is there anyway.

    Lost samples: ``lost`` (total) and ``lost_per_cpu`` count them;
    ``lost_callback(cpu, count)`` is called for each PERF_RECORD_LOST, and
    without one a RuntimeWarning is issued.
    """

    def __init__(self, perf_map: Any, codec: Any = None, callback: Callable[[Any], Any] | None = None, *,
                 lost_callback: Callable[[int, int], Any] | None = None, pages: int = 8, wakeup_events: int = 1,
                 watermark: int = 0, cpus: list[int] | None = None, batch_size: int = 1024):
        if getattr(perf_map, "type", None) != MapType.PERF_EVENT_ARRAY:
            raise MapError(f"{perf_map.describe() if hasattr(perf_map, 'describe') else perf_map!r} is not a perf event "
                           "array map")
        if pages <= 0 or pages & (pages - 1):
            raise MapError(f"pages must be a power of 2, not {pages}")
        super().__init__(codec, callback, batch_size)
        self.map = perf_map
        self.lost_callback = lost_callback
        self.lost = 0
        self.lost_per_cpu: dict[int, int] = {}
        self.rings: list[_CPURing] = []
        self._epoll = select.epoll()
        cpu_list = list(cpus) if cpus is not None else online_cpus()
        too_big = [c for c in cpu_list if c >= perf_map.max_entries]
        if too_big:
            self._epoll.close()
            raise MapError(f"{perf_map.describe()} has {perf_map.max_entries} slots but CPU {too_big[0]} is online: "
                           "create it with max_entries=0 (one slot per possible CPU)")
        try:
            for cpu in cpu_list:
                self._open_cpu(cpu, pages, wakeup_events, watermark)
        except BaseException:
            self.close()
            raise

    def _open_cpu(self, cpu: int, pages: int, wakeup_events: int, watermark: int) -> None:
        attr = PerfEventAttr(type=PerfType.SOFTWARE, config=SoftwareEvent.BPF_OUTPUT, sample_type=PERF_SAMPLE_RAW,
                             sample_period=1)
        if watermark:
            attr.flags |= FLAG_WATERMARK
            attr.wakeup_events = watermark
        else:
            attr.wakeup_events = max(1, wakeup_events)
        fd = open_event(attr, -1, cpu, f"BPF output event on CPU {cpu}")
        try:
            ring = _CPURing(cpu, fd, pages)
        except BaseException:
            os.close(fd)
            raise
        self.rings.append(ring)
        self.map.update_raw(cpu.to_bytes(4, "little"), fd.to_bytes(4, "little"))
        fcntl.ioctl(fd, PERF_EVENT_IOC_ENABLE, 0)
        self._epoll.register(fd, select.EPOLLIN)

    # -- draining ------------------------------------------------------------

    def _lost(self, cpu: int, count: int) -> None:
        self.lost += count
        self.lost_per_cpu[cpu] = self.lost_per_cpu.get(cpu, 0) + count
        if self.lost_callback is not None:
            self.lost_callback(cpu, count)
        else:
            warnings.warn(f"perf buffer of {self.map.describe()}: the kernel dropped {count} samples on CPU {cpu} "
                          "(the ring was full; use more pages or read faster)", RuntimeWarning, stacklevel=3)

    def _drain(self, ring: _CPURing, limit: int) -> list:
        """Decode up to ``limit`` samples of one CPU, release their space."""
        out: list = []
        data, words, mask, size, codec = ring.data, ring.words, ring.mask, ring.size, self.codec
        pos = start = ring.tail[0]
        head = ring.head[0]
        while pos < head and len(out) < limit:
            off = pos & mask
            rtype, _misc, rsize = _HEADER.unpack_from(data, off)
            if rsize < 8:
                break  # corrupt header: never loop forever
            if rtype == PERF_RECORD_SAMPLE:
                if off + rsize <= size:
                    count = 1
                    if rsize % 8 == 0:
                        room = min((head - pos) // rsize, (size - off) // rsize, limit - len(out))
                        count = uniform_run(words, off >> 3, rsize >> 3, room, words[off >> 3])
                    raw_len = struct.unpack_from("<I", data, off + 8)[0]
                    region = data[off:off + count * rsize]
                    if codec is None:
                        out += [bytes(region[i + _SAMPLE_HDR:i + _SAMPLE_HDR + raw_len])
                                for i in range(0, count * rsize, rsize)]
                    elif count > 1 and getattr(codec, "size", None) is not None and codec.size <= raw_len:
                        out += decode_many(codec, region, count, rsize, _SAMPLE_HDR, raw_len)
                    else:
                        dec = codec.decode
                        out += [dec(region[i + _SAMPLE_HDR:i + _SAMPLE_HDR + raw_len])
                                for i in range(0, count * rsize, rsize)]
                    pos += count * rsize
                    continue
                record = bytes(data[off:size]) + bytes(data[:rsize - (size - off)])  # wrapped past the end
                raw_len = struct.unpack_from("<I", record, 8)[0]
                payload = record[_SAMPLE_HDR:_SAMPLE_HDR + raw_len]
                out.append(payload if codec is None else codec.decode(payload))
            elif rtype == PERF_RECORD_LOST:
                record = bytes(data[off:off + rsize]) if off + rsize <= size else \
                    bytes(data[off:size]) + bytes(data[:rsize - (size - off)])
                self._lost(ring.cpu, struct.unpack_from("<Q", record, 16)[0])
            pos += rsize
        if pos != start:
            ring.tail[0] = pos
        return out

    def _drains(self) -> list[Callable[[int], list]]:
        return [functools.partial(self._drain, ring) for ring in self.rings]  # every CPU's ring in turn

    # -- lifetime ------------------------------------------------------------

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for ring in self.rings:
            try:
                fcntl.ioctl(ring.fd, PERF_EVENT_IOC_DISABLE, 0)
            except OSError:
                pass
            if not self.map.closed:
                self.map.delete_raw(ring.cpu.to_bytes(4, "little"))
            ring.close()
            os.close(ring.fd)
        self.rings.clear()
        self._epoll.close()
