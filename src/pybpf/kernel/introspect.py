"""What bpftool shows: every program, map, link and BTF object in the kernel, as records.

The records use bpftool's JSON field names and values (``bytes_xlated``,
``loaded_at`` as epoch seconds, type names like ``tracepoint`` and ``hash``), so
``pybpf ... --json`` output can be compared with ``bpftool -j`` field by field
and the CLI's plain text is formatted from the same data.  Facts the info
structures lack come from where bpftool gets them: /proc/self/fdinfo
(memlock, frozen, owner_prog_type) and, for "pids", the fds of every process.
"""

from __future__ import annotations

import ctypes
import os
import struct
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

from ..errors import BPFError, KernelError
from .btf_object import btf_info
from .program import program_info
from .syscall import bpf_errno, btf_ids, close_fd, fd_by_id, link_ids, map_ids, obj_info, prog_ids
from .uapi import (
    AttachType, Cmd, EnableStatsAttr, LinkType, MapType, ProgInfoStruct, ProgType, StatsType,
)

NFPROTO_NAMES = {1: "inet", 2: "ip", 3: "arp", 5: "netdev", 7: "bridge", 10: "ip6"}
INET_HOOK_NAMES = {0: "prerouting", 1: "input", 2: "forward", 3: "output", 4: "postrouting"}


def type_name(enum: type, value: int) -> str | None:
    """libbpf's name of a program/map/link/attach type: the enum name in lower case."""
    try:
        return enum(value).name.lower()
    except ValueError:
        return None


def fdinfo(fd: int) -> dict[str, str]:
    """The key/value lines of /proc/self/fdinfo/FD (memlock, frozen, prog_id...)."""
    out = {}
    try:
        with open(f"/proc/self/fdinfo/{fd}") as f:
            for line in f:
                key, _, value = line.partition(":")
                out[key.strip()] = value.strip()
    except OSError:
        pass
    return out


def loaded_at(load_time_ns: int) -> int:
    """The wall-clock second (epoch) of a program's load_time (ns since boot), computed as bpftool does."""
    real = time.clock_gettime_ns(time.CLOCK_REALTIME)
    boot = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
    return (real // 10**9 - boot // 10**9) + (real % 10**9 - boot % 10**9 + load_time_ns) // 10**9


def format_time(epoch: int) -> str:
    """bpftool's plain format: local time, ISO 8601 with a numeric zone (2024-01-31T12:00:00+0000)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(epoch))


# --- process references ("pids") -----------------------------------------------------

_ANON_KIND = {"anon_inode:bpf-prog": "prog", "anon_inode:bpf-map": "map", "anon_inode:bpf_link": "link",
              "anon_inode:bpf-link": "link", "anon_inode:btf": "btf"}
_ID_KEY = {"prog": "prog_id", "map": "map_id", "link": "link_id", "btf": "btf_id"}


def object_owners(kinds: tuple[str, ...] = ("prog", "map", "link", "btf")) -> dict[tuple[str, int], list[tuple[int, str]]]:
    """(kind, id) -> [(pid, comm)] of the processes holding an fd to that object."""
    owners: dict[tuple[str, int], list[tuple[int, str]]] = {}
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        pid = int(entry)
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        comm = None
        for fd in fds:
            try:
                kind = _ANON_KIND.get(os.readlink(f"/proc/{pid}/fd/{fd}"))
            except OSError:
                continue
            if kind not in kinds:
                continue
            try:
                with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                    text = f.read()
            except OSError:
                continue
            for line in text.splitlines():
                key, _, value = line.partition(":")
                if key == _ID_KEY[kind]:
                    if comm is None:
                        try:
                            with open(f"/proc/{pid}/comm") as c:
                                comm = c.read().strip()
                        except OSError:
                            comm = "?"
                    ref = owners.setdefault((kind, int(value)), [])
                    if (pid, comm) not in ref:
                        ref.append((pid, comm))
                    break
    return owners


# --- programs ---------------------------------------------------------------------------


@dataclass
class ProgramImage:
    """A loaded program's code and debug records, as BPF_OBJ_GET_INFO_BY_FD returns them."""

    xlated: bytes
    jited: bytes
    func_info: list[tuple[int, int]] = field(default_factory=list)          # (insn_off, type_id)
    line_info: list[tuple[int, int, int, int]] = field(default_factory=list)  # (insn_off, file_off, line_off, line_col)
    jited_line_info: list[int] = field(default_factory=list)                 # address per line_info record
    jited_ksyms: list[int] = field(default_factory=list)                     # address per function
    jited_func_lens: list[int] = field(default_factory=list)
    btf_id: int = 0


def program_image(fd: int) -> ProgramImage:
    """Fetch xlated and JITed code, func/line info and symbols of the program behind ``fd``."""
    first = obj_info(fd, ProgInfoStruct, "program")
    bufs: dict[str, Any] = {}

    def buf(name: str, size: int) -> int:
        b = ctypes.create_string_buffer(max(size, 1))
        bufs[name] = b
        return ctypes.addressof(b)

    fi_rec = first.func_info_rec_size or 8
    li_rec = first.line_info_rec_size or 16
    jli_rec = first.jited_line_info_rec_size or 8

    def prepare(info: ProgInfoStruct) -> None:
        info.xlated_prog_len = first.xlated_prog_len
        info.xlated_prog_insns = buf("xlated", first.xlated_prog_len)
        info.jited_prog_len = first.jited_prog_len
        info.jited_prog_insns = buf("jited", first.jited_prog_len)
        info.nr_func_info, info.func_info_rec_size = first.nr_func_info, fi_rec
        info.func_info = buf("func_info", first.nr_func_info * fi_rec)
        info.nr_line_info, info.line_info_rec_size = first.nr_line_info, li_rec
        info.line_info = buf("line_info", first.nr_line_info * li_rec)
        info.nr_jited_line_info, info.jited_line_info_rec_size = first.nr_jited_line_info, jli_rec
        info.jited_line_info = buf("jited_line_info", first.nr_jited_line_info * jli_rec)
        info.nr_jited_ksyms = first.nr_jited_ksyms
        info.jited_ksyms = buf("jited_ksyms", first.nr_jited_ksyms * 8)
        info.nr_jited_func_lens = first.nr_jited_func_lens
        info.jited_func_lens = buf("jited_func_lens", first.nr_jited_func_lens * 4)

    info = obj_info(fd, ProgInfoStruct, "program", prepare)
    raw = {k: v.raw for k, v in bufs.items()}
    return ProgramImage(
        xlated=raw["xlated"][:min(info.xlated_prog_len, first.xlated_prog_len)],
        jited=raw["jited"][:min(info.jited_prog_len, first.jited_prog_len)],
        func_info=[struct.unpack_from("<II", raw["func_info"], i * fi_rec) for i in range(first.nr_func_info)],
        line_info=[struct.unpack_from("<IIII", raw["line_info"], i * li_rec) for i in range(first.nr_line_info)],
        jited_line_info=[struct.unpack_from("<Q", raw["jited_line_info"], i * jli_rec)[0]
                         for i in range(first.nr_jited_line_info)],
        jited_ksyms=list(struct.unpack_from(f"<{first.nr_jited_ksyms}Q", raw["jited_ksyms"])),
        jited_func_lens=list(struct.unpack_from(f"<{first.nr_jited_func_lens}I", raw["jited_func_lens"])),
        btf_id=info.btf_id,
    )


def btf_by_id(btf_id: int) -> Any:
    """The BTF object ``btf_id`` parsed by pybpf.btf (split BTF on vmlinux for modules), or None when unreadable."""
    from ..btf import BTF, kernel_btf
    from .btf_object import KernelBTF

    try:
        with KernelBTF.from_id(btf_id) as btf:
            info = btf.info()
            data = btf.data()
        base = kernel_btf() if info.kernel_btf and info.name != "vmlinux" else None
        return BTF.from_bytes(data, base, name=f"BTF id {btf_id}", validate=False)
    except (BPFError, OSError):
        return None


def btf_name(btf: Any, type_id: int) -> str:
    """The name of a type, or "" when the id or its name is not in ``btf`` (a program's BTF may be odd)."""
    try:
        return btf.name_of(type_id) if type_id else ""
    except BPFError:
        return ""


def _btf_string(btf: Any, offset: int) -> str:
    try:
        return btf.string(offset)
    except BPFError:
        return ""


@dataclass(frozen=True)
class SourceRecord:
    insn: int
    file: str
    line: int
    column: int
    text: str


def source_records(image: ProgramImage, btf: Any) -> list[SourceRecord]:
    """The program's line info with file names and source text from its BTF (a pybpf.btf BTF, or None)."""
    if btf is None:
        return []
    return [SourceRecord(insn, _btf_string(btf, file_off), lc >> 10, lc & 0x3FF, _btf_string(btf, line_off))
            for insn, file_off, line_off, lc in image.line_info]


def full_name(fd: int, info: Any, btf: Any = None) -> str:
    """A program's name; a 15-character (truncated) name is completed from its BTF function record."""
    name = info.name
    if len(name) < 15 or not info.btf_id or not info.nr_func_info:
        return name
    image = program_image(fd)
    btf = btf or btf_by_id(image.btf_id)
    if btf is None or not image.func_info:
        return name
    return btf_name(btf, image.func_info[0][1]) or name


def program_record(fd: int, *, owners: dict | None = None, pinned: list[str] | None = None) -> dict:
    """A program as ``bpftool -j prog show`` describes it."""
    info = program_info(fd)
    rec: dict[str, Any] = {"id": info.id}
    rec["type"] = type_name(ProgType, int(info.type)) or int(info.type)
    if info.name:
        rec["name"] = full_name(fd, info)
    rec["tag"] = info.tag
    rec["gpl_compatible"] = info.gpl_compatible
    if info.run_time_ns:
        rec["run_time_ns"] = info.run_time_ns
        rec["run_cnt"] = info.run_count
    if info.recursion_misses:
        rec["recursion_misses"] = info.recursion_misses
    if info.ifindex:
        rec["dev"] = {"ifindex": info.ifindex}
    if info.load_time:
        rec["loaded_at"] = loaded_at(info.load_time)
        rec["uid"] = info.uid
    rec["bytes_xlated"] = info.xlated_size
    rec["jited"] = bool(info.jited_size)
    if info.jited_size:
        rec["bytes_jited"] = info.jited_size
    memlock = fdinfo(fd).get("memlock")
    if memlock is not None:
        rec["bytes_memlock"] = int(memlock)
    if info.map_ids:
        rec["map_ids"] = list(info.map_ids)
    if info.btf_id:
        rec["btf_id"] = info.btf_id
    if pinned:
        rec["pinned"] = pinned
    refs = (owners or {}).get(("prog", info.id))
    if refs:
        rec["pids"] = [{"pid": p, "comm": c} for p, c in refs]
    return rec


def map_record(fd: int, *, owners: dict | None = None, pinned: list[str] | None = None) -> dict:
    """A map as ``bpftool -j map show`` describes it."""
    from .maps import MapInfo

    info = MapInfo.of_fd(fd)
    extra = fdinfo(fd)
    rec: dict[str, Any] = {"id": info.id, "type": type_name(MapType, int(info.type)) or int(info.type)}
    if info.name:
        rec["name"] = info.name
    rec["flags"] = info.flags
    if info.ifindex:
        rec["dev"] = {"ifindex": info.ifindex}
    rec.update(bytes_key=info.key_size, bytes_value=info.value_size, max_entries=info.max_entries)
    if "memlock" in extra:
        rec["bytes_memlock"] = int(extra["memlock"])
    if info.type == MapType.PROG_ARRAY:
        if "owner_prog_type" in extra:
            ptype = int(extra["owner_prog_type"])
            rec["owner_prog_type"] = type_name(ProgType, ptype) or ptype
        if "owner_jited" in extra:
            rec["owner_jited"] = bool(int(extra["owner_jited"]))
    rec["frozen"] = int(extra.get("frozen", 0))
    if info.btf_id:
        rec["btf_id"] = info.btf_id
    if pinned:
        rec["pinned"] = pinned
    refs = (owners or {}).get(("map", info.id))
    if refs:
        rec["pids"] = [{"pid": p, "comm": c} for p, c in refs]
    return rec


def link_record(fd: int, *, owners: dict | None = None, pinned: list[str] | None = None) -> dict:
    """A link as ``bpftool -j link show`` describes it."""
    import socket as _socket

    from .link import LinkInfo

    info = LinkInfo.of_fd(fd)
    d = info.details
    rec: dict[str, Any] = {"id": info.id, "type": type_name(LinkType, int(info.type)) or int(info.type),
                           "prog_id": info.prog_id}

    def attach_type(value: int) -> None:
        rec["attach_type"] = type_name(AttachType, value) or value

    def ifindex(value: int) -> None:
        try:
            name = _socket.if_indextoname(value) if value else "(detached)"
        except OSError:
            name = "(unknown)"
        rec["devname"] = name
        rec["ifindex"] = value

    t = info.type
    if t == LinkType.RAW_TRACEPOINT:
        rec["tp_name"] = d.get("tp_name", "")
        rec["cookie"] = d.get("cookie", 0)
    elif t == LinkType.TRACING:
        try:
            from .program import Program

            with Program.from_id(info.prog_id) as p:
                ptype = int(p.type)
            rec["prog_type"] = type_name(ProgType, ptype) or ptype
        except BPFError:
            pass
        attach_type(d["attach_type"])
        rec.update(target_obj_id=d["target_obj_id"], target_btf_id=d["target_btf_id"], cookie=d["cookie"])
    elif t == LinkType.CGROUP:
        rec["cgroup_id"] = d["cgroup_id"]
        attach_type(d["attach_type"])
    elif t == LinkType.ITER:
        rec["target_name"] = d.get("target_name", "")
        if rec["target_name"] in ("bpf_map_elem", "bpf_sk_storage_map"):
            rec["map_id"] = d["map_id"]
    elif t == LinkType.NETNS:
        rec["netns_ino"] = d["netns_ino"]
        attach_type(d["attach_type"])
    elif t == LinkType.NETFILTER:
        rec.update(pf=d["pf"], hook=d["hooknum"], prio=d["priority"], flags=d["flags"])
    elif t in (LinkType.TCX, LinkType.NETKIT):
        ifindex(d["ifindex"])
        attach_type(d["attach_type"])
    elif t == LinkType.SOCKMAP:
        rec["map_id"] = d["map_id"]
        attach_type(d["attach_type"])
    elif t == LinkType.XDP:
        ifindex(d["ifindex"])
    elif t == LinkType.STRUCT_OPS:
        rec["map_id"] = d["map_id"]
    elif t == LinkType.PERF_EVENT:
        kind = d.get("perf_kind")
        if kind in ("kprobe", "kretprobe"):
            rec.update(retprobe=kind == "kretprobe", addr=d["addr"], func=d.get("func_name", ""),
                       offset=d["offset"], missed=d["missed"], cookie=d["cookie"])
        elif kind in ("uprobe", "uretprobe"):
            rec.update(retprobe=kind == "uretprobe", file=d.get("file_name", ""), offset=d["offset"],
                       cookie=d["cookie"], ref_ctr_offset=d["ref_ctr_offset"])
        elif kind == "tracepoint":
            rec.update(tracepoint=d.get("tp_name", ""), cookie=d["cookie"])
        elif kind == "event":
            rec["event"] = {"type": d["type"], "config": d["config"]}
            rec["cookie"] = d["cookie"]
    if pinned:
        rec["pinned"] = pinned
    refs = (owners or {}).get(("link", info.id))
    if refs:
        rec["pids"] = [{"pid": p, "comm": c} for p, c in refs]
    return rec


def btf_record(fd: int, users: dict[int, tuple[list[int], list[int]]] | None = None,
               owners: dict | None = None) -> dict:
    """A BTF object as ``bpftool -j btf list`` describes it (``users``: btf id -> (prog ids, map ids))."""
    info = btf_info(fd)
    progs, maps = (users or {}).get(info.id, ([], []))
    rec: dict[str, Any] = {"id": info.id, "size": info.size, "prog_ids": progs, "map_ids": maps}
    refs = (owners or {}).get(("btf", info.id))
    if refs:
        rec["pids"] = [{"pid": p, "comm": c} for p, c in refs]
    rec["kernel"] = info.kernel_btf
    if info.name:
        rec["name"] = info.name
    return rec


def btf_users() -> dict[int, tuple[list[int], list[int]]]:
    """BTF id -> (ids of programs, ids of maps) that refer to it."""
    from .maps import MapInfo

    users: dict[int, tuple[list[int], list[int]]] = {}
    for kind, read, slot in (("prog", program_info, 0), ("map", MapInfo.of_fd, 1)):
        for obj_id, fd in each_object(kind):
            try:
                btf_id = read(fd).btf_id
            finally:
                close_fd(fd)
            if btf_id:
                users.setdefault(btf_id, ([], []))[slot].append(obj_id)
    return users


_CMDS = {"prog": (prog_ids, Cmd.PROG_GET_FD_BY_ID, "program"), "map": (map_ids, Cmd.MAP_GET_FD_BY_ID, "map"),
         "link": (link_ids, Cmd.LINK_GET_FD_BY_ID, "link"), "btf": (btf_ids, Cmd.BTF_GET_FD_BY_ID, "BTF object")}


def each_object(kind: str) -> Iterator[tuple[int, int]]:
    """(id, fd) of every kernel object of ``kind``; the caller closes each fd.  Objects that vanish
    between listing and opening are skipped."""
    ids, cmd, what = _CMDS[kind]
    for obj_id in ids():
        try:
            fd = fd_by_id(cmd, obj_id, what)
        except KernelError as exc:
            if exc.errno == 2:
                continue
            raise
        yield obj_id, fd


def pinned_paths(kind: str, root: str = "/sys/fs/bpf") -> dict[int, list[str]]:
    """id -> pinned paths of objects of ``kind`` under a bpffs mount (what bpftool -f shows)."""
    from .syscall import fd_kind, obj_get

    found: dict[int, list[str]] = {}
    if not os.path.isdir(root):
        return found
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(dirpath, name)
            try:
                fd = obj_get(path, "object")
            except (BPFError, OSError):
                continue
            try:
                if fd_kind(fd) == kind:
                    obj_id = int(fdinfo(fd).get(_ID_KEY[kind], 0))
                    if obj_id:
                        found.setdefault(obj_id, []).append(path)
            finally:
                close_fd(fd)
    return found


class StatsSession:
    """Run-time statistics collection (BPF_ENABLE_STATS): programs count runs and ns while it is open."""

    def __init__(self) -> None:
        fd, err = bpf_errno(Cmd.ENABLE_STATS, EnableStatsAttr(type=StatsType.RUN_TIME))
        if err:
            from .syscall import CAP_SYS_ADMIN, kernel_error

            if err == 22:
                from ..errors import NotSupportedError

                raise NotSupportedError("BPF_ENABLE_STATS", "5.8", reason="write 1 to /proc/sys/kernel/bpf_stats_enabled")
            raise kernel_error(err, "cannot enable BPF run-time statistics", (CAP_SYS_ADMIN,))
        self.fd = fd

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> "StatsSession":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def enable_stats() -> StatsSession:
    """Collect run_cnt / run_time_ns for every program until the returned session is closed."""
    return StatsSession()
