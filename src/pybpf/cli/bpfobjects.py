"""Shared by the bpftool-style verbs (prog, map, link, btf): naming objects, JSON output.

Objects are named like bpftool names them: ``ID``, ``id ID``, ``pinned PATH``,
``name NAME`` (every object of that name) and, for programs, ``tag TAG``.
"""

from __future__ import annotations

import sys
from typing import Any, Callable, Iterator

from ..errors import BPFError

# The kernel layer is imported by the functions that talk to the kernel, not here: the
# commands that share this module also have verbs that never do (`pybpf btf dump`).

_WHAT = {"prog": "program", "map": "map", "link": "link", "btf": "BTF object"}
_GET_FD = {"prog": "PROG_GET_FD_BY_ID", "map": "MAP_GET_FD_BY_ID", "link": "LINK_GET_FD_BY_ID",
           "btf": "BTF_GET_FD_BY_ID"}
_ID_KEY = {"prog": "prog_id", "map": "map_id", "link": "link_id", "btf": "btf_id"}


def selector_help(kind: str) -> str:
    extra = " | tag TAG" if kind == "prog" else ""
    return f"ID | id ID | pinned PATH | name NAME{extra}"


def split_selector(kind: str, tokens: list[str]) -> tuple[list[str], list[str]]:
    """Split ``tokens`` into the object selector and what follows it."""
    if not tokens:
        raise BPFError(f"name a {_WHAT[kind]}: {selector_help(kind)}")
    if tokens[0] in ("id", "pinned", "name", "tag"):
        if len(tokens) < 2:
            raise BPFError(f"'{tokens[0]}' needs a value ({selector_help(kind)})")
        return tokens[:2], tokens[2:]
    return tokens[:1], tokens[1:]


def open_selected(kind: str, selector: list[str]) -> list[int]:
    """fds of the objects a selector names (the caller closes them); BPFError when none match."""
    from ..kernel.introspect import each_object
    from ..kernel.syscall import Cmd, close_fd, fd_by_id, fd_kind, obj_get

    what = _WHAT[kind]
    if len(selector) == 1:
        if not selector[0].isdigit():
            raise BPFError(f"{selector[0]!r} is not a {what} id; use {selector_help(kind)}")
        return [fd_by_id(Cmd[_GET_FD[kind]], int(selector[0]), what)]
    how, value = selector
    if how == "id":
        if not value.isdigit():
            raise BPFError(f"{value!r} is not a {what} id")
        return [fd_by_id(Cmd[_GET_FD[kind]], int(value), what)]
    if how == "pinned":
        fd = obj_get(value, what)
        if fd_kind(fd) != kind:
            found = fd_kind(fd)
            close_fd(fd)
            raise BPFError(f"{value} is a pinned {found or 'object'}, not a {what}")
        return [fd]
    if how == "tag" and kind != "prog":
        raise BPFError(f"only programs have tags; use {selector_help(kind)}")
    fds = []
    for _obj_id, fd in each_object(kind):
        rec_name, rec_tag = _name_and_tag(kind, fd)
        if (how == "name" and rec_name == value) or (how == "tag" and rec_tag == value.lower()):
            fds.append(fd)
        else:
            close_fd(fd)
    if not fds:
        raise BPFError(f"no {what} with {how} {value!r}")
    return fds


def _name_and_tag(kind: str, fd: int) -> tuple[str, str]:
    if kind == "prog":
        from ..kernel.introspect import full_name
        from ..kernel.program import program_info

        info = program_info(fd)
        return full_name(fd, info), info.tag
    if kind == "map":
        from ..kernel.maps import MapInfo

        return MapInfo.of_fd(fd).name, ""
    if kind == "btf":
        from ..kernel.btf_object import btf_info

        return btf_info(fd).name, ""
    return "", ""


def each_selected(kind: str, tokens: list[str] | None) -> Iterator[int]:
    """fds of the selected objects, or of every object of ``kind`` when ``tokens`` is empty; each fd
    is closed after the consumer moves on."""
    from ..kernel.introspect import each_object
    from ..kernel.syscall import close_fd

    fds = open_selected(kind, split_selector(kind, tokens)[0]) if tokens else None
    if fds is None:
        for _obj_id, fd in each_object(kind):
            try:
                yield fd
            finally:
                close_fd(fd)
        return
    try:
        for fd in fds:
            yield fd
    finally:
        for fd in fds:
            close_fd(fd)


def object_id(kind: str, fd: int) -> int:
    from ..kernel.introspect import fdinfo

    return int(fdinfo(fd).get(_ID_KEY[kind], 0))


_ESCAPES = {"\t": "\\t", "\n": "\\n", "\r": "\\r", "\f": "\\f", "\b": "\\b", "\\": "\\\\", '"': '\\"'}


def _quote(text: str) -> str:
    """A JSON string as bpftool's writer makes it: non-ASCII stays UTF-8; other control characters
    (which bpftool writes raw) become \\u00XX so the output stays valid JSON."""
    return '"' + "".join(_ESCAPES.get(c) or (f"\\u{ord(c):04x}" if ord(c) < 0x20 else c) for c in text) + '"'


def bpftool_json(value: Any, pretty: bool = False) -> str:
    """``value`` laid out the way bpftool's JSON writer lays it out, byte for byte.

    Compact (-j) output is ordinary JSON without spaces.  Pretty (-p, and the
    plain-text map dumps of maps with BTF) puts each object member on its own
    line, indented by 4 spaces, but leaves array elements on the line of the
    opening bracket (``[1,2,3`` then the closing bracket on a line of its own).
    :class:`~pybpf.btf.valuedump.Raw` strings are written unquoted and
    :class:`~pybpf.btf.valuedump.Pairs` as an object whose names may repeat.
    """
    from ..btf.valuedump import Pairs, Raw  # here, not at the top: `pybpf btf dump` never needs it

    out: list[str] = []

    def newline(depth: int) -> None:
        if pretty:
            out.append("\n" + "    " * depth)

    def write(v: Any, depth: int) -> None:
        if isinstance(v, Raw):
            out.append(v)
        elif isinstance(v, str):
            out.append(_quote(v))
        elif v is True or v is False:
            out.append("true" if v else "false")
        elif v is None:
            out.append("null")
        elif isinstance(v, int):
            out.append(str(v))
        elif isinstance(v, float):
            out.append(repr(v))
        elif isinstance(v, (dict, Pairs)):
            out.append("{")
            items = v.items() if isinstance(v, dict) else v
            for i, (name, item) in enumerate(items):
                if i:
                    out.append(",")
                newline(depth + 1)
                out.append(_quote(name) + (": " if pretty else ":"))
                write(item, depth + 1)
            if v:
                newline(depth)
            out.append("}")
        elif isinstance(v, (list, tuple)):
            out.append("[")
            for i, item in enumerate(v):
                if i:
                    out.append(",")
                write(item, depth + 1)
            if v:
                newline(depth)
            out.append("]")
        else:
            raise TypeError(f"cannot write {type(v).__name__} as JSON")

    write(value, 0)
    return "".join(out)


def emit(text: str) -> None:
    """Write ``text`` to stdout; BTF strings that are not UTF-8 go out as their original bytes."""
    sys.stdout.flush()
    sys.stdout.buffer.write(text.encode("utf-8", "surrogateescape"))
    sys.stdout.buffer.flush()


def print_json(value: Any, pretty: bool) -> None:
    """bpftool -j (compact) or -p (pretty) output."""
    emit(bpftool_json(value, pretty) + "\n")


def add_output_options(parser: Any) -> None:
    parser.add_argument("-j", "--json", action="store_true", help="JSON output (like bpftool -j)")
    parser.add_argument("-p", "--pretty", action="store_true", help="indented JSON output (like bpftool -p)")
    parser.add_argument("-f", "--bpffs", action="store_true",
                        help="also show where objects are pinned on /sys/fs/bpf (like bpftool -f)")
    parser.add_argument("--pids", action="store_true",
                        help="also show which processes hold each object (scans /proc)")


def wants_json(args: Any) -> bool:
    return bool(args.json or args.pretty)


def show_records(kind: str, args: Any, selectors: list[str] | None, record: Callable[..., dict],
                 format_plain: Callable[[dict], str], pinnable: bool = True) -> int:
    """bpftool's ``KIND show``: ``record(fd, owners=...)`` of each selected object (with -f, where it
    is pinned; with --pids, who holds it), as JSON (one object when one was asked for) or plain lines."""
    from ..kernel.introspect import object_owners, pinned_paths

    owners = object_owners((kind,)) if args.pids else None
    pinned = pinned_paths(kind) if args.bpffs and pinnable else {}
    records = []
    for fd in each_selected(kind, selectors):
        rec = record(fd, owners=owners)
        if rec["id"] in pinned:
            rec["pinned"] = pinned[rec["id"]]
        records.append(rec)
    if wants_json(args):
        print_json(records if not selectors or len(records) != 1 else records[0], args.pretty)
    else:
        for rec in records:
            print(format_plain(rec))
    return 0

