"""Classic BPF to eBPF, the way Linux converts socket filters (bpf_convert_filter).

The result is an eBPF socket filter (BPF_PROG_TYPE_SOCKET_FILTER, context
``struct __sk_buff``) that any eBPF runtime can load: the kernel through
``bpf(BPF_PROG_LOAD)`` + ``SO_ATTACH_BPF``, or pybpf's VM.  Register mapping as
in the kernel: A is r0, X is r7, the context stays in r6 (which ``ld_abs``
needs), scratch word M[k] lives at r10 - 4*(k+1), r2 holds constants that do
not fit a signed immediate.  Packet loads stay ``ld_abs``/``ld_ind``, which
return 0 from the program when out of bounds, exactly like classic BPF.

Ancillary loads become ``__sk_buff`` field loads or helper calls where the
eBPF socket-filter interface offers one.  The kernel's own conversion reaches
into ``struct sk_buff`` directly, which a loaded program cannot, so four have
no equivalent and are refused with NotSupportedError: hatype, pay_offset,
nlattr and nlattr_nest.
"""

from __future__ import annotations

from typing import Iterable

from ..errors import InstructionError, NotSupportedError
from ..isa import CALL, EXIT, AluOp, Class, Instruction, JmpOp, Mode, Program, Size, Source
from . import insn as I
from .validate import CONDITIONAL_JUMPS, validate

REG_A, REG_X, REG_TMP, REG_CTX, REG_SAVE, REG_FP = 0, 7, 2, 6, 8, 10
_SIZES = {I.W: Size.W, I.H: Size.H, I.B: Size.B}
_ALU_OPS = {I.ADD: AluOp.ADD, I.SUB: AluOp.SUB, I.MUL: AluOp.MUL, I.DIV: AluOp.DIV, I.MOD: AluOp.MOD,
            I.OR: AluOp.OR, I.AND: AluOp.AND, I.XOR: AluOp.XOR, I.LSH: AluOp.LSH, I.RSH: AluOp.RSH}
_JMP_OPS = {I.JEQ: JmpOp.JEQ, I.JGT: JmpOp.JGT, I.JGE: JmpOp.JGE, I.JSET: JmpOp.JSET}
# When the true branch falls through, jump on the inverted condition (JSET has no inverse).
_INVERTED = {I.JEQ: JmpOp.JNE, I.JGT: JmpOp.JLE, I.JGE: JmpOp.JLT}

# struct __sk_buff offsets (include/uapi/linux/bpf.h)
SKB_LEN, SKB_PKT_TYPE, SKB_MARK, SKB_QUEUE_MAPPING, SKB_PROTOCOL = 0, 4, 8, 12, 16
SKB_VLAN_PRESENT, SKB_VLAN_TCI, SKB_VLAN_PROTO, SKB_IFINDEX, SKB_HASH = 20, 24, 28, 40, 68
HELPER_GET_PRANDOM_U32, HELPER_GET_SMP_PROCESSOR_ID = 7, 8

_FIELD_LOADS = {"pkttype": SKB_PKT_TYPE, "ifindex": SKB_IFINDEX, "mark": SKB_MARK, "queue": SKB_QUEUE_MAPPING,
                "rxhash": SKB_HASH, "vlan_tci": SKB_VLAN_TCI, "vlan_avail": SKB_VLAN_PRESENT}
_BYTE_SWAPPED = {"protocol": SKB_PROTOCOL, "vlan_tpid": SKB_VLAN_PROTO}  # network order in the skb
_HELPERS = {"cpu": HELPER_GET_SMP_PROCESSOR_ID, "random": HELPER_GET_PRANDOM_U32}
_ANCILLARY = {(I.SKF_AD_OFF + off) & 0xFFFFFFFF: name for name, off in I.SKF_AD.items()}


def _s32(k: int) -> int:
    return k - (1 << 32) if k & 0x80000000 else k


def _alu32(op: AluOp, dst: int, *, src: int | None = None, imm: int = 0) -> Instruction:
    if src is None:
        return Instruction(Class.ALU | op | Source.K, dst, 0, 0, _s32(imm & 0xFFFFFFFF))
    return Instruction(Class.ALU | op | Source.X, dst, src)


def _mov64(dst: int, src: int) -> Instruction:
    return Instruction(Class.ALU64 | AluOp.MOV | Source.X, dst, src)


def _ldxw(dst: int, base: int, off: int) -> Instruction:
    return Instruction(Class.LDX | Mode.MEM | Size.W, dst, base, off)


def _exit() -> Instruction:
    return Instruction(EXIT)


class _Jump:
    """An eBPF jump whose offset is known once every classic instruction has its place."""

    __slots__ = ("opcode", "src", "imm", "target")

    def __init__(self, opcode: int, target: int, src: int = 0, imm: int = 0):
        self.opcode, self.src, self.imm, self.target = opcode, src, imm, target


def to_ebpf(program: Iterable) -> Program:
    """Convert a classic BPF program (validated first) into an eBPF socket filter."""
    insns = validate(program)
    reachable = _reachable(insns)  # the eBPF verifier refuses unreachable code; classic BPF allows it
    pieces = [_convert(pc, ins) if reachable[pc] else [] for pc, ins in enumerate(insns)]
    # The kernel zeroes A and X with xor; a loaded program must use mov, as the verifier
    # refuses to read a register (even to xor it with itself) before it is written.
    prologue = [_alu32(AluOp.MOV, REG_A, imm=0), _alu32(AluOp.MOV, REG_X, imm=0), _mov64(REG_CTX, 1)]
    start = []
    pos = len(prologue)
    for piece in pieces:
        start.append(pos)
        pos += len(piece)
    out = list(prologue)
    for pc, piece in enumerate(pieces):
        for item in piece:
            if isinstance(item, _Jump):
                off = start[item.target] - (len(out) + 1)
                if not -0x8000 <= off <= 0x7FFF:
                    raise InstructionError(f"the converted jump spans {off} eBPF instructions, more than the "
                                           "16-bit offset allows; split the filter", pc)
                item = Instruction(item.opcode, REG_A if item.opcode != Class.JMP | JmpOp.JA else 0, item.src, off,
                                   item.imm)
            out.append(item)
    return Program(out)


def _reachable(insns: list[I.CInsn]) -> list[bool]:
    seen = [False] * len(insns)
    seen[0] = True
    for pc, ins in enumerate(insns):  # jumps go forward, so one pass in order suffices
        if not seen[pc]:
            continue
        if ins.code == I.JMP | I.JA:
            seen[pc + 1 + ins.k] = True
        elif ins.code in CONDITIONAL_JUMPS:
            seen[pc + 1 + ins.jt] = seen[pc + 1 + ins.jf] = True
        elif I.cls(ins.code) != I.RET:
            seen[pc + 1] = True
    return seen


def _convert(pc: int, ins: I.CInsn) -> list:
    code, k = ins.code, ins.k
    c = I.cls(code)
    if c == I.ALU:
        op = I.op(code)
        if op == I.NEG:
            return [Instruction(Class.ALU | AluOp.NEG, REG_A)]
        if I.src(code) == I.X:
            guard = []
            if op in (I.DIV, I.MOD):  # eBPF gives 0 or A here; classic BPF drops the packet
                guard = [Instruction(Class.JMP | JmpOp.JNE | Source.K, REG_X, 0, 2, 0),
                         _alu32(AluOp.XOR, REG_A, src=REG_A), _exit()]
            return guard + [_alu32(_ALU_OPS[op], REG_A, src=REG_X)]
        return [_alu32(_ALU_OPS[op], REG_A, imm=k)]
    if c in (I.LD, I.LDX):
        reg = REG_A if c == I.LD else REG_X
        mode = I.mode(code)
        if mode == I.IMM:
            return [_alu32(AluOp.MOV, reg, imm=k)]
        if mode == I.MEM:
            return [_ldxw(reg, REG_FP, -(4 * k + 4))]
        if mode == I.LEN:
            return [_ldxw(reg, REG_CTX, SKB_LEN)]
        if mode == I.MSH:  # X = (P[k] & 0xf) << 2, keeping A across the ld_abs (which writes r0)
            return [_mov64(REG_SAVE, REG_A), Instruction(Class.LD | Mode.ABS | Size.B, 0, 0, 0, _s32(k)),
                    _alu32(AluOp.AND, REG_A, imm=0xF), _alu32(AluOp.LSH, REG_A, imm=2), _mov64(REG_X, REG_A),
                    _mov64(REG_A, REG_SAVE)]
        size = _SIZES[I.size(code)]
        if mode == I.ABS:
            if k in _ANCILLARY:
                return _ancillary(pc, _ANCILLARY[k])
            return [Instruction(Class.LD | Mode.ABS | size, 0, 0, 0, _s32(k))]
        return [Instruction(Class.LD | Mode.IND | size, 0, REG_X, 0, _s32(k))]
    if c == I.ST:
        return [Instruction(Class.STX | Mode.MEM | Size.W, REG_FP, REG_A, -(4 * k + 4))]
    if c == I.STX:
        return [Instruction(Class.STX | Mode.MEM | Size.W, REG_FP, REG_X, -(4 * k + 4))]
    if c == I.MISC:
        return [_mov64(REG_X, REG_A)] if code == I.MISC | I.TAX else [_mov64(REG_A, REG_X)]
    if c == I.RET:
        if code == I.RET | I.K:
            return [_alu32(AluOp.MOV, REG_A, imm=k), _exit()]
        return [_exit()]
    if code == I.JMP | I.JA:
        return [_Jump(Class.JMP | JmpOp.JA, pc + 1 + k)]
    if code in CONDITIONAL_JUMPS:
        return _conditional(pc, ins)
    raise AssertionError(f"validate() admitted opcode {code:#x}")


def _conditional(pc: int, ins: I.CInsn) -> list:
    op = I.op(ins.code)
    out: list = []
    if I.src(ins.code) == I.X:
        src_kind, src, imm = Source.X, REG_X, 0
    elif ins.k & 0x80000000:  # immediates are sign-extended: compare with a zero-extended register
        out.append(_alu32(AluOp.MOV, REG_TMP, imm=ins.k))
        src_kind, src, imm = Source.X, REG_TMP, 0
    else:
        src_kind, src, imm = Source.K, 0, ins.k
    t, f = pc + 1 + ins.jt, pc + 1 + ins.jf
    if ins.jf == 0:
        return out + [_Jump(Class.JMP | _JMP_OPS[op] | src_kind, t, src, imm)]
    if ins.jt == 0 and op in _INVERTED:
        return out + [_Jump(Class.JMP | _INVERTED[op] | src_kind, f, src, imm)]
    return out + [_Jump(Class.JMP | _JMP_OPS[op] | src_kind, t, src, imm), _Jump(Class.JMP | JmpOp.JA, f)]


def _ancillary(pc: int, name: str) -> list:
    if name in _FIELD_LOADS:
        return [_ldxw(REG_A, REG_CTX, _FIELD_LOADS[name])]
    if name in _BYTE_SWAPPED:
        return [_ldxw(REG_A, REG_CTX, _BYTE_SWAPPED[name]),
                Instruction(Class.ALU | AluOp.END | Source.X, REG_A, 0, 0, 16)]  # be16: ntohs
    if name in _HELPERS:
        return [Instruction(CALL, 0, 0, 0, _HELPERS[name])]
    if name == "alu_xor_x":
        return [_alu32(AluOp.XOR, REG_A, src=REG_X)]
    raise NotSupportedError(
        f"instruction {pc}: the ancillary load SKF_AD_{name.upper()}",
        reason="an eBPF socket filter has no __sk_buff field or helper for it; keep the filter classic "
               "(SO_ATTACH_FILTER) or drop the load")
