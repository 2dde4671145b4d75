"""Building BPF programs in VM tests: short instruction constructors and hypothesis strategies.

The strategies make programs the kernel's verifier accepts: every register is
initialised before use, stack slots are written before they are read, jumps
only go forward (so every program ends), and the end of the program dumps the
registers where the test can compare them.
"""

from __future__ import annotations

from hypothesis import strategies as hs

from pybpf.isa import Instruction as I

EXIT = I(0x95)
M64 = (1 << 64) - 1

ALU_OPS = {"add": 0x00, "sub": 0x10, "mul": 0x20, "div": 0x30, "or": 0x40, "and": 0x50, "lsh": 0x60, "rsh": 0x70,
           "neg": 0x80, "mod": 0x90, "xor": 0xA0, "mov": 0xB0, "arsh": 0xC0}
JMP_OPS = {"jeq": 0x10, "jgt": 0x20, "jge": 0x30, "jset": 0x40, "jne": 0x50, "jsgt": 0x60, "jsge": 0x70,
           "jlt": 0xA0, "jle": 0xB0, "jslt": 0xC0, "jsle": 0xD0}
SIZES = {1: 0x10, 2: 0x08, 4: 0x00, 8: 0x18}


def lddw(dst: int, value: int, src: int = 0) -> I:
    return I(0x18, dst, src, 0, value & M64)


def alu(op: str, dst: int, src: int | None = None, imm: int = 0, wide: bool = True, off: int = 0) -> I:
    cls = 0x07 if wide else 0x04
    if src is None:
        return I(cls | ALU_OPS[op], dst, 0, off, imm)
    return I(cls | ALU_OPS[op] | 0x08, dst, src, off, 0)


def mov(dst: int, value: int | None = None, src: int | None = None, wide: bool = True) -> I:
    return alu("mov", dst, src, value or 0, wide)


def jmp(op: str, dst: int, off: int, src: int | None = None, imm: int = 0, wide: bool = True) -> I:
    cls = 0x05 if wide else 0x06
    if src is None:
        return I(cls | JMP_OPS[op], dst, 0, off, imm)
    return I(cls | JMP_OPS[op] | 0x08, dst, src, off, 0)


def ja(off: int) -> I:
    return I(0x05, 0, 0, off, 0)


def ldx(size: int, dst: int, src: int, off: int, signed: bool = False) -> I:
    return I((0x81 if signed else 0x61) | SIZES[size], dst, src, off, 0)


def stx(size: int, dst: int, off: int, src: int) -> I:
    return I(0x63 | SIZES[size], dst, src, off, 0)


def st(size: int, dst: int, off: int, imm: int) -> I:
    return I(0x62 | SIZES[size], dst, 0, off, imm)


def atomic(size: int, dst: int, off: int, src: int, op: int) -> I:
    return I(0xC3 | SIZES[size], dst, src, off, op)


def call(helper: int) -> I:
    return I(0x85, 0, 0, 0, helper)


def call_local(delta: int) -> I:
    return I(0x85, 0, 1, 0, delta)


def map_fd(dst: int, fd: int) -> I:
    return I(0x18, dst, 1, 0, fd)


# --- random programs ------------------------------------------------------------------------------

_U64 = hs.one_of(
    hs.integers(0, M64),
    hs.sampled_from([0, 1, 2, 31, 32, 63, 64, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0x100000000, 0x7FFFFFFFFFFFFFFF,
                     0x8000000000000000, M64, M64 - 1]),
    hs.integers(0, 300),
)
_IMM = hs.one_of(hs.integers(-0x80000000, 0x7FFFFFFF), hs.sampled_from([0, 1, -1, 31, 32, 63, 64, -0x80000000]))
_REG = hs.integers(0, 9)
_SLOTS = [-8 * i for i in range(1, 9)]  # eight 8-byte stack slots, initialised by the prologue


@hs.composite
def _alu(draw):
    op = draw(hs.sampled_from(list(ALU_OPS)))
    wide = draw(hs.booleans())
    dst = draw(_REG)
    if op == "neg":
        return alu(op, dst, wide=wide)
    off = 0
    if op in ("div", "mod"):
        off = draw(hs.sampled_from([0, 1]))
    if draw(hs.booleans()):
        src = draw(_REG)
        if op == "mov":
            off = draw(hs.sampled_from([0, 8, 16, 32] if wide else [0, 8, 16]))
        return alu(op, dst, src, wide=wide, off=off)
    imm = draw(_IMM)
    if op in ("lsh", "rsh", "arsh"):
        imm = draw(hs.integers(0, 63 if wide else 31))
    return alu(op, dst, None, imm, wide=wide, off=off)


@hs.composite
def _end(draw):
    kind = draw(hs.sampled_from([0xD4, 0xDC, 0xD7]))  # le, be, bswap
    return I(kind, draw(_REG), 0, 0, draw(hs.sampled_from([16, 32, 64])))


@hs.composite
def _stack(draw):
    size = draw(hs.sampled_from([1, 2, 4, 8]))
    slot = draw(hs.sampled_from(_SLOTS)) + draw(hs.integers(0, 8 - size)) // size * size
    kind = draw(hs.sampled_from(["ldx", "ldxs", "stx", "st", "atomic"]))
    if kind == "ldx":
        return ldx(size, draw(_REG), 10, slot)
    if kind == "ldxs" and size != 8:
        return ldx(size, draw(_REG), 10, slot, signed=True)
    if kind == "st":
        return st(size, 10, slot, draw(_IMM))
    if kind == "atomic" and size in (4, 8):
        op = draw(hs.sampled_from([0x00, 0x40, 0x50, 0xA0, 0x01, 0x41, 0x51, 0xA1, 0xE1, 0xF1]))
        return atomic(size, 10, slot - slot % size, draw(hs.integers(1, 9)), op)
    return stx(size, 10, slot, draw(_REG))


# Random packet accesses use bytes [PACKET_BODY, PACKET_BODY + 64) of a packet of PACKET_SIZE bytes,
# reached through the context pointer the wrapper keeps at r10-72.
PACKET_BODY = 152
PACKET_SIZE = PACKET_BODY + 64 + 8
CTX_SLOT = -72


@hs.composite
def _packet(draw) -> list[I]:
    """Reload data/data_end from the context, check the bounds, then one load or store in the packet
    (the verifier only allows packet accesses below a checked bound); the pointers are cleared again
    afterwards, so that only data (never an address) reaches the registers the test compares."""
    x, y, z, value = draw(hs.permutations(range(9)))[:4]
    size = draw(hs.sampled_from([1, 2, 4, 8]))
    off = PACKET_BODY + draw(hs.integers(0, 64 - size)) // size * size
    kind = draw(hs.sampled_from(["ldx", "stx", "st"]))
    if kind == "ldx":
        access = ldx(size, value, x, off)
    elif kind == "stx":
        access = stx(size, x, off, value)
    else:
        access = st(size, x, off, draw(_IMM))
    return [ldx(8, x, 10, CTX_SLOT), ldx(4, y, x, 4), ldx(4, x, x, 0), mov(z, src=x),
            alu("add", z, None, PACKET_BODY + 64), jmp("jgt", z, 1, src=y), access, mov(x, 0), mov(y, 0), mov(z, 0)]


@hs.composite
def programs(draw, max_len: int = 24, jumps: bool = True, memory: bool = True, v4: bool = True,
             loop: bool = False, packet: bool = False) -> list[I]:
    """A random program body: ALU, byte swaps, forward jumps and stack accesses over r0-r9 (and, with
    ``packet``, packet loads and stores through the context pointer kept at r10-72).

    The body assumes every register and the eight stack slots below r10 hold values (see
    ``with_prologue``); it never reads r10 as a value and never jumps out of itself.  With
    ``loop`` the body runs 1-4 times, counted in r9 (which the body then leaves alone).
    """
    if loop:
        inner = draw(programs(max_len, jumps, memory, v4, packet=packet))
        inner = [i if not _writes(i, 9) else i.replace(dst=8) if i.dst == 9 else i.replace(src=8) for i in inner]
        count = draw(hs.integers(1, 4))
        return [mov(9, count), *inner, alu("add", 9, None, -1), jmp("jne", 9, -(len(inner) + 2), imm=0)]
    n = draw(hs.integers(1, max_len))
    kinds = ["alu"] * 6 + ["end"] + (["jmp"] * 2 if jumps else []) + (["mem"] * 2 if memory else []) + \
        (["pkt"] * 2 if packet else [])
    # Items are lists of instructions; jumps go forward to the start of an item (or the end).
    items: list[list[I]] = []
    jumps_to: dict[int, int] = {}  # item index -> target item index
    for i in range(n):
        kind = draw(hs.sampled_from(kinds))
        if kind == "alu":
            insn = draw(_alu())
            if not v4 and (insn.off or insn.opcode & 0xF0 == 0xB0 and insn.off):
                insn = insn.replace(off=0)
            items.append([insn])
        elif kind == "end":
            insn = draw(_end())
            if not v4 and insn.opcode == 0xD7:
                insn = insn.replace(opcode=0xDC)
            items.append([insn])
        elif kind == "jmp":
            op = draw(hs.sampled_from(list(JMP_OPS)))
            jumps_to[i] = draw(hs.integers(i + 1, n))
            wide = draw(hs.booleans())
            if draw(hs.booleans()):
                items.append([jmp(op, draw(_REG), 0, src=draw(_REG), wide=wide)])
            else:
                items.append([jmp(op, draw(_REG), 0, imm=draw(_IMM), wide=wide)])
        elif kind == "pkt":
            items.append(draw(_packet()))
        else:
            insn = draw(_stack())
            if not v4 and insn.opcode & 0xE0 == 0x80:
                insn = insn.replace(opcode=0x61 | (insn.opcode & 0x18))
            items.append([insn])
    starts = [0]
    for item in items:
        starts.append(starts[-1] + len(item))
    for i, target in jumps_to.items():
        items[i] = [items[i][0].replace(off=starts[target] - starts[i] - 1)]
    return [insn for item in items for insn in item]


def xdp_wrapper(body: list[I], regs: list[int], stack: list[int]) -> list[I]:
    """An XDP program around ``body``: registers and stack set up, then r0-r9 and the stack slots
    copied into the packet (bytes [0, 144)), return XDP_PASS."""
    dump = [-160 + 8 * i for i in range(10)] + [-64 + 8 * i for i in range(8)]
    code = [stx(8, 10, CTX_SLOT, 1)] + with_prologue(body, regs, stack)
    code += [stx(8, 10, -160 + 8 * r, r) for r in range(10)]
    code += [ldx(8, 1, 10, CTX_SLOT), ldx(4, 2, 1, 0), ldx(4, 3, 1, 4), mov(4, src=2), alu("add", 4, None, 8 * len(dump)),
             jmp("jgt", 4, 2 * len(dump), src=3)]
    for i, slot in enumerate(dump):
        code += [ldx(8, 5, 10, slot), stx(8, 2, 8 * i, 5)]
    return code + [mov(0, 2), EXIT]


def _writes(insn: I, reg: int) -> bool:
    """Whether ``insn`` may change register ``reg`` (its dst, or its src for fetching atomics)."""
    if insn.opcode & 0x07 in (0x04, 0x07) or insn.opcode & 0x07 == 0x01 or insn.opcode == 0x18:
        return insn.dst == reg
    if insn.opcode & 0xE0 == 0xC0 and insn.opcode & 0x07 == 0x03:
        return insn.src == reg if insn.imm & 1 and insn.imm != 0xF1 else (reg == 0 and insn.imm == 0xF1)
    return False


def with_prologue(body: list[I], values: list[int], stack: list[int]) -> list[I]:
    """Registers r0-r9 = ``values``, the eight stack slots = ``stack``, then ``body``."""
    code: list[I] = [lddw(r, v) for r, v in enumerate(values)]
    for slot, v in zip(_SLOTS, stack):
        code += [lddw(1, v), stx(8, 10, slot, 1)]
    code.append(lddw(1, values[1]))
    return code + body


def dump_registers(base: int) -> list[I]:
    """Store r0-r9 at [r<base> + 8*i] (r<base> must not be r0-r9's last user: use r1 saved first)."""
    return [stx(8, base, 8 * r, r) for r in range(10)]


register_values = hs.lists(_U64, min_size=10, max_size=10)
stack_values = hs.lists(_U64, min_size=8, max_size=8)
