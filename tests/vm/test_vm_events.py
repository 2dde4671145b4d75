"""Ring buffers and perf event arrays in the VM, read through the kernel backend's reader API."""

from __future__ import annotations

import threading

import pytest

from conftest import compile_bpf
from pybpf.errors import MapError, VMFault
from pybpf.object.codec import StructCodec
from pybpf.object import ObjectSpec

PREAMBLE = """
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
char LICENSE[] SEC("license") = "GPL";
struct event { __u32 seq; __u32 len; char tag[8]; };
"""

RINGBUF = r"""
struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 4096); } events SEC(".maps");
__u32 seq;
long stats[4];

SEC("xdp")
int emit(struct xdp_md *ctx)
{
    __u32 n = ctx->data_end - ctx->data;
    struct event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
    if (!e)
        return XDP_DROP;
    e->seq = ++seq;
    e->len = n;
    __builtin_memcpy(e->tag, "reserve", 8);
    if (n == 15)
        bpf_ringbuf_discard(e, 0);          /* never reaches the reader */
    else
        bpf_ringbuf_submit(e, 0);
    struct event copy = {.seq = seq, .len = n, .tag = "output"};
    stats[0] = bpf_ringbuf_output(&events, &copy, sizeof(copy), 0);
    stats[1] = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);
    stats[2] = bpf_ringbuf_query(&events, BPF_RB_RING_SIZE);
    return XDP_PASS;
}

SEC("xdp")
int leak(struct xdp_md *ctx)
{
    bpf_ringbuf_reserve(&events, 8, 0);
    return XDP_PASS;
}
"""

EVENT = StructCodec("II8s", "seq len tag", "Event")


def load(source: str, name: str, **options):
    return ObjectSpec.from_file(compile_bpf(PREAMBLE + source, name=name)).load(backend="vm", **options)


def test_ring_buffer_records_in_order_discards_skipped_and_decoded():
    obj = load(RINGBUF, "ringbuf")
    ring, prog = obj.maps["events"], obj.programs["emit"]
    for size in (14, 15, 16):
        assert prog.test_run(bytes(size)).retval == 2
    assert obj.bss["stats"][1:3] == [2 * 3 * 24, 4096]  # 24-byte slots (16 + 8 header), discarded one included
    with ring.reader(EVENT) as reader:
        events = reader.read(timeout=0)
        assert [(e.seq, e.len, e.tag.rstrip(b"\0")) for e in events] == [
            (1, 14, b"reserve"), (1, 14, b"output"), (2, 15, b"output"), (3, 16, b"reserve"), (3, 16, b"output")]
        assert reader.available() == 0 and reader.read(timeout=0.05) == []


def test_ring_buffer_full_and_poll_with_callback_from_another_thread():
    obj = load(RINGBUF, "ringbuf")
    prog, ring = obj.programs["emit"], obj.maps["events"]
    runs = 0
    while prog.test_run(bytes(14)).retval == 2:  # fill the 4 KiB ring
        runs += 1
    assert 4096 // 48 - 1 <= runs <= 4096 // 48
    got = []
    reader = ring.reader(EVENT, callback=got.append)
    assert reader.poll(timeout=0) == 2 * runs
    threading.Timer(0.05, lambda: prog.test_run(bytes(16))).start()
    assert reader.poll(timeout=2) == 2 and got[-1].len == 16


def test_unreleased_record_is_an_error_and_is_discarded():
    obj = load(RINGBUF, "ringbuf")
    with pytest.raises(VMFault, match="neither submitted nor discarded"):
        obj.programs["leak"].test_run(bytes(14))
    assert obj.maps["events"].reader().read(timeout=0) == []  # the record did not block the ring


def test_ring_buffer_has_no_user_space_lookup():
    obj = load(RINGBUF, "ringbuf")
    with pytest.raises(MapError, match="not supported on RINGBUF"):
        obj.maps["events"].lookup_raw(b"")


PERF = r"""
struct {
    __uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
    __uint(key_size, sizeof(__u32));
    __uint(value_size, sizeof(__u32));
} samples SEC(".maps");
long result;

SEC("xdp")
int sample(struct xdp_md *ctx)
{
    struct event e = {.seq = bpf_get_smp_processor_id(), .len = ctx->data_end - ctx->data, .tag = "perf"};
    result = bpf_perf_event_output(ctx, &samples, BPF_F_CURRENT_CPU, &e, sizeof(e) - 4);
    return XDP_PASS;
}
"""


def test_perf_event_array_per_cpu_samples_padding_and_lost_counts():
    obj = load(PERF, "perf", cpus=2)
    prog, perf = obj.programs["sample"], obj.maps["samples"]
    assert perf.max_entries == 2  # max_entries 0: one slot per CPU
    prog.test_run(bytes(14))
    assert obj.bss["result"] == -2  # no reader yet: no event in the slot (-ENOENT)
    lost = []
    reader = perf.reader(lost_callback=lambda cpu, n: lost.append((cpu, n)), pages=1)
    prog.test_run(bytes(20), cpu=1)
    prog.test_run(bytes(21), cpu=0)
    samples = reader.read(timeout=0)
    # the kernel pads a raw sample so header + size + data is a multiple of 8: 12 bytes become 12
    assert sorted(samples) == sorted([(0).to_bytes(4, "little") + (21).to_bytes(4, "little") + b"perf",
                                      (1).to_bytes(4, "little") + (20).to_bytes(4, "little") + b"perf"])
    for _ in range(4096 // 24 + 5):
        prog.test_run(bytes(14), cpu=0)
    assert obj.bss["result"] == -28  # -ENOSPC: the 4 KiB buffer of CPU 0 is full
    reader.read(timeout=0)
    assert lost and lost[0][0] == 0 and reader.lost == sum(n for _, n in lost)
    reader.close()
