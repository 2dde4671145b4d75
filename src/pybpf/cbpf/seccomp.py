"""seccomp-bpf filters from a policy: per-syscall actions, 64-bit argument checks.

A :class:`SeccompPolicy` names a default action and rules (syscall, action,
argument conditions); ``compile()`` turns it into a classic BPF program that
first checks the architecture (x86-64 only; x32 system calls, which share the
architecture value, are refused too), then the system call number, then the
arguments.  Arguments are 64-bit while classic BPF is 32-bit, so every
comparison is done on the high word first and the low word only when the high
words are equal, which is the only way to get ``<``/``>`` right for values
above 4 GiB.  ``install()`` applies the filter to the calling thread (with
``PR_SET_NO_NEW_PRIVS``, so no privilege is needed); it is inherited across
fork and exec.
"""

from __future__ import annotations

import ctypes
import difflib
import errno as errno_module
import struct
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from ..errors import BPFError, KernelError
from . import insn as I
from .insn import CInsn
from ..syscalls import SYSCALLS
from .validate import validate

AUDIT_ARCH_X86_64 = 0xC000003E
X32_SYSCALL_BIT = 0x40000000
# struct seccomp_data offsets
OFF_NR, OFF_ARCH, OFF_IP, OFF_ARGS = 0, 4, 8, 16

RET_KILL_PROCESS = 0x80000000
RET_KILL_THREAD = 0x00000000
RET_TRAP = 0x00030000
RET_ERRNO = 0x00050000
RET_USER_NOTIF = 0x7FC00000
RET_TRACE = 0x7FF00000
RET_LOG = 0x7FFC0000
RET_ALLOW = 0x7FFF0000
RET_DATA_MASK = 0x0000FFFF

PR_SET_NO_NEW_PRIVS = 38
SYS_SECCOMP = 317
SECCOMP_SET_MODE_FILTER = 1
SECCOMP_FILTER_FLAG_TSYNC = 1
SECCOMP_FILTER_FLAG_LOG = 2
_M32 = 0xFFFFFFFF
_M64 = 0xFFFFFFFFFFFFFFFF


@dataclass(frozen=True)
class Action:
    """What the kernel does with a matching system call: a SECCOMP_RET_* value."""

    value: int

    def __str__(self) -> str:
        base, data = self.value & ~RET_DATA_MASK & _M32, self.value & RET_DATA_MASK
        if base == RET_ERRNO:
            return f"errno {errno_module.errorcode.get(data, data)}"
        if base == RET_TRACE:
            return f"trace {data}"
        return {RET_KILL_PROCESS: "kill-process", RET_KILL_THREAD: "kill-thread", RET_TRAP: "trap",
                RET_USER_NOTIF: "user-notif", RET_LOG: "log", RET_ALLOW: "allow"}.get(base, f"{self.value:#x}")


ALLOW = Action(RET_ALLOW)
KILL_PROCESS = Action(RET_KILL_PROCESS)
KILL_THREAD = Action(RET_KILL_THREAD)
TRAP = Action(RET_TRAP)
LOG = Action(RET_LOG)


def Errno(err: int | str) -> Action:
    """Fail the system call with this errno (a number or a name such as "EPERM")."""
    return Action(RET_ERRNO | (errno_value(err) & RET_DATA_MASK))


def Trace(data: int = 0) -> Action:
    """Stop for a ptrace tracer (PTRACE_EVENT_SECCOMP) with ``data``; ENOSYS without one."""
    return Action(RET_TRACE | (data & RET_DATA_MASK))


def errno_value(err: int | str) -> int:
    if isinstance(err, int):
        if not 0 <= err <= 4095:
            raise BPFError(f"errno {err} is out of range 0..4095")
        return err
    name = err.upper()
    value = getattr(errno_module, name, None)
    if not isinstance(value, int):
        close = difflib.get_close_matches(name, [n for n in dir(errno_module) if n.startswith("E")], 3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise BPFError(f"unknown errno name {err!r}{hint}")
    return value


def parse_action(text: str) -> Action:
    """An action from its command-line spelling: allow, kill, kill-process, kill-thread, log, trap,
    errno (EPERM), errno=NAME_OR_NUMBER, trace[=N]."""
    word, _, arg = text.strip().lower().partition("=")
    if word in ("allow", "log", "trap", "kill", "kill-process", "kill-thread") and not arg:
        return {"allow": ALLOW, "log": LOG, "trap": TRAP, "kill": KILL_PROCESS, "kill-process": KILL_PROCESS,
                "kill-thread": KILL_THREAD}[word]
    if word == "errno":
        return Errno(int(arg) if arg.isdigit() else (arg or "EPERM"))
    if word == "trace":
        return Trace(int(arg) if arg else 0)
    raise BPFError(f"unknown seccomp action {text!r}: use allow, kill, kill-process, kill-thread, log, trap, "
                   "errno[=ERR] or trace[=N]")


def syscall_number(name: str | int) -> int:
    """The x86-64 number of a system call, from pybpf's table; unknown names say so (with suggestions)."""
    if isinstance(name, int):
        return name
    if name.isdigit():
        return int(name)
    if name in SYSCALLS:
        return SYSCALLS[name]
    close = difflib.get_close_matches(name, SYSCALLS, 3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise BPFError(f"unknown x86-64 system call {name!r}{hint}")


def syscall_name(nr: int) -> str:
    for name, value in SYSCALLS.items():
        if value == nr:
            return name
    return f"syscall {nr}"


# --- argument conditions -----------------------------------------------------

_OPS = ("==", "!=", "<", "<=", ">", ">=", "&==")


@dataclass(frozen=True)
class ArgCondition:
    """args[index] OP value, unsigned 64-bit; for "&==" the test is (args[index] & mask) == value."""

    index: int
    op: str
    value: int
    mask: int = _M64

    def __post_init__(self):
        if not 0 <= self.index <= 5:
            raise BPFError(f"system calls have arguments 0..5, not {self.index}")
        if self.op not in _OPS:
            raise BPFError(f"unknown comparison {self.op!r}: use one of {' '.join(_OPS)}")
        object.__setattr__(self, "value", self.value & _M64)  # -1 means 0xffff...ffff, as the kernel sees it
        object.__setattr__(self, "mask", self.mask & _M64)

    def holds(self, arg: int) -> bool:
        """The condition on one 64-bit argument value, evaluated in Python (the reference for tests)."""
        arg &= _M64
        return {"==": arg == self.value, "!=": arg != self.value, "<": arg < self.value, "<=": arg <= self.value,
                ">": arg > self.value, ">=": arg >= self.value,
                "&==": arg & self.mask == self.value}[self.op]

    def __str__(self) -> str:
        if self.op == "&==":
            return f"(arg{self.index} & {self.mask:#x}) == {self.value:#x}"
        return f"arg{self.index} {self.op} {self.value:#x}"


class Arg:
    """``Arg(1) > 5``, ``Arg(0) == 3``, ``Arg(2).masked(0o3) == os.O_WRONLY``: argument conditions."""

    def __init__(self, index: int):
        self.index = index

    def __eq__(self, v):  # type: ignore[override]
        return ArgCondition(self.index, "==", v)

    def __ne__(self, v):  # type: ignore[override]
        return ArgCondition(self.index, "!=", v)

    def __lt__(self, v):
        return ArgCondition(self.index, "<", v)

    def __le__(self, v):
        return ArgCondition(self.index, "<=", v)

    def __gt__(self, v):
        return ArgCondition(self.index, ">", v)

    def __ge__(self, v):
        return ArgCondition(self.index, ">=", v)

    def masked(self, mask: int) -> "_Masked":
        return _Masked(self.index, mask)

    __hash__ = None  # type: ignore[assignment]


class _Masked:
    def __init__(self, index: int, mask: int):
        self.index, self.mask = index, mask

    def __eq__(self, v):  # type: ignore[override]
        return ArgCondition(self.index, "&==", v & self.mask, self.mask)

    __hash__ = None  # type: ignore[assignment]


# --- the policy --------------------------------------------------------------


@dataclass
class Rule:
    nr: int
    action: Action
    conditions: tuple[ArgCondition, ...] = ()


@dataclass
class SeccompPolicy:
    """A default action plus rules; the first rule of a syscall whose conditions all hold decides."""

    default: Action = ALLOW
    bad_arch: Action = KILL_PROCESS  # foreign-architecture and x32 system calls
    rules: list[Rule] = field(default_factory=list)

    def add(self, syscall: str | int, action: Action, *conditions: ArgCondition) -> "SeccompPolicy":
        for cond in conditions:
            if not isinstance(cond, ArgCondition):
                raise BPFError(f"{cond!r} is not an argument condition (write Arg(0) == 1, Arg(2) > 5, ...)")
        self.rules.append(Rule(syscall_number(syscall), action, tuple(conditions)))
        return self

    def decide(self, nr: int, args: Sequence[int] = (0,) * 6, arch: int = AUDIT_ARCH_X86_64) -> Action:
        """The action for one system call, evaluated in Python (what the compiled filter must return)."""
        if arch != AUDIT_ARCH_X86_64 or nr & _M32 >= X32_SYSCALL_BIT:
            return self.bad_arch
        for rule in self.rules:
            if rule.nr == nr and all(c.holds(args[c.index]) for c in rule.conditions):
                return rule.action
        return self.default

    def compile(self) -> list[CInsn]:
        """The seccomp filter as classic BPF (validated with the kernel's seccomp rules)."""
        asm = _Assembler()
        asm.load(OFF_ARCH)
        asm.jump(I.JEQ, AUDIT_ARCH_X86_64, "arch_ok", "bad_arch")
        asm.label("arch_ok")
        asm.load(OFF_NR)
        asm.jump(I.JGE, X32_SYSCALL_BIT, "bad_arch", "nr_ok")
        asm.label("nr_ok")
        by_nr: dict[int, list[Rule]] = {}
        for rule in self.rules:
            by_nr.setdefault(rule.nr, []).append(rule)
        for n, (nr, rules) in enumerate(by_nr.items()):
            asm.jump(I.JEQ, nr, f"sys{n}", f"next{n}")
            asm.label(f"sys{n}")
            for r, rule in enumerate(rules):
                fail = f"sys{n}_rule{r + 1}"
                for c, cond in enumerate(rule.conditions):
                    passed = f"sys{n}_rule{r}_cond{c + 1}"
                    _emit_condition(asm, cond, passed, fail, f"sys{n}_rule{r}_cond{c}")
                    asm.label(passed)
                asm.ret(rule.action.value)
                asm.label(fail)
            asm.ret(self.default.value)
            asm.label(f"next{n}")  # reached only from the jeq above, so A still holds nr
        asm.ret(self.default.value)
        asm.label("bad_arch")
        asm.ret(self.bad_arch.value)
        return validate(asm.assemble(), seccomp=True)

    def install(self, flags: int = 0) -> None:
        """Apply the filter to this thread (and what it forks and execs). Irreversible."""
        install_filter(self.compile(), flags)


def _emit_condition(asm: "_Assembler", cond: ArgCondition, passed: str, fail: str, tag: str) -> None:
    hi_off, lo_off = OFF_ARGS + 8 * cond.index + 4, OFF_ARGS + 8 * cond.index  # little-endian halves
    vhi, vlo = cond.value >> 32, cond.value & _M32
    check_lo = tag + "_lo"
    op = cond.op
    if op == "&==":
        mhi, mlo = cond.mask >> 32, cond.mask & _M32
        if mhi or vhi:  # no high mask and no high value (flags of an int argument): no high-word test
            asm.load(hi_off)
            asm.alu_and(mhi)
            asm.jump(I.JEQ, vhi, check_lo, fail)
            asm.label(check_lo)
        asm.load(lo_off)
        asm.alu_and(mlo)
        asm.jump(I.JEQ, vlo, passed, fail)
        return
    asm.load(hi_off)
    if op in ("==", "!="):
        yes, no = (passed, fail) if op == "==" else (fail, passed)
        asm.jump(I.JEQ, vhi, check_lo, no)
        asm.label(check_lo)
        asm.load(lo_off)
        asm.jump(I.JEQ, vlo, yes, no)
        return
    # Ordered comparisons: decide on the high word unless it is equal, then on the low word.
    greater = tag + "_hi_not_greater"
    above, below = {">": (passed, fail), ">=": (passed, fail), "<": (fail, passed), "<=": (fail, passed)}[op]
    asm.jump(I.JGT, vhi, above, greater)
    asm.label(greater)
    asm.jump(I.JEQ, vhi, check_lo, below)
    asm.label(check_lo)
    asm.load(lo_off)
    if op == ">":
        asm.jump(I.JGT, vlo, passed, fail)
    elif op == ">=":
        asm.jump(I.JGE, vlo, passed, fail)
    elif op == "<":
        asm.jump(I.JGE, vlo, fail, passed)
    else:
        asm.jump(I.JGT, vlo, fail, passed)


class _Assembler:
    """Classic BPF with symbolic labels; conditional jumps farther than 255 become jump + ja pairs."""

    def __init__(self):
        self.items: list[tuple] = []

    def load(self, offset: int) -> None:
        self.items.append(("insn", CInsn(I.LD | I.W | I.ABS, 0, 0, offset)))

    def alu_and(self, k: int) -> None:
        self.items.append(("insn", CInsn(I.ALU | I.AND | I.K, 0, 0, k)))

    def ret(self, k: int) -> None:
        self.items.append(("insn", CInsn(I.RET | I.K, 0, 0, k)))

    def jump(self, op: int, k: int, true: str, false: str) -> None:
        self.items.append(("jump", op, k, true, false))

    def label(self, name: str) -> None:
        self.items.append(("label", name))

    def assemble(self) -> list[CInsn]:
        long_jumps: set[int] = set()
        while True:
            where, pos = {}, 0
            for i, item in enumerate(self.items):
                if item[0] == "label":
                    where[item[1]] = pos
                else:
                    pos += 3 if i in long_jumps else 1
            out, grew = [], False
            for i, item in enumerate(self.items):
                if item[0] == "insn":
                    out.append(item[1])
                elif item[0] == "jump":
                    _, op, k, true, false = item
                    here = len(out)
                    if i in long_jumps:  # j<op> k, 0, 1; ja true; ja false
                        out += [CInsn(I.JMP | op | I.K, 0, 1, k), CInsn(I.JMP | I.JA, 0, 0, where[true] - here - 2),
                                CInsn(I.JMP | I.JA, 0, 0, where[false] - here - 3)]
                        continue
                    jt, jf = where[true] - here - 1, where[false] - here - 1
                    if jt > 255 or jf > 255:
                        long_jumps.add(i)
                        grew = True
                        out.append(CInsn(0, 0, 0, 0))  # placeholder; laid out again below
                    else:
                        out.append(CInsn(I.JMP | op | I.K, jt, jf, k))
            if not grew:
                return out


# --- applying a filter -------------------------------------------------------


_libc = ctypes.CDLL(None, use_errno=True)


def install_filter(program: Iterable, flags: int = 0) -> None:
    """PR_SET_NO_NEW_PRIVS, then seccomp(SECCOMP_SET_MODE_FILTER): the filter applies from the next syscall."""
    insns = validate(program, seccomp=True)
    fprog, _array = I.sock_fprog(insns)
    if _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise KernelError(err, "prctl(PR_SET_NO_NEW_PRIVS) failed")
    if _libc.syscall(SYS_SECCOMP, SECCOMP_SET_MODE_FILTER, flags, fprog) != 0:
        err = ctypes.get_errno()
        raise KernelError(err, f"seccomp(SECCOMP_SET_MODE_FILTER) refused the {len(insns)}-instruction filter")


def seccomp_data(nr: int, args: Sequence[int] = (0,) * 6, arch: int = AUDIT_ARCH_X86_64,
                 instruction_pointer: int = 0) -> bytes:
    """The 64 bytes of struct seccomp_data a filter sees, for running filters in the interpreter."""
    args = list(args) + [0] * (6 - len(args))
    return struct.pack("<iIQ6Q", nr, arch, instruction_pointer, *(a & _M64 for a in args))


def describe(program: Sequence[CInsn]) -> list[str]:
    """tcpdump -d style lines for a seccomp filter, with what each constant means."""
    lines = []
    fields = {OFF_NR: "nr", OFF_ARCH: "arch", OFF_IP: "instruction_pointer", OFF_IP + 4: "instruction_pointer hi"}
    for i in range(6):
        fields[OFF_ARGS + 8 * i] = f"arg{i} lo"
        fields[OFF_ARGS + 8 * i + 4] = f"arg{i} hi"
    loaded = None
    for pc, ins in enumerate(program):
        code, k = ins.code, ins.k
        note = ""
        if code == I.LD | I.W | I.ABS:
            text, loaded = f"ld       [{k}]", fields.get(k)
            note = loaded or ""
        elif code == I.RET | I.K:
            text, note = f"ret      #{k:#x}", str(Action(k))
        elif I.cls(code) == I.JMP and code != I.JMP | I.JA:
            name = {I.JEQ: "jeq", I.JGT: "jgt", I.JGE: "jge", I.JSET: "jset"}[I.op(code)]
            text = f"{name}      #{k:#x}".ljust(24) + f"jt {pc + 1 + ins.jt}\tjf {pc + 1 + ins.jf}"
            if loaded == "nr" and I.op(code) == I.JEQ:
                note = syscall_name(k)
            elif loaded == "arch" and k == AUDIT_ARCH_X86_64:
                note = "AUDIT_ARCH_X86_64"
        elif code == I.JMP | I.JA:
            text = f"ja       {pc + 1 + k}"
        elif code == I.ALU | I.AND | I.K:
            text = f"and      #{k:#x}"
        else:
            text = f"{code:#06x} {ins.jt} {ins.jf} {k:#x}"
        lines.append(f"({pc:03d}) {text}" + (f"\t; {note}" if note else ""))
    return lines


__all__ = ["ALLOW", "KILL_PROCESS", "KILL_THREAD", "LOG", "TRAP", "Action", "Arg", "ArgCondition", "Errno",
           "SeccompPolicy", "Trace", "describe", "install_filter", "parse_action", "seccomp_data", "syscall_number"]
