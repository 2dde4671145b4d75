"""`pybpf map`: maps in the kernel, like `bpftool map` (list, show, dump, lookup, update, delete,
getnext, pin, freeze)."""

from __future__ import annotations

import argparse
import errno
import json
import os

from ..btf.valuedump import ValueFormatter
from ..errors import BPFError, KernelError, MapError
from ..kernel.introspect import (
    MAP_OF_MAPS_TYPES, MapLayout, lookup_entry, map_entries, map_value_btf, type_name,
)
from ..kernel.syscall import close_fd
from ..object.kinds import MapType
from .bpfobjects import (
    add_output_options, emit, open_selected, print_json, selector_help, show_records, split_selector, wants_json,
)

EXAMPLES = """\
examples:
  pybpf map list                                   every map, like 'bpftool map'
  pybpf map show name counts --json
  pybpf map dump id 7                              every entry, like bpftool: decoded through the
                                                   map's BTF (structs, strings, enum names), else hex
  pybpf map dump pinned /sys/fs/bpf/counts --json  raw bytes plus the decoded "formatted" entry
  pybpf map lookup id 7 key 0x01 0 0 0             a key as bytes (decimal, 0x.. or 0.. octal)
  pybpf map lookup id 7 key hex 01 00 00 00        ... or as hex bytes after 'hex'
  pybpf map lookup id 7 --key 1                    ... or as an integer (little-endian, key size)
  pybpf map update id 7 key 1 0 0 0 value 5 0 0 0 0 0 0 0 noexist
  pybpf map update id 7 --key 1 --value '[5, 0, 0, 0, 0, 0, 0, 0]'
  pybpf map update name jumps key 0 0 0 0 value id 42      a program (by id) into a prog array
  pybpf map delete pinned /sys/fs/bpf/counts key 1 0 0 0
  pybpf map getnext id 7 key 1 0 0 0
  pybpf map pin id 7 /sys/fs/bpf/counts
  pybpf map freeze id 7

MAP is """ + selector_help("map") + """.  --key/--value take an integer, a JSON list of byte values,
or a JSON string (zero-padded to the size).  Per-CPU maps get the same value on every CPU.
"""

_FLAGS = {"any": 0, "noexist": 1, "exist": 2}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "map", help="list, show, dump, read and write maps in the kernel (like bpftool map)",
        description="Inspect and change BPF maps loaded in the kernel.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="verb", metavar="VERB")
    for verb in ("list", "show"):
        s = sub.add_parser(verb, help="show maps (all, or the MAP given)")
        s.add_argument("map", nargs="*", metavar="MAP", help=selector_help("map"))
        add_output_options(s)
        s.set_defaults(func=run_show)
    for verb, helptext in (("dump", "print every entry"), ("lookup", "print one entry"),
                           ("update", "write one entry"), ("delete", "delete one entry"),
                           ("getnext", "print the key after KEY (or the first key)"),
                           ("pin", "pin the map on bpffs"), ("freeze", "make the map read-only for user space")):
        s = sub.add_parser(verb, help=helptext, epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
        s.add_argument("words", nargs=argparse.REMAINDER, metavar="MAP ...",
                       help=f"{selector_help('map')}, then key/value words like bpftool's")
        s.add_argument("--key", default=None, help="the key as an integer or JSON (instead of 'key ...')")
        s.add_argument("--value", default=None, help="the value as an integer or JSON (instead of 'value ...')")
        add_output_options(s)
        s.set_defaults(func=RUNNERS[verb])
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def run_show(args: argparse.Namespace) -> int:
    from ..kernel.introspect import map_record

    return show_records("map", args, args.map, map_record, format_plain)


def format_plain(rec: dict) -> str:
    """A map the way bpftool prints it without -j."""
    head = f"{rec['id']}: {rec['type']}  "
    if "name" in rec:
        head += f"name {rec['name']}  "
    head += f"flags {rec['flags']:#x}"
    if "dev" in rec:
        head += f"  offloaded_to ifindex {rec['dev']['ifindex']}"
    body = f"\tkey {rec['bytes_key']}B  value {rec['bytes_value']}B  max_entries {rec['max_entries']}"
    if "bytes_memlock" in rec:
        body += f"  memlock {rec['bytes_memlock']}B"
    if "owner_prog_type" in rec or "owner_jited" in rec:
        body += "\n\t"
        if "owner_prog_type" in rec:
            body += f"owner_prog_type {rec['owner_prog_type']}  "
        if "owner_jited" in rec:
            body += "owner jited" if rec["owner_jited"] else "owner not jited"
    for path in rec.get("pinned", ()):
        body += f"\n\tpinned {path}"
    if rec.get("btf_id") or rec.get("frozen"):
        body += "\n\t"
        if rec.get("btf_id"):
            body += f"btf_id {rec['btf_id']}"
        if rec.get("frozen"):
            body += ("  " if rec.get("btf_id") else "") + "frozen"
    if rec.get("pids"):
        body += "\n\tpids " + ", ".join(f"{p['comm']}({p['pid']})" for p in rec["pids"])
    return f"{head}\n{body}"


# --- keys and values --------------------------------------------------------------------


def _byte(token: str, what: str) -> int:
    """A byte as C's strtoul(x, 0) reads it: 0x.. hex, 0.. octal, else decimal."""
    try:
        if token.lower().startswith("0x"):
            value = int(token, 16)
        elif token.startswith("0") and len(token) > 1:
            value = int(token, 8)
        else:
            value = int(token, 10)
    except ValueError:
        raise BPFError(f"error parsing byte {token!r} of the {what}") from None
    if not 0 <= value <= 255:
        raise BPFError(f"byte {token!r} of the {what} is out of range 0..255")
    return value


def parse_words(words: list[str], what: str, size: int, stop: tuple[str, ...] = ()) -> tuple[bytes, list[str]]:
    """Bytes from bpftool-style words ('0x01 0 0 0' or 'hex 01 00 00 00'); returns them and the rest."""
    base16 = bool(words) and words[0] == "hex"
    if base16:
        words = words[1:]
    out = []
    while words and len(out) < size and words[0] not in stop:
        token = words.pop(0)
        out.append(_hex_byte(token, what) if base16 else _byte(token, what))
    if len(out) != size:
        raise BPFError(f"{what} expected {size} bytes got {len(out)}")
    return bytes(out), words


def _hex_byte(token: str, what: str) -> int:
    try:
        value = int(token, 16)
    except ValueError:
        raise BPFError(f"error parsing hex byte {token!r} of the {what}") from None
    if not 0 <= value <= 255:
        raise BPFError(f"hex byte {token!r} of the {what} is out of range 00..ff")
    return value


def parse_option(text: str, size: int, what: str) -> bytes:
    """--key/--value: an integer (little-endian), a JSON list of byte values, or a JSON string."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        try:
            value = int(text, 0)
        except ValueError:
            raise BPFError(f"{what} {text!r} is neither an integer nor JSON") from None
    if isinstance(value, bool) or not isinstance(value, (int, list, str)):
        raise BPFError(f"{what} must be an integer, a JSON list of bytes or a JSON string, not {text!r}")
    if isinstance(value, int):
        try:
            return value.to_bytes(size, "little", signed=value < 0)
        except OverflowError:
            raise BPFError(f"{what} {value} does not fit in {size} bytes") from None
    if isinstance(value, str):
        data = value.encode()
        if len(data) > size:
            raise BPFError(f"{what} {value!r} is longer than {size} bytes")
        return data.ljust(size, b"\0")
    if len(value) != size or not all(isinstance(b, int) and 0 <= b <= 255 for b in value):
        raise BPFError(f"{what} must be {size} byte values 0..255, got {value!r}")
    return bytes(value)


_FLAG_OPTIONS = {"-j": "json", "--json": "json", "-p": "pretty", "--pretty": "pretty", "-f": "bpffs",
                 "--bpffs": "bpffs", "--pids": "pids"}
_VALUE_OPTIONS = {"--key": "key", "--value": "value"}


def _take_options(args: argparse.Namespace) -> list[str]:
    """Options written among or after the map words (argparse leaves those in the remainder)."""
    words, rest = list(args.words), []
    while words:
        word = words.pop(0)
        name, eq, inline = word.partition("=")
        if word in _FLAG_OPTIONS:
            setattr(args, _FLAG_OPTIONS[word], True)
        elif name in _VALUE_OPTIONS:
            if not eq and not words:
                raise BPFError(f"{name} needs a value")
            setattr(args, _VALUE_OPTIONS[name], inline if eq else words.pop(0))
        else:
            rest.append(word)
    return rest


def _open_one(words: list[str]):
    """(Map, remaining words) for the MAP at the start of ``words``."""
    from ..kernel import Map

    if not words:
        raise BPFError(f"name a map: {selector_help('map')}")
    selector, rest = split_selector("map", words)
    fds = open_selected("map", selector)
    if len(fds) != 1:
        from ..kernel.syscall import close_fd

        for fd in fds:
            close_fd(fd)
        raise BPFError(f"{' '.join(selector)} names {len(fds)} maps; this command needs exactly one")
    return Map.from_fd(fds[0]), rest


def _key(m, words: list[str], option: str | None, required: bool = True) -> tuple[bytes | None, list[str]]:
    if option is not None:
        return parse_option(option, m.key_size, "key"), words
    if words and words[0] == "key":
        return parse_words(words[1:], "key", m.key_size, stop=("value",))
    if m.key_size == 0 or not required:
        return None, words
    raise BPFError(f"give the key: key BYTES... ({m.key_size} bytes) or --key")


def _fd_value(m, words: list[str]) -> tuple[bytes, list[str], list[int]] | None:
    """'value id N' / 'value pinned PATH' / 'value name N' for maps whose values are programs or maps;
    also returns the fds opened, to close after the update."""
    from ..kernel.maps import FD_VALUE_TYPES
    from ..object.kinds import MapType

    if m.type not in FD_VALUE_TYPES or not words or words[0] not in ("id", "pinned", "name", "tag"):
        return None
    kind = "prog" if m.type == MapType.PROG_ARRAY else "map"
    selector, rest = split_selector(kind, words)
    fds = open_selected(kind, selector)
    return fds[0].to_bytes(4, "little").ljust(m.value_size, b"\0"), rest, fds


def _value(m, words: list[str], option: str | None) -> tuple[bytes, list[str], list[int]]:
    fds: list[int] = []
    if option is not None:
        one = parse_option(option, m.value_size, "value")
    elif words and words[0] == "value":
        found = _fd_value(m, words[1:])
        if found:
            one, words, fds = found
        else:
            one, words = parse_words(words[1:], "value", m.value_size, stop=tuple(_FLAGS))
    else:
        raise BPFError(f"give the value: value BYTES... ({m.value_size} bytes) or --value")
    if m.per_cpu:
        pad = bytes((-len(one)) % 8)
        one = (one + pad) * m.ncpus
    return one, words, fds


def _hex(data: bytes) -> str:
    """Bytes as bpftool's fprint_hex lays them out: 8 per group, 16 per line."""
    out = []
    for i, b in enumerate(data):
        out.append(("" if not i else "\n" if not i % 16 else "  " if not i % 8 else " ") + f"{b:02x}")
    return "".join(out)


def _hex_json(data: bytes) -> list[str]:
    return [f"0x{b:02x}" for b in data]


def entry_plain(layout: MapLayout, key: bytes, value: bytes) -> str:
    """One entry as bpftool's print_entry_plain lays it out (maps of maps: the inner map id, as bpftool
    does since 7.2; 7.1 prints the same id as the value's bytes)."""
    if not layout.per_cpu:
        break_names = layout.key_size > 16 or layout.value_size > 16
        single_line = layout.key_size + layout.value_size <= 24 and not break_names
        sep = "\n" if break_names else " "
        out = ""
        if layout.key_size:
            out += f"key:{sep}{_hex(key)}" + ("  " if single_line else "\n")
        if layout.value_size:
            if layout.type in MAP_OF_MAPS_TYPES:
                out += f"inner_map_id:{sep}{int.from_bytes(value[:4], 'little')} "
            else:
                out += f"value:{sep}{_hex(value)}"
        return out
    out = f"key:\n{_hex(key)}\n" if layout.key_size else ""
    if layout.value_size:
        sep = "\n" if layout.value_size > 16 else " "
        out += "".join(f"value (CPU {cpu:02d}):{sep}{_hex(v)}\n" for cpu, v in enumerate(layout.cpu_values(value)))
    return out[:-1]


def _empty_slot(layout: MapLayout, err: int) -> bool:
    """An empty slot of a prog array or map of maps: bpftool leaves it out of a dump."""
    return err == errno.ENOENT and (layout.type in MAP_OF_MAPS_TYPES or layout.type == MapType.PROG_ARRAY)


def entry_error_plain(layout: MapLayout, key: bytes, err: int) -> str | None:
    """bpftool's line for an entry whose lookup failed; None where it prints nothing."""
    if _empty_slot(layout, err):
        return None
    message = "<no entry>" if err == errno.ENOENT else \
        "<cannot read>" if err == errno.ENOSPC and layout.type == MapType.REUSEPORT_SOCKARRAY else os.strerror(err)
    break_names = layout.key_size > 16 or len(message) > 16
    single_line = layout.key_size + len(message) <= 24 and not break_names
    sep = "\n" if break_names else " "
    return f"key:{sep}{_hex(key)}" + ("  " if single_line else "\n") + f"value:{sep}{message}"


def entry_json(layout: MapLayout, key: bytes, value: bytes, formatted: dict | None = None) -> dict:
    """One entry as bpftool -j prints it: bytes as hex strings, and the BTF view under "formatted"."""
    entry: dict = {"key": _hex_json(key)}
    if layout.per_cpu:
        entry["values"] = [{"cpu": cpu, "value": _hex_json(v)} for cpu, v in enumerate(layout.cpu_values(value))]
    else:
        entry["value"] = _hex_json(value)
        if layout.type in MAP_OF_MAPS_TYPES:  # added in bpftool 7.2; 7.1 prints only the bytes
            entry["inner_map_id"] = int.from_bytes(value[:4], "little")
    if formatted is not None:
        entry["formatted"] = formatted
    return entry


def entry_error_json(layout: MapLayout, key: bytes, err: int) -> dict | None:
    if _empty_slot(layout, err):
        return None
    return {"key": _hex_json(key), "value": {"error": os.strerror(err)}}


def formatted_entry(fmt: ValueFormatter, layout: MapLayout, key: bytes, value: bytes) -> dict:
    """An entry's key and value(s) decoded with the map's BTF, as bpftool's do_dump_btf builds it."""
    out: dict = {}
    if layout.btf_key_type_id:
        out["key"] = fmt.format(layout.btf_key_type_id, key)
    value_type = layout.btf_vmlinux_value_type_id or layout.btf_value_type_id
    if layout.per_cpu:
        out["values"] = [{"cpu": cpu, "value": fmt.format(value_type, v)}
                         for cpu, v in enumerate(layout.cpu_values(value))]
    else:
        out["value"] = fmt.format(value_type, value)
    return out


def _formatter(layout: MapLayout, plain: bool) -> ValueFormatter | None:
    btf = map_value_btf(layout)
    return ValueFormatter(btf, plain=plain) if btf is not None else None


def _header_json(layout: MapLayout) -> dict:
    """The map fields bpftool puts before "elements" when one dump covers several maps."""
    rec = {"id": layout.id, "type": type_name(MapType, layout.type) or layout.type}
    if layout.name:
        rec["name"] = layout.name
    rec["flags"] = layout.flags
    return rec


def _header_plain(layout: MapLayout) -> str:
    mtype = type_name(MapType, layout.type)
    return f"{layout.id}: " + (f"{mtype}  " if mtype else f"type {layout.type}  ") + \
        (f"name {layout.name}  " if layout.name else "") + f"flags {layout.flags:#x}"


def _walk_error(layout: MapLayout, exc: KernelError) -> BPFError:
    what = f"map {layout.id}" + (f" ({layout.name})" if layout.name else "")
    if layout.type in (MapType.RINGBUF, MapType.USER_RINGBUF):
        return MapError(f"cannot dump {what}: a ring buffer has no entries to list; read its records "
                        f"with pybpf.kernel.RingBufReader")
    if layout.type in (MapType.QUEUE, MapType.STACK, MapType.BLOOM_FILTER):
        return MapError(f"cannot dump {what}: {type_name(MapType, layout.type)} maps have no keys; "
                        f"use 'pybpf map lookup' (peek) instead")
    return exc


def run_dump(args: argparse.Namespace) -> int:
    """bpftool map dump: hex entries, or for maps with BTF the decoded values (plain and -j)."""
    words = _take_options(args)
    if not words:
        raise BPFError(f"name a map: {selector_help('map')}")
    selector, rest = split_selector("map", words)
    _no_more(rest)
    fds = open_selected("map", selector)
    try:
        layouts = [MapLayout.of_fd(fd) for fd in fds]
        as_json = wants_json(args)
        btf_plain = not as_json and all(layout.btf_id for layout in layouts)
        several = len(fds) > 1
        tree: list = []
        text: list[str] = []
        failure: BPFError | None = None
        for fd, layout in zip(fds, layouts):
            fmt = _formatter(layout, plain=btf_plain) if as_json or btf_plain else None
            elements: list = []
            lines: list[str] = [_header_plain(layout)] if several and not (as_json or btf_plain) else []
            found = 0
            try:
                for key, value, err in map_entries(fd, layout):
                    if value is None:
                        shown = entry_error_json(layout, key, err) if as_json else \
                            None if btf_plain else entry_error_plain(layout, key, err)
                        if shown is not None:
                            (elements if as_json else lines).append(shown)
                        continue
                    found += 1
                    if as_json:
                        elements.append(entry_json(layout, key, value,
                                                   formatted_entry(fmt, layout, key, value) if fmt else None))
                    elif btf_plain:
                        elements.append(formatted_entry(fmt, layout, key, value) if fmt else entry_plain(layout, key, value))
                    else:
                        lines.append(entry_plain(layout, key, value))
            except KernelError as exc:
                failure = _walk_error(layout, exc)
            if as_json or btf_plain:
                tree.append({**_header_json(layout), "elements": elements} if several else elements)
            else:
                lines.append(f"Found {found} element{'s' if found != 1 else ''}")
                text.append("\n".join(lines))
            if failure is not None:
                break
        if as_json or btf_plain:
            print_json(tree if several else tree[0], args.pretty or btf_plain)
        else:
            emit("\n\n".join(text) + "\n")
        if failure is not None:
            raise failure
    finally:
        for fd in fds:
            close_fd(fd)
    return 0


def run_lookup(args: argparse.Namespace) -> int:
    m, rest = _open_one(_take_options(args))
    with m:
        key, rest = _key(m, rest, args.key)
        _no_more(rest)
        layout = MapLayout.of_fd(m.fd)
        value, err = lookup_entry(m.fd, layout, key)
        if value is None:
            if err != errno.ENOENT:
                raise MapError(f"lookup on {m.describe()} failed: {os.strerror(err)}")
            if wants_json(args):
                print("null")
            else:
                print(f"key:\n{_hex(key or b'')}\n\nNot found")
            return 1
        fmt = _formatter(layout, plain=not wants_json(args))
        if wants_json(args):
            print_json(entry_json(layout, key or b"", value,
                                  formatted_entry(fmt, layout, key or b"", value) if fmt else None), args.pretty)
        elif fmt is not None:
            print_json(formatted_entry(fmt, layout, key or b"", value), True)
        else:
            emit(entry_plain(layout, key or b"", value) + "\n")
    return 0


def run_update(args: argparse.Namespace) -> int:
    m, rest = _open_one(_take_options(args))
    from ..kernel.syscall import close_fd

    with m:
        key, rest = _key(m, rest, args.key)
        value, rest, fds = _value(m, rest, args.value)
        try:
            flags = 0
            if rest and rest[0] in _FLAGS:
                flags = _FLAGS[rest.pop(0)]
            _no_more(rest)
            try:
                m.update_raw(key, value, flags)
            except KeyError as exc:  # flags=exist on a missing key
                raise MapError(f"update on {exc.args[0]}") from None
        finally:
            for fd in fds:
                close_fd(fd)
    return 0


def run_delete(args: argparse.Namespace) -> int:
    m, rest = _open_one(_take_options(args))
    with m:
        key, rest = _key(m, rest, args.key)
        _no_more(rest)
        if not m.delete_raw(key):
            raise MapError(f"delete on {m.describe()}: no entry with key {_hex(key or b'')}")
    return 0


def run_getnext(args: argparse.Namespace) -> int:
    m, rest = _open_one(_take_options(args))
    with m:
        key, rest = _key(m, rest, args.key, required=False)
        _no_more(rest)
        nxt = m.next_key_raw(key)
        if nxt is None:
            raise MapError(f"{m.describe()}: no key after {'the last one' if key else 'the start (the map is empty)'}")
        if wants_json(args):
            print_json({"key": _hex_json(key) if key else None, "next_key": _hex_json(nxt)}, args.pretty)
        else:
            print((f"key:\n{_hex(key)}" if key else "key: None") + f"\nnext key:\n{_hex(nxt)}")
    return 0


def run_pin(args: argparse.Namespace) -> int:
    m, rest = _open_one(_take_options(args))
    with m:
        if len(rest) != 1:
            raise BPFError("usage: pybpf map pin MAP PATH")
        m.pin(rest[0])
    return 0


def run_freeze(args: argparse.Namespace) -> int:
    m, rest = _open_one(_take_options(args))
    with m:
        _no_more(rest)
        m.freeze()
    return 0


def _no_more(rest: list[str]) -> None:
    if rest:
        raise BPFError(f"unexpected arguments: {' '.join(rest)}")


RUNNERS = {"dump": run_dump, "lookup": run_lookup, "update": run_update, "delete": run_delete,
           "getnext": run_getnext, "pin": run_pin, "freeze": run_freeze}
