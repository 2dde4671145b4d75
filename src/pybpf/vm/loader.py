"""``ObjectSpec.load(backend="vm")``: an object's maps, programs and global variables made live in a VM.

The same spec the kernel backend loads: maps are created with their declared
types and sizes (keys and values decoded through their BTF types), global data
sections become one-element arrays initialised from the object (``.rodata``
read-only for programs and frozen for user space, as libbpf does), programs
are linked with the VM's map fds and keep their BTF line info so a fault
names the C source line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..btf import Kind
from ..errors import BPFError, MapError, ObjectError, VMError
from ..object.spec import DataSections, SectionVariables
from .constants import BPF_F_RDONLY_PROG, MapType
from .machine import VM
from .maps import VMMap
from .program import VMProgram

if TYPE_CHECKING:
    from ..object import ObjectSpec


# Sections the kernel backend attaches without arguments (same list as its Collection).
_AUTO_ATTACH = ("tracepoint/", "tp/", "raw_tracepoint/", "raw_tp/", "tp_btf/", "fentry/", "fexit/", "fmod_ret/",
                "lsm/", "fentry.s/", "fexit.s/", "lsm.s/", "uprobe/", "uretprobe/", "kprobe/", "kretprobe/",
                "perf_event", "iter/")


class SourceLine:
    """A BTF line_info record as the VM reports it: ``file:line: code``."""

    __slots__ = ("insn_off", "text")

    def __init__(self, insn_off: int, text: str):
        self.insn_off = insn_off
        self.text = text

    def __str__(self) -> str:
        return self.text


class LiveData(SectionVariables):
    """The global variables of one data section, read and written in the live map (``obj.bss["hits"]``)."""

    def __init__(self, section: str, variables: dict[str, Any], live: dict[str, VMMap]):
        super().__init__(section, variables)
        self._live = live

    def _where(self, name: str) -> tuple[Any, VMMap]:
        var = self.variable(name)
        return var, self._live[var.map.name]

    def __getitem__(self, name: str) -> Any:
        var, m = self._where(name)
        return var._codec().decode(bytes(m.data[var.offset:var.offset + var.size]))

    def __setitem__(self, name: str, value: Any) -> None:
        var, m = self._where(name)
        if m.frozen:
            raise MapError(f"{self._section} variable {name!r} is read-only after load (the map is frozen); set "
                           "it in the spec before loading")
        m.data[var.offset:var.offset + var.size] = var._codec().encode(value)

    def __repr__(self) -> str:
        return f"<LiveData {self._section} {dict(self)}>"


class VMObject(DataSections):
    """What ``spec.load(backend="vm")`` returns: ``maps`` and ``programs`` by name (the kernel backend's
    names and methods), global variables through ``rodata``/``data``/``bss``, and the ``vm`` they live in."""

    def __init__(self, vm: VM, spec: "ObjectSpec", maps: dict[str, VMMap], programs: dict[str, VMProgram]):
        self.vm = vm
        self.spec = spec
        self.maps = maps
        self.programs = programs
        self.links: list[Any] = []
        self.closed = False

    def program(self, name: str) -> VMProgram:
        try:
            return self.programs[name]
        except KeyError:
            raise BPFError(f"no program {name!r} (there are: {', '.join(self.programs) or 'none'})") from None

    def map(self, name: str) -> VMMap:
        try:
            return self.maps[name]
        except KeyError:
            raise BPFError(f"no map {name!r} (there are: {', '.join(self.maps) or 'none'})") from None

    def attach(self, program: str, target: str | None = None) -> Any:
        """Attach a program to a VM hook: ``target``, or the program's section (fire it with
        ``obj.vm.fire(hook, ctx)``); the hook is detached when the object closes."""
        prog = self.program(program)
        link = self.vm.attach(prog, target or prog.section)
        self.links.append(link)
        return link

    def attach_all(self) -> list[Any]:
        """Attach every program whose section names an event (tracepoints, probes, ...): what the kernel
        backend attaches automatically.  Programs that need a device or socket are left alone."""
        made = [self.attach(name) for name, prog in self.programs.items()
                if prog.section.startswith(_AUTO_ATTACH)]
        return made

    def detach_all(self) -> None:
        for link in self.links:
            link.close()
        self.links.clear()

    def section_variables(self, section: str) -> LiveData:
        found = {v.name: v for v in self.spec.variables.values() if v.map.internal == section}
        return LiveData(section, found, self.maps)

    def close(self) -> None:
        self.detach_all()
        self.closed = True

    def __enter__(self) -> "VMObject":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<VMObject {self.spec.name} maps={list(self.maps)} programs={list(self.programs)}>"


def _codec(spec: "ObjectSpec", type_id: int, size: int, label: str) -> Any:
    if not type_id or spec.btf[type_id].kind == Kind.DATASEC:  # global data: accessed by variable instead
        return None
    from ..object.values import codec_for

    return codec_for(spec.btf, type_id, size, label)


def _create_map(vm: VM, spec: "ObjectSpec", name: str, ms: Any) -> VMMap:
    inner = None
    if ms.inner is not None:
        i = ms.inner
        inner = vm.create_map(i.type, i.key_size, i.value_size, i.max_entries, flags=int(i.flags),
                              name=f"{name}.inner", map_extra=i.map_extra)
    flags = int(ms.flags)
    if ms.internal == ".rodata" or ms.internal == ".kconfig":
        flags |= BPF_F_RDONLY_PROG
    keyless = ms.type in (MapType.RINGBUF, MapType.QUEUE, MapType.STACK, MapType.BLOOM_FILTER)
    return vm.create_map(
        ms.type, ms.key_size, ms.value_size, ms.max_entries, flags=flags, name=name, inner_map=inner,
        map_extra=ms.map_extra,
        key_codec=None if keyless else _codec(spec, ms.key_type_id, ms.key_size, f"{name} key"),
        value_codec=_codec(spec, ms.value_type_id, ms.value_size, f"{name} value")
        if ms.type not in (MapType.PROG_ARRAY, MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS) else None,
    )


def _source_lines(prog_spec: Any) -> list[SourceLine]:
    lines = []
    for li in prog_spec.line_info:
        where = f"{li.file}:{li.line}" if li.file else f"line {li.line}"
        lines.append(SourceLine(li.insn_off, f"{where}: {li.source.strip()}" if li.source else where))
    return lines


def load_spec(spec: "ObjectSpec", *, vm: VM | None = None, **vm_options: Any) -> VMObject:
    """Create the spec's maps and load its programs in ``vm`` (a new VM with ``vm_options`` by default)."""
    vm = vm if vm is not None else VM(**vm_options)
    maps: dict[str, VMMap] = {}
    for name, ms in spec.maps.items():
        if not ms.autocreate:
            continue
        m = _create_map(vm, spec, name, ms)
        if ms.data is not None:
            m.update_raw(bytes(4), bytes(ms.data).ljust(ms.value_size, b"\0")[:ms.value_size])
        maps[name] = m
    programs: dict[str, VMProgram] = {}
    fds = {name: m.fd for name, m in maps.items()}
    for name, ps in spec.programs.items():
        if not ps.autoload:
            continue
        if ps.extern_references:
            raise VMError(f"{spec.name}: program {name!r} uses kernel symbols ({', '.join(r.extern for r in ps.extern_references)}), "
                          "which the VM does not have")
        try:
            code = spec.link_instructions(name, fds)
        except ObjectError as exc:
            raise VMError(f"{spec.name}: program {name!r} cannot be linked for the VM: {exc}") from None
        programs[name] = vm.load(code, type=int(ps.type) if int(ps.type) else None, name=name,
                                 source_lines=_source_lines(ps), section=ps.section,
                                 license=ps.license or spec.license,
                                 expected_attach_type=int(ps.expected_attach_type)
                                 if ps.expected_attach_type is not None else None)
    for name, ms in spec.maps.items():
        if name not in maps:
            continue
        for key, value in ms.contents:
            if isinstance(value, str):  # a program (prog array) or map (map of maps) by name
                value = programs.get(value) or maps.get(value)
                if value is None:
                    continue
            maps[name][key] = value
        if ms.frozen:
            maps[name].freeze()
    return VMObject(vm, spec, maps, programs)


__all__ = ["LiveData", "SourceLine", "VMObject", "load_spec"]
