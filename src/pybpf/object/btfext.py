""".BTF.ext: per-section func_info, line_info and CO-RE relocation records.

Clang writes one block per ELF section; instruction offsets are in bytes
from the start of that section.  The loader re-bases them per program.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from ..errors import BTFError
from .btfread import BTF

_HDR = struct.Struct("<HBBIIIII")
_U32 = struct.Struct("<I")


@dataclass(frozen=True, slots=True)
class RawFuncInfo:
    insn_off: int  # bytes from the start of the section
    type_id: int


@dataclass(frozen=True, slots=True)
class RawLineInfo:
    insn_off: int
    file_name_off: int
    line_off: int
    line_col: int


@dataclass(frozen=True, slots=True)
class RawCORERelo:
    insn_off: int
    type_id: int
    access_str_off: int
    kind: int


@dataclass
class BTFExt:
    func_info: dict[str, list[RawFuncInfo]] = field(default_factory=dict)
    line_info: dict[str, list[RawLineInfo]] = field(default_factory=dict)
    core_relos: dict[str, list[RawCORERelo]] = field(default_factory=dict)


def parse_btf_ext(data: bytes | memoryview, btf: BTF, name: str = ".BTF.ext") -> BTFExt:
    raw = bytes(data)
    if len(raw) < 8:
        raise BTFError(f"{len(raw)} bytes is too short for a .BTF.ext header", section=name, offset=0)
    magic, version, _flags, hdr_len = struct.unpack_from("<HBBI", raw, 0)
    if magic != 0xEB9F:
        raise BTFError(f"bad magic {magic:#06x}, expected 0xeb9f", section=name, offset=0)
    if version != 1:
        raise BTFError(f"unsupported .BTF.ext version {version}", section=name, offset=2)
    if hdr_len < 24 or hdr_len > len(raw):
        raise BTFError(f"header length {hdr_len} out of range ({len(raw)} bytes)", section=name, offset=4)
    fields = [_U32.unpack_from(raw, off)[0] for off in range(8, hdr_len, 4)]
    ext = BTFExt()
    blocks = [(fields[0], fields[1], 8, "func_info", ext.func_info, RawFuncInfo),
              (fields[2], fields[3], 16, "line_info", ext.line_info, RawLineInfo)]
    if len(fields) >= 6:
        blocks.append((fields[4], fields[5], 16, "core_relo", ext.core_relos, RawCORERelo))
    for off, length, min_rec, what, into, record in blocks:
        if length:
            _parse_block(raw, hdr_len + off, length, min_rec, what, into, record, btf, name)
    return ext


def _parse_block(raw: bytes, start: int, length: int, min_rec: int, what: str, into: dict, record, btf: BTF,
                 name: str) -> None:
    end = start + length
    if end > len(raw) or length < 4:
        raise BTFError(f"{what} ({length} bytes at {start}) runs past the end of the section", section=name,
                       offset=start)
    (rec_size,) = _U32.unpack_from(raw, start)
    if rec_size < min_rec or rec_size % 4:
        raise BTFError(f"{what} record size {rec_size} is invalid (at least {min_rec}, multiple of 4)",
                       section=name, offset=start)
    nfields = min_rec // 4
    unpack = struct.Struct(f"<{nfields}I").unpack_from
    pos = start + 4
    while pos < end:
        if pos + 8 > end:
            raise BTFError(f"{what}: truncated section header", section=name, offset=pos)
        sec_name_off, num = struct.unpack_from("<II", raw, pos)
        if num == 0:
            raise BTFError(f"{what}: section block with no records", section=name, offset=pos)
        sec_name = btf.string(sec_name_off)
        pos += 8
        if pos + num * rec_size > end:
            raise BTFError(f"{what}: {num} records of {rec_size} bytes for section {sec_name!r} run past the end",
                           section=name, offset=pos)
        records = into.setdefault(sec_name, [])
        for i in range(num):
            records.append(record(*unpack(raw, pos + i * rec_size)))
        pos += num * rec_size


__all__ = ["BTFExt", "RawCORERelo", "RawFuncInfo", "RawLineInfo", "parse_btf_ext"]
