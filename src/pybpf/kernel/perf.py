"""perf events: the hooks tracepoint, uprobe and sampling programs hang from.

A BPF program attaches to a perf event fd (BPF_LINK_CREATE with
BPF_PERF_EVENT, or the older PERF_EVENT_IOC_SET_BPF ioctl); this module opens
those fds: tracepoints by their tracefs id, uprobes through the dynamic
``uprobe`` PMU, and software CPU-clock sampling events.
"""

from __future__ import annotations

import ctypes
import errno
import os
from enum import IntEnum

from ..errors import LinkError, NotSupportedError
from .fs import tracefs
from .syscall import CAP_PERFMON, kernel_error, perf_event_open

c_u16, c_u32, c_s32, c_u64 = ctypes.c_uint16, ctypes.c_uint32, ctypes.c_int32, ctypes.c_uint64


class PerfType(IntEnum):
    HARDWARE = 0
    SOFTWARE = 1
    TRACEPOINT = 2
    HW_CACHE = 3
    RAW = 4
    BREAKPOINT = 5


class SoftwareEvent(IntEnum):
    CPU_CLOCK = 0
    TASK_CLOCK = 1
    PAGE_FAULTS = 2
    CONTEXT_SWITCHES = 3
    CPU_MIGRATIONS = 4
    PAGE_FAULTS_MIN = 5
    PAGE_FAULTS_MAJ = 6
    ALIGNMENT_FAULTS = 7
    EMULATION_FAULTS = 8
    DUMMY = 9
    BPF_OUTPUT = 10


class HardwareEvent(IntEnum):
    CPU_CYCLES = 0
    INSTRUCTIONS = 1
    CACHE_REFERENCES = 2
    CACHE_MISSES = 3
    BRANCH_INSTRUCTIONS = 4
    BRANCH_MISSES = 5
    BUS_CYCLES = 6


PERF_SAMPLE_RAW = 1 << 10
PERF_FLAG_FD_CLOEXEC = 1 << 3

# ioctl numbers: _IO('$', n) and _IOW('$', 8, __u32)
PERF_EVENT_IOC_ENABLE = 0x2400
PERF_EVENT_IOC_DISABLE = 0x2401
PERF_EVENT_IOC_SET_BPF = 0x40042408

# attr.flags bits
FLAG_DISABLED = 1 << 0
FLAG_FREQ = 1 << 10
FLAG_WATERMARK = 1 << 14


class PerfEventAttr(ctypes.Structure):
    """struct perf_event_attr (PERF_ATTR_SIZE_VER8, 136 bytes)."""

    _fields_ = [
        ("type", c_u32), ("size", c_u32), ("config", c_u64),
        ("sample_period", c_u64),  # or sample_freq when FLAG_FREQ
        ("sample_type", c_u64), ("read_format", c_u64), ("flags", c_u64),
        ("wakeup_events", c_u32),  # or wakeup_watermark
        ("bp_type", c_u32),
        ("config1", c_u64),  # uprobe_path / kprobe_func / bp_addr
        ("config2", c_u64),  # probe_offset / kprobe_addr / bp_len
        ("branch_sample_type", c_u64), ("sample_regs_user", c_u64), ("sample_stack_user", c_u32),
        ("clockid", c_s32), ("sample_regs_intr", c_u64), ("aux_watermark", c_u32),
        ("sample_max_stack", c_u16), ("_reserved2", c_u16), ("aux_sample_size", c_u32),
        ("_reserved3", c_u32), ("sig_data", c_u64), ("config3", c_u64),
    ]

    def __init__(self, **fields):
        super().__init__(**fields)
        self.size = ctypes.sizeof(PerfEventAttr)


def open_event(attr: PerfEventAttr, pid: int, cpu: int, what: str) -> int:
    """perf_event_open or a clear error naming ``what`` (ESRCH: no such process, etc.)."""
    fd, err = perf_event_open(attr, pid, cpu)
    if not err:
        return fd
    if err == errno.ESRCH:
        raise LinkError(f"cannot open {what}: no process with pid {pid}")
    if err == errno.ENOENT and attr.type == PerfType.TRACEPOINT:
        raise LinkError(f"cannot open {what}: the kernel has no such tracepoint")
    if err == errno.ENODEV:
        raise LinkError(f"cannot open {what}: no such CPU ({cpu}) or PMU")
    if err == errno.EOPNOTSUPP and attr.type == PerfType.HARDWARE:
        raise LinkError(f"cannot open {what}: this machine has no hardware PMU for it (use a software event)")
    raise kernel_error(err, f"cannot open {what} (perf_event_open)", (CAP_PERFMON,))


def _read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def tracepoint_id(category: str, name: str) -> int:
    """The id tracefs gives ``category/name``; LinkError with near names when it does not exist."""
    path = tracefs("events", category, name, "id")
    try:
        return int(_read(path))
    except FileNotFoundError:
        pass
    import difflib

    cats_dir = tracefs("events")
    if not os.path.isdir(os.path.join(cats_dir, category)):
        near = difflib.get_close_matches(category, os.listdir(cats_dir), n=3)
        hint = f"; did you mean {', '.join(near)}?" if near else ""
        raise LinkError(f"no tracepoint category {category!r} in {cats_dir}{hint}")
    near = difflib.get_close_matches(name, os.listdir(os.path.join(cats_dir, category)), n=3)
    hint = f"; did you mean {', '.join(near)}?" if near else ""
    raise LinkError(f"no tracepoint {category}/{name} (looked for {path}){hint}")


def open_tracepoint(category: str, name: str) -> int:
    attr = PerfEventAttr(type=PerfType.TRACEPOINT, config=tracepoint_id(category, name), sample_period=1,
                         sample_type=PERF_SAMPLE_RAW, wakeup_events=1)
    return open_event(attr, -1, 0, f"tracepoint {category}/{name}")


def _pmu_file(pmu: str, *parts: str) -> str:
    return os.path.join("/sys/bus/event_source/devices", pmu, *parts)


def pmu_type(pmu: str) -> int:
    """The dynamic PMU type of ``pmu`` ('uprobe', 'kprobe')."""
    try:
        return int(_read(_pmu_file(pmu, "type")))
    except FileNotFoundError:
        raise NotSupportedError(f"{pmu}s through perf_event_open", "4.17",
                                reason=f"{_pmu_file(pmu, 'type')} is missing (CONFIG_{pmu.upper()}_EVENTS?)") from None


def retprobe_bit(pmu: str) -> int:
    """The config bit that turns a probe into a return probe ('config:0' in the PMU format)."""
    try:
        text = _read(_pmu_file(pmu, "format", "retprobe"))
    except FileNotFoundError:
        return 0
    return int(text.split(":")[1].split("-")[0])


def open_uprobe(path: str, offset: int, pid: int | None, retprobe: bool, ref_ctr_offset: int = 0) -> int:
    name = ctypes.create_string_buffer(os.fsencode(path))
    config = (1 << retprobe_bit("uprobe")) if retprobe else 0
    if ref_ctr_offset:
        config |= ref_ctr_offset << 32
    attr = PerfEventAttr(type=pmu_type("uprobe"), config=config, config1=ctypes.addressof(name), config2=offset,
                         sample_period=1, wakeup_events=1)
    kind = "uretprobe" if retprobe else "uprobe"
    pid_arg = -1 if pid is None else pid
    return open_event(attr, pid_arg, 0 if pid_arg == -1 else -1, f"{kind} {path}+{offset:#x}")


def open_sampling(cpu: int, *, frequency: int | None = None, period: int | None = None, pid: int = -1,
                  type: int = PerfType.SOFTWARE, config: int = SoftwareEvent.CPU_CLOCK) -> int:
    """A sampling event on one CPU: every ``period`` events, or ``frequency`` times a second."""
    attr = PerfEventAttr(type=type, config=config)
    if frequency:
        attr.sample_period = frequency
        attr.flags |= FLAG_FREQ
    else:
        attr.sample_period = period or 1_000_000
    return open_event(attr, pid, cpu, f"perf event type {type} config {config} on CPU {cpu}")
