"""Whole-BTF checks: every string offset and type reference in range, no type loops.

Parsing only checks the structure (header, record sizes, kinds); this walks
every record once so that bad references are reported up front with the
record and byte offset, instead of surfacing later deep inside a lookup.
A loop is a cycle of references that does not pass through a pointer
(``typedef A -> const -> typedef A``, a struct that contains itself): C cannot
express it and resolving it would never end.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import BTFError

if TYPE_CHECKING:
    from .btf import BTF

_INT, _PTR, _ARRAY, _STRUCT, _UNION, _ENUM, _FWD, _TYPEDEF = 1, 2, 3, 4, 5, 6, 7, 8
_VOLATILE, _CONST, _RESTRICT, _FUNC, _FUNC_PROTO, _VAR, _DATASEC = 9, 10, 11, 12, 13, 14, 15
_FLOAT, _DECL_TAG, _TYPE_TAG, _ENUM64 = 16, 17, 18, 19
_ONE_REF = frozenset({_PTR, _TYPEDEF, _VOLATILE, _CONST, _RESTRICT, _FUNC, _VAR, _DECL_TAG, _TYPE_TAG})
_VALUE_REF = frozenset({_TYPEDEF, _VOLATILE, _CONST, _RESTRICT, _TYPE_TAG, _FUNC, _VAR})


def validate(btf: "BTF") -> None:
    words = btf._words
    offs = btf._offs
    first = btf._first
    start = 1 if first == 0 else 0  # skip the implicit void record of a base BTF
    n = len(btf)
    str_end = btf.string_start + len(btf._strtab)

    def bad(i: int, word: int, what: str) -> BTFError:
        tid = first + i
        return BTFError(f"{btf.name}: type {btf._describe(tid)}: {what}", section="BTF types",
                        offset=btf._byte_offset(tid, word))

    def check_name(i: int, word: int, off: int, what: str) -> None:
        raise bad(i, word, f"{what} string offset {off} is outside the string section ({str_end} bytes)")

    for i in range(start, len(offs)):
        o = offs[i]
        name_off, info, st = words[o], words[o + 1], words[o + 2]
        kind = (info >> 24) & 0x1F
        vlen = info & 0xFFFF
        if name_off >= str_end:
            check_name(i, 0, name_off, "name")
        if kind in _ONE_REF:
            if st >= n:
                raise bad(i, 2, f"refers to type id {st}, but the last type id is {n - 1}")
            if kind == _FUNC and st and (_kind(btf, st) != _FUNC_PROTO):
                raise bad(i, 2, f"function type {btf._describe(st)} is not a FUNC_PROTO")
            if kind == _DECL_TAG and st == 0:
                raise bad(i, 2, "decl tag is attached to void")
        elif kind in (_STRUCT, _UNION):
            for j in range(vlen):
                q = o + 3 + 3 * j
                if words[q] >= str_end:
                    check_name(i, 3 + 3 * j, words[q], f"member {j} name")
                if words[q + 1] >= n:
                    raise bad(i, 4 + 3 * j, f"member {j} refers to type id {words[q + 1]}, "
                                            f"but the last type id is {n - 1}")
        elif kind in (_ENUM, _ENUM64):
            step = 2 if kind == _ENUM else 3
            for j in range(vlen):
                q = o + 3 + step * j
                if words[q] >= str_end:
                    check_name(i, 3 + step * j, words[q], f"enumerator {j} name")
        elif kind == _ARRAY:
            for j, what in ((0, "element type"), (1, "index type")):
                if words[o + 3 + j] >= n:
                    raise bad(i, 3 + j, f"{what} id {words[o + 3 + j]} does not exist (last type id is {n - 1})")
        elif kind == _FUNC_PROTO:
            if st >= n:
                raise bad(i, 2, f"return type id {st} does not exist (last type id is {n - 1})")
            for j in range(vlen):
                q = o + 3 + 2 * j
                if words[q] >= str_end:
                    check_name(i, 3 + 2 * j, words[q], f"parameter {j} name")
                if words[q + 1] >= n:
                    raise bad(i, 4 + 2 * j, f"parameter {j} type id {words[q + 1]} does not exist "
                                            f"(last type id is {n - 1})")
        elif kind == _DATASEC:
            for j in range(vlen):
                q = o + 3 + 3 * j
                if words[q] >= n or words[q] == 0:
                    raise bad(i, 3 + 3 * j, f"variable {j} type id {words[q]} does not exist")
    _check_loops(btf)


def _kind(btf: "BTF", tid: int) -> int:
    words, o = btf._locate(tid)
    return (words[o + 1] >> 24) & 0x1F


def _value_refs(words, o: int) -> list[int]:
    """Ids a type needs complete (not through a pointer) to be complete itself."""
    info = words[o + 1]
    kind = (info >> 24) & 0x1F
    if kind in _VALUE_REF:
        return [words[o + 2]]
    if kind == _ARRAY:
        return [words[o + 3]]
    if kind in (_STRUCT, _UNION):
        return [words[o + 4 + 3 * j] for j in range(info & 0xFFFF)]
    if kind == _FUNC_PROTO:
        return [words[o + 2]] + [words[o + 4 + 2 * j] for j in range(info & 0xFFFF)]
    return []


def _chain_refs(words, o: int) -> list[int]:
    """Ids a declaration chain goes on to: pointers included, struct and union members not
    (a struct ends a chain; ``typedef struct s *p`` inside ``struct s`` is fine)."""
    info = words[o + 1]
    kind = (info >> 24) & 0x1F
    if kind in _VALUE_REF or kind == _PTR:
        return [words[o + 2]]
    if kind == _ARRAY:
        return [words[o + 3]]
    if kind == _FUNC_PROTO:
        return [words[o + 2]] + [words[o + 4 + 2 * j] for j in range(info & 0xFFFF)]
    return []


def _check_loops(btf: "BTF") -> None:
    """No cycle of by-value references (a struct inside itself, typedef/modifier loops), and no
    cycle of declaration chains without a struct in it (``typedef t *t``); cycles that pass
    through both a pointer and a struct are ordinary linked structures."""
    _find_cycle(btf, _value_refs)
    _find_cycle(btf, _chain_refs)


def _find_cycle(btf: "BTF", refs) -> None:
    """Iterative DFS over this BTF's own types (base types are known good)."""
    words = btf._words
    offs = btf._offs
    first = btf._first
    state = bytearray(len(offs))  # 0 new, 1 on the DFS stack, 2 done
    if first == 0:
        state[0] = 2
    for root in range(len(offs)):
        if state[root]:
            continue
        stack = [(root, iter(refs(words, offs[root])))]
        state[root] = 1
        while stack:
            node, it = stack[-1]
            for ref in it:
                i = ref - first
                if i < 0 or ref == 0:
                    continue
                s = state[i]
                if s == 0:
                    state[i] = 1
                    stack.append((i, iter(refs(words, offs[i]))))
                    break
                if s == 1:
                    cycle = [first + k for k, _ in stack]
                    cycle = cycle[cycle.index(ref):] + [ref]
                    path = " -> ".join(btf._describe(t) for t in cycle)
                    what = "type loop" if refs is _chain_refs else "type loop not broken by a pointer"
                    raise BTFError(f"{btf.name}: {what}: {path}", section="BTF types",
                                   offset=btf._byte_offset(cycle[0]))
            else:
                state[node] = 2
                stack.pop()
