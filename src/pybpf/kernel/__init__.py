"""Kernel backend: the bpf() syscall, maps, programs, links, events.

pybpf's equivalent of libbpf, in Python: objects are created from specs (or
explicit parameters), own their file descriptors, and detach/unload when
closed.  Start with ``ObjectSpec.load(backend="kernel")`` (an :class:`Object`),
or :class:`Map`, :class:`Program`, :class:`Collection` for hand-made ones.
"""

from __future__ import annotations

from typing import Any

from .._lazy import lazy_exports as _lazy_exports
from ..object.backends import register_backend as _register_backend

_EXPORTS = {
    ".attach": ("attach_perf_fd", "interface_index"),
    ".btf_object": ("KernelBTF", "minimal_btf"),
    "..object.codec": ("Codec", "IntCodec", "RawCodec", "StructCodec"),
    ".collection": ("Collection",),
    ".loader": ("Object", "load_spec", "unavailable"),
    ".features": ("kernel_version", "probe_features", "require_map_type", "require_prog_type", "supports_helper",
                  "supports_map_type", "supports_prog_type"),
    ".fs": ("ensure_bpffs", "online_cpus", "possible_cpus", "tracefs"),
    ".cgroup": ("CGROUP_HOOKS", "cgroup2_root"),
    ".introspect": ("enable_stats",),
    ".link": ("BPFLink", "IterLink", "Link", "LinkGroup", "LinkInfo", "PerfEventLink", "ProgAttachLink",
              "SocketFilterLink", "TCFilterLink"),
    ".usdt": ("USDTLink", "USDTProbe", "usdt_probes"),
    ".maps": ("BloomFilterMap", "Map", "MapInfo", "MapOfMaps", "ProgArray", "QueueMap", "RingBuf"),
    ".perf": ("HardwareEvent", "PerfType", "SoftwareEvent"),
    ".perfbuf": ("PerfBufReader", "PerfEventArray"),
    ".program": ("Program", "ProgramInfo", "TestRunResult"),
    ".ringbuf": ("RingBufReader",),
    ".stacks": ("FoldedStacks", "StackTraceMap", "decode_stack"),
    ".symbolize": ("Frame", "KernelSymbols", "ProcessSymbols", "kernel_symbols"),
    ".syscall": ("btf_ids", "link_ids", "map_ids", "prog_ids"),
    ".tracepipe": ("TraceLine", "TracePipe", "trace_pipe"),
    ".uapi": ("ANY", "EXIST", "NOEXIST", "AttachType", "LinkType", "MapFlags", "MapType", "ProgFlags", "ProgType",
              "XDPFlags"),
    ".verifier": ("SourceLine",),
}
# Every name loads with its module on first use: `pybpf prog load` needs the loader, not links, USDT or symbolizers.
__getattr__, __dir__ = _lazy_exports(__name__, globals(), _EXPORTS)


def _load_spec(spec: Any, **options: Any) -> Any:
    from .loader import load_spec

    return load_spec(spec, **options)


def _unavailable() -> str | None:
    from .loader import unavailable

    return unavailable()


# ObjectSpec.load(backend="kernel") and backend="auto" (which falls back to the VM when `unavailable` says why).
_register_backend("kernel", _load_spec, _unavailable)

__all__ = [
    "Object", "load_spec", "unavailable",
    "CGROUP_HOOKS", "IterLink", "ProgAttachLink", "TCFilterLink", "USDTLink", "USDTProbe", "cgroup2_root",
    "enable_stats", "probe_features", "usdt_probes",
    "ANY", "EXIST", "NOEXIST", "AttachType", "BPFLink", "BloomFilterMap", "Codec", "Collection", "FoldedStacks",
    "Frame", "HardwareEvent", "KernelSymbols", "ProcessSymbols", "StackTraceMap", "decode_stack", "kernel_symbols",
    "IntCodec", "KernelBTF", "Link", "LinkGroup", "LinkInfo", "LinkType", "Map", "MapFlags", "MapInfo",
    "MapOfMaps", "MapType", "PerfBufReader", "PerfEventArray", "PerfEventLink", "PerfType", "ProgArray", "ProgFlags", "ProgType", "Program",
    "ProgramInfo", "QueueMap", "RawCodec", "RingBuf", "RingBufReader", "SocketFilterLink", "SoftwareEvent",
    "SourceLine", "StructCodec", "TestRunResult", "TraceLine", "TracePipe", "XDPFlags", "attach_perf_fd", "btf_ids",
    "ensure_bpffs", "interface_index", "kernel_version", "link_ids", "map_ids", "minimal_btf", "online_cpus",
    "possible_cpus", "prog_ids", "require_map_type", "require_prog_type", "supports_helper",
    "supports_map_type", "supports_prog_type", "trace_pipe", "tracefs",
]
