"""The kernel's rules for classic BPF programs, checked before anything runs them.

These are the rules of ``bpf_check_classic`` (net/core/filter.c) that decide
whether ``SO_ATTACH_FILTER`` accepts a program, plus the stricter subset of
``seccomp_check_filter`` (kernel/seccomp.c).  The interpreter and the eBPF
converter rely on them: every jump is forward and in range, every path ends in
``ret``, scratch memory is written before it is read, no constant divides by 0.
Applying them here means a program that runs in pybpf also attaches in Linux.
"""

from __future__ import annotations

from typing import Iterable, Sequence

from ..errors import FilterValidationError
from . import insn as I
from .insn import CInsn

# Every opcode chk_code_allowed() accepts, with the mnemonic tcpdump -d prints.
OPCODE_NAMES: dict[int, str] = {
    I.LD | I.W | I.ABS: "ld", I.LD | I.H | I.ABS: "ldh", I.LD | I.B | I.ABS: "ldb",
    I.LD | I.W | I.IND: "ld", I.LD | I.H | I.IND: "ldh", I.LD | I.B | I.IND: "ldb",
    I.LD | I.W | I.LEN: "ld", I.LD | I.IMM: "ld", I.LD | I.MEM: "ld",
    I.LDX | I.W | I.LEN: "ldx", I.LDX | I.B | I.MSH: "ldxb", I.LDX | I.IMM: "ldx", I.LDX | I.MEM: "ldx",
    I.ST: "st", I.STX: "stx",
    I.MISC | I.TAX: "tax", I.MISC | I.TXA: "txa",
    I.RET | I.K: "ret", I.RET | I.A: "ret",
    I.JMP | I.JA: "ja",
    I.ALU | I.NEG: "neg",
}
for _op, _name in ((I.ADD, "add"), (I.SUB, "sub"), (I.MUL, "mul"), (I.DIV, "div"), (I.MOD, "mod"), (I.AND, "and"),
                   (I.OR, "or"), (I.XOR, "xor"), (I.LSH, "lsh"), (I.RSH, "rsh")):
    OPCODE_NAMES[I.ALU | _op | I.K] = OPCODE_NAMES[I.ALU | _op | I.X] = _name
for _op, _name in ((I.JEQ, "jeq"), (I.JGT, "jgt"), (I.JGE, "jge"), (I.JSET, "jset")):
    OPCODE_NAMES[I.JMP | _op | I.K] = OPCODE_NAMES[I.JMP | _op | I.X] = _name

CONDITIONAL_JUMPS = frozenset(I.JMP | op | s for op in (I.JEQ, I.JGT, I.JGE, I.JSET) for s in (I.K, I.X))
SCRATCH_OPS = frozenset({I.LD | I.MEM, I.LDX | I.MEM, I.ST, I.STX})
ANCILLARY_OFFSETS = frozenset((I.SKF_AD_OFF + off) & 0xFFFFFFFF for off in I.SKF_AD.values())

# seccomp_check_filter() allows these as they are; W/ABS and the two LEN loads it rewrites.
_SECCOMP_AS_IS = frozenset(
    {I.RET | I.K, I.RET | I.A, I.ALU | I.NEG, I.LD | I.IMM, I.LDX | I.IMM, I.MISC | I.TAX, I.MISC | I.TXA,
     I.LD | I.MEM, I.LDX | I.MEM, I.ST, I.STX, I.JMP | I.JA, I.LD | I.W | I.LEN, I.LDX | I.W | I.LEN}
    | {I.ALU | op | s for op in (I.ADD, I.SUB, I.MUL, I.DIV, I.AND, I.OR, I.XOR, I.LSH, I.RSH) for s in (I.K, I.X)}
    | CONDITIONAL_JUMPS
)
SECCOMP_DATA_SIZE = 64  # struct seccomp_data: nr, arch, instruction_pointer, args[6]


def as_program(program: Iterable) -> list[CInsn]:
    """Accept CInsns, (code, jt, jf, k) tuples or struct sock_filter bytes; return CInsns."""
    if isinstance(program, (bytes, bytearray, memoryview)):
        return I.decode_program(bytes(program))
    out = []
    for pc, p in enumerate(program):
        try:
            ins = p if isinstance(p, CInsn) else CInsn(*p)
        except TypeError:
            raise FilterValidationError(f"{p!r} is not an instruction (code, jt, jf, k)", pc) from None
        if not all(isinstance(v, int) for v in ins):
            raise FilterValidationError(f"{tuple(ins)!r}: code, jt, jf and k must be integers", pc)
        out.append(ins)
    return out


def opcode_name(code: int) -> str:
    return OPCODE_NAMES.get(code, f"opcode {code:#06x}")


def validate(program: Iterable, *, seccomp: bool = False, pcap: bool = False) -> list[CInsn]:
    """Check a program against the kernel's rules; return it as CInsns.

    Raises FilterValidationError naming the first offending instruction, so a
    caller learns what to fix before the kernel says only "Invalid argument".
    ``pcap=True`` relaxes two rules the way libpcap's bpf_validate does: a
    ``ja`` offset wraps around 32 bits, so it may jump backwards (libpcap
    compiles ``protochain`` into such a loop; the kernel refuses it), and an
    absolute load may name any offset (bpf_filter rejects the packet when it
    is beyond the end; there are no Linux ancillary loads).
    """
    insns = as_program(program)
    n = len(insns)
    if n == 0:
        raise FilterValidationError("empty classic BPF program: it needs at least a ret instruction")
    if n > I.MAXINSNS:
        raise FilterValidationError(f"classic BPF program has {n} instructions, the kernel allows {I.MAXINSNS}")
    for pc, ins in enumerate(insns):
        _check_one(ins, pc, n, pcap)
    if insns[-1].code not in (I.RET | I.K, I.RET | I.A):
        raise FilterValidationError(
            f"the last instruction is {opcode_name(insns[-1].code)}, but a program must end in ret", n - 1)
    _check_scratch_written(insns)
    if seccomp:
        _check_seccomp(insns)
    return insns


def jump_target(pc: int, k: int) -> int:
    """Where ``ja k`` at pc goes when k wraps around 32 bits (libpcap's reading)."""
    return (pc + 1 + k) & 0xFFFFFFFF


def _check_one(ins: CInsn, pc: int, n: int, pcap: bool = False) -> None:
    code, k = ins.code, ins.k
    if not (0 <= code <= 0xFFFF and 0 <= ins.jt <= 0xFF and 0 <= ins.jf <= 0xFF and 0 <= k <= 0xFFFFFFFF):
        raise FilterValidationError(f"field out of range in {tuple(ins)} (code 16 bits, jt/jf 8 bits, k 32 bits)", pc)
    if code not in OPCODE_NAMES:
        raise FilterValidationError(f"unknown or unsupported opcode {code:#06x}", pc)
    if code in (I.ALU | I.DIV | I.K, I.ALU | I.MOD | I.K) and k == 0:
        raise FilterValidationError(f"{opcode_name(code)} #0 divides by the constant zero", pc)
    elif code in (I.ALU | I.LSH | I.K, I.ALU | I.RSH | I.K) and k >= 32:
        raise FilterValidationError(f"{opcode_name(code)} #{k} shifts by 32 or more bits", pc)
    elif code in SCRATCH_OPS and k >= I.MEMWORDS:
        raise FilterValidationError(
            f"{opcode_name(code)} M[{k}] is outside scratch memory M[0]..M[{I.MEMWORDS - 1}]", pc)
    elif code == I.JMP | I.JA and pcap:
        if jump_target(pc, k) >= n:
            raise FilterValidationError(f"ja {k:#x} jumps to {jump_target(pc, k)}, outside the program "
                                        f"(0..{n - 1})", pc)
    elif code == I.JMP | I.JA and k >= n - pc - 1:
        raise FilterValidationError(f"ja +{k} jumps to {pc + 1 + k}, past the last instruction {n - 1}", pc)
    elif code in CONDITIONAL_JUMPS and (pc + ins.jt + 1 >= n or pc + ins.jf + 1 >= n):
        raise FilterValidationError(
            f"{opcode_name(code)} jumps to {pc + ins.jt + 1} if true, {pc + ins.jf + 1} if false; "
            f"the last instruction is {n - 1}", pc)
    elif I.cls(code) == I.LD and I.mode(code) == I.ABS and k >= (I.SKF_AD_OFF & 0xFFFFFFFF) \
            and k not in ANCILLARY_OFFSETS and not pcap:
        raise FilterValidationError(f"{opcode_name(code)} [SKF_AD_OFF + {k - (1 << 32) - I.SKF_AD_OFF}] is not a "
                                    "Linux ancillary load the kernel knows", pc)


def _check_scratch_written(insns: Sequence[CInsn]) -> None:
    """check_load_and_stores(): a scratch word must be written on every path before it is read."""
    masks = [0xFFFF] * len(insns)
    valid = 0
    for pc, ins in enumerate(insns):
        valid &= masks[pc]
        code = ins.code
        if code in (I.ST, I.STX):
            valid |= 1 << ins.k
        elif code in (I.LD | I.MEM, I.LDX | I.MEM):
            if not valid & (1 << ins.k):
                raise FilterValidationError(f"{opcode_name(code)} M[{ins.k}] reads scratch memory that is not "
                                            "written on every path leading here", pc)
        elif code == I.JMP | I.JA:
            target = jump_target(pc, ins.k)
            if target > pc:  # a backward ja (pcap) returns to code already checked with its other paths
                masks[target] &= valid
            valid = 0xFFFF
        elif code in CONDITIONAL_JUMPS:
            masks[pc + 1 + ins.jt] &= valid
            masks[pc + 1 + ins.jf] &= valid
            valid = 0xFFFF


def _check_seccomp(insns: Sequence[CInsn]) -> None:
    for pc, ins in enumerate(insns):
        code = ins.code
        if code == I.LD | I.W | I.ABS:
            if ins.k >= SECCOMP_DATA_SIZE or ins.k & 3:
                raise FilterValidationError(
                    f"seccomp: ld [{ins.k}] must be a 4-byte aligned offset inside struct seccomp_data "
                    f"(0..{SECCOMP_DATA_SIZE - 4})", pc)
        elif code not in _SECCOMP_AS_IS:
            raise FilterValidationError(
                f"seccomp filters cannot use {opcode_name(code)} (opcode {code:#06x}): only 32-bit loads of "
                "struct seccomp_data, ALU without mod, jumps, scratch memory and ret", pc)
