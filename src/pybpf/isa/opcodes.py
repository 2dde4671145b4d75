"""The opcode model of eBPF (RFC 9669 plus Linux extensions), as data.

An opcode byte is ``op | source | class`` for ALU/JMP and ``mode | size | class``
for loads and stores.  :data:`OPCODES` maps every valid opcode byte to an
:class:`OpInfo` that says which instruction fields it uses and which values
they may take; decoding, validation, assembling and disassembling all read this
one table instead of repeating the rules in branches.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, IntFlag
from typing import Callable

# --- instruction classes (low 3 bits) ---------------------------------------


class Class(IntEnum):
    LD = 0x00
    LDX = 0x01
    ST = 0x02
    STX = 0x03
    ALU = 0x04
    JMP = 0x05
    JMP32 = 0x06
    ALU64 = 0x07


CLASS_MASK = 0x07
SOURCE_MASK = 0x08
OP_MASK = 0xF0
SIZE_MASK = 0x18
MODE_MASK = 0xE0


class Source(IntEnum):
    K = 0x00  # immediate operand
    X = 0x08  # register operand


class AluOp(IntEnum):
    ADD = 0x00
    SUB = 0x10
    MUL = 0x20
    DIV = 0x30
    OR = 0x40
    AND = 0x50
    LSH = 0x60
    RSH = 0x70
    NEG = 0x80
    MOD = 0x90
    XOR = 0xA0
    MOV = 0xB0
    ARSH = 0xC0
    END = 0xD0


class JmpOp(IntEnum):
    JA = 0x00
    JEQ = 0x10
    JGT = 0x20
    JGE = 0x30
    JSET = 0x40
    JNE = 0x50
    JSGT = 0x60
    JSGE = 0x70
    CALL = 0x80
    EXIT = 0x90
    JLT = 0xA0
    JLE = 0xB0
    JSLT = 0xC0
    JSLE = 0xD0
    JCOND = 0xE0  # may_goto (Linux 6.9)


class Size(IntEnum):
    W = 0x00
    H = 0x08
    B = 0x10
    DW = 0x18


SIZE_BYTES = {Size.W: 4, Size.H: 2, Size.B: 1, Size.DW: 8}
SIZE_SUFFIX = {Size.W: "w", Size.H: "h", Size.B: "b", Size.DW: "dw"}


class Mode(IntEnum):
    IMM = 0x00
    ABS = 0x20
    IND = 0x40
    MEM = 0x60
    MEMSX = 0x80
    ATOMIC = 0xC0


class AtomicOp(IntEnum):
    """Values of imm in a BPF_ATOMIC instruction."""

    ADD = 0x00
    OR = 0x40
    AND = 0x50
    XOR = 0xA0
    FETCH_ADD = 0x01
    FETCH_OR = 0x41
    FETCH_AND = 0x51
    FETCH_XOR = 0xA1
    XCHG = 0xE1
    CMPXCHG = 0xF1
    LOAD_ACQ = 0x100  # Linux 6.15
    STORE_REL = 0x110  # Linux 6.15


ATOMIC_FETCH = 0x01


class PseudoLoad(IntEnum):
    """src_reg of ld_imm64: what the 64-bit immediate means."""

    IMM = 0
    MAP_FD = 1
    MAP_VALUE = 2
    BTF_ID = 3
    FUNC = 4
    MAP_IDX = 5
    MAP_IDX_VALUE = 6


class PseudoCall(IntEnum):
    """src_reg of call: helper id, pc-relative bpf-to-bpf call, or kfunc BTF id."""

    HELPER = 0
    CALL = 1
    KFUNC_CALL = 2


# The kernel's internal marker for `mov64 rD, rS` with off=1: addr_space_cast (arena pointers, 6.9).
ADDR_SPACE_CAST_OFF = 1

# Frequently used whole opcodes.
LD_IMM64 = Class.LD | Size.DW | Mode.IMM  # 0x18
CALL = Class.JMP | JmpOp.CALL  # 0x85
CALLX = Class.JMP | JmpOp.CALL | Source.X  # 0x8d
EXIT = Class.JMP | JmpOp.EXIT  # 0x95
JA = Class.JMP | JmpOp.JA  # 0x05
JA32 = Class.JMP32 | JmpOp.JA  # 0x06 (gotol: offset in imm)
MAY_GOTO = Class.JMP | JmpOp.JCOND  # 0xe5


class Kind(IntEnum):
    """What an instruction does, at the level the tools care about."""

    ALU = 1
    NEG = 2
    MOV = 3
    END = 4
    JUMP = 5  # ja / gotol
    COND_JUMP = 6
    CALL = 7
    CALLX = 8
    EXIT = 9
    LD_IMM64 = 10
    LOAD = 11  # ldx (and ldsx)
    STORE_IMM = 12  # st
    STORE_REG = 13  # stx
    ATOMIC = 14
    LD_ABS = 15
    LD_IND = 16
    MAY_GOTO = 17


# Field constraints: None means "must be zero"; ANY means unconstrained within its range.
ANY = "any"

# A cross-field rule: (src, off, imm) -> problem text or None.  Used where one
# field's allowed values depend on another (call's off, addr_space_cast's imm).
CrossCheck = Callable[[int, int, int], "str | None"]


@dataclass(frozen=True, slots=True)
class OpInfo:
    opcode: int
    name: str  # conformance-suite / uBPF mnemonic: add32, ldxw, jne, lock...
    kind: Kind
    dst: object = ANY  # ANY or None
    src: object = None  # ANY, None or a frozenset of allowed values
    off: object = None  # ANY, None or a frozenset of allowed values
    imm: object = None  # ANY, None or a frozenset of allowed values
    check: CrossCheck | None = None

    @property
    def cls(self) -> Class:
        return Class(self.opcode & CLASS_MASK)

    @property
    def is_alu64(self) -> bool:
        return self.cls in (Class.ALU64, Class.JMP)

    @property
    def size(self) -> int:
        """Access width in bytes of a load/store/atomic."""
        return SIZE_BYTES[Size(self.opcode & SIZE_MASK)]


def _call_rule(src: int, off: int, imm: int) -> str | None:
    # Only kfunc calls use off (index of the module BTF in fd_array); the kernel
    # rejects it anywhere else as "BPF_CALL uses reserved fields".
    if off and src != PseudoCall.KFUNC_CALL:
        return f"offset {off} is only allowed on kfunc calls (src=2), this call has src={src}"
    return None


def _mov64_reg_rule(src: int, off: int, imm: int) -> str | None:
    # addr_space_cast (off=1) converts between address spaces 0 and 1 (dst_as << 16 | src_as in
    # imm, as the verifier insists); every other mov has imm 0.
    if off == ADDR_SPACE_CAST_OFF:
        if imm not in (1, 1 << 16):
            return f"addr_space_cast converts between address spaces 0 and 1: imm must be 0x1 or 0x10000, is {imm:#x}"
    elif imm:
        return f"reserved field imm must be 0, is {imm}"
    return None


def _ld_imm64_rule(src: int, off: int, imm: int) -> str | None:
    # map_by_fd, code_addr and map_by_idx leave next_imm unused: RFC 9669 and
    # the verifier ("unrecognized bpf_ld_imm64 insn") require it to be zero.
    if src in (PseudoLoad.MAP_FD, PseudoLoad.FUNC, PseudoLoad.MAP_IDX) and imm >> 32:
        return f"src={src} uses only the low 32 bits of imm, the high word must be 0 (is {imm >> 32:#x})"
    return None


def _build_table() -> dict[int, OpInfo]:
    table: dict[int, OpInfo] = {}

    def add(info: OpInfo) -> None:
        assert info.opcode not in table, hex(info.opcode)
        table[info.opcode] = info

    # ALU and ALU64
    for cls, suffix in ((Class.ALU64, ""), (Class.ALU, "32")):
        for op in AluOp:
            name = op.name.lower()
            if op is AluOp.NEG:
                add(OpInfo(cls | op, name + suffix, Kind.NEG))
                continue
            if op is AluOp.END:
                widths = frozenset({16, 32, 64})
                if cls is Class.ALU:
                    add(OpInfo(cls | op | Source.K, "le", Kind.END, imm=widths))
                    add(OpInfo(cls | op | Source.X, "be", Kind.END, imm=widths))
                else:
                    add(OpInfo(cls | op | Source.K, "bswap", Kind.END, imm=widths))
                continue
            kind = Kind.MOV if op is AluOp.MOV else Kind.ALU
            off = None
            if op in (AluOp.DIV, AluOp.MOD):
                off = frozenset({0, 1})  # 1 = signed (sdiv/smod, v4)
            reg_off, reg_imm, rule = off, None, None
            if op is AluOp.MOV:  # movsx (v4); addr_space_cast (mov64 off=1)
                if cls is Class.ALU64:
                    reg_off, reg_imm, rule = frozenset({0, ADDR_SPACE_CAST_OFF, 8, 16, 32}), ANY, _mov64_reg_rule
                else:
                    reg_off = frozenset({0, 8, 16})
            add(OpInfo(cls | op | Source.K, name + suffix, kind, imm=ANY, off=off))
            add(OpInfo(cls | op | Source.X, name + suffix, kind, src=ANY, off=reg_off, imm=reg_imm, check=rule))

    # JMP and JMP32
    for cls, suffix in ((Class.JMP, ""), (Class.JMP32, "32")):
        for op in JmpOp:
            name = op.name.lower()
            if op is JmpOp.JA:
                if cls is Class.JMP:
                    add(OpInfo(cls | op, "ja", Kind.JUMP, dst=None, off=ANY))
                else:
                    add(OpInfo(cls | op, "ja32", Kind.JUMP, dst=None, imm=ANY))
                continue
            if op in (JmpOp.CALL, JmpOp.EXIT, JmpOp.JCOND):
                if cls is Class.JMP:
                    if op is JmpOp.CALL:
                        add(OpInfo(cls | op, "call", Kind.CALL, dst=None, src=frozenset(PseudoCall), imm=ANY,
                                   off=ANY, check=_call_rule))
                        # callx (clang's indirect call): the target register is dst, as clang encodes it.
                        add(OpInfo(cls | op | Source.X, "callx", Kind.CALLX, dst=ANY))
                    elif op is JmpOp.EXIT:
                        add(OpInfo(cls | op, "exit", Kind.EXIT, dst=None))
                    else:
                        add(OpInfo(cls | op, "may_goto", Kind.MAY_GOTO, dst=None, off=ANY))
                continue
            add(OpInfo(cls | op | Source.K, name + suffix, Kind.COND_JUMP, off=ANY, imm=ANY))
            add(OpInfo(cls | op | Source.X, name + suffix, Kind.COND_JUMP, src=ANY, off=ANY))

    # Loads and stores
    ordering = frozenset({AtomicOp.LOAD_ACQ, AtomicOp.STORE_REL})
    for size, sfx in SIZE_SUFFIX.items():
        add(OpInfo(Class.LDX | Mode.MEM | size, "ldx" + sfx, Kind.LOAD, src=ANY, off=ANY))
        if size is not Size.DW:
            add(OpInfo(Class.LDX | Mode.MEMSX | size, "ldxs" + sfx, Kind.LOAD, src=ANY, off=ANY))
        add(OpInfo(Class.ST | Mode.MEM | size, "st" + sfx, Kind.STORE_IMM, off=ANY, imm=ANY))
        add(OpInfo(Class.STX | Mode.MEM | size, "stx" + sfx, Kind.STORE_REG, src=ANY, off=ANY))
        # load-acquire/store-release exist in every size; read-modify-write only in W and DW.
        atomics = frozenset(AtomicOp) if size in (Size.W, Size.DW) else ordering
        add(OpInfo(Class.STX | Mode.ATOMIC | size, "lock", Kind.ATOMIC, src=ANY, off=ANY, imm=atomics))
        if size is not Size.DW:
            add(OpInfo(Class.LD | Mode.ABS | size, "ldabs" + sfx, Kind.LD_ABS, dst=None, imm=ANY))
            add(OpInfo(Class.LD | Mode.IND | size, "ldind" + sfx, Kind.LD_IND, dst=None, src=ANY, imm=ANY))
    add(OpInfo(LD_IMM64, "lddw", Kind.LD_IMM64, src=frozenset(PseudoLoad), imm=ANY, check=_ld_imm64_rule))
    return table


OPCODES: dict[int, OpInfo] = _build_table()


# --- what an instruction requires of a runtime ------------------------------


class Group(IntFlag):
    """RFC 9669 conformance groups (plus the suite's optional `callx`)."""

    BASE32 = 0x01
    BASE64 = 0x02
    ATOMIC32 = 0x04
    ATOMIC64 = 0x08
    DIVMUL32 = 0x10
    DIVMUL64 = 0x20
    PACKET = 0x40
    CALLX = 0x80


_V2_JUMPS = frozenset({JmpOp.JLT, JmpOp.JLE, JmpOp.JSLT, JmpOp.JSLE})


def cpu_version(opcode: int, src: int = 0, off: int = 0, imm: int = 0) -> int:
    """The lowest -mcpu (1-4) whose instruction set contains this instruction.

    v2 added JLT/JLE/JSLT/JSLE, v3 the JMP32 class and the fetching atomics,
    v4 sdiv/smod, movsx, sign-extending loads, bswap and gotol (as clang and
    Linux define the versions).
    """
    cls = opcode & CLASS_MASK
    op = opcode & OP_MASK
    if cls in (Class.ALU, Class.ALU64):
        if op in (AluOp.DIV, AluOp.MOD) and off == 1:
            return 4
        if op == AluOp.MOV and opcode & Source.X and off:
            return 4
        if op == AluOp.END and cls == Class.ALU64:
            return 4
        return 1
    if cls == Class.JMP32:
        return 4 if op == JmpOp.JA else 3
    if cls == Class.JMP:
        if op in _V2_JUMPS:
            return 2
        if opcode == CALL and src == PseudoCall.KFUNC_CALL:
            return 3
        return 1
    if cls == Class.LDX and opcode & MODE_MASK == Mode.MEMSX:
        return 4
    if cls == Class.STX and opcode & MODE_MASK == Mode.ATOMIC:
        if imm in (AtomicOp.LOAD_ACQ, AtomicOp.STORE_REL):
            return 4
        return 1 if imm == AtomicOp.ADD else 3
    return 1


def conformance_group(opcode: int, src: int = 0, off: int = 0, imm: int = 0) -> Group:
    """The RFC 9669 conformance group an instruction belongs to."""
    cls = opcode & CLASS_MASK
    op = opcode & OP_MASK
    size = opcode & SIZE_MASK
    if cls in (Class.ALU, Class.ALU64):
        if op in (AluOp.MUL, AluOp.DIV, AluOp.MOD):
            return Group.DIVMUL64 if cls == Class.ALU64 else Group.DIVMUL32
        if op == AluOp.END:
            return Group.BASE64 if imm == 64 else Group.BASE32
        return Group.BASE64 if cls == Class.ALU64 else Group.BASE32
    if cls == Class.JMP:
        if opcode == CALLX:
            return Group.CALLX
        if op in (JmpOp.JA, JmpOp.CALL, JmpOp.EXIT):
            return Group.BASE32
        return Group.BASE64
    if cls == Class.JMP32:
        return Group.BASE32
    if cls == Class.LD and opcode & MODE_MASK in (Mode.ABS, Mode.IND):
        return Group.PACKET
    if cls == Class.STX and opcode & MODE_MASK == Mode.ATOMIC:
        return Group.ATOMIC64 if size == Size.DW else Group.ATOMIC32
    return Group.BASE64 if size == Size.DW else Group.BASE32
