"""DATASEC fix-ups and sanitizing for older kernels: the rewrites, and the kernel's verdict on them."""

from __future__ import annotations


import pytest
from btf_testlib import ALL_KINDS
from conftest import compile_bpf

from pybpf.btf import BTF, BTFFeatures, Kind, fixup_datasecs, needs_sanitizing, probe_btf, sanitize
from pybpf.elf.reader import ELFFile
from pybpf.errors import BTFError, BTFLoadError

FEATURES = list(BTFFeatures.names())


@pytest.fixture(scope="module")
def elf():
    return ELFFile.from_file(compile_bpf(ALL_KINDS, name="btf_allkinds"))


@pytest.fixture(scope="module")
def raw(elf):
    return BTF.from_elf(elf)


@pytest.fixture(scope="module")
def fixed(raw, elf):
    return fixup_datasecs(raw, elf)


def test_fixup_datasecs_takes_sizes_and_offsets_from_the_elf(raw, fixed, elf):
    assert all(t.size == 0 for t in raw.types("datasec"))  # what clang leaves
    symbols = {s.name: s for s in elf.symbols if s.type == 1}
    for sec in fixed.types("datasec"):
        assert sec.size == elf.section(sec.name).size
        offsets = [v.offset for v in sec.vars]
        assert offsets == sorted(offsets)
        for v in sec.vars:
            sym = symbols[v.type.name]
            assert (v.offset, v.size) == (sym.value, fixed.sizeof(v.type_id))
    bss = fixed.find(".bss", "datasec")
    assert [v.type.name for v in bss.vars] == ["global_counter", "buf", "shared"]
    assert list(raw.types("datasec"))[0].size == 0  # the input is untouched


def test_fixup_names_what_is_missing(raw, elf):
    class NoSections:
        sections = [s for s in elf.sections if s.name != ".rodata"]
        symbols = elf.symbols

    with pytest.raises(BTFError, match="DATASEC '.rodata' has size 0 and the ELF file has no"):
        fixup_datasecs(raw, NoSections())


@pytest.mark.parametrize("feature", FEATURES)
def test_sanitize_one_feature(fixed, feature):
    features = BTFFeatures(**{feature: False})
    assert needs_sanitizing(fixed, features)
    out = sanitize(fixed, features)
    assert len(out) >= len(fixed)
    kinds_before = {t.id: t.kind for t in fixed}
    kinds_after = {t.id: t.kind for t in out}
    changed = {tid: (kinds_before[tid], kinds_after[tid]) for tid in kinds_before if kinds_before[tid] != kinds_after[tid]}
    expected = {
        "func": {(Kind.FUNC, Kind.TYPEDEF), (Kind.FUNC_PROTO, Kind.ENUM)},
        "func_global": set(),
        "datasec": {(Kind.VAR, Kind.INT), (Kind.DATASEC, Kind.STRUCT)},
        "float": {(Kind.FLOAT, Kind.STRUCT)},
        "decl_tag": {(Kind.DECL_TAG, Kind.INT)},
        "type_tag": {(Kind.TYPE_TAG, Kind.CONST)},
        "enum64": {(Kind.ENUM64, Kind.UNION)},
    }[feature]
    assert set(changed.values()) == expected
    if feature == "func_global":
        assert all(f.linkage == 0 for f in out.types("func"))
    if feature == "datasec":
        assert out.find("_rodata", "struct").members[0].name == "config"
    if feature == "enum64":
        assert out[len(fixed)].name == "enum64_placeholder"
        assert not any(t.signed for t in out.types("enum"))
    if feature == "float":
        assert all(out[tid].size == fixed[tid].size and not out[tid].name for tid in changed)
    BTF.from_bytes(out.to_bytes())  # well-formed


def test_nothing_to_sanitize_is_a_copy(fixed):
    assert not needs_sanitizing(fixed, BTFFeatures())
    out = sanitize(fixed, BTFFeatures())
    assert out is not fixed and out.to_bytes() == fixed.to_bytes()


# --- what the kernel says ----------------------------------------------------------------------


@pytest.mark.kernel
def test_kernel_rejects_raw_clang_btf_and_accepts_fixed(raw, fixed):
    from pybpf.kernel import KernelBTF

    with pytest.raises(BTFLoadError, match="DATASEC"):
        KernelBTF.load(raw.to_bytes())
    with KernelBTF.load(fixed.to_bytes()) as loaded:
        assert loaded.info().size == len(fixed.to_bytes())


@pytest.mark.kernel
@pytest.mark.parametrize("feature", [f for f in FEATURES if f != "func"])
def test_kernel_accepts_sanitized_btf(fixed, feature):
    from pybpf.kernel import KernelBTF

    with KernelBTF.load(sanitize(fixed, BTFFeatures(**{feature: False})).to_bytes()):
        pass


@pytest.mark.kernel
def test_kernel_accepts_btf_sanitized_for_the_oldest_kernels(fixed):
    from pybpf.kernel import KernelBTF

    # everything but FUNC: a modern kernel insists on named enumerators, which FUNC_PROTO-as-ENUM lacks
    with KernelBTF.load(sanitize(fixed, BTFFeatures.none().replace(func=True)).to_bytes()):
        pass


@pytest.mark.kernel
@pytest.mark.parametrize("feature", ["btf"] + FEATURES)
def test_feature_probe_blobs_load(feature):
    from pybpf.kernel import KernelBTF

    with KernelBTF.load(probe_btf(feature)):
        pass


def test_probe_blob_names_unknown_features():
    with pytest.raises(ValueError, match="unknown BTF feature 'nope'"):
        probe_btf("nope")
