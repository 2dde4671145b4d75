"""Parse pcap-filter(7) expressions into a tree the code generator walks.

libpcap's grammar is LALR with yacc's conflict rules; this recursive-descent
parser makes the same choices: `and`/`or` share one precedence and associate
left, a bare operand after `and`/`or` inherits the qualifiers of the term
before it (`host a or b`), `%` and `^` bind like yacc's unprecedenced rules
(they always shift).  The tree is walked in post-order by gencode, which is the
order yacc runs its actions in, so registers and offsets come out the same.
"""

from __future__ import annotations

from typing import NamedTuple

from ..errors import FilterSyntaxError
from .lexer import Token

# address qualifiers
Q_DEFAULT, Q_HOST, Q_NET, Q_PORT, Q_GATEWAY, Q_PROTO, Q_PROTOCHAIN, Q_PORTRANGE = 0, 1, 2, 3, 4, 5, 6, 7
Q_UNDEF = 255
# protocol qualifiers
(Q_LINK, Q_IP, Q_ARP, Q_RARP, Q_SCTP, Q_TCP, Q_UDP, Q_ICMP, Q_IGMP, Q_IGRP, Q_ATALK, Q_DECNET, Q_LAT, Q_SCA,
 Q_MOPRC, Q_MOPDL, Q_IPV6, Q_ICMPV6, Q_AH, Q_ESP, Q_PIM, Q_VRRP, Q_AARP, Q_ISO, Q_ESIS, Q_ISIS, Q_CLNP, Q_STP,
 Q_IPX, Q_NETBEUI, Q_ISIS_L1, Q_ISIS_L2, Q_ISIS_IIH, Q_ISIS_SNP, Q_ISIS_CSNP, Q_ISIS_PSNP, Q_ISIS_LSP, Q_RADIO,
 Q_CARP) = range(1, 40)
# direction qualifiers
Q_SRC, Q_DST, Q_OR, Q_AND, Q_ADDR1, Q_ADDR2, Q_ADDR3, Q_ADDR4, Q_RA, Q_TA = range(1, 11)

PNAMES = {
    "LINK": Q_LINK, "IP": Q_IP, "ARP": Q_ARP, "RARP": Q_RARP, "SCTP": Q_SCTP, "TCP": Q_TCP, "UDP": Q_UDP,
    "ICMP": Q_ICMP, "IGMP": Q_IGMP, "IGRP": Q_IGRP, "PIM": Q_PIM, "VRRP": Q_VRRP, "CARP": Q_CARP,
    "ATALK": Q_ATALK, "AARP": Q_AARP, "DECNET": Q_DECNET, "LAT": Q_LAT, "SCA": Q_SCA, "MOPDL": Q_MOPDL,
    "MOPRC": Q_MOPRC, "IPV6": Q_IPV6, "ICMPV6": Q_ICMPV6, "AH": Q_AH, "ESP": Q_ESP, "ISO": Q_ISO,
    "ESIS": Q_ESIS, "ISIS": Q_ISIS, "L1": Q_ISIS_L1, "L2": Q_ISIS_L2, "IIH": Q_ISIS_IIH, "LSP": Q_ISIS_LSP,
    "SNP": Q_ISIS_SNP, "PSNP": Q_ISIS_PSNP, "CSNP": Q_ISIS_CSNP, "CLNP": Q_CLNP, "STP": Q_STP, "IPX": Q_IPX,
    "NETBEUI": Q_NETBEUI, "RADIO": Q_RADIO,
}
_DQUALS = {"ADDR1": Q_ADDR1, "ADDR2": Q_ADDR2, "ADDR3": Q_ADDR3, "ADDR4": Q_ADDR4, "RA": Q_RA, "TA": Q_TA}
_AQUALS = {"HOST": Q_HOST, "NET": Q_NET, "PORT": Q_PORT, "PORTRANGE": Q_PORTRANGE}
# ALU opcodes of the arithmetic operators, and yacc's precedence for them (None: no precedence).
_ARITH = {"+": 0x00, "-": 0x10, "*": 0x20, "/": 0x30, "%": 0x90, "&": 0x50, "|": 0x40, "^": 0xA0,
          "LSH": 0x60, "RSH": 0x70}
_PREC = {"|": 1, "&": 2, "LSH": 3, "RSH": 3, "+": 4, "-": 4, "*": 5, "/": 5, "%": None, "^": None}
_UMINUS = 6
_RELOPS = {">": (0x20, False), "GEQ": (0x30, False), "=": (0x10, False),
           "LEQ": (0x20, True), "<": (0x30, True), "NEQ": (0x10, True)}
# Primitives without operands of raw ATM and SS7 MTP2, and the fields compared with numbers.
ATM_TYPES = {"LANE", "METAC", "BCC", "OAMF4EC", "OAMF4SC", "SC", "ILMIC"}
ATM_MULTI_TYPES = {"OAM", "OAMF4", "CONNECTMSG", "METACONNECT"}
ATM_FIELDS = {"VPI": "vpi", "VCI": "vci"}
MTP2_TYPES = {"FISU", "LSSU", "MSU", "HFISU", "HLSSU", "HMSU"}
MTP3_FIELDS = {"SIO", "OPC", "DPC", "SLS", "HSIO", "HOPC", "HDPC", "HSLS"}
PF_KEYWORDS = {"PF_IFNAME", "PF_RSET", "PF_RNR", "PF_SRNR", "PF_REASON", "PF_ACTION"}


# when libpcap's parser generates a piece's code: without reading the next token, on any
# next token (a default reduction), or only on a token that can follow it
EAGER, ON_ANY, ON_FIT = 0, 1, 2


class Qual(NamedTuple):
    addr: int
    proto: int
    dir: int


QERR = Qual(Q_UNDEF, Q_UNDEF, Q_UNDEF)


class _Fail(Exception):
    """A syntax error at a token; the parser backtracks on it and reports the furthest one."""

    def __init__(self, index: int):
        self.index = index


class Parser:
    def __init__(self, expression: str, tokens: list[Token]):
        self.expression = expression
        self.toks = tokens
        self.i = 0
        self.furthest = 0
        # (first token, token after, 'bool' | 'arth', node, when) of every primitive, relation
        # and arithmetic value parsed, for errors libpcap reports before a later syntax error
        self.completed: list[tuple[int, int, str, object, int]] = []

    # -- helpers --------------------------------------------------------------
    def peek(self, ahead: int = 0) -> str:
        return self.toks[min(self.i + ahead, len(self.toks) - 1)].kind

    def take(self) -> Token:
        tok = self.toks[self.i]
        if tok.kind != "EOF":
            self.i += 1
        return tok

    def expect(self, kind: str) -> Token:
        if self.peek() != kind:
            self.fail()
        return self.take()

    def fail(self):
        self.furthest = max(self.furthest, self.i)
        raise _Fail(self.i)

    def attempt(self, *alternatives):
        """Try parse functions in order from the same position; first success wins."""
        start = self.i
        for fn in alternatives:
            try:
                return fn()
            except _Fail:
                self.i = start
        self.fail()

    # -- grammar --------------------------------------------------------------
    def parse(self):
        try:
            if self.peek() == "EOF":
                return None
            node, _ = self.expr(QERR)
            if self.peek() != "EOF":
                self.fail()
            return node
        except _Fail:
            tok = self.toks[min(max(self.furthest, 0), len(self.toks) - 1)]
            exc = FilterSyntaxError("can't parse filter expression: syntax error", self.expression, tok.pos)
            exc.completed = self.completed_before(self.furthest)
            raise exc from None

    def completed_before(self, index: int, scanner_error: bool = False) -> list[tuple[str, object]]:
        """The outermost pieces libpcap has generated code for when it fails at token `index`.

        libpcap's parser runs a piece's code generation when it reduces it, so an
        error there is reported instead of a syntax error further on.  A piece
        ending right before the bad token counts if the parser reduces it without
        looking at the next token (EAGER) or by default on any token (ON_ANY);
        a scanner error's message only gives way to an error raised in code
        generation, not to one the grammar sets (the ("error", ...) pieces).
        """
        limit = {EAGER: index, ON_ANY: index, ON_FIT: index - 1 if scanner_error else index}
        spans = sorted({(start, end): (kind, node) for start, end, kind, node, when in self.completed
                        if end <= limit[when] and not (scanner_error and end == index and node[0] == "error")
                        }.items(), key=lambda item: (item[0][0], -item[0][1]))
        out = []
        reach = -1
        for (start, end), piece in spans:
            if end > reach:
                if start >= reach:
                    out.append(piece)
                reach = max(reach, end)
        return out

    def _done(self, start: int, result, kind: str = "bool", after_op: bool = False):
        node = result[0] if kind == "bool" else result
        if kind == "arth" or node[0] not in ("and", "or", "not"):
            last = self.toks[self.i - 1].kind
            if kind == "arth":
                when = EAGER if last == "]" else ON_ANY
            elif node[0] == "pname" or (last == "NUM" and after_op):
                # the parser looks at what follows to choose: a bare protocol or number is a
                # primitive only before and/or/')'/the end (else it starts a field or arithmetic)
                if self.peek() not in ("AND", "OR", ")", "EOF"):
                    return result
                when = ON_FIT
            elif node[0] == "rel" or last in ("HID", "HID6") or node in (("llc", None),) or (
                    node[0] == "other" and last in ("VLAN", "MPLS", "PPPOES", "GENEVE")):
                when = ON_ANY
            else:
                when = EAGER
            self.completed.append((start, self.i, kind, node, when))
        return result

    def expr(self, ctx: Qual):
        node, q = self.term(ctx)
        while self.peek() in ("AND", "OR"):
            op = self.take().kind.lower()
            left_q = q
            rhs, q = self.attempt(lambda: self.term(left_q), lambda: self.id(left_q, after_op=True))
            node = (op, node, rhs)
        return node, q

    def term(self, ctx: Qual):
        if self.peek() == "!":
            self.take()
            node, q = self.term(ctx)
            return ("not", node), q
        return self._done(self.i, self.rterm(ctx))

    def rterm(self, ctx: Qual):
        kind = self.peek()
        if kind == "(":
            return self.attempt(self.relation, lambda: self.paren_expr(ctx))
        if kind in PNAMES:
            nxt = self.peek(1)
            if nxt == "[":
                return self.relation()
            if nxt in ("TK_BROADCAST", "TK_MULTICAST"):
                self.take()
                return ("other", self.take().kind, PNAMES[kind]), QERR
            if nxt in ("TYPE", "SUBTYPE", "DIR"):
                self.take()  # the protocol qualifier is accepted and ignored, as by libpcap
                return self.p80211()
            if self._starts_head_tail(nxt):
                return self.head_id()
            self.take()
            return ("pname", PNAMES[kind]), QERR
        if self._starts_head_tail(kind):
            return self.head_id()
        if kind in ("TK_BROADCAST", "TK_MULTICAST"):
            self.take()
            return ("other", kind, Q_DEFAULT), QERR
        if kind in ("LESS", "GREATER"):
            self.take()
            return ("other", kind, self.expect("NUM").value), QERR
        if kind == "CBYTE":
            self.take()
            idx = self.expect("NUM").value
            op = self.peek()
            if op not in ("&", "|", "<", ">", "="):
                self.fail()
            self.take()
            return ("other", "CBYTE", idx, op, self.expect("NUM").value), QERR
        if kind in ("INBOUND", "OUTBOUND", "PPPOED"):
            self.take()
            return ("other", kind), QERR
        if kind == "IFINDEX":
            self.take()
            return ("other", kind, self.expect("NUM").value), QERR
        if kind in ("VLAN", "MPLS", "PPPOES", "GENEVE"):
            self.take()
            num = self.pnum() if self.peek() in ("NUM", "(") else None
            return ("other", kind, num), QERR
        if kind == "LLC":
            self.take()
            if self.peek() == "PF_RNR":
                self.take()
                return ("llc", "rnr"), QERR
            if self.peek() == "ID":
                return ("llc", self.take().value), QERR
            return ("llc", None), QERR
        if kind in ("TYPE", "SUBTYPE", "DIR"):
            return self.p80211()
        if kind in PF_KEYWORDS:
            return self.pfvar()
        if kind in ATM_TYPES:
            return ("atmtype", self.take().kind), QERR
        if kind in ATM_MULTI_TYPES:
            return ("atmmulti", self.take().kind), QERR
        if kind in MTP2_TYPES:
            return ("mtp2type", self.take().kind), QERR
        if kind in ATM_FIELDS:
            self.take()
            return ("atmfield", ATM_FIELDS[kind], self.field_values("atmfield", ATM_FIELDS[kind])), QERR
        if kind in MTP3_FIELDS:
            self.take()
            return ("mtp3field", kind, self.field_values("mtp3field", kind)), QERR
        if kind in ("NUM", "LEN", "-"):
            return self.relation()
        self.fail()

    def p80211(self):
        """`type T [subtype S]`, `subtype S`, `dir D`; names are resolved by the code generator."""
        kind = self.take().kind
        if kind == "TYPE":
            ftype = self.name_or_number()
            if self.peek() == "SUBTYPE":
                self.take()
                return ("wlan_type", ftype, self.name_or_number()), QERR
            return ("wlan_type", ftype, None), QERR
        if kind == "SUBTYPE":
            return ("wlan_subtype", self.expect("ID").value), QERR
        return ("wlan_dir", self.name_or_number()), QERR

    def name_or_number(self):
        if self.peek() == "NUM":
            return ("num", self.take().value)
        return ("name", self.expect("ID").value)

    def pfvar(self):
        kind = self.take().kind
        if kind in ("PF_IFNAME", "PF_RSET", "PF_ACTION"):
            return ("pf", kind, self.expect("ID").value), QERR
        if kind in ("PF_RNR", "PF_SRNR"):
            return ("pf", kind, self.expect("NUM").value), QERR
        return ("pf", kind, self.name_or_number()), QERR

    def field_values(self, node_kind: str, field: str) -> list[tuple[int, bool, int]]:
        """After vpi/vci/sio/...: NUM, relop NUM, or (NUM or NUM ...); as (jump op, reversed, value)."""
        kind = self.peek()
        start = self.i
        if kind in _RELOPS:
            self.take()
            code, reversed_ = _RELOPS[kind]
        elif kind == "NUM":
            code, reversed_ = 0x10, False
        else:
            self.expect("(")
            values = []
            while True:
                start = self.i
                values.append((0x10, False, self.expect("NUM").value))
                self._done(start, ((node_kind, field, values[-1:]), QERR))
                if self.peek() != "OR":
                    break
                self.take()
            self.expect(")")
            return values
        values = [(code, reversed_, self.expect("NUM").value)]
        self._done(start, ((node_kind, field, values), QERR))
        return values

    @staticmethod
    def _starts_head_tail(kind: str) -> bool:
        return kind in ("SRC", "DST", "PROTO", "PROTOCHAIN", "GATEWAY") or kind in _DQUALS or kind in _AQUALS

    def paren_expr(self, ctx: Qual):
        self.expect("(")
        node, _ = self.expr(ctx)
        self.expect(")")
        return node, ctx

    def head_id(self):
        proto = Q_DEFAULT
        if self.peek() in PNAMES:
            proto = PNAMES[self.take().kind]
        kind = self.peek()
        if kind in ("PROTO", "PROTOCHAIN", "GATEWAY"):
            self.take()
            addr = {"PROTO": Q_PROTO, "PROTOCHAIN": Q_PROTOCHAIN, "GATEWAY": Q_GATEWAY}[kind]
            q = Qual(addr, proto, Q_DEFAULT)
        else:
            direction = Q_DEFAULT
            if kind in ("SRC", "DST"):
                self.take()
                direction = Q_SRC if kind == "SRC" else Q_DST
                if self.peek() in ("AND", "OR") and self.peek(1) == ("DST" if kind == "SRC" else "SRC"):
                    direction = Q_OR if self.take().kind == "OR" else Q_AND
                    self.take()
            elif kind in _DQUALS:
                self.take()
                direction = _DQUALS[kind]
            addr = Q_DEFAULT
            if self.peek() in _AQUALS:
                addr = _AQUALS[self.take().kind]
            elif direction == Q_DEFAULT:
                self.fail()
            q = Qual(addr, proto, direction)
        return self.id(q)

    def id(self, ctx: Qual, after_op: bool = False):
        kind = self.peek()
        start = self.i
        if kind == "NUM":
            return self._done(start, (("num", self.take().value, ctx), ctx), after_op=after_op)
        if kind == "(":
            return self.attempt(lambda: self.paren_pnum_id(ctx), lambda: self.paren_pid(ctx))
        return self._done(start, self.nid(ctx))

    def paren_pnum_id(self, ctx: Qual):
        value = self.pnum()
        return ("num", value, ctx), ctx

    def paren_pid(self, ctx: Qual):
        self.expect("(")
        start = self.i
        if self.peek() in ("NUM", "("):
            node, _ = self._done(start, (("num", self.pnum(), ctx), ctx), after_op=True)
            if self.peek() not in ("AND", "OR"):
                self.fail()
        else:
            node, _ = self._done(start, self.nid(ctx))
        while self.peek() in ("AND", "OR"):
            op = self.take().kind.lower()
            rhs, _ = self.id(ctx)
            node = (op, node, rhs)
        self.expect(")")
        return node, ctx

    def nid(self, ctx: Qual):
        tok = self.take()
        kind = tok.kind
        if kind == "!":
            node, q = self.id(ctx)
            return ("not", node), q
        if kind == "ID":
            return ("scode", tok.value, ctx), ctx
        if kind == "HID":
            if self.peek() == "/":
                self.take()
                return ("mcode", tok.value, None, self.expect("NUM").value, ctx), ctx
            if self.peek() == "NETMASK":
                self.take()
                return ("mcode", tok.value, self.expect("HID").value, 0, ctx), ctx
            messages = {Q_PORT: "'port' modifier applied to ip host",
                        Q_PORTRANGE: "'portrange' modifier applied to ip host",
                        Q_PROTO: "'proto' modifier applied to ip host",
                        Q_PROTOCHAIN: "'protochain' modifier applied to ip host"}
            if ctx.addr in messages:
                return ("error", messages[ctx.addr]), ctx
            return ("ncode", tok.value, ctx), ctx
        if kind == "HID6":
            if self.peek() == "/":
                self.take()
                return ("mcode6", tok.value, self.expect("NUM").value, ctx), ctx
            return ("mcode6", tok.value, 128, ctx), ctx
        if kind == "EID":
            return ("ecode", tok.value, ctx), ctx
        if kind == "AID":
            return ("acode", tok.value, ctx), ctx
        self.i -= 1 if kind != "EOF" else 0
        self.fail()

    def pnum(self) -> int:
        if self.peek() == "(":
            self.take()
            value = self.pnum()
            self.expect(")")
            return value
        return self.expect("NUM").value

    # -- arithmetic -----------------------------------------------------------
    def relation(self):
        start = self.i
        left = self.arth()
        kind = self.peek()
        if kind not in _RELOPS:
            self.fail()
        self.take()
        code, reversed_ = _RELOPS[kind]
        right = self.arth()
        return self._done(start, (("rel", code, left, right, reversed_), QERR))

    def arth(self):
        """Shift-reduce over operators with yacc's precedence rules (no precedence: shift)."""
        start = self.i
        operands = [self.operand()]
        operators: list[str] = []
        while self.peek() in _ARITH:
            look = self.peek()
            while operators and self._reduce_before(operators[-1], look):
                self._reduce(operands, operators)
            operators.append(self.take().kind)
            operands.append(self.operand())
        while operators:
            self._reduce(operands, operators)
        return self._done(start, operands[0], "arth")

    @staticmethod
    def _reduce_before(stacked: str, look: str) -> bool:
        rule, token = _PREC[stacked], _PREC[look]
        if rule is None or token is None:
            return False
        return rule >= token  # all declared arithmetic operators associate left

    @staticmethod
    def _reduce(operands: list, operators: list[str]) -> None:
        op = operators.pop()
        right = operands.pop()
        left = operands.pop()
        operands.append(("arth", _ARITH[op], left, right))

    def operand(self):
        kind = self.peek()
        if kind == "-":
            self.take()
            inner = self.operand()
            # '-' arth %prec UMINUS: reduce before any declared operator, shift '%' and '^'
            while self.peek() in ("%", "^"):
                op = self.take().kind
                inner = ("arth", _ARITH[op], inner, self.arth())
            return ("neg", inner)
        if kind == "NUM":
            return ("loadi", self.take().value)
        if kind == "LEN":
            self.take()
            return ("len",)
        if kind == "(":
            return self.attempt(lambda: ("loadi", self.pnum()), self.paren_narth)
        if kind in PNAMES and self.peek(1) == "[":
            start = self.i
            proto = PNAMES[self.take().kind]
            self.take()
            index = self.arth()
            size = 1
            if self.peek() == ":":
                self.take()
                size = self.expect("NUM").value
            self.expect("]")
            return self._done(start, ("load", proto, index, size), "arth")
        self.fail()

    def paren_narth(self):
        self.expect("(")
        node = self.arth()
        if node[0] == "loadi":
            self.fail()  # a parenthesised bare number is a pnum, handled by the other branch
        self.expect(")")
        return node


def parse(expression: str, tokens: list[Token]):
    """The expression's tree, or None for the empty expression (accept everything).

    A FilterSyntaxError carries `completed`: the pieces parsed before the bad
    token, whose code libpcap generates (and whose errors it reports) first.
    """
    return Parser(expression, tokens).parse()


def before_scanner_error(expression: str, tokens: list[Token]) -> tuple[FilterSyntaxError | None, list]:
    """What libpcap meets before a token the scanner rejects (tokens: those before it, then EOF).

    A syntax error among them comes first (with the pieces before it); else the
    pieces complete when the scanner stops.
    """
    parser = Parser(expression, tokens)
    cut = len(tokens) - 1
    try:
        parser.parse()
    except FilterSyntaxError as exc:
        if parser.furthest < cut:
            return exc, exc.completed
    return None, parser.completed_before(cut, scanner_error=True)
