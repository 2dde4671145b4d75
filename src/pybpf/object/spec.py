"""The spec: what a BPF object file asks for, before any backend makes it real.

An :class:`ObjectSpec` holds :class:`ProgramSpec` (linked instructions plus the
metadata the kernel wants: func/line info, map and extern references, CO-RE
relocations), :class:`MapSpec` (user maps and the internal maps that carry
global data) and :class:`VariableSpec` (named, typed windows into those
internal maps).  Everything can be inspected and changed before loading.

Instruction metadata is keyed by *slot* (8-byte units, as the kernel counts),
because ld_imm64 takes two slots but is one :class:`~pybpf.isa.Instruction`;
slots never move when an instruction is patched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, MutableMapping

from ..errors import MapError, ObjectError
from ..isa import Instruction, Program
from .backends import load_spec, register_backend  # noqa: F401  (pybpf.object.spec.register_backend, as before)
from .kinds import AttachType, MapFlags, MapType, Pinning, ProgFlags, ProgType
from .sections import ProbeTarget, SectionDef, SectionFlags, find_section_def, parse_probe_target

#: The call libbpf writes where a CO-RE relocation could not be satisfied
#: (helper 0xbad2310, "bad relo"); the verifier reports "invalid func unknown#195896080".
CORE_POISON_IMM = 0xBAD2310
#: Base of the helper number libbpf writes for a map that is not created (plus map index).
MAP_POISON_BASE = 2001000000
#: Base of the helper number libbpf writes for an unresolved weak kfunc (plus extern index).
KFUNC_POISON_BASE = 2002000000


# --- instruction metadata ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class MapReference:
    """An ld_imm64 that loads a map (``value=False``) or an address inside its value.

    In the linked instructions the ld_imm64 carries a placeholder the backend
    replaces: ``src=PseudoLoad.MAP_IDX`` with ``imm`` = index of the map in
    ``ObjectSpec.maps`` at parse time, or ``src=PseudoLoad.MAP_IDX_VALUE`` with
    ``imm = index | offset << 32``.  Resolve by ``map`` (the name), not the index.
    """

    slot: int
    map: str
    offset: int = 0
    value: bool = False


@dataclass(frozen=True, slots=True)
class ExternReference:
    """An instruction that needs a kernel symbol: a kfunc call or an ld_imm64 of a ksym."""

    slot: int
    extern: str
    call: bool


@dataclass(frozen=True, slots=True)
class FuncInfo:
    """One bpf_func_info record: a function starts at ``insn_off`` (slots); BTF FUNC ``type_id``."""

    insn_off: int
    type_id: int


@dataclass(frozen=True, slots=True)
class LineInfo:
    """One bpf_line_info record (offsets into the object's BTF string table) plus the decoded text."""

    insn_off: int
    file_name_off: int
    line_off: int
    line_col: int
    file: str = ""
    source: str = ""

    @property
    def line(self) -> int:
        return self.line_col >> 10

    @property
    def column(self) -> int:
        return self.line_col & 0x3FF


@dataclass(frozen=True, slots=True)
class FunctionSpan:
    """Where a function (the program itself or an appended subprogram) sits in a linked program."""

    name: str
    slot: int
    slots: int


# --- programs ---------------------------------------------------------------


@dataclass(eq=False)
class ProgramSpec:
    """One loadable program: its linked instructions and how the kernel should see it."""

    name: str
    section: str
    instructions: Program
    type: ProgType = ProgType.UNSPEC
    expected_attach_type: AttachType | None = None
    attach_target: str | None = None
    flags: ProgFlags = ProgFlags(0)
    section_def: SectionDef | None = None
    autoload: bool = True
    license: str = ""
    kern_version: int = 0
    map_references: list[MapReference] = field(default_factory=list)
    extern_references: list[ExternReference] = field(default_factory=list)
    func_info: list[FuncInfo] = field(default_factory=list)
    line_info: list[LineInfo] = field(default_factory=list)
    core_relocations: list[Any] = field(default_factory=list)  # core.CORERelocation
    functions: list[FunctionSpan] = field(default_factory=list)
    global_function: bool = True
    reason: str | None = None  # why this program cannot be loaded as is (unknown section...)
    # CO-RE works on the instructions as compiled; apply_core starts from these every time.
    original_instructions: Program | None = field(default=None, repr=False)

    @property
    def sleepable(self) -> bool:
        return bool(self.flags & ProgFlags.SLEEPABLE)

    @property
    def attach(self) -> str | None:
        """How the program auto-attaches (libbpf's handler name: kprobe, uprobe, tracepoint, trace...)."""
        return self.section_def.attach if self.section_def else None

    @property
    def needs_btf_target(self) -> bool:
        """fentry/fexit/lsm/tp_btf/iter/freplace: ``attach_target`` names a BTF function or hook."""
        return bool(self.section_def and self.section_def.flags & SectionFlags.ATTACH_BTF)

    @property
    def probe(self) -> ProbeTarget | None:
        """The attach target split into function/offset/path... for probe-like sections."""
        return parse_probe_target(self.section_def, self.section, self.attach_target)

    def set_section(self, section: str) -> None:
        """Retype the program as if it had been compiled into ``SEC(section)``."""
        from .sections import attach_target

        sec_def = find_section_def(section)
        if sec_def is None:
            raise ObjectError(f"program {self.name!r}: section name {section!r} is not one libbpf knows")
        self.section = section
        self.section_def = sec_def
        self.type = sec_def.prog_type
        self.expected_attach_type = sec_def.attach_type
        self.attach_target = attach_target(sec_def, section)
        self.flags = _prog_flags(sec_def)
        self.reason = None

    def instruction_at(self, slot: int) -> Instruction:
        return self.instructions[self.instructions.index_at_slot(slot)]


def _prog_flags(sec_def: SectionDef | None) -> ProgFlags:
    flags = ProgFlags(0)
    if sec_def is None:
        return flags
    if sec_def.flags & SectionFlags.SLEEPABLE:
        flags |= ProgFlags.SLEEPABLE
    if sec_def.flags & SectionFlags.XDP_FRAGS:
        flags |= ProgFlags.XDP_HAS_FRAGS
    return flags


# --- maps -------------------------------------------------------------------


@dataclass(eq=False)
class MapSpec:
    """A map to create: user-declared (``.maps``, legacy ``maps``) or internal (global data)."""

    name: str
    type: MapType
    key_size: int = 0
    value_size: int = 0
    max_entries: int = 0
    flags: MapFlags | int = 0
    numa_node: int = 0
    pinning: Pinning = Pinning.NONE
    map_extra: int = 0
    key_type: Any = None  # BTF type (of the object's BTF), None when declared by size
    value_type: Any = None
    key_type_id: int = 0
    value_type_id: int = 0
    inner: "MapSpec | None" = None
    # Initial entries: (key, value); value is bytes, or a program/map name for prog arrays / map-in-maps.
    contents: list[tuple[Any, Any]] = field(default_factory=list)
    section: str = ""
    # Global-data maps: the ELF section they come from and their bytes (a single value at key 0).
    internal: str | None = None
    data: bytearray | None = None
    frozen: bool = False  # made read-only for user space after load (.rodata, .kconfig)
    autocreate: bool = True
    extra: bytes = b""  # legacy definitions: bytes after struct bpf_map_def
    dropped_value_type: Any = None  # ringbuf/perf value type from __type(value, ...), kept for decoding
    # STRUCT_OPS maps: member name -> program implementing it (``data`` holds the local struct's bytes)
    struct_ops: dict[str, str] | None = None

    @property
    def is_internal(self) -> bool:
        return self.internal is not None

    @property
    def readonly(self) -> bool:
        return bool(self.flags & MapFlags.RDONLY_PROG)

    def resize(self, size: int) -> None:
        """Grow or shrink a global-data map (``.data.*``/``.bss.*`` arrays sized at run time)."""
        if self.data is None:
            raise ObjectError(f"map {self.name!r} holds no global data; set value_size instead")
        if size <= 0:
            raise ObjectError(f"map {self.name!r}: size must be positive, not {size}")
        if size < len(self.data):
            del self.data[size:]
        else:
            self.data.extend(bytes(size - len(self.data)))
        self.value_size = size


# --- variables and externs --------------------------------------------------


@dataclass(eq=False)
class VariableSpec:
    """A global variable: a named, typed window into its internal map's bytes."""

    name: str
    map: MapSpec
    offset: int
    size: int
    type: Any = None  # BTF type of the variable (not the VAR itself)
    type_id: int = 0
    linkage: str = "global"  # global | static
    btf: Any = field(default=None, repr=False)
    codec: Any = field(default=None, repr=False)

    @property
    def section(self) -> str:
        return self.map.internal or self.map.name

    @property
    def raw(self) -> bytes:
        assert self.map.data is not None
        return bytes(self.map.data[self.offset:self.offset + self.size])

    @raw.setter
    def raw(self, value: bytes) -> None:
        if len(value) != self.size:
            raise ObjectError(f"variable {self.name!r} is {self.size} bytes, got {len(value)}")
        assert self.map.data is not None
        self.map.data[self.offset:self.offset + self.size] = value

    @property
    def value(self) -> Any:
        return self._codec().decode(self.raw)

    @value.setter
    def value(self, value: Any) -> None:
        if self.map.is_internal and self.map.frozen and self.map.internal == ".kconfig":
            raise ObjectError(f"variable {self.name!r} is a kconfig extern; its value comes from the kernel")
        try:
            self.raw = self._codec().encode(value)
        except MapError as exc:  # name the variable: the codec only knows the type
            detail = str(exc).lstrip(": ")
            raise ObjectError(f"variable {self.name!r} ({self.section}): {detail}") from None

    def _codec(self):
        if self.codec is None:
            from .values import codec_for

            self.codec = codec_for(self.btf, self.type_id, self.size, self.name)
        return self.codec


@dataclass(eq=False)
class ExternSpec:
    """An ``extern`` the object expects the loader to provide (libbpf's extern_desc)."""

    name: str
    kind: str  # "kconfig" | "ksym"
    weak: bool
    type_id: int = 0  # BTF VAR or FUNC id in the object's BTF
    type: Any = None  # the variable's type (after modifiers/typedefs); FUNC_PROTO for kfuncs
    # kconfig: where the value lives in the .kconfig map and how libbpf classifies it
    offset: int = 0
    size: int = 0
    align: int = 0
    kconfig_type: str = ""  # bool | tristate | char | int | char_array
    signed: bool = False
    # ksym
    is_function: bool = False
    typed: bool = False  # typed ksym (BTF id) vs typeless (address from kallsyms)
    essential_name: str = ""  # name without ___flavor suffix, what the kernel is asked for


class SectionVariables(MutableMapping[str, Any]):
    """The variables of one data section by name.  The spec, the kernel backend and the VM
    share the lookup, its error and the read-only shape; subclasses say where a value lives
    (``__getitem__``/``__setitem__``: the spec's bytes, a kernel map, a VM map)."""

    def __init__(self, section: str, variables: Mapping[str, VariableSpec]):
        self._section = section
        self._variables = variables

    def variable(self, name: str) -> VariableSpec:
        """The VariableSpec of ``name`` (offset, size, BTF type)."""
        try:
            return self._variables[name]
        except KeyError:
            have = ", ".join(self._variables) or "none"
            raise KeyError(f"no variable {name!r} in {self._section} (there are: {have})") from None

    def __delitem__(self, name: str) -> None:
        raise ObjectError("variables cannot be removed from a data section")

    def __iter__(self) -> Iterator[str]:
        return iter(self._variables)

    def __len__(self) -> int:
        return len(self._variables)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._section} {list(self._variables)}>"


class DataSection(SectionVariables):
    """``spec.rodata["target_pid"] = 1234``: the variables of one global-data map by name."""

    def __getitem__(self, name: str) -> Any:
        return self.variable(name).value

    def __setitem__(self, name: str, value: Any) -> None:
        self.variable(name).value = value


class DataSections:
    """``.rodata``, ``.data`` and ``.bss`` by name, for the spec and for what the kernel and
    the VM load from it: each says what ``section_variables(section)`` gives."""

    section_variables: Callable[[str], SectionVariables]

    @property
    def rodata(self) -> SectionVariables:
        return self.section_variables(".rodata")

    @property
    def data(self) -> SectionVariables:
        return self.section_variables(".data")

    @property
    def bss(self) -> SectionVariables:
        return self.section_variables(".bss")


# --- the object -------------------------------------------------------------


@dataclass(eq=False)
class ObjectSpec(DataSections):
    """A parsed BPF object: programs, maps, variables, externs, BTF.  Pure: no kernel I/O."""

    name: str
    programs: dict[str, ProgramSpec] = field(default_factory=dict)
    maps: dict[str, MapSpec] = field(default_factory=dict)
    variables: dict[str, VariableSpec] = field(default_factory=dict)
    externs: dict[str, ExternSpec] = field(default_factory=dict)
    license: str = ""
    kern_version: int = 0
    btf: Any = None  # the object's BTF (pybpf.btf), None when compiled without -g
    btf_ext: Any = None
    elf: Any = field(default=None, repr=False)  # the ELFFile it was read from (BTF fixups need its symbols)
    path: str | None = None
    notes: list[str] = field(default_factory=list)  # things skipped on purpose, with the reason
    core_results: list[Any] = field(default_factory=list)  # filled by apply_core
    # Every function of every executable section: (name, ELF section, byte offset, byte size).
    functions: list[tuple[str, str, int, int]] = field(default_factory=list, repr=False)

    # -- construction ------------------------------------------------------

    @classmethod
    def from_file(cls, path: Any, name: str | None = None) -> "ObjectSpec":
        from .reader import read_object_file

        return read_object_file(path, name=name)

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview, name: str = "object") -> "ObjectSpec":
        from .reader import read_object

        return read_object(data, name=name)

    # -- global data -------------------------------------------------------

    def section_variables(self, section: str) -> DataSection:
        """Variables of the internal map made from ELF section ``section`` (``.rodata``, ``.data.x``)."""
        found = {v.name: v for v in self.variables.values() if v.map.internal == section}
        return DataSection(section, found)

    @property
    def kconfig(self) -> DataSection:
        return self.section_variables(".kconfig")

    def map_by_section(self, section: str) -> MapSpec | None:
        return next((m for m in self.maps.values() if m.internal == section), None)

    # -- CO-RE and externs -------------------------------------------------

    def apply_core(self, target_btf: Any = None, programs: Any = None) -> list[Any]:
        """Resolve every CO-RE relocation against ``target_btf`` (default: the running kernel).

        Patches the instructions of each program (from their compiled form, so it
        can be re-applied to another target) and returns the per-relocation
        results, also kept in ``core_results``.  Unsatisfiable relocations poison
        their instruction the way libbpf does.
        """
        from .core import apply_core

        return apply_core(self, target_btf, programs)

    def resolve_kconfig(self, resolver: Callable[..., Any] | None = None, **kwargs: Any) -> bytes | None:
        """Fill the ``.kconfig`` map from the kernel configuration; see :mod:`pybpf.object.kconfig`."""
        from .kconfig import resolve_kconfig

        return resolve_kconfig(self, resolver, **kwargs)

    def kernel_btf(self, features: Any = None) -> Any:
        """The BTF to hand to BPF_BTF_LOAD (externs laid out, DATASECs fixed, sanitized for ``features``)."""
        from .kernelbtf import kernel_btf

        return kernel_btf(self, features)

    def resolve_ksyms(self, target: Any = None, **kwargs: Any) -> dict[str, Any]:
        """Find every ``__ksym`` extern in the running kernel; see :func:`pybpf.object.externs.resolve_ksyms`."""
        from .externs import resolve_ksyms

        return resolve_ksyms(self, target, **kwargs)

    def link_instructions(self, program: str, map_fds: Mapping[str, int], ksyms: Mapping[str, Any] | None = None,
                          module_btf: Callable[[str], tuple[int, int]] | None = None) -> Program:
        """The final instructions of ``program`` for BPF_PROG_LOAD, given the backend's map fds."""
        from .externs import link_instructions

        return link_instructions(self, program, map_fds, ksyms, module_btf)

    def explain_poison(self, program: str, slot: int, helper: int) -> str | None:
        """Why the verifier met ``call <helper>`` at ``slot``: the poison libbpf-style loading left there.

        Backends turn the verifier's "invalid func unknown#N" into this message.
        """
        prog = self.program(program)
        if helper == CORE_POISON_IMM:
            from .core import poisoned_relocation

            result = poisoned_relocation(prog, slot)
            if result is None:
                return None
            return (f"program {program!r} reaches instruction {slot}, whose CO-RE relocation #{result.index} "
                    f"failed: {result.kind.label} {result.local_spec or result.local}: {result.reason}; guard it "
                    "with bpf_core_field_exists()/bpf_core_type_exists() or fix the type")
        if MAP_POISON_BASE <= helper < KFUNC_POISON_BASE:
            names = list(self.maps)
            index = helper - MAP_POISON_BASE
            name = names[index] if index < len(names) else f"#{index}"
            return (f"program {program!r} uses map {name!r} at instruction {slot}, but the map was not created "
                    "(autocreate is off)")
        if KFUNC_POISON_BASE <= helper < KFUNC_POISON_BASE + len(self.externs):
            name = list(self.externs)[helper - KFUNC_POISON_BASE]
            return (f"program {program!r} calls kfunc {name!r} at instruction {slot}, which this kernel does not "
                    "have (declared __weak; guard the call with bpf_ksym_exists())")
        return None

    def program(self, name: str) -> ProgramSpec:
        try:
            return self.programs[name]
        except KeyError:
            raise ObjectError(f"{self.name}: no program {name!r} (there are: {', '.join(self.programs) or 'none'})") \
                from None

    def map(self, name: str) -> MapSpec:
        try:
            return self.maps[name]
        except KeyError:
            raise ObjectError(f"{self.name}: no map {name!r} (there are: {', '.join(self.maps) or 'none'})") from None

    def load(self, backend: str = "auto", **options: Any) -> Any:
        """Make the spec live through a backend: ``"kernel"``, ``"vm"``, or ``"auto"`` (kernel when usable)."""
        return load_spec(self, backend, **options)

    def __repr__(self) -> str:
        return (f"<ObjectSpec {self.name} programs={list(self.programs)} maps={list(self.maps)} "
                f"variables={len(self.variables)} externs={list(self.externs)}>")


__all__ = [
    "CORE_POISON_IMM", "DataSection", "ExternReference", "ExternSpec", "FuncInfo", "FunctionSpan", "LineInfo",
    "MapReference", "MapSpec", "ObjectSpec", "ProgramSpec", "VariableSpec",
]
