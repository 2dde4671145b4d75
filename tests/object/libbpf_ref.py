"""libbpf 1.1 (libbpf.so.1 through ctypes) as the reference for pybpf.object.

Opens objects the way libbpf does, loads them into the kernel with libbpf's
debug log captured, and reads back its view: programs (name, section, type,
expected attach type), maps (type, sizes, max_entries, flags) and the CO-RE
relocation decisions from the log.  Used by tests/object and by
bench/compare_libbpf.py.
"""

from __future__ import annotations

import ctypes
import re

class _OpenOpts(ctypes.Structure):
    """struct bpf_object_open_opts of libbpf 1.1, up to btf_custom_path."""

    _fields_ = [("sz", ctypes.c_size_t), ("object_name", ctypes.c_char_p), ("relaxed_maps", ctypes.c_bool),
                ("pin_root_path", ctypes.c_char_p), ("_unused", ctypes.c_uint32), ("kconfig", ctypes.c_char_p),
                ("btf_custom_path", ctypes.c_char_p)]


_PRINT_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)


class LibBPF:
    """The few libbpf 1.1 entry points the comparison needs."""

    def __init__(self) -> None:
        lib = ctypes.CDLL("libbpf.so.1", use_errno=True)
        self.lib = lib
        vp, cp, u32 = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint32
        for name, res, args in [
            ("bpf_object__open_file", vp, [cp, vp]), ("bpf_object__close", None, [vp]),
            ("bpf_object__load", ctypes.c_int, [vp]), ("bpf_object__next_program", vp, [vp, vp]),
            ("bpf_object__next_map", vp, [vp, vp]), ("bpf_program__name", cp, [vp]),
            ("bpf_program__section_name", cp, [vp]), ("bpf_program__type", ctypes.c_int, [vp]),
            ("bpf_program__expected_attach_type", ctypes.c_int, [vp]), ("bpf_map__name", cp, [vp]),
            ("bpf_map__type", ctypes.c_int, [vp]), ("bpf_map__key_size", u32, [vp]),
            ("bpf_map__value_size", u32, [vp]), ("bpf_map__max_entries", u32, [vp]),
            ("bpf_map__map_flags", u32, [vp]), ("bpf_program__autoload", ctypes.c_bool, [vp]),
            ("libbpf_set_print", vp, [_PRINT_FN]), ("bpf_map__set_max_entries", ctypes.c_int, [vp, u32]),
            ("bpf_map__set_value_size", ctypes.c_int, [vp, u32]),
            ("libbpf_prog_type_by_name", ctypes.c_int,
             [cp, ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int)]),
            ("bpf_map__numa_node", u32, [vp]), ("bpf_map__map_extra", ctypes.c_uint64, [vp]),
            ("bpf_map__inner_map", vp, [vp]), ("bpf_program__flags", u32, [vp]),
            ("bpf_program__insn_cnt", ctypes.c_size_t, [vp]), ("bpf_program__insns", vp, [vp]),
            ("bpf_map__fd", ctypes.c_int, [vp]),
            ("bpf_map__initial_value", vp, [vp, ctypes.POINTER(ctypes.c_size_t)]),
            ("bpf_object__btf", vp, [vp]), ("btf__raw_data", vp, [vp, ctypes.POINTER(ctypes.c_uint32)]),
        ]:
            fn = getattr(lib, name)
            fn.restype, fn.argtypes = res, args
        self.libc = ctypes.CDLL(None)
        self.libc.vsnprintf.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_void_p]
        self.log: list[str] = []
        self._cb = _PRINT_FN(self._print)
        lib.libbpf_set_print(self._cb)

    def _print(self, level: int, fmt: bytes, args: int) -> int:
        buf = ctypes.create_string_buffer(4096)
        self.libc.vsnprintf(buf, len(buf), fmt, args)
        self.log.append(buf.value.decode("utf-8", "replace"))
        return 0

    def section_type(self, section: str) -> tuple[int, int] | None:
        """libbpf_prog_type_by_name: (program type, expected attach type), None if unknown to libbpf 1.1."""
        ptype, atype = ctypes.c_int(), ctypes.c_int()
        if self.lib.libbpf_prog_type_by_name(section.encode(), ctypes.byref(ptype), ctypes.byref(atype)) != 0:
            return None
        return ptype.value, atype.value

    def details(self, path: str) -> tuple[dict, dict]:
        """Programs (type, attach type, flags, insn count) and maps with numa_node, map_extra and inner map."""
        self.log = []
        obj = self.lib.bpf_object__open_file(path.encode(), None)
        if not obj:
            raise OSError(ctypes.get_errno(), f"libbpf cannot open {path}")
        progs, maps = {}, {}
        p = self.lib.bpf_object__next_program(obj, None)
        while p:
            progs[self.lib.bpf_program__name(p).decode()] = {
                "section": self.lib.bpf_program__section_name(p).decode(), "type": self.lib.bpf_program__type(p),
                "attach_type": self.lib.bpf_program__expected_attach_type(p), "flags": self.lib.bpf_program__flags(p),
                "autoload": self.lib.bpf_program__autoload(p), "insns": self.lib.bpf_program__insn_cnt(p)}
            p = self.lib.bpf_object__next_program(obj, p)
        m = self.lib.bpf_object__next_map(obj, None)
        while m:
            maps[self.lib.bpf_map__name(m).decode()] = self._map(m)
            m = self.lib.bpf_object__next_map(obj, m)
        self.lib.bpf_object__close(obj)
        return progs, maps

    def _map(self, m) -> dict:
        inner = self.lib.bpf_map__inner_map(m)
        return {"type": self.lib.bpf_map__type(m), "key_size": self.lib.bpf_map__key_size(m),
                "value_size": self.lib.bpf_map__value_size(m), "max_entries": self.lib.bpf_map__max_entries(m),
                "flags": self.lib.bpf_map__map_flags(m), "numa_node": self.lib.bpf_map__numa_node(m),
                "map_extra": self.lib.bpf_map__map_extra(m), "inner": self._map(inner) if inner else None}

    def view(self, path: str, load: bool, btf_custom_path: str | None = None) -> tuple[dict, dict, list[str], str]:
        """(programs, maps, debug log, error) as libbpf sees the object (CO-RE against ``btf_custom_path``).

        After loading, ``instructions``, ``map_fds``, ``map_data`` and ``btf`` hold what libbpf gave the kernel.
        """
        self.log = []
        self.instructions: dict[str, bytes] = {}
        self.map_fds: dict[str, int] = {}
        self.map_data: dict[str, bytes] = {}
        self.btf: bytes | None = None
        opts = None
        if btf_custom_path is not None:
            opts = _OpenOpts(sz=ctypes.sizeof(_OpenOpts), btf_custom_path=btf_custom_path.encode())
        obj = self.lib.bpf_object__open_file(path.encode(), ctypes.addressof(opts) if opts is not None else None)
        if not obj:
            return {}, {}, self.log, f"libbpf cannot open it (errno {ctypes.get_errno()})"
        progs, maps = {}, {}
        p = self.lib.bpf_object__next_program(obj, None)
        while p:
            name = self.lib.bpf_program__name(p).decode()
            progs[name] = (self.lib.bpf_program__section_name(p).decode(), self.lib.bpf_program__type(p),
                           self.lib.bpf_program__expected_attach_type(p))
            p = self.lib.bpf_object__next_program(obj, p)
        m = self.lib.bpf_object__next_map(obj, None)
        while m:
            maps[self.lib.bpf_map__name(m).decode()] = (
                self.lib.bpf_map__type(m), self.lib.bpf_map__key_size(m), self.lib.bpf_map__value_size(m),
                self.lib.bpf_map__max_entries(m), self.lib.bpf_map__map_flags(m))
            m = self.lib.bpf_object__next_map(obj, m)
        error = ""
        if load:
            # sizes tools fill in from user space before loading (stack maps, per-CPU buffers)
            m = self.lib.bpf_object__next_map(obj, None)
            while m:
                if self.lib.bpf_map__max_entries(m) == 0:
                    self.lib.bpf_map__set_max_entries(m, 1)
                if self.lib.bpf_map__value_size(m) == 0 and self.lib.bpf_map__type(m) == 7:  # STACK_TRACE
                    self.lib.bpf_map__set_value_size(m, 127 * 8)
                m = self.lib.bpf_object__next_map(obj, m)
            failed = self.lib.bpf_object__load(obj) != 0
            btf = self.lib.bpf_object__btf(obj)
            if btf:  # the object's BTF after libbpf's fixups (extern layout, DATASECs, static subprograms)
                size = ctypes.c_uint32()
                ptr = self.lib.btf__raw_data(btf, ctypes.byref(size))
                self.btf = ctypes.string_at(ptr, size.value)
            if failed:
                error = f"load failed (errno {ctypes.get_errno()})"
            else:
                # the final instructions libbpf gave the kernel, and the map fds they contain
                p = self.lib.bpf_object__next_program(obj, None)
                while p:
                    ptr, n = self.lib.bpf_program__insns(p), self.lib.bpf_program__insn_cnt(p)
                    if ptr and self.lib.bpf_program__autoload(p):
                        self.instructions[self.lib.bpf_program__name(p).decode()] = ctypes.string_at(ptr, n * 8)
                    p = self.lib.bpf_object__next_program(obj, p)
                m = self.lib.bpf_object__next_map(obj, None)
                while m:
                    name = self.lib.bpf_map__name(m).decode()
                    self.map_fds[name] = self.lib.bpf_map__fd(m)
                    size = ctypes.c_size_t()
                    ptr = self.lib.bpf_map__initial_value(m, ctypes.byref(size))
                    if ptr:  # global data and .kconfig as libbpf filled them in
                        self.map_data[name] = ctypes.string_at(ptr, size.value)
                    m = self.lib.bpf_object__next_map(obj, m)
        self.lib.bpf_object__close(obj)
        return progs, maps, list(self.log), error


_PATCHED = re.compile(r"prog '([^']+)': relo #(\d+): patched insn #(\d+) \(([A-Z/0-9]+)\) (?:imm|off|imm64) "
                      r"(-?\d+) -> (-?\d+)")
_POISON = re.compile(r"prog '([^']+)': relo #(\d+): substituting insn #(\d+) w/ invalid insn")
_MEMSZ = re.compile(r"prog '([^']+)': relo #(\d+): patched insn #(\d+) \(LDX/ST/STX\) mem_sz (\d+) -> (\d+)")


def libbpf_core(log: list[str]) -> dict[tuple[str, int, int], tuple]:
    """(function, relo #, insn #) -> ("patched", new value) | ("poisoned",) from libbpf's debug log."""
    out: dict[tuple[str, int, int], tuple] = {}
    for line in log:
        if m := _PATCHED.search(line):
            out[(m[1], int(m[2]), int(m[3]))] = ("patched", int(m[6]) & 0xFFFFFFFFFFFFFFFF)
        elif m := _POISON.search(line):
            # a poisoned ld_imm64 logs its second slot first: keep the instruction's own index
            stale = [k for k in out if k[:2] == (m[1], int(m[2])) and k[2] == int(m[3]) + 1]
            for k in stale:
                del out[k]
            out.setdefault((m[1], int(m[2]), int(m[3])), ("poisoned",))
    return out


def available() -> bool:
    try:
        ctypes.CDLL("libbpf.so.1")
    except OSError:
        return False
    return True
