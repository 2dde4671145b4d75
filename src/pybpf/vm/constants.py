"""Kernel ABI numbers the VM needs: map and program types, flags, verdicts, helper names.

Map and program types are the kernel backend's enums (the same uapi numbers);
helper ids and names come from :mod:`pybpf.isa`.
"""

from __future__ import annotations

from enum import IntEnum

from ..isa import helper_name as isa_helper_name
from ..object.kinds import MapType, ProgType

def helper_name(helper_id: int) -> str:
    """``bpf_map_lookup_elem``, or ``#N`` for an id the kernel does not define."""
    return isa_helper_name(helper_id) or f"#{helper_id}"


def prog_type_name(prog_type: int | None) -> str:
    try:
        return ProgType(prog_type).name
    except (ValueError, TypeError):
        return f"type {prog_type}"


def map_type_name(map_type: int) -> str:
    try:
        return MapType(map_type).name
    except ValueError:
        return f"type {map_type}"


class UpdateFlag(IntEnum):
    ANY = 0
    NOEXIST = 1
    EXIST = 2
    F_LOCK = 4


class XDPAction(IntEnum):
    ABORTED = 0
    DROP = 1
    PASS = 2
    TX = 3
    REDIRECT = 4


BPF_F_CURRENT_CPU = 0xFFFFFFFF
BPF_F_INDEX_MASK = 0xFFFFFFFF
# bpf_ringbuf_query selectors.
BPF_RB_AVAIL_DATA = 0
BPF_RB_RING_SIZE = 1
BPF_RB_CONS_POS = 2
BPF_RB_PROD_POS = 3
# get_stackid / get_stack flags.
BPF_F_SKIP_FIELD_MASK = 0xFF
BPF_F_USER_STACK = 1 << 8
BPF_F_REUSE_STACKID = 1 << 10
# Map creation flags the VM looks at.
BPF_F_NO_COMMON_LRU = 1 << 1
BPF_F_RDONLY_PROG = 1 << 7
BPF_F_WRONLY_PROG = 1 << 8

__all__ = [
    "BPF_F_CURRENT_CPU", "MapType", "ProgType", "UpdateFlag", "XDPAction", "helper_name",
    "map_type_name", "prog_type_name",
]
