"""Maps with the kernel's semantics, living in the VM's memory.

Each map keeps its elements as Python buffers: a value a program looks up is
mapped into the VM's address space (bounded to that one value), so a program
can read and write it through the pointer it got, exactly as in the kernel,
and nowhere else.  Three layers:

- the element store of each map type (``_find``, ``_update``, ``_delete``,
  ``_next_key``), returning errno values like the kernel's map ops;
- the byte-level user-space primitives (``lookup_raw``, ``update_raw``...) of
  the kernel backend's Map, raising the same exceptions;
- :class:`~pybpf.vm.mapdict.MapDict`, the dict-like layer on top.

Helpers reach the store through ``prog_lookup``/``prog_update``/... which take
and return what a program sees (addresses, negative errno).
"""

from __future__ import annotations

import errno
import os
import zlib
from typing import TYPE_CHECKING, Any, Iterator

from ..errors import MapError, VMError, VMFault
from ..object.codec import FDValueCodec, as_codec
from .constants import (
    BPF_F_NO_COMMON_LRU, BPF_F_RDONLY_PROG, BPF_F_REUSE_STACKID, BPF_F_WRONLY_PROG, MapType, UpdateFlag,
    map_type_name,
)
from .lru import CommonLRU, PerCPULRU
from ..object.mapdict import MapDict, QueueValues, round8

if TYPE_CHECKING:
    from .machine import Run, VM

ENOENT, EEXIST, E2BIG, EINVAL, ENOSPC = errno.ENOENT, errno.EEXIST, errno.E2BIG, errno.EINVAL, errno.ENOSPC
M64 = (1 << 64) - 1

PER_CPU_TYPES = frozenset({MapType.PERCPU_ARRAY, MapType.PERCPU_HASH, MapType.LRU_PERCPU_HASH})


def _neg(err: int) -> int:
    return (-err) & M64


class VMMap(MapDict):
    """A map of a VM.  Dict-like (see MapDict); ``fd`` and ``id`` identify it inside its VM."""

    kind = "map"
    program_writable = True

    def __init__(self, vm: "VM", type: int, key_size: int, value_size: int, max_entries: int, *, flags: int = 0,
                 name: str = "", map_extra: int = 0, key_codec: Any = None, value_codec: Any = None):
        self.vm = vm
        self.type = MapType(type)
        self.name = name
        self.key_size = key_size
        self.value_size = value_size
        self.max_entries = max_entries
        self.flags = flags
        self.map_extra = map_extra
        self.per_cpu = self.type in PER_CPU_TYPES
        self.ncpus = vm.cpus if self.per_cpu else 1
        self.key_codec = as_codec(key_codec, key_size)
        self.value_codec = as_codec(value_codec or self._default_value_codec(), value_size)
        self.program_writable = not flags & BPF_F_RDONLY_PROG
        self.program_readable = not flags & BPF_F_WRONLY_PROG
        self.frozen = False
        self.fd = vm._register_map(self)
        self.id = len(vm.maps)
        self.handle = vm.memory.map(None, f"map {name!r}" if name else f"map #{self.id}", "map",
                                    writable=False, readable=False, owner=self)
        self.closed = False

    def _default_value_codec(self) -> Any:
        return None

    # -- identity ----------------------------------------------------------------

    def describe(self) -> str:
        t = map_type_name(self.type)
        return f"{t} map {self.name!r}" if self.name else f"{t} map"

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} {self.name!r} {map_type_name(self.type)} key={self.key_size} "
                f"value={self.value_size} max_entries={self.max_entries}>")

    def fileno(self) -> int:
        return self.fd

    def close(self) -> None:
        self.closed = True

    def __enter__(self) -> "VMMap":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def freeze(self) -> None:
        """Make the map read-only for user space from now on (BPF_MAP_FREEZE)."""
        self.frozen = True

    # -- element store: subclasses implement ----------------------------------------

    def _find(self, key: bytes, cpu: int, from_prog: bool) -> Any:
        """The value storage for ``key`` (a buffer, or a list of per-CPU buffers), or None."""
        raise MapError(f"lookup on {self.describe()}: this operation is not supported on "
                       f"{map_type_name(self.type)} maps")

    def _update(self, key: bytes, value: bytes, flags: int, cpu: int, all_cpus: bool) -> int:
        return EINVAL

    def _delete(self, key: bytes) -> int:
        return EINVAL

    def _next_key(self, key: bytes | None) -> bytes | None:
        raise MapError(f"iterate on {self.describe()}: this operation is not supported on "
                       f"{map_type_name(self.type)} maps")

    def _value_name(self, key: bytes) -> str:
        shown = key.hex() if len(key) <= 16 else key[:16].hex() + "..."
        return f"value of {self.describe()} at key {shown}" if key else f"value of {self.describe()}"

    # -- user-space primitives (the kernel backend's Map API) -------------------------

    def _error(self, err: int, op: str) -> BaseException:
        what = f"{op} on {self.describe()}"
        if err == E2BIG and op == "update":
            return MapError(f"{what} failed: the map is full (max_entries={self.max_entries})")
        if err == EEXIST:
            return MapError(f"{what} failed: the key already exists (flags=NOEXIST)")
        if err == ENOENT and op == "update":
            return KeyError(f"{self.describe()}: no such key (flags=EXIST)")
        if err == ENOSPC:
            return MapError(f"{what} failed: no space left (max_entries={self.max_entries})")
        return MapError(f"{what} failed: {os.strerror(err)}")

    def _check_key(self, key: bytes | None) -> bytes:
        key = bytes(key or b"")
        if len(key) != self.key_size:
            raise MapError(f"{self.describe()}: key of {len(key)} bytes, the map's key_size is {self.key_size}")
        return key

    def lookup_raw(self, key: bytes | None, flags: int = 0) -> bytes | None:
        """Value bytes for ``key`` bytes (per-CPU: every CPU's value, 8-byte aligned), or None."""
        found = self._find(self._check_key(key), self.vm.cpu, False)
        if found is None:
            return None
        if self.per_cpu:
            pad = bytes(round8(self.value_size) - self.value_size)
            return b"".join(bytes(v) + pad for v in found)
        return bytes(found)

    def update_raw(self, key: bytes | None, value: bytes | None, flags: int = 0) -> None:
        if self.frozen:
            raise MapError(f"update on {self.describe()} failed: the map is frozen (read-only for user space)")
        key = self._check_key(key)
        value = bytes(value or b"")
        want = round8(self.value_size) * self.ncpus if self.per_cpu else self.value_size
        if len(value) != want:
            raise MapError(f"{self.describe()}: value of {len(value)} bytes, expected {want}")
        if flags & ~(UpdateFlag.NOEXIST | UpdateFlag.EXIST | UpdateFlag.F_LOCK) or \
                flags & 3 == UpdateFlag.NOEXIST | UpdateFlag.EXIST:
            raise MapError(f"update on {self.describe()}: invalid flags {flags:#x}")
        err = self._update(key, value, flags, self.vm.cpu, True)
        if err:
            raise self._error(err, "update")

    def delete_raw(self, key: bytes | None) -> bool:
        """Delete ``key``; False when it was not there."""
        if self.frozen:
            raise MapError(f"delete on {self.describe()} failed: the map is frozen (read-only for user space)")
        err = self._delete(self._check_key(key))
        if err == ENOENT:
            return False
        if err:
            raise self._error(err, "delete")
        return True

    def next_key_raw(self, key: bytes | None) -> bytes | None:
        """The key after ``key`` (the first key for None or a missing key); None at the end."""
        return self._next_key(None if key is None else bytes(key))

    def lookup_and_delete_raw(self, key: bytes | None) -> bytes | None:
        value = self.lookup_raw(key)
        if value is not None:
            err = self._delete(self._check_key(key))
            if err:
                raise self._error(err, "lookup_and_delete")
        return value

    # -- what programs see (called by helpers) ------------------------------------------

    def read_key(self, address: int, what: str) -> bytes:
        return self.vm.memory.load(address, self.key_size, f"{what} key of {self.describe()}")

    def prog_lookup(self, run: "Run", key: bytes) -> int:
        """Address of the value for ``key`` (this CPU's, for per-CPU maps), or 0."""
        found = self._find(key, run.cpu, True)
        if found is None:
            return 0
        buf = found[run.cpu] if self.per_cpu else found
        return run.region_for(buf, self._value_name(key), writable=self.program_writable, owner=self)

    def prog_update(self, run: "Run", key: bytes, value: bytes, flags: int) -> int:
        if flags & ~(UpdateFlag.NOEXIST | UpdateFlag.EXIST | UpdateFlag.F_LOCK) or flags & 3 == 3:
            return _neg(EINVAL)
        if not self.program_writable:
            return _neg(errno.EPERM)
        return _neg(self._update(key, value, flags, run.cpu, False))

    def prog_delete(self, run: "Run", key: bytes) -> int:
        if not self.program_writable:
            return _neg(errno.EPERM)
        return _neg(self._delete(key))

    def direct_value_address(self, offset: int) -> int:
        raise VMError(f"{self.describe()}: direct value access (lddw src=2) needs an array map with one element")

    def prog_elements(self, run: "Run") -> Iterator[tuple[bytes, Any]]:
        """(key bytes, value buffer for this CPU) for bpf_for_each_map_elem."""
        for key in list(self.iter_keys_raw()):
            found = self._find(key, run.cpu, False)
            if found is not None:
                yield key, (found[run.cpu] if self.per_cpu else found)

    def _per_cpu_values(self, value: bytes, cpu: int, all_cpus: bool, old: list | None) -> list:
        """Per-CPU storage for an update: every CPU's slice from user space, or this CPU's from a program
        (other CPUs keep their old value, or start at zero)."""
        n = self.value_size
        if all_cpus:
            stride = round8(n)
            return [bytearray(value[i * stride:i * stride + n]) for i in range(self.ncpus)]
        values = [bytearray(v) for v in old] if old is not None else [bytearray(n) for _ in range(self.ncpus)]
        values[cpu][:] = value[:n]
        return values


# --- arrays -------------------------------------------------------------------------------


class ArrayMap(VMMap):
    """BPF_MAP_TYPE_ARRAY and PERCPU_ARRAY: u32 index keys, every slot exists and starts zeroed."""

    fixed_size = True
    fixed_slots = True

    def __init__(self, vm: "VM", type: int, key_size: int, value_size: int, max_entries: int, **kw: Any):
        super().__init__(vm, type, key_size, value_size, max_entries, **kw)
        ncpu = self.ncpus
        self._storage = [bytearray(value_size * max_entries) for _ in range(ncpu)]
        self._views: dict[int, Any] = {}
        self._direct: Any = None

    def _slot(self, index: int) -> Any:
        view = self._views.get(index)
        if view is None:
            n = self.value_size
            views = [memoryview(s)[index * n:(index + 1) * n] for s in self._storage]
            view = views if self.per_cpu else views[0]
            self._views[index] = view
        return view

    @staticmethod
    def _index(key: bytes) -> int:
        return int.from_bytes(key[:4], "little")

    def _find(self, key: bytes, cpu: int, from_prog: bool) -> Any:
        index = self._index(key)
        return self._slot(index) if index < self.max_entries else None

    def _update(self, key: bytes, value: bytes, flags: int, cpu: int, all_cpus: bool) -> int:
        index = self._index(key)
        if index >= self.max_entries:
            return E2BIG
        if flags & 3 == UpdateFlag.NOEXIST:
            return EEXIST
        slot = self._slot(index)
        if self.per_cpu:
            values = self._per_cpu_values(value, cpu, all_cpus, [bytes(v) for v in slot])
            for view, v in zip(slot, values):
                view[:] = v
        else:
            slot[:] = value[:self.value_size]
        return 0

    def _delete(self, key: bytes) -> int:
        return EINVAL

    def delete_raw(self, key: bytes | None) -> bool:
        raise MapError(f"{self.describe()}: array elements cannot be deleted (assign zero instead)")

    def _next_key(self, key: bytes | None) -> bytes | None:
        index = 0 if key is None or len(key) != 4 else self._index(key) + 1
        if key is not None and len(key) == 4 and self._index(key) >= self.max_entries:
            index = 0
        return index.to_bytes(4, "little") if index < self.max_entries else None

    def direct_value_address(self, offset: int) -> int:
        """Address of byte ``offset`` of element 0 (global variables: .data, .bss, .rodata)."""
        if self.per_cpu or self.max_entries != 1:
            return super().direct_value_address(offset)
        if not 0 <= offset < self.value_size:
            raise VMError(f"{self.describe()}: direct value offset {offset} is outside the {self.value_size}-byte value")
        if self._direct is None:
            self._direct = self.vm.memory.map(self._slot(0), f"{self.describe()} (global data)", "map_value",
                                              writable=self.program_writable, owner=self)
        return self._direct.address + offset

    @property
    def data(self) -> memoryview:
        """The bytes of element 0 (a global data section), writable from Python."""
        return self._slot(0) if not self.per_cpu else self._slot(0)[0]


# --- hash tables ----------------------------------------------------------------------------


class HashMap(VMMap):
    """BPF_MAP_TYPE_HASH and PERCPU_HASH: up to max_entries keys; iteration in insertion order."""

    def __init__(self, vm: "VM", type: int, key_size: int, value_size: int, max_entries: int, **kw: Any):
        super().__init__(vm, type, key_size, value_size, max_entries, **kw)
        self._elems: dict[bytes, Any] = {}
        self._order: list[bytes] | None = None

    def _find(self, key: bytes, cpu: int, from_prog: bool) -> Any:
        return self._elems.get(key)

    def _check_flags(self, key: bytes, flags: int) -> int:
        exists = key in self._elems
        if flags & 3 == UpdateFlag.NOEXIST and exists:
            return EEXIST
        if flags & 3 == UpdateFlag.EXIST and not exists:
            return ENOENT
        return 0

    def _new_value(self, key: bytes, value: bytes, cpu: int, all_cpus: bool) -> Any:
        if self.per_cpu:
            old = self._elems.get(key)
            return self._per_cpu_values(value, cpu, all_cpus, old)
        return bytearray(value[:self.value_size])

    def _update(self, key: bytes, value: bytes, flags: int, cpu: int, all_cpus: bool) -> int:
        err = self._check_flags(key, flags)
        if err:
            return err
        if key not in self._elems and len(self._elems) >= self.max_entries:
            return E2BIG
        if flags & UpdateFlag.F_LOCK and key in self._elems and not self.per_cpu:
            self._elems[key][:] = value[:self.value_size]
            return 0
        # Like the kernel, a replaced element is a new one: pointers to the old value stay valid
        # for the rest of the run but no longer belong to the map.
        if key not in self._elems:
            self._order = None
        self._elems[key] = self._new_value(key, value, cpu, all_cpus)
        return 0

    def _delete(self, key: bytes) -> int:
        if self._elems.pop(key, None) is None:
            return ENOENT
        self._order = None
        return 0

    def _next_key(self, key: bytes | None) -> bytes | None:
        if self._order is None:
            self._order = list(self._elems)
            self._index = {k: i for i, k in enumerate(self._order)}
        order = self._order
        i = self._index.get(key) if key is not None else None
        nxt = 0 if i is None else i + 1
        return order[nxt] if nxt < len(order) else None


class LRUHashMap(HashMap):
    """BPF_MAP_TYPE_LRU_HASH and LRU_PERCPU_HASH: a full map evicts the least recently used key,
    chosen the way the kernel's LRU lists choose (common LRU, or per-CPU lists with
    BPF_F_NO_COMMON_LRU).  As in the kernel, an update first takes a free node, which may evict
    a key even when the update then replaces an existing one or fails its flags check."""

    def __init__(self, vm: "VM", type: int, key_size: int, value_size: int, max_entries: int, **kw: Any):
        super().__init__(vm, type, key_size, value_size, max_entries, **kw)
        if self.flags & BPF_F_NO_COMMON_LRU:
            # each CPU gets the same share of the nodes
            rounded = -(-max_entries // vm.cpus) * vm.cpus
            self.max_entries = rounded if rounded >= max_entries else max_entries // vm.cpus * vm.cpus
            self._lru: Any = PerCPULRU(self.max_entries, vm.cpus, self._evict)
        else:
            self._lru = CommonLRU(max_entries, vm.cpus, self._evict)
        self._nodes: dict[bytes, Any] = {}

    def _evict(self, node: Any) -> bool:
        key = node.key
        if key is None or self._nodes.get(key) is not node:
            return False
        del self._nodes[key]
        del self._elems[key]
        self._order = None
        return True

    def _find(self, key: bytes, cpu: int, from_prog: bool) -> Any:
        value = self._elems.get(key)
        if value is not None and from_prog:
            self._nodes[key].ref = 1
        return value

    def _update(self, key: bytes, value: bytes, flags: int, cpu: int, all_cpus: bool) -> int:
        if flags & ~3:
            return EINVAL
        if self.per_cpu:
            return self._update_per_cpu(key, value, flags, cpu, all_cpus)
        node = self._lru.pop_free(cpu)
        if node is None:
            return errno.ENOMEM
        err = self._check_flags(key, flags)
        if err:
            self._lru.push_free(node)
            return err
        old = self._nodes.get(key)
        if key not in self._elems:
            self._order = None
        self._elems[key] = self._new_value(key, value, cpu, all_cpus)
        node.key = key
        self._nodes[key] = node
        if old is not None:
            node.ref = 1  # a replaced element keeps its place as recently used
            old.key = None
            self._lru.push_free(old)
        return 0

    def _update_per_cpu(self, key: bytes, value: bytes, flags: int, cpu: int, all_cpus: bool) -> int:
        node = None
        if flags != UpdateFlag.EXIST:
            node = self._lru.pop_free(cpu)
            if node is None:
                return errno.ENOMEM
        err = self._check_flags(key, flags)
        if not err:
            if key in self._elems:
                self._nodes[key].ref = 1
                self._elems[key] = self._new_value(key, value, cpu, all_cpus)
            else:
                self._order = None
                self._elems[key] = self._new_value(key, value, cpu, all_cpus)
                node.key = key
                self._nodes[key] = node
                node = None
        if node is not None:
            self._lru.push_free(node)
        return err

    def _delete(self, key: bytes) -> int:
        node = self._nodes.pop(key, None)
        if node is None:
            return ENOENT
        del self._elems[key]
        self._order = None
        node.key = None
        self._lru.push_free(node)
        return 0


# --- longest prefix match trie ----------------------------------------------------------------


class _TrieNode:
    __slots__ = ("prefixlen", "data", "value", "child", "intermediate")

    def __init__(self, prefixlen: int, data: bytes, value: Any, intermediate: bool = False):
        self.prefixlen = prefixlen
        self.data = data
        self.value = value
        self.child: list[_TrieNode | None] = [None, None]
        self.intermediate = intermediate


class LPMTrieMap(VMMap):
    """BPF_MAP_TYPE_LPM_TRIE: keys are a u32 prefix length and big-endian data; lookups return the
    value of the longest stored prefix that matches.  The trie has the kernel's shape, so key
    iteration follows the kernel's order (more specific prefixes first)."""

    def __init__(self, vm: "VM", type: int, key_size: int, value_size: int, max_entries: int, **kw: Any):
        super().__init__(vm, type, key_size, value_size, max_entries, **kw)
        if key_size <= 4 or key_size > 4 + 256:
            raise MapError(f"cannot create {self.describe()}: an LPM trie key is a u32 prefix length and 1-256 "
                           f"bytes of data (key_size 5-260, not {key_size})")
        self._data_size = key_size - 4
        self._max_prefixlen = self._data_size * 8
        self._root: _TrieNode | None = None
        self._entries = 0

    def _split(self, key: bytes) -> tuple[int, bytes]:
        return int.from_bytes(key[:4], "little"), bytes(key[4:])

    def _match(self, node: _TrieNode, prefixlen: int, data: bytes) -> int:
        limit = min(node.prefixlen, prefixlen)
        diff = int.from_bytes(node.data, "big") ^ int.from_bytes(data, "big")
        common = self._max_prefixlen - diff.bit_length()
        return min(common, limit)

    @staticmethod
    def _bit(data: bytes, index: int) -> int:
        return (data[index // 8] >> (7 - index % 8)) & 1

    def _find(self, key: bytes, cpu: int, from_prog: bool) -> Any:
        prefixlen, data = self._split(key)
        if prefixlen > self._max_prefixlen:
            return None
        node, found = self._root, None
        while node is not None:
            matchlen = self._match(node, prefixlen, data)
            if matchlen == self._max_prefixlen:
                found = node
                break
            if matchlen < node.prefixlen:
                break
            if not node.intermediate:
                found = node
            node = node.child[self._bit(data, node.prefixlen)]
        return None if found is None else found.value

    def _exact(self, prefixlen: int, data: bytes) -> _TrieNode | None:
        node = self._root
        while node is not None:
            matchlen = self._match(node, prefixlen, data)
            if node.prefixlen != matchlen or node.prefixlen == prefixlen:
                break
            node = node.child[self._bit(data, node.prefixlen)]
        if node is None or node.prefixlen != prefixlen or node.intermediate or \
                self._match(node, prefixlen, data) != prefixlen:
            return None
        return node

    def _update(self, key: bytes, value: bytes, flags: int, cpu: int, all_cpus: bool) -> int:
        prefixlen, data = self._split(key)
        if prefixlen > self._max_prefixlen:
            return EINVAL
        existing = self._exact(prefixlen, data)
        if flags & 3 == UpdateFlag.NOEXIST and existing is not None:
            return EEXIST
        if flags & 3 == UpdateFlag.EXIST and existing is None:
            return ENOENT
        if existing is None and self._entries >= self.max_entries:
            return ENOSPC
        new = _TrieNode(prefixlen, data, bytearray(value[:self.value_size]))
        parent_slot: tuple[Any, int] = (self, -1)
        node = self._root
        matchlen = 0
        while node is not None:
            matchlen = self._match(node, prefixlen, data)
            if node.prefixlen != matchlen or node.prefixlen == prefixlen or node.prefixlen == self._max_prefixlen:
                break
            bit = self._bit(data, node.prefixlen)
            parent_slot = (node, bit)
            node = node.child[bit]
        if node is None:
            self._set_slot(parent_slot, new)
        elif node.prefixlen == matchlen:  # same prefix: replace (an intermediate node becomes real)
            new.child = node.child
            if node.intermediate:
                self._entries += 1
            self._set_slot(parent_slot, new)
            return 0
        elif matchlen == prefixlen:  # the new prefix is an ancestor of node
            new.child[self._bit(node.data, matchlen)] = node
            self._set_slot(parent_slot, new)
        else:
            im = _TrieNode(matchlen, node.data, None, intermediate=True)
            if self._bit(data, matchlen):
                im.child = [node, new]
            else:
                im.child = [new, node]
            self._set_slot(parent_slot, im)
        self._entries += 1
        return 0

    def _set_slot(self, slot: tuple[Any, int], node: _TrieNode | None) -> None:
        owner, bit = slot
        if owner is self:
            self._root = node
        else:
            owner.child[bit] = node

    def _delete(self, key: bytes) -> int:
        prefixlen, data = self._split(key)
        if prefixlen > self._max_prefixlen:
            return EINVAL
        trim: tuple[Any, int] = (self, -1)
        trim2 = trim
        parent = None
        node = self._root
        matchlen = 0
        while node is not None:
            matchlen = self._match(node, prefixlen, data)
            if node.prefixlen != matchlen or node.prefixlen == prefixlen:
                break
            parent = node
            trim2 = trim
            bit = self._bit(data, node.prefixlen)
            trim = (node, bit)
            node = node.child[bit]
        if node is None or node.prefixlen != prefixlen or node.prefixlen != matchlen or node.intermediate:
            return ENOENT
        self._entries -= 1
        if node.child[0] is not None and node.child[1] is not None:
            node.intermediate = True
            node.value = None
            return 0
        if parent is not None and parent.intermediate and node.child[0] is None and node.child[1] is None:
            other = parent.child[1] if parent.child[0] is node else parent.child[0]
            self._set_slot(trim2, other)
            return 0
        self._set_slot(trim, node.child[0] if node.child[0] is not None else node.child[1])
        return 0

    def _next_key(self, key: bytes | None) -> bytes | None:
        root = self._root
        if root is None:
            return None
        search_root = root
        if key is not None and len(key) == self.key_size and self._split(key)[0] <= self._max_prefixlen:
            prefixlen, data = self._split(key)
            stack: list[_TrieNode] = []
            node = root
            while node is not None:
                stack.append(node)
                matchlen = self._match(node, prefixlen, data)
                if node.prefixlen != matchlen or node.prefixlen == prefixlen:
                    break
                node = node.child[self._bit(data, node.prefixlen)]
            if node is not None and node.prefixlen == prefixlen and not node.intermediate:
                # The first node after it in postorder.
                node = stack[-1]
                i = len(stack) - 1
                while i > 0:
                    parent = stack[i - 1]
                    if parent.child[0] is node and parent.child[1] is not None:
                        search_root = parent.child[1]
                        break
                    if not parent.intermediate:
                        return self._key_of(parent)
                    node = parent
                    i -= 1
                else:
                    return None
        next_node = None
        node = search_root
        while node is not None:
            if node.intermediate:
                node = node.child[0]
            else:
                next_node = node
                node = node.child[0] if node.child[0] is not None else node.child[1]
        return self._key_of(next_node) if next_node is not None else None

    def _key_of(self, node: _TrieNode) -> bytes:
        return node.prefixlen.to_bytes(4, "little") + node.data

    def lookup_and_delete_raw(self, key: bytes | None) -> bytes | None:
        raise MapError(f"lookup_and_delete on {self.describe()}: this operation is not supported on LPM_TRIE maps")


# --- queue, stack, bloom filter ---------------------------------------------------------------------


class QueueMap(QueueValues, VMMap):
    """BPF_MAP_TYPE_QUEUE (FIFO) and STACK (LIFO): push, pop and peek values; no keys."""

    def __init__(self, vm: "VM", type: int, key_size: int, value_size: int, max_entries: int, **kw: Any):
        super().__init__(vm, type, key_size, value_size, max_entries, **kw)
        self._items: list[bytes] = []

    def _check_key(self, key: bytes | None) -> bytes:
        return b""

    def _take(self, remove: bool) -> bytes | None:
        if not self._items:
            return None
        index = 0 if self.type == MapType.QUEUE else -1
        return self._items.pop(index) if remove else self._items[index]

    def _push(self, value: bytes, flags: int) -> int:
        if flags & ~UpdateFlag.EXIST:
            return EINVAL
        if len(self._items) >= self.max_entries:
            if not flags & UpdateFlag.EXIST:
                return E2BIG
            self._items.pop(0)  # BPF_EXIST: drop the oldest value to make room
        self._items.append(bytes(value[:self.value_size]))
        return 0

    def _find(self, key: bytes, cpu: int, from_prog: bool) -> Any:
        return self._take(False)

    def _update(self, key: bytes, value: bytes, flags: int, cpu: int, all_cpus: bool) -> int:
        return self._push(value, flags)

    def lookup_and_delete_raw(self, key: bytes | None) -> bytes | None:
        return self._take(True)

    def delete_raw(self, key: bytes | None) -> bool:
        raise MapError(f"delete on {self.describe()}: {map_type_name(self.type)} maps have no keys "
                       "(use push/pop/peek)")

    def _next_key(self, key: bytes | None) -> bytes | None:
        raise MapError(f"iterate on {self.describe()}: {map_type_name(self.type)} maps have no keys "
                       "(use push/pop/peek)")

    def clear(self) -> None:
        self._items.clear()  # what popping every value does, without the walk

    def prog_push(self, run: "Run", value: bytes, flags: int) -> int:
        return _neg(self._push(value, flags))

    def prog_pop(self, run: "Run", remove: bool) -> bytes | None:
        return self._take(remove)


class BloomFilterMap(VMMap):
    """BPF_MAP_TYPE_BLOOM_FILTER: add values, test membership (false positives possible, no deletes).
    ``map_extra`` bits 0-3: number of hash functions (default 5)."""

    def __init__(self, vm: "VM", type: int, key_size: int, value_size: int, max_entries: int, **kw: Any):
        super().__init__(vm, type, key_size, value_size, max_entries, **kw)
        self._hashes = (self.map_extra & 0xF) or 5
        bits = max(64, max_entries * self._hashes * 7 // 5)
        self._nbits = 1 << (bits - 1).bit_length()
        self._bits = bytearray(self._nbits // 8)

    def _check_key(self, key: bytes | None) -> bytes:
        return b""

    def _positions(self, value: bytes) -> list[int]:
        return [zlib.crc32(value, 0x9E3779B9 * (i + 1) & 0xFFFFFFFF) & (self._nbits - 1) for i in range(self._hashes)]

    def _add(self, value: bytes) -> int:
        for p in self._positions(value):
            self._bits[p >> 3] |= 1 << (p & 7)
        return 0

    def _has(self, value: bytes) -> bool:
        return all(self._bits[p >> 3] >> (p & 7) & 1 for p in self._positions(value))

    def _update(self, key: bytes, value: bytes, flags: int, cpu: int, all_cpus: bool) -> int:
        if flags & ~UpdateFlag.EXIST:
            return EINVAL
        return self._add(bytes(value[:self.value_size]))

    def lookup_raw_value(self, value: bytes) -> bool:
        return self._has(bytes(value))

    def add(self, value: Any) -> None:
        self.update_raw(None, self._value_bytes(value))

    def __contains__(self, value: Any) -> bool:
        return self._has(self._value_bytes(value))

    def _next_key(self, key: bytes | None) -> bytes | None:
        raise MapError(f"iterate on {self.describe()}: bloom filters have no keys (use add/in)")

    def delete_raw(self, key: bytes | None) -> bool:
        raise MapError(f"delete on {self.describe()}: bloom filters have no keys (use add/in)")

    def prog_push(self, run: "Run", value: bytes, flags: int) -> int:
        return _neg(self._update(b"", value, flags, run.cpu, False))

    def prog_peek(self, value: bytes) -> int:
        return 0 if self._has(value) else _neg(ENOENT)


# --- arrays of references: programs and maps ------------------------------------------------------------


class _ReferenceArray(VMMap):
    """Maps whose values are VM objects, written as the object (or its fd) and read as its id.

    Arrays are keyed by a u32 index below max_entries; a hash of maps by its key bytes.
    """

    def __init__(self, vm: "VM", type: int, key_size: int, value_size: int, max_entries: int, **kw: Any):
        super().__init__(vm, type, key_size, value_size, max_entries, **kw)
        self._slots: dict[Any, Any] = {}
        self.hashed = self.type == MapType.HASH_OF_MAPS
        self.fixed_size = not self.hashed

    def _default_value_codec(self) -> Any:
        return FDValueCodec(accepts="a VM map or program (or its fd)")

    def _slot(self, key: bytes) -> Any:
        return bytes(key) if self.hashed else int.from_bytes(key[:4], "little")

    def _find(self, key: bytes, cpu: int, from_prog: bool) -> Any:
        obj = self._slots.get(self._slot(key))
        return None if obj is None else obj.id.to_bytes(4, "little")

    def _update(self, key: bytes, value: bytes, flags: int, cpu: int, all_cpus: bool) -> int:
        slot = self._slot(key)
        exists = slot in self._slots
        if not self.hashed and slot >= self.max_entries:
            return E2BIG
        if flags & 3 == UpdateFlag.NOEXIST and (exists or not self.hashed):
            return EEXIST
        if flags & 3 == UpdateFlag.EXIST and self.hashed and not exists:
            return ENOENT
        if self.hashed and not exists and len(self._slots) >= self.max_entries:
            return E2BIG
        obj = self._resolve(int.from_bytes(value[:4], "little"))
        if obj is None:
            return errno.EBADF
        self._slots[slot] = obj
        return 0

    def _delete(self, key: bytes) -> int:
        return 0 if self._slots.pop(self._slot(key), None) is not None else ENOENT

    def _next_key(self, key: bytes | None) -> bytes | None:
        if self.hashed:
            keys = list(self._slots)
            i = keys.index(key) + 1 if key in self._slots else 0
            return keys[i] if i < len(keys) else None
        index = 0 if key is None else self._slot(key) + 1
        if key is not None and self._slot(key) >= self.max_entries:
            index = 0
        return index.to_bytes(4, "little") if index < self.max_entries else None

    def delete_raw(self, key: bytes | None) -> bool:
        err = self._delete(self._check_key(key))
        return not err

    def prog_update(self, run: "Run", key: bytes, value: bytes, flags: int) -> int:
        return _neg(errno.EOPNOTSUPP)

    def prog_delete(self, run: "Run", key: bytes) -> int:
        return _neg(errno.EOPNOTSUPP)


class ProgArray(_ReferenceArray):
    """BPF_MAP_TYPE_PROG_ARRAY: programs for bpf_tail_call, stored as VMPrograms (or their fds)."""

    def _resolve(self, fd: int) -> Any:
        return self.vm.program_by_fd(fd)

    def program_at(self, index: int) -> Any:
        return self._slots.get(index)

    def prog_lookup(self, run: "Run", key: bytes) -> int:
        raise VMFault(f"{self.describe()}: programs cannot look up a program array (use bpf_tail_call)")


class MapOfMaps(_ReferenceArray):
    """BPF_MAP_TYPE_ARRAY_OF_MAPS and HASH_OF_MAPS: inner maps like the template ``inner_map``."""

    def __init__(self, vm: "VM", type: int, key_size: int, value_size: int, max_entries: int, *,
                 inner_map: Any = None, **kw: Any):
        super().__init__(vm, type, key_size, value_size, max_entries, **kw)
        if inner_map is None:
            raise MapError(f"cannot create {self.describe()}: a map of maps needs inner_map= (a template map of "
                           "the inner type)")
        self.inner_template = (inner_map.type, inner_map.key_size, inner_map.value_size, inner_map.max_entries)

    def _resolve(self, fd: int) -> Any:
        inner = self.vm.map_by_fd(fd)
        if inner is None:
            return None
        have = (inner.type, inner.key_size, inner.value_size, inner.max_entries)
        if have != self.inner_template:
            raise MapError(f"{self.describe()}: inner {inner.describe()} does not match the template "
                           f"(type, key_size, value_size, max_entries) {self.inner_template}")
        return inner

    def inner(self, key: Any) -> VMMap:
        """The inner map stored at ``key``."""
        obj = self._slots.get(self._slot(self._key_bytes(key)))
        if obj is None:
            raise KeyError(key)
        return obj

    def prog_lookup(self, run: "Run", key: bytes) -> int:
        obj = self._slots.get(self._slot(key))
        return 0 if obj is None else obj.handle.address


# --- stack traces -------------------------------------------------------------------------------------


class StackTraceMap(VMMap):
    """BPF_MAP_TYPE_STACK_TRACE: u32 stack id -> up to value_size/8 instruction pointers."""

    def __init__(self, vm: "VM", type: int, key_size: int, value_size: int, max_entries: int, **kw: Any):
        super().__init__(vm, type, key_size, value_size, max_entries, **kw)
        if value_size % 8 or not value_size:
            raise MapError(f"cannot create {self.describe()}: value_size must be a multiple of 8 (u64 IPs)")
        self._buckets: dict[int, tuple[int, ...]] = {}

    def _find(self, key: bytes, cpu: int, from_prog: bool) -> Any:
        ips = self._buckets.get(int.from_bytes(key[:4], "little"))
        if ips is None:
            return None
        return b"".join(ip.to_bytes(8, "little") for ip in ips).ljust(self.value_size, b"\0")

    def _delete(self, key: bytes) -> int:
        return 0 if self._buckets.pop(int.from_bytes(key[:4], "little"), None) is not None else ENOENT

    def _next_key(self, key: bytes | None) -> bytes | None:
        ids = sorted(self._buckets)
        current = None if key is None else int.from_bytes(key[:4], "little")
        for i in ids:
            if current is None or i > current:
                return i.to_bytes(4, "little")
        return None

    def stack_id(self, ips: tuple[int, ...], flags: int) -> int:
        """The bucket of a stack (bpf_get_stackid): its id, or -EEXIST on a collision without
        BPF_F_REUSE_STACKID, -EFAULT for an empty stack."""
        ips = ips[:self.value_size // 8]
        if not ips:
            return _neg(errno.EFAULT)
        bucket = zlib.crc32(b"".join(ip.to_bytes(8, "little") for ip in ips)) % self.max_entries
        old = self._buckets.get(bucket)
        if old is not None and old != ips and not flags & BPF_F_REUSE_STACKID:
            return _neg(EEXIST)
        self._buckets[bucket] = ips
        return bucket

    def prog_lookup(self, run: "Run", key: bytes) -> int:
        found = self._find(key, run.cpu, True)
        if found is None:
            return 0
        return run.region_for(bytearray(found), self._value_name(key), writable=False, owner=self)


class RedirectMap(HashMap):
    """DEVMAP, DEVMAP_HASH, CPUMAP, XSKMAP: slots that name redirect targets for bpf_redirect_map
    (the VM records the target; it has no devices to send to)."""

    def _update(self, key: bytes, value: bytes, flags: int, cpu: int, all_cpus: bool) -> int:
        if self.type != MapType.DEVMAP_HASH and int.from_bytes(key[:4], "little") >= self.max_entries:
            return E2BIG
        return super()._update(key, value, flags, cpu, all_cpus)

    def prog_update(self, run: "Run", key: bytes, value: bytes, flags: int) -> int:
        return _neg(errno.EOPNOTSUPP)


_CLASSES: dict[int, type[VMMap]] = {
    MapType.ARRAY: ArrayMap, MapType.PERCPU_ARRAY: ArrayMap,
    MapType.HASH: HashMap, MapType.PERCPU_HASH: HashMap,
    MapType.LRU_HASH: LRUHashMap, MapType.LRU_PERCPU_HASH: LRUHashMap,
    MapType.LPM_TRIE: LPMTrieMap,
    MapType.QUEUE: QueueMap, MapType.STACK: QueueMap, MapType.BLOOM_FILTER: BloomFilterMap,
    MapType.PROG_ARRAY: ProgArray, MapType.ARRAY_OF_MAPS: MapOfMaps, MapType.HASH_OF_MAPS: MapOfMaps,
    MapType.STACK_TRACE: StackTraceMap,
    MapType.DEVMAP: RedirectMap, MapType.DEVMAP_HASH: RedirectMap, MapType.CPUMAP: RedirectMap,
    MapType.XSKMAP: RedirectMap,
}
_ARRAY_KEYED = frozenset({MapType.ARRAY, MapType.PERCPU_ARRAY, MapType.PROG_ARRAY, MapType.ARRAY_OF_MAPS,
                          MapType.PERF_EVENT_ARRAY, MapType.STACK_TRACE, MapType.DEVMAP, MapType.CPUMAP,
                          MapType.XSKMAP})
_KEYLESS = frozenset({MapType.QUEUE, MapType.STACK, MapType.BLOOM_FILTER, MapType.RINGBUF})


def create_map(vm: "VM", type: int, key_size: int, value_size: int, max_entries: int, *, flags: int = 0,
               name: str = "", inner_map: Any = None, map_extra: int = 0, key_codec: Any = None,
               value_codec: Any = None) -> VMMap:
    """A new map of ``type`` with the kernel's parameter checks and errors."""
    from .events import PerfEventArray, RingBuf

    try:
        mtype = MapType(type)
    except ValueError:
        raise VMError(f"cannot create map {name!r}: map type {type} is unknown") from None
    label = f"{mtype.name} map {name!r}" if name else f"{mtype.name} map"
    classes = {**_CLASSES, MapType.RINGBUF: RingBuf, MapType.PERF_EVENT_ARRAY: PerfEventArray}
    cls = classes.get(mtype)
    if cls is None:
        supported = ", ".join(sorted(t.name for t in classes))
        raise VMError(f"cannot create {label}: the VM does not implement {mtype.name} maps (it has: {supported})")

    def bad(message: str) -> MapError:
        return MapError(f"cannot create {label}: {message}")

    if mtype == MapType.PERF_EVENT_ARRAY and max_entries == 0:
        max_entries = vm.cpus
    if max_entries <= 0:
        raise bad("max_entries must be positive")
    if mtype in _KEYLESS:
        if key_size:
            raise bad(f"{mtype.name} maps have no keys: key_size must be 0, not {key_size}")
    elif mtype in _ARRAY_KEYED and key_size != 4:
        raise bad(f"array maps are indexed by u32: key_size must be 4, not {key_size}")
    elif key_size <= 0:
        raise bad("key_size must be positive")
    if mtype in (MapType.PROG_ARRAY, MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS, MapType.PERF_EVENT_ARRAY) \
            and value_size != 4:
        raise bad(f"{mtype.name} values are 4-byte fds: value_size must be 4, not {value_size}")
    if mtype == MapType.RINGBUF:
        if value_size or max_entries < 4096 or max_entries & (max_entries - 1):
            raise bad(f"a ring buffer has value_size 0 and max_entries (its size in bytes, {max_entries}) a power of "
                      "2 of at least 4096")
    elif value_size <= 0 and mtype != MapType.BLOOM_FILTER:
        raise bad("value_size must be positive")
    if mtype == MapType.ARRAY and value_size * max_entries > 1 << 30:
        raise bad(f"{value_size} x {max_entries} bytes is too large for the VM")
    kw: dict[str, Any] = dict(flags=flags, name=name, map_extra=map_extra, key_codec=key_codec,
                              value_codec=value_codec)
    if cls is MapOfMaps:
        kw["inner_map"] = inner_map
    return cls(vm, mtype, key_size, value_size, max_entries, **kw)


__all__ = [
    "ArrayMap", "BloomFilterMap", "HashMap", "LPMTrieMap", "LRUHashMap", "MapOfMaps", "ProgArray", "QueueMap",
    "RedirectMap", "StackTraceMap", "VMMap", "create_map",
]
