"""``spec.load(backend="kernel")``: an ObjectSpec made live in the running kernel (libbpf's bpf_object__load).

The steps follow the object layer's contract (see :mod:`pybpf.object`):

1. CO-RE relocations against vmlinux (and module) BTF, ``.kconfig`` values,
   ``__ksym`` addresses and BTF ids;
2. the object's BTF, rewritten for the kernel and sanitized for what this
   kernel accepts (probed once per process), loaded with BPF_BTF_LOAD; a
   kernel that refuses it gets the object without BTF, as libbpf does,
   unless something needs it (storage maps, ksyms);
3. maps: every type, with their BTF key/value types (retried without when
   the kernel refuses them), perf event arrays sized to the possible CPUs,
   pinned-by-name maps reused when compatible, map-in-maps from their inner
   template and initial contents, global data written, ``.rodata`` and
   ``.kconfig`` frozen, and mmap-ed where the kernel allows;
4. programs with their BTF, func_info and line_info, expected attach type,
   BTF attach target (tp_btf, fentry, lsm, iter: looked up by name in vmlinux
   and module BTF), kfunc fd array; a verifier rejection names the program and
   the C line, and a poisoned CO-RE relocation is explained;
5. program arrays filled from their initial contents.

Whatever fails, everything created so far is closed (and pins this load made
are removed): a failed load leaves nothing behind.  With ``partial=True`` a
program that fails is recorded in :attr:`Object.failed` and the rest loads.
"""

from __future__ import annotations

import errno
import os
import re
import struct
from functools import cache
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from ..errors import BPFError, KernelError, MapError, NotSupportedError, ObjectError, VerifierError
from .btf_object import KernelBTF
from .collection import Collection, naming_program
from ..object.codec import RecordCodec
from ..object.spec import DataSections
from .globaldata import LiveDataMap, LiveVariables
from .maps import FD_VALUE_TYPES, STORAGE_TYPES, Map, MapInfo
from .program import Program
from .uapi import MapFlags, MapType, ProgType
from .verifier import SourceLine

if TYPE_CHECKING:
    from ..object import MapSpec, ObjectSpec, ProgramSpec

# Map types whose BTF key/value ids libbpf never passes (the kernel checks nothing useful, or refuses them).
_NO_BTF_TYPES = frozenset({
    MapType.PERF_EVENT_ARRAY, MapType.CGROUP_ARRAY, MapType.STACK_TRACE, MapType.ARRAY_OF_MAPS,
    MapType.HASH_OF_MAPS, MapType.DEVMAP, MapType.DEVMAP_HASH, MapType.CPUMAP, MapType.XSKMAP, MapType.SOCKMAP,
    MapType.SOCKHASH, MapType.QUEUE, MapType.STACK, MapType.RINGBUF, MapType.USER_RINGBUF, MapType.PROG_ARRAY,
})
_POISON = re.compile(r"invalid func unknown#(\d+)")
_FUNC_INFO = struct.Struct("<II")
_LINE_INFO = struct.Struct("<IIII")
# BTF attach targets: section kind -> (prefix of the kernel's name, BTF kind)
_BTF_TARGETS = {"tp_btf": ("btf_trace_", "typedef"), "lsm": ("bpf_lsm_", "func"), "lsm_cgroup": ("bpf_lsm_", "func"),
                "iter": ("bpf_iter_", "func")}


class Object(Collection, DataSections):
    """A BPF object loaded into the kernel: what ``spec.load(backend="kernel")`` returns.

    ``maps`` and ``programs`` by name (dict-like maps with keys and values
    decoded through the object's BTF), global variables through ``bss``,
    ``data``, ``rodata`` (read-only after load) and ``kconfig``,
    :meth:`attach_all` / :meth:`attach`, and ``close()`` (or ``with``), which
    detaches, unloads and closes everything but pins made on purpose.
    ``failed`` holds the programs that did not load with ``partial=True``;
    ``notes`` what was adapted on the way (BTF left out, ...).
    """

    def __init__(self, spec: "ObjectSpec"):
        super().__init__()
        self.spec = spec
        self.name = spec.name
        self.btf: KernelBTF | None = None
        self.failed: dict[str, BPFError] = {}
        self.notes: list[str] = []
        self.data_maps: dict[str, LiveDataMap] = {}  # ELF section -> live bytes
        self._module_btfs: dict[str, KernelBTF] = {}
        self._new_pins: list[str] = []

    # -- global variables ------------------------------------------------------

    def section_variables(self, section: str) -> LiveVariables:
        """The variables of the data section ``section`` (``.bss``, ``.data.counters``...), live."""
        found = {v.name: v for v in self.spec.variables.values() if v.map.internal == section}
        return LiveVariables(section, found, self.data_maps.get(section))

    @property
    def kconfig(self) -> LiveVariables:
        return self.section_variables(".kconfig")

    # -- events ----------------------------------------------------------------

    def event_maps(self) -> dict[str, Map]:
        """Ring buffers and perf event arrays: the maps a program sends records through."""
        return {name: m for name, m in self.maps.items() if m.type in (MapType.RINGBUF, MapType.PERF_EVENT_ARRAY)}

    # -- closing ---------------------------------------------------------------

    def close(self) -> None:
        if self.closed:
            return
        for live in self.data_maps.values():
            live.close()
        try:
            super().close()
        finally:
            for btf in [self.btf, *self._module_btfs.values()]:
                if btf is not None:
                    btf.close()

    def _abandon(self) -> None:
        """Undo a failed load: close everything and remove the pins this load made."""
        for path in self._new_pins:
            try:
                os.unlink(path)
            except OSError:
                pass
        try:
            self.close()
        except BPFError:
            pass

    def __enter__(self) -> "Object":
        return self

    def __repr__(self) -> str:
        failed = f" failed={list(self.failed)}" if self.failed else ""
        return (f"<Object {self.name} maps={list(self.maps)} programs={list(self.programs)} links={len(self.links)}"
                f"{failed}{' closed' if self.closed else ''}>")


# --- the backend entry points ------------------------------------------------------


def unavailable() -> str | None:
    """Why ``backend="kernel"`` cannot be used here (``backend="auto"`` then falls back to the VM)."""
    from .features import bpf_unavailable

    return bpf_unavailable()


def load_spec(spec: "ObjectSpec", *, partial: bool = False, pin_root: str | None = None,
              reuse_maps: Mapping[str, Map] | None = None, core_btf: Any = None, kconfig: Any = None,
              log_level: int = 0) -> Object:
    """Load ``spec`` into the kernel; see the module docstring.

    ``partial``: load what can be loaded, failures in ``obj.failed``.
    ``pin_root``: directory of maps pinned by name (default /sys/fs/bpf).
    ``reuse_maps``: map name -> a live Map to use instead of creating one
    (libbpf's bpf_map__reuse_fd; it must match the declaration; the caller
    keeps it, the object holds its own fd; one declared pinned by name is
    pinned there, and another map pinned there already is an error).  ``core_btf``: BTF (path or
    pybpf.btf.BTF) to relocate against instead of the running kernel's.
    ``kconfig``: kernel configuration text (``CONFIG_X=y`` lines), or a
    mapping of extern name -> value that answers first (``LINUX_*`` too).
    ``log_level``: keep verifier logs (``prog.verifier_log``) of successful loads.
    """
    why = unavailable()
    if why is not None:
        from ..errors import BPFPermissionError

        raise BPFPermissionError(errno.EPERM, f"cannot load {spec.name} into the kernel: {why}")
    obj = Object(spec)
    try:
        _Loader(spec, obj, partial, pin_root, dict(reuse_maps or {}), core_btf, kconfig, log_level).run()
    except BaseException:
        obj._abandon()
        raise
    return obj


class _Loader:
    def __init__(self, spec: "ObjectSpec", obj: Object, partial: bool, pin_root: str | None,
                 reuse_maps: dict[str, Map], core_btf: Any, kconfig: Any, log_level: int):
        self.spec = spec
        self.obj = obj
        self.partial = partial
        self.pin_root = pin_root
        self.reuse_maps = reuse_maps
        self.core_btf = core_btf
        self.kconfig = kconfig
        self.log_level = log_level
        self.ksyms: dict[str, Any] = {}
        self.fd_array: list[int] = []
        self.func_info_ok = False
        self.reused: set[str] = set()  # maps given or found pinned: their contents are the owner's

    def run(self) -> None:
        spec = self.spec
        unknown = sorted(set(self.reuse_maps) - set(spec.maps))
        if unknown:
            raise ObjectError(f"{spec.name}: reuse_maps names {unknown[0]!r}, which the object does not declare "
                              f"(maps: {', '.join(spec.maps) or 'none'})")
        wanted = [p for p in spec.programs.values() if p.autoload]
        self._relocate(wanted)
        self._load_btf()
        for name, ms in spec.maps.items():
            if ms.autocreate or name in self.reuse_maps:
                self._create_map(name, ms)
        self._fill_map_in_maps()
        for prog in wanted:
            self._load_program(prog)
        self._fill_prog_arrays()
        for m in self.obj.maps.values():
            if hasattr(m, "bind") and m.type == MapType.PROG_ARRAY:
                m.bind(self.obj.programs)

    # -- step 1: relocations -------------------------------------------------

    def _relocate(self, wanted: list["ProgramSpec"]) -> None:
        spec = self.spec
        if spec.btf_ext is not None and any(spec.btf_ext.core_relos.values()):
            from ..object.core import CORETarget, apply_core

            target = self.core_btf if self.core_btf is not None else CORETarget.running_kernel()
            results = apply_core(spec, target, strict=not self.partial)
            for r in results:
                if r.error:
                    for name in r.programs:
                        self.obj.failed.setdefault(name, ObjectError(
                            f"{spec.name}: program {name!r}: CO-RE relocation #{r.index} cannot be applied: "
                            f"{r.describe()}"))
        if isinstance(self.kconfig, Mapping):
            spec.resolve_kconfig(self.kconfig.get)
        else:
            spec.resolve_kconfig(config=self.kconfig)
        if any(e.kind == "ksym" for e in spec.externs.values()):
            self.ksyms = spec.resolve_ksyms()

    # -- step 2: BTF ---------------------------------------------------------

    def _load_btf(self) -> None:
        spec = self.spec
        if spec.btf is None:
            return
        from .features import btf_features, supports_btf

        if not supports_btf():
            self.obj.notes.append("the kernel has no BTF support: maps and programs are loaded without type "
                                  "information")
            return
        features = btf_features()
        try:
            data = spec.kernel_btf(features).to_bytes()
            self.obj.btf = KernelBTF.load(data)
        except (BPFError, OSError) as exc:
            if any(e.kind == "ksym" for e in spec.externs.values()) or any(
                    m.type in STORAGE_TYPES for m in spec.maps.values() if m.autocreate):
                raise ObjectError(f"{spec.name}: the kernel refused the object's BTF, which its maps or externs "
                                  f"need: {exc}") from exc
            self.obj.notes.append(f"BTF left out (the kernel refused it: {exc}); no source lines in verifier "
                                  "messages")
            return
        self.func_info_ok = features.func

    # -- step 3: maps --------------------------------------------------------

    def _create_map(self, name: str, ms: "MapSpec") -> None:
        obj, spec = self.obj, self.spec
        if ms.type == MapType.STRUCT_OPS:
            raise NotSupportedError(f"struct_ops map {name!r} of {spec.name}",
                                    reason="pybpf does not register struct_ops yet (the kernel type's layout "
                                           "must be filled with program fds)")
        if ms.type == MapType.ARENA:
            raise NotSupportedError(f"arena map {name!r} of {spec.name}",
                                    reason="pybpf does not map BPF arenas yet")
        key_codec, value_codec = self._codecs(ms)
        pin_path = self._pin_path(name, ms)
        if name in self.reuse_maps:
            given, what = self.reuse_maps[name], f"the map given as reuse_maps[{name!r}]"
            if not isinstance(given, Map) or given.closed:
                problem = "closed" if isinstance(given, Map) else f"{given!r}, not a Map"
                raise MapError(f"map {name!r} of {spec.name}: {what} is {problem}; give an open pybpf.kernel.Map")
            live = Map.from_fd(os.dup(given.fd), key_codec=key_codec, value_codec=value_codec)
            self._reuse(name, ms, live, what, "give a map of the declared type, sizes and flags")
            if pin_path:
                self._pin_given(name, live, pin_path)
            return
        if pin_path and os.path.exists(pin_path):
            self._reuse(name, ms, Map.from_pin(pin_path, key_codec=key_codec, value_codec=value_codec),
                        f"the map pinned at {pin_path}", "remove the pin (rm it) or change the object")
            return
        live = self._new_map(name, ms, key_codec, value_codec)
        obj.maps[name] = live
        self._after_create(name, ms, live, initialize=True)
        if pin_path:
            live.pin(pin_path)
            obj._new_pins.append(pin_path)

    def _pin_path(self, name: str, ms: "MapSpec") -> str | None:
        """Where a map declared ``__uint(pinning, LIBBPF_PIN_BY_NAME)`` is pinned (None: not pinned)."""
        if not int(ms.pinning):
            return None
        from .fs import ensure_bpffs, pin_name

        return os.path.join(self.pin_root or ensure_bpffs(), pin_name(name))

    def _pin_given(self, name: str, live: Map, pin_path: str) -> None:
        """Pin a map given in ``reuse_maps`` where the object pins it, as libbpf's bpf_object__create_maps
        pins a preset map.  Pinned there already: fine if it is this very map, an error if another one
        (libbpf would silently swap the given map for the pinned one; a caller who gave a map means it)."""
        try:
            live.pin(pin_path)
        except KernelError as exc:
            if exc.errno != errno.EEXIST:
                raise
        else:
            self.obj._new_pins.append(pin_path)  # a failed load removes it, like the pin of a created map
            return
        try:
            with Map.from_pin(pin_path) as pinned:
                there, same = f"{pinned.describe()} id {pinned.id}", pinned.id == live.id
        except BPFError as exc:
            there, same = f"something else ({exc})", False
        if not same:
            raise MapError(f"map {name!r} of {self.spec.name}: the map given as reuse_maps[{name!r}] (id {live.id}) "
                           f"is declared pinned by name, but {pin_path} holds {there}; remove that pin "
                           f"(rm {pin_path}) or give that map (Map.from_pin({pin_path!r}))")
        live.pinned_path = pin_path

    def _reuse(self, name: str, ms: "MapSpec", live: Map, what: str, fix: str) -> None:
        """Use an existing map for ``name`` (owned by the object from here on, so a failed load closes it)."""
        live.name = name
        self.obj.maps[name] = live
        self.reused.add(name)
        _check_reusable(live, ms, self._create_args(ms)[0], what, fix)
        self._after_create(name, ms, live, initialize=False)

    def _create_args(self, ms: "MapSpec") -> tuple[dict[str, Any], dict[str, Any]]:
        """(parameters, BTF parameters) of BPF_MAP_CREATE for ``ms``."""
        from .features import supports_mmapable_arrays

        flags = int(ms.flags)
        if flags & MapFlags.MMAPABLE and ms.is_internal and not supports_mmapable_arrays():
            flags &= ~MapFlags.MMAPABLE
        max_entries = ms.max_entries
        if ms.type == MapType.PERF_EVENT_ARRAY and not max_entries:
            from .fs import possible_cpu_count

            max_entries = possible_cpu_count()
        args = dict(type=ms.type, key_size=ms.key_size, value_size=ms.value_size, max_entries=max_entries,
                    flags=flags, map_extra=ms.map_extra, numa_node=ms.numa_node or None)
        btf_args: dict[str, Any] = {}
        if self.obj.btf is not None and ms.type not in _NO_BTF_TYPES and (ms.key_type_id or ms.value_type_id):
            btf_args = dict(btf=self.obj.btf, btf_key_type_id=ms.key_type_id, btf_value_type_id=ms.value_type_id)
        return args, btf_args

    def _new_map(self, name: str, ms: "MapSpec", key_codec: Any, value_codec: Any) -> Map:
        args, btf_args = self._create_args(ms)
        inner = None
        if ms.inner is not None:
            inner_args, inner_btf = self._create_args(ms.inner)
            inner = _create_with_btf_fallback(f"{name}.inner", inner_args, inner_btf)
        try:
            return _create_with_btf_fallback(name, dict(args, inner_map=inner, key_codec=key_codec,
                                                        value_codec=value_codec), btf_args)
        finally:
            if inner is not None:
                inner.close()  # the outer map keeps what it needs of the template

    def _after_create(self, name: str, ms: "MapSpec", live: Map, initialize: bool) -> None:
        if ms.is_internal:
            key = (0).to_bytes(4, "little")
            if initialize and ms.data is not None and ms.internal != ".bss" and any(ms.data):
                live.update_raw(key, bytes(ms.data))
            if initialize and ms.frozen:
                live.freeze()
            mmapable = bool(live.flags & MapFlags.MMAPABLE)
            self.obj.data_maps[ms.internal] = LiveDataMap(live, ms.internal, ms.frozen, mmapable)
        elif ms.type in (MapType.RINGBUF, MapType.PERF_EVENT_ARRAY) and ms.dropped_value_type is not None \
                and self.spec.btf is not None:
            try:
                live.record_codec = RecordCodec(self.spec.btf.codec(ms.dropped_value_type.id))
            except BPFError:
                pass

    def _codecs(self, ms: "MapSpec") -> tuple[Any, Any]:
        btf = self.spec.btf
        if btf is None or ms.is_internal:
            return None, None

        def codec(type_id: int) -> Any:
            if not type_id:
                return None
            try:
                return btf.codec(type_id)
            except BPFError:
                return None  # a type the codec cannot express (too big...): raw bytes

        # fd maps (sockmaps, prog arrays...) take live objects and return ids whatever the declared
        # value type: Map's own FD value codec, not the BTF integer
        value = None if ms.type in FD_VALUE_TYPES else codec(ms.value_type_id)
        return codec(ms.key_type_id), value

    def _fill_map_in_maps(self) -> None:
        """Declared slots go into map-in-maps this load created only: a reused one keeps the inner maps
        its owner put there (libbpf's init_map_in_map_slots runs for created maps only)."""
        for name, ms in self.spec.maps.items():
            if not (ms.autocreate and ms.contents and isinstance(ms.type, MapType) and ms.type.is_map_in_map) \
                    or name in self.reused:
                continue
            outer = self.obj.maps[name]
            for key, inner_name in ms.contents:
                inner = self.obj.maps.get(inner_name)
                if inner is None:
                    raise ObjectError(f"{self.spec.name}: map {name!r} slot {key} names map {inner_name!r}, which "
                                      "was not created")
                outer.update_raw(int(key).to_bytes(outer.key_size, "little"), inner.fd.to_bytes(4, "little"))

    def _fill_prog_arrays(self) -> None:
        for name, ms in self.spec.maps.items():
            if not (ms.autocreate and ms.contents and ms.type == MapType.PROG_ARRAY):
                continue
            array = self.obj.maps[name]
            for key, prog_name in ms.contents:
                prog = self.obj.programs.get(prog_name)
                if prog is None:
                    continue  # not loaded (autoload off, or failed with partial=True): libbpf skips it too
                array.update_raw(int(key).to_bytes(4, "little"), prog.fd.to_bytes(4, "little"))

    # -- step 4: programs ----------------------------------------------------

    def _load_program(self, prog: "ProgramSpec") -> None:
        if prog.name in self.obj.failed:
            return
        try:
            self.obj.programs[prog.name] = self._program(prog)
        except BPFError as exc:
            if repr(prog.name) not in str(exc):
                exc = naming_program(exc, prog.name, "load")
            if not self.partial:
                raise exc
            self.obj.failed[prog.name] = exc

    def _program(self, prog: "ProgramSpec") -> Program:
        spec = self.spec
        if prog.reason:
            raise ObjectError(f"{spec.name}: program {prog.name!r} cannot be loaded: {prog.reason}")
        if prog.type == ProgType.UNSPEC:
            raise ObjectError(f"{spec.name}: program {prog.name!r}: section {prog.section!r} does not say the program "
                              "type; use a libbpf section name (SEC(\"tracepoint/...\"), SEC(\"xdp\")...)")
        map_fds = {name: m.fd for name, m in self.obj.maps.items()}
        insns = spec.link_instructions(prog.name, map_fds, self.ksyms, self._module_btf_slot)
        attach_btf_id, attach_obj_fd = self._attach_btf_target(prog)
        btf = self.obj.btf
        func_info = line_info = b""
        if btf is not None and self.func_info_ok:
            func_info = b"".join(_FUNC_INFO.pack(f.insn_off, f.type_id) for f in prog.func_info)
            line_info = b"".join(_LINE_INFO.pack(li.insn_off, li.file_name_off, li.line_off, li.line_col)
                                 for li in prog.line_info)
        source_lines = [SourceLine(li.insn_off, li.file, li.line, li.column, li.source) for li in prog.line_info]
        try:
            return Program.load(
                prog.type, insns, license=prog.license or spec.license or "", name=prog.name,
                section=prog.section, expected_attach_type=prog.expected_attach_type, flags=int(prog.flags),
                kern_version=prog.kern_version or spec.kern_version, btf=btf if func_info else None,
                func_info=func_info, line_info=line_info, source_lines=source_lines, attach_btf_id=attach_btf_id,
                attach_btf_obj_fd=attach_obj_fd, fd_array=self.fd_array, log_level=self.log_level)
        except VerifierError as exc:
            raise self._explain(prog, exc) from None

    def _explain(self, prog: "ProgramSpec", exc: VerifierError) -> VerifierError:
        """A rejection caused by a call libbpf-style loading poisoned: say which relocation, map or kfunc."""
        found = list(_POISON.finditer(exc.log))
        slot = getattr(exc, "instruction", None)
        if not found or slot is None:
            return exc
        reason = self.spec.explain_poison(prog.name, slot, int(found[-1].group(1)))
        if reason is None:
            return exc
        better = VerifierError(exc.errno, prog.name, exc.log, summary=reason, source=exc.source)
        better.instruction, better.location = slot, getattr(exc, "location", None)
        return better

    def _attach_btf_target(self, prog: "ProgramSpec") -> tuple[int, int]:
        """(attach_btf_id, BTF object fd of the module holding it, or 0) for programs that name a BTF target."""
        if not prog.needs_btf_target:
            return 0, 0
        kind = (prog.section_def.prefix if prog.section_def else "").split(".")[0]
        target = prog.attach_target
        if prog.type == ProgType.EXT:
            raise ObjectError(f"{self.spec.name}: program {prog.name!r} is a freplace program: it needs the program "
                              "it replaces, which pybpf's object loader does not take yet")
        if not target:
            raise ObjectError(f"{self.spec.name}: program {prog.name!r}: SEC({prog.section!r}) names no "
                              "function or hook to attach to")
        prefix, btf_kind = _BTF_TARGETS.get(kind, ("", "func"))
        module, _, func = target.rpartition(":") if kind in ("fentry", "fexit", "fmod_ret") else ("", "", target)
        type_id, module = find_kernel_btf_id(prefix + func, btf_kind, module or None)
        if type_id is None:
            raise ObjectError(f"{self.spec.name}: program {prog.name!r}: the kernel has no {btf_kind} "
                              f"{prefix + func!r} in its BTF for SEC({prog.section!r})")
        if module is None:
            return type_id, 0
        return type_id, self._module_btf(module).fd

    def _module_btf(self, module: str) -> KernelBTF:
        btf = self.obj._module_btfs.get(module)
        if btf is None:
            btf_id = kernel_btf_object_ids().get(module)
            if btf_id is None:
                raise ObjectError(f"{self.spec.name}: kernel module {module!r} has no BTF object loaded")
            btf = self.obj._module_btfs[module] = KernelBTF.from_id(btf_id)
        return btf

    def _module_btf_slot(self, module: str) -> tuple[int, int]:
        """link_instructions' callback: (fd of the module's BTF, its index in the program's fd_array)."""
        fd = self._module_btf(module).fd
        if not self.fd_array:
            self.fd_array.append(0)  # index 0 means vmlinux to the kernel
        if fd not in self.fd_array:
            self.fd_array.append(fd)
        return fd, self.fd_array.index(fd)


def _create_with_btf_fallback(name: str, args: dict[str, Any], btf_args: dict[str, Any]) -> Map:
    """Create a map with its BTF types; if the kernel refuses, again without (what libbpf does)."""
    if not btf_args:
        return Map.create(name=name, **args)
    try:
        return Map.create(name=name, **args, **btf_args)
    except (KernelError, MapError) as first:
        if args["type"] in STORAGE_TYPES:
            raise
        try:
            return Map.create(name=name, **args)
        except BPFError:
            raise first from None


def _check_reusable(live: Map, ms: "MapSpec", args: dict[str, Any], what: str, fix: str) -> None:
    """An existing map (pinned by name, or given) stands for a declaration only if it is the map the
    object declares (libbpf's map_is_reuse_compat).  The inner map template of a map-in-map is not
    compared, as libbpf does not: the kernel reports nothing about it (neither BPF_OBJ_GET_INFO_BY_FD
    nor fdinfo), so a mismatch shows up as the verifier refusing the program's use of the inner map."""
    info: MapInfo = live.info()
    flags = int(args["flags"])
    if args["type"] in STORAGE_TYPES or args["type"] == MapType.LPM_TRIE:
        flags |= MapFlags.NO_PREALLOC  # what Map.create adds for these types
    want = {"type": int(args["type"]), "key_size": args["key_size"], "value_size": args["value_size"],
            "max_entries": args["max_entries"], "flags": flags, "map_extra": args["map_extra"]}
    have = {"type": int(info.type), "key_size": info.key_size, "value_size": info.value_size,
            "max_entries": info.max_entries, "flags": info.flags, "map_extra": info.map_extra}
    diffs = [f"{k} {have[k]} (the object wants {want[k]})" for k in want if have[k] != want[k]]
    if diffs:
        raise MapError(f"map {ms.name!r}: {what} is not compatible: {', '.join(diffs)}; {fix}")


# --- kernel BTF lookups ----------------------------------------------------------------


@cache
def kernel_btf_object_ids() -> dict[str, int]:
    """Kernel BTF object name ('vmlinux', module names) -> its BTF id (for attach_btf_obj_fd and fd_array)."""
    from .syscall import btf_ids

    out: dict[str, int] = {}
    for btf_id in btf_ids():
        try:
            with KernelBTF.from_id(btf_id) as btf:
                info = btf.info()
        except (BPFError, OSError):
            continue
        if info.kernel_btf:
            out.setdefault(info.name, btf_id)
    return out


def find_kernel_btf_id(name: str, kind: str, module: str | None = None) -> tuple[int | None, str | None]:
    """(type id, module or None for vmlinux) of ``kind`` ``name`` in the running kernel's BTF."""
    from ..btf import kernel_btf, kernel_modules_with_btf, module_btf

    places: Iterable[str] = [module] if module else ["vmlinux", *kernel_modules_with_btf()]
    for place in places:
        try:
            btf = kernel_btf() if place == "vmlinux" else module_btf(place)
        except BPFError:
            continue
        ids = [i for i in btf.ids_by_name(name, kind) if i >= btf.start_id]
        if ids:
            return ids[0], None if place == "vmlinux" else place
    return None, None


__all__ = ["Object", "find_kernel_btf_id", "load_spec", "unavailable"]
