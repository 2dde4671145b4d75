"""Fuzzing: mutated real objects either parse into a spec or fail with a pybpf error - nothing else.

Mutations aim where parsers go wrong: the ELF and section headers, the symbol
and relocation tables, .BTF and .BTF.ext, plus truncation.  A parsed spec is
then exercised the way tools use it (describe it, read variables, apply CO-RE
against the running kernel), which must not raise anything but BPFError either.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import compile_bpf
from pybpf.cli.object import describe
from pybpf.elf import ELFFile
from pybpf.errors import BPFError
from pybpf.object import ObjectSpec
from pybpf.object.core import apply_core

HERE = Path(__file__).resolve().parent

SOURCE = r"""
#include <linux/types.h>
#include "core_types.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

struct { __uint(type, 1 /* HASH */); __uint(max_entries, 8); __type(key, int); __type(value, long); } m SEC(".maps");
struct inner { __uint(type, 2 /* ARRAY */); __uint(max_entries, 2); __type(key, int); __type(value, int); } in1 SEC(".maps");
struct { __uint(type, 12 /* ARRAY_OF_MAPS */); __uint(max_entries, 2); __type(key, int);
         __array(values, struct inner); } outer SEC(".maps") = { .values = { [0] = &in1 } };
const volatile int limit = 3;
char buf[16];
extern int LINUX_KERNEL_VERSION __kconfig;
static __noinline int sub(int x) { return x + limit; }
SEC("tp/syscalls/sys_enter_getpid") int prog(void *ctx)
{
    struct task_struct *t = (void *)bpf_get_current_task();
    int k = sub(BPF_CORE_READ(t, real_parent, tgid)) + bpf_core_type_size(struct task_struct);
    buf[0] = LINUX_KERNEL_VERSION;
    return bpf_map_lookup_elem(&m, &k) != 0;
}
char LICENSE[] SEC("license") = "GPL";
"""

_SEED = compile_bpf(SOURCE, name="fuzz", cflags=("-I", str(HERE))).read_bytes()
_ELF = ELFFile(_SEED)
_REGIONS = [(0, 64)]
_shoff = int.from_bytes(_SEED[0x28:0x30], "little")
_REGIONS.append((_shoff, len(_ELF.sections) * 64))
for _s in _ELF.sections:
    if _s.name in (".BTF", ".BTF.ext", ".symtab", ".maps", "license") or _s.name.startswith(".rel") \
            or _s.name.startswith("tp/") or _s.name == ".text":
        _REGIONS.append((_s.offset, max(_s.size, 1)))


@st.composite
def mutated(draw) -> bytes:
    data = bytearray(_SEED)
    for _ in range(draw(st.integers(1, 6))):
        start, size = draw(st.sampled_from(_REGIONS))
        pos = start + draw(st.integers(0, size - 1))
        if pos >= len(data):
            continue
        kind = draw(st.sampled_from(["byte", "word", "zero", "ones"]))
        if kind == "byte":
            data[pos] = draw(st.integers(0, 255))
        elif kind == "word":
            data[pos:pos + 4] = draw(st.integers(0, 0xFFFFFFFF)).to_bytes(4, "little")
        elif kind == "zero":
            data[pos:pos + 8] = bytes(8)
        else:
            data[pos:pos + 4] = b"\xff\xff\xff\xff"
    if draw(st.booleans()) and draw(st.integers(0, 9)) == 0:
        del data[draw(st.integers(0, len(data) - 1)):]
    return bytes(data)


def _exercise(spec: ObjectSpec) -> None:
    describe(spec)
    for v in spec.variables.values():
        try:
            v.value
        except BPFError:
            pass
    apply_core(spec, strict=False)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(mutated())
def test_mutated_objects_parse_or_fail_cleanly(data):
    try:
        spec = ObjectSpec.from_bytes(data, name="fuzz")
    except BPFError:
        return
    try:
        _exercise(spec)
    except BPFError:
        pass


def test_seed_parses_and_relocates():
    spec = ObjectSpec.from_bytes(_SEED, name="fuzz")
    assert spec.maps["outer"].contents == [(0, "in1")]
    assert all(not r.error for r in apply_core(spec))


@pytest.mark.parametrize("cut", range(0, len(_SEED), max(1, len(_SEED) // 97)))
def test_every_truncation_point(cut):
    try:
        ObjectSpec.from_bytes(_SEED[:cut], name="fuzz")
    except BPFError:
        pass
