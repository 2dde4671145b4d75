"""BTF and BTF.ext: read, write, look up, dump as C, encode and decode values.

    from pybpf.btf import BTF, kernel_btf
    vmlinux = kernel_btf()                          # parsed once per process, lazily
    task = vmlinux.find("struct task_struct")       # or find("task_struct", "struct")
    vmlinux.member_offset(task, "se.vruntime")      # -> byte offset
    btf = BTF.from_file("prog.bpf.o")               # an object's .BTF (validated)
    codec = btf.codec("struct event")               # bytes <-> Python values, compiled once
    print(btf.dump_c())                             # what `bpftool btf dump ... format c` prints

Modules: btf (the BTF container and parser), types (one frozen class per kind),
writer, validate, rawdump and cdump (bpftool's two formats), ext (.BTF.ext),
codec (values), valuedump (values and prototypes as bpftool's map and prog dumps
print them), sanitize (loading on older kernels, DATASEC fix-ups), kernel
(/sys/kernel/btf).
"""

from .btf import BTF

# Eager, unlike the names in _LAZY below: the function sanitize shares its module's name, and
# importing pybpf.btf.sanitize later would otherwise leave the module where the function belongs.
from .sanitize import BTFFeatures, fixup_datasecs, needs_sanitizing, probe_btf, sanitize
from .types import (
    MODIFIER_KINDS,
    Array,
    Composite,
    Const,
    Datasec,
    DeclTag,
    Enum,
    Enum64,
    EnumValue,
    Float,
    Func,
    FuncLinkage,
    FuncProto,
    Fwd,
    Int,
    IntEncoding,
    Kind,
    Member,
    Param,
    Pointer,
    Restrict,
    Struct,
    Type,
    TypeTag,
    Typedef,
    Union,
    Var,
    VarLinkage,
    VarSecinfo,
    Void,
    Volatile,
    essential_name,
)

# .BTF.ext, the value codec and /sys/kernel/btf load on first use: `pybpf btf dump` needs none.
_LAZY = {
    "BTFExt": "ext", "CoreRelo": "ext", "CoreReloKind": "ext", "ExtSection": "ext", "FuncInfo": "ext",
    "LineInfo": "ext", "Codec": "codec", "Record": "codec", "UnionRecord": "codec", "as_dict": "codec",
    "clear_cache": "kernel", "kernel_btf": "kernel", "kernel_modules_with_btf": "kernel", "module_btf": "kernel",
}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pybpf.btf' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "BTF", "BTFExt", "BTFFeatures", "Codec", "Record", "UnionRecord", "as_dict", "fixup_datasecs",
    "needs_sanitizing", "probe_btf", "sanitize", "CoreRelo", "CoreReloKind", "ExtSection", "FuncInfo", "LineInfo", "Kind", "Type", "Void", "Int", "Float", "Pointer", "Array", "Composite", "Struct", "Union", "Enum",
    "Enum64", "EnumValue", "Fwd", "Typedef", "Volatile", "Const", "Restrict", "TypeTag", "Func", "FuncProto",
    "Var", "Datasec", "DeclTag", "Member", "Param", "VarSecinfo", "IntEncoding", "FuncLinkage", "VarLinkage",
    "MODIFIER_KINDS", "essential_name", "kernel_btf", "module_btf", "kernel_modules_with_btf", "clear_cache",
]
