"""The compiler's intermediate form: basic blocks of statements ending in a branch.

This is the shape libpcap's code generator and optimizer share (a DAG of
blocks, each a list of straight-line statements and one conditional jump, true
and false edges, 'sense' for lazy negation), so the optimizer can reproduce
libpcap's choices exactly.
"""

from __future__ import annotations

from . import insn as I

NOP = -1
A_ATOM = I.MEMWORDS
X_ATOM = I.MEMWORDS + 1
N_ATOMS = I.MEMWORDS + 2
AX_ATOM = N_ATOMS
M32 = 0xFFFFFFFF


def JMP(op: int) -> int:
    return I.JMP | op | I.K


class Stmt:
    """One statement in a linked list; jt/jf point at statements for block-local jumps."""

    __slots__ = ("code", "k", "jt", "jf", "next")

    def __init__(self, code: int, k: int = 0):
        self.code = code
        self.k = k & M32
        self.jt: Stmt | None = None
        self.jf: Stmt | None = None
        self.next: Stmt | None = None


def sappend(s0: Stmt, s1: Stmt | None) -> None:
    while s0.next is not None:
        s0 = s0.next
    s0.next = s1


class Edge:
    __slots__ = ("id", "code", "edom", "succ", "pred", "next")

    def __init__(self, pred: "Block"):
        self.id = 0
        self.code = 0
        self.edom = 0
        self.succ: Block | None = None
        self.pred = pred
        self.next: Edge | None = None


class Block:
    __slots__ = ("id", "stmts", "code", "k", "mark", "longjt", "longjf", "level", "offset", "sense",
                 "et", "ef", "head", "link", "dom", "in_edges", "val", "def_", "kill", "in_use",
                 "out_use", "oval")

    def __init__(self, code: int, k: int = 0):
        self.id = 0
        self.stmts: Stmt | None = None
        self.code = code  # the block's terminating statement (a jump or a return)
        self.k = k & M32
        self.mark = 0
        self.longjt = 0
        self.longjf = 0
        self.level = 0
        self.offset = 0
        self.sense = False
        self.et = Edge(self)
        self.ef = Edge(self)
        self.head: Block = self
        self.link: Block | None = None
        self.dom = 0
        self.in_edges: Edge | None = None
        self.val = [0] * N_ATOMS
        self.def_ = 0
        self.kill = 0
        self.in_use = 0
        self.out_use = 0
        self.oval = 0

    # JT/JF in libpcap's terms
    @property
    def jt(self) -> "Block | None":
        return self.et.succ

    @jt.setter
    def jt(self, b: "Block | None") -> None:
        self.et.succ = b

    @property
    def jf(self) -> "Block | None":
        return self.ef.succ

    @jf.setter
    def jf(self, b: "Block | None") -> None:
        self.ef.succ = b


def backpatch(chain: Block | None, target: Block) -> None:
    """Point every unresolved exit of a chain at target (the chain links through those exits)."""
    while chain is not None:
        if not chain.sense:
            nxt = chain.et.succ
            chain.et.succ = target
        else:
            nxt = chain.ef.succ
            chain.ef.succ = target
        chain = nxt


def merge(b0: Block, b1: Block) -> None:
    """Append chain b1 to the end of chain b0."""
    p = b0
    while True:
        nxt = p.ef.succ if p.sense else p.et.succ
        if nxt is None:
            break
        p = nxt
    if p.sense:
        p.ef.succ = b1
    else:
        p.et.succ = b1


def gen_and(b0: Block, b1: Block) -> None:
    backpatch(b0, b1.head)
    b0.sense = not b0.sense
    b1.sense = not b1.sense
    merge(b1, b0)
    b1.sense = not b1.sense
    b1.head = b0.head


def gen_or(b0: Block, b1: Block) -> None:
    b0.sense = not b0.sense
    backpatch(b0, b1.head)
    b0.sense = not b0.sense
    merge(b1, b0)
    b1.head = b0.head


def gen_not(b: Block) -> None:
    b.sense = not b.sense
