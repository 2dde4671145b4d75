"""`compile()`: a pcap-filter(7) expression to a classic BPF program, like pcap_compile()."""

from __future__ import annotations

import sys

from ..errors import CompileError, FilterSyntaxError
from . import linktypes
from .gencode import PCAP_NETMASK_UNKNOWN, CodeGen
from .insn import CInsn
from .lexer import LexError, Token, tokenize
from .optimize import flatten, optimize as optimize_dag
from .parser import before_scanner_error, parse


def compile(expression: str, linktype: str | int = "EN10MB", snaplen: int = 262144, optimize: bool = True,
            netmask: int = PCAP_NETMASK_UNKNOWN) -> list[CInsn]:
    """Compile a filter expression for a link-layer type; the program tcpdump -d would list.

    `optimize=False` is tcpdump's -O.  `netmask` only matters for `ip broadcast`.
    Errors: FilterSyntaxError (with a caret position) for text that does not
    parse, CompileError for expressions libpcap refuses (with its message),
    NotSupportedError for link-layer type names pybpf does not know.
    """
    if not isinstance(expression, str):
        raise TypeError(f"expression must be a str, not {type(expression).__name__}")
    dlt = linktypes.dlt_value(linktype)
    if snaplen == 0:
        raise CompileError("snaplen of 0 rejects all packets")
    gen = CodeGen(dlt, snaplen & 0xFFFFFFFF, netmask)
    try:
        tokens = tokenize(expression)
    except LexError as exc:
        syntax_error, pieces = before_scanner_error(expression, exc.tokens + [Token("EOF", None, exc.pos, "")])
        _raise_earlier_error(gen, pieces)
        raise syntax_error or FilterSyntaxError(str(exc), expression, exc.pos) from None
    # parsing and the tree walk recurse once per nesting level ('a or b or ...' nests per term)
    old_limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old_limit, 8 * len(tokens) + 1000))
    try:
        try:
            tree = parse(expression, tokens)
        except FilterSyntaxError as exc:
            _raise_earlier_error(gen, exc.completed)
            raise
        root = gen.finish(tree)
    finally:
        sys.setrecursionlimit(old_limit)
    if optimize and not gen.no_optimize:
        root = optimize_dag(root)
        if root.code == 0x06 and root.k == 0:
            raise CompileError("expression rejects all packets")
    return flatten(root)


def _raise_earlier_error(gen: CodeGen, pieces) -> None:
    """Generate the pieces parsed before a syntax error; an error among them is the one libpcap reports."""
    for kind, node in pieces:
        try:
            gen.block(node) if kind == "bool" else gen.arth(node)
        except CompileError as exc:
            raise exc from None
