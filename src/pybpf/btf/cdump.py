"""BTF as a compilable C header, the way ``bpftool btf dump file X format c`` writes vmlinux.h.

The output is meant to be identical to the bpftool on this machine (7.1, whose
btf_dump is Linux 6.1.y's: libbpf 1.1's padding and packed-struct rules, no
``mode(byte)``/``mode(word)`` enum attributes, ``(void)`` for prototypes without
parameters): same declarations in the same order, same forward declarations,
padding members, ``___N`` suffixes for duplicate names and attributes.  So the
algorithm is the same in outline:

1. For every type id in order, a depth-first walk puts the named definitions
   it needs into an emit queue.  A dependency is *strong* when the compiler
   needs the full definition first (a member embedded by value, or anything
   reached through an anonymous type) and *weak* when a forward declaration is
   enough (behind a pointer to a named struct).
2. Each queued type is emitted; struct members whose types are being defined
   at that moment get forward declarations.

Ordering never looks at names or emit states and emitting never looks at the
ordering states, so the whole queue is built first and emitted after: the same
text as libbpf's ordering and emitting per type id.

Speed (vmlinux has 127k types, 67k struct members and 19k enumerators) comes
from working on the raw records (kind bytes, words, offsets per id), never on
type objects, and from three things done once instead of per use:

- the layout of every struct without bitfields (libbpf's packed verdict, the
  few gaps that need padding members) is worked out after ordering in one pass
  over a flat array of all members (``_plan_layouts``), mostly in C loops;
- the declaration of a member type is made once, as the text before and after
  the member name, so most member lines are two dict lookups and an f-string;
  function pointers, a third of vmlinux's member types, have their own short
  path;
- ``settled`` (emitted or forward-declared) and ``_through`` (what a pointer,
  modifier or array really asks to emit) let emitting skip member types with
  a set lookup.

Structs with bitfields, unsized members or huge gaps take the member-by-member
path.  Broken input (dangling ids, loops) ends in a BTFError, never a hang: the
ordering walk detects cycles, padding is bounded and a runaway recursion is
explained by ``BTF.validate``.
"""

from __future__ import annotations

from array import array
from itertools import chain, compress, count, filterfalse, repeat
from operator import add, itemgetter, lt, mod, mul
from typing import TYPE_CHECKING, Any, Callable, Iterable

from ..errors import BTFError

if TYPE_CHECKING:
    from .btf import BTF

_INT, _PTR, _ARRAY, _STRUCT, _UNION, _ENUM, _FWD, _TYPEDEF = 1, 2, 3, 4, 5, 6, 7, 8
_VOLATILE, _CONST, _RESTRICT, _FUNC, _FUNC_PROTO, _VAR, _DATASEC = 9, 10, 11, 12, 13, 14, 15
_FLOAT, _DECL_TAG, _TYPE_TAG, _ENUM64 = 16, 17, 18, 19

_NOT_EMITTED, _EMITTING, _EMITTED = 0, 1, 2

_MODS = frozenset({_VOLATILE, _CONST, _RESTRICT, _TYPE_TAG})
_CHAIN_NEXT = frozenset({_PTR, _VOLATILE, _CONST, _RESTRICT, _FUNC_PROTO, _TYPE_TAG})
_NOTHING_TO_DECLARE = frozenset({_FUNC, _VAR, _DATASEC, _DECL_TAG})
_DECLARABLE_MASK = bytes(k not in _NOTHING_TO_DECLARE for k in range(256))


def _kind_mask(*kinds: int) -> bytes:
    return bytes(k in kinds for k in range(256))


# Reference words of records with a fixed number of them: the type word, an array's element and index.
_REF_WORDS = ((_kind_mask(_VOLATILE, _CONST, _RESTRICT, _PTR, _TYPEDEF, _VAR, _DECL_TAG, _TYPE_TAG), (2,)),
              (_kind_mask(_ARRAY), (3, 4)))
_MAX_RESOLVE_DEPTH = 32
_MAX_PADDING_BITS = 8 << 20  # 1 MiB: real structs have cache-line or page-sized gaps at most
_SENTINEL = "\x01"

# GCC's internal ARM SIMD base types have no C definition; alias them to standard types.
_MISSING_BASE_TYPES = {"__Poly8_t": "unsigned char", "__Poly16_t": "unsigned short",
                       "__Poly64_t": "unsigned long long", "__Poly128_t": "unsigned __int128"}

HEADER = ("#ifndef __VMLINUX_H__\n#define __VMLINUX_H__\n\n"
          "#ifndef BPF_NO_PRESERVE_ACCESS_INDEX\n"
          "#pragma clang attribute push (__attribute__((preserve_access_index)), apply_to = record)\n"
          "#endif\n\n")
FOOTER = ("#ifndef BPF_NO_PRESERVE_ACCESS_INDEX\n#pragma clang attribute pop\n#endif\n\n"
          "#endif /* __VMLINUX_H__ */\n")


def _roundup(x: int, y: int) -> int:
    return (x + y - 1) // y * y if y else x


def _pfx(lvl: int) -> str:
    return "\t" * min(lvl, 13)


def _take(seq: Any, keys: Any) -> tuple:
    """``tuple(seq[k] for k in keys)`` in one C loop."""
    if len(keys) > 1:
        return itemgetter(*keys)(seq)
    return tuple(seq[k] for k in keys)


class _Members:
    """The members of every struct and union, as one flat array of (name, type, offset) words.

    ``span[id]`` is the (start, stop) member indexes of that type; ``words[j::3]`` is the
    j-th word of every member, so whole-BTF passes (names, sizes, offsets) run as C loops.
    """

    __slots__ = ("span", "words")

    def __init__(self, dumper: "CDumper"):
        w = dumper.w
        mask = dumper.kind.translate(_kind_mask(_STRUCT, _UNION))
        flat = self.words = array("I")
        extend = flat.extend
        span = self.span = {}
        start = 0
        for tid, o in zip(compress(count(), mask), compress(dumper.offs, mask)):
            vlen = w[o + 1] & 0xFFFF
            extend(w[o + 3:o + 3 + 3 * vlen])
            span[tid] = (start, start + vlen)
            start += vlen


class _Computed(dict):
    """key -> value, computed on first lookup, so ``map(d.__getitem__, ids)`` stays a C loop once warm."""

    __slots__ = ("compute",)

    def __init__(self, compute: Callable[[int], Any]):
        super().__init__()
        self.compute = compute

    def __missing__(self, key: int) -> Any:
        value = self[key] = self.compute(key)
        return value


class CDumper:
    """One pass of BTF -> C: ``dump(ids)`` emits the types and whatever they depend on, once each."""

    def __init__(self, btf: "BTF"):
        self.btf = btf
        words, offs = btf._flat()
        self.w = words
        self.offs = offs
        self.strings = btf._strings
        self.kind = btf._flat_kinds()
        n = self.n = len(offs)
        self.done = {0}  # ordered: nothing more to queue for it
        self.active: set[int] = set()  # structs being ordered (a cycle when met again by value)
        self.emit_state = bytearray(n)
        self.fwd_emitted = bytearray(n)
        self.settled = {0}  # emitted or forward-declared: emitting it again does nothing
        self.emit_state[0] = _EMITTED
        self.out: list[str] = []
        self.names: dict[int, str] = {}  # resolved (deduplicated) names
        self.type_names: dict[str, int] = {}
        self.ident_names: dict[str, int] = {}
        self.ptr_sz = btf.pointer_size
        self._referenced: set[int] | None = None
        self._align = _Computed(self._compute_align)
        self._size = _Computed(self._compute_size)
        self._through = _Computed(self._pass_through)  # id -> what emit_type forwards it to
        # Member declarations: the text before and after the member name, per member type;
        # types whose declaration defines something inline get none (it differs per use).
        self._before: dict[int, str] = {}
        self._after: dict[int, str] = {}
        self._after_semi: dict[int, str] = {}
        self._no_template: set[int] = set()
        self._inline_defs = False
        self._anon_decl: dict[int, str | None] = {}  # declarations without a name (parameters)
        # Whole-BTF tables (dump_all): every struct's members, and what struct_def needs of
        # them worked out up front (_plan_layouts).
        self._members: _Members | None = None
        self._member_names: tuple[str, ...] = ()
        self._member_types: Any = ()
        self._layout: dict[int, tuple[int, int]] = {}
        self._packed: set[int] = set()
        self._pads: dict[int, list[tuple[int, int, int, int]]] = {}

    def dump(self, type_ids: Iterable[int]) -> None:
        """Order, then emit, ``type_ids`` and what they need into ``self.out``."""
        self.emit_queue(self.order_types(type_ids))

    def dump_all(self) -> None:
        """Every type, as bpftool dumps a whole file."""
        self.btf._all_strings()  # nearly every name gets read: one split beats 50k lookups one by one
        self._members = _Members(self)
        # Functions, variables, sections and decl tags declare nothing and nothing orders through them.
        queue = self.order_types(compress(range(self.n), self.kind.translate(_DECLARABLE_MASK)))
        self._plan_layouts()
        self.emit_queue(queue)

    def _plan_layouts(self) -> None:
        """What struct_def needs of every plain struct and union, worked out for all members at once.

        Plain: with members, none a bitfield, each with a size and an alignment.  For those,
        ``_layout[id]`` is the span of their members, ``_packed`` holds libbpf's packed verdicts
        and ``_pads[id]`` the gaps that need padding members, as (member index, from bit, to
        bit, alignment); a gap the compiler leaves by itself (most are) needs none.  Arithmetic per member runs
        as C loops over the flat member arrays; Python loops only visit structs and gaps.
        The rest take the member-by-member path (which also reports impossible gaps).
        """
        members = self._members
        assert members is not None
        words = members.words
        types, moffs = words[1::3], words[2::3]
        self._member_names = _take(self.strings, words[0::3])
        self._member_types = types
        sizes = _take(self._size, types)
        aligns = _take(self._align, types)
        w, offs, kinds = self.w, self.offs, self.kind
        ids = list(members.span)
        spans = list(members.span.values())
        struct_sizes = _take(w, [offs[t] + 2 for t in ids])
        is_struct = [kinds[t] == _STRUCT for t in ids]
        owner = list(chain.from_iterable(map(repeat, range(len(ids)), [b - a for a, b in spans])))  # member -> struct
        special = {i for i, (t, (a, b)) in enumerate(zip(ids, spans))
                   if a == b or (w[offs[t] + 1] >> 31 and max(moffs[a:b]) >> 24)}  # no members, or bitfields
        if types and (min(aligns) <= 0 or min(sizes) < 0):
            special.update(owner[j] for j, (align, size) in enumerate(zip(aligns, sizes)) if align <= 0 or size < 0)
            aligns = tuple(a if a > 0 else 1 for a in aligns)  # only the special structs had others

        # libbpf's packed verdict (structs only): a misaligned member, or a size that is not
        # a multiple of the largest member alignment
        misaligned = set(map(owner.__getitem__, compress(count(), map(mod, moffs, map(mul, aligns, repeat(8))))))
        packed = {i for i, (a, b) in enumerate(spans)
                  if is_struct[i] and (i in misaligned or struct_sizes[i] % max(aligns[a:b], default=1))}

        # gaps: a member starting after the end of the previous one (or of nothing), and the tail
        ends = list(map(add, moffs, map(mul, sizes, repeat(8))))
        prev_ends = [0, *ends]
        for a, _ in spans:
            prev_ends[a] = 0
        gaps = [(owner[j], j, prev_ends[j], moffs[j]) for j in compress(count(), map(lt, prev_ends, moffs))]
        gaps += [(i, b, ends[b - 1], struct_sizes[i] * 8) for i, (a, b) in enumerate(spans)
                 if is_struct[i] and a < b and ends[b - 1] < struct_sizes[i] * 8]
        pads: dict[int, list[tuple[int, int, int, int]]] = {}
        check: list[str] = []
        for i, j, cur, nxt in gaps:
            if i in special:
                continue
            if i in packed:
                align = 1
            else:
                align = aligns[j] if j < spans[i][1] else self.align_of(ids[i])
            if -(-cur // (8 * align)) * 8 * align == nxt and align in (1, 2, 4, 8):
                continue  # alignment alone closes the gap: _bit_padding would write nothing
            try:
                self._bit_padding(check, cur, nxt, align, False, "")
            except BTFError:
                special.add(i)  # reported if and when the struct is emitted
                continue
            if check:
                pads.setdefault(i, []).append((j - spans[i][0], cur, nxt, align))
                check.clear()
        self._layout = dict(zip(ids, spans))
        for i in special:
            del self._layout[ids[i]]
        self._packed = {ids[i] for i in packed}
        self._pads = {ids[i]: gaps for i, gaps in pads.items()}

    def emit_queue(self, queue: list[int]) -> None:
        emit, emitted = self.emit_type, self.emit_state
        for qid in queue:
            if emitted[qid] != _EMITTED:
                emit(qid, 0)

    # --- helpers ---------------------------------------------------------------

    def _resolve_name(self, tid: int, counts: dict[str, int]) -> str:
        cached = self.names.get(tid)
        if cached is not None:
            return cached
        w, o = self.w, self.offs[tid]
        if not w[o]:
            return ""
        orig = self.strings[w[o]]
        kind = self.kind[tid]
        if kind == _FWD or (kind == _ENUM and not w[o + 1] & 0xFFFF):
            self.names[tid] = orig
            return orig
        count = counts.get(orig, 0) + 1
        counts[orig] = count
        name = orig if count == 1 else f"{orig}___{count}"
        self.names[tid] = name
        return name

    def type_name(self, tid: int) -> str:
        name = self.names.get(tid)
        return self._resolve_name(tid, self.type_names) if name is None else name

    def ident_name(self, tid: int) -> str:
        name = self.names.get(tid)
        return self._resolve_name(tid, self.ident_names) if name is None else name

    def referenced(self, tid: int) -> bool:
        """Whether any type refers to ``tid`` (decides if an anonymous enum is a top-level declaration).

        libbpf's btf_dump_mark_referenced: the type word of the one-reference kinds, array
        element and index types, members, parameters (a return type does not count) and
        section variables.  Functions are left out: in valid BTF they refer to prototypes,
        which is not what this is asked about.
        """
        refs = self._referenced
        if refs is None:
            w, kinds, offs = self.w, self.kind, self.offs
            refs = set()
            for mask, words in _REF_WORDS:
                group = list(compress(offs, kinds.translate(mask)))
                for word in words:
                    refs.update(_take(w, list(map(add, group, repeat(word)))))
            members = self._members or _Members(self)
            refs.update(members.words[1::3])
            for o in compress(offs, kinds.translate(_kind_mask(_FUNC_PROTO))):
                refs.update(w[o + 4:o + 3 + 2 * (w[o + 1] & 0xFFFF):2])
            for o in compress(offs, kinds.translate(_kind_mask(_DATASEC))):
                refs.update(w[o + 3:o + 3 + 3 * (w[o + 1] & 0xFFFF):3])
            self._referenced = refs
        return tid in refs

    def align_of(self, tid: int) -> int:
        """libbpf's btf__align_of: 0 for kinds without alignment, 1 for packed structs."""
        return self._align[tid]

    def _compute_align(self, tid: int) -> int:
        w, o, k = self.w, self.offs[tid], self.kind[tid]
        if k in (_INT, _ENUM, _ENUM64, _FLOAT):
            return min(self.ptr_sz, w[o + 2])
        if k == _PTR:
            return self.ptr_sz
        if k in (_TYPEDEF, _VOLATILE, _CONST, _RESTRICT, _TYPE_TAG):
            return self._align[w[o + 2]]
        if k == _ARRAY:
            return self._align[w[o + 3]]
        if k in (_STRUCT, _UNION):
            return self._composite_align(tid)
        return 0

    def _composite_align(self, tid: int) -> int:
        w, o = self.w, self.offs[tid]
        info = w[o + 1]
        vlen = info & 0xFFFF
        kflag = info >> 31
        mtypes = w[o + 4:o + 4 + 3 * vlen:3]
        moffs = w[o + 5:o + 5 + 3 * vlen:3]
        aligns = list(map(self._align.__getitem__, mtypes))
        if aligns and not kflag and min(aligns) > 0:
            if any(map(mod, moffs, map(mul, aligns, repeat(8)))):
                return 1  # a misaligned member: the struct must be packed
            best = max(aligns)
        else:  # member by member: the first member without alignment or misaligned decides
            best = 1
            for align, off in zip(aligns, moffs):
                if align <= 0:
                    return align
                if align > best:
                    best = align
                if not (kflag and off >> 24) and off % (8 * align):
                    return 1
        return 1 if w[o + 2] % best else best

    def resolve_size(self, tid: int) -> int:
        """libbpf's btf__resolve_size, negative when the type has no size."""
        return self._size[tid]

    def _compute_size(self, tid: int) -> int:
        w, offs, kinds = self.w, self.offs, self.kind
        cur = tid
        nelems = 1
        size = -1
        for _ in range(_MAX_RESOLVE_DEPTH):
            if cur == 0:
                break
            k = kinds[cur]
            o = offs[cur]
            if k in (_INT, _STRUCT, _UNION, _ENUM, _ENUM64, _DATASEC, _FLOAT):
                size = w[o + 2]
                break
            if k == _PTR:
                size = self.ptr_sz
                break
            if k in (_TYPEDEF, _VOLATILE, _CONST, _RESTRICT, _VAR, _DECL_TAG, _TYPE_TAG):
                cur = w[o + 2]
            elif k == _ARRAY:
                if nelems and w[o + 5] > 0xFFFFFFFF // nelems:
                    size = -1
                    break
                nelems *= w[o + 5]
                cur = w[o + 3]
            else:
                break
        if size >= 0:
            if nelems and size > 0xFFFFFFFF // nelems:
                size = -1
            else:
                size *= nelems
        return size

    # --- ordering ----------------------------------------------------------------

    def order_types(self, type_ids: Iterable[int]) -> list[int]:
        """libbpf's btf_dump_order_type for each id in turn: the named types to define, in order.

        ``order(tid)`` returns 1 when ``tid`` must be fully defined before its user, 0 when a
        forward declaration does; callers skip ids already ordered (``done``), for which
        libbpf's walk answers 1 at once.  Modifiers and arrays become done once their target
        is; prototypes never do (they only pass the walk on), but one whose types are all
        done has nothing left to order.
        """
        queue: list[int] = []
        push = queue.append
        w, offs, kinds = self.w, self.offs, self.kind
        done, active = self.done, self.active
        mark = done.add
        referenced = self.referenced
        cycle_error = self._cycle_error

        def order(tid: int, through_ptr: int) -> int:
            k = kinds[tid]
            o = offs[tid]
            if k == _PTR:
                t = w[o + 2]
                strong = t in done or order(t, 1)
                mark(tid)
                return strong
            if k == _FUNC_PROTO:
                strong = 0
                for t in w[o + 2:o + 3 + 2 * (w[o + 1] & 0xFFFF):2]:  # return type, then parameters
                    if t in done or order(t, through_ptr):
                        strong = 1
                return strong
            if k == _STRUCT or k == _UNION:
                if through_ptr and w[o]:
                    return 0  # a forward declaration will do
                if tid in active:
                    raise cycle_error(tid)
                vlen = w[o + 1] & 0xFFFF
                if vlen:
                    active.add(tid)
                    for t in w[o + 4:o + 4 + 3 * vlen:3]:
                        if t not in done:
                            order(t, 0)
                    active.discard(tid)
                if w[o]:
                    push(tid)
                mark(tid)
                return 1
            if k == _TYPEDEF:
                t = w[o + 2]
                strong = t in done or order(t, through_ptr)
                if through_ptr and not strong:
                    return 0
                push(tid)
                mark(tid)
                return 1
            if k in _MODS or k == _ARRAY:
                if k == _ARRAY:
                    t = w[o + 3]
                    through_ptr = 0
                else:
                    t = w[o + 2]
                strong = t in done or order(t, through_ptr)
                if t in done:
                    mark(tid)
                return strong
            if k == _ENUM or k == _ENUM64 or k == _FWD:
                if w[o] or not referenced(tid):
                    push(tid)
                mark(tid)
                return 1
            # INT and FLOAT need no declaration; FUNC, VAR, DATASEC, DECL_TAG declare nothing
            mark(tid)
            return 0

        is_superset = done.issuperset
        for tid in filterfalse(done.__contains__, type_ids):
            if kinds[tid] == _FUNC_PROTO:
                o = offs[tid]
                if is_superset(w[o + 2:o + 3 + 2 * (w[o + 1] & 0xFFFF):2]):
                    continue
            order(tid, 0)
        return queue

    def _cycle_error(self, tid: int) -> BTFError:
        return BTFError(f"{self.btf.name}: type {self.btf._describe(tid)} contains itself by value "
                        f"(a cycle no C declaration order can satisfy)", section="BTF types",
                        offset=self.btf._byte_offset(tid))

    # --- emitting -------------------------------------------------------------------

    def emit_type(self, tid: int, cont_id: int) -> None:
        """libbpf's btf_dump_emit_type: ``tid``'s definition and, first, what it needs.

        Callers may skip ids in ``settled`` and go straight to ``_through[id]``: emitting
        those does nothing, and pointers, modifiers and arrays only pass emitting on.
        """
        state = self.emit_state[tid]
        if state == _EMITTED:
            return
        k = self.kind[tid]
        w, o = self.w, self.offs[tid]
        out = self.out
        if state == _EMITTING:
            if self.fwd_emitted[tid]:
                return
            if k == _STRUCT or k == _UNION:
                if tid == cont_id or not w[o]:
                    return
                out.append(self.struct_fwd(tid))
                out.append(";\n\n")
            elif k == _TYPEDEF:
                if not self._blacklisted(tid):
                    out.append(self.typedef_def(tid, 0))
                    out.append(";\n\n")
            else:
                return
            self.fwd_emitted[tid] = 1
            self.settled.add(tid)
            return

        if k == _STRUCT or k == _UNION:
            self.emit_state[tid] = _EMITTING
            named = w[o] != 0
            if cont_id == 0 or not named:
                vlen = w[o + 1] & 0xFFFF
                if vlen:
                    new_cont = tid if named else cont_id
                    emit = self.emit_type
                    for mt in filterfalse(self.settled.__contains__,
                                          map(self._through.__getitem__, w[o + 4:o + 4 + 3 * vlen:3])):
                        emit(mt, new_cont)
            elif not self.fwd_emitted[tid] and tid != cont_id:
                out.append(self.struct_fwd(tid))
                out.append(";\n\n")
                self.fwd_emitted[tid] = 1
                self.settled.add(tid)
            if cont_id == 0:
                out.append(self.struct_def(tid, 0))
                out.append(";\n\n")
                self.emit_state[tid] = _EMITTED
                self.settled.add(tid)
            else:
                self.emit_state[tid] = _NOT_EMITTED
        elif k == _TYPEDEF:
            self.emit_state[tid] = _EMITTING
            target = self._through[w[o + 2]]
            if target not in self.settled:
                self.emit_type(target, tid)
            if not self.fwd_emitted[tid] and not self._blacklisted(tid):
                out.append(self.typedef_def(tid, 0))
                out.append(";\n\n")
            self.emit_state[tid] = _EMITTED
            self.settled.add(tid)
        elif k == _FUNC_PROTO:
            settled = self.settled
            if tid in settled:
                return
            through = self._through.__getitem__
            refs = w[o + 2:o + 3 + 2 * (w[o + 1] & 0xFFFF):2]  # return type, then parameters
            emit = self.emit_type
            for ref in filterfalse(settled.__contains__, map(through, refs)):
                emit(ref, cont_id)
            # every type it names is emitted or forward-declared (states only move forward):
            # emitting it again could do nothing
            if settled.issuperset(map(through, refs)):
                settled.add(tid)
        elif k == _ENUM or k == _ENUM64:
            if cont_id == 0:
                out.append(self.enum_def(tid, 0))
                out.append(";\n\n")
            self.emit_state[tid] = _EMITTED
            self.settled.add(tid)
        elif k == _INT:
            name = self.type_name(tid)
            alias = _MISSING_BASE_TYPES.get(name)
            if alias:
                out.append(f"typedef {alias} {name};\n\n")
            self.emit_state[tid] = _EMITTED
            self.settled.add(tid)
        elif k == _FWD:
            out.append(self.fwd_def(tid))
            out.append(";\n\n")
            self.emit_state[tid] = _EMITTED
            self.settled.add(tid)
        elif k == _PTR or k in _MODS or k == _ARRAY:
            target = self._through[tid]
            if target not in self.settled:
                self.emit_type(target, cont_id)
        else:  # FLOAT, FUNC, VAR, DATASEC, DECL_TAG: nothing to emit, ever
            self.settled.add(tid)

    def _pass_through(self, tid: int) -> int:
        """The type emit_type really works on: pointers, modifiers and arrays only forward to their target."""
        kinds, w, offs = self.kind, self.w, self.offs
        for _ in range(4096):
            k = kinds[tid]
            if k == _PTR or k in _MODS:
                tid = w[offs[tid] + 2]
            elif k == _ARRAY:
                tid = w[offs[tid] + 3]
            else:
                break
        return tid

    def _blacklisted(self, tid: int) -> bool:
        # __builtin_va_list is a compiler built-in; redefining it breaks compilation.
        off = self.w[self.offs[tid]]
        return bool(off) and self.strings[off] == "__builtin_va_list"

    # --- definitions -----------------------------------------------------------------

    def struct_fwd(self, tid: int) -> str:
        keyword = "struct" if self.kind[tid] == _STRUCT else "union"
        name = self.type_name(tid)
        return f"{keyword} {name}" if self.w[self.offs[tid]] else f"{keyword}{name}"

    def fwd_def(self, tid: int) -> str:
        return ("union " if self.w[self.offs[tid] + 1] >> 31 else "struct ") + self.type_name(tid)

    def typedef_def(self, tid: int, lvl: int) -> str:
        name = self.ident_name(tid)
        target = self.w[self.offs[tid] + 2]
        if target == 0 and name == "__gnuc_va_list":
            return "typedef __builtin_va_list __gnuc_va_list"
        return "typedef " + self.cached_decl(target, name, lvl)

    def struct_def(self, tid: int, lvl: int) -> str:
        w, o = self.w, self.offs[tid]
        layout = self._layout.get(tid)
        keyword = "struct" if self.kind[tid] == _STRUCT else "union"
        name = self.type_name(tid)
        head = f"{keyword} {name} {{" if w[o] else f"{keyword}{name} {{"
        if layout is None:
            return self._struct_def_general(tid, lvl, head)
        first, stop = layout
        pads = self._pads.get(tid)
        lines = self._member_lines(self._member_names[first:stop], self._member_types[first:stop], lvl + 1)
        if pads:
            inner = "\n" + _pfx(lvl + 1)
            for i, cur, nxt, align in pads:
                pad: list[str] = []
                self._bit_padding(pad, cur, nxt, align, False, inner)
                if i < stop - first:
                    lines[i] = "".join(pad) + lines[i]
                else:
                    lines.extend(pad)
        if tid in self._packed:
            return f"{head}{''.join(lines)}\n{_pfx(lvl)}}} __attribute__((packed))"
        return f"{head}{''.join(lines)}\n{_pfx(lvl)}}}"

    def _struct_def_general(self, tid: int, lvl: int, head: str) -> str:
        """A struct or union not planned by _plan_layouts: per-struct checks, then member by member
        when there are bitfields, gaps or members without a size or an alignment."""
        w, o = self.w, self.offs[tid]
        info = w[o + 1]
        vlen = info & 0xFFFF
        size = w[o + 2]
        is_struct = self.kind[tid] == _STRUCT
        words = w[o + 3:o + 3 + 3 * vlen]
        names = _take(self.strings, words[0::3])
        types = words[1::3]
        raw_offs = words[2::3]
        aligns = _take(self._align, types)
        sizes = _take(self._size, types)
        bitfields = bool(info >> 31) and vlen and max(raw_offs) >> 24  # kind_flag: bitfield size in the top byte
        if not bitfields and vlen and min(aligns) > 0 and min(sizes) >= 0:
            ends = list(map(add, raw_offs, map(mul, sizes, repeat(8))))
            if not any(map(lt, chain((0,), ends), raw_offs)) and not (is_struct and ends[-1] < size * 8):
                packed = is_struct and bool(any(map(mod, raw_offs, map(mul, aligns, repeat(8)))) or size % max(aligns))
                lines = self._member_lines(names, types, lvl + 1)
                tail = f"\n{_pfx(lvl)}}} __attribute__((packed))" if packed else f"\n{_pfx(lvl)}}}"
                return head + "".join(lines) + tail
        return self._struct_def_padded(tid, lvl, head, names, types, raw_offs, aligns, sizes, bool(bitfields))

    def _member_lines(self, names: Any, types: Any, lvl: int) -> list[str]:
        """The member lines of a struct without bitfields, one per member."""
        inner = "\n" + _pfx(lvl)
        if "" not in names:
            before, after = self._before, self._after_semi
            try:
                return [f"{inner}{before[t]}{name}{after[t]}" for t, name in zip(types, names)]
            except KeyError:
                pass  # some declarations are new or define something inline
        # made in member order: the order in which their type names get resolved
        cached_decl = self.cached_decl
        return [f"{inner}{cached_decl(t, name, lvl)};" for t, name in zip(types, names)]

    def _struct_def_padded(self, tid: int, lvl: int, head: str, names: Any, types: Any, raw: Any, aligns: Any,
                           sizes: Any, bitfields: bool) -> str:
        """A struct member by member: padding for gaps, bitfields, libbpf's packed rules in full."""
        w, o = self.w, self.offs[tid]
        info = w[o + 1]
        vlen = info & 0xFFFF
        size = w[o + 2]
        is_struct = self.kind[tid] == _STRUCT
        if bitfields:
            bit_sizes = [r >> 24 for r in raw]
            bit_offs = [r & 0xFFFFFF for r in raw]
            misaligned = any(a and not bits and off % (8 * a) for a, off, bits in zip(aligns, bit_offs, bit_sizes))
        else:
            bit_sizes = [0] * vlen
            bit_offs = raw
            misaligned = any(a and off % (8 * a) for a, off in zip(aligns, bit_offs))
        best = max(aligns, default=1)
        odd_size = size % best if best > 0 else False
        packed = is_struct and (misaligned or bool(odd_size))
        parts = [head]
        inner = "\n" + _pfx(lvl + 1)
        off = 0
        prev_bitfield = False
        append = parts.append
        for name, mtype, m_off, m_sz, align, msize in zip(names, types, bit_offs, bit_sizes, aligns, sizes):
            if off < m_off:
                self._bit_padding(parts, off, m_off, 1 if packed else align, prev_bitfield and m_sz != 0, inner)
            decl = self.cached_decl(mtype, name, lvl + 1)
            if m_sz:
                append(f"{inner}{decl}: {m_sz};")
                off = m_off + m_sz
                prev_bitfield = True
            else:
                append(f"{inner}{decl};")
                off = m_off + msize * 8 if msize > 0 else m_off
                prev_bitfield = False
        if is_struct and off < size * 8:
            self._bit_padding(parts, off, size * 8, self.align_of(tid), False, inner)
        # `struct empty {}` stays on one line
        parts.append(f"\n{_pfx(lvl)}}}" if vlen or size else "}")
        if packed:
            parts.append(" __attribute__((packed))")
        return "".join(parts)

    def _bit_padding(self, parts: list[str], cur: int, nxt: int, next_align: int, in_bitfield: bool,
                     prefix: str) -> None:
        """Unnamed bitfields that make the compiler leave the gap BTF shows before offset ``nxt``.

        The widest of long/int/short/char whose alignment lands at or before ``nxt``
        does the bulk; an explicit `<type>: 0` is needed when natural alignment alone
        would not land where BTF says.
        """
        if nxt - cur > _MAX_PADDING_BITS:
            raise BTFError(f"{self.btf.name}: a struct has a gap of {(nxt - cur) // 8} bytes between members; "
                           f"refusing to write that many padding fields (is its size or a member offset corrupt?)")
        pads = (("long", self.ptr_sz * 8), ("int", 32), ("short", 16), ("char", 8))
        pad_type, pad_bits = "char", 8
        new_off = cur
        for pad_type, pad_bits in pads:
            new_off = _roundup(cur, pad_bits)
            if new_off <= nxt:
                break
        if cur < new_off <= nxt:
            if (in_bitfield
                    or (new_off == nxt and _roundup(cur, next_align * 8) != new_off)
                    or (new_off != nxt and nxt - new_off <= new_off - cur)):
                parts.append(f"{prefix}{pad_type}: {new_off - cur if in_bitfield else 0};")
            cur = new_off
        while cur != nxt:
            bits = min(nxt - cur, pad_bits)
            if bits == pad_bits:
                parts.append(f"{prefix}{pad_type}: {pad_bits};")
                cur += bits
                continue
            for pad_type, pad_bits in reversed(pads):
                if pad_bits < bits:
                    continue
                parts.append(f"{prefix}{pad_type}: {bits};")
                cur += bits
                break

    def enum_def(self, tid: int, lvl: int) -> str:
        w, o = self.w, self.offs[tid]
        info = w[o + 1]
        vlen = info & 0xFFFF
        name = self.type_name(tid)
        head = f"enum {name}" if w[o] else f"enum{name}"
        if not vlen:
            return head
        signed = info >> 31
        is64 = self.kind[tid] == _ENUM64
        step = 3 if is64 else 2
        names = list(_take(self.strings, w[o + 3:o + 3 + step * vlen:step]))
        values: Any = w[o + 4:o + 3 + step * vlen:step]
        idents = self.ident_names
        if idents.keys().isdisjoint(names) and len(set(names)) == vlen:
            idents.update(zip(names, repeat(1)))
        else:  # enumerators named like earlier identifiers get ___N suffixes
            for i, vname in enumerate(names):
                count = idents.get(vname, 0) + 1
                idents[vname] = count
                if count > 1:
                    names[i] = f"{vname}___{count}"
        indent = "\n" + _pfx(lvl + 1)
        if is64:
            values = map(add, values, map((1 << 32).__mul__, w[o + 5:o + 3 + 3 * vlen:3]))
            if signed:
                values = [v - (1 << 64) if v >> 63 else v for v in values]
                suffix = "LL,"
            else:
                suffix = "ULL,"
        else:
            if signed and max(values) >> 31:
                values = [v - (1 << 32) if v >> 31 else v for v in values]
            suffix = ","
        body = "".join([f"{indent}{name} = {value}{suffix}" for name, value in zip(names, values)])
        return f"{head} {{{body}\n{_pfx(lvl)}}}"

    # --- declarations: the type of a member, parameter or typedef ----------------------

    def cached_decl(self, tid: int, fname: str, lvl: int) -> str:
        """``decl`` reusing the text of an earlier declaration of the same type when that is safe."""
        if fname:
            before = self._before.get(tid)
            if before is not None:
                return before + fname + self._after[tid]
            if tid in self._no_template:
                return self.decl(tid, fname, lvl)
            return self._first_decl(tid, fname, lvl)
        text = self._anon_decl.get(tid)
        if text is not None:
            return text
        if tid in self._anon_decl:
            return self.decl(tid, "", lvl)
        saved = self._inline_defs
        self._inline_defs = False
        text = self.decl(tid, "", lvl)
        self._anon_decl[tid] = None if self._inline_defs else text
        self._inline_defs = saved or self._inline_defs
        return text

    def _first_decl(self, tid: int, fname: str, lvl: int) -> str:
        """Declare ``fname`` and remember the text around the name when it can be reused.

        Reusable means no inline definition (anonymous struct/union/enum) took part:
        those depend on the indent level and renumber duplicate enumerators every time.
        """
        simple = self._simple_template(tid)
        if simple is not None:
            before, after = simple
            text = before + fname + after
        else:
            saved = self._inline_defs
            self._inline_defs = False
            pointer = self._function_pointer(tid, lvl)
            if pointer is not None:
                before, after = pointer
                text = before + fname + after
            else:
                text = self.decl(tid, _SENTINEL, lvl)
                before, _, after = text.partition(_SENTINEL)
                text = text.replace(_SENTINEL, fname)
            inline = self._inline_defs
            self._inline_defs = saved or inline
            if inline or _SENTINEL in after:
                self._no_template.add(tid)
                return text
        self._before[tid] = before
        self._after[tid] = after
        self._after_semi[tid] = after + ";"
        return text

    def _terminal(self, tid: int) -> str | None:
        """How a named terminal type is written in a declaration, or None when it needs the full walk."""
        if tid == 0:
            return "void"
        k = self.kind[tid]
        name_off = self.w[self.offs[tid]]
        if not name_off:
            return None
        if k == _INT or k == _FLOAT:
            return self.strings[name_off]
        if k == _TYPEDEF:
            return self.ident_name(tid)
        if k == _STRUCT or k == _UNION:
            return self.struct_fwd(tid)
        if k == _ENUM or k == _ENUM64:
            return "enum " + self.type_name(tid)
        if k == _FWD:
            return self.fwd_def(tid)
        return None

    def _simple_template(self, tid: int) -> tuple[str, str] | None:
        """The common declaration shapes (T x, T *x, T **x, T x[N]) without the general walk;
        the text and the name resolutions are exactly the general walk's."""
        k = self.kind[tid]
        if k == _PTR:
            target = self.w[self.offs[tid] + 2]
            stars = "*"
            if target and self.kind[target] == _PTR:
                target = self.w[self.offs[target] + 2]
                stars = "**"
            base = self._terminal(target) if not target or self.kind[target] != _PTR else None
            return (f"{base} {stars}", "") if base is not None else None
        if k == _ARRAY:
            o = self.offs[tid]
            base = self._terminal(self.w[o + 3]) if self.w[o + 3] else None
            return (base + " ", f"[{self.w[o + 5]}]") if base is not None else None
        base = self._terminal(tid) if tid else None
        return (base + " ", "") if base is not None else None

    def _function_pointer(self, tid: int, lvl: int) -> tuple[str, str] | None:
        """``R (*x)(P1, P2)`` (a third of vmlinux's member types) without the general walk, when R
        is a simple shape; the text and the order of name resolutions are the general walk's."""
        w, offs, kinds = self.w, self.offs, self.kind
        if kinds[tid] != _PTR:
            return None
        proto = w[offs[tid] + 2]
        if not proto or kinds[proto] != _FUNC_PROTO:
            return None
        o = offs[proto]
        ret = self._simple_template(w[o + 2])
        if ret is None or ret[1]:
            return None
        before = ret[0]
        if before.endswith(" "):  # `int ` before a name is `int` without one; `char *` stays
            before = before[:-1]
        return f"{before} (*", f")({self._params(o, lvl)})"

    def _params(self, o: int, lvl: int) -> str:
        """The parameter list of the prototype at word ``o``, without the parentheses."""
        w = self.w
        vlen = w[o + 1] & 0xFFFF
        if vlen == 0 or (vlen == 1 and w[o + 4] == 0):
            return "void"
        params = []
        for i in range(vlen):
            q = o + 3 + 2 * i
            if i == vlen - 1 and w[q + 1] == 0:
                params.append("...")
                break
            params.append(self.cached_decl(w[q + 1], self.strings[w[q]], lvl))
        return ", ".join(params)

    def decl(self, tid: int, fname: str, lvl: int) -> str:
        """C declaration of ``fname`` with type ``tid`` (the stack walk of libbpf's emit_type_decl)."""
        stack = []
        kinds, w, offs = self.kind, self.w, self.offs
        while True:
            stack.append(tid)
            if tid == 0:
                break
            k = kinds[tid]
            if k in _CHAIN_NEXT:
                tid = w[offs[tid] + 2]
            elif k == _ARRAY:
                tid = w[offs[tid] + 3]
            else:
                break  # a terminal type, or an unexpected kind the chain reports by stopping
            if len(stack) > 4096:
                raise BTFError(f"{self.btf.name}: declaration of type [{stack[0]}] does not end "
                               f"(a loop of pointers/modifiers through type {self.btf._describe(tid)})",
                               section="BTF types", offset=self.btf._byte_offset(tid))
        return self._chain(stack, fname, lvl)

    def _mods(self, stack: list[int]) -> str:
        text = ""
        kinds = self.kind
        while stack:
            k = kinds[stack[-1]]
            if k == _VOLATILE:
                text += "volatile "
            elif k == _CONST:
                text += "const "
            elif k == _RESTRICT:
                text += "restrict "
            else:
                break
            stack.pop()
        return text

    def _drop_mods(self, stack: list[int]) -> None:
        kinds = self.kind
        while stack and kinds[stack[-1]] in _MODS:
            stack.pop()

    def _chain(self, stack: list[int], fname: str, lvl: int) -> str:
        parts: list[str] = []
        last_was_ptr = True
        kinds, w, offs = self.kind, self.w, self.offs
        while stack:
            tid = stack.pop()
            if tid == 0:
                parts.append(self._mods(stack))
                parts.append("void")
                last_was_ptr = False
                continue
            k = kinds[tid]
            o = offs[tid]
            if k == _PTR:
                parts.append("*" if last_was_ptr else " *")
                last_was_ptr = True
                continue
            if k in (_INT, _FLOAT):
                parts.append(self._mods(stack))
                parts.append(self.strings[w[o]])
            elif k == _TYPEDEF:
                parts.append(self._mods(stack))
                parts.append(self.ident_name(tid))
            elif k in (_STRUCT, _UNION):
                parts.append(self._mods(stack))
                if w[o]:
                    parts.append(self.struct_fwd(tid))
                else:
                    self._inline_defs = True
                    parts.append(self.struct_def(tid, lvl))
            elif k in (_ENUM, _ENUM64):
                parts.append(self._mods(stack))
                if w[o]:
                    parts.append("enum " + self.type_name(tid))
                else:
                    self._inline_defs = True
                    parts.append(self.enum_def(tid, lvl))
            elif k == _FWD:
                parts.append(self._mods(stack))
                parts.append(self.fwd_def(tid))
            elif k == _VOLATILE:
                parts.append(" volatile")
            elif k == _CONST:
                parts.append(" const")
            elif k == _RESTRICT:
                parts.append(" restrict")
            elif k == _TYPE_TAG:
                parts.append(self._mods(stack))
                parts.append(f' __attribute__((btf_type_tag("{self.strings[w[o]]}")))')
            elif k == _ARRAY:
                self._drop_mods(stack)
                nelems = w[o + 5]
                if not stack:
                    parts.append(_name(fname, last_was_ptr))
                    parts.append(f"[{nelems}]")
                    return "".join(parts)
                multidim = kinds[stack[-1]] == _ARRAY
                if fname and not last_was_ptr:
                    parts.append(" ")
                inner = self._chain(stack, fname, lvl)
                parts.append(inner if multidim else f"({inner})")
                parts.append(f"[{nelems}]")
                return "".join(parts)
            elif k == _FUNC_PROTO:
                self._drop_mods(stack)
                if stack:
                    parts.append(f" ({self._chain(stack, fname, lvl)})")
                else:
                    parts.append(_name(fname, last_was_ptr))
                parts.append(f"({self._params(o, lvl)})")
                return "".join(parts)
            else:
                # FUNC, VAR, DATASEC, DECL_TAG cannot appear in a declaration; libbpf stops here too.
                return "".join(parts)
            last_was_ptr = False
        parts.append(_name(fname, last_was_ptr))
        return "".join(parts)


def _name(fname: str, last_was_ptr: bool) -> str:
    return " " + fname if fname and not last_was_ptr else fname


def _pieces(btf: "BTF", type_ids: list[int] | None) -> list[str]:
    """The header text in pieces: all types, or the given ids and what they need."""
    dumper = CDumper(btf)
    n = dumper.n
    if type_ids is not None:
        for tid in type_ids:
            if not 0 < tid < n:
                raise BTFError(f"{btf.name}: type id {tid} does not exist (ids go from 1 to {n - 1})")
    try:
        if type_ids is None:
            dumper.dump_all()
        else:
            dumper.dump(type_ids)
    except (RecursionError, IndexError):
        # A loop the ordering did not catch, or a dangling type id in BTF that was not validated.
        raise _explain(btf) from None
    return dumper.out


def write_c(btf: "BTF", write: Callable[[str], object], type_ids: list[int] | None = None) -> None:
    """Emit the header through ``write``: all types, or the given ids and what they need."""
    pieces = _pieces(btf, type_ids)
    write(HEADER)
    write("".join(pieces))
    write(FOOTER)


def dump_c(btf: "BTF", type_ids: list[int] | None = None) -> str:
    """The header as a string."""
    pieces = _pieces(btf, type_ids)
    pieces.insert(0, HEADER)
    pieces.append(FOOTER)
    return "".join(pieces)


def _explain(btf: "BTF") -> BTFError:
    """Turn a runaway recursion or a bad index into the broken reference or loop behind it."""
    try:
        btf.validate()
    except BTFError as exc:
        return exc
    return BTFError(f"{btf.name}: types nest too deeply to dump as C (more than Python's recursion limit)")
