"""Kernel backend: the bpf() syscall, maps, programs, links, events.

pybpf's equivalent of libbpf, in Python: objects are created from specs (or
explicit parameters), own their file descriptors, and detach/unload when
closed.  Start with ``ObjectSpec.load(backend="kernel")`` (an :class:`Object`),
or :class:`Map`, :class:`Program`, :class:`Collection` for hand-made ones.
"""

from .attach import attach_perf_fd, interface_index
from .btf_object import KernelBTF, minimal_btf
from ..object.codec import Codec, IntCodec, RawCodec, StructCodec
from .collection import Collection
from .loader import Object, load_spec, unavailable
from .features import (
    kernel_version, supports_helper, supports_map_type, supports_prog_type, require_map_type, require_prog_type,
)
from .fs import ensure_bpffs, online_cpus, possible_cpus, tracefs
from .cgroup import CGROUP_HOOKS, cgroup2_root
from .features import probe_features
from .introspect import enable_stats
from .link import (
    BPFLink, IterLink, Link, LinkGroup, LinkInfo, PerfEventLink, ProgAttachLink, SocketFilterLink, TCFilterLink,
)
from .usdt import USDTLink, USDTProbe, usdt_probes
from .maps import BloomFilterMap, Map, MapInfo, MapOfMaps, ProgArray, QueueMap, RingBuf
from .perf import HardwareEvent, PerfType, SoftwareEvent
from .perfbuf import PerfBufReader, PerfEventArray
from .program import Program, ProgramInfo, TestRunResult
from .ringbuf import RingBufReader
from .stacks import FoldedStacks, StackTraceMap, decode_stack
from .symbolize import Frame, KernelSymbols, ProcessSymbols, kernel_symbols
from .syscall import btf_ids, link_ids, map_ids, prog_ids
from .tracepipe import TraceLine, TracePipe, trace_pipe
from .uapi import ANY, EXIST, NOEXIST, AttachType, LinkType, MapFlags, MapType, ProgFlags, ProgType, XDPFlags
from .verifier import SourceLine

# ObjectSpec.load(backend="kernel") and backend="auto" (which falls back to the VM when `unavailable` says why).
from ..object.spec import register_backend as _register_backend

_register_backend("kernel", load_spec, unavailable)

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
