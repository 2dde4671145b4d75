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

__version__ = "0.1.0"

# The heavier layers load on first use, so `import pybpf` (and every CLI command) stays quick.
_LAZY = {
    "ObjectSpec": ("pybpf.object", "ObjectSpec"),
    "compile": ("pybpf.object.compile", "compile"),
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'pybpf' has no attribute {name!r}")

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
