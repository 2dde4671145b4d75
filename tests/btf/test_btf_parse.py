"""Parsing and looking up BTF: vmlinux, clang objects with every kind, split BTF, round trips."""

from __future__ import annotations

import pickle
import re
import struct
import time
from array import array

import pytest
from btf_testlib import ALL_KINDS, VMLINUX, bpftool_dump, needs_bpftool, needs_vmlinux
from conftest import compile_bpf

from pybpf.btf import (
    BTF,
    Datasec,
    DeclTag,
    Enum,
    Enum64,
    EnumValue,
    Float,
    Func,
    FuncLinkage,
    FuncProto,
    Int,
    IntEncoding,
    Kind,
    Member,
    Pointer,
    Struct,
    Typedef,
    TypeTag,
    Union,
    Var,
    VarLinkage,
    essential_name,
    kernel_btf,
)
from pybpf.elf.reader import ELFFile
from pybpf.errors import BTFError, TypeNotFoundError


@pytest.fixture(scope="module")
def obj():
    return compile_bpf(ALL_KINDS, name="btf_allkinds")


@pytest.fixture(scope="module")
def btf(obj):
    return BTF.from_file(obj)


def _raw_member_offsets(listing: str, type_id: int) -> dict[str, int]:
    """member name -> bit offset from bpftool's raw listing of one struct."""
    lines = listing.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith(f"[{type_id}] "))
    out = {}
    for ln in lines[start + 1:]:
        if not ln.startswith("\t"):
            break
        m = re.match(r"\t'([^']*)' type_id=\d+ bits_offset=(\d+)", ln)
        out[m.group(1)] = int(m.group(2))
    return out


# --- vmlinux --------------------------------------------------------------------------


@needs_vmlinux
def test_kernel_btf_is_parsed_once_and_fast():
    start = time.perf_counter()
    vmlinux = kernel_btf()
    task = vmlinux.find("task_struct", "struct")
    offset = vmlinux.member_offset(task, "pid")
    elapsed = time.perf_counter() - start
    assert kernel_btf() is vmlinux
    assert isinstance(task, Struct) and task.size > 1000 and offset > 0
    assert elapsed < 1.0, f"opening vmlinux BTF and finding task_struct took {elapsed:.2f}s"


@needs_vmlinux
@needs_bpftool
def test_vmlinux_lookups_agree_with_bpftool():
    vmlinux = kernel_btf()
    listing = bpftool_dump(str(VMLINUX))
    last_id = int(re.findall(r"^\[(\d+)\]", listing, re.M)[-1])
    assert len(vmlinux) == last_id + 1
    task = vmlinux.find("struct task_struct")
    offsets = _raw_member_offsets(listing, task.id)
    assert {m.name: m.offset for m in task.members if m.name} == {k: v for k, v in offsets.items() if k != "(anon)"}
    assert vmlinux.member_offset(task, "pid") * 8 == offsets["pid"]
    # nested member through a named struct member
    se = task.member("se")
    sched_entity = vmlinux[se.type_id]
    assert vmlinux.member_offset(task, "se.vruntime") == (se.offset + sched_entity.member("vruntime").offset) // 8
    # counts per kind
    kinds = re.findall(r"^\[\d+\] (\w+) ", listing, re.M)
    for kind in (Kind.STRUCT, Kind.ENUM64, Kind.DECL_TAG, Kind.FUNC):
        assert sum(1 for _ in vmlinux.types(kind)) == kinds.count(kind.name)


@needs_vmlinux
def test_vmlinux_resolution_primitives():
    vmlinux = kernel_btf()
    u32 = vmlinux.find("u32", "typedef")
    assert isinstance(u32, Typedef)
    resolved = vmlinux[vmlinux.resolve(u32.id)]
    assert isinstance(resolved, Int) and resolved.size == 4 and not resolved.signed
    assert vmlinux.sizeof(u32) == 4 and vmlinux.alignof(u32) == 4
    assert vmlinux.pointer_size == 8
    task = vmlinux.find("struct task_struct")
    assert vmlinux.sizeof(task) == task.size
    assert vmlinux.alignof("struct task_struct") >= 8
    # a member inside an anonymous union/struct is found through it
    path = vmlinux.member_path("struct sk_buff", "len")
    assert path[-1][1].name == "len"
    assert vmlinux.find("void") is vmlinux[0]
    with pytest.raises(TypeNotFoundError, match="no struct type named 'no_such_struct_xyz'"):
        vmlinux.find("no_such_struct_xyz", "struct")
    with pytest.raises(TypeNotFoundError, match="has no member 'nope'"):
        vmlinux.member_path(task, "nope")
    assert vmlinux.find_by_essential_name("task_struct___flavor", "struct") == [task]


@needs_vmlinux
def test_vmlinux_enum_values():
    vmlinux = kernel_btf()
    prog_types = vmlinux.find("bpf_prog_type", "enum")
    assert isinstance(prog_types, Enum)
    assert prog_types.value("BPF_PROG_TYPE_SOCKET_FILTER") == 1
    assert prog_types.name_of(2) == "BPF_PROG_TYPE_KPROBE"
    with pytest.raises(TypeNotFoundError):
        prog_types.value("BPF_PROG_TYPE_NOPE")


# --- clang objects ----------------------------------------------------------------------


def test_object_has_every_kind(btf):
    kinds = {t.kind for t in btf}
    assert {Kind.INT, Kind.PTR, Kind.ARRAY, Kind.STRUCT, Kind.UNION, Kind.ENUM, Kind.ENUM64, Kind.TYPEDEF,
            Kind.VOLATILE, Kind.CONST, Kind.FUNC, Kind.FUNC_PROTO, Kind.VAR, Kind.DATASEC, Kind.FLOAT,
            Kind.DECL_TAG, Kind.TYPE_TAG} <= kinds


def test_object_type_fields(btf):
    big = btf.find("big")
    assert isinstance(big, Enum64) and big.size == 8 and not big.signed
    assert big.as_dict() == {"BIG_A": 1, "BIG_B": 0xFFFFFFFFFF}
    small = btf.find("small")
    assert isinstance(small, Enum) and small.signed and small.value("S_A") == -1
    tiny = btf.find("tiny")
    assert tiny.size == 1
    assert isinstance(btf.find("float"), Float) and btf.find("double").size == 8
    tag = next(t for t in btf if isinstance(t, TypeTag))
    assert tag.name == "user" and tag.type.name == "int"
    event = btf.find("struct event")
    decl_tags = [t for t in btf if isinstance(t, DeclTag) and t.type_id == event.id]
    assert {t.component_idx for t in decl_tags} == {-1, [m.name for m in event.members].index("dtagged")}
    helper = btf.find("helper", "func")
    assert isinstance(helper, Func) and helper.linkage == FuncLinkage.GLOBAL
    proto = helper.type
    assert isinstance(proto, FuncProto) and [p.name for p in proto.params] == ["e", "x"]
    assert btf.find("local_helper").linkage == FuncLinkage.STATIC
    config = btf.find("config", "var")
    assert isinstance(config, Var) and config.linkage == VarLinkage.GLOBAL
    assert config.type.kind == Kind.CONST
    rodata = btf.find(".rodata", "datasec")
    assert isinstance(rodata, Datasec) and [v.type.name for v in rodata.vars] == ["config"]
    bits = btf.find("struct bits")
    assert bits.kflag and [(m.name, m.offset, m.bitfield_size) for m in bits.members] == [
        ("a", 0, 3), ("b", 3, 5), ("c", 8, 7), ("d", 15, 40), ("e", 56, 0)]
    anon = event.members[4]
    assert anon.name == "" and isinstance(anon.type, Union)
    assert btf.member_path(event, "ub") == [(4, anon), (1, anon.type.members[1])]
    assert btf.member_offset(event, "ub") == anon.offset // 8
    assert btf.member_offset(event, "in.c") == event.member("in").offset // 8 + 4
    matrix = event.member("matrix").type
    assert matrix.nelems == 2 and matrix.type.nelems == 3 and btf.sizeof(matrix) == 24
    assert btf.sizeof(event) == event.size and btf.alignof(event) == 8
    assert btf.alignof(bits) == 8  # declared packed, but its layout is natural: BTF cannot tell
    assert btf.alignof("struct packed_s") == 1 and btf.sizeof("struct packed_s") == 5
    assert isinstance(btf.find("inner_t"), Typedef)
    assert btf[btf.resolve(btf.find("inner_t").id)] == btf.find("struct inner")
    assert btf.find("int").encoding == IntEncoding.SIGNED


def test_from_elf_and_from_bytes_agree(obj, btf):
    elf = ELFFile.from_file(obj)
    again = BTF.from_elf(elf)
    raw = BTF.from_bytes(bytes(elf.section(".BTF").data))
    assert list(again) == list(btf) == list(raw)
    assert raw.to_bytes() == bytes(elf.section(".BTF").data)


def test_type_objects_are_immutable_and_comparable(btf):
    t = btf.find("struct inner")
    with pytest.raises(AttributeError, match="immutable"):
        t.name = "x"  # type: ignore[misc]
    assert t == btf[t.id] and t is btf[t.id] and hash(t) == hash(t.replace(id=None))
    assert t.describe() == "struct inner"
    changed = t.replace(name="x")
    assert changed.name == "x" and changed.members == t.members and changed != t and t.name == "inner"
    assert t.members[0].replace(name="y").name == "y"
    assert "Struct(name='inner'" in repr(t)
    assert pickle.loads(pickle.dumps(t)) == t
    with pytest.raises(TypeError, match="no field 'nme'"):
        t.replace(nme="x")


def test_essential_name():
    assert essential_name("task_struct___v1") == "task_struct"
    assert essential_name("task_struct") == "task_struct"
    assert essential_name("__u32") == "__u32"
    assert essential_name("a___b___c") == "a___b"
    assert essential_name("ends___") == "ends___"


# --- round trips and modification ----------------------------------------------------------


def test_unmodified_round_trip_is_byte_identical(btf):
    data = btf.to_bytes()
    again = BTF.from_bytes(data)
    assert again.to_bytes() == data
    assert list(again) == list(btf)


def test_reencoding_every_type_gives_the_same_bytes(btf):
    copy = BTF.from_bytes(btf.to_bytes())
    for t in list(copy):
        copy.replace(t.id, t)
    assert copy.types_bytes() == btf.types_bytes()
    assert list(copy) == list(btf)


def test_modify_add_and_serialize(btf):
    copy = BTF.from_bytes(btf.to_bytes())
    inner = copy.find("struct inner")
    copy.replace(inner.id, inner.replace(name="inner_renamed",
                                               members=inner.members + (Member("extra", inner.members[0].type_id, 64),),
                                               size=12))
    new_id = copy.add(Struct(name="brand_new", size=4, members=(Member("v", copy.find("int").id, 0),)))
    reparsed = BTF.from_bytes(copy.to_bytes())
    assert reparsed.find("struct inner_renamed").size == 12
    assert [m.name for m in reparsed.find("inner_renamed").members] == ["x", "c", "extra"]
    assert reparsed[new_id].name == "brand_new" and reparsed[new_id].members[0].type.name == "int"
    assert reparsed.get("inner") is None
    # everything else is unchanged
    for t in btf:
        if t.id != inner.id:
            assert reparsed[t.id] == t
    reparsed.validate()


def test_build_from_scratch():
    b = BTF.new()
    i32 = b.add(Int(name="int", size=4, encoding=IntEncoding.SIGNED))
    ptr = b.add(Struct(name="pair", size=8, members=(Member("a", i32, 0), Member("b", i32, 32))))
    b.add(Typedef(name="pair_t", type_id=ptr))
    again = BTF.from_bytes(b.to_bytes())
    assert again.find("pair_t").type.members[1].offset == 32
    assert again.sizeof("pair_t") == 8
    with pytest.raises(BTFError, match="does not fit in 32 bits"):
        b.add(Enum(name="e", values=(EnumValue("v", 1 << 40),)))


def test_header_length_is_honoured(btf):
    data = btf.to_bytes()
    magic, version, flags, hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from("<HBBIIIII", data)
    longer = struct.pack("<HBBIIIII", magic, version, flags, 32, type_off, type_len, str_off, str_len)
    longer += bytes(8) + data[hdr_len:]
    assert list(BTF.from_bytes(longer)) == list(btf)
    bad = bytearray(longer)
    bad[28] = 1
    with pytest.raises(BTFError, match="extra bytes that are not zero"):
        BTF.from_bytes(bytes(bad))


def test_big_endian_btf_is_read(btf):
    data = btf.to_bytes()
    magic, version, flags, hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from("<HBBIIIII", data)
    types = array("I", data[hdr_len + type_off:hdr_len + type_off + type_len])
    types.byteswap()
    swapped = (struct.pack(">HBBIIIII", magic, version, flags, hdr_len, type_off, type_len, str_off, str_len)
               + types.tobytes() + data[hdr_len + str_off:])
    assert list(BTF.from_bytes(swapped)) == list(btf)


# --- split BTF ------------------------------------------------------------------------------


@needs_vmlinux
def test_split_btf_on_vmlinux(tmp_path):
    vmlinux = kernel_btf()
    split = BTF.new(base=vmlinux, name="mymod")
    task = vmlinux.find("struct task_struct")
    u64 = vmlinux.find("u64", "typedef")
    ptr = split.add(Pointer(type_id=task.id))
    sid = split.add(Struct(name="mymod_state", size=16,
                           members=(Member("owner", ptr, 0), Member("pid", u64.id, 64))))
    split.add(Typedef(name="task_struct", type_id=sid))  # a name the base uses too
    assert split.start_id == len(vmlinux)
    path = tmp_path / "mymod.btf"
    path.write_bytes(split.to_bytes())
    again = BTF.from_file(path, base=vmlinux)
    assert again.find("struct mymod_state").members[0].type.type == task
    assert [t.kind for t in again.find_all("task_struct")] == [Kind.STRUCT, Kind.TYPEDEF]
    assert again.find("task_struct") == task  # the base's definition comes first
    assert again.string_start == vmlinux.string_start + len(vmlinux.strings_bytes())
    with pytest.raises(BTFError, match="cannot replace type 1"):
        again.replace(1, task)


@needs_vmlinux
def test_module_btf():
    from pybpf.btf import kernel_modules_with_btf, module_btf
    from pybpf.errors import NotSupportedError

    assert module_btf("vmlinux") is kernel_btf()
    with pytest.raises(NotSupportedError, match="BTF of kernel module 'no_such_module_xyz' is not supported: "
                                                "/sys/kernel/btf/no_such_module_xyz does not exist"):
        module_btf("no_such_module_xyz")
    with pytest.raises(ValueError, match="not a kernel module name"):
        module_btf("../etc")
    for name in kernel_modules_with_btf()[:3]:  # whatever modules this kernel has loaded
        mod = module_btf(name)
        assert mod.base is kernel_btf() and mod.start_id == len(kernel_btf())
        assert module_btf(name) is mod
        mod.validate()


def test_find_by_essential_name_finds_every_flavor_and_nothing_else():
    btf = BTF.new()
    names = ["foo", "foo___v1", "foo___v2___x", "xfoo___y", "foo____z", "foobar", "bar___foo", "foo___"]
    ids = {name: btf.add(Struct(name=name, size=4)) for name in names}
    split = BTF.from_bytes(btf.to_bytes())  # parsed back: lookups through the string table
    assert [t.id for t in split.find_by_essential_name("foo___flavor")] == [ids["foo"], ids["foo___v1"]]
    assert [t.name for t in split.find_by_essential_name("foo___v2___y")] == ["foo___v2___x"]
    assert [t.name for t in split.find_by_essential_name("foo")] == \
        [n for n in names if essential_name(n) == "foo"]
    assert split.find_by_essential_name("foo", "union") == [] and split.find_by_essential_name("nothing") == []


@needs_vmlinux
def test_vmlinux_name_lookups_agree_with_the_full_name_table():
    """Lookups scan the name offsets until the full index pays (BTF._ids_named_at): the answers are the same
    before and after the switch, for names one type has, several types share, or that end ~100 other strings."""
    vmlinux = BTF.from_file(VMLINUX, validate=False)
    expected = BTF.from_file(VMLINUX, validate=False).names()
    short = [name for name in ("pid", "id", "list", "node", "flags", "next") if name in expected]
    shared = [name for name, ids in expected.items() if len(ids) > 1][:20]
    one = [name for name, ids in expected.items() if len(ids) == 1][:40]
    by_essential: dict[str, list[int]] = {}
    for name, ids in expected.items():
        by_essential.setdefault(essential_name(name), []).extend(ids)
    for name in (short + shared + one) * 2 + ["no_such_type_xyz"]:  # the second round after the switch
        assert vmlinux.ids_by_name(name) == sorted(expected.get(name, [])), name
        assert [t.id for t in vmlinux.find_by_essential_name(name)] == \
            sorted(by_essential.get(essential_name(name), [])), name
    assert vmlinux._name_index is not None  # the lookups went both ways


def test_find_by_essential_name_sees_types_added_after_a_lookup():
    btf = BTF.from_bytes(BTF.new().to_bytes())
    first = btf.add(Struct(name="foo", size=4))
    assert [t.id for t in btf.find_by_essential_name("foo")] == [first]
    flavor = btf.add(Struct(name="foo___v2", size=8))
    assert [t.id for t in btf.find_by_essential_name("foo___x")] == [first, flavor]
    assert btf.ids_by_name("foo___v2") == [flavor]
