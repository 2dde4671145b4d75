"""The filter optimizer and the flattening of the block DAG into instructions.

Same algorithms as libpcap's optimizer (optimize.c): dominators and edge
dominators over a levelled DAG, value numbering for constant folding and
redundant-load removal, peephole rules, dead-store removal, jump threading
along dominating edges (opt_j), or/and pull-ups, block interning; then the
layout that emits blocks false-branch first and inserts `ja` for long jumps.
Matching it step for step is what makes optimized listings identical to
tcpdump's.
"""

from __future__ import annotations

import itertools
import sys

from ..errors import CompileError
from . import insn as I
from .blocks import A_ATOM, AX_ATOM, M32, N_ATOMS, NOP, X_ATOM, Block, Edge, Stmt, sappend
from .insn import CInsn


# Every walk that marks blocks takes a fresh mark value, so no two walks can see each other's marks.
_MARKS = itertools.count(1)


class OptimizerError(CompileError):
    """The optimizer found the filter invalid (division by zero, too complex)."""


def _atomuse(code: int, k: int) -> int:
    if code == NOP:
        return -1
    c = I.cls(code)
    if c == I.RET:
        rv = I.rval(code)
        return A_ATOM if rv == I.A else X_ATOM if rv == I.X else -1
    if c in (I.LD, I.LDX):
        m = I.mode(code)
        return X_ATOM if m == I.IND else k if m == I.MEM else -1
    if c == I.ST:
        return A_ATOM
    if c == I.STX:
        return X_ATOM
    if c in (I.JMP, I.ALU):
        return AX_ATOM if I.src(code) == I.X else A_ATOM
    return X_ATOM if (code & 0xF8) == I.TXA else A_ATOM  # MISC


def _atomdef(code: int, k: int) -> int:
    if code == NOP:
        return -1
    c = I.cls(code)
    if c in (I.LD, I.ALU):
        return A_ATOM
    if c == I.LDX:
        return X_ATOM
    if c in (I.ST, I.STX):
        return k
    if c == I.MISC:
        return X_ATOM if (code & 0xF8) == I.TAX else A_ATOM
    return -1


def _slength(s: Stmt | None) -> int:
    n = 0
    while s is not None:
        if s.code != NOP:
            n += 1
        s = s.next
    return n


class _Optimizer:
    def __init__(self, root: Block):
        self.root = root
        self.blocks: list[Block] = []
        self.edges: list[Edge] = []
        self._number(root)
        n = len(self.blocks)
        for i, b in enumerate(self.blocks):
            b.et.id = i
            b.ef.id = n + i
            b.et.pred = b
            b.ef.pred = b
        self.edges = [b.et for b in self.blocks] + [b.ef for b in self.blocks]
        self.levels: list[Block | None] = [None] * n

    def _number(self, root: Block) -> None:
        """Depth-first numbering (true branch first), like libpcap's number_blks_r."""
        seen: set[int] = set()
        stack = [root]
        while stack:
            p = stack.pop()
            if p is None or id(p) in seen:
                continue
            seen.add(id(p))
            p.id = len(self.blocks)
            self.blocks.append(p)
            stack.append(p.ef.succ)
            stack.append(p.et.succ)

    # -- analysis -------------------------------------------------------------
    def find_levels(self) -> None:
        self.levels = [None] * len(self.blocks)
        mark = next(_MARKS)
        levels = self.levels

        def visit(b: Block) -> None:
            if b.mark == mark:
                return
            b.mark = mark
            b.link = None
            jt = b.et.succ
            if jt is not None:
                jf = b.ef.succ
                visit(jt)
                visit(jf)
                level = max(jt.level, jf.level) + 1
            else:
                level = 0
            b.level = level
            b.link = levels[level]
            levels[level] = b

        visit(self.root)

    def _level_blocks(self, level: int):
        b = self.levels[level]
        while b is not None:
            yield b
            b = b.link

    def find_dom(self) -> None:
        for b in self.blocks:
            b.dom = -1
        self.root.dom = 0
        for level in range(self.root.level, -1, -1):
            for b in self._level_blocks(level):
                b.dom |= 1 << b.id
                if b.et.succ is None:
                    continue
                b.et.succ.dom &= b.dom
                b.ef.succ.dom &= b.dom

    def find_edom(self) -> None:
        for b in self.blocks:
            b.et.edom = -1
            b.ef.edom = -1
        self.root.et.edom = 0
        self.root.ef.edom = 0
        for level in range(self.root.level, -1, -1):
            for b in self._level_blocks(level):
                for ep in (b.et, b.ef):
                    ep.edom |= 1 << ep.id
                    if ep.succ is not None:
                        ep.succ.et.edom &= ep.edom
                        ep.succ.ef.edom &= ep.edom

    @staticmethod
    def compute_local_ud(b: Block) -> None:
        def_ = use = killed = 0
        s = b.stmts
        while s is not None:
            if s.code != NOP:
                atom = _atomuse(s.code, s.k)
                if atom >= 0:
                    if atom == AX_ATOM:
                        if not def_ >> X_ATOM & 1:
                            use |= 1 << X_ATOM
                        if not def_ >> A_ATOM & 1:
                            use |= 1 << A_ATOM
                    elif not def_ >> atom & 1:
                        use |= 1 << atom
                atom = _atomdef(s.code, s.k)
                if atom >= 0:
                    if not use >> atom & 1:
                        killed |= 1 << atom
                    def_ |= 1 << atom
            s = s.next
        if I.cls(b.code) == I.JMP:
            atom = _atomuse(b.code, b.k)
            if atom >= 0:
                if atom == AX_ATOM:
                    if not def_ >> X_ATOM & 1:
                        use |= 1 << X_ATOM
                    if not def_ >> A_ATOM & 1:
                        use |= 1 << A_ATOM
                elif not def_ >> atom & 1:
                    use |= 1 << atom
        b.def_ = def_
        b.kill = killed
        b.in_use = use

    def find_ud(self) -> None:
        maxlevel = self.root.level
        for i in range(maxlevel, -1, -1):
            for p in self._level_blocks(i):
                self.compute_local_ud(p)
                p.out_use = 0
        for i in range(1, maxlevel + 1):
            for p in self._level_blocks(i):
                p.out_use |= p.et.succ.in_use | p.ef.succ.in_use
                p.in_use |= p.out_use & ~p.kill

    # -- value numbering --------------------------------------------------------
    def init_val(self) -> None:
        self.curval = 0
        self.values: dict[tuple[int, int, int], int] = {}
        self.const: dict[int, int] = {}

    def F(self, code: int, v0: int, v1: int) -> int:
        key = (code, v0, v1)
        val = self.values.get(key)
        if val is not None:
            return val
        self.curval += 1
        val = self.curval
        if I.mode(code) == I.IMM and I.cls(code) in (I.LD, I.LDX):
            self.const[val] = v0
        self.values[key] = val
        return val

    def K(self, k: int) -> int:
        return self.F(I.LD | I.IMM | I.W, k, 0)

    def _changed(self) -> None:
        self.non_branch_movement_performed = True
        self.done = False

    @staticmethod
    def vstore(s: Stmt, val: list[int], idx: int, newval: int, alter: bool) -> None:
        if alter and newval != 0 and val[idx] == newval:
            s.code = NOP
        else:
            val[idx] = newval

    def fold_op(self, s: Stmt, v0: int, v1: int) -> None:
        a = self.const.get(v0, 0)
        b = self.const.get(v1, 0)
        op = I.op(s.code)
        if op == I.ADD:
            a = (a + b) & M32
        elif op == I.SUB:
            a = (a - b) & M32
        elif op == I.MUL:
            a = (a * b) & M32
        elif op == I.DIV:
            if b == 0:
                raise OptimizerError("division by zero")
            a //= b
        elif op == I.MOD:
            if b == 0:
                raise OptimizerError("modulus by zero")
            a %= b
        elif op == I.AND:
            a &= b
        elif op == I.OR:
            a |= b
        elif op == I.XOR:
            a ^= b
        elif op == I.LSH:
            a = (a << b) & M32 if b < 32 else 0
        elif op == I.RSH:
            a = a >> b if b < 32 else 0
        s.k = a
        s.code = I.LD | I.IMM
        self._changed()

    def opt_stmt(self, s: Stmt, val: list[int], alter: bool) -> None:
        code = s.code
        const = self.const
        if code in (I.LD | I.ABS | I.W, I.LD | I.ABS | I.H, I.LD | I.ABS | I.B):
            self.vstore(s, val, A_ATOM, self.F(code, s.k, 0), alter)
        elif code in (I.LD | I.IND | I.W, I.LD | I.IND | I.H, I.LD | I.IND | I.B):
            v = val[X_ATOM]
            if alter and v in const:
                s.code = I.LD | I.ABS | I.size(code)
                s.k = (s.k + const[v]) & M32
                v = self.F(s.code, s.k, 0)
                self._changed()
            else:
                v = self.F(code, s.k, v)
            self.vstore(s, val, A_ATOM, v, alter)
        elif code == I.LD | I.LEN:
            self.vstore(s, val, A_ATOM, self.F(code, 0, 0), alter)
        elif code == I.LD | I.IMM:
            self.vstore(s, val, A_ATOM, self.K(s.k), alter)
        elif code == I.LDX | I.IMM:
            self.vstore(s, val, X_ATOM, self.K(s.k), alter)
        elif code == I.LDX | I.MSH | I.B:
            self.vstore(s, val, X_ATOM, self.F(code, s.k, 0), alter)
        elif code == I.ALU | I.NEG:
            if alter and val[A_ATOM] in const:
                s.code = I.LD | I.IMM
                s.k = (-const[val[A_ATOM]]) & M32
                val[A_ATOM] = self.K(s.k)
            else:
                val[A_ATOM] = self.F(code, val[A_ATOM], 0)
        elif I.cls(code) == I.ALU and I.src(code) == I.K and I.op(code) != I.NEG:
            op = I.op(code)
            if alter:
                if s.k == 0:
                    if op in (I.ADD, I.LSH, I.RSH, I.OR, I.XOR):
                        s.code = NOP
                        return
                    if op in (I.MUL, I.AND):
                        s.code = I.LD | I.IMM
                        val[A_ATOM] = self.K(s.k)
                        return
                    if op == I.DIV:
                        raise OptimizerError("division by zero")
                    if op == I.MOD:
                        raise OptimizerError("modulus by zero")
                if val[A_ATOM] in const:
                    self.fold_op(s, val[A_ATOM], self.K(s.k))
                    val[A_ATOM] = self.K(s.k)
                    return
            val[A_ATOM] = self.F(code, val[A_ATOM], self.K(s.k))
        elif I.cls(code) == I.ALU and I.src(code) == I.X:
            op = I.op(code)
            if alter and val[X_ATOM] in const:
                if val[A_ATOM] in const:
                    self.fold_op(s, val[A_ATOM], val[X_ATOM])
                    val[A_ATOM] = self.K(s.k)
                else:
                    s.code = I.ALU | I.K | op
                    s.k = const[val[X_ATOM]]
                    if op in (I.LSH, I.RSH) and s.k > 31:
                        raise OptimizerError("shift by more than 31 bits")
                    self._changed()
                    val[A_ATOM] = self.F(s.code, val[A_ATOM], self.K(s.k))
                return
            if alter and const.get(val[A_ATOM], 1) == 0 and val[A_ATOM] in const:
                if op in (I.ADD, I.OR, I.XOR):
                    s.code = I.MISC | I.TXA
                    self.vstore(s, val, A_ATOM, val[X_ATOM], alter)
                    return
                if op in (I.MUL, I.DIV, I.MOD, I.AND, I.LSH, I.RSH):
                    s.code = I.LD | I.IMM
                    s.k = 0
                    self.vstore(s, val, A_ATOM, self.K(s.k), alter)
                    return
            val[A_ATOM] = self.F(code, val[A_ATOM], val[X_ATOM])
        elif code == I.MISC | I.TXA:
            self.vstore(s, val, A_ATOM, val[X_ATOM], alter)
        elif code == I.LD | I.MEM:
            v = val[s.k]
            if alter and v in const:
                s.code = I.LD | I.IMM
                s.k = const[v]
                self._changed()
            self.vstore(s, val, A_ATOM, v, alter)
        elif code == I.MISC | I.TAX:
            self.vstore(s, val, X_ATOM, val[A_ATOM], alter)
        elif code == I.LDX | I.MEM:
            v = val[s.k]
            if alter and v in const:
                s.code = I.LDX | I.IMM
                s.k = const[v]
                self._changed()
            self.vstore(s, val, X_ATOM, v, alter)
        elif code == I.ST:
            self.vstore(s, val, s.k, val[A_ATOM], alter)
        elif code == I.STX:
            self.vstore(s, val, s.k, val[X_ATOM], alter)

    # -- per-block optimizations ------------------------------------------------
    @staticmethod
    def _this_op(s: Stmt | None) -> Stmt | None:
        while s is not None and s.code == NOP:
            s = s.next
        return s

    def opt_peep(self, b: Block) -> None:
        s = b.stmts
        if s is None:
            return
        last = s
        const = self.const
        while True:
            s = self._this_op(s)
            if s is None:
                break
            nxt = self._this_op(s.next)
            if nxt is None:
                break
            last = nxt
            if s.code == I.ST and nxt.code == (I.LDX | I.MEM) and s.k == nxt.k:
                self._changed()
                nxt.code = I.MISC | I.TAX
            if s.code == (I.LD | I.IMM) and nxt.code == (I.MISC | I.TAX):
                s.code = I.LDX | I.IMM
                nxt.code = I.MISC | I.TXA
                self._changed()
            if s.code == (I.LD | I.IMM):
                if not b.out_use >> X_ATOM & 1:
                    add = nxt if nxt.code != (I.LDX | I.MSH | I.B) else self._this_op(nxt.next)
                    if add is not None and add.code == (I.ALU | I.ADD | I.X):
                        tax = self._this_op(add.next)
                        if tax is not None and tax.code == (I.MISC | I.TAX):
                            ild = self._this_op(tax.next)
                            if ild is not None and I.cls(ild.code) == I.LD and I.mode(ild.code) == I.IND:
                                ild.k = (ild.k + s.k) & M32
                                s.code = NOP
                                add.code = NOP
                                tax.code = NOP
                                self._changed()
            s = nxt
        if b.code == (I.JMP | I.JEQ | I.K) and not b.out_use >> A_ATOM & 1:
            if last.code == (I.ALU | I.SUB | I.X):
                val = b.val[X_ATOM]
                if val in const:
                    b.k = (b.k + const[val]) & M32
                    last.code = NOP
                    self._changed()
                elif b.k == 0:
                    last.code = NOP
                    b.code = I.JMP | I.JEQ | I.X
                    self._changed()
            elif last.code == (I.ALU | I.SUB | I.K):
                last.code = NOP
                b.k = (b.k + last.k) & M32
                self._changed()
            elif last.code == (I.ALU | I.AND | I.K) and b.k == 0:
                b.k = last.k
                b.code = I.JMP | I.K | I.JSET
                last.code = NOP
                self._changed()
                b.et.succ, b.ef.succ = b.ef.succ, b.et.succ
        if b.code == (I.JMP | I.K | I.JSET):
            if b.k == 0:
                b.et.succ = b.ef.succ
            if b.k == 0xFFFFFFFF:
                b.ef.succ = b.et.succ
        val = b.val[X_ATOM]
        if val in const and I.src(b.code) == I.X:
            b.code &= ~I.X
            b.k = const[val]
        val = b.val[A_ATOM]
        if val in const and I.src(b.code) == I.K:
            v = const[val]
            op = I.op(b.code)
            if op == I.JEQ:
                v = v == b.k
            elif op == I.JGT:
                v = v > b.k
            elif op == I.JGE:
                v = v >= b.k
            elif op == I.JSET:
                v = v & b.k
            else:
                raise AssertionError(f"jump op {op:#x}")
            if b.ef.succ is not b.et.succ:
                self._changed()
            if v:
                b.ef.succ = b.et.succ
            else:
                b.et.succ = b.ef.succ

    def opt_deadstores(self, b: Block) -> None:
        last: list[object] = [None] * N_ATOMS

        def dead(s) -> None:
            atom = _atomuse(s.code, s.k)
            if atom >= 0:
                if atom == AX_ATOM:
                    last[X_ATOM] = None
                    last[A_ATOM] = None
                else:
                    last[atom] = None
            atom = _atomdef(s.code, s.k)
            if atom >= 0:
                if last[atom] is not None:
                    self._changed()
                    last[atom].code = NOP
                last[atom] = s

        s = b.stmts
        while s is not None:
            dead(s)
            s = s.next
        dead(_BlockStmt(b))
        for atom in range(N_ATOMS):
            if last[atom] is not None and not b.out_use >> atom & 1:
                last[atom].code = NOP
                self._changed()

    def opt_blk(self, b: Block, do_stmts: bool) -> None:
        p = b.in_edges
        if p is None:
            b.val = [0] * N_ATOMS
        else:
            b.val = list(p.pred.val)
            p = p.next
            while p is not None:
                pv = p.pred.val
                bv = b.val
                for i in range(N_ATOMS):
                    if bv[i] != pv[i]:
                        bv[i] = 0
                p = p.next
        aval = b.val[A_ATOM]
        xval = b.val[X_ATOM]
        s = b.stmts
        while s is not None:
            self.opt_stmt(s, b.val, do_stmts)
            s = s.next
        if do_stmts and ((b.out_use == 0 and aval != 0 and b.val[A_ATOM] == aval and xval != 0
                          and b.val[X_ATOM] == xval) or I.cls(b.code) == I.RET):
            if b.stmts is not None:
                b.stmts = None
                self._changed()
        else:
            self.opt_peep(b)
            self.opt_deadstores(b)
        if I.src(b.code) == I.K:
            b.oval = self.K(b.k)
        else:
            b.oval = b.val[X_ATOM]
        b.et.code = b.code
        b.ef.code = -b.code

    # -- branch optimizations -----------------------------------------------------
    @staticmethod
    def use_conflict(b: Block, succ: Block) -> bool:
        use = succ.out_use
        if use == 0:
            return False
        for atom in range(N_ATOMS):
            if use >> atom & 1 and b.val[atom] != succ.val[atom]:
                return True
        return False

    @staticmethod
    def fold_edge(child: Block, ep: Edge) -> Block | None:
        code = ep.code
        if code < 0:
            code = -code
            sense = False
        else:
            sense = True
        if child.code != code:
            return None
        if child.val[A_ATOM] != ep.pred.val[A_ATOM]:
            return None
        if child.oval == ep.pred.oval:
            return child.et.succ if sense else child.ef.succ
        if sense and code == (I.JMP | I.JEQ | I.K):
            return child.ef.succ
        return None

    def opt_j(self, ep: Edge) -> None:
        if ep.succ.et.succ is None:
            return
        if ep.succ.et.succ is ep.succ.ef.succ:
            if not self.use_conflict(ep.pred, ep.succ.et.succ):
                self._changed()
                ep.succ = ep.succ.et.succ
        while True:
            x = ep.edom
            restart = False
            while x:
                low = x & -x
                k = low.bit_length() - 1
                x ^= low
                target = self.fold_edge(ep.succ, self.edges[k])
                if target is not None and not self.use_conflict(ep.pred, target):
                    self.done = False
                    ep.succ = target
                    if target.et.succ is not None:
                        restart = True
                        break
                    return
            if not restart:
                return

    def _pullup(self, b: Block, along_false: bool) -> None:
        """or_pullup (along_false) and and_pullup: hoist a test that repeats a dominating one."""
        ep = b.in_edges
        if ep is None:
            return
        val = ep.pred.val[A_ATOM]
        ep = ep.next
        while ep is not None:
            if val != ep.pred.val[A_ATOM]:
                return
            ep = ep.next
        first = b.in_edges.pred
        # a "pointer to a successor slot": (block, is_true_slot)
        diff = (first, first.et.succ is b)
        same_side = b.et.succ if along_false else b.ef.succ

        def get(slot):
            blk, is_true = slot
            return blk.et.succ if is_true else blk.ef.succ

        def put(slot, value):
            blk, is_true = slot
            if is_true:
                blk.et.succ = value
            else:
                blk.ef.succ = value

        def fixed(blk):
            return blk.et.succ if along_false else blk.ef.succ

        at_top = True
        while True:
            cur = get(diff)
            if cur is None:
                return
            if fixed(cur) is not same_side:
                return
            if not cur.dom >> b.id & 1:
                return
            if cur.val[A_ATOM] != val:
                break
            diff = (cur, not along_false)
            at_top = False
        samep = (get(diff), not along_false)
        while True:
            cur = get(samep)
            if cur is None:
                return
            if fixed(cur) is not same_side:
                return
            if not cur.dom >> b.id & 1:
                return
            if cur.val[A_ATOM] == val:
                break
            samep = (cur, not along_false)
        pull = get(samep)
        if along_false:
            put(samep, pull.ef.succ)
            pull.ef.succ = get(diff)
        else:
            put(samep, pull.et.succ)
            pull.et.succ = get(diff)
        if at_top:
            ep = b.in_edges
            while ep is not None:
                if ep.pred.et.succ is b:
                    ep.pred.et.succ = pull
                else:
                    ep.pred.ef.succ = pull
                ep = ep.next
        else:
            put(diff, pull)
        self.done = False

    def find_inedges(self) -> None:
        for b in self.blocks:
            b.in_edges = None
        for level in range(self.root.level, 0, -1):
            for b in self._level_blocks(level):
                for ep in (b.et, b.ef):
                    child = ep.succ
                    ep.next = child.in_edges
                    child.in_edges = ep

    def opt_blks(self, do_stmts: bool) -> None:
        self.init_val()
        maxlevel = self.root.level
        self.find_inedges()
        for i in range(maxlevel, -1, -1):
            for p in self._level_blocks(i):
                self.opt_blk(p, do_stmts)
        if do_stmts:
            return
        for i in range(1, maxlevel + 1):
            for p in self._level_blocks(i):
                self.opt_j(p.et)
                self.opt_j(p.ef)
        self.find_inedges()
        for i in range(1, maxlevel + 1):
            for p in self._level_blocks(i):
                self._pullup(p, True)
                self._pullup(p, False)

    def opt_loop(self, do_stmts: bool) -> None:
        loop_count = 0
        while True:
            self.done = True
            self.non_branch_movement_performed = False
            self.find_levels()
            self.find_dom()
            self.find_ud()
            self.find_edom()
            self.opt_blks(do_stmts)
            if self.done:
                break
            if self.non_branch_movement_performed:
                loop_count = 0
            else:
                loop_count += 1
                if loop_count >= 100:
                    self.done = True
                    break

    # -- interning and the root ----------------------------------------------------
    def mark_code(self) -> int:
        mark = next(_MARKS)

        def visit(p: Block) -> None:
            if p.mark != mark:
                p.mark = mark
                if I.cls(p.code) != I.RET:
                    visit(p.et.succ)
                    visit(p.ef.succ)

        visit(self.root)
        return mark

    @staticmethod
    def eq_slist(x: Stmt | None, y: Stmt | None) -> bool:
        while True:
            while x is not None and x.code == NOP:
                x = x.next
            while y is not None and y.code == NOP:
                y = y.next
            if x is None:
                return y is None
            if y is None:
                return False
            if x.code != y.code or x.k != y.k:
                return False
            x = x.next
            y = y.next

    def intern_blocks(self) -> None:
        blocks = self.blocks
        n = len(blocks)
        while True:
            done = True
            for b in blocks:
                b.link = None
            mark = self.mark_code()
            for i in range(n - 2, -1, -1):
                bi = blocks[i]
                if bi.mark != mark:
                    continue
                for j in range(i + 1, n):
                    bj = blocks[j]
                    if bj.mark != mark:
                        continue
                    if (bi.code == bj.code and bi.k == bj.k and bi.et.succ is bj.et.succ
                            and bi.ef.succ is bj.ef.succ and self.eq_slist(bi.stmts, bj.stmts)):
                        bi.link = bj.link if bj.link is not None else bj
                        break
            for p in blocks:
                if p.et.succ is None:
                    continue
                if p.et.succ.link is not None:
                    done = False
                    p.et.succ = p.et.succ.link
                if p.ef.succ.link is not None:
                    done = False
                    p.ef.succ = p.ef.succ.link
            if done:
                return

    def opt_root(self) -> Block:
        b = self.root
        s = b.stmts
        b.stmts = None
        while I.cls(b.code) == I.JMP and b.et.succ is b.ef.succ:
            b = b.et.succ
        tmp = b.stmts
        if tmp is not None:
            if s is None:
                s = tmp
            else:
                sappend(s, tmp)
        b.stmts = s
        if I.cls(b.code) == I.RET:
            b.stmts = None
        return b

    def run(self) -> Block:
        self.opt_loop(False)
        self.opt_loop(True)
        self.intern_blocks()
        return self.opt_root()


class _BlockStmt:
    """The block's own terminating statement seen as a statement (for dead-store tracking)."""

    __slots__ = ("b",)

    def __init__(self, b: Block):
        self.b = b

    @property
    def code(self) -> int:
        return self.b.code

    @code.setter
    def code(self, value: int) -> None:
        self.b.code = value

    @property
    def k(self) -> int:
        return self.b.k


def optimize(root: Block) -> Block:
    """Optimize the DAG rooted at root in place; returns the new root."""
    with _deep_recursion(len_hint=_count(root)):
        return _Optimizer(root).run()


def _count(root: Block) -> int:
    seen: set[int] = set()
    stack = [root]
    while stack:
        b = stack.pop()
        if b is None or id(b) in seen:
            continue
        seen.add(id(b))
        stack.append(b.et.succ)
        stack.append(b.ef.succ)
    return len(seen)


class _deep_recursion:
    """The DAG walks recurse as deep as the longest path; allow that for big filters."""

    def __init__(self, len_hint: int):
        self.want = 4 * len_hint + 1000

    def __enter__(self):
        self.old = sys.getrecursionlimit()
        if self.want > self.old:
            sys.setrecursionlimit(self.want)

    def __exit__(self, *exc):
        sys.setrecursionlimit(self.old)


# -- flattening ------------------------------------------------------------------


class _Flattener:
    def __init__(self, root: Block):
        self.root = root
        self.mark = 0
        self.out: list[CInsn] = []
        self.ftail = 0

    def count_stmts(self, p: Block | None) -> int:
        if p is None or p.mark == self.mark:
            return 0
        p.mark = self.mark
        n = self.count_stmts(p.et.succ) + self.count_stmts(p.ef.succ)
        return _slength(p.stmts) + n + 1 + p.longjt + p.longjf

    def convert(self, p: Block | None) -> bool:
        if p is None or p.mark == self.mark:
            return True
        p.mark = self.mark
        if not self.convert(p.ef.succ):
            return False
        if not self.convert(p.et.succ):
            return False
        slen = _slength(p.stmts)
        self.ftail -= slen + 1 + p.longjt + p.longjf
        dst = self.ftail
        p.offset = dst
        out = self.out
        offsets: list[Stmt] = []
        src = p.stmts
        while len(offsets) < slen and src is not None:
            offsets.append(src)
            src = src.next
        off = 0
        src = p.stmts
        while src is not None:
            if src.code == NOP:
                src = src.next
                continue
            jt = jf = 0
            if I.cls(src.code) == I.JMP and src.code != (I.JMP | I.JA) and off != slen - 2:
                if src.jt is None or src.jf is None:
                    raise CompileError(f"no jmp destination for block-local relative jump: off={off}")
                found_t = found_f = 0
                for i, target in enumerate(offsets):
                    if target is src.jt:
                        if found_t or i - off - 1 >= 256:
                            raise CompileError(f"bad block-local relative jump: off={off}")
                        jt = i - off - 1
                        found_t += 1
                    if target is src.jf:
                        if found_f or i - off - 1 >= 256:
                            raise CompileError(f"bad block-local relative jump: off={off}")
                        jf = i - off - 1
                        found_f += 1
                if not found_t or not found_f:
                    raise CompileError(f"no destination found for block-local relative jump: off={off}")
            out[dst] = CInsn(src.code & 0xFFFF, jt, jf, src.k & M32)
            dst += 1
            off += 1
            src = src.next
        code, k = p.code & 0xFFFF, p.k & M32
        if p.et.succ is None:
            out[dst] = CInsn(code, 0, 0, k)
            return True
        extrajmps = 0
        rel = (p.et.succ.offset - (p.offset + slen) - 1) & M32
        if rel >= 256:
            if p.longjt == 0:
                p.longjt += 1
                return False
            jt = extrajmps
            extrajmps += 1
            out[dst + extrajmps] = CInsn(I.JMP | I.JA, 0, 0, (rel - extrajmps) & M32)
        else:
            jt = rel
        rel = (p.ef.succ.offset - (p.offset + slen) - 1) & M32
        if rel >= 256:
            if p.longjf == 0:
                p.longjf += 1
                return False
            jf = extrajmps
            extrajmps += 1
            out[dst + extrajmps] = CInsn(I.JMP | I.JA, 0, 0, (rel - extrajmps) & M32)
        else:
            jf = rel
        out[dst] = CInsn(code, jt, jf, k)
        return True

    def run(self) -> list[CInsn]:
        while True:
            self.mark = next(_MARKS)
            n = self.count_stmts(self.root)
            self.out = [CInsn(0, 0, 0, 0)] * n
            self.ftail = n
            self.mark = next(_MARKS)
            if self.convert(self.root):
                return self.out


def flatten(root: Block) -> list[CInsn]:
    """Lay the DAG out as a cBPF program the way libpcap's icode_to_fcode does."""
    with _deep_recursion(len_hint=_count(root)):
        return _Flattener(root).run()
