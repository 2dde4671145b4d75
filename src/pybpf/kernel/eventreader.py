"""What the kernel's ring buffer and perf buffer readers share.

Both drain records the kernel writes into memory mapped into this process and
sleep on an epoll fd in between; only draining differs (one ring with a
consumer position, or one ring per CPU).  The forms of use are those of every
:class:`~pybpf.object.eventreader.EventReader` (re-exported here); this adds
the epoll fd, which also lets select/asyncio loops wait on a reader.
"""

from __future__ import annotations

import select

from ..object.eventreader import EventReader

__all__ = ["EpollEventReader", "EventReader", "uniform_run"]


class EpollEventReader(EventReader):
    """Base of the kernel's RingBufReader and PerfBufReader: waits on ``_epoll``.

    Subclasses create ``_epoll``, register their rings' fds in it and close it in ``close``.
    """

    _epoll: select.epoll

    def _wait(self, timeout: float | None) -> None:
        self._epoll.poll(-1 if timeout is None else timeout)

    def fileno(self) -> int:
        """The epoll fd: readable when records wait (for select/asyncio loops)."""
        return self._epoll.fileno()


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
