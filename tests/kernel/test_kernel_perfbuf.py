"""The perf buffer reader against real bpf_perf_event_output samples: order, decoding, records
wrapping the ring's end, lost samples reported (callback, counter, warning), wakeup settings."""

from __future__ import annotations

import os
import select
import warnings

import pytest

from kernel_testlib import load_c, open_fds

from pybpf.errors import MapError
from pybpf.kernel import IntCodec, Map, MapType, PerfBufReader, ProgType, StructCodec

pytestmark = pytest.mark.kernel

EMIT = r"""
struct { __uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY); __uint(key_size, 4); __uint(value_size, 4); } events SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1); __type(key, __u32); __type(value, __u32); } cfg SEC(".maps");
struct event { __u64 seq; __u32 pid; __u32 cpu; char fill[%d]; };
__u64 seq = 0;

SEC("tracepoint/syscalls/sys_enter_getppid")
int emit(void *ctx)
{
    __u32 zero = 0, *pid = bpf_map_lookup_elem(&cfg, &zero);
    if (!pid || (bpf_get_current_pid_tgid() >> 32) != *pid)
        return 0;
    struct event e = {};
    e.seq = __sync_fetch_and_add(&seq, 1);
    e.pid = *pid;
    e.cpu = bpf_get_smp_processor_id();
    bpf_perf_event_output(ctx, &events, BPF_F_CURRENT_CPU, &e, sizeof(e));
    return 0;
}
"""


@pytest.fixture
def emitter():
    """(program attached to getppid, perf event array) for events with ``fill`` extra bytes."""
    made = []

    def make(fill: int = 8):
        events = Map.create(MapType.PERF_EVENT_ARRAY, 4, 4, 0, name="events")
        cfg = Map.create(MapType.ARRAY, 4, 4, 1, name="cfg", key_codec=IntCodec(4), value_codec=IntCodec(4))
        cfg[0] = os.getpid()
        loaded = load_c(EMIT % fill, "tracepoint/syscalls/sys_enter_getppid", ProgType.TRACEPOINT,
                        {"events": events, "cfg": cfg}, name="perfemit")
        link = loaded.program.attach()
        made.append((link, loaded, events, cfg))
        return events

    yield make
    for link, loaded, *maps in made:
        link.close()
        loaded.close()
        for m in maps:
            m.close()


@pytest.fixture
def one_cpu():
    """Run on one CPU, so all samples land in one ring in order."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(before)})
    yield min(before)
    os.sched_setaffinity(0, before)


def _codec(fill: int) -> StructCodec:
    return StructCodec(f"QII{fill}s", ["seq", "pid", "cpu", "fill"], "Event")


def test_samples_arrive_in_order_decoded(emitter, one_cpu):
    events = emitter(8)
    fds = open_fds()
    with PerfBufReader(events, codec=_codec(8)) as reader:
        for _ in range(50):
            os.getppid()
        got = reader.read(timeout=2)
        assert [e.seq for e in got] == list(range(50))
        assert {(e.pid, e.cpu) for e in got} == {(os.getpid(), one_cpu)}
        assert reader.lost == 0 and reader.read(timeout=0) == []
    assert open_fds() == fds


def test_records_wrapping_the_ring_end_are_reassembled(emitter, one_cpu):
    events = emitter(24)  # 40-byte samples: 56-byte records, which do not divide the 4096-byte ring
    seen = []
    with PerfBufReader(events, codec=_codec(24), pages=1) as reader:
        for _ in range(6):
            for _ in range(50):
                os.getppid()
            seen += reader.read(timeout=2)
        assert reader.lost == 0
    assert [e.seq for e in seen] == list(range(300))  # 16 KiB through a 4 KiB ring: several wraps


def test_raw_samples_and_callbacks(emitter, one_cpu):
    events = emitter(0)
    got = []
    with events.reader(callback=got.append) as reader:
        os.getppid()
        os.getppid()
        assert reader.poll(timeout=2) == 2
    assert all(isinstance(r, bytes) and len(r) >= 16 for r in got)
    assert [int.from_bytes(r[:8], "little") for r in got] == [0, 1]


def test_lost_samples_are_counted_and_reported(emitter, one_cpu):
    events = emitter(200)
    lost_calls = []
    with PerfBufReader(events, codec=_codec(200), pages=1, lost_callback=lambda cpu, n: lost_calls.append((cpu, n))) \
            as reader:
        for _ in range(100):  # ~22 KiB into a 4 KiB ring, nobody reading
            os.getppid()
        got = reader.read(timeout=1)
        # The kernel writes its LOST record once there is room again: at the next sample after a read.
        os.getppid()
        got += reader.read(timeout=1)
        assert reader.lost > 0 and len(got) + reader.lost == 101
        assert sum(n for _, n in lost_calls) == reader.lost and {c for c, _ in lost_calls} == {one_cpu}
        assert reader.lost_per_cpu == {one_cpu: reader.lost}
        assert [e.seq for e in got] == sorted(e.seq for e in got)
    with PerfBufReader(events, pages=1) as quiet:
        for _ in range(100):
            os.getppid()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            quiet.read(timeout=1)
            os.getppid()
            quiet.read(timeout=1)
        assert quiet.lost > 0
        assert any("dropped" in str(w.message) and w.category is RuntimeWarning for w in caught)


def test_wakeup_after_n_events(emitter, one_cpu):
    events = emitter(8)
    with PerfBufReader(events, wakeup_events=5) as reader:
        for _ in range(3):
            os.getppid()
        assert select.select([reader], [], [], 0.05)[0] == []  # 3 samples wait, no wakeup yet
        for _ in range(2):
            os.getppid()
        assert select.select([reader], [], [], 1)[0] == [reader]
        assert len(reader.read()) == 5


def test_bad_reader_arguments():
    with Map.create(MapType.ARRAY, 4, 4, 1) as arr, pytest.raises(MapError, match="is not a perf event array"):
        PerfBufReader(arr)
    with Map.create(MapType.PERF_EVENT_ARRAY, 4, 4, 0) as pa:
        with pytest.raises(MapError, match="power of 2"):
            PerfBufReader(pa, pages=3)
    if len(os.sched_getaffinity(0)) > 1 or max(os.sched_getaffinity(0)) > 0:
        with Map.create(MapType.PERF_EVENT_ARRAY, 4, 4, 1) as small, pytest.raises(MapError, match="max_entries=0"):
            PerfBufReader(small)
