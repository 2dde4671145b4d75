"""kprobes, kretprobes, syscall probes and kprobe.multi links.

A kprobe is a perf event of the dynamic ``kprobe`` PMU (4.17+), named by
function and offset; kprobe.multi (5.18+) attaches one program to many
functions in one BPF link through fprobe.  Kernels built without kprobes
answer with a NotSupportedError that names the missing piece.
"""

from __future__ import annotations

import ctypes
import difflib
import errno
import fnmatch
import os
from typing import Any, Sequence

from ..errors import LinkError, NotSupportedError
from .attach import attach_perf_fd, expect_type
from .features import config_cause
from .link import BPFLink, PerfEventLink
from .perf import PerfEventAttr, open_event, pmu_type, retprobe_bit
from .symbolize import kernel_symbols
from .syscall import CAP_BPF, CAP_PERFMON, bpf_errno, kernel_error
from .uapi import ENOTSUPP, AttachType, Cmd, LinkCreateAttr, ProgType

KPROBE_PMU = "/sys/bus/event_source/devices/kprobe"
KPROBE_MULTI_RETURN = 1


def require_kprobes() -> int:
    """The kprobe PMU type, or NotSupportedError saying why this kernel has none."""
    if not os.path.exists(KPROBE_PMU):
        cause = config_cause("KPROBES") or config_cause("KPROBE_EVENTS")
        reason = f"there is no kprobe PMU at {KPROBE_PMU}"
        if cause:
            reason += f" ({cause})"
        raise NotSupportedError("kprobes", reason=reason)
    return pmu_type("kprobe")


def _check_function(function: str) -> None:
    syms = kernel_symbols()
    if syms.address_of(function) is None:
        near = difflib.get_close_matches(function, syms.names(), n=3)
        hint = f"; did you mean {', '.join(near)}?" if near else ""
        raise LinkError(f"no kernel function {function!r} in /proc/kallsyms{hint}")


def attach_kprobe(prog: Any, function: str, offset: int = 0, *, retprobe: bool = False, cookie: int = 0) -> PerfEventLink:
    """A kprobe (or kretprobe) on kernel ``function`` + ``offset``."""
    kind = "kretprobe" if retprobe else "kprobe"
    what = f"{kind} {function}" + (f"+{offset:#x}" if offset else "")
    expect_type(prog, what, ProgType.KPROBE)
    pmu = require_kprobes()
    _check_function(function)
    name = ctypes.create_string_buffer(function.encode())
    attr = PerfEventAttr(type=pmu, config=(1 << retprobe_bit("kprobe")) if retprobe else 0,
                         config1=ctypes.addressof(name), config2=offset, sample_period=1, wakeup_events=1)
    return attach_perf_fd(prog, open_event(attr, -1, 0, what), what, cookie)


def syscall_function(syscall: str) -> str:
    """The kernel function of a system call on this architecture ('openat' -> '__x64_sys_openat')."""
    syms = kernel_symbols()
    for prefix in ("__x64_sys_", "__se_sys_", "sys_"):
        if syms.address_of(prefix + syscall) is not None:
            return prefix + syscall
    raise LinkError(f"no system call {syscall!r} in this kernel (looked for __x64_sys_{syscall} in /proc/kallsyms)")


def attach_ksyscall(prog: Any, syscall: str, *, retprobe: bool = False, cookie: int = 0) -> PerfEventLink:
    """A kprobe on the entry (or return) of system call ``syscall`` ('openat')."""
    expect_type(prog, f"ksyscall {syscall}", ProgType.KPROBE)
    require_kprobes()
    return attach_kprobe(prog, syscall_function(syscall), retprobe=retprobe, cookie=cookie)


def attach_kprobe_multi(prog: Any, functions: str | Sequence[str], *, retprobe: bool = False,
                        cookies: Sequence[int] = ()) -> BPFLink:
    """One kprobe.multi link (5.18+) over many functions: a glob pattern ('tcp_*') or a list of names."""
    kind = "kretprobe.multi" if retprobe else "kprobe.multi"
    what = f"{kind} {functions if isinstance(functions, str) else ','.join(functions[:3])}"
    expect_type(prog, what, ProgType.KPROBE)
    if isinstance(functions, str):
        syms = kernel_symbols()
        names = sorted({n for n in syms.names() if fnmatch.fnmatchcase(n, functions) and syms.is_function(n)})
        if not names:
            raise LinkError(f"no kernel function matches {functions!r}")
    else:
        names = list(functions)
        for n in names:
            _check_function(n)
    if cookies and len(cookies) != len(names):
        raise LinkError(f"{len(cookies)} cookies for {len(names)} functions")
    bufs = [ctypes.create_string_buffer(n.encode()) for n in names]
    syms_arr = (ctypes.c_uint64 * len(names))(*[ctypes.addressof(b) for b in bufs])
    cookie_arr = (ctypes.c_uint64 * len(names))(*cookies) if cookies else None
    attr = LinkCreateAttr(prog_fd=prog.fd, attach_type=AttachType.TRACE_KPROBE_MULTI)
    attr.target.kprobe_multi.flags = KPROBE_MULTI_RETURN if retprobe else 0
    attr.target.kprobe_multi.cnt = len(names)
    attr.target.kprobe_multi.syms = ctypes.addressof(syms_arr)
    if cookie_arr is not None:
        attr.target.kprobe_multi.cookies = ctypes.addressof(cookie_arr)
    fd, err = bpf_errno(Cmd.LINK_CREATE, attr)
    if not err:
        return BPFLink(fd, program=prog, description=f"{kind} on {len(names)} functions")
    if err in (errno.EOPNOTSUPP, ENOTSUPP) or (err == errno.EINVAL and config_cause("FPROBE")):
        cause = config_cause("FPROBE")
        raise NotSupportedError("kprobe.multi links", None if cause else "5.18", reason=cause)
    if err == errno.EINVAL:
        raise LinkError(f"cannot attach {prog.describe()} to {what}: the kernel refused (EINVAL); kprobe.multi "
                        "programs must be loaded with expected_attach_type=TRACE_KPROBE_MULTI")
    if err == errno.ENOENT:
        raise LinkError(f"cannot attach {prog.describe()} to {what}: a function is not traceable")
    raise kernel_error(err, f"cannot attach {prog.describe()} to {what}", (CAP_BPF, CAP_PERFMON))
