"""The reference interpreter: one instruction at a time, every check spelled out.

It is deliberately plain: the compiled engine (:mod:`pybpf.vm.compiler`) is
the fast one, and the tests run random programs through both and compare
registers, memory and faults.  It shares the memory model, helpers and
contexts with the compiled engine; only the dispatch differs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import BPFError, VMError, VMFault
from ..isa import Kind
from ..isa.opcodes import AluOp, Class, Mode, Source
from .memory import OFFSET_BITS, OFFSET_MASK, UNSIGNED, describe_access
from .program import MAX_FRAMES, insn_text
from .semantics import M32, M64, alu, atomic, condition, endian, sext

if TYPE_CHECKING:
    from .machine import Run
    from .program import VMProgram


class ProgramExit(Exception):
    """Ends the whole program early with a return value (unwind helper, failed LD_ABS)."""

    def __init__(self, value: int):
        self.value = value


class BudgetExceeded(VMError):
    """The run executed more instructions than its budget allows."""


def interpret(run: "Run", prog: "VMProgram", args: tuple[int, ...]) -> int:
    """Run ``prog`` from its first instruction with r1-r5 = ``args``; returns r0."""
    try:
        return _call(run, prog, 0, args, run.depth)
    except ProgramExit as stop:
        return stop.value & M64


def call_function(run: "Run", prog: "VMProgram", entry: int, args: tuple[int, ...], depth: int) -> int:
    """Run the function starting at instruction ``entry`` in a new frame (bpf_loop callbacks...)."""
    return _call(run, prog, entry, args, depth)


def _fault(prog: "VMProgram", pc: int, message: str) -> VMFault:
    exc = VMFault(f"{prog.describe()}: {insn_text(prog.insns[pc])}: {message}", pc, prog.source_at(pc))
    exc.program = prog
    return exc


def _call(run: "Run", prog: "VMProgram", pc: int, args: tuple[int, ...], depth: int) -> int:
    if depth >= MAX_FRAMES:
        raise _fault(prog, pc, f"call depth exceeds {MAX_FRAMES} frames")
    regs = [0] * 11
    for i, a in enumerate(args[:5]):
        regs[1 + i] = a & M64
    regs[10] = run.stack_top(depth)
    insns = prog.insns
    budget = run.budget
    while True:
        run.steps += 1
        if run.steps > budget:
            raise BudgetExceeded(f"{prog.describe()}: stopped after {budget} instructions at instruction {pc} "
                                 "(raise the VM's instruction budget if the program is meant to run this long)")
        insn = insns[pc]
        op = insn.opcode
        cls = op & 7
        kind = insn.kind
        try:
            if cls in (Class.ALU64, Class.ALU):
                a = regs[insn.dst]
                b = regs[insn.src] if op & Source.X else insn.imm & M64
                code = op & 0xF0
                if code == AluOp.NEG:
                    regs[insn.dst] = (-a) & (M64 if cls == Class.ALU64 else M32)
                elif code == AluOp.END:
                    regs[insn.dst] = endian(bool(op & Source.X) or cls == Class.ALU64, a, insn.imm)
                else:
                    regs[insn.dst] = alu(code, a, b, insn.off, 64 if cls == Class.ALU64 else 32)
                pc += 1
            elif kind is Kind.COND_JUMP:
                b = regs[insn.src] if op & Source.X else insn.imm & M64
                pc = prog.target[pc] if condition(op & 0xF0, regs[insn.dst], b, cls == Class.JMP) else pc + 1
            elif kind is Kind.JUMP:
                pc = prog.target[pc]
            elif kind is Kind.MAY_GOTO:  # jump once the run's loop allowance is used up
                if run.loops or not run.may_goto_expired():
                    run.loops -= 1
                    pc += 1
                else:
                    pc = prog.target[pc]
            elif kind is Kind.EXIT:
                return regs[0]
            elif kind is Kind.LD_IMM64:
                regs[insn.dst] = prog.constant[pc]
                pc += 1
            elif kind is Kind.LOAD:
                size = insn.info.size
                addr = (regs[insn.src] + insn.off) & M64
                if op & 0xE0 == Mode.MEMSX:
                    regs[insn.dst] = sext(_load(run, addr, size, regs[insn.src]), size * 8) & M64
                else:
                    regs[insn.dst] = _load(run, addr, size, regs[insn.src])
                pc += 1
            elif kind in (Kind.STORE_REG, Kind.STORE_IMM):
                size = insn.info.size
                value = regs[insn.src] if kind is Kind.STORE_REG else insn.imm & M64
                _store(run, (regs[insn.dst] + insn.off) & M64, size, value, regs[insn.dst])
                pc += 1
            elif kind is Kind.ATOMIC:
                _atomic(run, regs, insn)
                pc += 1
            elif kind is Kind.CALL:
                if prog.callee[pc] is not None:
                    regs[0] = _call(run, prog, prog.callee[pc], tuple(regs[1:6]), depth + 1)
                    pc += 1
                    continue
                result = _helper(run, prog, pc, prog.helper[pc], regs, depth)
                if result is _TAIL:
                    target = run.tail_target
                    prog, pc, insns = target, 0, target.insns
                    regs[10] = run.stack_top(depth)
                    continue
                regs[0] = result
                pc += 1
            elif kind is Kind.CALLX:
                value = regs[insn.dst]
                target = run.function_at(value)
                if target is not None:
                    callee_prog, entry = target
                    regs[0] = _call(run, callee_prog, entry, tuple(regs[1:6]), depth + 1)
                else:
                    helper = run.vm.helpers.get(value) if value < 1 << 32 else None
                    if helper is None:
                        raise _fault(prog, pc, f"callx to {value:#x}: neither a function of the program nor a "
                                               "helper id")
                    result = _helper(run, prog, pc, helper, regs, depth)
                    if result is _TAIL:
                        raise _fault(prog, pc, "bpf_tail_call through callx is not supported")
                    regs[0] = result
                pc += 1
            elif kind in (Kind.LD_ABS, Kind.LD_IND):
                size = insn.info.size
                offset = insn.imm + (regs[insn.src] & M32 if kind is Kind.LD_IND else 0)
                value = run.ld_abs(sext(offset, 32), size)
                if value is None:
                    raise ProgramExit(0)
                regs[0] = value
                pc += 1
            else:
                raise _fault(prog, pc, "instruction not supported by the VM")
        except VMFault as exc:
            if exc.pc is None:
                raise _fault(prog, pc, str(exc)) from None
            raise


_TAIL = object()


def _helper(run: "Run", prog: "VMProgram", pc: int, helper, regs: list[int], depth: int):
    args = regs[1:1 + helper.args]
    run.depth = depth
    if helper.tail_call:
        target = helper.func(run.vm, *args)
        if target is None:
            return (-2) & M64  # -ENOENT: the program continues after a failed tail call
        run.tail_target = target
        return _TAIL
    try:
        result = helper.func(run.vm, *args) & M64
    except (BPFError, ProgramExit):
        raise
    except Exception as exc:  # an embedder's helper went wrong: say which
        raise VMError(f"{prog.describe()}: instruction {pc} ({insn_text(prog.insns[pc])}): helper {helper.name} "
                      f"failed: {type(exc).__name__}: {exc}") from exc
    if helper.unwind and result == 0:
        raise ProgramExit(0)
    return result


def _region_check(run: "Run", addr: int, size: int, base: int, write: bool) -> tuple:
    """(buffer, offset) for a plain access, or ("ctx", offset) for a context field access."""
    rid = addr >> OFFSET_BITS
    off = addr & OFFSET_MASK
    memory = run.memory
    if rid == run.ctx_rid and run.ctx is not None and base == run.ctx_address:
        return "ctx", off
    table = memory.write if write else memory.read
    buf = table[rid] if rid < len(table) else None
    if buf is None or off + size > len(buf):
        raise VMFault(describe_access(memory, addr, size, write))
    return buf, off


def _load(run: "Run", addr: int, size: int, base: int) -> int:
    buf, off = _region_check(run, addr, size, base, False)
    if buf == "ctx":
        return run.ctx.load(off, size)
    return UNSIGNED[size].unpack_from(buf, off)[0]


def _store(run: "Run", addr: int, size: int, value: int, base: int) -> None:
    buf, off = _region_check(run, addr, size, base, True)
    if buf == "ctx":
        run.ctx.store(off, size, value & ((1 << (8 * size)) - 1))
        return
    UNSIGNED[size].pack_into(buf, off, value & ((1 << (8 * size)) - 1))


def _atomic(run: "Run", regs: list[int], insn) -> None:
    size = insn.info.size
    addr = (regs[insn.dst] + insn.off) & M64
    op = insn.imm
    if op == 0x100:  # load-acquire: dst = *(src + off)
        src_addr = (regs[insn.src] + insn.off) & M64
        buf, off = _region_check(run, src_addr, size, -1, False)
        regs[insn.dst] = UNSIGNED[size].unpack_from(buf, off)[0]
        return
    buf, off = _region_check(run, addr, size, -1, True)
    fmt = UNSIGNED[size]
    old = fmt.unpack_from(buf, off)[0]
    if op == 0x110:  # store-release
        fmt.pack_into(buf, off, regs[insn.src] & ((1 << (8 * size)) - 1))
        return
    if op == 0xF1:  # cmpxchg: compare with r0, r0 = old
        expected = regs[0] & ((1 << (8 * size)) - 1)
        if old == expected:
            fmt.pack_into(buf, off, regs[insn.src] & ((1 << (8 * size)) - 1))
        regs[0] = old
        return
    fmt.pack_into(buf, off, atomic(op, old, regs[insn.src], size))
    if op & 1:  # fetch variants and xchg return the old value in src
        regs[insn.src] = old


__all__ = ["BudgetExceeded", "ProgramExit", "call_function", "interpret"]
