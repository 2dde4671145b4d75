""".BTF.ext: per-instruction function info, line info and CO-RE relocation records.

clang writes one subsection per kind, each a record size followed by blocks of
records per ELF code section.  Offsets in the records are bytes from the start
of that section (``insn_off``; ``insn_index`` is ``insn_off // 8``) and strings
(file names, source lines, access strings, section names) live in the .BTF
string table, so reading .BTF.ext needs the object's BTF.

Resolving CO-RE relocations is the object layer's job; the records here carry
the parsed access string (``accessors``) and ``describe(btf)`` renders one as
``struct task_struct::se.vruntime``, for messages.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from ..errors import BTFError
from .btf import BTF
from .layout import BTF_MAGIC
from .types import Kind

_EXT_HEADER = struct.Struct("<HBBI")  # magic, version, flags, hdr_len
_SECTION_HEADER = struct.Struct("<II")  # sec_name_off, num_info
_FUNC_INFO = struct.Struct("<II")
_LINE_INFO = struct.Struct("<IIII")
_CORE_RELO = struct.Struct("<IIII")
SECTION = ".BTF.ext"


class CoreReloKind(enum.IntEnum):
    """enum bpf_core_relo_kind (the object layer's CO-RE resolver uses it as ``COREKind``)."""

    FIELD_BYTE_OFFSET = 0
    FIELD_BYTE_SIZE = 1
    FIELD_EXISTS = 2
    FIELD_SIGNED = 3
    FIELD_LSHIFT_U64 = 4
    FIELD_RSHIFT_U64 = 5
    TYPE_ID_LOCAL = 6
    TYPE_ID_TARGET = 7
    TYPE_EXISTS = 8
    TYPE_SIZE = 9
    ENUMVAL_EXISTS = 10
    ENUMVAL_VALUE = 11
    TYPE_MATCHES = 12

    @property
    def label(self) -> str:
        """libbpf's name for the kind (``byte_off``, ``field_exists``...), as its messages print it."""
        return _KIND_LABELS[self]

    @property
    def is_field(self) -> bool:
        return self <= CoreReloKind.FIELD_RSHIFT_U64

    @property
    def is_type(self) -> bool:
        return CoreReloKind.TYPE_ID_LOCAL <= self <= CoreReloKind.TYPE_SIZE or self == CoreReloKind.TYPE_MATCHES

    @property
    def is_enumval(self) -> bool:
        return self in (CoreReloKind.ENUMVAL_EXISTS, CoreReloKind.ENUMVAL_VALUE)


_KIND_LABELS = {
    CoreReloKind.FIELD_BYTE_OFFSET: "byte_off", CoreReloKind.FIELD_BYTE_SIZE: "byte_sz",
    CoreReloKind.FIELD_EXISTS: "field_exists", CoreReloKind.FIELD_SIGNED: "signed",
    CoreReloKind.FIELD_LSHIFT_U64: "lshift_u64", CoreReloKind.FIELD_RSHIFT_U64: "rshift_u64",
    CoreReloKind.TYPE_ID_LOCAL: "local_type_id", CoreReloKind.TYPE_ID_TARGET: "target_type_id",
    CoreReloKind.TYPE_EXISTS: "type_exists", CoreReloKind.TYPE_MATCHES: "type_matches",
    CoreReloKind.TYPE_SIZE: "type_size",
    CoreReloKind.ENUMVAL_EXISTS: "enumval_exists", CoreReloKind.ENUMVAL_VALUE: "enumval_value",
}


@dataclass(frozen=True, slots=True)
class FuncInfo:
    """The BTF FUNC of the function starting at ``insn_off`` (bytes into its ELF section)."""

    insn_off: int
    type_id: int

    @property
    def insn_index(self) -> int:
        return self.insn_off // 8

    def to_kernel(self, insn_index: int) -> bytes:
        """The bpf_func_info record BPF_PROG_LOAD wants (offset in instructions from the program start)."""
        return _FUNC_INFO.pack(insn_index, self.type_id)


@dataclass(frozen=True, slots=True)
class LineInfo:
    """Source position of the instruction at ``insn_off``: file, line, column and the line's text."""

    insn_off: int
    file_name: str
    line_text: str
    line: int
    column: int
    file_name_off: int = field(repr=False, default=0)
    line_off: int = field(repr=False, default=0)

    @property
    def insn_index(self) -> int:
        return self.insn_off // 8

    @property
    def line_col(self) -> int:
        return (self.line << 10) | (self.column & 0x3FF)

    def to_kernel(self, insn_index: int) -> bytes:
        """The bpf_line_info record for BPF_PROG_LOAD (string offsets into the BTF loaded with it)."""
        return _LINE_INFO.pack(insn_index, self.file_name_off, self.line_off, self.line_col)

    def __str__(self) -> str:
        return f"{self.file_name}:{self.line}:{self.column}: {self.line_text.strip()}"


@dataclass(frozen=True, slots=True)
class CoreRelo:
    """A CO-RE relocation: what the instruction at ``insn_off`` asks about type ``type_id``."""

    insn_off: int
    type_id: int
    access_str: str
    kind: CoreReloKind | int
    access_str_off: int = field(repr=False, default=0)

    @property
    def insn_index(self) -> int:
        return self.insn_off // 8

    @property
    def accessors(self) -> tuple[int, ...]:
        """The access string as numbers: first an array index on the root type, then member
        indexes (or array indexes) for field relocations; the enumerator index for enum ones."""
        try:
            return tuple(int(part) for part in self.access_str.split(":"))
        except ValueError:
            raise BTFError(f"CO-RE relocation at insn {self.insn_index}: access string {self.access_str!r} "
                           f"is not a list of numbers separated by ':'", section=SECTION) from None

    def to_kernel(self, insn_index: int) -> bytes:
        """The bpf_core_relo record BPF_PROG_LOAD accepts (for the kernel to resolve it)."""
        return _CORE_RELO.pack(insn_index * 8, self.type_id, self.access_str_off, int(self.kind))

    def spec(self, btf: BTF) -> str:
        """'struct task_struct::se.vruntime': what the relocation accesses, in C terms."""
        try:
            return _describe_access(btf, self)
        except BTFError as exc:
            return f"[{self.type_id}] {self.access_str} ({exc})"

    def describe(self, btf: BTF) -> str:
        """The spec and the relocation kind: 'struct task_struct::pid (field_byte_offset)'."""
        return f"{self.spec(btf)} ({_kind_name(self.kind)})"


def _describe_access(btf: BTF, relo: CoreRelo) -> str:
    root = btf[relo.type_id]
    label = root.describe()
    acc = relo.accessors
    rkind = CoreReloKind(relo.kind) if relo.kind in CoreReloKind._value2member_map_ else None
    if rkind is not None and rkind.is_type:
        return label
    if rkind is not None and rkind.is_enumval:
        t = btf[btf.resolve(relo.type_id)]
        values = getattr(t, "values", ())
        if len(acc) != 1 or not 0 <= acc[0] < len(values):
            raise BTFError(f"enumerator index {relo.access_str} out of range for {label}")
        return f"{label}::{values[acc[0]].name}"
    text = label + (f"[{acc[0]}]" if acc[0] else "")
    tid = relo.type_id
    sep = "::"
    for idx in acc[1:]:
        t = btf[btf.resolve(tid)]
        if t.kind in (Kind.STRUCT, Kind.UNION):
            if not 0 <= idx < len(t.members):  # type: ignore[attr-defined]
                raise BTFError(f"member index {idx} out of range for {t.describe()}")
            m = t.members[idx]  # type: ignore[attr-defined]
            text += sep + (m.name or f"<anon {idx}>")
            sep = "."
            tid = m.type_id
        elif t.kind == Kind.ARRAY:
            text += f"[{idx}]"
            tid = t.type_id  # type: ignore[attr-defined]
        else:
            raise BTFError(f"accessor {idx} applied to {t.describe()}, which has no members")
    return text


class ExtSection:
    """Records of one kind for one ELF code section."""

    def __init__(self, name: str, records: list[Any], name_off: int = 0):
        self.name = name
        self.records = records
        self.name_off = name_off

    def __iter__(self) -> Iterator[Any]:
        return iter(self.records)

    def __len__(self) -> int:
        return len(self.records)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ExtSection):
            return NotImplemented
        return (self.name, self.records) == (other.name, other.records)

    def __repr__(self) -> str:
        return f"ExtSection({self.name!r}, {len(self.records)} records)"


class BTFExt:
    """A parsed .BTF.ext: records by ELF section name, plus the record sizes clang used."""

    def __init__(self, btf: BTF):
        self.btf = btf
        self.func_info: dict[str, ExtSection] = {}
        self.line_info: dict[str, ExtSection] = {}
        self.core_relos: dict[str, ExtSection] = {}
        self.func_info_rec_size = _FUNC_INFO.size
        self.line_info_rec_size = _LINE_INFO.size
        self.core_relo_rec_size = _CORE_RELO.size

    def __repr__(self) -> str:
        count = {k: sum(len(s) for s in getattr(self, k).values()) for k in ("func_info", "line_info", "core_relos")}
        return f"<BTFExt of {self.btf.name}: {count['func_info']} func_info, {count['line_info']} line_info, " \
               f"{count['core_relos']} CO-RE relocations>"

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview, btf: BTF) -> "BTFExt":
        return _parse(bytes(data), btf)

    @classmethod
    def from_elf(cls, elf: Any, btf: BTF | None = None) -> "BTFExt":
        """The .BTF.ext of an ELFFile (or a path to one); the .BTF is read too unless given."""
        if not hasattr(elf, "section"):
            from ..elf.reader import ELFFile

            p = Path(elf)
            elf = ELFFile(p.read_bytes(), name=str(p), machine=None)
        sec = elf.section(SECTION)
        if sec is None:
            raise BTFError(f"{elf.name}: no {SECTION} section (compile with clang -g to get function and line info)")
        if btf is None:
            btf = BTF.from_elf(elf)
        return _parse(bytes(sec.data), btf)

    def lines_for(self, section: str) -> list[LineInfo]:
        s = self.line_info.get(section)
        return list(s.records) if s else []

    def funcs_for(self, section: str) -> list[FuncInfo]:
        s = self.func_info.get(section)
        return list(s.records) if s else []

    def relos_for(self, section: str) -> list[CoreRelo]:
        s = self.core_relos.get(section)
        return list(s.records) if s else []

    def line_at(self, section: str, insn_off: int) -> LineInfo | None:
        """The line info covering the instruction at byte ``insn_off`` of ``section`` (the last one at or before it)."""
        best = None
        for rec in self.lines_for(section):
            if rec.insn_off <= insn_off and (best is None or rec.insn_off >= best.insn_off):
                best = rec
        return best

    def to_bytes(self) -> bytes:
        """Encode back to a .BTF.ext section (string offsets as read; same layout clang uses)."""
        parts = []
        for sections, rec_size, pack in ((self.func_info, self.func_info_rec_size, _pack_func),
                                         (self.line_info, self.line_info_rec_size, _pack_line),
                                         (self.core_relos, self.core_relo_rec_size, _pack_relo)):
            if not sections:
                parts.append(b"")
                continue
            out = bytearray(struct.pack("<I", rec_size))
            for sec in sections.values():
                out += _SECTION_HEADER.pack(sec.name_off or self.btf._intern(sec.name), len(sec.records))
                for rec in sec.records:
                    out += pack(rec).ljust(rec_size, b"\0")
            parts.append(bytes(out))
        hdr_len = 32
        offs, pos = [], 0
        for p in parts:
            offs.append((pos, len(p)))
            pos += len(p)
        header = struct.pack("<HBBIIIIIII", BTF_MAGIC, 1, 0, hdr_len, offs[0][0], offs[0][1], offs[1][0], offs[1][1],
                             offs[2][0], offs[2][1])
        return header + b"".join(parts)

    def as_dict(self) -> dict[str, Any]:
        def recs(sections: dict[str, ExtSection], conv) -> dict[str, list]:
            return {name: [conv(r) for r in sec.records] for name, sec in sections.items()}

        return {
            "func_info": recs(self.func_info, lambda r: {"insn": r.insn_index, "type_id": r.type_id,
                                                         "name": self.btf.name_of(r.type_id)}),
            "line_info": recs(self.line_info, lambda r: {"insn": r.insn_index, "file": r.file_name, "line": r.line,
                                                         "column": r.column, "text": r.line_text}),
            "core_relos": recs(self.core_relos, lambda r: {"insn": r.insn_index, "type_id": r.type_id,
                                                           "access": r.access_str, "kind": _kind_name(r.kind),
                                                           "spec": r.spec(self.btf)}),
        }

    def describe(self) -> str:
        """A readable listing of all records, section by section."""
        out = []
        for title, sections in (("func_info", self.func_info), ("line_info", self.line_info),
                                ("core_relos", self.core_relos)):
            if not sections:
                continue
            out.append(f"{title}:")
            for name, sec in sections.items():
                out.append(f"  section {name} ({len(sec)} records)")
                for r in sec.records:
                    if isinstance(r, FuncInfo):
                        out.append(f"    insn {r.insn_index:<5} {self.btf._describe(r.type_id)}")
                    elif isinstance(r, LineInfo):
                        out.append(f"    insn {r.insn_index:<5} {r.file_name}:{r.line}:{r.column}  {r.line_text.strip()}")
                    else:
                        out.append(f"    insn {r.insn_index:<5} {_kind_name(r.kind):<18} [{r.type_id}] "
                                   f"{r.access_str:<10} {r.spec(self.btf)}")
        return "\n".join(out) + "\n" if out else ""


def _kind_name(kind: Any) -> str:
    return kind.name.lower() if isinstance(kind, CoreReloKind) else str(kind)


def _pack_func(r: FuncInfo) -> bytes:
    return _FUNC_INFO.pack(r.insn_off, r.type_id)


def _pack_line(r: LineInfo) -> bytes:
    return _LINE_INFO.pack(r.insn_off, r.file_name_off, r.line_off, r.line_col)


def _pack_relo(r: CoreRelo) -> bytes:
    return _CORE_RELO.pack(r.insn_off, r.type_id, r.access_str_off, int(r.kind))


def _parse(data: bytes, btf: BTF) -> BTFExt:
    size = len(data)
    if size < 8:
        raise BTFError(f"{size} bytes is too short for a {SECTION} header", section=SECTION, offset=0)
    magic, version, flags, hdr_len = _EXT_HEADER.unpack_from(data, 0)
    if magic != BTF_MAGIC:
        raise BTFError(f"bad {SECTION} magic {magic:#06x} (expected {BTF_MAGIC:#06x})", section=SECTION, offset=0)
    if version != 1:
        raise BTFError(f"{SECTION} version {version} is not supported", section=SECTION, offset=2)
    if flags:
        raise BTFError(f"unknown {SECTION} flags {flags:#x}", section=SECTION, offset=3)
    if hdr_len < 24 or hdr_len > size or hdr_len % 4:
        raise BTFError(f"{SECTION} header length {hdr_len} is invalid (data is {size} bytes; at least 24, "
                       f"a multiple of 4)", section=SECTION, offset=4)
    fields = list(struct.unpack_from("<4I", data, 8))
    if hdr_len >= 32:
        fields += struct.unpack_from("<2I", data, 24)
    else:
        fields += [0, 0]
    ext = BTFExt(btf)
    specs = (("func_info", 8, _read_func), ("line_info", 16, _read_line), ("core_relo", 16, _read_relo))
    for i, (what, min_rec, reader) in enumerate(specs):
        off, length = fields[2 * i], fields[2 * i + 1]
        if not length:
            continue
        start = hdr_len + off
        if off % 4:
            raise BTFError(f"{what} subsection offset {off} is not 4-byte aligned", section=SECTION, offset=8 + 8 * i)
        if start + length > size:
            raise BTFError(f"{what} subsection ({length} bytes at {start}) runs past the end of {SECTION} "
                           f"({size} bytes)", section=SECTION, offset=8 + 8 * i)
        sections, rec_size = _read_subsection(data, start, length, what, min_rec, reader, btf)
        if i == 0:
            ext.func_info, ext.func_info_rec_size = sections, rec_size
        elif i == 1:
            ext.line_info, ext.line_info_rec_size = sections, rec_size
        else:
            ext.core_relos, ext.core_relo_rec_size = sections, rec_size
    return ext


def _read_subsection(data: bytes, start: int, length: int, what: str, min_rec: int, reader, btf: BTF):
    end = start + length
    if length < 4:
        raise BTFError(f"{what} subsection of {length} bytes has no record size", section=SECTION, offset=start)
    (rec_size,) = struct.unpack_from("<I", data, start)
    if rec_size < min_rec or rec_size % 4:
        raise BTFError(f"{what} record size {rec_size} is invalid (at least {min_rec}, a multiple of 4)",
                       section=SECTION, offset=start)
    pos = start + 4
    sections: dict[str, ExtSection] = {}
    while pos < end:
        if pos + 8 > end:
            raise BTFError(f"{what}: truncated section header ({end - pos} bytes left)", section=SECTION, offset=pos)
        name_off, count = _SECTION_HEADER.unpack_from(data, pos)
        name = _string(btf, name_off, f"{what} section name", pos)
        if count == 0:
            raise BTFError(f"{what}: section {name!r} has no records", section=SECTION, offset=pos)
        pos += 8
        if pos + count * rec_size > end:
            raise BTFError(f"{what}: section {name!r} claims {count} records of {rec_size} bytes, only "
                           f"{end - pos} bytes are left", section=SECTION, offset=pos - 8)
        records = [reader(data, pos + k * rec_size, btf, what) for k in range(count)]
        pos += count * rec_size
        if name in sections:
            sections[name].records.extend(records)
        else:
            sections[name] = ExtSection(name, records, name_off)
    return sections, rec_size


def _string(btf: BTF, off: int, what: str, pos: int) -> str:
    try:
        return btf.string(off)
    except BTFError as exc:
        raise BTFError(f"{what}: {exc.args[0]}", section=SECTION, offset=pos) from None


def _check_type(btf: BTF, type_id: int, what: str, pos: int) -> None:
    if not 0 <= type_id < len(btf):
        raise BTFError(f"{what} refers to type id {type_id}, but the last type id is {len(btf) - 1}",
                       section=SECTION, offset=pos)


def _read_func(data: bytes, pos: int, btf: BTF, what: str) -> FuncInfo:
    insn_off, type_id = _FUNC_INFO.unpack_from(data, pos)
    _check_type(btf, type_id, f"{what} record", pos)
    if btf.kind_of(type_id) != Kind.FUNC:
        raise BTFError(f"{what} record names {btf._describe(type_id)}, which is not a FUNC", section=SECTION,
                       offset=pos)
    return FuncInfo(insn_off, type_id)


def _read_line(data: bytes, pos: int, btf: BTF, what: str) -> LineInfo:
    insn_off, file_off, line_off, line_col = _LINE_INFO.unpack_from(data, pos)
    return LineInfo(insn_off, _string(btf, file_off, f"{what} file name", pos),
                    _string(btf, line_off, f"{what} line text", pos), line_col >> 10, line_col & 0x3FF,
                    file_off, line_off)


def _read_relo(data: bytes, pos: int, btf: BTF, what: str) -> CoreRelo:
    insn_off, type_id, access_off, kind = _CORE_RELO.unpack_from(data, pos)
    _check_type(btf, type_id, f"{what} record", pos)
    try:
        rkind: CoreReloKind | int = CoreReloKind(kind)
    except ValueError:
        rkind = kind
    access = _string(btf, access_off, f"{what} access string", pos)
    if not access or not all(part.isdigit() for part in access.split(":")):
        raise BTFError(f"{what} record: access string {access!r} is not numbers separated by ':'",
                       section=SECTION, offset=pos)
    return CoreRelo(insn_off, type_id, access, rkind, access_off)
