"""CO-RE: all 13 relocation kinds, against the running kernel and against BTF files, checked against libbpf."""

from __future__ import annotations

from pathlib import Path

import pytest

import libbpf_ref
from conftest import compile_bpf
from pybpf.errors import CORERelocationError
from pybpf.isa import CALL, LD_IMM64
from pybpf.object import COREKind, ObjectSpec
from pybpf.btf import kernel_btf
from pybpf.object.core import apply_core

HERE = Path(__file__).resolve().parent
INCLUDE = ("-I", str(HERE))

SOURCE = r"""
#include <linux/types.h>
#include "core_types.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#ifndef bpf_core_field_signed  /* newer than libbpf 1.1's headers */
#define bpf_core_field_signed(field) __builtin_preserve_field_info(field, 3 /* BPF_FIELD_SIGNED */)
#endif

SEC("tp/syscalls/sys_enter_getpid")
int core_all(void *ctx)
{
    struct task_struct *t = (void *)bpf_get_current_task();
    struct task_struct___old *o = (void *)t;
    __u64 r = 0;

    r += BPF_CORE_READ(t, real_parent, tgid);
    r += BPF_CORE_READ(t, comm[1]);
    r += bpf_core_field_size(t->comm);
    r += bpf_core_field_exists(t->pid);
    r += bpf_core_field_exists(o->pybpf_no_such_field);
    r += bpf_core_field_signed(t->pid);
    r += BPF_CORE_READ_BITFIELD_PROBED(t, in_execve);
    r += bpf_core_type_id_local(struct task_struct);
    r += bpf_core_type_id_kernel(struct task_struct);
    r += bpf_core_type_exists(struct task_struct);
    r += bpf_core_type_exists(struct pybpf_no_such_struct);
    r += bpf_core_type_size(struct task_struct);
    r += bpf_core_type_matches(struct list_head);
    r += bpf_core_enum_value_exists(enum bpf_func_id, BPF_FUNC_get_attach_cookie);
    r += bpf_core_enum_value_exists(enum bpf_func_id, BPF_FUNC_pybpf_nope);
    r += bpf_core_enum_value(enum bpf_func_id, BPF_FUNC_get_attach_cookie);
    r += bpf_core_enum_value(enum perf_event_state, PERF_EVENT_STATE_DEAD);
    r += bpf_core_enum_value(enum perf_callchain_context, PERF_CONTEXT_KERNEL);
    r += BPF_CORE_READ(o, pid);
    if (bpf_core_field_exists(o->pybpf_no_such_field))
        r += BPF_CORE_READ(o, pybpf_no_such_field);
    if (bpf_core_enum_value_exists(enum bpf_func_id, BPF_FUNC_pybpf_nope))
        r += bpf_core_enum_value(enum bpf_func_id, BPF_FUNC_pybpf_nope);
    return r;
}

char LICENSE[] SEC("license") = "GPL";
"""


@pytest.fixture(scope="module")
def path():
    return compile_bpf(SOURCE, name="core", cflags=INCLUDE)


@pytest.fixture
def spec(path) -> ObjectSpec:
    return ObjectSpec.from_file(path)


def _by(results, kind, text):
    found = [r for r in results if r.kind == kind and text in (r.local_spec or r.local)]
    assert found, (kind, text, [r.describe() for r in results])
    return found


def test_all_thirteen_kinds_are_recorded(spec):
    kinds = {COREKind(r.kind) for r in spec.programs["core_all"].core_relocations}
    assert kinds == set(COREKind)


def test_against_the_running_kernel(spec):
    vm = kernel_btf()
    task = vm.find("task_struct", "struct")
    members = {m.name: m for m in task.members}
    results = spec.apply_core()
    assert all(not r.error for r in results), [r.describe() for r in results if r.error]

    tgid, = [r for r in _by(results, COREKind.FIELD_BYTE_OFFSET, "task_struct.tgid")]
    assert tgid.new_value == members["tgid"].offset // 8 and not tgid.poisoned
    assert tgid.local_spec.startswith("struct task_struct.tgid (0:1 @ offset 4)")
    parent, = _by(results, COREKind.FIELD_BYTE_OFFSET, "task_struct.real_parent")
    assert parent.new_value == members["real_parent"].offset // 8
    comm1, = _by(results, COREKind.FIELD_BYTE_OFFSET, "task_struct.comm[1]")
    assert comm1.new_value == members["comm"].offset // 8 + 1
    assert _by(results, COREKind.FIELD_BYTE_SIZE, "task_struct.comm")[0].new_value == 16
    assert _by(results, COREKind.FIELD_SIGNED, "task_struct.pid")[0].new_value == 1
    exists = {r.local_spec.split(" ")[1]: r.new_value for r in results if r.kind == COREKind.FIELD_EXISTS}
    assert exists == {"task_struct.pid": 1, "task_struct___old.pybpf_no_such_field": 0}

    bit = members["in_execve"].offset
    byte_off = _by(results, COREKind.FIELD_BYTE_OFFSET, "in_execve")[0].new_value
    byte_sz = _by(results, COREKind.FIELD_BYTE_SIZE, "in_execve")[0].new_value
    assert byte_off * 8 <= bit < (byte_off + byte_sz) * 8
    assert _by(results, COREKind.FIELD_LSHIFT_U64, "in_execve")[0].new_value == 64 - (bit + 1 - byte_off * 8)
    assert _by(results, COREKind.FIELD_RSHIFT_U64, "in_execve")[0].new_value == 63

    local_id = _by(results, COREKind.TYPE_ID_LOCAL, "task_struct")[0]
    assert local_id.new_value == local_id.orig_value == spec.btf.find("task_struct", "struct").id
    assert _by(results, COREKind.TYPE_ID_TARGET, "task_struct")[0].new_value == task.id
    assert _by(results, COREKind.TYPE_SIZE, "task_struct")[0].new_value == task.size
    assert {r.local.split(" ")[-1]: r.new_value for r in results if r.kind == COREKind.TYPE_EXISTS} == {
        "task_struct": 1, "pybpf_no_such_struct": 0}
    assert _by(results, COREKind.TYPE_MATCHES, "list_head")[0].new_value == 1

    cookie = vm.find("bpf_func_id", "enum").value("BPF_FUNC_get_attach_cookie")
    assert _by(results, COREKind.ENUMVAL_VALUE, "BPF_FUNC_get_attach_cookie")[0].new_value == cookie
    assert _by(results, COREKind.ENUMVAL_EXISTS, "BPF_FUNC_pybpf_nope")[0].new_value == 0
    assert _by(results, COREKind.ENUMVAL_VALUE, "PERF_EVENT_STATE_DEAD")[0].new_value == (-5) % (1 << 64)
    assert _by(results, COREKind.ENUMVAL_VALUE, "PERF_CONTEXT_KERNEL")[0].new_value == 0xFFFFFFFFFFFFFF80


def test_unsatisfiable_relocations_poison_their_instruction(spec):
    results = spec.apply_core()
    prog = spec.programs["core_all"]
    poisoned = [r for r in results if r.poisoned]
    assert {r.kind for r in poisoned} == {COREKind.FIELD_BYTE_OFFSET, COREKind.ENUMVAL_VALUE}
    assert all("not found" in r.reason for r in poisoned)
    calls = [i for i in prog.instructions if i.opcode == CALL and i.imm == 195896080]
    # a field load becomes one bad call; a poisoned ld_imm64 becomes two
    assert len(calls) == 3
    assert prog.instructions.slot_count == prog.original_instructions.slot_count
    lddw = [r for r in prog.core_relocations if r.result is not None and r.result.poisoned
            and prog.original_instructions[prog.original_instructions.index_at_slot(r.slot)].opcode == LD_IMM64]
    assert len(lddw) == 1


@pytest.mark.kernel
@pytest.mark.skipif(not libbpf_ref.available(), reason="libbpf.so.1 is not installed")
def test_every_relocation_equals_libbpf(path, spec):
    lib = libbpf_ref.LibBPF()
    _progs, _maps, log, error = lib.view(str(path), load=True)
    theirs = libbpf_ref.libbpf_core(log)
    ours = {}
    for r in apply_core(spec, strict=False):
        ours[(r.function, r.index, r.function_insn)] = ("poisoned",) if r.poisoned else ("patched", r.new_value)
    assert len(theirs) == len(spec.programs["core_all"].core_relocations)
    assert ours == theirs
    if not error:
        assert spec.link_instructions("core_all", lib.map_fds).encode() == lib.instructions["core_all"]


TARGET = r"""
/* A made-up 'kernel': the layout CO-RE must find instead of the local one. */
struct list_head { struct list_head *next, *prev; };
struct task_struct {
	long state;
	int tgid;
	int pad;
	struct task_struct *real_parent;
	unsigned long long flags: 40, in_execve: 1, rest: 23;
	char comm[32];
	int pid;
	struct list_head children;
};
enum bpf_func_id { BPF_FUNC_get_attach_cookie = 7 };
enum perf_event_state { PERF_EVENT_STATE_DEAD = -9 };
enum perf_callchain_context { PERF_CONTEXT_KERNEL = 0x1122334455667788ULL };
struct task_struct task;
enum bpf_func_id f;
enum perf_event_state s;
enum perf_callchain_context c;
struct list_head l;
"""


def test_against_a_btf_file(spec):
    target = compile_bpf(TARGET, name="core_target")
    results = spec.apply_core(target_btf=str(target))
    assert all(not r.error for r in results)
    value = {(r.kind, (r.local_spec or r.local).split(" (")[0]): r for r in results}
    assert value[(COREKind.FIELD_BYTE_OFFSET, "struct task_struct.tgid")].new_value == 8
    assert value[(COREKind.FIELD_BYTE_OFFSET, "struct task_struct.real_parent")].new_value == 16
    assert value[(COREKind.FIELD_BYTE_OFFSET, "struct task_struct.comm[1]")].new_value == 33
    assert value[(COREKind.FIELD_BYTE_SIZE, "struct task_struct.comm")].new_value == 32
    # in_execve is bit 40 of an 8-byte bitfield unit at offset 24
    assert value[(COREKind.FIELD_BYTE_OFFSET, "struct task_struct.in_execve")].new_value == 24
    assert value[(COREKind.FIELD_BYTE_SIZE, "struct task_struct.in_execve")].new_value == 8
    assert value[(COREKind.FIELD_LSHIFT_U64, "struct task_struct.in_execve")].new_value == 64 - 41
    assert value[(COREKind.TYPE_SIZE, "struct task_struct")].new_value == 88
    assert value[(COREKind.ENUMVAL_VALUE, "enum bpf_func_id::BPF_FUNC_get_attach_cookie = 1000")].new_value == 7
    assert value[(COREKind.ENUMVAL_VALUE, "enum perf_event_state::PERF_EVENT_STATE_DEAD = -5")].new_value == \
        (-9) % (1 << 64)
    kernel = value[(COREKind.ENUMVAL_VALUE, "enum64 perf_callchain_context::PERF_CONTEXT_KERNEL = 18446744073709551488")]
    assert kernel.new_value == 0x1122334455667788
    # the instructions carry the new numbers; re-applying for the running kernel starts from the compiled ones
    prog = spec.programs["core_all"]
    assert prog.instructions != prog.original_instructions
    spec.apply_core()
    assert value[(COREKind.FIELD_BYTE_OFFSET, "struct task_struct.tgid")].orig_value == 4


@pytest.mark.kernel
@pytest.mark.skipif(not libbpf_ref.available(), reason="libbpf.so.1 is not installed")
def test_btf_file_results_equal_libbpf_with_btf_custom_path(path, spec):
    target = compile_bpf(TARGET, name="core_target")
    lib = libbpf_ref.LibBPF()
    _progs, _maps, log, _error = lib.view(str(path), load=True, btf_custom_path=str(target))
    theirs = libbpf_ref.libbpf_core(log)
    ours = {(r.function, r.index, r.function_insn): ("poisoned",) if r.poisoned else ("patched", r.new_value)
            for r in apply_core(spec, str(target), strict=False)}
    assert theirs and ours == theirs


AMBIGUOUS_TARGET = r"""
struct thing___a { int x; int y; } a;
struct thing___b { int y; } b;
"""

AMBIGUOUS = r"""
#include <linux/types.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
struct thing { int y; } __attribute__((preserve_access_index));
SEC("socket") int amb(void *ctx) { struct thing *t = ctx; return BPF_CORE_READ(t, y); }
"""


def test_ambiguous_candidates_are_an_error_in_c_terms():
    spec = ObjectSpec.from_file(compile_bpf(AMBIGUOUS, name="core_amb"))
    target = compile_bpf(AMBIGUOUS_TARGET, name="core_amb_target")
    with pytest.raises(CORERelocationError, match=r"struct thing\.y.*field offset ambiguity"):
        spec.apply_core(target_btf=str(target))
    (result,) = apply_core(spec, str(target), strict=False)
    assert result.error.startswith("field offset ambiguity")


def test_cli_core_lists_relocations(path):
    from conftest import run_cli

    proc = run_cli("object", "core", path)
    assert proc.returncode == 0, proc.stderr.decode()
    out = proc.stdout.decode()
    assert "struct task_struct.tgid (0:1 @ offset 4)" in out and "poisoned" in out
    assert "enumval_value" in out and "type_matches" in out


def test_poison_is_explained_in_c_terms(spec):
    spec.apply_core()
    prog = spec.programs["core_all"]
    slot = 0
    found = []
    for insn in prog.instructions:
        if insn.opcode == CALL and insn.imm == 195896080:
            found.append(spec.explain_poison("core_all", slot, insn.imm))
        slot += insn.slots
    assert any("struct task_struct___old.pybpf_no_such_field" in m and "field not found" in m for m in found)
    assert any("enum bpf_func_id::BPF_FUNC_pybpf_nope" in m for m in found)


def test_cli_core_with_a_raw_btf_file_like_btfhub(path, tmp_path):
    """A BTFHub file is raw BTF; a copy of this kernel's must give the same answers as the kernel itself."""
    import json

    from conftest import run_cli

    raw = tmp_path / "kernel.btf"
    raw.write_bytes(Path("/sys/kernel/btf/vmlinux").read_bytes())
    mine = json.loads(run_cli("object", "core", path, "--json", "--btf", raw).stdout)
    live = json.loads(run_cli("object", "core", path, "--json").stdout)
    assert mine["target"] == str(raw) and live["target"] == "vmlinux"
    strip = [{k: v for k, v in r.items() if k != "candidates"} for r in live["relocations"]]
    assert [{k: v for k, v in r.items() if k != "candidates"} for r in mine["relocations"]] == strip
