"""Maps in the real kernel: every type creatable, dict semantics, per-CPU, LPM, queue, batch, pins."""

from __future__ import annotations

import os
import socket
import struct

import pytest

from kernel_testlib import open_fds

from pybpf.errors import KernelError, MapError, NotSupportedError
from pybpf.kernel import (
    EXIST, NOEXIST, BloomFilterMap, IntCodec, KernelBTF, Map, MapOfMaps, MapType, ProgArray, QueueMap, RingBuf,
    StructCodec, map_ids, minimal_btf, possible_cpus, supports_map_type,
)

pytestmark = pytest.mark.kernel
NCPUS = max(possible_cpus()) + 1


def test_hash_map_dict_semantics():
    with Map.create(MapType.HASH, 4, 8, 16, name="h", key_codec=IntCodec(4), value_codec=IntCodec(8)) as m:
        assert m.get(1) is None and 1 not in m
        m[1] = 10
        m[2] = 20
        assert m[1] == 10 and 2 in m
        assert sorted(m.items()) == [(1, 10), (2, 20)]
        assert sorted(m.keys()) == [1, 2] and sorted(m.values()) == [10, 20]
        assert m.count() == 2
        with pytest.raises(TypeError, match="count"):
            len(m)
        with pytest.raises(MapError, match="already exists"):
            m.update(1, 11, NOEXIST)
        m.update(1, 11, EXIST)
        assert m[1] == 11
        with pytest.raises(KeyError):
            m.update(3, 30, EXIST)
        del m[1]
        with pytest.raises(KeyError):
            del m[1]
        with pytest.raises(KeyError):
            m[1]
        assert m.lookup_and_delete(2) == 20 and m.count() == 0


def test_raw_codec_accepts_bytes_and_ints_and_names_bad_sizes():
    with Map.create(MapType.HASH, 4, 4, 4, name="raw_sizes") as m:
        m[b"abcd"] = 7
        assert m[b"abcd"] == (7).to_bytes(4, "little")
        assert m[int.from_bytes(b"abcd", "little")] == b"\x07\0\0\0"
        with pytest.raises(MapError, match=r"raw_sizes.*key_size=4") as exc:
            m[b"abc"] = 1
        assert "got 3 bytes" in str(exc.value)
        with pytest.raises(MapError, match=r"raw_sizes.*value_size=4"):
            m[b"abcd"] = b"12345"
        with pytest.raises(MapError, match="does not fit"):
            m[1 << 40] = 1


def test_map_full_is_reported():
    with Map.create(MapType.HASH, 4, 4, 2, name="tiny", key_codec=IntCodec(4), value_codec=IntCodec(4)) as m:
        m[1] = m[2] = 1
        with pytest.raises(MapError, match=r"full \(max_entries=2\)"):
            m[3] = 1


def test_array_map_len_clear_and_no_delete():
    with Map.create(MapType.ARRAY, 4, 8, 4, key_codec=IntCodec(4), value_codec=IntCodec(8)) as m:
        assert len(m) == 4 and list(m.items()) == [(i, 0) for i in range(4)]
        m[3] = 99
        assert m[3] == 99 and 3 in m
        with pytest.raises(MapError, match="cannot be deleted"):
            del m[3]
        m.clear()
        assert m[3] == 0
        with pytest.raises(KeyError):
            m[4]


def test_percpu_values_are_one_per_possible_cpu():
    with Map.create(MapType.PERCPU_ARRAY, 4, 4, 2, key_codec=IntCodec(4), value_codec=IntCodec(4)) as m:
        assert m[0] == [0] * NCPUS
        m[0] = list(range(1, NCPUS + 1))
        assert m[0] == list(range(1, NCPUS + 1))
        m[1] = 5  # one value for every CPU
        assert m[1] == [5] * NCPUS
        with pytest.raises(MapError, match="one per possible CPU"):
            m[1] = [1] * (NCPUS + 1)
    # value_size 4 is padded to 8 bytes per CPU in the kernel's buffer
    with Map.create(MapType.PERCPU_HASH, 4, 12, 8, key_codec=IntCodec(4), value_codec=StructCodec("III")) as h:
        h[7] = [(i, i * 2, i * 3) for i in range(NCPUS)]
        assert h[7] == [(i, i * 2, i * 3) for i in range(NCPUS)]
        assert dict(h.items())[7][-1] == (NCPUS - 1, (NCPUS - 1) * 2, (NCPUS - 1) * 3)


def test_lru_hash_evicts_instead_of_failing():
    with Map.create(MapType.LRU_HASH, 4, 4, 8, key_codec=IntCodec(4), value_codec=IntCodec(4)) as m:
        for i in range(100):
            m[i] = i
        assert 0 < m.count() <= 8
        assert 99 in m


def test_lpm_trie_longest_prefix_match():
    lpm_key = StructCodec("I4s")
    with Map.create(MapType.LPM_TRIE, 8, 4, 16, key_codec=lpm_key, value_codec=IntCodec(4)) as m:
        m[(8, socket.inet_aton("198.0.0.0"))] = 8
        m[(16, socket.inet_aton("198.18.0.0"))] = 16
        m[(24, socket.inet_aton("198.18.5.0"))] = 24
        assert m[(32, socket.inet_aton("198.18.5.7"))] == 24
        assert m[(32, socket.inet_aton("198.18.9.1"))] == 16
        assert m[(32, socket.inet_aton("198.200.1.1"))] == 8
        assert m.get((32, socket.inet_aton("10.0.0.1"))) is None
        assert sorted(k[0] for k in m.keys()) == [8, 16, 24]


def test_queue_and_stack():
    with Map.create(MapType.QUEUE, 0, 4, 3, value_codec=IntCodec(4)) as q:
        assert isinstance(q, QueueMap)
        for v in (1, 2, 3):
            q.push(v)
        with pytest.raises(MapError, match="full"):
            q.push(4)
        q.push(4, EXIST)  # overwrite the oldest
        assert q.peek() == 2
        assert q.pop() == 2 and list(q) == [3, 4]
        with pytest.raises(KeyError, match="empty"):
            q.pop()
        assert q.pop(None) is None
    with Map.create(MapType.STACK, 0, 4, 3, value_codec=IntCodec(4)) as s:
        for v in (1, 2, 3):
            s.push(v)
        assert [s.pop(), s.pop(), s.peek()] == [3, 2, 1]


def test_bloom_filter_membership():
    with Map.create(MapType.BLOOM_FILTER, 0, 4, 100, value_codec=IntCodec(4)) as b:
        assert isinstance(b, BloomFilterMap)
        for v in range(0, 50, 2):
            b.add(v)
        assert all(v in b for v in range(0, 50, 2))
        assert sum(v in b for v in range(1, 50, 2)) < 10  # false positives are rare


def test_every_kernel_map_type_can_be_created():
    btf_data, key_id, value_id = minimal_btf(8)
    with KernelBTF.load(btf_data) as btf, Map.create(MapType.ARRAY, 4, 4, 1) as inner:
        cases = {
            MapType.HASH: (4, 4, 4), MapType.ARRAY: (4, 4, 4), MapType.PROG_ARRAY: (4, 4, 4),
            MapType.PERF_EVENT_ARRAY: (4, 4, 0), MapType.PERCPU_HASH: (4, 4, 4), MapType.PERCPU_ARRAY: (4, 4, 4),
            MapType.STACK_TRACE: (4, 8 * 127, 16), MapType.CGROUP_ARRAY: (4, 4, 4), MapType.LRU_HASH: (4, 4, 4),
            MapType.LRU_PERCPU_HASH: (4, 4, 4), MapType.LPM_TRIE: (8, 4, 4), MapType.ARRAY_OF_MAPS: (4, 4, 4),
            MapType.HASH_OF_MAPS: (4, 4, 4), MapType.QUEUE: (0, 4, 4), MapType.STACK: (0, 4, 4),
            MapType.RINGBUF: (0, 0, 1 << 16), MapType.BLOOM_FILTER: (0, 4, 16),
            MapType.DEVMAP: (4, 4, 4), MapType.SOCKMAP: (4, 4, 4), MapType.SOCKHASH: (4, 4, 4),
            MapType.CPUMAP: (4, 4, 2), MapType.XSKMAP: (4, 4, 4), MapType.DEVMAP_HASH: (4, 4, 4),
            MapType.SK_STORAGE: (4, 8, 0), MapType.INODE_STORAGE: (4, 8, 0), MapType.TASK_STORAGE: (4, 8, 0),
            MapType.CGRP_STORAGE: (4, 8, 0),
        }
        for mtype, (ks, vs, n) in cases.items():
            extra = {}
            if mtype in (MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS):
                extra["inner_map"] = inner
            if mtype.name.endswith("_STORAGE"):
                extra.update(btf=btf, btf_key_type_id=key_id, btf_value_type_id=value_id)
            with Map.create(mtype, ks, vs, n, name=mtype.name.lower()[:15], **extra) as m:
                info = m.info()
                assert info.type == mtype and info.key_size == ks and info.value_size == vs, mtype
                if mtype == MapType.PERF_EVENT_ARRAY:
                    assert info.max_entries == NCPUS  # sized to the possible CPUs
        assert supports_map_type(MapType.RINGBUF)


def test_unknown_map_type_is_not_supported():
    with pytest.raises(NotSupportedError, match="map type 200"):
        Map.create(200, 4, 4, 1)
    assert isinstance(supports_map_type(MapType.RHASH), bool)  # probing a type newer than the kernel must not raise


def test_parameter_mistakes_are_explained():
    with pytest.raises(MapError, match="power of 2"):
        Map.create(MapType.RINGBUF, 0, 0, 5000, name="rb")
    with pytest.raises(MapError, match="key_size must be 4"):
        Map.create(MapType.ARRAY, 8, 4, 1)
    with pytest.raises(MapError, match="inner_map"):
        Map.create(MapType.ARRAY_OF_MAPS, 4, 4, 1)
    with pytest.raises(MapError, match="need BTF"):
        Map.create(MapType.TASK_STORAGE, 4, 8, 0)
    with pytest.raises(KernelError, match="refused key_size=4 value_size=3"):
        Map.create(MapType.STACK_TRACE, 4, 3, 4, name="odd_stack")


def test_map_of_maps_and_prog_array_hold_objects_and_return_ids():
    with Map.create(MapType.ARRAY, 4, 4, 1, value_codec=IntCodec(4)) as inner, \
         Map.create(MapType.HASH_OF_MAPS, 4, 4, 4, inner_map=inner, key_codec=IntCodec(4)) as outer:
        assert isinstance(outer, MapOfMaps)
        outer[5] = inner
        assert outer[5] == inner.id
        with outer.inner(5) as again:
            again[0] = 42
        assert inner[0] == 42
    with Map.create(MapType.PROG_ARRAY, 4, 4, 2) as pa:
        assert isinstance(pa, ProgArray)
        with pytest.raises(MapError, match="expected a Map, Program"):
            pa[0] = 3.5
        with pytest.raises(MapError, match="no program named 'nope'"):
            pa[0] = "nope"


def test_batch_lookup_delete_update():
    with Map.create(MapType.HASH, 4, 4, 2000, key_codec=IntCodec(4), value_codec=IntCodec(4)) as m:
        m.update_batch({i: i * i for i in range(1500)})
        got = {int.from_bytes(k, "little"): int.from_bytes(v, "little") for k, v in m.lookup_batch(chunk=100)}
        assert got == {i: i * i for i in range(1500)}
        assert dict(m.items()) == got
        assert m.delete_batch(list(range(0, 1500, 2))) == 750
        assert m.count() == 750 and 3 in m and 2 not in m
        # a missing key in the middle does not stop the rest from going
        assert m.delete_batch([1, 2, 3]) == 2
        drained = dict((int.from_bytes(k, "little"), v) for k, v in m.lookup_batch(delete=True))
        assert len(drained) == 748 and m.count() == 0


def test_iteration_survives_concurrent_deletes():
    with Map.create(MapType.HASH, 4, 4, 256, key_codec=IntCodec(4), value_codec=IntCodec(4)) as m:
        for i in range(200):
            m[i] = i
        seen = []
        for k in m.keys():
            seen.append(k)
            m.delete(k)  # deleting the current key makes the kernel restart the walk
            if k % 3 == 0:
                m.delete((k + 101) % 200)  # and delete some we have not seen yet
        assert len(seen) == len(set(seen))  # never the same key twice
        assert m.count() == 0
        assert all(k in range(200) for k in seen)


def test_clear_hash_and_queue():
    with Map.create(MapType.HASH, 4, 4, 64, key_codec=IntCodec(4), value_codec=IntCodec(4)) as m:
        m.update_batch((i, i) for i in range(50))
        m.clear()
        assert m.count() == 0
    with Map.create(MapType.QUEUE, 0, 4, 8, value_codec=IntCodec(4)) as q:
        q.push(1)
        q.push(2)
        q.clear()
        assert q.peek() is None


def test_pin_from_pin_from_id_and_unpin():
    path = f"/sys/fs/bpf/pybpf_test_map_{os.getpid()}"
    with Map.create(MapType.HASH, 4, 4, 4, name="pinned", key_codec=IntCodec(4), value_codec=IntCodec(4)) as m:
        m[1] = 2
        m.pin(path)
        try:
            with pytest.raises(KernelError, match="exists"):
                m.pin(path)
            with Map.from_pin(path, key_codec=IntCodec(4), value_codec=IntCodec(4)) as p:
                assert p[1] == 2 and p.name == "pinned" and p.pinned_path == path
            mid = m.id
            assert mid in set(map_ids())
            with Map.from_id(mid) as byid:
                assert byid.info().id == mid and byid.key_size == 4
        finally:
            m.unpin()
        assert not os.path.exists(path)
    with pytest.raises(KernelError, match="no pinned map"):
        Map.from_pin(path)


def test_from_spec_pins_by_name_and_reuses():
    class Spec:
        name = f"spec{os.getpid() % 100000}"
        type = MapType.ARRAY
        key_size, value_size, max_entries, flags = 4, 8, 2, 0
        pinning = 1

    root = "/sys/fs/bpf"
    first = Map.from_spec(Spec, pin_root=root, key_codec=IntCodec(4), value_codec=IntCodec(8))
    try:
        first[1] = 77
        with Map.from_spec(Spec, pin_root=root, key_codec=IntCodec(4), value_codec=IntCodec(8)) as again:
            assert again[1] == 77 and again.id == first.id
        Spec.value_size = 4
        with pytest.raises(MapError, match="value_size 8 \\(spec wants 4\\)"):
            Map.from_spec(Spec, pin_root=root)
    finally:
        first.unpin()
        first.close()


def test_struct_codec_named_fields():
    ev = StructCodec("IxxxxQ", ["pid", "count"], "Stat")
    with Map.create(MapType.HASH, 4, 16, 4, key_codec=IntCodec(4), value_codec=ev) as m:
        m[1] = {"pid": 5, "count": 6}
        v = m[1]
        assert (v.pid, v.count) == (5, 6)
        assert m.lookup_raw((1).to_bytes(4, "little")) == struct.pack("<I4xQ", 5, 6)


def test_ringbuf_map_type_and_no_lookup():
    with Map.create(MapType.RINGBUF, 0, 0, 1 << 16, name="rb") as rb:
        assert isinstance(rb, RingBuf)
        with pytest.raises(MapError, match="not supported on RINGBUF"):
            rb.lookup_raw(None)


def test_close_releases_fd():
    before = open_fds()
    m = Map.create(MapType.HASH, 4, 4, 4)
    fd = m.fd
    assert fd in open_fds()
    m.close()
    m.close()  # twice is fine
    assert open_fds() == before
    with pytest.raises(Exception, match="closed"):
        m.fd
