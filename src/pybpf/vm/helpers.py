"""Helper functions: a registry keyed by the kernel's helper ids and names, and the helpers themselves.

A helper is a Python callable ``func(vm, r1, ..., rN) -> int``; it reads and
writes program memory only through ``vm.memory`` (bounds- and
permission-checked), and returns what the kernel's helper returns, negative
errno values included.  Embedders add their own with
:meth:`HelperRegistry.register`.  A program calling a helper that is not
registered is refused when it is loaded, with the helper's name.
"""

from __future__ import annotations

import errno
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from ..errors import VMError, VMFault
from ..isa import helper_id
from .constants import helper_name

M64 = (1 << 64) - 1


@dataclass(frozen=True)
class Helper:
    """One helper: its kernel id and name, the callable, how many argument registers it reads.

    ``unwind``: when it returns 0 the whole program stops with r0 = 0 (the
    conformance suite's helper 5).  ``tail_call``: it returns the program to
    continue in (or None), the engines do the jump.  ``callbacks``: it may
    call back into the program (bpf_loop), so the engines tell it the frame
    depth first.
    """

    id: int
    name: str
    func: Callable[..., Any]
    args: int = 5
    unwind: bool = False
    tail_call: bool = False
    callbacks: bool = False


@dataclass
class HelperRegistry:
    """The helpers a VM offers, by id (what ``call N`` names) and by name."""

    by_id: dict[int, Helper] = field(default_factory=dict)

    def register(self, id: int | str, func: Callable[..., Any], *, name: str | None = None, args: int = 5,
                 unwind: bool = False, callbacks: bool = False) -> Helper:
        """Add (or replace) helper ``id`` (a number, or a kernel helper name like "ktime_get_ns").

        ``func(vm, r1, ..., r<args>) -> int`` is called with the raw 64-bit
        argument registers; return the value for r0 (negative errno values are
        fine).  Raise pybpf.errors.VMFault to stop the program with an error.
        """
        if isinstance(id, str):
            number = helper_id(id)
            if number is None:
                raise VMError(f"no kernel helper is called {id!r}; register it under a number instead")
            id = number
        if not 0 <= args <= 5:
            raise VMError(f"a helper takes 0 to 5 arguments, not {args}")
        helper = Helper(id, name or helper_name(id), func, args, unwind=unwind, callbacks=callbacks)
        self.by_id[id] = helper
        return helper

    def get(self, id: int) -> Helper | None:
        return self.by_id.get(id)

    def __contains__(self, id: object) -> bool:
        return id in self.by_id

    def resolve(self, id: int, error: Callable[[str], Exception]) -> Helper:
        helper = self.by_id.get(id)
        if helper is None:
            raise error(f"helper {helper_name(id)} (#{id}) is not available in the VM")
        return helper

    def copy(self) -> "HelperRegistry":
        return HelperRegistry(dict(self.by_id))

    def names(self) -> list[str]:
        return [h.name for h in sorted(self.by_id.values(), key=lambda h: h.id)]


_DEFAULTS = HelperRegistry()


def helper(name: str, args: int, **flags: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a built-in helper under its kernel name."""

    def deco(func: Callable[..., Any]) -> Callable[..., Any]:
        h = _DEFAULTS.register(name, func, args=args)
        if flags:
            _DEFAULTS.by_id[h.id] = replace(h, **flags)
        return func

    return deco


def default_helpers() -> HelperRegistry:
    """A fresh registry with every built-in helper (each VM gets its own copy)."""
    from . import helpers_maps, helpers_net, helpers_print  # they register themselves on import

    del helpers_maps, helpers_net, helpers_print

    return _DEFAULTS.copy()


def unwind_helper_registry() -> HelperRegistry:
    """The built-in helpers plus the conformance suite's helper 5: returns r1, stops the program on 0."""
    reg = default_helpers()
    reg.by_id[5] = Helper(5, "unwind", lambda vm, r1: r1, 1, unwind=True)
    return reg


def run_state(vm: Any) -> Any:
    run = vm.run
    if run is None:
        raise VMError("helpers can only be called while a program runs")
    return run


def neg(err: int) -> int:
    """-errno as the 64-bit register value a helper returns."""
    return (-err) & M64


# --- time, randomness, CPU, identity ------------------------------------------


@helper("ktime_get_ns", 0)
def ktime_get_ns(vm) -> int:
    return vm.clock_ns()


@helper("ktime_get_boot_ns", 0)
def ktime_get_boot_ns(vm) -> int:
    clock = getattr(time, "CLOCK_BOOTTIME", None)
    return time.clock_gettime_ns(clock) if clock is not None else vm.clock_ns()


@helper("ktime_get_coarse_ns", 0)
def ktime_get_coarse_ns(vm) -> int:
    clock = getattr(time, "CLOCK_MONOTONIC_COARSE", None)
    return time.clock_gettime_ns(clock) if clock is not None else vm.clock_ns()


@helper("ktime_get_tai_ns", 0)
def ktime_get_tai_ns(vm) -> int:
    clock = getattr(time, "CLOCK_TAI", None)
    return time.clock_gettime_ns(clock) if clock is not None else time.time_ns()


@helper("jiffies64", 0)
def jiffies64(vm) -> int:
    return vm.clock_ns() // 4_000_000  # HZ=250


@helper("get_prandom_u32", 0)
def get_prandom_u32(vm) -> int:
    return vm.random.getrandbits(32)


@helper("get_smp_processor_id", 0)
def get_smp_processor_id(vm) -> int:
    return run_state(vm).cpu


@helper("get_numa_node_id", 0)
def get_numa_node_id(vm) -> int:
    return 0


@helper("get_current_pid_tgid", 0)
def get_current_pid_tgid(vm) -> int:
    ident = vm.identity
    return (ident.tgid << 32) | ident.pid


@helper("get_current_uid_gid", 0)
def get_current_uid_gid(vm) -> int:
    ident = vm.identity
    return (ident.gid << 32) | ident.uid


@helper("get_current_comm", 2)
def get_current_comm(vm, buf: int, size: int) -> int:
    size &= 0xFFFFFFFF
    if size == 0:
        return neg(errno.EINVAL)
    comm = vm.identity.comm[:size - 1]
    vm.memory.store(buf, comm + bytes(size - len(comm)), "bpf_get_current_comm buffer")
    return 0


@helper("get_current_task", 0)
def get_current_task(vm) -> int:
    return vm.identity.task


@helper("get_current_task_btf", 0)
def get_current_task_btf(vm) -> int:
    return vm.identity.task


@helper("get_current_cgroup_id", 0)
def get_current_cgroup_id(vm) -> int:
    return vm.identity.cgroup_id


# --- reading memory ("probe" reads come from VM memory: there is no kernel to read) ---------------


def _context_bytes(vm, address: int) -> bytes | None:
    """The context struct's bytes from ``address`` on, when it points into the context: its fields
    are not plain memory for loads, but bpf_probe_read(ctx + offset) reads the struct (tracepoint
    __data_loc strings are read that way)."""
    region = vm.memory.region_at(address)
    if region is not None and region.kind == "ctx" and vm.run is not None and vm.run.ctx is not None:
        return vm.run.ctx.raw()[address - region.address:]
    return None


def _read_any(vm, address: int, size: int, what: str) -> bytes:
    raw = _context_bytes(vm, address)
    if raw is not None and size <= len(raw):
        return raw[:size]
    return vm.memory.load(address, size, what)


def _probe_read(vm, dst: int, size: int, src: int, what: str) -> int:
    size &= 0xFFFFFFFF
    out = vm.memory.view(dst, size, write=True, what=f"{what} destination")
    try:
        data = _read_any(vm, src, size, what) if size else b""
    except VMFault:
        # The kernel reads unsafe pointers without faulting: it zeroes the buffer and returns -EFAULT.
        out[:] = bytes(size)
        return neg(errno.EFAULT)
    out[:] = data
    return 0


def _probe_read_str(vm, dst: int, size: int, src: int, what: str) -> int:
    size &= 0xFFFFFFFF
    if size == 0:
        return 0
    out = vm.memory.view(dst, size, write=True, what=f"{what} destination")
    raw = _context_bytes(vm, src)
    try:
        text = raw.split(b"\0", 1)[0] if raw is not None else vm.memory.load_cstr(src, size - 1, what)
    except VMFault:
        out[0] = 0
        return neg(errno.EFAULT)
    text = text[:size - 1]
    out[:len(text) + 1] = text + b"\0"
    return len(text) + 1


for _name in ("probe_read", "probe_read_kernel", "probe_read_user"):
    _DEFAULTS.register(_name, lambda vm, d, s, p, _n=_name: _probe_read(vm, d, s, p, "bpf_" + _n), args=3)
for _name in ("probe_read_str", "probe_read_kernel_str", "probe_read_user_str"):
    _DEFAULTS.register(_name, lambda vm, d, s, p, _n=_name: _probe_read_str(vm, d, s, p, "bpf_" + _n), args=3)


@helper("strncmp", 3)
def strncmp(vm, s1: int, size: int, s2: int) -> int:
    size &= 0xFFFFFFFF
    a = bytes(vm.memory.view(s1, size, what="bpf_strncmp s1"))
    b = vm.memory.load_cstr(s2, 1 << 20, "bpf_strncmp s2") + b"\0"
    for i in range(size):
        ca = a[i]
        cb = b[i] if i < len(b) else 0
        if ca != cb:
            return 1 if ca > cb else neg(1)
        if ca == 0:
            return 0
    return 0


# --- control: tail calls, loops -------------------------------------------------


def _tail_call(vm, ctx: int, prog_array: int, index: int):
    from .machine import MAX_TAIL_CALLS

    run = run_state(vm)
    m = vm.map_at(prog_array, "bpf_tail_call")
    index &= 0xFFFFFFFF
    target = m.program_at(index) if hasattr(m, "program_at") else None
    if target is None or run.tail_calls >= MAX_TAIL_CALLS:
        return None
    run.tail_calls += 1
    return target


_TAIL_CALL = helper_id("tail_call")
_DEFAULTS.by_id[_TAIL_CALL] = Helper(_TAIL_CALL, "bpf_tail_call", _tail_call, 3, tail_call=True)


@helper("loop", 4, callbacks=True)
def bpf_loop(vm, nr_loops: int, callback: int, ctx: int, flags: int) -> int:
    if flags:
        return neg(errno.EINVAL)
    nr_loops &= 0xFFFFFFFF
    if nr_loops > 1 << 23:
        return neg(errno.E2BIG)
    run = run_state(vm)
    for i in range(nr_loops):
        if run.call_function(callback, (i, ctx)) & 0xFFFFFFFFFFFFFFFF:
            return i + 1
    return nr_loops
