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

It works on the raw records (kind, name offset and type words per id) for
speed, and caches the declaration text of each member type as the text before
and after the member name, since vmlinux repeats the same few thousand member
types over 100k times.  Broken input (dangling ids, loops) ends in a BTFError,
never a hang: the ordering walk detects cycles, padding is bounded and a
runaway recursion is explained by ``BTF.validate``.
"""

from __future__ import annotations

import io
from itertools import compress
from typing import TYPE_CHECKING, Callable

from ..errors import BTFError

if TYPE_CHECKING:
    from .btf import BTF

_INT, _PTR, _ARRAY, _STRUCT, _UNION, _ENUM, _FWD, _TYPEDEF = 1, 2, 3, 4, 5, 6, 7, 8
_VOLATILE, _CONST, _RESTRICT, _FUNC, _FUNC_PROTO, _VAR, _DATASEC = 9, 10, 11, 12, 13, 14, 15
_FLOAT, _DECL_TAG, _TYPE_TAG, _ENUM64 = 16, 17, 18, 19

_NOT_ORDERED, _ORDERING, _ORDERED = 0, 1, 2
_NOT_EMITTED, _EMITTING, _EMITTED = 0, 1, 2

_MODS = frozenset({_VOLATILE, _CONST, _RESTRICT, _TYPE_TAG})
_CHAIN_NEXT = frozenset({_PTR, _VOLATILE, _CONST, _RESTRICT, _FUNC_PROTO, _TYPE_TAG})
_SINGLE_REF = frozenset({_VOLATILE, _CONST, _RESTRICT, _PTR, _TYPEDEF, _FUNC, _VAR, _DECL_TAG, _TYPE_TAG})
_MULTI_REF = frozenset({_ARRAY, _STRUCT, _UNION, _FUNC_PROTO, _DATASEC})
_SINGLE_REF_MASK = bytes(k in _SINGLE_REF for k in range(256))
_MULTI_REF_MASK = bytes(k in _MULTI_REF for k in range(256))
_NOTHING_TO_DECLARE = frozenset({_FUNC, _VAR, _DATASEC, _DECL_TAG})
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


class CDumper:
    """One pass of BTF -> C; ``dump_type(id)`` emits a type and whatever it depends on, once."""

    def __init__(self, btf: "BTF", write: Callable[[str], object]):
        self.btf = btf
        self.write = write
        words, offs = btf._flat()
        self.w = words
        self.offs = offs
        self.strings = btf._all_strings()
        n = len(offs)
        self.n = n
        self.kind = btf._flat_kinds()
        self.order_state = bytearray(n)
        self.emit_state = bytearray(n)
        self.fwd_emitted = bytearray(n)
        self.order_state[0] = _ORDERED
        self.emit_state[0] = _EMITTED
        self.names: dict[int, str] = {}  # resolved (deduplicated) names
        self.type_names: dict[str, int] = {}
        self.ident_names: dict[str, int] = {}
        self.ptr_sz = btf.pointer_size
        self.queue: list[int] = []
        self._referenced: set[int] | None = None
        self._align: dict[int, int] = {}
        self._size: dict[int, int] = {}
        self._decl: dict[int, tuple[str, str] | None] = {}  # member type -> text before/after the name
        self._inline_defs = False
        self._through: dict[int, int] = {}  # id -> what emit_type forwards it to
        self._settled: set[int] = set()  # prototypes whose types are all emitted
        self._anon_decl: dict[int, str | None] = {}  # declarations without a name (parameters)

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
        return self._resolve_name(tid, self.type_names)

    def ident_name(self, tid: int) -> str:
        return self._resolve_name(tid, self.ident_names)

    def referenced(self, tid: int) -> bool:
        """Whether any type refers to ``tid`` (decides if an anonymous enum is a top-level declaration)."""
        refs = self._referenced
        if refs is None:
            w, kinds, offs = self.w, self.kind, self.offs
            single = compress(offs, kinds.translate(_SINGLE_REF_MASK))
            refs = {w[o + 2] for o in single}
            update = refs.update
            for o in compress(offs, kinds.translate(_MULTI_REF_MASK)):
                info = w[o + 1]
                k = (info >> 24) & 0x1F
                vlen = info & 0xFFFF
                if k == _FUNC_PROTO:
                    update(w[o + 4:o + 4 + 2 * vlen:2])
                elif k == _ARRAY:
                    update(w[o + 3:o + 5])
                elif k == _DATASEC:
                    update(w[o + 3:o + 3 + 3 * vlen:3])
                else:
                    update(w[o + 4:o + 4 + 3 * vlen:3])
            self._referenced = refs
        return tid in refs

    def align_of(self, tid: int) -> int:
        """libbpf's btf__align_of: 0 for kinds without alignment, 1 for packed structs."""
        a = self._align.get(tid)
        if a is not None:
            return a
        w, o, k = self.w, self.offs[tid], self.kind[tid]
        if k in (_INT, _ENUM, _ENUM64, _FLOAT):
            a = min(self.ptr_sz, w[o + 2])
        elif k == _PTR:
            a = self.ptr_sz
        elif k in (_TYPEDEF, _VOLATILE, _CONST, _RESTRICT, _TYPE_TAG):
            a = self.align_of(w[o + 2])
        elif k == _ARRAY:
            a = self.align_of(w[o + 3])
        elif k in (_STRUCT, _UNION):
            a = self._composite_align(tid)
        else:
            a = 0
        self._align[tid] = a
        return a

    def _composite_align(self, tid: int) -> int:
        w, o = self.w, self.offs[tid]
        info = w[o + 1]
        kflag = info >> 31
        aligns = self._align
        best = 1
        for q in range(o + 4, o + 4 + 3 * (info & 0xFFFF), 3):
            align = aligns.get(w[q])
            if align is None:
                align = self.align_of(w[q])
            if align <= 0:
                return align
            if align > best:
                best = align
            off = w[q + 1]
            if not (kflag and off >> 24) and off % (8 * align):
                return 1  # a misaligned member: the struct must be packed
        return 1 if w[o + 2] % best else best

    def resolve_size(self, tid: int) -> int:
        """libbpf's btf__resolve_size, negative when the type has no size."""
        s = self._size.get(tid)
        if s is not None:
            return s
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
        self._size[tid] = size
        return size

    # --- ordering ----------------------------------------------------------------

    def order_type(self, tid: int, through_ptr: bool) -> int:
        """1 when ``tid`` must be fully defined before its user, 0 when a forward declaration does."""
        state = self.order_state
        if state[tid] == _ORDERED:
            return 1
        k = self.kind[tid]
        w, o = self.w, self.offs[tid]
        if state[tid] == _ORDERING:
            if (k == _STRUCT or k == _UNION) and through_ptr and w[o]:
                return 0
            raise self._cycle_error(tid)
        if k == _PTR:
            strong = self.order_type(w[o + 2], True)
            state[tid] = _ORDERED
            return strong
        if k == _STRUCT or k == _UNION:
            if through_ptr and w[o]:
                return 0
            state[tid] = _ORDERING
            order = self.order_type
            for mt in w[o + 4:o + 4 + 3 * (w[o + 1] & 0xFFFF):3]:
                if state[mt] != _ORDERED:
                    order(mt, False)
            if w[o]:
                self.queue.append(tid)
            state[tid] = _ORDERED
            return 1
        if k == _TYPEDEF:
            strong = self.order_type(w[o + 2], through_ptr)
            if through_ptr and not strong:
                return 0
            self.queue.append(tid)
            state[tid] = _ORDERED
            return 1
        if k in _MODS:
            return self.order_type(w[o + 2], through_ptr)
        if k == _ARRAY:
            return self.order_type(w[o + 3], False)
        if k == _FUNC_PROTO:
            strong = self.order_type(w[o + 2], through_ptr)
            for q in range(o + 4, o + 4 + 2 * (w[o + 1] & 0xFFFF), 2):
                if state[w[q]] == _ORDERED or self.order_type(w[q], through_ptr):
                    strong = 1
            return strong
        if k == _INT or k == _FLOAT:
            state[tid] = _ORDERED
            return 0
        if k == _ENUM or k == _ENUM64 or k == _FWD:
            if w[o] or not self.referenced(tid):
                self.queue.append(tid)
            state[tid] = _ORDERED
            return 1
        # FUNC, VAR, DATASEC, DECL_TAG: nothing to declare
        state[tid] = _ORDERED
        return 0

    def _cycle_error(self, tid: int) -> BTFError:
        return BTFError(f"{self.btf.name}: type {self.btf._describe(tid)} contains itself by value "
                        f"(a cycle no C declaration order can satisfy)", section="BTF types",
                        offset=self.btf._byte_offset(tid))

    # --- emitting -------------------------------------------------------------------

    def dump_type(self, tid: int) -> None:
        if self.order_state[tid] == _ORDERED:
            return  # its definitions, if any, were queued and emitted before
        queue = self.queue = []
        self.order_type(tid, False)
        for qid in queue:
            self.emit_type(qid, 0)

    def emit_type(self, tid: int, cont_id: int) -> None:
        state = self.emit_state[tid]
        if state == _EMITTED:
            return
        k = self.kind[tid]
        w, o = self.w, self.offs[tid]
        if state == _EMITTING:
            if self.fwd_emitted[tid]:
                return
            if k in (_STRUCT, _UNION):
                if tid == cont_id or not w[o]:
                    return
                self.write(self.struct_fwd(tid) + ";\n\n")
                self.fwd_emitted[tid] = 1
            elif k == _TYPEDEF:
                if not self._blacklisted(tid):
                    self.write(self.typedef_def(tid, 0) + ";\n\n")
                self.fwd_emitted[tid] = 1
            return

        if k == _INT:
            name = self.type_name(tid)
            alias = _MISSING_BASE_TYPES.get(name)
            if alias:
                self.write(f"typedef {alias} {name};\n\n")
            self.emit_state[tid] = _EMITTED
        elif k in (_ENUM, _ENUM64):
            if cont_id == 0:
                self.write(self.enum_def(tid, 0) + ";\n\n")
            self.emit_state[tid] = _EMITTED
        elif k in (_PTR, _VOLATILE, _CONST, _RESTRICT, _TYPE_TAG):
            self.emit_type(w[o + 2], cont_id)
        elif k == _ARRAY:
            self.emit_type(w[o + 3], cont_id)
        elif k == _FWD:
            self.write(self.fwd_def(tid) + ";\n\n")
            self.emit_state[tid] = _EMITTED
        elif k == _TYPEDEF:
            self.emit_state[tid] = _EMITTING
            self.emit_type(w[o + 2], tid)
            if not self.fwd_emitted[tid] and not self._blacklisted(tid):
                self.write(self.typedef_def(tid, 0) + ";\n\n")
            self.emit_state[tid] = _EMITTED
        elif k in (_STRUCT, _UNION):
            self.emit_state[tid] = _EMITTING
            named = w[o] != 0
            if cont_id == 0 or not named:
                new_cont = tid if named else cont_id
                emit = self.emit_type
                emitted = self.emit_state
                through = self._through
                fwd = self.fwd_emitted
                for mt in w[o + 4:o + 4 + 3 * (w[o + 1] & 0xFFFF):3]:
                    mt = through.get(mt) or self._pass_through(mt)
                    # emitted, or a named struct whose forward declaration is out: nothing left to do
                    if emitted[mt] != _EMITTED and not fwd[mt]:
                        emit(mt, new_cont)
            elif not self.fwd_emitted[tid] and tid != cont_id:
                self.write(self.struct_fwd(tid) + ";\n\n")
                self.fwd_emitted[tid] = 1
            if cont_id == 0:
                self.write(self.struct_def(tid, 0) + ";\n\n")
                self.emit_state[tid] = _EMITTED
            else:
                self.emit_state[tid] = _NOT_EMITTED
        elif k == _FUNC_PROTO and tid not in self._settled:
            self.emit_type(w[o + 2], cont_id)
            for q in range(o + 4, o + 4 + 2 * (w[o + 1] & 0xFFFF), 2):
                self.emit_type(w[q], cont_id)
            if self._is_settled(tid):
                self._settled.add(tid)

    def _is_settled(self, proto: int) -> bool:
        """Whether emitting this prototype again can do nothing: every type it names is emitted
        or forward-declared (the states only ever move forward)."""
        w, o = self.w, self.offs[proto]
        for ref in [w[o + 2]] + [w[q] for q in range(o + 4, o + 4 + 2 * (w[o + 1] & 0xFFFF), 2)]:
            leaf = self._through.get(ref)
            if leaf is None:
                leaf = self._pass_through(ref)
            if self.emit_state[leaf] == _EMITTED or self.fwd_emitted[leaf] or leaf in self._settled:
                continue
            return False
        return True

    def _pass_through(self, tid: int) -> int:
        """The type emit_type really works on: pointers, modifiers and arrays only forward to their target."""
        start = tid
        kinds, w, offs = self.kind, self.w, self.offs
        for _ in range(4096):
            k = kinds[tid]
            if k == _PTR or k in _MODS:
                tid = w[offs[tid] + 2]
            elif k == _ARRAY:
                tid = w[offs[tid] + 3]
            else:
                break
        self._through[start] = tid
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

    def _member_aligns(self, types) -> list[int]:
        aligns = self._align
        out = [aligns.get(t) for t in types]
        if None in out:
            out = [a if a is not None else self.align_of(t) for a, t in zip(out, types)]
        return out

    def struct_def(self, tid: int, lvl: int) -> str:
        w, o = self.w, self.offs[tid]
        info = w[o + 1]
        vlen = info & 0xFFFF
        kflag = info >> 31
        size = w[o + 2]
        is_struct = self.kind[tid] == _STRUCT
        record = w[o + 3:o + 3 + 3 * vlen]
        types = record[1::3]
        if kflag:
            raw = record[2::3]
            bit_sizes = [r >> 24 for r in raw]
            bit_offs = [r & 0xFFFFFF for r in raw]
        else:
            bit_sizes = None
            bit_offs = record[2::3]
        aligns = self._member_aligns(types)
        # libbpf's rules: a struct is packed when a non-bitfield member is misaligned or its size
        # is not a multiple of the largest member alignment; such a struct aligns to 1
        if bit_sizes is None:
            misaligned = any(a and off % (8 * a) for a, off in zip(aligns, bit_offs))
        else:
            misaligned = any(a and not bits and off % (8 * a) for a, off, bits in zip(aligns, bit_offs, bit_sizes))
        best = max(aligns, default=1)
        odd_size = size % best if best > 0 else False
        packed = is_struct and (misaligned or bool(odd_size))
        align = self.align_of(tid)
        keyword = "struct" if is_struct else "union"
        name = self.type_name(tid)
        parts = [f"{keyword} {name} {{" if w[o] else f"{keyword}{name} {{"]
        inner = "\n" + _pfx(lvl + 1)
        strings = self.strings
        decl_cache = self._decl
        sizes = self._size
        off = 0
        append = parts.append
        if bit_sizes is None:
            # no bitfields: the common case, kept lean
            for i, (name_off, mtype, m_off) in enumerate(zip(record[0::3], types, bit_offs)):
                if off < m_off:
                    self._bit_padding(parts, off, m_off, 1 if packed else aligns[i], False, inner)
                template = decl_cache.get(mtype) if name_off else None
                if template is not None:
                    append(f"{inner}{template[0]}{strings[name_off]}{template[1]};")
                else:
                    append(f"{inner}{self.cached_decl(mtype, strings[name_off] if name_off else '', lvl + 1)};")
                msize = sizes.get(mtype)
                if msize is None:
                    msize = self.resolve_size(mtype)
                off = m_off + msize * 8 if msize > 0 else m_off
        else:
            prev_bitfield = False
            for i, (name_off, mtype, m_off) in enumerate(zip(record[0::3], types, bit_offs)):
                m_sz = bit_sizes[i]
                if off < m_off:
                    self._bit_padding(parts, off, m_off, 1 if packed else aligns[i], prev_bitfield and m_sz != 0,
                                      inner)
                decl = self.cached_decl(mtype, strings[name_off] if name_off else "", lvl + 1)
                if m_sz:
                    append(f"{inner}{decl}: {m_sz};")
                    off = m_off + m_sz
                    prev_bitfield = True
                else:
                    msize = sizes.get(mtype)
                    if msize is None:
                        msize = self.resolve_size(mtype)
                    off = m_off + msize * 8 if msize > 0 else m_off
                    prev_bitfield = False
                    append(f"{inner}{decl};")
        if is_struct and off < size * 8:
            self._bit_padding(parts, off, size * 8, align, False, inner)
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
        strings = self.strings
        idents = self.ident_names
        inner = _pfx(lvl + 1)
        parts = [head, " {"]
        is64 = self.kind[tid] == _ENUM64
        step = 3 if is64 else 2
        for q in range(o + 3, o + 3 + step * vlen, step):
            vname = strings[w[q]] if w[q] else ""
            count = idents.get(vname, 0) + 1
            idents[vname] = count
            if count > 1:
                vname = f"{vname}___{count}"
            if is64:
                val = w[q + 1] | (w[q + 2] << 32)
                if signed:
                    parts.append(f"\n{inner}{vname} = {val - (1 << 64) if val >> 63 else val}LL,")
                else:
                    parts.append(f"\n{inner}{vname} = {val}ULL,")
            else:
                val = w[q + 1]
                if signed and val >> 31:
                    val -= 1 << 32
                parts.append(f"\n{inner}{vname} = {val},")
        parts.append(f"\n{_pfx(lvl)}}}")
        return "".join(parts)

    # --- declarations: the type of a member, parameter or typedef ----------------------

    def cached_decl(self, tid: int, fname: str, lvl: int) -> str:
        """``decl`` reusing the text of an earlier declaration of the same type when that is safe."""
        if fname:
            template = self._decl.get(tid)
            if template is not None:
                return template[0] + fname + template[1]
            if tid in self._decl:
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
            self._decl[tid] = simple
            return simple[0] + fname + simple[1]
        saved = self._inline_defs
        self._inline_defs = False
        text = self.decl(tid, _SENTINEL, lvl)
        before, _, after = text.partition(_SENTINEL)
        self._decl[tid] = None if self._inline_defs or _SENTINEL in after else (before, after)
        self._inline_defs = saved or self._inline_defs
        return text.replace(_SENTINEL, fname)

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
                parts.append(self.strings[w[o]] if w[o] else "")
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
                parts.append(f' __attribute__((btf_type_tag("{self.strings[w[o]] if w[o] else ""}")))')
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
                vlen = w[o + 1] & 0xFFFF
                if vlen == 0 or (vlen == 1 and w[o + 4] == 0):
                    parts.append("(void)")
                    return "".join(parts)
                params = []
                for i in range(vlen):
                    q = o + 3 + 2 * i
                    if i == vlen - 1 and w[q + 1] == 0:
                        params.append("...")
                        break
                    params.append(self.cached_decl(w[q + 1], self.strings[w[q]] if w[q] else "", lvl))
                parts.append(f"({', '.join(params)})")
                return "".join(parts)
            else:
                # FUNC, VAR, DATASEC, DECL_TAG cannot appear in a declaration; libbpf stops here too.
                return "".join(parts)
            last_was_ptr = False
        parts.append(_name(fname, last_was_ptr))
        return "".join(parts)


def _name(fname: str, last_was_ptr: bool) -> str:
    return " " + fname if fname and not last_was_ptr else fname


def write_c(btf: "BTF", write: Callable[[str], object], type_ids: list[int] | None = None) -> None:
    """Emit the header through ``write``: all types, or the given ids and what they need."""
    dumper = CDumper(btf, write)
    write(HEADER)
    kinds = dumper.kind
    ordered = dumper.order_state
    skip = _NOTHING_TO_DECLARE if type_ids is None else frozenset()
    try:
        for tid in (type_ids if type_ids is not None else range(1, dumper.n)):
            if not 0 < tid < dumper.n:
                raise BTFError(f"{btf.name}: type id {tid} does not exist (ids go from 1 to {dumper.n - 1})")
            # Functions, variables, sections and decl tags declare nothing and nothing orders through them.
            if kinds[tid] not in skip and ordered[tid] != _ORDERED:
                dumper.dump_type(tid)
    except (RecursionError, IndexError):
        # A loop the ordering did not catch, or a dangling type id in BTF that was not validated.
        raise _explain(btf) from None
    write(FOOTER)


def dump_c(btf: "BTF", type_ids: list[int] | None = None) -> str:
    """The header as a string."""
    buf = io.StringIO()
    write_c(btf, buf.write, type_ids)
    return buf.getvalue()


def _explain(btf: "BTF") -> BTFError:
    """Turn a runaway recursion or a bad index into the broken reference or loop behind it."""
    try:
        btf.validate()
    except BTFError as exc:
        return exc
    return BTFError(f"{btf.name}: types nest too deeply to dump as C (more than Python's recursion limit)")
