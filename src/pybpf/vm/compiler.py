"""The fast engine: each BPF function becomes one Python function, compiled once and exec'd.

Registers are local variables; a basic block is straight-line Python; a
conditional jump is an ``if`` on the comparison itself.  A block with a single
predecessor is inlined at its only jump site, so code runs without dispatch
until it reaches a join point or a loop head; those get a ``b == N`` arm in a
dispatch loop, and a loop whose body needs no other join runs as an inner
``while True`` with ``continue`` as its back edge.  Memory goes through the
region tables (``rd``/``wr``), loads and stores at constant offsets from r10
straight to the frame's stack buffer.

Faults cost nothing on the fast path: an invalid access raises IndexError,
TypeError or struct.error inside the generated code, and the traceback's line
number maps back to the BPF instruction, whose registers are still in the
frame's locals, so the VMFault says which region, offset and size it was.
The instruction count is kept per block and checked at loop heads.
"""

from __future__ import annotations

import itertools
import linecache
import struct
import weakref
from functools import partial
from typing import TYPE_CHECKING, Any

from ..errors import BPFError, VMError, VMFault
from ..isa import Kind
from ..isa.opcodes import AluOp, Class, JmpOp, Mode, Source
from .interpreter import BudgetExceeded, ProgramExit
from .memory import OFFSET_BITS, OFFSET_MASK, SIGNED, UNSIGNED, describe_access
from .program import MAX_FRAMES, STACK_SIZE, insn_text
from .semantics import M32, M64, T32, T64, bswap, s32, s64, sext

if TYPE_CHECKING:
    from .machine import Run
    from .program import Function, VMProgram

SB = 1 << 63
_SIZE_NAME = {1: "8", 2: "16", 4: "32", 8: "64"}
_FAULTS = (IndexError, TypeError, struct.error)
_counter = itertools.count()


def _sdiv(a: int, b: int, bits: int) -> int:
    mask = (1 << bits) - 1
    if b == 0:
        return 0
    sa, sb = (s64(a), s64(b)) if bits == 64 else (s32(a), s32(b))
    q = abs(sa) // abs(sb)
    return (-q if (sa < 0) != (sb < 0) else q) & mask


def _smod(a: int, b: int, bits: int) -> int:
    mask = (1 << bits) - 1
    if b & mask == 0:
        return a & mask
    sa, sb = (s64(a), s64(b)) if bits == 64 else (s32(a), s32(b))
    r = abs(sa) % abs(sb)
    return (-r if sa < 0 else r) & mask


class _Emitter:
    """Lines of Python with the BPF instruction each one belongs to (for fault reports)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.pcs: list[int | None] = []

    def __call__(self, indent: int, text: str, pc: int | None = None) -> None:
        for part in text.split("\n"):
            self.lines.append("    " * indent + part)
            self.pcs.append(pc)


class CompiledProgram:
    """The Python translation of one VMProgram: ``run`` (whole program), ``call`` (one function)."""

    def __init__(self, prog: "VMProgram"):
        self.prog = prog
        vm = prog.vm
        self.filename = f"<pybpf-vm {next(_counter)} {prog.name or 'program'}>"
        out = _Emitter()
        env: dict[str, Any] = {
            "__builtins__": __builtins__, "RD": vm.memory.read, "WR": vm.memory.write, "RUN": None,
            "T64": T64, "T32": T32, "M64": M64, "M32": M32, "SB": SB,
            "SDIV": _sdiv, "SMOD": _smod, "BSWAP": bswap, "SEXT": sext,
            "ProgramExit": ProgramExit, "EXIT0": ProgramExit(0),
            "BUDGET": partial(_budget_exceeded, prog), "DEPTH": partial(_depth_exceeded, prog),
            "CALLX": partial(_callx, self),
        }
        for size, st in UNSIGNED.items():
            env[f"L{size * 8}"] = st.unpack_from
            env[f"S{size * 8}"] = st.pack_into
        for size, st in SIGNED.items():
            env[f"LS{size * 8}"] = st.unpack_from
        for pc, h in enumerate(prog.helper):
            if h is not None:
                env[f"h{pc}"] = partial(h.func, vm)
        self.env = env
        for fn in prog.functions:
            _emit_function(prog, fn, out)
        source = "\n".join(out.lines) + "\n"
        self.source = source
        self.pcs = out.pcs
        # Tracebacks through the generated code show its lines; both entries go with the program.
        linecache.cache[self.filename] = (len(source), None, [ln + "\n" for ln in out.lines], self.filename)
        weakref.finalize(self, linecache.cache.pop, self.filename, None)
        exec(compile(source, self.filename, "exec"), env)
        self.functions = {fn.start: env[f"f{fn.start}"] for fn in prog.functions}
        self.entry = self.functions[0]
        _registry[self.filename] = self

    def run(self, run: "Run", args: tuple[int, ...]) -> int:
        self.env["RUN"] = run
        try:
            return self.entry(*_args5(args), run.depth)
        except ProgramExit as stop:
            return stop.value & M64
        except (VMFault, *_FAULTS) as exc:
            raise _translate(exc, run) from None
        except BPFError:
            raise
        except Exception as exc:  # from a helper (an embedder's, most likely): name it
            translated = _translate(exc, run)
            if translated is exc:
                raise
            raise translated from exc

    def enter(self, r1: int, depth: int) -> int:
        """Start this program from a tail call: r1 = the context, same frame depth."""
        self.env["RUN"] = self.prog.vm.run
        return self.entry(r1, 0, 0, 0, 0, depth)

    def call(self, entry: int, args: tuple[int, ...], depth: int) -> int:
        """Call one function (a callback) from a helper; faults propagate to the outer run."""
        self.env["RUN"] = self.prog.vm.run
        return self.functions[entry](*_args5(args), depth)


# Generated file name -> its program, to map a traceback line back to an instruction.
_registry: "weakref.WeakValueDictionary[str, CompiledProgram]" = weakref.WeakValueDictionary()


def _args5(args: tuple[int, ...]) -> tuple[int, ...]:
    args = tuple(a & M64 for a in args[:5])
    return args + (0,) * (5 - len(args))


def _budget_exceeded(prog: "VMProgram", pc: int, run: "Run") -> BudgetExceeded:
    return BudgetExceeded(f"{prog.describe()}: stopped after {run.steps} instructions at instruction {pc} "
                          f"(budget {run.budget}; raise the VM's instruction budget if the program is meant to "
                          "run this long)")


def _depth_exceeded(prog: "VMProgram", pc: int) -> VMFault:
    exc = VMFault(f"{prog.describe()}: call depth exceeds {MAX_FRAMES} frames", pc, prog.source_at(pc))
    exc.program = prog
    return exc


def _callx(compiled: CompiledProgram, value: int, args: tuple[int, ...], depth: int) -> int:
    """callx: a function pointer of the program (lddw src=4) or, as in uBPF, a helper id."""
    run = compiled.prog.vm.run
    target = run.function_at(value)
    if target is not None:
        prog, entry = target
        return prog.compiled().functions[entry](*args, depth)
    helper = run.vm.helpers.get(value) if value < 1 << 32 else None
    if helper is None or helper.tail_call:
        raise VMFault(f"callx to {value:#x}: neither a function of the program nor a helper id")
    run.depth = depth - 1
    result = helper.func(run.vm, *args[:helper.args]) & M64
    if helper.unwind and result == 0:
        raise ProgramExit(0)
    return result


def _translate(exc: BaseException, run: "Run") -> BaseException:
    """Turn an exception from generated code into a VMFault naming the instruction and region."""
    tb = exc.__traceback__
    frame_tb = None
    innermost = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename in _registry:
            frame_tb = tb
        innermost = tb
        tb = tb.tb_next
    if frame_tb is None:
        return exc
    compiled = _registry[frame_tb.tb_frame.f_code.co_filename]
    prog = compiled.prog
    line = frame_tb.tb_lineno
    pc = compiled.pcs[line - 1] if 0 < line <= len(compiled.pcs) else None
    if pc is None:
        return exc
    source = prog.source_at(pc)
    if isinstance(exc, VMFault):
        if exc.pc is not None:
            return exc
        fault = VMFault(f"{prog.describe()}: {insn_text(prog.insns[pc])}: {exc}", pc, source)
    elif innermost is not frame_tb:
        # Raised inside Python code the instruction called (a helper): not a memory fault.
        h = prog.helper[pc]
        fault = VMError(f"{prog.describe()}: instruction {pc} ({insn_text(prog.insns[pc])}): helper "
                        f"{h.name if h else '?'} failed: {type(exc).__name__}: {exc}")
        fault.__cause__ = exc
        return fault
    else:
        message = _describe_fault(prog, pc, frame_tb.tb_frame.f_locals, run)
        fault = VMFault(f"{prog.describe()}: {insn_text(prog.insns[pc])}: {message}", pc, source)
    fault.program = prog
    return fault


def _describe_fault(prog: "VMProgram", pc: int, regs: dict[str, Any], run: "Run") -> str:
    insn = prog.insns[pc]
    kind = insn.kind
    size = insn.info.size if kind in (Kind.LOAD, Kind.STORE_IMM, Kind.STORE_REG, Kind.ATOMIC) else 0
    if kind is Kind.LOAD:
        base, write = insn.src, False
    elif kind is Kind.ATOMIC and insn.imm == 0x100:
        base, write = insn.src, False
    elif kind in (Kind.STORE_IMM, Kind.STORE_REG, Kind.ATOMIC):
        base, write = insn.dst, True
    else:
        return "invalid operation"
    if base == 10:
        value = ((regs.get("depth", 0) + 1) << OFFSET_BITS) + STACK_SIZE
    else:
        value = regs.get(f"r{base}", 0)
    return describe_access(run.memory, (value + insn.off) & M64, size, write)


class _Path:
    """What is known on the path being emitted: registers below 2**32 (``narrow``), registers that
    cannot hold the context pointer (``not_ctx``), instructions executed but not yet added to n."""

    __slots__ = ("narrow", "not_ctx", "pending")

    def __init__(self, narrow: set[int] | None = None, not_ctx: set[int] | None = None, pending: int = 0):
        self.narrow = narrow if narrow is not None else set()
        self.not_ctx = not_ctx if not_ctx is not None else {10}
        self.pending = pending

    def copy(self) -> "_Path":
        return _Path(set(self.narrow), set(self.not_ctx), self.pending)

    def define(self, reg: int, narrow: bool, ctx: bool = False) -> None:
        (self.narrow.add if narrow else self.narrow.discard)(reg)
        (self.not_ctx.discard if ctx else self.not_ctx.add)(reg)

    def flush(self) -> str:
        """Code that adds the pending count to n (empty when there is none)."""
        text, self.pending = (f"n += {self.pending}" if self.pending else ""), 0
        return text


class _FunctionCompiler:
    """Emits ``def f<start>(r1, r2, r3, r4, r5, depth)`` for one BPF function."""

    # A join block this short is copied into each predecessor instead of getting a dispatch arm,
    # as long as the copies keep the function's code within GROWTH x its size.
    SMALL_BLOCK = 6
    GROWTH = 3

    MAX_INDENT = 40  # deeper inlining gets a dispatch arm instead (CPython's compiler has nesting limits)

    def __init__(self, prog: "VMProgram", fn: "Function", out: _Emitter, duplicate: bool = True,
                 forced: frozenset[int] = frozenset()):
        self.prog = prog
        self.fn = fn
        self.out = out
        self.insns = prog.insns
        blocks = fn.blocks
        reachable = _reachable(fn)
        self.blocks = {s: b for s, b in blocks.items() if s in reachable}
        entry = fn.start

        def needs_arm(s: int, b: Any) -> bool:
            if s in fn.loop_heads:
                return True
            if len([p for p in b.preds if p in reachable]) < 2:
                return False
            if _small_exit(prog, b):
                return False  # a return needs no dispatch
            return not (duplicate and b.end - b.start <= self.SMALL_BLOCK)

        self.dispatch = {s for s, b in self.blocks.items() if needs_arm(s, b) or s in forced}
        entry_has_preds = any(p in reachable for p in blocks[entry].preds)
        if entry_has_preds:
            self.dispatch.add(entry)
        self.entry_inline = not entry_has_preds
        self.uses_r10 = any(i.src == 10 or i.dst == 10 for i in self.insns[fn.start:fn.end])
        self.emitted = 0
        self.limit = self.GROWTH * (fn.end - fn.start) + 64 if duplicate else None

    # -- top level -----------------------------------------------------------

    def emit(self) -> None:
        out, fn = self.out, self.fn
        out(0, f"def f{fn.start}(r1, r2, r3, r4, r5, depth):")
        out(1, f"if depth >= {MAX_FRAMES}: raise DEPTH({fn.start})", fn.start)
        out(1, "r0 = r6 = r7 = r8 = r9 = 0\nrun = RUN\nn = run.steps\nlim = run.budget\nrd = RD\nwr = WR")
        if self.uses_r10:
            out(1, f"S = wr[depth + 1]\nr10 = ((depth + 1) << {OFFSET_BITS}) + {STACK_SIZE}")
        if self.entry_inline:
            if not self.dispatch:
                self.block(fn.start, 1, None, "continue", _Path())
                return
            # The entry runs once: a one-shot loop whose exits set b and break into the dispatch loop.
            out(1, "while True:")
            self.block(fn.start, 2, None, "break", _Path())
        else:
            out(1, f"b = {fn.start}")
        out(1, "while True:")
        order = sorted(self.dispatch, key=lambda s: (s not in self.fn.loop_heads, s))
        for i, start in enumerate(order):
            out(2, f"{'if' if i == 0 else 'elif'} b == {start}:")
            if self._loops_to_itself(start):
                out(3, "while True:")
                self.block(start, 4, start, "break", _Path())
            else:
                self.block(start, 3, None, "continue", _Path())
        out(2, "else:\n    raise AssertionError(b)")

    def _loops_to_itself(self, head: int) -> bool:
        """Whether the inlined region starting at dispatch block ``head`` jumps back to it."""
        todo, seen = [head], {head}
        while todo:
            b = todo.pop()
            for s in self.blocks[b].succs:
                if s == head:
                    return True
                if s not in self.dispatch and s not in seen:
                    seen.add(s)
                    todo.append(s)
        return False

    def goto(self, target: int, indent: int, loop_head: int | None, leave: str, path: _Path) -> None:
        """Continue at block ``target``: inline it, or loop back, or set b and leave to the dispatch loop
        (``leave`` is "continue" directly in the dispatch loop, "break" inside a nested loop)."""
        if target not in self.dispatch:
            if indent > self.MAX_INDENT:
                raise _TooDeep(target)
            self.block(target, indent, loop_head, leave, path)
            return
        flush = path.flush()
        if flush:
            self.out(indent, flush)
        if target == loop_head:
            self.out(indent, "continue")
        else:
            self.out(indent, f"b = {target}\n{leave}")

    # -- blocks ----------------------------------------------------------------

    def block(self, start: int, indent: int, loop_head: int | None, leave: str, path: _Path) -> None:
        out = self.out
        blk = self.blocks[start]
        self.emitted += blk.end - blk.start
        if self.limit is not None and self.emitted > self.limit:
            raise _TooLarge()
        if start in self.fn.loop_heads:
            out(indent, f"if n > lim:\n    run.steps = n\n    raise BUDGET({start}, run)", start)
        path.pending += blk.end - blk.start
        for pc in range(blk.start, blk.end - 1):
            self.instruction(pc, indent, path)
        last = blk.end - 1
        insn = self.insns[last]
        kind = insn.kind
        if kind is Kind.EXIT:
            out(indent, f"run.steps = n + {path.pending}\nreturn r0", last)
        elif kind is Kind.JUMP:
            self.goto(self.prog.target[last], indent, loop_head, leave, path)
        elif kind is Kind.MAY_GOTO:  # jump once the run's loop allowance is used up
            out(indent, "if not run.loops and run.may_goto_expired():", last)
            self.goto(self.prog.target[last], indent + 1, loop_head, leave, path.copy())
            out(indent, "run.loops -= 1", last)
            self.goto(blk.end, indent, loop_head, leave, path)
        elif kind is Kind.COND_JUMP:
            target = self.prog.target[last]
            if target == blk.end:  # both edges lead to the next instruction
                self.goto(blk.end, indent, loop_head, leave, path)
                return
            out(indent, f"if {self.condition(insn, path)}:", last)
            self.goto(target, indent + 1, loop_head, leave, path.copy())
            self.goto(blk.end, indent, loop_head, leave, path)
        else:
            self.instruction(last, indent, path)
            self.goto(blk.end, indent, loop_head, leave, path)

    @staticmethod
    def _low(reg: int, path: _Path) -> str:
        return f"r{reg}" if reg in path.narrow else f"(r{reg} & 0xFFFFFFFF)"

    def condition(self, insn, path: _Path) -> str:
        op = insn.opcode & 0xF0
        wide = insn.opcode & 7 == Class.JMP
        reg = bool(insn.opcode & Source.X)
        d = f"r{insn.dst}" if wide else self._low(insn.dst, path)
        sign = SB if wide else 0x80000000
        if reg:
            s = f"r{insn.src}" if wide else self._low(insn.src, path)
        else:
            imm = insn.imm & (M64 if wide else M32)
            if op in (JmpOp.JSGT, JmpOp.JSGE, JmpOp.JSLT, JmpOp.JSLE):
                return _signed_imm_condition(op, d, insn.imm if wide else s32(insn.imm), imm, sign)
            s = str(imm)
        if op in (JmpOp.JSGT, JmpOp.JSGE, JmpOp.JSLT, JmpOp.JSLE):
            d, s = f"({d} ^ {sign:#x})", f"({s} ^ {sign:#x})"
        rel = {JmpOp.JEQ: "==", JmpOp.JNE: "!=", JmpOp.JGT: ">", JmpOp.JGE: ">=", JmpOp.JLT: "<",
               JmpOp.JLE: "<=", JmpOp.JSGT: ">", JmpOp.JSGE: ">=", JmpOp.JSLT: "<", JmpOp.JSLE: "<="}
        if op == JmpOp.JSET:
            return f"{d} & {s}"
        return f"{d} {rel[op]} {s}"

    # -- straight-line instructions --------------------------------------------

    def instruction(self, pc: int, indent: int, path: _Path) -> None:
        insn = self.insns[pc]
        kind = insn.kind
        emit = partial(self.out, indent, pc=pc)
        if kind in (Kind.ALU, Kind.MOV, Kind.NEG, Kind.END):
            emit(self.alu(insn, path))
        elif kind is Kind.LD_IMM64:
            value = self.prog.constant[pc]
            emit(f"r{insn.dst} = {value}")
            path.define(insn.dst, value < T32)
        elif kind is Kind.LOAD:
            emit(self.load(insn, path))
        elif kind in (Kind.STORE_IMM, Kind.STORE_REG):
            emit(self.store(insn, path))
        elif kind is Kind.ATOMIC:
            emit(self.atomic(insn, path))
        elif kind is Kind.CALL:
            emit(self.call(pc, insn, path))
        elif kind is Kind.CALLX:
            emit(f"run.steps = n + {path.pending}\nr0 = CALLX(r{insn.dst}, (r1, r2, r3, r4, r5), depth + 1)\n"
                 "n = run.steps")
            path.pending = 0
            path.define(0, False, ctx=True)
        elif kind in (Kind.LD_ABS, Kind.LD_IND):
            offset = f"{insn.imm}" if kind is Kind.LD_ABS else f"SEXT({insn.imm} + r{insn.src}, 32)"
            emit(f"r0 = run.ld_abs({offset}, {insn.info.size})\nif r0 is None: raise EXIT0")
            path.define(0, True)
        else:
            raise VMError(f"{self.prog.describe()}: instruction {pc} ({insn_text(insn)}) cannot be compiled")

    def alu(self, insn, path: _Path) -> str:
        code, narrow, ctx = self._alu(insn, path)
        path.define(insn.dst, narrow, ctx)
        return code

    def _alu(self, insn, path: _Path) -> tuple[str, bool, bool]:
        """(code, result below 2**32, result may be the context pointer)."""
        op = insn.opcode & 0xF0
        wide = insn.opcode & 7 == Class.ALU64
        dst = insn.dst
        d = f"r{dst}"
        x = bool(insn.opcode & Source.X)
        dn = dst in path.narrow
        if op == AluOp.NEG:
            return f"{d} = -{d} % {'T64' if wide else 'T32'}", not wide, False
        if op == AluOp.END:
            bits = insn.imm
            if x or wide:  # be16/32/64, bswap16/32/64
                if bits == 16:
                    return f"{d} = (({d} & 0xFF) << 8) | (({d} >> 8) & 0xFF)", True, False
                return f"{d} = BSWAP({d}, {bits})", bits == 32, False
            if bits == 64:
                return "pass", dn, False
            return f"{d} = {d} & {(1 << bits) - 1:#x}", True, False
        src = insn.src
        s = f"r{src}"
        sn = x and src in path.narrow
        imm = insn.imm & (M64 if wide else M32)
        if op == AluOp.MOV:
            if insn.off:
                return f"{d} = SEXT({s}, {insn.off}) % {'T64' if wide else 'T32'}", not wide, False
            if x and wide:
                return f"{d} = {s}", sn, src not in path.not_ctx
            if x:
                return f"{d} = {self._low(src, path)}", True, False
            return f"{d} = {imm}", imm < T32, False
        if not wide:
            return self._alu32(op, insn, path), True, False
        # 64-bit
        if x:
            operand, on = s, sn
        else:
            operand, on = str(imm), imm < T32
        if op == AluOp.ADD:
            if not x and insn.imm < 0:
                return f"{d} = ({d} - {-insn.imm}) % T64", False, False
            if dn and on:
                return f"{d} = {d} + {operand}", False, False  # below 2**33: no wrap possible
            return f"{d} = ({d} + {operand}) % T64", False, False
        if op == AluOp.SUB:
            if not x and insn.imm < 0:
                return f"{d} = ({d} + {-insn.imm}) % T64", False, False
            return f"{d} = ({d} - {operand}) % T64", False, False
        if op == AluOp.MUL:
            if dn and on:
                return f"{d} = {d} * {operand}", False, False  # below 2**64: no wrap possible
            return f"{d} = {d} * {operand} % T64", False, False
        if op == AluOp.OR:
            return f"{d} = {d} | {operand}", dn and on, False
        if op == AluOp.XOR:
            return f"{d} = {d} ^ {operand}", dn and on, False
        if op == AluOp.AND:
            return f"{d} = {d} & {operand}", dn or on, False
        if op == AluOp.LSH:
            if x:
                return f"{d} = ({d} << ({s} & 63)) % T64", False, False
            shift = insn.imm & 63
            if dn and shift <= 32:
                return f"{d} = {d} << {shift}", False, False
            return f"{d} = ({d} << {shift}) % T64", False, False
        if op == AluOp.RSH:
            if x:
                return f"{d} = {d} >> ({s} & 63)", dn, False
            return f"{d} = {d} >> {insn.imm & 63}", dn or insn.imm & 63 >= 32, False
        if op == AluOp.ARSH:
            sh = f"({s} & 63)" if x else str(insn.imm & 63)
            return f"{d} = ((({d} ^ {SB:#x}) - {SB:#x}) >> {sh}) % T64", False, False
        if op == AluOp.DIV:
            if insn.off:
                return f"{d} = SDIV({d}, {operand}, 64)", False, False
            if x:
                return f"{d} = {d} // {s} if {s} else 0", dn, False
            return (f"{d} = {d} // {operand}" if imm else f"{d} = 0"), dn or not imm, False
        if op == AluOp.MOD:
            if insn.off:
                return f"{d} = SMOD({d}, {operand}, 64)", False, False
            if x:  # by zero keeps dst: below 2**32 only if dst was
                return f"{d} = {d} % {s} if {s} else {d}", dn, False
            return (f"{d} = {d} % {operand}" if imm else "pass"), dn or (0 < imm < T32), False
        raise VMError(f"unknown ALU operation {insn.opcode:#04x}")

    def _alu32(self, op: int, insn, path: _Path) -> str:
        """A 32-bit ALU operation: operands are the low halves, the result is reduced mod 2**32."""
        d = f"r{insn.dst}"
        ds = self._low(insn.dst, path)
        x = bool(insn.opcode & Source.X)
        src = self._low(insn.src, path) if x else str(insn.imm & M32)
        both = insn.dst in path.narrow and (not x or insn.src in path.narrow)
        if op == AluOp.ADD:
            return f"{d} = ({d} + {src}) % T32"
        if op == AluOp.SUB:
            return f"{d} = ({d} - {src}) % T32"
        if op == AluOp.MUL:
            return f"{d} = {d} * {src} % T32"
        if op in (AluOp.OR, AluOp.XOR):
            sym = "|" if op == AluOp.OR else "^"
            return f"{d} = {ds} {sym} {src}" if both else f"{d} = ({d} {sym} {src}) & 0xFFFFFFFF"
        if op == AluOp.AND:
            if not x or insn.src in path.narrow or insn.dst in path.narrow:
                return f"{d} = {d} & r{insn.src}" if x else f"{d} = {d} & {src}"
            return f"{d} = {d} & r{insn.src} & 0xFFFFFFFF"
        if op == AluOp.LSH:
            sh = f"(r{insn.src} & 31)" if x else str(insn.imm & 31)
            return f"{d} = ({d} << {sh}) % T32"
        if op == AluOp.RSH:
            sh = f"(r{insn.src} & 31)" if x else str(insn.imm & 31)
            return f"{d} = {ds} >> {sh}"
        if op == AluOp.ARSH:
            sh = f"(r{insn.src} & 31)" if x else str(insn.imm & 31)
            return f"{d} = ((({ds} ^ 0x80000000) - 0x80000000) >> {sh}) % T32"
        if op == AluOp.DIV:
            if insn.off:
                return f"{d} = SDIV({ds}, {src}, 32)"
            if x:
                return f"{d} = {ds} // {src} if {src} else 0"
            return f"{d} = {ds} // {src}" if insn.imm & M32 else f"{d} = 0"
        if op == AluOp.MOD:
            if insn.off:
                return f"{d} = SMOD({ds}, {src}, 32)"
            if x:
                return f"{d} = {ds} % {src} if {src} else {ds}"
            return f"{d} = {ds} % {src}" if insn.imm & M32 else f"{d} = {ds}"
        raise VMError(f"unknown ALU operation {insn.opcode:#04x}")

    def _address(self, reg: int, off: int, size: int) -> tuple[str, str, str | None]:
        """(buffer expression, offset expression, prelude) for an access at r<reg> + off."""
        if reg == 10 and 0 <= STACK_SIZE + off and STACK_SIZE + off + size <= STACK_SIZE:
            return "S", str(STACK_SIZE + off), None
        if off:
            return f"a >> {OFFSET_BITS}", f"a & {OFFSET_MASK:#x}", f"a = r{reg} + {off}"
        return f"r{reg} >> {OFFSET_BITS}", f"r{reg} & {OFFSET_MASK:#x}", None

    def _ctx_guard(self, reg: int, path: _Path) -> str | None:
        """A context access is recognised at run time: the base register is exactly the context pointer.
        No test is needed when the path shows the register cannot hold it."""
        if reg in path.not_ctx:
            return None
        return f"r{reg} == {self.prog.vm.ctx_region.address}"

    def load(self, insn, path: _Path) -> str:
        size = insn.info.size
        signed = insn.opcode & 0xE0 == Mode.MEMSX
        d = f"r{insn.dst}"
        buf, off, prelude = self._address(insn.src, insn.off, size)
        table = "" if buf == "S" else "rd["
        close = "" if buf == "S" else "]"
        if size == 1 and not signed:
            expr = f"{table}{buf}{close}[{off}]"
        else:
            fn = f"{'LS' if signed else 'L'}{_SIZE_NAME[size]}"
            expr = f"{fn}({table}{buf}{close}, {off})[0]"
            if signed:
                expr += " % T64"
        code = f"{d} = {expr}"
        if prelude:
            code = f"{prelude}\n{code}"
        guard = self._ctx_guard(insn.src, path)
        if guard:
            ctx = f"{d} = run.ctx.load({insn.off}, {size})"
            if signed:
                ctx = f"{d} = SEXT(run.ctx.load({insn.off}, {size}), {size * 8}) % T64"
            code = f"if {guard}:\n    {ctx}\nelse:\n" + "\n".join("    " + ln for ln in code.split("\n"))
        # A spilled register reloaded from the stack may be the context pointer again.
        path.define(insn.dst, size <= 4 and not signed, ctx=insn.src == 10 and size == 8)
        return code

    def store(self, insn, path: _Path) -> str:
        size = insn.info.size
        if insn.kind is Kind.STORE_REG:
            if size == 8 or (size == 4 and insn.src in path.narrow):
                value = f"r{insn.src}"
            else:
                value = f"r{insn.src} & {(1 << (8 * size)) - 1:#x}"
        else:
            value = str(insn.imm & ((1 << (8 * size)) - 1))
        buf, off, prelude = self._address(insn.dst, insn.off, size)
        target = "S" if buf == "S" else f"wr[{buf}]"
        if size == 1:
            code = f"{target}[{off}] = {value}"
        else:
            code = f"S{_SIZE_NAME[size]}({target}, {off}, {value})"
        if prelude:
            code = f"{prelude}\n{code}"
        guard = self._ctx_guard(insn.dst, path)
        if guard:
            code = (f"if {guard}:\n    run.ctx.store({insn.off}, {size}, {value})\nelse:\n"
                    + "\n".join("    " + ln for ln in code.split("\n")))
        return code

    def atomic(self, insn, path: _Path) -> str:
        size = insn.info.size
        bits = _SIZE_NAME[size]
        mask = (1 << (8 * size)) - 1
        op = insn.imm
        s = f"r{insn.src}"
        if op == 0x100:  # load-acquire
            buf, off, prelude = self._address(insn.src, insn.off, size)
            src = "S" if buf == "S" else f"rd[{buf}]"
            code = f"r{insn.dst} = {src}[{off}]" if size == 1 else f"r{insn.dst} = L{bits}({src}, {off})[0]"
            path.define(insn.dst, size <= 4)
            return f"{prelude}\n{code}" if prelude else code
        buf, off, prelude = self._address(insn.dst, insn.off, size)
        lines = [prelude] if prelude else []
        lines.append(f"m = {'S' if buf == 'S' else f'wr[{buf}]'}\no = {off}")
        lines.append("old = m[o]" if size == 1 else f"old = L{bits}(m, o)[0]")
        write = (lambda v: f"m[o] = {v}") if size == 1 else (lambda v: f"S{bits}(m, o, {v})")
        if op == 0x110:  # store-release
            lines.append(write(f"{s} & {mask:#x}"))
        elif op == 0xF1:  # cmpxchg
            lines.append(f"if old == r0 & {mask:#x}:\n    {write(f'{s} & {mask:#x}')}\nr0 = old")
            path.define(0, size <= 4)
        else:
            base = op & ~1
            new = {0xE0: f"{s} & {mask:#x}", 0x00: f"(old + {s}) & {mask:#x}", 0x40: f"old | ({s} & {mask:#x})",
                   0x50: f"old & {s}", 0xA0: f"old ^ ({s} & {mask:#x})"}[base]
            lines.append(write(new))
            if op & 1:
                lines.append(f"{s} = old")
                path.define(insn.src, size <= 4)
        return "\n".join(lines)

    def call(self, pc: int, insn, path: _Path) -> str:
        callee = self.prog.callee[pc]
        steps = f"run.steps = n + {path.pending}" if path.pending else "run.steps = n"
        if callee is not None:
            path.pending = 0
            path.define(0, False, ctx=True)
            return f"{steps}\nr0 = f{callee}(r1, r2, r3, r4, r5, depth + 1)\nn = run.steps"
        helper = self.prog.helper[pc]
        args = ", ".join(f"r{i}" for i in range(1, helper.args + 1))
        path.define(0, False)
        if helper.tail_call:
            return (f"t = h{pc}({args})\n"
                    f"if t is not None:\n    {steps}\n    return t.compiled().enter(r1, depth)\n"
                    f"r0 = {T64 - 2}")
        code = f"r0 = h{pc}({args}) % T64"
        if helper.callbacks:
            path.pending = 0
            code = f"{steps}\nrun.depth = depth\n{code}\nn = run.steps"
        if helper.unwind:
            code += "\nif r0 == 0: raise EXIT0"
        return code


class _TooLarge(Exception):
    """Copying small join blocks made a function too large: compile it again without copies."""


class _TooDeep(Exception):
    """Inlining nested too deep at a block: compile again with a dispatch arm for it."""

    def __init__(self, block: int):
        self.block = block


def _emit_function(prog: "VMProgram", fn: "Function", out: _Emitter) -> None:
    duplicate, forced = True, frozenset()
    while True:
        mark = len(out.lines)
        try:
            _FunctionCompiler(prog, fn, out, duplicate, forced).emit()
            return
        except _TooLarge:
            duplicate = False
        except _TooDeep as deep:
            forced |= {deep.block}
        del out.lines[mark:], out.pcs[mark:]


def _signed_imm_condition(op: int, d: str, imm: int, unsigned: int, sign: int) -> str:
    """A signed comparison with a constant as range tests on the unsigned value (no XOR needed)."""
    if op == JmpOp.JSGT:
        return f"{imm} < {d} < {sign:#x}" if imm >= 0 else f"{d} < {sign:#x} or {d} > {unsigned}"
    if op == JmpOp.JSGE:
        return f"{imm} <= {d} < {sign:#x}" if imm >= 0 else f"{d} < {sign:#x} or {d} >= {unsigned}"
    if op == JmpOp.JSLT:
        return f"{d} < {imm} or {d} >= {sign:#x}" if imm >= 0 else f"{sign:#x} <= {d} < {unsigned}"
    return f"{d} <= {imm} or {d} >= {sign:#x}" if imm >= 0 else f"{sign:#x} <= {d} <= {unsigned}"


def _small_exit(prog: "VMProgram", block: Any) -> bool:
    return not block.succs and block.end - block.start <= 4 and prog.insns[block.end - 1].kind is Kind.EXIT


def _reachable(fn: "Function") -> set[int]:
    seen = {fn.start}
    todo = [fn.start]
    while todo:
        for s in fn.blocks[todo.pop()].succs:
            if s not in seen:
                seen.add(s)
                todo.append(s)
    return seen


__all__ = ["CompiledProgram"]
