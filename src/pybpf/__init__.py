"""pybpf: eBPF in pure Python.

Layers (dependencies point down): cli/tools -> trace/cbpf -> kernel/vm -> object
-> elf/btf -> isa.  See DESIGN.md.
"""

from __future__ import annotations

from .errors import (
    AssemblerError,
    BPFError,
    BPFPermissionError,
    BTFError,
    BTFLoadError,
    CompileError,
    CORERelocationError,
    ELFError,
    FilterSyntaxError,
    FormatError,
    InstructionError,
    KernelError,
    LinkError,
    MapError,
    NotSupportedError,
    ObjectError,
    VerifierError,
    VMError,
    VMFault,
)

from .object import ObjectSpec
from .object.compile import compile

__version__ = "0.1.0"

__all__ = [
    "AssemblerError",
    "BPFError",
    "BPFPermissionError",
    "BTFError",
    "BTFLoadError",
    "CompileError",
    "compile",
    "CORERelocationError",
    "ELFError",
    "FilterSyntaxError",
    "FormatError",
    "InstructionError",
    "KernelError",
    "LinkError",
    "MapError",
    "NotSupportedError",
    "ObjectError",
    "ObjectSpec",
    "VerifierError",
    "VMError",
    "VMFault",
]
