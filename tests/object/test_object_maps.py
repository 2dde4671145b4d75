"""Map definitions: BTF-defined .maps with every attribute, inner maps, initial values, legacy maps."""

from __future__ import annotations

import pytest

import libbpf_ref
from conftest import compile_bpf
from pybpf.cli.object import c_type_name
from pybpf.errors import BPFError, ObjectError
from pybpf.object import MapFlags, MapType, ObjectSpec, Pinning

SOURCE = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#ifndef __ulong
#define __ulong(name, val) enum { ___bpf_concat(__unique_value, __COUNTER__) = val } name
#endif

struct event { int pid; char comm[16]; };
struct key { __u32 a; __u16 b; };

struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 1024); __type(key, struct key);
         __type(value, struct event); __uint(map_flags, BPF_F_NO_PREALLOC); } typed SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(key_size, 4); __uint(value_size, 24); __uint(max_entries, 8);
         __uint(map_flags, BPF_F_NUMA_NODE); __uint(numa_node, 0); } sized SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_LRU_HASH); __uint(max_entries, 16); __type(key, __u64); __type(value, __u64);
         __uint(pinning, LIBBPF_PIN_BY_NAME); } pinned SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_BLOOM_FILTER); __uint(max_entries, 64); __type(value, __u32);
         __uint(map_extra, 3); } bloom SEC(".maps");
#ifdef WITH_ULONG  /* __ulong() is newer than libbpf 1.1, which refuses it */
struct { __uint(type, BPF_MAP_TYPE_BLOOM_FILTER); __uint(max_entries, 64); __type(value, __u32);
         __ulong(map_extra, 0x1234567890ULL); } bloom64 SEC(".maps");
#endif
struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 5000); __type(value, struct event); } events SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY); __uint(key_size, sizeof(int)); __uint(value_size, sizeof(int)); } perf SEC(".maps");

struct inner { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 2); __type(key, int); __type(value, int); };
struct inner inner_a SEC(".maps"), inner_b SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS); __uint(max_entries, 4); __type(key, int);
         __array(values, struct inner); } outer SEC(".maps") = { .values = { [1] = &inner_b, [3] = &inner_a } };
struct { __uint(type, BPF_MAP_TYPE_HASH_OF_MAPS); __uint(max_entries, 4); __type(key, int);
         __array(values, struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 8); __type(key, int);
                                  __type(value, long); }); } outer_hash SEC(".maps");

int tail_a(void *ctx);
struct { __uint(type, BPF_MAP_TYPE_PROG_ARRAY); __uint(max_entries, 3); __uint(key_size, 4);
         __array(values, int (void *)); } jumps SEC(".maps") = { .values = { [2] = (void *)&tail_a } };

SEC("tp/syscalls/sys_enter_getpid") int tail_a(void *ctx) { return 0; }
SEC("tp/syscalls/sys_enter_getppid") int user(void *ctx)
{
    struct key k = {}; int i = 0; __u32 v = 1;
    bpf_map_lookup_elem(&typed, &k); bpf_map_lookup_elem(&sized, &i); bpf_map_lookup_elem(&pinned, &k);
    bpf_map_push_elem(&bloom, &v, 0);
#ifdef WITH_ULONG
    bpf_map_push_elem(&bloom64, &v, 0);
#endif
    bpf_ringbuf_output(&events, &v, 4, 0); bpf_perf_event_output(ctx, &perf, 0, &v, 4);
    bpf_map_lookup_elem(&outer, &i); bpf_map_lookup_elem(&outer_hash, &i); bpf_tail_call(ctx, &jumps, 2);
    return 0;
}
char LICENSE[] SEC("license") = "GPL";
"""


@pytest.fixture(scope="module")
def path():
    return compile_bpf(SOURCE, name="maps", cflags=("-DWITH_ULONG",))


@pytest.fixture
def spec(path) -> ObjectSpec:
    return ObjectSpec.from_file(path, name="maps")


def test_typed_map(spec):
    m = spec.maps["typed"]
    assert (m.type, m.key_size, m.value_size, m.max_entries, m.flags) == (MapType.HASH, 8, 20, 1024, 1)
    assert m.key_type.describe() == "struct key" and m.value_type.describe() == "struct event"
    assert c_type_name(spec.btf, m.value_type_id) == "struct event"
    assert not m.is_internal and m.section == ".maps"


def test_sized_map_with_numa_node(spec):
    m = spec.maps["sized"]
    assert (m.type, m.key_size, m.value_size, m.max_entries) == (MapType.ARRAY, 4, 24, 8)
    assert m.flags == MapFlags.NUMA_NODE and m.numa_node == 0 and m.key_type is None


def test_pinning_and_map_extra(spec):
    assert spec.maps["pinned"].pinning == Pinning.BY_NAME and spec.maps["typed"].pinning == Pinning.NONE
    assert spec.maps["bloom"].map_extra == 3 and spec.maps["bloom"].key_size == 0
    assert spec.maps["bloom64"].map_extra == 0x1234567890


def test_ring_buffer_value_type_is_dropped_and_size_rounded(spec):
    m = spec.maps["events"]
    assert (m.key_size, m.value_size, m.value_type) == (0, 0, None)
    assert m.dropped_value_type.describe() == "struct event"
    assert m.max_entries == 8192  # power-of-two multiple of the page size, as libbpf rounds it


def test_inner_map_templates_and_initial_values(spec):
    outer = spec.maps["outer"]
    assert outer.type == MapType.ARRAY_OF_MAPS and outer.value_size == 4
    assert (outer.inner.name, outer.inner.type, outer.inner.max_entries) == ("outer.inner", MapType.ARRAY, 2)
    assert outer.contents == [(1, "inner_b"), (3, "inner_a")]
    oh = spec.maps["outer_hash"]
    assert (oh.inner.type, oh.inner.key_size, oh.inner.value_size) == (MapType.HASH, 4, 8) and oh.contents == []
    jumps = spec.maps["jumps"]
    assert jumps.type == MapType.PROG_ARRAY and jumps.contents == [(2, "tail_a")] and jumps.inner is None


def test_sizes_type_and_max_entries_can_change_before_load(spec):
    m = spec.maps["typed"]
    m.max_entries = 1 << 16
    m.type = MapType.LRU_HASH
    m.value_size = 64
    assert (spec.maps["typed"].max_entries, spec.maps["typed"].type, spec.maps["typed"].value_size) == (
        65536, MapType.LRU_HASH, 64)


@pytest.mark.skipif(not libbpf_ref.available(), reason="libbpf.so.1 is not installed")
def test_maps_match_libbpf():
    path = compile_bpf(SOURCE, name="maps")
    spec = ObjectSpec.from_file(path, name="maps")
    _progs, ref = libbpf_ref.LibBPF().details(str(path))
    assert set(ref) == set(spec.maps)
    for name, r in ref.items():
        m = spec.maps[name]
        mine = {"type": int(m.type), "key_size": m.key_size, "value_size": m.value_size,
                "max_entries": m.max_entries, "flags": int(m.flags), "numa_node": m.numa_node,
                "map_extra": m.map_extra}
        if name == "events":  # libbpf 1.1 keeps __type(value, ...) of a ring buffer (and then fails to create it)
            mine["value_size"] = r["value_size"]
        assert {k: r[k] for k in mine} == mine, name
        if r["inner"] is not None:
            inner = m.inner
            assert (r["inner"]["type"], r["inner"]["key_size"], r["inner"]["value_size"],
                    r["inner"]["max_entries"]) == (int(inner.type), inner.key_size, inner.value_size,
                                                   inner.max_entries)


LEGACY = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
struct bpf_map_def { unsigned int type, key_size, value_size, max_entries, map_flags; };
struct bpf_map_def SEC("maps") counters = { .type = BPF_MAP_TYPE_PERCPU_ARRAY, .key_size = 4, .value_size = 8,
                                            .max_entries = 256 };
struct bpf_map_def SEC("maps") flows = { .type = BPF_MAP_TYPE_HASH, .key_size = 16, .value_size = 8,
                                         .max_entries = 4096, .map_flags = BPF_F_NO_PREALLOC };
SEC("socket") int count(struct __sk_buff *skb)
{
    int k = 0; char key[16] = {};
    bpf_map_lookup_elem(&counters, &k);
    bpf_map_lookup_elem(&flows, key);
    return 0;
}
char LICENSE[] SEC("license") = "GPL";
"""


def test_legacy_maps_section():
    spec = ObjectSpec.from_file(compile_bpf(LEGACY, name="legacy"))
    assert list(spec.maps) == ["counters", "flows"]
    c, f = spec.maps["counters"], spec.maps["flows"]
    assert (c.type, c.key_size, c.value_size, c.max_entries, c.flags) == (MapType.PERCPU_ARRAY, 4, 8, 256, 0)
    assert (f.type, f.key_size, f.value_size, f.max_entries, f.flags) == (MapType.HASH, 16, 8, 4096, 1)
    assert c.section == "maps" and c.key_type is None
    refs = {r.map for r in spec.programs["count"].map_references}
    assert refs == {"counters", "flows"}


BAD_DEFS = {
    "no type": "struct { __uint(max_entries, 1); } m SEC(\".maps\");",
    "unknown field": "struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(colour, 1); } m SEC(\".maps\");",
    "key not a pointer": "struct { __uint(type, BPF_MAP_TYPE_HASH); int key; } m SEC(\".maps\");",
    "conflicting key size": "struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(key_size, 2); __type(key, long); } m "
                            "SEC(\".maps\");",
    "values on a hash": "struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 2); __type(key, int); "
                        "__array(values, int (void *)); } m SEC(\".maps\");",
    "invalid pinning": "struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(pinning, 7); } m SEC(\".maps\");",
}


@pytest.mark.parametrize("what", sorted(BAD_DEFS))
def test_bad_map_definitions_are_named(what):
    src = "#include <linux/bpf.h>\n#include <bpf/bpf_helpers.h>\n" + BAD_DEFS[what] + \
          "\nSEC(\"socket\") int p(void *c) { return bpf_map_lookup_elem(&m, &c) != 0; }\n"
    with pytest.raises(ObjectError, match="map 'm'") as info:
        ObjectSpec.from_file(compile_bpf(src, name="badmap"))
    assert isinstance(info.value, BPFError)


STRUCT_OPS = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
struct pybpf_ops { int (*init)(void); void (*release)(int x); int flags; };
SEC("struct_ops/my_init") int my_init(void) { return 0; }
SEC("struct_ops/my_release") void my_release(int x) { }
SEC(".struct_ops.link") struct pybpf_ops ops = { .init = (void *)my_init, .release = (void *)my_release, .flags = 3 };
SEC("?.struct_ops") struct pybpf_ops spare = { .init = (void *)my_init };
char LICENSE[] SEC("license") = "GPL";
"""


def test_struct_ops_maps():
    spec = ObjectSpec.from_file(compile_bpf(STRUCT_OPS, name="stops"))
    ops, spare = spec.maps["ops"], spec.maps["spare"]
    assert (ops.type, ops.key_size, ops.value_size, ops.max_entries, ops.flags) == (
        MapType.STRUCT_OPS, 4, 24, 1, MapFlags.LINK)
    assert ops.struct_ops == {"init": "my_init", "release": "my_release"} and ops.autocreate
    assert ops.value_type.name == "pybpf_ops" and ops.data[16:20] == (3).to_bytes(4, "little")
    assert spare.struct_ops == {"init": "my_init"} and not spare.autocreate and spare.flags == 0
    assert spec.programs["my_init"].type.name == "STRUCT_OPS"


ARENA = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#define __arena __attribute__((address_space(1)))
struct { __uint(type, 33 /* BPF_MAP_TYPE_ARENA */); __uint(map_flags, BPF_F_MMAPABLE); __uint(max_entries, 4); } arena SEC(".maps");
int __arena hits = 7;
SEC("syscall") int bump(void *ctx) { hits++; return 0; }
char LICENSE[] SEC("license") = "GPL";
"""


def test_arena_globals_are_references_into_the_arena_map():
    spec = ObjectSpec.from_file(compile_bpf(ARENA, name="arena"))
    arena = spec.maps["arena"]
    assert arena.type == MapType.ARENA and arena.data[:4] == (7).to_bytes(4, "little")
    refs = spec.programs["bump"].map_references
    assert refs and all(r.map == "arena" and r.value for r in refs)
