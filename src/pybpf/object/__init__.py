"""ObjectSpec: programs, maps, relocations, CO-RE, without kernel I/O.

``ObjectSpec.from_file("x.bpf.o")`` reads a clang-built BPF object the way
libbpf does; the spec can be inspected and changed (``spec.rodata["pid"] = 1``,
``spec.maps["events"].max_entries = 1 << 20``, ``spec.programs["x"].autoload =
False``) and then handed to a backend.

What a backend does with a spec, in order (libbpf's bpf_object__load):

1. ``spec.apply_core()`` - CO-RE against the running kernel (or a BTF file);
   instructions are patched in place, results in ``spec.core_results``.
2. ``spec.resolve_kconfig(probes=...)`` - fills the ``.kconfig`` map's bytes;
   ``spec.resolve_ksyms()`` - finds ``__ksym`` externs (BTF ids, module, address).
3. Create every ``MapSpec`` with ``autocreate``: internal maps (``is_internal``)
   get ``data`` as the value of key 0 and are frozen when ``frozen``; ``inner``
   is the template for map-in-maps; ``contents`` are initial (key, value) pairs
   whose values name programs (prog arrays) or maps (map-in-maps).
4. Load each ``ProgramSpec`` with ``autoload``: ``spec.link_instructions(name,
   map_fds, ksyms, module_btf)`` gives the final instructions; ``type``,
   ``expected_attach_type`` (None = 0), ``flags``, ``license``, ``kern_version``,
   ``attach_target`` (a BTF name for fentry/lsm/tp_btf/iter: ``needs_btf_target``),
   ``func_info``/``line_info`` (slot offsets, the object's BTF ids and strings).
   When the verifier reports ``invalid func unknown#N``, ``spec.explain_poison``
   says which CO-RE relocation, map or kfunc it was.

The names below are imported on first use: ``pybpf.object.kinds`` (the kernel's
enumerations, which the kernel layer shares) then loads without the parser,
CO-RE and BTF machinery.
"""

from __future__ import annotations

from .._lazy import lazy_exports as _lazy_exports

_EXPORTS = {
    ".core": ("COREKind", "CORERelocation", "CORERelocationResult", "CORETarget", "apply_core"),
    ".externs": ("KsymResolution",),
    ".kinds": ("AttachType", "MapFlags", "MapType", "Pinning", "ProgFlags", "ProgType"),
    ".sections": ("SECTION_DEFS", "ProbeTarget", "SectionDef", "SectionFlags", "find_section_def"),
    ".spec": ("DataSection", "ExternReference", "ExternSpec", "FuncInfo", "FunctionSpan", "LineInfo", "MapReference",
              "MapSpec", "ObjectSpec", "ProgramSpec", "VariableSpec"),
    ".backends": ("register_backend",),
}
__getattr__, __dir__ = _lazy_exports(__name__, globals(), _EXPORTS)

__all__ = sorted(name for names in _EXPORTS.values() for name in names)
