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
from operator import attrgetter

from ..errors import CompileError
from . import insn as I
from .blocks import A_ATOM, AX_ATOM, M32, N_ATOMS, NOP, X_ATOM, Block, Edge, Stmt, sappend
from .insn import CInsn


_TRUE_EDGE = attrgetter("et")
_FALSE_EDGE = attrgetter("ef")

# Opcodes the optimizer tests often, computed once (module attribute lookups are not free).
_ALU_ADD_X = I.ALU | I.ADD | I.X
_ALU_AND_K = I.ALU | I.AND | I.K
_ALU_K = I.ALU | I.K
_ALU_NEG = I.ALU | I.NEG
_ALU_SUB_K = I.ALU | I.SUB | I.K
_ALU_SUB_X = I.ALU | I.SUB | I.X
_JMP_JA = I.JMP | I.JA
_JMP_JEQ_K = I.JMP | I.JEQ | I.K
_JMP_JEQ_X = I.JMP | I.JEQ | I.X
_JMP_K_JSET = I.JMP | I.K | I.JSET
_LD_ABS = I.LD | I.ABS
_LD_ABS_B = I.LD | I.ABS | I.B
_LD_ABS_H = I.LD | I.ABS | I.H
_LD_ABS_W = I.LD | I.ABS | I.W
_LD_IMM = I.LD | I.IMM
_LD_IMM_W = I.LD | I.IMM | I.W
_LD_IND_B = I.LD | I.IND | I.B
_LD_IND_H = I.LD | I.IND | I.H
_LD_IND_W = I.LD | I.IND | I.W
_LD_LEN = I.LD | I.LEN
_LD_MEM = I.LD | I.MEM
_LDX_IMM = I.LDX | I.IMM
_LDX_MEM = I.LDX | I.MEM
_LDX_MSH_B = I.LDX | I.MSH | I.B
_MISC_TAX = I.MISC | I.TAX
_MISC_TXA = I.MISC | I.TXA


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


# What each opcode uses and defines, looked up instead of decoded: the optimizer asks this
# for every statement on every pass.  _K_OPERAND stands for "the scratch word named by k";
# index -1 (the last entry) is NOP.
_K_OPERAND = -2


def _table(fn) -> list[int]:
    return [fn(code, _K_OPERAND) for code in range(256)] + [-1]


_USE = _table(_atomuse)
_DEF = _table(_atomdef)
# opt_stmt's cases, decided once per opcode (see opt_stmt)
(_S_NONE, _S_LD_ABS, _S_LD_IND, _S_LD_LEN, _S_LD_IMM, _S_LDX_IMM, _S_LDX_MSH, _S_NEG, _S_ALU_K, _S_ALU_X, _S_TXA,
 _S_LD_MEM, _S_TAX, _S_LDX_MEM, _S_ST, _S_STX) = range(16)


def _stmt_kind(code: int) -> int:
    if code in (_LD_ABS_W, _LD_ABS_H, _LD_ABS_B):
        return _S_LD_ABS
    if code in (_LD_IND_W, _LD_IND_H, _LD_IND_B):
        return _S_LD_IND
    if code == _LD_LEN:
        return _S_LD_LEN
    if code == _LD_IMM:
        return _S_LD_IMM
    if code == _LDX_IMM:
        return _S_LDX_IMM
    if code == _LDX_MSH_B:
        return _S_LDX_MSH
    if code == _ALU_NEG:
        return _S_NEG
    if I.cls(code) == I.ALU and I.src(code) == I.K and I.op(code) != I.NEG:
        return _S_ALU_K
    if I.cls(code) == I.ALU and I.src(code) == I.X:
        return _S_ALU_X
    return {_MISC_TXA: _S_TXA, _LD_MEM: _S_LD_MEM, _MISC_TAX: _S_TAX, _LDX_MEM: _S_LDX_MEM,
            I.ST: _S_ST, I.STX: _S_STX}.get(code, _S_NONE)


_STMT_KIND = [_stmt_kind(code) for code in range(256)] + [_S_NONE]
_ABIT, _XBIT = 1 << A_ATOM, 1 << X_ATOM


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
        self.levels: list[list[Block]] = []

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
        """Level = longest path to a leaf; each level lists its blocks in libpcap's order (last found first).

        A depth-first walk (true branch first) that places a block after its
        successors; an explicit stack, so deep filters need no recursion limit.
        """
        levels: list[list[Block]] = [[]]
        mark = next(_MARKS)
        stack: list = [self.root]
        while stack:
            b = stack.pop()
            if b.__class__ is tuple:  # (block,): both successors are placed
                b = b[0]
                level = max(b.et.succ.level, b.ef.succ.level) + 1
                b.level = level
                if level == len(levels):
                    levels.append([b])
                else:
                    levels[level].append(b)
                continue
            if b.mark == mark:
                continue
            b.mark = mark
            jt = b.et.succ
            if jt is None:
                b.level = 0
                levels[0].append(b)
                continue
            stack.append((b,))
            stack.append(b.ef.succ)
            stack.append(jt)
        for blocks in levels:
            blocks.reverse()
        self.levels = levels

    def analyze(self) -> None:
        """Dominators, edge dominators, register use/def and in-edges, for the current DAG.

        libpcap computes these in separate walks; each only looks at predecessors
        (which sit on higher levels) or at the block itself, so one walk from the
        root level down and one back up give the same sets.
        """
        self.find_levels()
        for b in self.blocks:
            b.dom = -1
            b.et.edom = -1
            b.ef.edom = -1
            b.in_edges = None
        root = self.root
        root.dom = 0
        root.et.edom = 0
        root.ef.edom = 0
        levels = self.levels
        compute_local_ud = self.compute_local_ud
        for level in range(root.level, -1, -1):
            for b in levels[level]:
                dom = b.dom | 1 << b.id
                b.dom = dom
                et, ef = b.et, b.ef
                et_edom = et.edom | 1 << et.id
                et.edom = et_edom
                ef_edom = ef.edom | 1 << ef.id
                ef.edom = ef_edom
                jt = et.succ
                if jt is not None:
                    jf = ef.succ
                    jt.dom &= dom
                    jf.dom &= dom
                    jt.et.edom &= et_edom
                    jt.ef.edom &= et_edom
                    jf.et.edom &= ef_edom
                    jf.ef.edom &= ef_edom
                    et.next = jt.in_edges
                    jt.in_edges = et
                    ef.next = jf.in_edges
                    jf.in_edges = ef
                compute_local_ud(b)
                b.out_use = 0
        for level in range(1, root.level + 1):
            for p in levels[level]:
                out_use = p.out_use | p.et.succ.in_use | p.ef.succ.in_use
                p.out_use = out_use
                p.in_use |= out_use & ~p.kill

    @staticmethod
    def compute_local_ud(b: Block) -> None:
        def_ = use = killed = 0
        s = b.stmts
        while s is not None:
            code = s.code
            atom = _USE[code]
            if atom != -1:
                if atom == AX_ATOM:
                    if not def_ & _XBIT:
                        use |= _XBIT
                    if not def_ & _ABIT:
                        use |= _ABIT
                else:
                    if atom == _K_OPERAND:
                        atom = s.k
                    bit = 1 << atom
                    if not def_ & bit:
                        use |= bit
            atom = _DEF[code]
            if atom != -1:
                if atom == _K_OPERAND:
                    atom = s.k
                bit = 1 << atom
                if not use & bit:
                    killed |= bit
                def_ |= bit
            s = s.next
        if b.code & 0x07 == I.JMP:
            atom = _USE[b.code]
            if atom == AX_ATOM:
                if not def_ & _XBIT:
                    use |= _XBIT
                if not def_ & _ABIT:
                    use |= _ABIT
            elif atom >= 0 and not def_ & 1 << atom:
                use |= 1 << atom
        b.def_ = def_
        b.kill = killed
        b.in_use = use

    # -- value numbering --------------------------------------------------------
    def init_val(self) -> None:
        self.curval = 0
        self.values: dict[tuple[int, int, int], int] = {}
        self.const: dict[int, int] = {}
        self.kvals: dict[int, int] = {}

    def F(self, code: int, v0: int, v1: int) -> int:
        """The value number of code applied to value numbers v0, v1 (new numbers for new values)."""
        key = (code, v0, v1)
        val = self.values.get(key)
        if val is not None:
            return val
        self.curval += 1
        val = self.curval
        if code & 0xE0 == I.IMM and code & 0x07 in (I.LD, I.LDX):
            self.const[val] = v0
        self.values[key] = val
        return val

    def K(self, k: int) -> int:
        val = self.kvals.get(k)
        if val is None:
            val = self.kvals[k] = self.F(_LD_IMM_W, k, 0)
        return val

    def _changed(self) -> None:
        self.non_branch_movement_performed = True
        self.done = False

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
        s.code = _LD_IMM
        self._changed()

    def opt_stmt(self, s: Stmt, val: list[int], alter: bool) -> None:
        """Value-number one statement; with alter, fold constants and drop redundant loads.

        Most cases end by storing a value number into a register (libpcap's vstore:
        with alter, a store of the value the register already holds is dropped);
        they set idx/newval and share that tail.
        """
        code = s.code
        kind = _STMT_KIND[code]
        if kind == _S_NONE:
            return
        const = self.const
        values = self.values
        if kind == _S_LD_ABS:
            idx = A_ATOM
            newval = values.get((code, s.k, 0)) or self.F(code, s.k, 0)
        elif kind == _S_LD_IND:
            idx = A_ATOM
            v = val[X_ATOM]
            if alter and v in const:
                s.code = _LD_ABS | I.size(code)
                s.k = (s.k + const[v]) & M32
                newval = self.F(s.code, s.k, 0)
                self._changed()
            else:
                newval = values.get((code, s.k, v)) or self.F(code, s.k, v)
        elif kind == _S_LD_LEN:
            idx, newval = A_ATOM, self.F(code, 0, 0)
        elif kind == _S_LD_IMM:
            idx, newval = A_ATOM, self.K(s.k)
        elif kind == _S_LDX_IMM:
            idx, newval = X_ATOM, self.K(s.k)
        elif kind == _S_LDX_MSH:
            idx, newval = X_ATOM, self.F(code, s.k, 0)
        elif kind == _S_NEG:
            if alter and val[A_ATOM] in const:
                s.code = _LD_IMM
                s.k = (-const[val[A_ATOM]]) & M32
                val[A_ATOM] = self.K(s.k)
            else:
                val[A_ATOM] = self.F(code, val[A_ATOM], 0)
            return
        elif kind == _S_ALU_K:
            op = code & 0xF0
            if alter:
                if s.k == 0:
                    if op in (I.ADD, I.LSH, I.RSH, I.OR, I.XOR):
                        s.code = NOP
                        return
                    if op in (I.MUL, I.AND):
                        s.code = _LD_IMM
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
            return
        elif kind == _S_ALU_X:
            op = code & 0xF0
            if alter and val[X_ATOM] in const:
                if val[A_ATOM] in const:
                    self.fold_op(s, val[A_ATOM], val[X_ATOM])
                    val[A_ATOM] = self.K(s.k)
                else:
                    s.code = _ALU_K | op
                    s.k = const[val[X_ATOM]]
                    if op in (I.LSH, I.RSH) and s.k > 31:
                        raise OptimizerError("shift by more than 31 bits")
                    self._changed()
                    val[A_ATOM] = self.F(s.code, val[A_ATOM], self.K(s.k))
                return
            if alter and const.get(val[A_ATOM], 1) == 0:
                if op in (I.ADD, I.OR, I.XOR):
                    s.code = _MISC_TXA
                    idx, newval = A_ATOM, val[X_ATOM]
                elif op in (I.MUL, I.DIV, I.MOD, I.AND, I.LSH, I.RSH):
                    s.code = _LD_IMM
                    s.k = 0
                    idx, newval = A_ATOM, self.K(s.k)
                else:
                    val[A_ATOM] = self.F(code, val[A_ATOM], val[X_ATOM])
                    return
            else:
                val[A_ATOM] = self.F(code, val[A_ATOM], val[X_ATOM])
                return
        elif kind == _S_TXA:
            idx, newval = A_ATOM, val[X_ATOM]
        elif kind == _S_LD_MEM or kind == _S_LDX_MEM:
            newval = val[s.k]
            if alter and newval in const:
                s.code = (I.LD if kind == _S_LD_MEM else I.LDX) | I.IMM
                s.k = const[newval]
                self._changed()
            idx = A_ATOM if kind == _S_LD_MEM else X_ATOM
        elif kind == _S_TAX:
            idx, newval = X_ATOM, val[A_ATOM]
        elif kind == _S_ST:
            idx, newval = s.k, val[A_ATOM]
        else:
            idx, newval = s.k, val[X_ATOM]
        if alter and newval != 0 and val[idx] == newval:
            s.code = NOP
        else:
            val[idx] = newval

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
        this_op = self._this_op
        while True:
            while s is not None and s.code == NOP:
                s = s.next
            if s is None:
                break
            nxt = s.next
            while nxt is not None and nxt.code == NOP:
                nxt = nxt.next
            if nxt is None:
                break
            last = nxt
            code = s.code
            if code == I.ST and nxt.code == _LDX_MEM and s.k == nxt.k:
                self._changed()
                nxt.code = _MISC_TAX
            if code == _LD_IMM and nxt.code == _MISC_TAX:
                s.code = _LDX_IMM
                nxt.code = _MISC_TXA
                self._changed()
            if s.code == _LD_IMM:
                if not b.out_use >> X_ATOM & 1:
                    add = nxt if nxt.code != _LDX_MSH_B else this_op(nxt.next)
                    if add is not None and add.code == _ALU_ADD_X:
                        tax = this_op(add.next)
                        if tax is not None and tax.code == _MISC_TAX:
                            ild = this_op(tax.next)
                            if ild is not None and I.cls(ild.code) == I.LD and I.mode(ild.code) == I.IND:
                                ild.k = (ild.k + s.k) & M32
                                s.code = NOP
                                add.code = NOP
                                tax.code = NOP
                                self._changed()
            s = nxt
        if b.code == _JMP_JEQ_K and not b.out_use >> A_ATOM & 1:
            if last.code == _ALU_SUB_X:
                val = b.val[X_ATOM]
                if val in const:
                    b.k = (b.k + const[val]) & M32
                    last.code = NOP
                    self._changed()
                elif b.k == 0:
                    last.code = NOP
                    b.code = _JMP_JEQ_X
                    self._changed()
            elif last.code == _ALU_SUB_K:
                last.code = NOP
                b.k = (b.k + last.k) & M32
                self._changed()
            elif last.code == _ALU_AND_K and b.k == 0:
                b.k = last.k
                b.code = _JMP_K_JSET
                last.code = NOP
                self._changed()
                b.et.succ, b.ef.succ = b.ef.succ, b.et.succ
        if b.code == _JMP_K_JSET:
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
        """Drop stores overwritten before use in the block, and those no successor reads."""
        last: list[Stmt | None] = [None] * N_ATOMS
        pending = 0  # atoms whose last store is in `last` and not yet read
        s = b.stmts
        while s is not None:
            code = s.code
            atom = _USE[code]
            if atom != -1:
                if atom == AX_ATOM:
                    pending &= ~(_ABIT | _XBIT)
                else:
                    pending &= ~(1 << (s.k if atom == _K_OPERAND else atom))
            atom = _DEF[code]
            if atom != -1:
                if atom == _K_OPERAND:
                    atom = s.k
                bit = 1 << atom
                if pending & bit:
                    self._changed()
                    last[atom].code = NOP
                last[atom] = s
                pending |= bit
            s = s.next
        atom = _USE[b.code]  # the block's jump or return only uses
        if atom == AX_ATOM:
            pending &= ~(_ABIT | _XBIT)
        elif atom >= 0:
            pending &= ~(1 << atom)
        dead = pending & ~b.out_use
        while dead:
            low = dead & -dead
            dead ^= low
            last[low.bit_length() - 1].code = NOP
            self._changed()

    def opt_blk(self, b: Block, do_stmts: bool) -> None:
        p = b.in_edges
        if p is None:
            val = [0] * N_ATOMS
        else:
            val = p.pred.val[:]
            p = p.next
            while p is not None:
                pv = p.pred.val
                if pv != val:
                    # a value known only on some paths is unknown; scratch memory rarely differs
                    if pv[:A_ATOM] == val[:A_ATOM]:
                        if val[A_ATOM] != pv[A_ATOM]:
                            val[A_ATOM] = 0
                        if val[X_ATOM] != pv[X_ATOM]:
                            val[X_ATOM] = 0
                    else:
                        val = [x if x == y else 0 for x, y in zip(val, pv)]
                p = p.next
        b.val = val
        aval = val[A_ATOM]
        xval = val[X_ATOM]
        s = b.stmts
        opt_stmt = self.opt_stmt
        while s is not None:
            opt_stmt(s, val, do_stmts)
            s = s.next
        if do_stmts and ((b.out_use == 0 and aval != 0 and val[A_ATOM] == aval and xval != 0
                          and val[X_ATOM] == xval) or b.code & 0x07 == I.RET):
            if b.stmts is not None:
                b.stmts = None
                self._changed()
        else:
            self.opt_peep(b)
            self.opt_deadstores(b)
        if I.src(b.code) == I.K:
            b.oval = self.kvals.get(b.k) or self.K(b.k)
        else:
            b.oval = b.val[X_ATOM]
        b.et.code = b.code
        b.ef.code = -b.code

    # -- branch optimizations -----------------------------------------------------
    @staticmethod
    def use_conflict(b: Block, succ: Block) -> bool:
        """Does succ read a register whose value differs from its value after b?"""
        use = succ.out_use
        if use == 0:
            return False
        bval, sval = b.val, succ.val
        while use:
            low = use & -use
            atom = low.bit_length() - 1
            if bval[atom] != sval[atom]:
                return True
            use ^= low
        return False

    def opt_j(self, ep: Edge) -> None:
        """Thread an edge past tests whose outcome a dominating edge already decided."""
        succ = ep.succ
        if succ.et.succ is None:
            return
        pred = ep.pred
        if succ.et.succ is succ.ef.succ:
            if not self.use_conflict(pred, succ.et.succ):
                self._changed()
                ep.succ = succ = succ.et.succ
        edges = self.edges
        deciders = self.deciders
        while True:
            restart = False
            child = ep.succ
            child_code = child.code
            child_a = child.val[A_ATOM]
            x = ep.edom & deciders.get((child_code, child_a), 0)
            while x:
                low = x & -x
                x ^= low
                dom = edges[low.bit_length() - 1]
                # fold_edge: does the dominating edge's outcome decide the child's test?
                code = dom.code
                sense = code >= 0
                if not sense:
                    code = -code
                if child_code != code or child_a != dom.pred.val[A_ATOM]:
                    continue
                if child.oval == dom.pred.oval:
                    target = child.et.succ if sense else child.ef.succ
                elif sense and code == _JMP_JEQ_K:
                    target = child.ef.succ
                else:
                    continue
                if target is not None and not self.use_conflict(pred, target):
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
        # libpcap walks pointers to successor fields; an edge is exactly that (its .succ)
        first = b.in_edges.pred
        diff = first.et if first.et.succ is b else first.ef
        bid = b.id
        # or_pullup follows a chain of tests linked by their false edges that all jump to
        # b's true target; and_pullup is its mirror image (true edges, false target)
        chain, other = (_FALSE_EDGE, _TRUE_EDGE) if along_false else (_TRUE_EDGE, _FALSE_EDGE)
        same_side = other(b).succ
        at_top = True
        while True:
            cur = diff.succ
            if cur is None or other(cur).succ is not same_side or not cur.dom >> bid & 1:
                return
            if cur.val[A_ATOM] != val:
                break
            diff = chain(cur)
            at_top = False
        samep = chain(diff.succ)
        while True:
            cur = samep.succ
            if cur is None or other(cur).succ is not same_side or not cur.dom >> bid & 1:
                return
            if cur.val[A_ATOM] == val:
                break
            samep = chain(cur)
        pull = samep.succ
        samep.succ = chain(pull).succ
        chain(pull).succ = diff.succ
        if at_top:
            ep = b.in_edges
            while ep is not None:
                if ep.pred.et.succ is b:
                    ep.pred.et.succ = pull
                else:
                    ep.pred.ef.succ = pull
                ep = ep.next
        else:
            diff.succ = pull
        self.done = False

    def find_inedges(self) -> None:
        for b in self.blocks:
            b.in_edges = None
        for level in range(self.root.level, 0, -1):
            for b in self.levels[level]:
                for ep in (b.et, b.ef):
                    child = ep.succ
                    ep.next = child.in_edges
                    child.in_edges = ep

    def opt_blks(self, do_stmts: bool) -> None:
        self.init_val()
        maxlevel = self.root.level
        for i in range(maxlevel, -1, -1):
            for p in self.levels[i]:
                self.opt_blk(p, do_stmts)
        if do_stmts:
            return
        # edges by (test, value tested): only a dominating edge with the same test on the same
        # value can decide a block's branch, so opt_j looks at those instead of all dominators
        self.deciders: dict[tuple[int, int], int] = {}
        for i in range(maxlevel, -1, -1):
            for p in self.levels[i]:
                key = (p.code, p.val[A_ATOM])
                self.deciders[key] = self.deciders.get(key, 0) | 1 << p.et.id | 1 << p.ef.id
        for i in range(1, maxlevel + 1):
            for p in self.levels[i]:
                self.opt_j(p.et)
                self.opt_j(p.ef)
        self.find_inedges()
        for i in range(1, maxlevel + 1):
            for p in self.levels[i]:
                self._pullup(p, True)
                self._pullup(p, False)

    def opt_loop(self, do_stmts: bool) -> None:
        loop_count = 0
        while True:
            self.done = True
            self.non_branch_movement_performed = False
            self.analyze()
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
        """Mark the blocks reachable from the root; returns the mark."""
        mark = next(_MARKS)
        stack = [self.root]
        while stack:
            p = stack.pop()
            if p.mark != mark:
                p.mark = mark
                if p.code & 0x07 != I.RET:
                    stack.append(p.et.succ)
                    stack.append(p.ef.succ)
        return mark

    @staticmethod
    def _stmts_key(s: Stmt | None) -> tuple[int, ...]:
        key = []
        while s is not None:
            if s.code != NOP:
                key.append(s.code)
                key.append(s.k)
            s = s.next
        return tuple(key)

    def intern_blocks(self) -> None:
        """Merge identical blocks: each reachable block links to the first equal one after it.

        libpcap compares every pair; a dictionary of the lowest later index per block
        content finds the same partner.
        """
        blocks = self.blocks
        n = len(blocks)
        stmts_key = self._stmts_key
        while True:
            done = True
            for b in blocks:
                b.link = None
            mark = self.mark_code()
            first_after: dict[tuple, Block] = {}
            for i in range(n - 1, -1, -1):
                bi = blocks[i]
                if bi.mark != mark:
                    continue
                key = (bi.code, bi.k, id(bi.et.succ), id(bi.ef.succ), stmts_key(bi.stmts))
                bj = first_after.get(key)
                if bj is not None:
                    bi.link = bj.link if bj.link is not None else bj
                first_after[key] = bi
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


def optimize(root: Block) -> Block:
    """Optimize the DAG rooted at root in place; returns the new root."""
    return _Optimizer(root).run()


# -- flattening ------------------------------------------------------------------


class _Flattener:
    def __init__(self, root: Block):
        self.root = root
        self.mark = 0
        self.out: list[CInsn] = []
        self.ftail = 0

    def count_stmts(self) -> int:
        """Instructions the layout needs: statements, the branch, and any long-jump `ja`s."""
        n = 0
        stack = [self.root]
        while stack:
            p = stack.pop()
            if p is None or p.mark == self.mark:
                continue
            p.mark = self.mark
            n += _slength(p.stmts) + 1 + p.longjt + p.longjf
            stack.append(p.et.succ)
            stack.append(p.ef.succ)
        return n

    def convert_all(self) -> bool:
        """Emit blocks in libpcap's order (false subtree, true subtree, block) from the end backwards.

        An explicit stack instead of recursion: filters of thousands of blocks need no
        recursion limit.  False means branches went out of range and the layout restarts.

        libpcap restarts at the first branch out of range; this pass goes on and
        flags every one.  Flagging adds `ja`s, which only lengthen forward
        branches, so each flagged branch is one libpcap also flags, and both end
        with the same flags once all fit -- in one restart per pass, not per branch.
        """
        fits = True
        stack: list[tuple[Block | None, bool]] = [(self.root, False)]
        while stack:
            p, emit = stack.pop()
            if emit:
                fits = self.convert(p) and fits
                continue
            if p is None or p.mark == self.mark:
                continue
            p.mark = self.mark
            stack.append((p, True))
            stack.append((p.et.succ, False))
            stack.append((p.ef.succ, False))
        return fits

    def convert(self, p: Block) -> bool:
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
            if I.cls(src.code) == I.JMP and src.code != _JMP_JA and off != slen - 2:
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
        rel_t = (p.et.succ.offset - (p.offset + slen) - 1) & M32
        rel_f = (p.ef.succ.offset - (p.offset + slen) - 1) & M32
        if (rel_t >= 256 and p.longjt == 0) or (rel_f >= 256 and p.longjf == 0):
            p.longjt |= rel_t >= 256
            p.longjf |= rel_f >= 256
            return False
        rel = rel_t
        if rel >= 256:
            jt = extrajmps
            extrajmps += 1
            out[dst + extrajmps] = CInsn(_JMP_JA, 0, 0, (rel - extrajmps) & M32)
        else:
            jt = rel
        rel = rel_f
        if rel >= 256:
            jf = extrajmps
            extrajmps += 1
            out[dst + extrajmps] = CInsn(_JMP_JA, 0, 0, (rel - extrajmps) & M32)
        else:
            jf = rel
        out[dst] = CInsn(code, jt, jf, k)
        return True

    def run(self) -> list[CInsn]:
        while True:
            self.mark = next(_MARKS)
            n = self.count_stmts()
            self.out = [CInsn(0, 0, 0, 0)] * n
            self.ftail = n
            self.mark = next(_MARKS)
            if self.convert_all():
                return self.out


def flatten(root: Block) -> list[CInsn]:
    """Lay the DAG out as a cBPF program the way libpcap's icode_to_fcode does."""
    return _Flattener(root).run()
