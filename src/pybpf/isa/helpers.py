"""Helper functions by id and by name (the kernel's `enum bpf_func_id`).

The ids are committed data (helper_ids.py, generated from the UAPI header and
the kernel); this module answers the two questions tools ask: what is helper
N called, and which id has this name.  Names come with the ``bpf_`` prefix, as
the verifier log, bpftool and C sources spell them; lookups accept either.
"""

from __future__ import annotations

from .helper_ids import HELPER_NAMES

_BY_NAME: dict[str, int] = {name: hid for hid, name in enumerate(HELPER_NAMES) if hid}

HELPER_COUNT = len(HELPER_NAMES)
"""Number of helper ids this pybpf knows (``__BPF_FUNC_MAX_ID``); ids are 0 .. HELPER_COUNT-1."""


def helper_name(helper_id: int, prefix: bool = True) -> str | None:
    """``bpf_map_lookup_elem`` for 1 (``map_lookup_elem`` with prefix=False); None if unknown."""
    if 0 <= helper_id < HELPER_COUNT:
        name = HELPER_NAMES[helper_id]
        return "bpf_" + name if prefix else name
    return None


def helper_id(name: str) -> int | None:
    """The id of a helper named ``bpf_map_lookup_elem`` or ``map_lookup_elem``; None if unknown."""
    hid = _BY_NAME.get(name)
    if hid is None and name.startswith("bpf_"):
        hid = _BY_NAME.get(name[4:])
    return hid
