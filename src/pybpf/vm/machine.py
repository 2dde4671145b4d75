"""The VM: memory, maps, helpers, programs and the identity programs see, and how a run starts.

One :class:`VM` is one little "kernel": its maps and programs share one
address space (:class:`~pybpf.vm.memory.Memory`), one helper registry and one
set of virtual CPUs.  A :class:`Run` holds what lives only while a program
executes: the context, the instruction count, the tail-call count, the map
values and ring buffer records the program was handed.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence, TextIO

from ..errors import VMError, VMFault
from .memory import OFFSET_MASK, Memory, Region, address_of
from .program import MAX_FRAMES, STACK_SIZE, VMProgram

STACK_RIDS = range(1, MAX_FRAMES + 1)
CTX_RID = MAX_FRAMES + 1
PACKET_RID = MAX_FRAMES + 2
DEFAULT_BUDGET = 1_000_000
MAX_TAIL_CALLS = 33
# may_goto is timed, as in Linux 6.15+ on x86-64: it falls through in chunks of 0xffff, and jumps once the
# program has run for 250 ms.
MAY_GOTO_CHUNK = 0xFFFF
MAY_GOTO_TIMEOUT_NS = 250_000_000


def possible_cpus() -> int:
    """The kernel's possible CPU count when there is a kernel to ask (so per-CPU values line up with the
    kernel backend's), else the number of CPUs."""
    try:
        with open("/sys/devices/system/cpu/possible") as f:
            text = f.read().strip()
        return sum(int(b) - int(a) + 1 if "-" in part else 1
                   for part in text.split(",") for a, _, b in [part.partition("-")])
    except (OSError, ValueError):
        return os.cpu_count() or 1


def _own_comm() -> bytes:
    try:
        with open("/proc/self/comm", "rb") as f:
            return f.read().strip()[:15]
    except OSError:
        return os.path.basename(sys.executable).encode()[:15]


@dataclass
class Identity:
    """Who the VM's programs run as: what get_current_pid_tgid/uid_gid/comm/task return."""

    pid: int = field(default_factory=os.getpid)
    tgid: int = field(default_factory=os.getpid)
    uid: int = field(default_factory=lambda: os.getuid() if hasattr(os, "getuid") else 0)
    gid: int = field(default_factory=lambda: os.getgid() if hasattr(os, "getgid") else 0)
    comm: bytes = field(default_factory=_own_comm)
    task: int = 0xFFFF888000001000  # an opaque "struct task_struct *" value
    cgroup_id: int = 1


class Run:
    """State of one program execution (shared by a program, its callees and tail calls)."""

    def __init__(self, vm: "VM", program: VMProgram, ctx: Any, cpu: int, engine: str):
        self.vm = vm
        self.engine = engine
        self.memory = vm.memory
        self.program = program
        self.ctx = ctx
        self.ctx_rid = CTX_RID
        self.ctx_address = address_of(CTX_RID)
        self.cpu = cpu
        self.steps = 0
        self.budget = vm.budget
        self.depth = 0
        self.tail_calls = 0
        self.loops = MAY_GOTO_CHUNK  # may_goto allowance
        self.started = time.monotonic_ns()
        self.tail_target: VMProgram | None = None
        self.value_regions: dict[int, Region] = {}
        self.ringbuf_records: dict[int, Any] = {}  # region id -> outstanding reservation
        self.locks: set[int] = set()  # addresses of the spin locks held

    def may_goto_expired(self) -> bool:
        """Called when the may_goto allowance is used up: refill it, or say that the loop must end."""
        if time.monotonic_ns() - self.started >= MAY_GOTO_TIMEOUT_NS:
            return True
        self.loops = MAY_GOTO_CHUNK
        return False

    def stack_top(self, depth: int) -> int:
        return address_of(STACK_RIDS[depth], STACK_SIZE)

    def region_for(self, buffer: Any, name: str, *, kind: str = "map_value", writable: bool = True,
                   owner: Any = None) -> int:
        """Address of ``buffer`` for the program, mapping it once per run."""
        key = id(buffer)
        region = self.value_regions.get(key)
        if region is None or region.buffer is not buffer:
            region = self.memory.map(buffer, name, kind, writable=writable, owner=owner)
            self.value_regions[key] = region
        return region.address

    def function_at(self, value: int) -> tuple[VMProgram, int] | None:
        """(program, instruction index) when ``value`` is a function pointer (lddw src=4), else None."""
        region = self.memory.region_at(value)
        if region is None or region.kind != "code":
            return None
        prog = region.owner
        entry = value & OFFSET_MASK
        if not any(f.start == entry for f in prog.functions):
            return None
        return prog, entry

    def ld_abs(self, offset: int, size: int) -> int | None:
        load = getattr(self.ctx, "ld_abs", None)
        if load is None:
            raise VMFault("LD_ABS/LD_IND need a socket buffer context (socket filter or tc program)")
        return load(offset, size)

    def call_function(self, address: int, args: Sequence[int]) -> int:
        """Call a BPF function by its address (callbacks of bpf_loop, bpf_for_each_map_elem)."""
        target = self.function_at(address)
        if target is None:
            raise VMFault(f"callback {address:#x} is not a function of the program")
        prog, entry = target
        args = tuple(args) + (0,) * (5 - len(args))
        if self.engine == "interpreter":
            from .interpreter import call_function

            return call_function(self, prog, entry, args, self.depth + 1)
        return prog.compiled().call(entry, args, self.depth + 1)

    def release(self) -> tuple[int, int]:
        """Discard unreleased ring buffer records and drop held spin locks; returns how many of each."""
        pending = list(self.ringbuf_records.values())
        for rec in pending:
            rec.discard(self)
        locks = len(self.locks)
        for lock in self.locks:
            try:
                self.memory.store(lock, bytes(4))
            except VMFault:
                pass
        self.locks.clear()
        return len(pending), locks

    def finish(self) -> None:
        """End-of-run checks for what the kernel's verifier would have refused statically."""
        pending, locks = self.release()
        if pending:
            raise VMFault(f"the program ended with {pending} ring buffer record(s) neither submitted nor "
                          "discarded (the kernel's verifier rejects such programs)")
        if locks:
            raise VMFault("the program ended holding a bpf_spin_lock")


class VM:
    """A userspace eBPF machine.

    ``cpus`` virtual CPUs (per-CPU maps hold one value each; programs run on
    ``cpu``), an instruction ``budget`` per run, the ``identity`` helpers
    report, ``trace_output`` (a text stream) for bpf_trace_printk, ``seed``
    for bpf_get_prandom_u32, and the ``engine``: "compiled" (the default,
    programs translated to Python once) or "interpreter" (the reference).
    """

    def __init__(self, *, cpus: int | None = None, budget: int = DEFAULT_BUDGET, engine: str = "compiled",
                 identity: Identity | None = None, trace_output: TextIO | None = None, seed: int | None = None,
                 helpers: Any = None):
        import random

        from .helpers import default_helpers

        if engine not in ("compiled", "interpreter"):
            raise VMError(f"unknown VM engine {engine!r}: use 'compiled' or 'interpreter'")
        self.cpus = cpus or possible_cpus()
        self.cpu = 0
        self.budget = budget
        self.engine = engine
        self.identity = identity or Identity()
        self.trace_output = trace_output
        self.random = random.Random(seed)
        self.clock_ns = time.monotonic_ns
        self.helpers = helpers if helpers is not None else default_helpers()
        self.memory = Memory()
        self._stacks = [self.memory.map(bytearray(STACK_SIZE), f"stack of frame {d}", "stack") for d in range(MAX_FRAMES)]
        self.ctx_region = self.memory.map(None, "context", "ctx", writable=False, readable=False)
        self.packet_region = self.memory.map(bytearray(), "packet", "packet")
        assert self.ctx_region.id == CTX_RID and self.packet_region.id == PACKET_RID
        self.memory.pin()
        self.maps: list[Any] = []
        self.programs: list[VMProgram] = []
        self.stacks: dict[str, list[int]] = {"kernel": [], "user": []}
        self.hooks: dict[str, list[Hook]] = {}
        self._map_fds: dict[int, Any] = {}
        self._program_fds: dict[int, VMProgram] = {}
        self._next_fd = 1000
        self.run: Run | None = None
        self.last_instructions = 0  # instructions the last run executed (tail calls and callbacks included)
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"<VM cpus={self.cpus} engine={self.engine} maps={len(self.maps)} programs={len(self.programs)}>"

    # -- maps ------------------------------------------------------------------

    def create_map(self, type: int, key_size: int, value_size: int, max_entries: int, *, flags: int = 0,
                   name: str = "", inner_map: Any = None, map_extra: int = 0, key_codec: Any = None,
                   value_codec: Any = None, btf_key_type: Any = None, btf_value_type: Any = None) -> Any:
        """Create a map of a kernel map type (``MapType``) with kernel semantics; returns a VMMap."""
        from .maps import create_map

        with self._lock:
            m = create_map(self, type, key_size, value_size, max_entries, flags=flags, name=name,
                           inner_map=inner_map, map_extra=map_extra, key_codec=key_codec, value_codec=value_codec)
            self.memory.pin()
            return m

    def _register_map(self, m: Any) -> int:
        self.maps.append(m)
        fd = self._next_fd
        self._next_fd += 1
        self._map_fds[fd] = m
        return fd

    def map_by_fd(self, fd: int) -> Any:
        return self._map_fds.get(fd)

    def map_by_id(self, map_id: int) -> Any:
        for m in self.maps:
            if m.id == map_id:
                return m
        return None

    # -- programs --------------------------------------------------------------

    def load(self, code: Any, *, type: int | None = None, name: str = "", source_lines: Sequence[Any] = (),
             section: str = "", license: str = "GPL", expected_attach_type: int | None = None,
             fd_array: Sequence[Any] = ()) -> VMProgram:
        """Check and prepare a program: bytes, a pybpf.isa Program, or Instructions (maps referenced by
        their ``fd`` in lddw src=1/2, or by index into ``fd_array`` with src=5/6).  Raises
        VMError/InstructionError before anything runs."""
        with self._lock:
            prog = VMProgram(self, code, type=type, name=name, source_lines=source_lines, section=section,
                             license=license, expected_attach_type=expected_attach_type, fd_array=fd_array)
            self.memory.pin()
            return prog

    def _register_program(self, prog: VMProgram) -> tuple[int, int]:
        """(id, fd) of a new program."""
        self.programs.append(prog)
        fd = self._next_fd
        self._next_fd += 1
        self._program_fds[fd] = prog
        return len(self.programs), fd

    def program_by_id(self, prog_id: int) -> VMProgram | None:
        if 1 <= prog_id <= len(self.programs):
            return self.programs[prog_id - 1]
        return None

    def program_by_fd(self, fd: int) -> VMProgram | None:
        return self._program_fds.get(fd)

    # -- hooks: where the embedder makes events happen ---------------------------------

    def attach(self, program: VMProgram, hook: str) -> "Hook":
        """Run ``program`` whenever :meth:`fire` is called for ``hook`` (a section name such as
        ``tracepoint/syscalls/sys_enter_openat``, or any name the embedder chooses)."""
        link = Hook(self, program, hook)
        self.hooks.setdefault(hook, []).append(link)
        return link

    def fire(self, hook: str, ctx: Any = b"", data: bytes = b"") -> list[int]:
        """Run every program attached to ``hook`` (in attach order) with this context (bytes or a
        Context) and packet ``data``; returns their return values."""
        return [link.program.test_run(data, ctx).retval for link in list(self.hooks.get(hook, ()))]

    # -- what helpers resolve --------------------------------------------------------

    def map_at(self, address: int, what: str) -> Any:
        """The map a program passed by pointer (from lddw or a map-in-map lookup)."""
        region = self.memory.region_at(address)
        if region is None or region.kind != "map" or address != region.address:
            raise VMFault(f"{what}: {address:#x} is not a pointer to a map")
        return region.owner

    def context_at(self, address: int, what: str) -> Any:
        """The context a program passed by pointer."""
        run = self.run
        if run is None or run.ctx is None or address != self.ctx_region.address:
            raise VMFault(f"{what}: {address:#x} is not the program's context pointer")
        return run.ctx

    def stack_of(self, run: Run, user: bool) -> list[int]:
        """Instruction pointers for bpf_get_stackid/bpf_get_stack: ``stacks["user"|"kernel"]`` when set,
        else a one-frame synthetic stack naming the running program."""
        configured = self.stacks["user" if user else "kernel"]
        if configured:
            return list(configured)
        base = 0x401000 if user else 0xFFFFFFFFC0000000
        return [base + run.program.id * 0x1000]

    # -- running ---------------------------------------------------------------

    def execute(self, prog: VMProgram, args: Iterable[int] = (), *, ctx: Any = None, memory: Any = None,
                cpu: int | None = None, engine: str | None = None, repeat: int = 1) -> int:
        """Run ``prog`` ``repeat`` times with r1-r5 = ``args``; returns r0 of the last run.

        With ``ctx`` (a Context) r1 is the context pointer; with ``memory`` (a bytearray, written in
        place) r1 points to it and r2 is its length, as the conformance suite and uBPF do.  Faults
        raise VMFault, runaway programs VMError."""
        if prog.vm is not self:
            raise VMError(f"{prog.describe()} belongs to another VM")
        engine = engine or self.engine
        args = tuple(args)
        with self._lock:
            if self.run is not None:
                raise VMError("the VM is already running a program (nested runs are not supported)")
            run = Run(self, prog, ctx, self.cpu if cpu is None else cpu, engine)
            if not 0 <= run.cpu < self.cpus:
                raise VMError(f"cpu {run.cpu} does not exist: the VM has {self.cpus} CPUs")
            for region in self._stacks:
                region.buffer[:] = bytes(STACK_SIZE)
            self.run = run
            try:
                if ctx is not None:
                    ctx.attach(run)
                    args = (self.ctx_region.address,) + args[1:]
                elif memory is not None:
                    address = self.memory.map(memory, "input memory", "memory").address if len(memory) else 0
                    args = (address, len(memory)) + args[2:]
                result = 0
                for _ in range(max(1, repeat)):
                    run.steps = 0
                    result = self._run_once(run, prog, args, engine)
                    self.last_instructions = run.steps
                run.finish()
                return result
            finally:
                run.release()
                self.run = None
                if ctx is not None:
                    ctx.detach(run)
                self.memory.reset()

    def _run_once(self, run: Run, prog: VMProgram, args: tuple[int, ...], engine: str) -> int:
        if engine == "interpreter":
            from .interpreter import interpret

            return interpret(run, prog, args)
        return prog.compiled().run(run, args)

    @property
    def stack_regions(self) -> list[Region]:
        return list(self._stacks)


class Hook:
    """A program attached to a VM hook (the VM's counterpart of a kernel link); close() detaches it."""

    def __init__(self, vm: VM, program: VMProgram, hook: str):
        self.vm = vm
        self.program = program
        self.hook = hook
        self.closed = False

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.vm.hooks[self.hook].remove(self)

    detach = close

    def __enter__(self) -> "Hook":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Hook {self.hook!r} -> {self.program.name!r}{' closed' if self.closed else ''}>"
