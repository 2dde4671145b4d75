"""Reusing kernel objects: by id, by pin (checked with bpftool), map-in-map inner maps, and
tail-call program arrays filled by slot and program names."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from kernel_testlib import load_c

from pybpf.errors import BPFError, LinkError, MapError, NotSupportedError
from pybpf.isa import Instruction as I
from pybpf.kernel import (
    BPFLink, Collection, IntCodec, Link, LinkType, Map, MapType, Program, ProgType, ensure_bpffs,
)

pytestmark = pytest.mark.kernel


def _returns(value: int, name: str) -> Program:
    return Program.load(ProgType.SOCKET_FILTER, [I(0xB7, 0, 0, 0, value), I(0x95)], name=name)


def _tail_caller(prog_array: Map, slot: int) -> Program:
    """return tail_call(ctx, prog_array, slot) or 1 when the slot is empty"""
    return Program.load(ProgType.SOCKET_FILTER, [
        I(0x18, 2, 1, 0, prog_array.fd), I(0xB7, 3, 0, 0, slot), I(0x85, 0, 0, 0, 12),
        I(0xB7, 0, 0, 0, 1), I(0x95)], name="caller")


def test_tail_calls_through_a_prog_array_filled_by_name():
    with Map.create(MapType.PROG_ARRAY, 4, 4, 4, name="jumps", key_codec=IntCodec(4)) as jumps, \
         _returns(7, "seven") as seven, _returns(9, "nine") as nine:
        coll = Collection({"jumps": jumps}, {"seven": seven, "nine": nine})
        jumps.bind(slots={"ipv4": 0, "ipv6": 2})
        with _tail_caller(jumps, 0) as via0, _tail_caller(jumps, 2) as via2:
            assert via0.test_run(bytes(64)).retval == 1  # empty slot: the call falls through
            jumps["ipv4"] = "seven"                      # slot and program by name
            jumps.fill({"ipv6": nine})
            assert via0.test_run(bytes(64)).retval == 7 and via2.test_run(bytes(64)).retval == 9
            assert jumps[0] == seven.id and jumps["ipv6"] == nine.id
            with jumps.program("ipv4") as again:
                assert again.name == "seven" and again.id == seven.id
            del jumps["ipv4"]
            assert via0.test_run(bytes(64)).retval == 1
        with pytest.raises(MapError, match="no slot named 'udp' \\(slots: ipv4, ipv6\\)"):
            jumps["udp"] = seven
        with pytest.raises(MapError, match="no program named 'eight' \\(programs: seven, nine\\)"):
            jumps[1] = "eight"
        coll.programs.clear()
        coll.maps.clear()


def test_map_in_map_inner_maps_by_object_fd_and_id():
    with Map.create(MapType.ARRAY, 4, 8, 1, name="tmpl") as template, \
         Map.create(MapType.ARRAY_OF_MAPS, 4, 4, 3, name="outer", inner_map=template, key_codec=IntCodec(4)) as outer, \
         Map.create(MapType.ARRAY, 4, 8, 1, name="a", key_codec=IntCodec(4), value_codec=IntCodec(8)) as a, \
         Map.create(MapType.ARRAY, 4, 8, 1, name="b", key_codec=IntCodec(4), value_codec=IntCodec(8)) as b:
        outer[0] = a
        outer[1] = b.fd                    # an fd number works too
        assert (outer[0], outer[1]) == (a.id, b.id)
        with outer.inner(1) as inner_b:
            inner_b[0] = 99
        assert b[0] == 99
        assert outer.inner(2, None) is None
        with pytest.raises(KeyError):
            outer.inner(2)
        with Map.create(MapType.HASH, 4, 8, 1) as wrong, pytest.raises(Exception, match="EINVAL|Invalid"):
            outer[2] = wrong               # the kernel insists on the template's shape


def test_objects_by_id_and_by_pin_match_bpftool():
    root = os.path.join(ensure_bpffs(), f"pybpf_reuse_{os.getpid()}")
    os.makedirs(root)
    src = r"""
    __u64 hits = 0;
    SEC("tracepoint/syscalls/sys_enter_getppid")
    int hit(void *ctx) { __sync_fetch_and_add(&hits, 1); return 0; }
    """
    try:
        with load_c(src, "tracepoint/syscalls/sys_enter_getppid", ProgType.TRACEPOINT, name="reuse") as loaded:
            prog = loaded.program
            bss = loaded.data_maps[".bss"]
            link = prog.attach()
            prog.pin(f"{root}/prog")
            bss.pin(f"{root}/map")
            link.pin(f"{root}/link")
            ids = (prog.id, bss.id, link.id)
            shown = {kind: json.loads(subprocess.run(["bpftool", "-j", kind, "show", "pinned", f"{root}/{kind}"],
                                                     capture_output=True, text=True, check=True).stdout)
                     for kind in ("prog", "map", "link")}
            assert (shown["prog"]["id"], shown["map"]["id"], shown["link"]["id"]) == ids
            link.close()
        # every fd is closed: the pins keep program, map and attachment alive
        os.getppid()
        with Program.from_pin(f"{root}/prog") as p, Map.from_pin(f"{root}/map") as m, \
             Link.from_pin(f"{root}/link") as lk:
            assert (p.id, m.id, lk.id) == ids and p.name == "hit"  # named after its C function
            assert int.from_bytes(m.lookup_raw(b"\0\0\0\0")[:8], "little") >= 1
            assert lk.info().type == LinkType.PERF_EVENT and lk.info().prog_id == ids[0]
        with Program.from_id(ids[0]) as p, Map.from_id(ids[1]) as m, Link.from_id(ids[2]) as lk:
            assert isinstance(lk, BPFLink) and (p.id, m.id, lk.id) == ids
            lk.unpin()  # not pinned through this object: nothing happens
            with pytest.raises(NotSupportedError, match="detaching perf_event links by force"):
                lk.detach()
        assert os.path.exists(f"{root}/link")
    finally:
        for name in ("prog", "map", "link"):
            if os.path.exists(f"{root}/{name}"):
                os.unlink(f"{root}/{name}")
        os.rmdir(root)



def test_opening_a_pin_of_another_kind_names_what_is_there():
    from kernel_testlib import open_fds

    root = os.path.join(ensure_bpffs(), f"pybpf_kinds_{os.getpid()}")
    os.makedirs(root)
    fds = open_fds()
    try:
        with _returns(0, "pinned_prog") as prog, Map.create(MapType.ARRAY, 4, 4, 1, name="pinned_map") as m:
            prog.pin(f"{root}/prog")
            m.pin(f"{root}/map")
            with pytest.raises(MapError, match=f"{root}/prog is a pinned prog, not a map"):
                Map.from_pin(f"{root}/prog")
            with pytest.raises(BPFError, match=f"{root}/map is a pinned map, not a program"):
                Program.from_pin(f"{root}/map")
            with pytest.raises(LinkError, match=f"{root}/map is a pinned map, not a link"):
                Link.from_pin(f"{root}/map")
            with Map.from_pin(f"{root}/map") as again:
                assert again.id == m.id and again.pinned_path == f"{root}/map"
                again.unpin()
            assert not os.path.exists(f"{root}/map")
            prog.unpin()  # pinned through this object: the pin goes
            assert not os.path.exists(f"{root}/prog")
        assert open_fds() == fds  # the fds opened to look are closed again
    finally:
        for name in ("prog", "map"):
            if os.path.exists(f"{root}/{name}"):
                os.unlink(f"{root}/{name}")
        os.rmdir(root)


def test_detach_removes_a_pinned_cgroup_link():
    from kernel_testlib import child_cgroup

    path = os.path.join(ensure_bpffs(), f"pybpf_detach_{os.getpid()}")
    with child_cgroup() as cg, \
         Program.load(ProgType.CGROUP_SKB, [I(0xB7, 0, 0, 0, 1), I(0x95)], name="allow") as prog:
        link = prog.attach_cgroup(cg, "egress")
        link.pin(path)
        try:
            shown = subprocess.run(["bpftool", "cgroup", "show", cg], capture_output=True, text=True).stdout
            assert "allow" in shown
            link.detach()
            assert link.closed
            assert "allow" not in subprocess.run(["bpftool", "cgroup", "show", cg], capture_output=True,
                                                 text=True).stdout
            with Link.from_pin(path) as pinned:  # the pin is still there, attached to nothing
                assert pinned.info().prog_id == prog.id
        finally:
            os.unlink(path)
