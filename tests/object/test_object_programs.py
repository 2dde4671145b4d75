"""Programs: several per section, subprograms appended per program, calls, function pointers, BTF.ext info."""

from __future__ import annotations

import pytest

import libbpf_ref
from conftest import compile_bpf
from pybpf.isa import CALL, LD_IMM64, PseudoCall, PseudoLoad
from pybpf.object import ObjectSpec, ProgType

SOURCE = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 4); __type(key, __u32); __type(value, __u64); } vals SEC(".maps");
int counter = 7;
const volatile int factor = 3;

static __noinline int leaf(int x) { return x * factor; }
static __noinline int mid(int x) { return leaf(x) + 1; }
__noinline int glob(int x) { counter++; return mid(x) + leaf(x); }
__attribute__((visibility("hidden"))) __noinline int hidden_glob(int x) { return x - 1; }
static int cb(__u32 idx, void *ctx) { *(long *)ctx += idx; return 0; }

SEC("tp/syscalls/sys_enter_getpid")
int first(void *ctx)
{
    long sum = 0;
    bpf_loop(4, cb, &sum, 0);
    return glob(1) + (int)sum + hidden_glob(3);
}

SEC("tp/syscalls/sys_enter_getpid")
int second(void *ctx)
{
    return mid(2);
}

SEC("xdp")
int third(struct xdp_md *ctx)
{
    __u32 k = 0;
    __u64 *v = bpf_map_lookup_elem(&vals, &k);
    return v ? leaf(*v) : XDP_PASS;
}

SEC("socket")
int lonely(void *ctx)
{
    return 0;
}

char LICENSE[] SEC("license") = "GPL";
"""


@pytest.fixture(scope="module")
def obj() -> ObjectSpec:
    return ObjectSpec.from_file(compile_bpf(SOURCE, name="programs"), name="programs")


def test_entry_programs_and_sections(obj):
    assert list(obj.programs) == ["first", "second", "third", "lonely"]
    assert obj.programs["first"].section == obj.programs["second"].section == "tp/syscalls/sys_enter_getpid"
    assert obj.programs["third"].type == ProgType.XDP
    assert obj.license == "GPL" and all(p.license == "GPL" for p in obj.programs.values())
    assert obj.programs["first"].global_function
    # .text functions are subprograms, never programs of their own
    assert not {"leaf", "mid", "glob", "cb", "hidden_glob"} & set(obj.programs)
    assert {name for name, sec, _off, _size in obj.functions if sec == ".text"} == {
        "leaf", "mid", "glob", "cb", "hidden_glob"}


def test_each_program_gets_only_the_subprograms_it_reaches(obj):
    names = {p.name: [f.name for f in p.functions] for p in obj.programs.values()}
    assert names["first"][0] == "first" and set(names["first"]) == {"first", "cb", "glob", "mid", "leaf", "hidden_glob"}
    # depth-first in order of first use: mid is appended before leaf because glob calls mid first
    assert names["first"].index("mid") < names["first"].index("leaf")
    assert names["second"] == ["second", "mid", "leaf"]
    assert names["third"] == ["third", "leaf"]
    assert names["lonely"] == ["lonely"]


def _function_starts(prog) -> dict[int, str]:
    return {f.slot: f.name for f in prog.functions}


@pytest.mark.parametrize("name", ["first", "second", "third"])
def test_calls_and_function_pointers_land_on_function_starts(obj, name):
    prog = obj.programs[name]
    starts = _function_starts(prog)
    seen = set()
    slot = 0
    for insn in prog.instructions:
        if insn.opcode == CALL and insn.src == PseudoCall.CALL:
            seen.add(starts[slot + insn.imm + 1])
        elif insn.opcode == LD_IMM64 and insn.src == PseudoLoad.FUNC:
            seen.add(starts[slot + (insn.imm if insn.imm < 1 << 31 else insn.imm - (1 << 32)) + 1])
        slot += insn.slots
    assert seen == set(starts.values()) - {name}
    spans = prog.functions
    assert spans[0].slot == 0 and all(a.slot + a.slots == b.slot for a, b in zip(spans, spans[1:]))
    assert spans[-1].slot + spans[-1].slots == prog.instructions.slot_count


def test_callback_is_a_function_pointer(obj):
    prog = obj.programs["first"]
    fptrs = [i for i in prog.instructions if i.opcode == LD_IMM64 and i.src == PseudoLoad.FUNC]
    assert len(fptrs) == 1


def test_func_info_follows_each_copy(obj):
    for prog in obj.programs.values():
        assert [fi.insn_off for fi in prog.func_info] == [f.slot for f in prog.functions]
        assert [obj.btf[fi.type_id].name for fi in prog.func_info] == [f.name for f in prog.functions]


def test_line_info_rebased_into_each_function(obj):
    for prog in obj.programs.values():
        total = prog.instructions.slot_count
        for span in prog.functions:
            lines = [li for li in prog.line_info if span.slot <= li.insn_off < span.slot + span.slots]
            assert lines and lines[0].insn_off == span.slot
            assert [li.insn_off for li in lines] == sorted(li.insn_off for li in lines)
            assert all(li.file.endswith(".c") and li.line > 0 for li in lines)
        assert all(0 <= li.insn_off < total for li in prog.line_info)
    # the source text of a line is what clang recorded
    assert any("bpf_loop" in li.source for li in obj.programs["first"].line_info)


def test_hidden_global_is_marked_static_for_btf(obj):
    assert obj.programs["first"].functions[0].name == "first"
    hidden = [f for f in obj.functions if f[0] == "hidden_glob"]
    assert hidden


def test_map_and_data_references_are_placeholders(obj):
    third = obj.programs["third"]
    (ref,) = [r for r in third.map_references if not r.value]
    assert ref.map == "vals" and not ref.value
    insn = third.instruction_at(ref.slot)
    assert insn.src == PseudoLoad.MAP_IDX and insn.imm == list(obj.maps).index("vals")
    data_refs = [r for r in third.map_references + obj.programs["first"].map_references if r.value]
    assert {r.map for r in data_refs} == {"programs.rodata", "programs.data"}
    for prog in obj.programs.values():
        for r in prog.map_references:
            insn = prog.instruction_at(r.slot)
            if r.value:
                assert insn.src == PseudoLoad.MAP_IDX_VALUE
                assert insn.imm >> 32 == r.offset and insn.imm & 0xFFFFFFFF == list(obj.maps).index(r.map)


def test_link_instructions_uses_backend_fds_and_poisons_missing_maps(obj):
    fds = {name: 40 + i for i, name in enumerate(obj.maps)}
    prog = obj.link_instructions("third", fds)
    loads = [i for i in prog if i.opcode == LD_IMM64 and i.src in (PseudoLoad.MAP_FD, PseudoLoad.MAP_VALUE)]
    assert {i.imm & 0xFFFFFFFF for i in loads} == {fds["vals"], fds["programs.rodata"]}
    del fds["vals"]
    poisoned = obj.link_instructions("third", fds)
    calls = [i for i in poisoned if i.opcode == CALL and i.imm == 2001000000 + list(obj.maps).index("vals")]
    assert len(calls) == 2 and poisoned.slot_count == obj.programs["third"].instructions.slot_count
    slot = poisoned.slot_of(list(poisoned).index(calls[0]))
    assert "uses map 'vals'" in obj.explain_poison("third", slot, calls[0].imm)


@pytest.mark.kernel
@pytest.mark.skipif(not libbpf_ref.available(), reason="libbpf.so.1 is not installed")
def test_instructions_are_byte_identical_to_what_libbpf_loads(obj):
    lib = libbpf_ref.LibBPF()
    progs, maps, log, error = lib.view(obj.path, load=True)
    assert not error, "\n".join(log[-20:])
    assert set(lib.instructions) == set(obj.programs)
    for name, code in lib.instructions.items():
        assert obj.link_instructions(name, lib.map_fds).encode() == code, name
    assert obj.kernel_btf().to_bytes() == lib.btf  # hidden_glob's FUNC made static, DATASECs sized


STATIC_AND_CROSS_SECTION = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
static __attribute__((noinline)) SEC("socket") int static_prog(void *ctx) { return bpf_get_prandom_u32(); }
SEC("socket") int caller(void *ctx) { return static_prog(ctx) + 1; }
"""


def test_static_programs_and_calls_across_sections_like_cilium():
    """libbpf refuses both; cilium/ebpf accepts them, and so does pybpf."""
    spec = ObjectSpec.from_file(compile_bpf(STATIC_AND_CROSS_SECTION, name="static_prog"))
    assert not spec.programs["static_prog"].global_function
    assert [f.name for f in spec.programs["caller"].functions] == ["caller", "static_prog"]
