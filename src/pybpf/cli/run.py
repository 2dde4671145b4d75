"""`pybpf run`: compile, load, attach, and show what a BPF program sees, until Ctrl-C or --duration.

What it shows: bpf_printk lines (through a private tracefs instance, so other
readers keep theirs), ring buffer and perf buffer records decoded through the
object's BTF, and at the end every non-empty map and global variable, per-CPU
values summed and histogram-shaped values drawn as log2 bars.  Status lines go
to stderr, data to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import selectors
import signal
import sys
import time
from typing import Any, Callable

from ..errors import BPFError
from .objfile import open_spec

EXAMPLES = """\
examples:
  pybpf run hello.bpf.c                       compile, load, attach; print bpf_printk lines until Ctrl-C
  pybpf run syscount.bpf.o --duration 5       count for 5 s, then print the maps
  pybpf run syscount.bpf.c --set target_tgid=1234
                                              set a const volatile (.rodata) variable before loading
  pybpf run xdp_firewall.bpf.c --iface veth0  XDP and tc programs attach to --iface
  pybpf run execsnoop.bpf.c --json            ring buffer records as JSON lines
  pybpf run uprobe.bpf.c --pid 4321           uprobes only fire in process 4321
  pybpf run profile.bpf.o --freq 99           perf_event programs sample at 99 Hz on every CPU
  pybpf run sock.bpf.o --cgroup /sys/fs/cgroup/unified/app

Programs are attached by their SEC() names, like libbpf's skeletons: tracepoints,
raw and BTF tracepoints, uprobes naming binary:function, USDT probes.  XDP/tc need
--iface, cgroup programs --cgroup, perf_event programs --freq; the rest (iterators,
socket filters, ...) is loaded and listed as skipped.  Records of a ring buffer or
perf buffer are decoded as the struct of the map's __type(value, ...), else the
struct named by --event-type, else the object's struct whose size matches.
Exit status: 0, 1 on an error (one line on stderr; nothing stays attached).
"""

# helper ids that write to the trace pipe: bpf_trace_printk, bpf_trace_vprintk
_PRINTK_HELPERS = frozenset({6, 177})


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "run", help="compile, load and attach a BPF program; stream its output and print its maps",
        description="Run a BPF program in the kernel: compile FILE.bpf.c with clang (or take a compiled .o), "
                    "load every program, attach those whose section says where, stream bpf_printk lines and "
                    "ring/perf buffer records, and on Ctrl-C or after --duration print its maps and detach.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", metavar="FILE", help="BPF C source (.c) or a compiled BPF object (.o)")
    p.add_argument("--iface", metavar="IF", help="network interface for XDP and tc programs")
    p.add_argument("--pid", type=int, metavar="PID", help="only this process, for uprobes, USDT and perf events")
    p.add_argument("--cgroup", metavar="PATH", help="cgroup v2 directory for cgroup programs")
    p.add_argument("--freq", type=int, metavar="HZ", help="sampling frequency of perf_event programs")
    p.add_argument("--duration", type=float, metavar="SECONDS", help="stop after this long (default: Ctrl-C)")
    p.add_argument("--json", action="store_true", help="events and maps as JSON lines")
    p.add_argument("--event-type", metavar="STRUCT", help="decode ring/perf buffer records as this struct")
    p.add_argument("--set", action="append", default=[], metavar="VAR=VALUE",
                   help="set a global variable (.rodata/.data/.bss) before loading; repeatable")
    p.add_argument("--backend", choices=("kernel",), default="kernel", help="where to run (default: kernel)")
    p.add_argument("--cflags", action="append", default=[], metavar="FLAG",
                   help="extra clang flag when compiling a .c file (e.g. --cflags=-DDEBUG); repeatable")
    p.add_argument("-q", "--quiet", action="store_true", help="no status lines on stderr")
    p.set_defaults(func=run)


# --- the object -----------------------------------------------------------------------


def parse_value(text: str) -> Any:
    """A --set value: an integer (decimal, 0x, 0o, 0b, negative), true/false, or a string."""
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        return int(text, 0)
    except ValueError:
        return text


def apply_settings(spec: Any, settings: list[str]) -> None:
    for item in settings:
        name, sep, text = item.partition("=")
        if not sep or not name:
            raise BPFError(f"--set {item!r}: expected VAR=VALUE")
        var = spec.variables.get(name)
        if var is None:
            have = ", ".join(v for v, s in spec.variables.items() if s.map.internal != ".kconfig") or "none"
            raise BPFError(f"--set {name}: the object has no global variable {name!r} (it has: {have})")
        var.value = parse_value(text)


# --- events -----------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """A decoded value as JSON-able data: records become dicts, bytes hex."""
    if hasattr(value, "_asdict"):
        return {k: _plain(v) for k, v in value._asdict().items()}
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def format_fields(value: Any, prefix: str = "") -> str:
    """``field=value`` pairs of a record (nested records as ``a.b=``), or the value itself."""
    if hasattr(value, "_asdict"):
        parts = []
        for name, member in value._asdict().items():
            key = f"{prefix}{name}"
            parts.append(format_fields(member, key + ".") if hasattr(member, "_asdict") else f"{key}={_text(member)}")
        return " ".join(parts)
    return _text(value)


def _text(value: Any) -> str:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, str):
        return value if value and " " not in value else json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_text(v) for v in value) + "]"
    return str(value)


class RecordDecoder:
    """Decode ring/perf buffer records: a fixed codec, or the object's struct whose size fits each record."""

    size = None  # records vary: decoded one by one

    def __init__(self, spec: Any, fixed: Any = None):
        self.fixed = fixed
        self.spec = spec
        self._by_size: dict[int, Any] = {}

    def decode(self, data: bytes) -> Any:
        if self.fixed is not None:
            return self.fixed.decode(data)
        codec = self._by_size.get(len(data), False)
        if codec is False:
            codec = self._by_size[len(data)] = _struct_for_size(self.spec, len(data))
        return codec.decode(data) if codec is not None else bytes(data)

    def encode(self, value: Any) -> bytes:
        raise BPFError("event records are only decoded")


def _struct_for_size(spec: Any, size: int) -> Any:
    """The struct a record of ``size`` bytes most likely is: the object's own structs first (not the
    kernel types it reads through CO-RE), a name with "event" in it preferred; perf samples are padded
    to 8 bytes, so a struct up to 7 bytes shorter fits too."""
    from ..btf import Kind
    from ..object.codec import RecordCodec

    btf = spec.btf
    if btf is None:
        return None
    kernel_types: set[int] = set()
    if spec.btf_ext is not None:
        for records in spec.btf_ext.core_relos.values():
            kernel_types.update(r.type_id for r in records)
    candidates = [t for t in btf.types(Kind.STRUCT) if t.name and size - 8 < t.size <= size]
    if not candidates:
        return None
    candidates.sort(key=lambda t: (t.size != size, t.id in kernel_types, "event" not in t.name.lower(), t.id))
    try:
        return RecordCodec(btf.codec(candidates[0].id))
    except BPFError:
        return None


def event_decoder(obj: Any, name: str, event_type: str | None) -> RecordDecoder:
    spec = obj.spec
    if event_type:
        if spec.btf is None:
            raise BPFError(f"--event-type {event_type}: the object has no BTF (compile with -g)")
        from ..object.codec import RecordCodec

        try:
            t = spec.btf.find(event_type.removeprefix("struct ").strip(), "struct")
        except BPFError:
            raise BPFError(f"--event-type: the object's BTF has no struct {event_type!r}") from None
        return RecordDecoder(spec, RecordCodec(spec.btf.codec(t.id)))
    return RecordDecoder(spec, obj.maps[name].record_codec)


# --- maps at the end --------------------------------------------------------------------


def _is_int_list(value: Any) -> bool:
    return isinstance(value, list) and len(value) > 1 and all(isinstance(v, int) and not isinstance(v, bool)
                                                              for v in value)


def _sum_cpus(values: list) -> Any:
    """A per-CPU value as one: ints summed, int lists summed slot by slot, records field by field."""
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return sum(values)
    if all(_is_int_list(v) for v in values):
        return [sum(col) for col in zip(*values)]
    if all(hasattr(v, "_asdict") for v in values):
        fields = [v._asdict() for v in values]
        out = {}
        for key in fields[0]:
            column = [f[key] for f in fields]
            out[key] = _sum_cpus(column) if all(isinstance(c, int) and not isinstance(c, bool) or _is_int_list(c)
                                                for c in column) else column[0]
        return _Summed(out)
    return values


class _Summed(dict):
    """A record summed over CPUs: a dict that formats like a record."""

    def _asdict(self) -> dict:
        return dict(self)


def _empty(value: Any) -> bool:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value == 0
    if isinstance(value, (bytes, bytearray)):
        return not any(value)
    if isinstance(value, list):
        return all(_empty(v) for v in value)
    if hasattr(value, "_asdict"):
        return all(_empty(v) for v in value._asdict().values())
    return False


def _hist_slots(value: Any) -> tuple[str, list[int]] | None:
    """(label, counts) when the value is a histogram: an int array, or a record's int array ('slots')."""
    if _is_int_list(value) and len(value) >= 8:
        return "value", value
    if hasattr(value, "_asdict"):
        arrays = [(k, v) for k, v in value._asdict().items() if _is_int_list(v) and len(v) >= 8]
        if len(arrays) == 1:
            return arrays[0]
    return None


def map_report(name: str, live: Any) -> tuple[list[str], list[dict]]:
    """(text lines, JSON entries) of a map's non-empty entries; histograms drawn as bars."""
    from ..kernel.histogram import log2_hist_lines
    from ..object.kinds import MapType

    entries = []
    for key, value in live.items():
        if live.per_cpu:
            value = _sum_cpus(value)
        if not _empty(value):
            entries.append((key, value))
    if not entries:
        return [], []
    lines = [f"{name}:"]
    records = [{"key": _plain(k), "value": _plain(v)} for k, v in entries]
    # an array of counters indexed by slot, named like a histogram: one log2 histogram over the keys
    if live.type in (MapType.ARRAY, MapType.PERCPU_ARRAY) and all(isinstance(k, int) for k, _ in entries) and \
            all(isinstance(v, int) for _, v in entries) and any(w in name.lower() for w in ("hist", "slot", "dist")):
        counts = [0] * (max(k for k, _ in entries) + 1)
        for k, v in entries:
            counts[k] = v
        return lines + ["  " + ln for ln in log2_hist_lines(counts, "slot")], records
    for key, value in sorted(entries, key=lambda kv: _sort_key(kv[0])):
        hist = _hist_slots(value)
        if hist is not None:
            label, counts = hist
            rest = format_fields(_Summed({k: v for k, v in value._asdict().items() if k != label})) \
                if hasattr(value, "_asdict") else ""
            lines.append(f"  key {format_fields(key)}" + (f" {rest}" if rest else "") + ":")
            lines += ["    " + ln for ln in log2_hist_lines(counts, label)]
        else:
            lines.append(f"  {format_fields(key)}: {format_fields(value)}")
    return lines, records


def _sort_key(key: Any) -> tuple:
    return (0, key) if isinstance(key, int) else (1, str(key))


def report_maps(obj: Any, as_json: bool, out: Callable[[str], None]) -> None:
    from ..object.kinds import MapType

    skip = {MapType.RINGBUF, MapType.PERF_EVENT_ARRAY, MapType.PROG_ARRAY, MapType.ARRAY_OF_MAPS,
            MapType.HASH_OF_MAPS, MapType.STACK_TRACE, MapType.USER_RINGBUF, MapType.CGROUP_ARRAY,
            MapType.SOCKMAP, MapType.SOCKHASH, MapType.DEVMAP, MapType.DEVMAP_HASH, MapType.CPUMAP,
            MapType.XSKMAP, MapType.QUEUE, MapType.STACK, MapType.BLOOM_FILTER}
    maps: dict[str, list] = {}
    internal = {ms.name for ms in obj.spec.maps.values() if ms.is_internal}
    for name, live in obj.maps.items():
        if name in internal or live.type in skip or name.startswith("__bpf_usdt"):
            continue
        try:
            lines, records = map_report(name, live)
        except BPFError as exc:
            lines, records = [f"{name}: cannot be read ({exc})"], []
        if records:
            maps[name] = records
        if lines and not as_json:
            for line in lines:
                out(line)
    variables = {}
    for section in (".data", ".bss"):
        live = obj.section_variables(section)
        for var in live:
            try:
                value = live[var]
            except BPFError:
                continue
            if not _empty(value):
                variables[var] = value
    if as_json:
        out(json.dumps({"maps": maps, "globals": {k: _plain(v) for k, v in variables.items()}}))
    elif variables:
        out("globals:")
        for var, value in variables.items():
            out(f"  {var} = {format_fields(value)}")


# --- running ------------------------------------------------------------------------------


def _uses_printk(spec: Any, programs: Any) -> bool:
    for name in programs:
        for insn in spec.programs[name].instructions:
            if insn.opcode == 0x85 and insn.src == 0 and insn.imm in _PRINTK_HELPERS:
                return True
    return False


_CONVERSION = re.compile(r"%%|%[-+ #0]*(?:\d+|\*)?(?:\.\d+)?(?:hh|h|ll|l|z)?[diouxXcspBKkSb]?[a-zA-Z]?")


def printk_patterns(spec: Any) -> list[re.Pattern]:
    """Regular expressions of the object's printf-style strings (bpf_printk formats live in .rodata):
    trace pipe lines that match none of them come from other programs."""
    patterns = []
    for ms in spec.maps.values():
        if not (ms.internal or "").startswith(".rodata") or not ms.data:
            continue
        for raw in bytes(ms.data).split(b"\0"):
            try:
                text = raw.decode().rstrip("\n")
            except UnicodeDecodeError:
                continue
            if len(text) < 2 or not text.isprintable():
                continue
            pieces, last = [], 0
            for m in _CONVERSION.finditer(text):
                pieces.append(re.escape(text[last:m.start()]))
                pieces.append("%" if m.group() == "%%" else ".*?")
                last = m.end()
            pieces.append(re.escape(text[last:]))
            patterns.append(re.compile("".join(pieces), re.S))
    return patterns


def _describe_link(link: Any) -> str:
    return getattr(link, "description", "") or type(link).__name__


def run(args: argparse.Namespace) -> int:
    spec = open_spec(args.file, args.cflags)
    apply_settings(spec, args.set)
    status = (lambda msg: None) if args.quiet else (lambda msg: print(f"pybpf: {msg}", file=sys.stderr, flush=True))
    out = print
    stop = {"now": False}

    def on_signal(signum: int, frame: Any) -> None:
        if signum == signal.SIGINT and stop["now"]:
            raise KeyboardInterrupt  # a second Ctrl-C: stop without the map report
        stop["now"] = True

    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    signal.signal(signal.SIGTERM, on_signal)
    try:
        with spec.load(backend=args.backend) as obj:
            names = ", ".join(obj.programs) or "none"
            status(f"loaded {len(obj.programs)} program{'s' if len(obj.programs) != 1 else ''} ({names}) from "
                   f"{args.file}")
            for note in obj.notes:
                status(f"note: {note}")
            # Readers first, then attach: an event right after attaching is read, not lost; and from here
            # Ctrl-C ends the stream and still prints the maps.
            signal.signal(signal.SIGINT, on_signal)
            with _Sources(obj, args, status) as sources:
                links = obj.attach_all(iface=args.iface, cgroup=args.cgroup, pid=args.pid, freq=args.freq)
                attached = "; ".join(f"{link.program.name if getattr(link, 'program', None) else '?'} "
                                     f"({_describe_link(link)})" for link in links)
                line = f"attached {len(links)}" + (f": {attached}" if links else "")
                if obj.skipped:
                    line += "; skipped: " + "; ".join(f"{n} ({why})" for n, why in obj.skipped.items())
                status(line)
                sources.stream(args, out, status, stop)
            report_maps(obj, args.json, out)
        status("detached")
    except KeyboardInterrupt:
        return 130
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0


class _Sources:
    """What `run` streams: the trace pipe (when a program calls bpf_printk) and every ring/perf buffer."""

    def __init__(self, obj: Any, args: argparse.Namespace, status: Callable[[str], None]):
        from ..kernel.tracepipe import TracePipe
        from ..object.kinds import MapType

        self.selector = selectors.DefaultSelector()
        self.closers: list[Any] = []
        try:
            if _uses_printk(obj.spec, obj.programs):
                pipe = TracePipe(instance=f"pybpf_run_{os.getpid()}")
                self.closers.append(pipe)
                self.selector.register(pipe.fileno(), selectors.EVENT_READ, ("printk", pipe, printk_patterns(obj.spec)))
            for name, live in obj.event_maps().items():
                decoder = event_decoder(obj, name, args.event_type)
                if live.type == MapType.RINGBUF:
                    reader = live.reader(codec=decoder)
                else:
                    reader = live.reader(codec=decoder, lost_callback=lambda cpu, n, name=name: status(
                        f"{name}: lost {n} records on CPU {cpu}"))
                self.closers.append(reader)
                self.selector.register(reader.fileno(), selectors.EVENT_READ, ("events", reader, name))
        except BaseException:
            self.close()
            raise

    def stream(self, args: argparse.Namespace, out: Callable[[str], None], status: Callable[[str], None],
               stop: dict) -> None:
        """Print printk lines and buffer records until Ctrl-C, SIGTERM or --duration."""
        sel = self.selector
        if args.duration is None and not sel.get_map():
            status("nothing to stream; collecting until Ctrl-C")
        deadline = None if args.duration is None else time.monotonic() + args.duration
        try:
            while not stop["now"]:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                ready = sel.select(timeout=min(left, 0.5) if left is not None else 0.5) if sel.get_map() else \
                    time.sleep(min(left, 0.5) if left is not None else 0.5) or []
                for key, _ in ready:
                    _drain(key.data, args.json, out)
        except KeyboardInterrupt:
            pass
        for key in list(sel.get_map().values()):  # what arrived until the end
            _drain(key.data, args.json, out)

    def close(self) -> None:
        self.selector.close()
        for c in self.closers:
            c.close()

    def __enter__(self) -> "_Sources":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _drain(entry: tuple, as_json: bool, out: Callable[[str], None]) -> None:
    kind, source, name = entry
    if kind == "printk":
        for line in source.read(0):
            if name and line.function and not any(p.fullmatch(line.message) for p in name):
                continue  # another program's bpf_printk (the format is not one of ours)
            if as_json:
                out(json.dumps({"printk": line.message, "task": line.task, "pid": line.pid, "cpu": line.cpu,
                                "timestamp": line.timestamp}))
            elif line.function:
                out(f"{line.task}-{line.pid} [{line.cpu:03d}] {line.timestamp:.6f}: {line.message}")
            else:
                out(line.raw)
        return
    for record in source.consume():
        if as_json:
            out(json.dumps({"map": name, "event": _plain(record)}))
        else:
            out(f"{name}: {format_fields(record)}")


__all__ = ["apply_settings", "format_fields", "map_report", "open_spec", "parse_value", "register", "run"]
