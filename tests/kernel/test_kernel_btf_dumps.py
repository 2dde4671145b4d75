"""`pybpf map dump/lookup` and `pybpf prog dump xlated` on objects with BTF, compared byte for byte
with bpftool on the same kernel objects.

bpftool (libbpf) loads one object with BTF-typed maps (hash, array, per-CPU hash and array, LRU
hash, the .rodata and .bss of global data), a program with two sub-programs and one with a bpf_loop
callback and kfunc calls, all with line info; the test fills the maps with pybpf and asks both
tools for the same dumps, plain and JSON.  The same object loaded by pybpf's own loader must dump
the same way too.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess

import pytest

from conftest import compile_bpf, run_cli
from kernel_testlib import PREAMBLE

from pybpf.kernel import Map, ensure_bpffs
from pybpf.kernel.fs import possible_cpu_count

pytestmark = pytest.mark.kernel

SOURCE = PREAMBLE + r"""
#include <stdbool.h>

enum color { RED = 0, GREEN = 1, BLUE = -3 };
enum big { SMALL = 1, HUGE = 0x100000000ULL };
typedef char label_t;
typedef const volatile __u32 cvu32;

struct point { __s16 x; __s16 y; };
struct key { __u32 pid; char comm[8]; };
struct value {
    __u64 count;
    __s32 delta;
    enum color color;
    char name[12];
    struct point where;
    struct point path[2];
    __u8 raw[3];
    bool on;
    unsigned int low:3, mid:9, high:20;
    union { __u32 as_int; __u8 as_bytes[4]; } u;
    struct { __u16 a; __u16 b; };
    label_t tag[4];
    char text[4];
    void *ptr;
    union { __u32 bits; __s32 signed_bits; };  /* a second anonymous member: two "" names in one object */
};
struct odd {
    unsigned __int128 wide;
    enum big b;
    cvu32 q;
    char c;
    signed char sc;
    unsigned char uc;
    long long neg:40;
    char empty[0];
};
struct with_float { double d; float f; };

struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 8); __type(key, struct key); __type(value, struct value); } by_task SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 3); __type(key, __u32); __type(value, struct value); } slots SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_PERCPU_HASH); __uint(max_entries, 4); __type(key, enum color); __type(value, struct point); } per_color SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY); __uint(max_entries, 2); __type(key, __u32); __type(value, __u64); } totals SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_LRU_HASH); __uint(max_entries, 4); __type(key, __u64); __type(value, struct odd); } odd SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 2); __type(key, __u32); __type(value, struct with_float); } floats SEC(".maps");

const volatile int scale = 3;
int hits;

static __noinline int bump(struct point *p, int by)
{
    p->x += by * scale;
    return p->x;
}

__noinline int global_helper(int x)
{
    return x * 2 + hits;
}

struct sum { int total; };

static long add_one(__u32 i, void *data)
{
    ((struct sum *)data)->total += i;
    return 0;
}

__noinline int zero_args(void)
{
    return hits + 1;
}

extern void bpf_rcu_read_lock(void) __ksym;
extern void bpf_rcu_read_unlock(void) __ksym;

/* a callback (ld_imm64 of a sub-program; the kernel inlines bpf_loop into a call), kfuncs, printk's
   format in .rodata */
SEC("tracepoint/syscalls/sys_enter_getppid")
int loops(void *ctx)
{
    struct sum s = {0};
    bpf_loop(10, add_one, &s, 0);
    bpf_rcu_read_lock();
    bpf_rcu_read_unlock();
    bpf_printk("total %d", s.total);
    return (s.total & 1) + zero_args();
}

SEC("tracepoint/syscalls/sys_enter_getppid")
int fill(void *ctx)
{
    __u32 zero = 0;
    struct value *v = bpf_map_lookup_elem(&slots, &zero);
    if (!v)
        return 0;
    hits += global_helper(bump(&v->where, 2));
    __u64 *t = bpf_map_lookup_elem(&totals, &zero);
    if (t)
        *t += 1;
    return 0;
}
"""

# maps whose dumps must equal bpftool's exactly (libbpf pins .rodata and .bss as OBJECT_rodata, OBJECT_bss)
EXACT_MAPS = ("by_task", "slots", "per_color", "totals", "odd", "rodata", "bss")


def _value(i: int) -> bytes:
    """A struct value with every member set, differently per entry: printable and unprintable char
    arrays, a char array without a terminator, negative enum, bitfields, union, anonymous members."""
    v = bytearray(80)
    struct.pack_into("<Qi", v, 0, 10**12 + i, -5 * i)
    struct.pack_into("<i", v, 12, (0, 1, -3)[i])
    v[16:28] = (b"name0".ljust(12, b"\0"), b"name1".ljust(12, b"\0"), b"ab\x01cd".ljust(12, b"\0"))[i]
    struct.pack_into("<6h", v, 28, -1, 2, 3, -4, 5, 6 + i)
    v[40:43] = bytes([1, 2, 255])
    v[43] = i % 2
    struct.pack_into("<I", v, 44, 5 | (300 << 3) | (0xABCDE << 12))
    struct.pack_into("<I", v, 48, 0x01020304 + i)
    struct.pack_into("<HH", v, 52, 7, 8)
    v[56:60] = b"xy\0\0"
    v[60:64] = (b"\xc3\xa9\0\0", b"full", b"\0\0\0\0")[i]
    struct.pack_into("<Q", v, 64, 0 if i == 0 else 0xFFFF888812345678)
    struct.pack_into("<I", v, 72, 0xFFFFFFF0 + i)
    return bytes(v)


def _odd(i: int) -> bytes:
    v = bytearray(48)
    v[0:16] = (2**100 + i).to_bytes(16, "little")
    struct.pack_into("<QI", v, 16, (1, 0x100000000, 5)[i], 0xFFFFFFFF)
    v[28:31] = bytes(((65, 0xFF, 200), (0, 65, 65), (200, 1, 0))[i])
    v[32:37] = ((1 << 40) - 1, 5, 1 << 39)[i].to_bytes(5, "little")
    return bytes(v)


@pytest.fixture(scope="module")
def loaded():
    """The object loaded and pinned by bpftool, its maps filled by pybpf; pinned paths by name."""
    obj = compile_bpf(SOURCE, name="btf_dumps")
    root = os.path.join(ensure_bpffs(), f"pybpf_btf_dumps_{os.getpid()}")
    os.makedirs(root)
    try:
        subprocess.run(["bpftool", "prog", "loadall", str(obj), f"{root}/progs", "pinmaps", f"{root}/maps"],
                       check=True, capture_output=True)
        maps = {name.rpartition("_")[2] if name.endswith(("_rodata", "_bss")) else name: f"{root}/maps/{name}"
                for name in os.listdir(f"{root}/maps")}
        ncpus = possible_cpu_count()
        with Map.from_pin(maps["by_task"]) as m:
            for i in range(3):
                m.update_raw(struct.pack("<I", 100 + i) + f"task{i}".encode().ljust(8, b"\0"), _value(i))
        with Map.from_pin(maps["slots"]) as m:
            for i in range(3):
                m.update_raw(struct.pack("<I", i), _value(i))
        with Map.from_pin(maps["per_color"]) as m:  # a different value on every CPU (8-byte stride)
            for key, (x, y) in ((-3, (1, -2)), (5, (3, 4))):
                m.update_raw(struct.pack("<i", key),
                             b"".join(struct.pack("<hh4x", x + cpu, y - cpu) for cpu in range(ncpus)))
        with Map.from_pin(maps["totals"]) as m:
            m.update_raw(struct.pack("<I", 1), b"".join(struct.pack("<Q", 99 * (cpu + 1)) for cpu in range(ncpus)))
        with Map.from_pin(maps["odd"]) as m:
            for i in range(3):
                m.update_raw(struct.pack("<Q", i), _odd(i))
        with Map.from_pin(maps["bss"]) as m:  # int hits
            m.update_raw(struct.pack("<I", 0), struct.pack("<i", -42))
        with Map.from_pin(maps["floats"]) as m:
            m.update_raw(struct.pack("<I", 1), struct.pack("<df4x", 1.5, -2.25))
        yield {"root": root, "maps": maps, "progs": f"{root}/progs"}
    finally:
        shutil.rmtree(root, ignore_errors=True)


def bpftool_text(*args: str) -> str:
    out = subprocess.run(["bpftool", *args], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout


def pybpf_text(*args: str) -> str:
    out = run_cli(*args)
    assert out.returncode == 0, out.stderr.decode()
    return out.stdout.decode()


@pytest.mark.parametrize("name", EXACT_MAPS)
def test_map_dump_with_btf_equals_bpftool(loaded, name):
    """Structs, nested structs and arrays of them, char arrays (strings, and numbers where bpftool
    finds them unprintable or unterminated), enums by name (negative, 64-bit), bitfields and 40-bit
    integers in hex, __int128, bool, unions, anonymous members, typedef'd char arrays, pointers,
    per-CPU values, global data sections: plain (bpftool's pretty JSON) and -j, byte for byte."""
    path = loaded["maps"][name]
    plain = bpftool_text("map", "dump", "pinned", path)
    assert '"value' in plain  # the map has entries to compare
    assert pybpf_text("map", "dump", "pinned", path) == plain
    assert pybpf_text("map", "dump", "pinned", path, "--json") == bpftool_text("-j", "map", "dump", "pinned", path)
    assert pybpf_text("map", "dump", "pinned", path, "--json", "--pretty") == \
        bpftool_text("-p", "map", "dump", "pinned", path)


def test_map_dump_values_are_the_ones_written(loaded):
    """What both tools agree on is also right: the decoded values are what the test stored."""
    text = pybpf_text("map", "dump", "pinned", loaded["maps"]["by_task"], "--json")
    dump = json.loads(text)
    entries = {e["formatted"]["key"]["pid"]: e["formatted"]["value"] for e in dump}
    assert sorted(entries) == [100, 101, 102]
    assert entries[100]["name"] == "name0" and entries[100]["color"] == "RED" and entries[102]["color"] == "BLUE"
    assert entries[102]["name"][:3] == [97, 98, 1]  # not printable: numbers, as bpftool shows it
    assert entries[101]["text"] == [102, 117, 108, 108]  # no terminator: numbers
    assert entries[101]["u"] == {"as_int": 0x01020305, "as_bytes": [5, 3, 2, 1]}
    # both anonymous members, under the same name "" (json.loads would keep only the last)
    assert '"":{"a":7,"b":8},"tag":' in text and '"ptr":0,"":{"bits":4294967280,"signed_bits":-16}}' in text
    per_cpu = json.loads(pybpf_text("map", "dump", "pinned", loaded["maps"]["per_color"], "--json"))
    blue = next(e["formatted"] for e in per_cpu if e["formatted"]["key"] == "BLUE")
    bss = json.loads(pybpf_text("map", "dump", "pinned", loaded["maps"]["bss"], "--json"))
    assert bss[0]["formatted"] == {"value": {".bss": [{"hits": -42}]}}
    assert [v["value"] for v in blue["values"]] == [{"x": 1 + cpu, "y": -2 - cpu}
                                                   for cpu in range(possible_cpu_count())]


@pytest.mark.parametrize("name,key", [("by_task", ["hex", "65", "00", "00", "00", "74", "61", "73", "6b",
                                                   "31", "00", "00", "00"]),
                                      ("slots", ["2", "0", "0", "0"]), ("per_color", ["5", "0", "0", "0"])])
def test_map_lookup_with_btf_equals_bpftool(loaded, name, key):
    path = loaded["maps"][name]
    args = ("map", "lookup", "pinned", path, "key", *key)
    assert pybpf_text(*args) == bpftool_text(*args)
    assert pybpf_text(*args, "--json") == bpftool_text("-j", *args)


def test_float_members_print_as_numbers_where_bpftool_71_gives_up(loaded):
    """The one deliberate difference: bpftool 7.1's BTF dumper has no BTF_KIND_FLOAT, prints
    '(unsupported-kind' (unbalanced, invalid JSON) and drops the rest of the struct; pybpf prints
    the numbers, so its output stays valid JSON."""
    path = loaded["maps"]["floats"]
    theirs = bpftool_text("-j", "map", "dump", "pinned", path)
    ours = json.loads(pybpf_text("map", "dump", "pinned", path, "--json"))
    assert ours[0]["formatted"] == {"key": 1, "value": {"d": 1.5, "f": -2.25}}
    if "(unsupported-kind" in theirs:  # the raw bytes before it still agree
        raw = json.dumps({k: ours[0][k] for k in ("key", "value")}, separators=(",", ":"))
        assert theirs.split(',"formatted":')[0] == "[" + raw[:-1]
    else:  # a bpftool that knows floats: then all of it must agree
        assert json.loads(theirs) == ours


PROTOTYPES = {
    "fill": ["int fill(void * ctx):", "int bump(struct point * p, int by):", "int global_helper(int x):"],
    "loops": ["int loops(void * ctx):", "long add_one(__u32 i, void * data):", "int zero_args():"],
}


@pytest.mark.parametrize("prog", PROTOTYPES)
@pytest.mark.parametrize("options", [(), ("linum",), ("opcodes",)])  # bpftool 7.1 takes one of them
def test_prog_dump_xlated_equals_bpftool(loaded, prog, options):
    """Every line: prototypes of the program and its sub-programs (static and global) from BTF,
    source lines, calls to sub-programs by symbol, helper and kfunc calls, callbacks, map and
    global-data references, opcodes and file:line:column; plain and -j."""
    path = f"{loaded['progs']}/{prog}"
    plain = bpftool_text("prog", "dump", "xlated", "pinned", path, *options)
    assert [ln for ln in plain.splitlines() if ln.endswith("):")] == PROTOTYPES[prog]
    assert "call pc+" in plain and "map[id:" in plain and "][0]+" in plain
    if prog == "loops":
        assert "= subprog[+" in plain and "call bpf_rcu_read_lock#" in plain
    assert pybpf_text("prog", "dump", "xlated", "pinned", path, *options) == plain
    assert pybpf_text("prog", "dump", "xlated", "pinned", path, *options, "--json") == \
        bpftool_text("-j", "prog", "dump", "xlated", "pinned", path, *options)


def test_dumps_of_objects_pybpf_loaded_equal_bpftool():
    """The same object loaded by pybpf's own loader (its func and line info, its map BTF): bpftool
    reads it exactly as pybpf does."""
    from pybpf.object import ObjectSpec

    spec = ObjectSpec.from_file(compile_bpf(SOURCE, name="btf_dumps"))
    with spec.load(backend="kernel") as obj:
        slots = obj.maps["slots"]
        slots.update_raw(struct.pack("<I", 1), _value(1))
        for prog, options in (("fill", ()), ("fill", ("linum",)), ("loops", ())):
            args = ("prog", "dump", "xlated", "id", str(obj.programs[prog].id), *options)
            plain = bpftool_text(*args)
            assert plain.count("):\n") == len(PROTOTYPES[prog]) and "\n; " in plain  # functions, source lines
            assert pybpf_text(*args) == plain
            assert pybpf_text(*args, "--json") == bpftool_text("-j", *args)
        args = ("map", "dump", "id", str(slots.id))
        assert pybpf_text(*args) == bpftool_text(*args)
        assert pybpf_text(*args, "--json") == bpftool_text("-j", *args)


MAPS_OF_MAPS = PREAMBLE + r"""
struct inner { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1); __type(key, __u32); __type(value, __u32); } in1 SEC(".maps"), in2 SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS); __uint(max_entries, 3); __type(key, __u32); __array(values, struct inner); } outer SEC(".maps") = { .values = { &in1, 0, &in2 } };
struct { __uint(type, BPF_MAP_TYPE_HASH_OF_MAPS); __uint(max_entries, 3); __type(key, __u32); __array(values, struct inner); } houter SEC(".maps") = { .values = { [1] = &in1 } };
struct { __uint(type, BPF_MAP_TYPE_PROG_ARRAY); __uint(max_entries, 3); __type(key, __u32); __type(value, __u32); } jumps SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_getppid")
int jumper(void *ctx)
{
    __u32 k = 0;
    void *m = bpf_map_lookup_elem(&outer, &k);
    bpf_tail_call(ctx, &jumps, 0);
    return m != 0;
}
"""


def test_maps_of_maps_and_prog_arrays_like_bpftool():
    """Empty slots of prog arrays and maps of maps are left out, as bpftool leaves them out. The one
    difference is deliberate: for maps of maps pybpf prints the inner map's id the way bpftool 7.2 and
    later do ("inner_map_id: N" in plain text, an "inner_map_id" member in JSON), where bpftool 7.1
    prints the same 4 bytes as a hex value; everything else is bpftool 7.1's output."""
    root = os.path.join(ensure_bpffs(), f"pybpf_btf_mim_{os.getpid()}")
    os.makedirs(root)
    try:
        subprocess.run(["bpftool", "prog", "loadall", str(compile_bpf(MAPS_OF_MAPS, name="btf_dumps_mim")),
                        f"{root}/progs", "pinmaps", f"{root}/maps"], check=True, capture_output=True)
        subprocess.run(["bpftool", "map", "update", "pinned", f"{root}/maps/jumps", "key", "1", "0", "0", "0",
                        "value", "pinned", f"{root}/progs/jumper"], check=True)
        args = ("map", "dump", "pinned", f"{root}/maps/jumps")
        assert bpftool_text(*args).count('"key": ') == 1  # slots 0 and 2 are empty
        assert pybpf_text(*args) == bpftool_text(*args)
        assert pybpf_text(*args, "--json") == bpftool_text("-j", *args)
        for name, slots in (("outer", 2), ("houter", 1)):
            args = ("map", "dump", "pinned", f"{root}/maps/{name}")
            theirs = json.loads(bpftool_text("-j", *args))
            ours = json.loads(pybpf_text(*args, "--json"))
            assert len(theirs) == slots
            assert [{k: v for k, v in e.items() if k != "inner_map_id"} for e in ours] == theirs
            assert [e["inner_map_id"] for e in ours] == [int("".join(b[2:] for b in reversed(e["value"])), 16)
                                                         for e in theirs]
            plain = bpftool_text(*args).splitlines()
            for mine, entry, ref in zip(pybpf_text(*args).splitlines(), ours, plain):
                assert ref.startswith("key: ") and mine == ref.split("  value:")[0] + \
                    f"  inner_map_id: {entry['inner_map_id']} "
            assert pybpf_text(*args).splitlines()[slots:] == plain[slots:]  # "Found N elements"
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_wide_maps_without_btf_keep_bpftool_hex_layout():
    """Without BTF both tools print hex; keys and values over 16 bytes break into lines of 16 bytes in
    groups of 8, names on lines of their own, per CPU too."""
    from pybpf.kernel import MapType

    with Map.create(MapType.HASH, 20, 40, 4, name="wide") as wide, \
         Map.create(MapType.PERCPU_HASH, 4, 20, 4, name="wide_pcpu") as pcpu:
        wide.update_raw(bytes(range(20)), bytes(range(100, 140)))
        pcpu.update_raw(b"\1\0\0\0", b"".join(bytes(range(cpu, cpu + 20)) + bytes(4)
                                             for cpu in range(possible_cpu_count())))
        for m in (wide, pcpu):
            args = ("map", "dump", "id", str(m.id))
            plain = bpftool_text(*args)
            assert "\n10 11 12 13" in plain  # the 17th byte starts a line
            assert pybpf_text(*args) == plain
            assert pybpf_text(*args, "--json") == bpftool_text("-j", *args)
