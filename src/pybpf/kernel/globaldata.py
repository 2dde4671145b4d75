"""Global variables of a loaded object, read and written in the live kernel maps.

``.data``/``.bss``/``.rodata`` sections become one-element array maps.  When the
kernel allows (BPF_F_MMAPABLE, 5.5+) the map's value is mapped into this
process, as libbpf's skeletons do, so ``obj.bss["counter"]`` is a memory read,
not a system call; otherwise the value is read and written with map lookups
and updates.  ``.rodata`` is frozen after load: reading works, writing raises.
"""

from __future__ import annotations

import mmap
from typing import Any, Mapping

from ..errors import MapError, ObjectError
from ..object.spec import SectionVariables
from .maps import PAGE_SIZE, Map

_KEY0 = (0).to_bytes(4, "little")


class LiveDataMap:
    """The bytes of one internal map (a one-element array), through an mmap when there is one."""

    def __init__(self, live: Map, section: str, frozen: bool, mmapable: bool):
        self.map = live
        self.section = section
        self.frozen = frozen
        self._mmap: mmap.mmap | None = None
        if mmapable and live.value_size:
            length = (live.value_size + PAGE_SIZE - 1) // PAGE_SIZE * PAGE_SIZE
            prot = mmap.PROT_READ if frozen else mmap.PROT_READ | mmap.PROT_WRITE
            self._mmap = mmap.mmap(live.fd, length, mmap.MAP_SHARED, prot)

    def read(self, offset: int, size: int) -> bytes:
        if self._mmap is not None:
            return self._mmap[offset:offset + size]
        raw = self.map.lookup_raw(_KEY0)
        return b"" if raw is None else raw[offset:offset + size]

    def write(self, offset: int, data: bytes) -> None:
        if self.frozen:
            raise MapError(f"{self.section} is read-only after load (the map is frozen); set the variable in the "
                           "spec before loading (spec.rodata[name] = value)")
        if self._mmap is not None:
            self._mmap[offset:offset + len(data)] = data
            return
        raw = bytearray(self.map.lookup_raw(_KEY0) or bytes(self.map.value_size))
        raw[offset:offset + len(data)] = data
        self.map.update_raw(_KEY0, bytes(raw))

    def close(self) -> None:
        if self._mmap is not None:
            self._mmap.close()
            self._mmap = None


class LiveVariables(SectionVariables):
    """The global variables of one data section by name (``obj.bss["hits"]``), decoded through BTF."""

    def __init__(self, section: str, variables: Mapping[str, Any], data: LiveDataMap | None):
        super().__init__(section, variables)
        self._data = data

    def _live(self) -> LiveDataMap:
        if self._data is None:
            raise ObjectError(f"the map of {self._section} was not created (autocreate off)")
        return self._data

    def __getitem__(self, name: str) -> Any:
        var = self.variable(name)
        return var._codec().decode(self._live().read(var.offset, var.size))

    def __setitem__(self, name: str, value: Any) -> None:
        var = self.variable(name)
        live = self._live()
        try:
            data = var._codec().encode(value)
        except MapError as exc:
            raise MapError(f"variable {name!r} ({self._section}): {str(exc).lstrip(': ')}") from None
        live.write(var.offset, data)


__all__ = ["LiveDataMap", "LiveVariables"]
