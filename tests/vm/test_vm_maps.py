"""VM maps: the kernel backend's dict-like API and errors, kernel semantics from user space and from
programs (per-CPU values, queues, bloom filters, maps of maps, stack traces), BTF-typed values."""

from __future__ import annotations

import pytest

from conftest import compile_bpf
from pybpf.errors import MapError, VMError
from pybpf.object import ObjectSpec
from pybpf.vm import VM
from pybpf.vm.constants import MapType, ProgType

PREAMBLE = """
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
char LICENSE[] SEC("license") = "GPL";
"""


def load(source: str, name: str, **vm_options):
    return ObjectSpec.from_file(compile_bpf(PREAMBLE + source, name=name)).load(backend="vm", **vm_options)


def test_array_semantics():
    m = VM().create_map(MapType.ARRAY, 4, 8, 3, name="arr")
    assert len(m) == 3 and list(m.keys()) == [b"\0\0\0\0", b"\1\0\0\0", b"\2\0\0\0"]
    assert m[1] == bytes(8)  # slots exist and start zeroed
    m[1] = 7
    assert m[1] == (7).to_bytes(8, "little")
    with pytest.raises(MapError, match="already exists"):
        m.update(2, 1, flags=1)  # NOEXIST: every array slot exists
    with pytest.raises(MapError, match="max_entries=3"):
        m[3] = 1
    with pytest.raises(MapError, match="cannot be deleted"):
        del m[0]
    assert m.next_key_raw((7).to_bytes(4, "little")) == bytes(4)  # past the end: start over
    m.clear()
    assert m[1] == bytes(8)


def test_hash_semantics():
    m = VM().create_map(MapType.HASH, 4, 4, 2, name="h")
    m[1] = 10
    m.update(2, 20, flags=1)
    with pytest.raises(MapError, match="full"):
        m[3] = 30
    with pytest.raises(KeyError):
        m.update(3, 30, flags=2)  # EXIST on a missing key
    with pytest.raises(MapError, match="already exists"):
        m.update(1, 11, flags=1)
    assert sorted(int.from_bytes(k, "little") for k in m.keys()) == [1, 2]
    assert m.delete(1) and not m.delete(1)
    assert m.lookup_and_delete(2) == (20).to_bytes(4, "little") and m.count() == 0
    with pytest.raises(TypeError, match="count"):
        len(m)
    with pytest.raises(MapError, match="key_size=4"):
        m[b"toolong"] = 1


def test_unsupported_or_bad_maps_are_refused_with_a_reason():
    vm = VM()
    with pytest.raises(VMError, match="does not implement SOCKMAP maps"):
        vm.create_map(MapType.SOCKMAP, 4, 4, 1)
    with pytest.raises(MapError, match="key_size must be 4"):
        vm.create_map(MapType.ARRAY, 8, 4, 1)
    with pytest.raises(MapError, match="power of 2"):
        vm.create_map(MapType.RINGBUF, 0, 0, 5000)
    with pytest.raises(MapError, match="inner_map"):
        vm.create_map(MapType.ARRAY_OF_MAPS, 4, 4, 1)


PER_CPU = r"""
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u64);
} hits SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_HASH);
    __uint(max_entries, 4);
    __type(key, __u32);
    __type(value, __u64);
} by_cpu SEC(".maps");

SEC("xdp")
int count(struct xdp_md *ctx)
{
    __u32 zero = 0, cpu = bpf_get_smp_processor_id();
    __u64 *n = bpf_map_lookup_elem(&hits, &zero), one = cpu + 100;
    if (n)
        *n += 1;
    bpf_map_update_elem(&by_cpu, &zero, &one, BPF_ANY);
    return XDP_PASS;
}
"""


def test_per_cpu_maps_keep_one_value_per_virtual_cpu():
    obj = load(PER_CPU, "percpu", cpus=3)
    prog = obj.programs["count"]
    for cpu in (0, 2, 2, 1, 2):
        prog.test_run(bytes(14), cpu=cpu)
    assert obj.maps["hits"][0] == [1, 1, 3]
    # an update from a program writes this CPU's value; the other CPUs keep theirs
    assert obj.maps["by_cpu"][0] == [100, 101, 102]
    obj.maps["hits"][0] = [5, 6, 7]
    assert obj.maps["hits"][0] == [5, 6, 7]
    with pytest.raises(VMError, match="cpu 3 does not exist"):
        prog.test_run(bytes(14), cpu=3)


QUEUES = r"""
struct { __uint(type, BPF_MAP_TYPE_QUEUE); __uint(max_entries, 3); __type(value, __u32); } fifo SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_STACK); __uint(max_entries, 3); __type(value, __u32); } lifo SEC(".maps");
struct {
    __uint(type, BPF_MAP_TYPE_BLOOM_FILTER);
    __uint(max_entries, 100);
    __type(value, __u32);
} seen SEC(".maps");
long results[8];

SEC("xdp")
int queues(struct xdp_md *ctx)
{
    __u32 v;
    for (__u32 i = 1; i <= 4; i++) {
        results[0] += bpf_map_push_elem(&fifo, &i, 0) == 0;      /* the 4th does not fit */
        bpf_map_push_elem(&lifo, &i, BPF_EXIST);                   /* the 4th drops the oldest */
    }
    results[1] = bpf_map_pop_elem(&fifo, &v) == 0 ? v : -1;
    results[2] = bpf_map_peek_elem(&lifo, &v) == 0 ? v : -1;
    v = 42;
    bpf_map_push_elem(&seen, &v, 0);
    results[3] = bpf_map_peek_elem(&seen, &v);                    /* 0: maybe present */
    v = 43;
    results[4] = bpf_map_peek_elem(&seen, &v);                    /* -ENOENT: surely absent (here) */
    return XDP_PASS;
}
"""


def test_queue_stack_and_bloom_filter_from_programs_and_user_space():
    obj = load(QUEUES, "queues")
    obj.programs["queues"].test_run(bytes(14))
    results = obj.bss["results"]
    assert results[:5] == [3, 1, 4, -2 + 2, -2]
    fifo, lifo, seen = obj.maps["fifo"], obj.maps["lifo"], obj.maps["seen"]
    assert [fifo.pop(), fifo.pop()] == [2, 3] and fifo.pop(None) is None
    assert list(lifo) == [4, 3, 2]
    assert 42 in seen
    seen.add(7)
    assert 7 in seen
    with pytest.raises(MapError, match="no keys"):
        list(seen.keys())


MAP_IN_MAP = r"""
struct inner {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 2);
    __type(key, __u32);
    __type(value, __u64);
} first SEC(".maps"), second SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
    __uint(max_entries, 2);
    __type(key, __u32);
    __array(values, struct inner);
} outer SEC(".maps") = { .values = { &first, &second } };

SEC("xdp")
int bump(struct xdp_md *ctx)
{
    __u32 which = 1, slot = 0;
    void *inner = bpf_map_lookup_elem(&outer, &which);
    if (!inner)
        return XDP_ABORTED;
    __u64 *v = bpf_map_lookup_elem(inner, &slot);
    if (!v)
        return XDP_ABORTED;
    *v += 5;
    return XDP_PASS;
}
"""


def test_map_of_maps_initialised_from_the_object_and_used_by_the_program():
    obj = load(MAP_IN_MAP, "mapinmap")
    assert obj.programs["bump"].test_run(bytes(14)).retval == 2
    assert obj.maps["second"][0] == 5 and obj.maps["first"][0] == 0
    outer = obj.maps["outer"]
    assert outer[1] == obj.maps["second"].id  # lookups give the inner map's id, as in the kernel
    assert outer.inner(1) is obj.maps["second"]
    outer[1] = obj.maps["first"]
    obj.programs["bump"].test_run(bytes(14))
    assert obj.maps["first"][0] == 5
    other = obj.vm.create_map(MapType.HASH, 4, 8, 2)
    with pytest.raises(MapError, match="does not match the template"):
        outer[0] = other


STACKS = r"""
struct {
    __uint(type, BPF_MAP_TYPE_STACK_TRACE);
    __uint(max_entries, 16);
    __uint(key_size, sizeof(__u32));
    __uint(value_size, 4 * sizeof(__u64));
} stacks SEC(".maps");
long ids[2];

SEC("xdp")
int stack_ids(struct xdp_md *ctx)
{
    ids[0] = bpf_get_stackid(ctx, &stacks, 0);
    ids[1] = bpf_get_stackid(ctx, &stacks, BPF_F_USER_STACK | 1);
    return XDP_PASS;
}
"""


def test_stack_ids_of_configured_stacks():
    obj = load(STACKS, "stacks")
    obj.vm.stacks["kernel"] = [0xFFFFFFFF81000010, 0xFFFFFFFF81000020]
    obj.vm.stacks["user"] = [0x401000, 0x401100, 0x401200]
    obj.programs["stack_ids"].test_run(bytes(14))
    kernel_id, user_id = obj.bss["ids"]
    stacks = obj.maps["stacks"]
    assert stacks.lookup_raw(kernel_id.to_bytes(4, "little"))[:16] == \
        (0xFFFFFFFF81000010).to_bytes(8, "little") + (0xFFFFFFFF81000020).to_bytes(8, "little")
    # skip=1 drops the innermost frame
    assert stacks.lookup_raw(user_id.to_bytes(4, "little"))[:16] == \
        (0x401100).to_bytes(8, "little") + (0x401200).to_bytes(8, "little")


TYPED = r"""
struct point { __u32 x; __s16 y; char tag[4]; };
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 8);
    __type(key, __u32);
    __type(value, struct point);
} points SEC(".maps");

SEC("xdp")
int put(struct xdp_md *ctx)
{
    __u32 key = 3;
    struct point p = {.x = 7, .y = -2, .tag = "abc"};
    bpf_map_update_elem(&points, &key, &p, BPF_ANY);
    return XDP_PASS;
}
"""


def test_btf_typed_keys_and_values_decode_like_the_kernel_backend():
    obj = load(TYPED, "typed")
    obj.programs["put"].test_run(bytes(14))
    points = obj.maps["points"]
    assert dict(points.items()) == {3: {"x": 7, "y": -2, "tag": "abc"}}
    points[4] = {"x": 1, "y": 2, "tag": "z"}
    assert points[4] == {"x": 1, "y": 2, "tag": "z"}


def test_program_cannot_write_a_read_only_map_value():
    vm = VM()
    ro = vm.create_map(MapType.ARRAY, 4, 8, 1, flags=1 << 7)  # BPF_F_RDONLY_PROG
    from vmcode import EXIT, alu, call, map_fd, mov, st, stx

    code = [st(4, 10, -4, 0), mov(2, src=10), alu("add", 2, None, -4), map_fd(1, ro.fd), call(1),
            mov(1, 1), stx(8, 0, 0, 1), EXIT]
    from pybpf.errors import VMFault

    with pytest.raises(VMFault, match="read-only"):
        vm.load(code, type=ProgType.XDP).test_run(bytes(14))


def test_maps_by_index_into_fd_array_and_direct_value_addresses():
    from pybpf.isa import Instruction as I
    from vmcode import EXIT, ldx

    vm = VM()
    data = vm.create_map(MapType.ARRAY, 4, 16, 1, name="globals")
    data[0] = bytes(range(16))
    code = [I(0x18, 1, 6, 0, 0 | 8 << 32), ldx(4, 0, 1, 0), EXIT]  # r1 = &value(fd_array[0]) + 8
    assert vm.load(code, fd_array=[data]).run() == int.from_bytes(bytes(range(8, 12)), "little")
    code = [I(0x18, 1, 2, 0, data.fd | 4 << 32), ldx(1, 0, 1, 0), EXIT]  # src=2: by fd, offset 4
    assert vm.load(code).run() == 4
    with pytest.raises(VMError, match="map index 0 is beyond"):
        vm.load([I(0x18, 1, 5, 0, 0), EXIT])
    with pytest.raises(VMError, match="offset 16 is outside"):
        vm.load([I(0x18, 1, 2, 0, data.fd | 16 << 32), EXIT])
