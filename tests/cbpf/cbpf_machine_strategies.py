"""Hypothesis strategies for the cBPF machine tests: valid classic BPF programs (kernel rules)."""

from __future__ import annotations

from hypothesis import strategies as st

from pybpf.cbpf import insn as I

_INTERESTING_K = [0, 1, 2, 3, 4, 7, 8, 12, 13, 14, 15, 16, 20, 23, 26, 30, 31, 32, 33, 34, 36, 40, 54, 60, 64, 100,
                  255, 256, 0x7FFF, 0x8000, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFE, 0xFFFFFFFF]
_NEG_K = [(I.SKF_NET_OFF + d) & 0xFFFFFFFF for d in (0, 2, 9, 12, 16, 20, 40)] + \
         [(I.SKF_LL_OFF + d) & 0xFFFFFFFF for d in (0, 6, 12, 13, 30)] + [0xFFEFFFFF, 0xFFDFFFFF, 0xFFFF0000]


def ancillary_k(names) -> list[int]:
    return [(I.SKF_AD_OFF + I.SKF_AD[n]) & 0xFFFFFFFF for n in names]


def k_values(extra=()):
    return st.one_of(st.sampled_from(_INTERESTING_K + list(extra)), st.integers(0, 80), st.integers(0, 0xFFFFFFFF))


@st.composite
def programs(draw, max_len: int = 24, ancillary=(), negative: bool = False, seccomp: bool = False):
    """Valid classic BPF programs (kernel rules) built instruction by instruction.

    Scratch words are all written first so any later read is legal; jumps go
    forward inside the program; the last instruction is a ret.
    """
    n_body = draw(st.integers(1, max_len))
    body: list[tuple] = []
    if draw(st.booleans()):
        body += [(I.LD | I.IMM, 0, 0, draw(k_values()))]
    scratch = draw(st.lists(st.integers(0, 15), max_size=3, unique=True))
    body += [(I.ST, 0, 0, m) for m in scratch]
    offsets = k_values(_NEG_K if negative else ())
    if seccomp:
        load_choices = [(I.LD | I.W | I.ABS, st.sampled_from(range(0, 64, 4)))]
    else:
        load_choices = [(I.LD | size | I.ABS, offsets) for size in (I.W, I.H, I.B)]
        load_choices += [(I.LD | size | I.IND, offsets) for size in (I.W, I.H, I.B)]
        load_choices += [(I.LDX | I.B | I.MSH, offsets)]
        if ancillary:
            load_choices += [(I.LD | size | I.ABS, st.sampled_from(ancillary_k(ancillary))) for size in (I.W, I.B)]
    alu_ops = [I.ADD, I.SUB, I.MUL, I.DIV, I.OR, I.AND, I.LSH, I.RSH, I.XOR] + ([] if seccomp else [I.MOD])
    while len(body) < n_body:
        kind = draw(st.sampled_from(["load", "load", "alu", "alu", "alu", "imm", "mem", "misc", "jump", "jump", "ret"]))
        remaining = n_body - len(body)  # instructions after this one, the final ret included
        if kind == "load":
            code, ks = draw(st.sampled_from(load_choices))
            k = draw(ks)
            if I.mode(code) == I.ABS and k >= 0xFFFFF000 and k not in ancillary_k(ancillary):
                k &= 0xFF  # the kernel refuses unknown ancillary offsets
            body.append((code, 0, 0, k))
        elif kind == "alu":
            op = draw(st.sampled_from(alu_ops))
            if draw(st.booleans()):
                body.append((I.ALU | op | I.X, 0, 0, 0))
            else:
                k = draw(k_values())
                if op in (I.LSH, I.RSH):
                    k %= 32
                if op in (I.DIV, I.MOD) and k == 0:
                    k = 3
                body.append((I.ALU | op | I.K, 0, 0, k))
            if draw(st.integers(0, 9)) == 0:
                body.append((I.ALU | I.NEG, 0, 0, 0))
        elif kind == "imm":
            body.append((draw(st.sampled_from([I.LD | I.IMM, I.LDX | I.IMM])), 0, 0, draw(k_values())))
            if draw(st.booleans()):
                body.append((draw(st.sampled_from([I.LD | I.W | I.LEN, I.LDX | I.W | I.LEN])), 0, 0, 0))
        elif kind == "mem":
            m = draw(st.integers(0, 15))
            if m in scratch and draw(st.booleans()):
                body.append((draw(st.sampled_from([I.LD | I.MEM, I.LDX | I.MEM])), 0, 0, m))
            else:
                body.append((draw(st.sampled_from([I.ST, I.STX])), 0, 0, m))
        elif kind == "misc":
            body.append((I.MISC | draw(st.sampled_from([I.TAX, I.TXA])), 0, 0, 0))
        elif kind == "jump":
            op = draw(st.sampled_from([I.JEQ, I.JGT, I.JGE, I.JSET, I.JA]))
            span = min(remaining, 255)
            if op == I.JA:
                body.append((I.JMP | I.JA, 0, 0, draw(st.integers(0, span - 1))))
            else:
                src = draw(st.sampled_from([I.K, I.X]))
                k = draw(k_values()) if src == I.K else 0
                body.append((I.JMP | op | src, draw(st.integers(0, span - 1)), draw(st.integers(0, span - 1)), k))
        else:
            body.append(draw(st.sampled_from([(I.RET | I.A, 0, 0, 0), (I.RET | I.K, 0, 0, draw(k_values()))])))
    body = body[:n_body] if len(body) > n_body else body
    # Jumps drawn before the body was trimmed may now overshoot: clamp them to the final ret.
    total = len(body) + 1
    fixed = []
    for pc, (code, jt, jf, k) in enumerate(body):
        last = total - pc - 2  # largest legal offset
        if code == I.JMP | I.JA:
            k = min(k, last)
        elif I.cls(code) == I.JMP:
            jt, jf = min(jt, last), min(jf, last)
        fixed.append((code, jt, jf, k))
    fixed.append(draw(st.sampled_from([(I.RET | I.A, 0, 0, 0), (I.RET | I.K, 0, 0, draw(k_values()))])))
    return fixed
