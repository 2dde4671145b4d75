"""Opening the object a command names: BPF C (compiled with clang) or a compiled BPF object.

Shared by `pybpf run` and `pybpf prog load|run`, in a module of its own so that the
`prog` commands do not import `run`'s event loop (json, selectors, signal).
"""

from __future__ import annotations

import os
from typing import Any

from ..errors import BPFError, ObjectError


def open_spec(path: str, cflags: list[str] = ()) -> Any:
    """An ObjectSpec from BPF C (compiled with clang, errors shown as clang printed them) or an object file."""
    if not os.path.exists(path):
        raise BPFError(f"{path}: no such file")
    if path.endswith(".c"):
        from ..object.compile import compile as compile_c

        return compile_c(path, cflags=cflags)
    from ..object import ObjectSpec

    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != b"\x7fELF":
        raise ObjectError(f"{path} is not a BPF object (no ELF header): give a .bpf.c source or a clang -target bpf "
                          "object")
    return ObjectSpec.from_file(path)
