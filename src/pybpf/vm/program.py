"""A program decoded once for the VM: every jump, call and 64-bit constant resolved, checked.

Everything that can be wrong with bytecode without running it is found here,
before the first instruction executes: an unknown opcode or reserved field
(from :mod:`pybpf.isa`), a jump out of its function or into the middle of an
``lddw``, a function that runs off its end, an unknown helper, a map reference
that resolves to nothing, a write to r10.  Both engines (the reference
interpreter and the compiler to Python) read this pre-resolved form, so they
cannot disagree about what a program means.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from ..errors import VMError
from ..isa import Instruction, Kind, Program, PseudoCall, PseudoLoad, format_llvm
from .constants import helper_name

if TYPE_CHECKING:
    from .machine import VM

MAX_FRAMES = 8
STACK_SIZE = 512


@dataclass(frozen=True)
class TestRunResult:
    """What a test run returned (same fields as the kernel backend's): return value, output data and
    context, and nanoseconds per run."""

    __test__ = False  # not a pytest test class, despite the name

    retval: int
    data_out: bytes
    ctx_out: bytes
    duration: int


@dataclass
class Block:
    """A basic block: instructions [start, end) of one function; ``succs`` are instruction indexes."""

    start: int
    end: int
    succs: list[int] = field(default_factory=list)
    preds: list[int] = field(default_factory=list)


@dataclass
class Function:
    """A BPF-to-BPF function (subprogram): instructions [start, end)."""

    start: int
    end: int
    blocks: dict[int, Block] = field(default_factory=dict)
    loop_heads: set[int] = field(default_factory=set)  # targets of back edges: every cycle passes one


def insn_text(insn: Instruction) -> str:
    """The instruction as llvm-objdump prints it (helper calls by name), for error messages."""
    if insn.opcode == 0x85 and insn.src == PseudoCall.HELPER:
        return f"call {helper_name(insn.imm)}"
    return format_llvm(insn).replace("\t", " ")


class VMProgram:
    """A program ready to run in a :class:`~pybpf.vm.VM`.

    Built by :meth:`VM.load`; holds the decoded instructions and, per
    instruction index, what the engines need: jump targets (``target``), the
    callee of a call (``callee``), the helper of a helper call (``helper``),
    the resolved 64-bit value of an ``lddw`` (``constant``).
    """

    def __init__(self, vm: "VM", code: Any, *, type: int | None = None, name: str = "",
                 source_lines: Sequence[Any] = (), section: str = "", license: str = "GPL",
                 expected_attach_type: int | None = None, fd_array: Sequence[Any] = ()):
        self.vm = vm
        self.name = name
        self.type = type
        self.section = section
        self.license = license
        self.expected_attach_type = expected_attach_type
        self.program = _as_program(code)
        self.insns: list[Instruction] = list(self.program)
        n = len(self.insns)
        if n == 0:
            raise VMError(f"{self.describe()}: the program has no instructions")
        self.target: list[int | None] = [None] * n
        self.callee: list[int | None] = [None] * n
        self.helper: list[Any] = [None] * n
        self.constant: list[int | None] = [None] * n
        # maps by index for lddw src=5/6 (the kernel's fd_array), then every map the program uses
        self.maps_used: list[Any] = [_as_map(vm, m, self) for m in fd_array]
        self._source_lines = sorted(source_lines, key=lambda s: s.insn_off)
        self._source_slots = [s.insn_off for s in self._source_lines]
        self.code_region = vm.memory.map(None, f"code of {self.describe()}", "code", writable=False,
                                         readable=False, owner=self)
        self.functions = self._resolve()
        self.id, self.fd = vm._register_program(self)
        self._compiled: Any = None
        self._interpreter: Any = None

    # -- identity ------------------------------------------------------------

    def describe(self) -> str:
        from .constants import prog_type_name

        what = f"{prog_type_name(self.type)} program" if self.type is not None else "program"
        return f"{what} {self.name!r}" if self.name else what

    def __repr__(self) -> str:
        return f"<VMProgram {self.name!r} {len(self.insns)} instructions>"

    def source_at(self, pc: int) -> str | None:
        """The C source line of instruction ``pc`` from BTF line info, when the program has it."""
        if not self._source_lines:
            return None
        slot = self.program.slot_of(pc)
        i = bisect.bisect_right(self._source_slots, slot) - 1
        return str(self._source_lines[i]) if i >= 0 else None

    def function_of(self, pc: int) -> Function:
        starts = [f.start for f in self.functions]
        return self.functions[bisect.bisect_right(starts, pc) - 1]

    # -- resolution ----------------------------------------------------------

    def _error(self, pc: int, message: str) -> VMError:
        where = self.source_at(pc)
        text = f"{self.describe()}: instruction {pc} ({insn_text(self.insns[pc])}): {message}"
        return VMError(text + (f"\n  at {where}" if where else ""))

    def _slot_target(self, pc: int, delta: int) -> int:
        """Instruction index of the slot ``delta`` slots after the one following ``pc``."""
        slot = self.program.slot_of(pc) + self.insns[pc].slots + delta
        if slot < 0 or slot >= self.program.slot_count:
            raise self._error(pc, f"jump to slot {slot} is outside the program (0..{self.program.slot_count - 1})")
        try:
            return self.program.index_at_slot(slot)
        except KeyError:
            raise self._error(pc, f"jump to slot {slot}, the middle of an lddw") from None

    def _resolve(self) -> list[Function]:
        vm, insns = self.vm, self.insns
        entries = {0}
        for pc, insn in enumerate(insns):
            kind = insn.kind
            if insn.dst == 10 and kind in (Kind.ALU, Kind.MOV, Kind.NEG, Kind.END, Kind.LD_IMM64, Kind.LOAD):
                raise self._error(pc, "r10 (the frame pointer) is read-only")
            if kind is Kind.ATOMIC and _atomic_writes(insn) == 10:
                raise self._error(pc, "r10 (the frame pointer) is read-only")
            if kind in (Kind.JUMP, Kind.COND_JUMP, Kind.MAY_GOTO):
                delta = insn.imm if insn.opcode == 0x06 else insn.off
                self.target[pc] = self._slot_target(pc, delta)
            elif kind is Kind.CALL:
                if insn.src == PseudoCall.CALL:
                    if insn.off:
                        raise self._error(pc, "a BPF-to-BPF call must have offset 0")
                    self.callee[pc] = self._slot_target(pc, insn.imm)
                    entries.add(self.callee[pc])
                elif insn.src == PseudoCall.HELPER:
                    if insn.off:
                        raise self._error(pc, "a helper call must have offset 0")
                    self.helper[pc] = vm.helpers.resolve(insn.imm, lambda m, pc=pc: self._error(pc, m))
                else:
                    raise self._error(pc, "calls to kernel functions (kfuncs) are not available in the VM")
            elif kind is Kind.LD_IMM64:
                self.constant[pc] = self._resolve_lddw(pc, insn, entries)
        starts = sorted(entries)
        functions = [Function(s, starts[i + 1] if i + 1 < len(starts) else len(insns)) for i, s in enumerate(starts)]
        for fn in functions:
            last = insns[fn.end - 1]
            if last.kind not in (Kind.EXIT, Kind.JUMP):
                what = "the program" if fn.start == 0 else f"the function at instruction {fn.start}"
                raise self._error(fn.end - 1, f"{what} does not end with exit or an unconditional jump "
                                              "(execution would run past its last instruction)")
            for pc in range(fn.start, fn.end):
                t = self.target[pc]
                if t is not None and not fn.start <= t < fn.end:
                    raise self._error(pc, f"jump to instruction {t} leaves the function [{fn.start}, {fn.end})")
            _build_blocks(self, fn)
        return functions

    def _resolve_lddw(self, pc: int, insn: Instruction, entries: set[int]) -> int:
        src = insn.src
        if src == PseudoLoad.IMM:
            return insn.imm
        if src == PseudoLoad.FUNC:
            # like a call, the offset counts from the slot after the first one (not after the lddw)
            low = insn.imm & 0xFFFFFFFF
            target = self._slot_target(pc, (low - (1 << 32) if low & 0x80000000 else low) - 1)
            entries.add(target)
            return self.code_region.address + target
        if src in (PseudoLoad.MAP_FD, PseudoLoad.MAP_VALUE, PseudoLoad.MAP_IDX, PseudoLoad.MAP_IDX_VALUE):
            handle = insn.imm & 0xFFFFFFFF
            if src in (PseudoLoad.MAP_FD, PseudoLoad.MAP_VALUE):
                m = self.vm.map_by_fd(handle)
                if m is None:
                    raise self._error(pc, f"map fd {handle} is not a map of this VM")
            else:
                if handle >= len(self.maps_used):
                    raise self._error(pc, f"map index {handle} is beyond the program's {len(self.maps_used)} maps")
                m = self.maps_used[handle]
            if m not in self.maps_used:
                self.maps_used.append(m)
            if src in (PseudoLoad.MAP_FD, PseudoLoad.MAP_IDX):
                return m.handle.address
            offset = insn.imm >> 32
            try:
                return m.direct_value_address(offset)
            except VMError as exc:
                raise self._error(pc, str(exc)) from None
        raise self._error(pc, f"lddw with src {src} ({PseudoLoad(src).name}: kernel BTF objects) is not "
                              "available in the VM")

    # -- running -------------------------------------------------------------

    def compiled(self) -> Any:
        """The Python translation of the program (made on first use, then kept)."""
        if self._compiled is None:
            from .compiler import CompiledProgram

            self._compiled = CompiledProgram(self)
        return self._compiled

    def run(self, r1: int = 0, r2: int = 0, r3: int = 0, r4: int = 0, r5: int = 0, *, engine: str | None = None) -> int:
        """Run with the given argument registers; returns r0.  No context handling: see test_run."""
        return self.vm.execute(self, (r1, r2, r3, r4, r5), engine=engine)

    def test_run(self, data: bytes = b"", ctx: Any = None, *, repeat: int = 1, cpu: int | None = None,
                 engine: str | None = None, data_size_out: int | None = None, ctx_size_out: int | None = None,
                 flags: int = 0, batch_size: int = 0) -> TestRunResult:
        """Run like the kernel's BPF_PROG_TEST_RUN: build the program type's context around
        ``data`` (and ``ctx``), run ``repeat`` times, return retval, data_out, ctx_out, duration."""
        from .context import test_run

        return test_run(self, data, ctx, repeat=repeat, cpu=cpu, engine=engine)

    def fileno(self) -> int:
        return self.fd

    # lifetime: programs own nothing outside their VM, but match the kernel objects' protocol
    def close(self) -> None:
        pass

    def __enter__(self) -> "VMProgram":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _as_map(vm: "VM", ref: Any, prog: "VMProgram") -> Any:
    m = vm.map_by_fd(ref) if isinstance(ref, int) else ref
    if m is None or getattr(m, "vm", None) is not vm:
        raise VMError(f"{prog.describe()}: fd_array entry {ref!r} is not a map of this VM")
    return m


def _as_program(code: Any) -> Program:
    if isinstance(code, Program):
        return code
    if isinstance(code, (bytes, bytearray, memoryview)):
        return Program.decode(bytes(code))
    if isinstance(code, Iterable):
        insns = list(code)
        for i, insn in enumerate(insns):
            if not isinstance(insn, Instruction):
                raise VMError(f"instruction {i} is a {type(insn).__name__}, not a pybpf.isa.Instruction")
            insn.validate(i)
        return Program(insns)
    raise VMError(f"cannot run {type(code).__name__}: pass bytes, a pybpf.isa.Program or Instructions")


def _build_blocks(prog: VMProgram, fn: Function) -> None:
    insns = prog.insns
    leaders = {fn.start}
    for pc in range(fn.start, fn.end):
        kind = insns[pc].kind
        if kind in (Kind.JUMP, Kind.COND_JUMP, Kind.MAY_GOTO):
            leaders.add(prog.target[pc])
            if pc + 1 < fn.end:
                leaders.add(pc + 1)
        elif kind is Kind.EXIT and pc + 1 < fn.end:
            leaders.add(pc + 1)
    starts = sorted(leaders)
    for i, s in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else fn.end
        block = Block(s, end)
        last = insns[end - 1]
        if last.kind is Kind.JUMP:
            block.succs = [prog.target[end - 1]]
        elif last.kind in (Kind.COND_JUMP, Kind.MAY_GOTO):
            block.succs = [prog.target[end - 1], end] if prog.target[end - 1] != end else [end]
        elif last.kind is not Kind.EXIT:
            block.succs = [end]
        fn.blocks[s] = block
    for b in fn.blocks.values():
        for s in b.succs:
            fn.blocks[s].preds.append(b.start)
    # Back edges by depth-first search from the entry: their targets are the loop heads.
    state: dict[int, int] = {}
    stack = [(fn.start, iter(fn.blocks[fn.start].succs))]
    state[fn.start] = 1
    while stack:
        node, it = stack[-1]
        for s in it:
            if state.get(s) == 1:
                fn.loop_heads.add(s)
            elif s not in state:
                state[s] = 1
                stack.append((s, iter(fn.blocks[s].succs)))
                break
        else:
            state[node] = 2
            stack.pop()


def _atomic_writes(insn: Instruction) -> int | None:
    """The register an atomic instruction writes besides memory (r0 for cmpxchg), or None."""
    if insn.imm == 0x100:  # load-acquire
        return insn.dst
    if insn.imm == 0xF1:  # cmpxchg
        return 0
    if insn.imm & 1:  # fetch variants and xchg
        return insn.src
    return None


__all__ = ["Block", "Function", "MAX_FRAMES", "STACK_SIZE", "TestRunResult", "VMProgram", "insn_text"]
