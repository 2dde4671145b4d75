"""`pybpf map`: maps in the kernel, like `bpftool map` (list, show, dump, lookup, update, delete,
getnext, pin, freeze)."""

from __future__ import annotations

import argparse
import json

from ..errors import BPFError, MapError
from .bpfobjects import (
    add_output_options, each_selected, open_selected, print_json, selector_help, split_selector, wants_json,
)

EXAMPLES = """\
examples:
  pybpf map list                                   every map, like 'bpftool map'
  pybpf map show name counts --json
  pybpf map dump id 7                              every entry, hex bytes like bpftool
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
    from ..kernel.introspect import map_record, object_owners, pinned_paths

    owners = object_owners(("map",)) if args.pids else None
    pinned = pinned_paths("map") if args.bpffs else {}
    records = []
    for fd in each_selected("map", args.map):
        rec = map_record(fd, owners=owners)
        if rec["id"] in pinned:
            rec["pinned"] = pinned[rec["id"]]
        records.append(rec)
    if wants_json(args):
        print_json(records if not args.map or len(records) != 1 else records[0], args.pretty)
    else:
        for rec in records:
            print(format_plain(rec))
    return 0


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
    return " ".join(f"{b:02x}" for b in data)


def _hex_json(data: bytes) -> list[str]:
    return [f"0x{b:02x}" for b in data]


def entry_plain(m, key: bytes, value: bytes) -> str:
    """One entry as bpftool's print_entry_plain lays it out."""
    from ..object.kinds import MapType

    if not m.per_cpu:
        break_names = m.key_size > 16 or m.value_size > 16
        single_line = m.key_size + m.value_size <= 24 and not break_names
        sep = "\n" if break_names else " "
        out = ""
        if m.key_size:
            out += f"key:{sep}{_hex(key)}" + ("  " if single_line else "\n")
        if m.value_size:
            if m.type in (MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS):
                out += f"inner_map_id:{sep}{int.from_bytes(value[:4], 'little')} "
            else:
                out += f"value:{sep}{_hex(value)}"
        return out
    stride = (m.value_size + 7) & ~7
    out = f"key:\n{_hex(key)}\n" if m.key_size else ""
    for cpu in range(m.ncpus):
        sep = "\n" if m.value_size > 16 else " "
        out += f"value (CPU {cpu:02d}):{sep}{_hex(value[cpu * stride:cpu * stride + m.value_size])}\n"
    return out.rstrip("\n")


def entry_json(m, key: bytes, value: bytes) -> dict:
    from ..object.kinds import MapType

    if not m.per_cpu:
        entry = {"key": _hex_json(key), "value": _hex_json(value)}
        if m.type in (MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS):
            entry["inner_map_id"] = int.from_bytes(value[:4], "little")
        return entry
    stride = (m.value_size + 7) & ~7
    return {"key": _hex_json(key), "values": [{"cpu": cpu, "value": _hex_json(value[cpu * stride:cpu * stride + m.value_size])}
                                               for cpu in range(m.ncpus)]}


def _read_entries(m):
    """(key, value) bytes of every entry; prog arrays and maps of maps skip empty slots like bpftool."""
    for key in m.iter_keys_raw():
        value = m.lookup_raw(key)
        if value is not None:
            yield key, value


def run_dump(args: argparse.Namespace) -> int:
    m, rest = _open_one(_take_options(args))
    with m:
        if rest:
            raise BPFError(f"unexpected arguments: {' '.join(rest)}")
        entries = list(_read_entries(m))
        if wants_json(args):
            print_json([entry_json(m, k, v) for k, v in entries], args.pretty)
        else:
            for k, v in entries:
                print(entry_plain(m, k, v))
            print(f"Found {len(entries)} element{'s' if len(entries) != 1 else ''}")
    return 0


def run_lookup(args: argparse.Namespace) -> int:
    m, rest = _open_one(_take_options(args))
    with m:
        key, rest = _key(m, rest, args.key)
        _no_more(rest)
        value = m.lookup_raw(key)
        if value is None:
            if wants_json(args):
                print("null")
            else:
                print(f"key:\n{_hex(key or b'')}\n\nNot found")
            return 1
        if wants_json(args):
            print_json(entry_json(m, key or b"", value), args.pretty)
        else:
            print(entry_plain(m, key or b"", value))
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
