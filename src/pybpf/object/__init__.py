"""ObjectSpec: programs, maps, relocations, CO-RE, without kernel I/O.

``ObjectSpec.from_file("x.bpf.o")`` reads a clang-built BPF object the way
libbpf does; the spec can be inspected and changed (``spec.rodata["pid"] = 1``,
``spec.maps["events"].max_entries = 1 << 20``, ``spec.programs["x"].autoload =
False``) and then handed to a backend.
"""

from .core import COREKind, CORERelocation, CORERelocationResult, CORETarget, apply_core
from .kinds import AttachType, MapFlags, MapType, Pinning, ProgFlags, ProgType
from .sections import SECTION_DEFS, ProbeTarget, SectionDef, SectionFlags, find_section_def
from .spec import (
    DataSection, ExternReference, ExternSpec, FuncInfo, FunctionSpan, LineInfo, MapReference, MapSpec,
    ObjectSpec, ProgramSpec, VariableSpec,
)

__all__ = [
    "AttachType", "COREKind", "CORERelocation", "CORERelocationResult", "CORETarget", "DataSection",
    "ExternReference", "ExternSpec", "FuncInfo", "FunctionSpan", "LineInfo", "MapFlags", "MapReference", "MapSpec",
    "MapType", "ObjectSpec", "Pinning", "ProbeTarget", "ProgFlags", "ProgType", "ProgramSpec", "SECTION_DEFS",
    "SectionDef", "SectionFlags", "VariableSpec", "apply_core", "find_section_def",
]
