"""Options of ``spec.load(backend="kernel")``: maps the caller already has (``reuse_maps``, libbpf's
bpf_map__reuse_fd) and ``__kconfig`` answers given as a mapping."""

from __future__ import annotations

import gzip
import os
import re
import shutil

import pytest

from conftest import compile_bpf
from kernel_testlib import PREAMBLE, open_fds

from pybpf.errors import MapError, ObjectError, VerifierError
from pybpf.kernel import IntCodec, Map, MapType
from pybpf.object import ObjectSpec

pytestmark = pytest.mark.kernel

# An XDP program that adds the packet length to counts[0]: run with BPF_PROG_TEST_RUN, no hook needed.
ADD_LENGTH = r"""
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1); __type(key, __u32); __type(value, __u64); } counts SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 8); __type(key, __u32); __type(value, __u32); } unused SEC(".maps");
SEC("xdp")
int add_length(struct xdp_md *ctx)
{
    __u32 k = 0;
    __u64 *v = bpf_map_lookup_elem(&counts, &k);
    if (v)
        __sync_fetch_and_add(v, ctx->data_end - ctx->data);
    return XDP_PASS;
}
"""


@pytest.fixture(scope="module")
def add_length():
    return compile_bpf(PREAMBLE + ADD_LENGTH, name="reuse_maps")


def _counts(value_size: int = 8, max_entries: int = 1) -> Map:
    return Map.create(MapType.ARRAY, 4, value_size, max_entries, name="counts", key_codec=IntCodec(4),
                      value_codec=IntCodec(value_size))


def test_a_reused_map_is_the_one_the_program_writes(add_length):
    fds = open_fds()
    with _counts() as mine:
        mine[0] = 1000
        with ObjectSpec.from_file(add_length).load(backend="kernel", reuse_maps={"counts": mine}) as obj:
            assert obj.maps["counts"].id == mine.id and obj.maps["counts"].fd != mine.fd
            assert obj.maps["unused"].id != mine.id  # the others are created as usual
            for size in (64, 100):
                assert obj.programs["add_length"].test_run(bytes(size)).retval == 2  # XDP_PASS
            assert mine[0] == 1164  # the program added into the caller's map, on top of its value
            obj.maps["counts"][0] = 7  # and the object's handle is the same map, decoded through BTF
            assert mine[0] == 7
        assert not mine.closed and mine[0] == 7  # the caller keeps the map
    assert open_fds() == fds


@pytest.mark.parametrize("value_size, max_entries, differs", [
    (4, 1, "value_size 4 (the object wants 8)"),
    (8, 2, "max_entries 2 (the object wants 1)"),
])
def test_an_incompatible_map_is_refused(add_length, value_size, max_entries, differs):
    fds = open_fds()
    with _counts(value_size, max_entries) as wrong:
        with pytest.raises(MapError, match=re.escape(f"map 'counts': the map given as reuse_maps['counts'] is "
                                                     f"not compatible: {differs}")):
            ObjectSpec.from_file(add_length).load(backend="kernel", reuse_maps={"counts": wrong})
        assert not wrong.closed
    assert open_fds() == fds  # nothing of the failed load stays open


def test_a_map_of_another_type_is_refused(add_length):
    fds = open_fds()
    with Map.create(MapType.HASH, 4, 8, 1, name="counts") as wrong:
        with pytest.raises(MapError, match=f"type {int(MapType.HASH)} \\(the object wants {int(MapType.ARRAY)}\\)"):
            ObjectSpec.from_file(add_length).load(backend="kernel", reuse_maps={"counts": wrong})
    assert open_fds() == fds


LPM = r"""
struct key { __u32 prefixlen; __u32 addr; };
struct { __uint(type, BPF_MAP_TYPE_LPM_TRIE); __uint(max_entries, 16); __type(key, struct key); __type(value, __u64); } routes SEC(".maps");
SEC("xdp")
int route(struct xdp_md *ctx) { struct key k = {32, 0x0100000a}; __u64 *v = bpf_map_lookup_elem(&routes, &k); return v ? *v : 0; }
"""


def test_an_lpm_trie_declared_without_no_prealloc_is_reusable():
    # the kernel insists on BPF_F_NO_PREALLOC for LPM tries and Map.create adds it: not a difference
    spec = ObjectSpec.from_file(compile_bpf(PREAMBLE + LPM, name="reuse_lpm"))
    assert int(spec.maps["routes"].flags) == 0
    with Map.create(MapType.LPM_TRIE, 8, 8, 16, name="routes", value_codec=IntCodec(8)) as mine:
        mine[(24).to_bytes(4, "little") + bytes([10, 0, 0, 0])] = 2  # 10.0.0.0/24 -> XDP_PASS
        with spec.load(backend="kernel", reuse_maps={"routes": mine}) as obj:
            assert obj.programs["route"].test_run(bytes(64)).retval == 2  # 10.0.0.1 matched the caller's entry


def test_reuse_maps_names_only_declared_open_maps(add_length):
    fds = open_fds()
    with _counts() as mine:
        with pytest.raises(ObjectError, match="reuse_maps names 'count', which the object does not declare "
                                              "\\(maps: counts, unused\\)"):
            ObjectSpec.from_file(add_length).load(backend="kernel", reuse_maps={"count": mine})
    with pytest.raises(MapError, match="reuse_maps\\['counts'\\] is closed; give an open pybpf.kernel.Map"):
        ObjectSpec.from_file(add_length).load(backend="kernel", reuse_maps={"counts": mine})
    with pytest.raises(MapError, match="reuse_maps\\['counts'\\] is 5, not a Map; give an open pybpf.kernel.Map"):
        ObjectSpec.from_file(add_length).load(backend="kernel", reuse_maps={"counts": 5})
    assert open_fds() == fds


# --- a given map the object declares pinned by name ----------------------------------

PINNED = r"""
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1); __type(key, __u32); __type(value, __u64);
         __uint(pinning, LIBBPF_PIN_BY_NAME); } counts SEC(".maps");
SEC("xdp")
int add_length(struct xdp_md *ctx)
{
    __u32 k = 0;
    __u64 *v = bpf_map_lookup_elem(&counts, &k);
    if (v)
        __sync_fetch_and_add(v, ctx->data_end - ctx->data);
    return XDP_PASS;
}
"""
# the same map and a second program the verifier refuses (it reads past the packet): a load that fails late
PINNED_BROKEN = PINNED + r"""
SEC("xdp")
int overread(struct xdp_md *ctx) { return *(__u8 *)(long)(ctx->data + 64); }
"""


@pytest.fixture
def pin_root():
    root = f"/sys/fs/bpf/pybpf_reuse_{os.getpid()}"
    os.mkdir(root)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def pinned_spec():
    return compile_bpf(PREAMBLE + PINNED, name="reuse_pinned")


def test_a_given_map_declared_pinned_is_pinned_there_and_kept_like_a_created_one(pinned_spec, pin_root):
    path = os.path.join(pin_root, "counts")
    fds = open_fds()
    with _counts() as mine:
        with ObjectSpec.from_file(pinned_spec).load(backend="kernel", pin_root=pin_root,
                                                    reuse_maps={"counts": mine}) as obj:
            with Map.from_pin(path) as pinned:
                assert pinned.id == mine.id == obj.maps["counts"].id
        # a created pinned map outlives the object's close(): so does the given one's pin
        assert os.path.exists(path) and not mine.closed
        # a second object loaded by pin alone finds the caller's map and its program writes into it
        with ObjectSpec.from_file(pinned_spec).load(backend="kernel", pin_root=pin_root) as again:
            assert again.maps["counts"].id == mine.id
            again.programs["add_length"].test_run(bytes(64))
        assert mine[0] == 64
    os.unlink(path)
    assert open_fds() == fds


def test_a_failed_load_removes_the_pin_it_made_for_a_given_map(pin_root):
    spec = ObjectSpec.from_file(compile_bpf(PREAMBLE + PINNED_BROKEN, name="reuse_pinned_broken"))
    path = os.path.join(pin_root, "counts")
    fds = open_fds()
    with _counts() as mine:
        with pytest.raises(VerifierError, match="overread"):
            spec.load(backend="kernel", pin_root=pin_root, reuse_maps={"counts": mine})
        assert not os.path.exists(path) and not mine.closed
    assert open_fds() == fds


def test_another_map_pinned_where_a_given_map_belongs_is_refused(pinned_spec, pin_root):
    path = os.path.join(pin_root, "counts")
    fds = open_fds()
    with _counts() as mine, _counts() as other:
        other.pin(path)
        spec = ObjectSpec.from_file(pinned_spec)
        message = (f"map 'counts' of {spec.name}: the map given as reuse_maps['counts'] (id {mine.id}) is declared "
                   f"pinned by name, but {path} holds ARRAY map 'counts' id {other.id}; remove that pin "
                   f"(rm {path}) or give that map (Map.from_pin('{path}'))")
        with pytest.raises(MapError, match=re.escape(message)):
            spec.load(backend="kernel", pin_root=pin_root, reuse_maps={"counts": mine})
        with Map.from_pin(path) as pinned:
            assert pinned.id == other.id  # the pin is left as it was
        assert os.listdir(pin_root) == ["counts"] and not mine.closed
    os.unlink(path)
    assert open_fds() == fds


def test_the_given_map_already_pinned_there_loads(pinned_spec, pin_root):
    path = os.path.join(pin_root, "counts")
    fds = open_fds()
    with _counts() as mine:
        mine.pin(path)
        with ObjectSpec.from_file(pinned_spec).load(backend="kernel", pin_root=pin_root,
                                                    reuse_maps={"counts": mine}) as obj:
            obj.programs["add_length"].test_run(bytes(100))
            assert mine[0] == 100
        with Map.from_pin(path) as pinned:
            assert pinned.id == mine.id
    os.unlink(path)
    assert open_fds() == fds


# --- a given map-in-map ----------------------------------------------------------------

MAP_IN_MAP = r"""
struct inner_map { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1); __type(key, __u32); __type(value, __u64); } inner_a SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS); __uint(max_entries, 2); __type(key, __u32);
         __array(values, struct inner_map); } outer SEC(".maps") = { .values = { [0] = &inner_a } };
SEC("xdp")
int read_slot0(struct xdp_md *ctx)
{
    __u32 k = 0;
    void *inner = bpf_map_lookup_elem(&outer, &k);
    if (!inner)
        return XDP_ABORTED;
    __u64 *v = bpf_map_lookup_elem(inner, &k);
    return v ? *v : XDP_ABORTED;
}
"""


def test_a_given_map_in_map_keeps_its_slots():
    # libbpf fills a map-in-map's declared slots only in a map it created (init_map_in_map_slots):
    # the caller's outer map keeps the inner map it holds, and the program reads that one
    spec = ObjectSpec.from_file(compile_bpf(PREAMBLE + MAP_IN_MAP, name="reuse_map_in_map"))
    fds = open_fds()
    with _counts() as template, _counts() as mine, \
            Map.create(MapType.ARRAY_OF_MAPS, 4, 4, 2, name="outer", inner_map=template) as outer:
        mine[0] = 2  # XDP_PASS
        outer[0] = mine
        with spec.load(backend="kernel", reuse_maps={"outer": outer}) as obj:
            assert obj.programs["read_slot0"].test_run(bytes(64)).retval == 2
            assert obj.maps["inner_a"].id != mine.id
        assert outer[0] == mine.id and 1 not in outer
    assert open_fds() == fds


# --- kconfig as a mapping ------------------------------------------------------------

KCONFIG = r"""
extern unsigned int CONFIG_HZ __kconfig;
extern int CONFIG_PYBPF_TEST_ONLY __kconfig;
extern _Bool LINUX_HAS_BPF_COOKIE __kconfig __weak;
__u64 seen_hz, seen_test_only, seen_cookie;
SEC("xdp")
int copy_config(struct xdp_md *ctx)
{
    seen_hz = CONFIG_HZ;
    seen_test_only = CONFIG_PYBPF_TEST_ONLY;
    seen_cookie = LINUX_HAS_BPF_COOKIE;
    return XDP_PASS;
}
"""


def _running_config(option: str) -> str:
    with gzip.open("/proc/config.gz", "rt") as f:
        return re.search(rf"^{option}=(.*)$", f.read(), re.M).group(1)


@pytest.mark.skipif(not os.path.exists("/proc/config.gz"), reason="the running kernel's config is not readable")
def test_kconfig_mapping_answers_first_and_the_kernel_config_fills_the_rest():
    spec = ObjectSpec.from_file(compile_bpf(PREAMBLE + KCONFIG, name="kconfig_mapping"))
    kconfig = {"CONFIG_PYBPF_TEST_ONLY": 12345, "LINUX_HAS_BPF_COOKIE": 0}
    with spec.load(backend="kernel", kconfig=kconfig) as obj:
        assert obj.programs["copy_config"].test_run(bytes(64)).retval == 2
        # what the program read in the kernel: the mapping's answers, and CONFIG_HZ from the running kernel
        assert obj.bss["seen_test_only"] == 12345 and obj.bss["seen_cookie"] == 0
        assert obj.bss["seen_hz"] == int(_running_config("CONFIG_HZ"))
        assert obj.kconfig["CONFIG_PYBPF_TEST_ONLY"] == 12345
    with spec.load(backend="kernel", kconfig={"CONFIG_HZ": 1000, "CONFIG_PYBPF_TEST_ONLY": -1}) as obj:
        obj.programs["copy_config"].test_run(bytes(64))
        assert obj.bss["seen_hz"] == 1000 and obj.bss["seen_test_only"] == (1 << 64) - 1  # an int widened to u64
        assert obj.bss["seen_cookie"] == 1  # not in the mapping: probed (this kernel has bpf_get_attach_cookie)


def test_an_unanswered_strong_kconfig_extern_is_an_object_error():
    spec = ObjectSpec.from_file(compile_bpf(PREAMBLE + KCONFIG, name="kconfig_mapping"))
    fds = open_fds()
    with pytest.raises(ObjectError, match="kconfig extern 'CONFIG_PYBPF_TEST_ONLY' \\(strong\\) is not set"):
        spec.load(backend="kernel", kconfig={"CONFIG_HZ": 100})
    assert open_fds() == fds
