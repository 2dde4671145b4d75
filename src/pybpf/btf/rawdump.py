"""bpftool's raw BTF listing (``bpftool btf dump file X``), text and JSON.

Works from the raw records rather than type objects: vmlinux has 300k lines of
this and building objects for it would cost more than formatting.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Iterable, Iterator

from .layout import KIND_NAMES

if TYPE_CHECKING:
    from .btf import BTF

_ENCODINGS = {0: "(none)", 1: "SIGNED", 2: "CHAR", 4: "BOOL"}
_FUNC_LINKAGE = {0: "static", 1: "global", 2: "extern"}
_VAR_LINKAGE = {0: "static", 1: "global", 2: "extern"}


def _s32(v: int) -> int:
    return v - (1 << 32) if v & 0x80000000 else v


def _records(btf: "BTF", type_ids: Iterable[int] | None = None) -> Iterator[tuple[int, Any, int, int, int, int, str]]:
    """(id, words, offset, kind, vlen, kflag, name) for each own type (or the given ids)."""
    strings = btf._all_strings()
    if type_ids is None:
        words = btf._words
        first = btf._first
        records: Iterable[tuple[int, Any, int]] = ((first + i, words, o) for i, o in enumerate(btf._offs))
    else:
        records = ((tid, *btf._locate(tid)) for tid in type_ids)
    for tid, words, o in records:
        if tid == 0:
            continue
        info = words[o + 1]
        name_off = words[o]
        yield tid, words, o, (info >> 24) & 0x1F, info & 0xFFFF, info >> 31, strings[name_off] if name_off else "(anon)"


def dump_raw(btf: "BTF", type_ids: Iterable[int] | None = None) -> str:
    """The listing as one string (each type on its line(s), trailing newline included)."""
    return "".join(iter_raw(btf, type_ids))


def iter_raw(btf: "BTF", type_ids: Iterable[int] | None = None) -> Iterator[str]:
    """The listing in chunks, one per type, for streaming to a file."""
    strings = btf._all_strings()
    n = len(btf)

    def name(off: int) -> str:
        return strings[off] if off else "(anon)"

    for tid, w, o, kind, vlen, kflag, tname in _records(btf, type_ids):
        head = f"[{tid}] {KIND_NAMES[kind]} '{tname}'"
        st = w[o + 2]
        if kind == 1:
            v = w[o + 3]
            yield (f"{head} size={st} bits_offset={(v >> 16) & 0xFF} nr_bits={v & 0xFF} "
                   f"encoding={_ENCODINGS.get((v >> 24) & 0xF, 'UNKN')}\n")
        elif kind in (2, 8, 9, 10, 11, 18):
            yield f"{head} type_id={st}\n"
        elif kind == 3:
            yield f"{head} type_id={w[o + 3]} index_type_id={w[o + 4]} nr_elems={w[o + 5]}\n"
        elif kind in (4, 5):
            parts = [f"{head} size={st} vlen={vlen}"]
            for j in range(vlen):
                q = o + 3 + 3 * j
                off = w[q + 2]
                if kflag and off >> 24:
                    parts.append(f"\n\t'{name(w[q])}' type_id={w[q + 1]} bits_offset={off & 0xFFFFFF} "
                                 f"bitfield_size={off >> 24}")
                else:
                    parts.append(f"\n\t'{name(w[q])}' type_id={w[q + 1]} bits_offset={off & 0xFFFFFF if kflag else off}")
            parts.append("\n")
            yield "".join(parts)
        elif kind == 6:
            parts = [f"{head} encoding={'SIGNED' if kflag else 'UNSIGNED'} size={st} vlen={vlen}"]
            for j in range(vlen):
                q = o + 3 + 2 * j
                val = _s32(w[q + 1]) if kflag else w[q + 1]
                parts.append(f"\n\t'{name(w[q])}' val={val}")
            parts.append("\n")
            yield "".join(parts)
        elif kind == 19:
            parts = [f"{head} encoding={'SIGNED' if kflag else 'UNSIGNED'} size={st} vlen={vlen}"]
            for j in range(vlen):
                q = o + 3 + 3 * j
                val = w[q + 1] | (w[q + 2] << 32)
                if kflag:
                    val = val - (1 << 64) if val >> 63 else val
                    parts.append(f"\n\t'{name(w[q])}' val={val}LL")
                else:
                    parts.append(f"\n\t'{name(w[q])}' val={val}ULL")
            parts.append("\n")
            yield "".join(parts)
        elif kind == 7:
            yield f"{head} fwd_kind={'union' if kflag else 'struct'}\n"
        elif kind == 12:
            yield f"{head} type_id={st} linkage={_FUNC_LINKAGE.get(vlen, '(unknown)')}\n"
        elif kind == 13:
            parts = [f"{head} ret_type_id={st} vlen={vlen}"]
            for j in range(vlen):
                q = o + 3 + 2 * j
                parts.append(f"\n\t'{name(w[q])}' type_id={w[q + 1]}")
            parts.append("\n")
            yield "".join(parts)
        elif kind == 14:
            yield f"{head} type_id={st}, linkage={_VAR_LINKAGE.get(w[o + 3], '(unknown)')}\n"
        elif kind == 15:
            parts = [f"{head} size={st} vlen={vlen}"]
            for j in range(vlen):
                q = o + 3 + 3 * j
                vt = w[q]
                line = f"\n\ttype_id={vt} offset={w[q + 1]} size={w[q + 2]}"
                if vt < n:
                    vw, vo = btf._locate(vt)
                    line += f" ({KIND_NAMES[(vw[vo + 1] >> 24) & 0x1F] if vt else 'UNKNOWN'} '{name(vw[vo]) if vt else '(anon)'}')"
                parts.append(line)
            parts.append("\n")
            yield "".join(parts)
        elif kind == 16:
            yield f"{head} size={st}\n"
        elif kind == 17:
            yield f"{head} type_id={st} component_idx={_s32(w[o + 3])}\n"
        else:
            yield head + "\n"


def raw_json(btf: "BTF", type_ids: Iterable[int] | None = None) -> dict[str, Any]:
    """The structure ``bpftool -j btf dump file X`` prints (same keys, same order)."""
    strings = btf._all_strings()

    def name(off: int) -> str:
        return strings[off] if off else "(anon)"

    out = []
    for tid, w, o, kind, vlen, kflag, tname in _records(btf, type_ids):
        d: dict[str, Any] = {"id": tid, "kind": KIND_NAMES[kind], "name": tname}
        st = w[o + 2]
        if kind == 1:
            v = w[o + 3]
            d.update(size=st, bits_offset=(v >> 16) & 0xFF, nr_bits=v & 0xFF,
                     encoding=_ENCODINGS.get((v >> 24) & 0xF, "UNKN"))
        elif kind in (2, 8, 9, 10, 11, 18):
            d["type_id"] = st
        elif kind == 3:
            d.update(type_id=w[o + 3], index_type_id=w[o + 4], nr_elems=w[o + 5])
        elif kind in (4, 5):
            members = []
            for j in range(vlen):
                q = o + 3 + 3 * j
                off = w[q + 2]
                m: dict[str, Any] = {"name": name(w[q]), "type_id": w[q + 1],
                                     "bits_offset": off & 0xFFFFFF if kflag else off}
                if kflag and off >> 24:
                    m["bitfield_size"] = off >> 24
                members.append(m)
            d.update(size=st, vlen=vlen, members=members)
        elif kind in (6, 19):
            values = []
            for j in range(vlen):
                if kind == 6:
                    q = o + 3 + 2 * j
                    val = _s32(w[q + 1]) if kflag else w[q + 1]
                else:
                    q = o + 3 + 3 * j
                    val = w[q + 1] | (w[q + 2] << 32)
                    if kflag and val >> 63:
                        val -= 1 << 64
                values.append({"name": name(w[q]), "val": val})
            d.update(encoding="SIGNED" if kflag else "UNSIGNED", size=st, vlen=vlen, values=values)
        elif kind == 7:
            d["fwd_kind"] = "union" if kflag else "struct"
        elif kind == 12:
            d.update(type_id=st, linkage=_FUNC_LINKAGE.get(vlen, "(unknown)"))
        elif kind == 13:
            params = [{"name": name(w[o + 3 + 2 * j]), "type_id": w[o + 4 + 2 * j]} for j in range(vlen)]
            d.update(ret_type_id=st, vlen=vlen, params=params)
        elif kind == 14:
            d.update(type_id=st, linkage=_VAR_LINKAGE.get(w[o + 3], "(unknown)"))
        elif kind == 15:
            vars_ = [{"type_id": w[o + 3 + 3 * j], "offset": w[o + 4 + 3 * j], "size": w[o + 5 + 3 * j]}
                     for j in range(vlen)]
            d.update(size=st, vlen=vlen, vars=vars_)
        elif kind == 16:
            d["size"] = st
        elif kind == 17:
            d.update(type_id=st, component_idx=_s32(w[o + 3]))
        out.append(d)
    return {"types": out}


def dump_raw_json(btf: "BTF", type_ids: Iterable[int] | None = None) -> str:
    return json.dumps(raw_json(btf, type_ids), separators=(",", ":"), ensure_ascii=False)
