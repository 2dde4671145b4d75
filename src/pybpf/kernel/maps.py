"""Live BPF maps: create, open, pin, and use them like dicts.

Keys and values pass through codecs (:mod:`pybpf.object.codec`): raw bytes by
default, ints accepted for integer-sized fields, or the BTF codec.  Per-CPU
maps take and return one value per possible CPU.  Iteration follows
libbpf/bpftool: walk with BPF_MAP_GET_NEXT_KEY, skip keys deleted between
steps, and never yield a key twice when the kernel restarts the walk because
the current key vanished.
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

from ..errors import BPFError, KernelError, MapError, NotSupportedError
from ..object.codec import FDValueCodec, as_codec
from ..object.mapdict import MapDict, QueueValues
from .fd import PinnableObject
from .fs import possible_cpu_count
from .syscall import CAP_BPF, bpf_errno, fd_by_id, fd_kind, kernel_error, obj_info, open_pinned
from .uapi import (
    ANY, ENOTSUPP, MAP_TYPE_MIN_KERNEL, Cmd, MapBatchAttr, MapCreateAttr, MapElemAttr, MapFlags,
    MapInfoStruct, MapType, UpdateFlags,
)

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")

PER_CPU_TYPES = frozenset({
    MapType.PERCPU_HASH, MapType.PERCPU_ARRAY, MapType.LRU_PERCPU_HASH, MapType.PERCPU_CGROUP_STORAGE,
})
ARRAY_TYPES = frozenset({
    MapType.ARRAY, MapType.PERCPU_ARRAY, MapType.PROG_ARRAY, MapType.PERF_EVENT_ARRAY,
    MapType.CGROUP_ARRAY, MapType.ARRAY_OF_MAPS, MapType.DEVMAP, MapType.CPUMAP, MapType.XSKMAP,
})
# Arrays whose slots always exist: delete is refused, clear() writes zeros instead.
_FIXED_ARRAYS = frozenset({MapType.ARRAY, MapType.PERCPU_ARRAY})
# Values are file descriptors on update and object ids on lookup.
FD_VALUE_TYPES = frozenset({
    MapType.PROG_ARRAY, MapType.PERF_EVENT_ARRAY, MapType.CGROUP_ARRAY, MapType.ARRAY_OF_MAPS,
    MapType.HASH_OF_MAPS, MapType.SOCKMAP, MapType.SOCKHASH, MapType.XSKMAP,
})
KEYLESS_TYPES = frozenset({MapType.QUEUE, MapType.STACK, MapType.BLOOM_FILTER})
STORAGE_TYPES = frozenset({MapType.SK_STORAGE, MapType.INODE_STORAGE, MapType.TASK_STORAGE, MapType.CGRP_STORAGE})
_BATCH_TYPES = frozenset({
    MapType.HASH, MapType.PERCPU_HASH, MapType.LRU_HASH, MapType.LRU_PERCPU_HASH, MapType.ARRAY,
    MapType.PERCPU_ARRAY, MapType.HASH_OF_MAPS,
})
_NO_BATCH_ERRNOS = (errno.EINVAL, errno.EOPNOTSUPP, ENOTSUPP)
# Maps whose elements user space cannot read or walk (the kernel answers EINVAL).
_NO_USER_LOOKUP = frozenset({MapType.RINGBUF, MapType.USER_RINGBUF, MapType.PERF_EVENT_ARRAY, MapType.STRUCT_OPS,
                             MapType.ARENA})
_NAME_OK = re.compile(r"[^A-Za-z0-9_.]")


def object_name(name: str) -> bytes:
    """The kernel's object name: 15 chars of [A-Za-z0-9_.] (others become '_')."""
    return _NAME_OK.sub("_", name)[:15].encode()


def _round8(n: int) -> int:
    return (n + 7) & ~7


def _type_name(map_type: int) -> str:
    try:
        return MapType(map_type).name
    except ValueError:
        return f"type {map_type}"


@dataclass(frozen=True)
class MapInfo:
    """What the kernel says about a map (BPF_OBJ_GET_INFO_BY_FD)."""

    type: MapType | int
    id: int
    name: str
    key_size: int
    value_size: int
    max_entries: int
    flags: int
    map_extra: int = 0
    btf_id: int = 0
    btf_key_type_id: int = 0
    btf_value_type_id: int = 0
    ifindex: int = 0

    @classmethod
    def of_fd(cls, fd: int) -> "MapInfo":
        i = obj_info(fd, MapInfoStruct, "map")
        try:
            mtype: MapType | int = MapType(i.type)
        except ValueError:
            mtype = i.type
        return cls(mtype, i.id, i.name.decode(errors="replace"), i.key_size, i.value_size, i.max_entries,
                   i.map_flags, i.map_extra, i.btf_id, i.btf_key_type_id, i.btf_value_type_id, i.ifindex)


class Map(PinnableObject, MapDict):
    """A BPF map in the kernel.

    Dict-like: ``m[k]``, ``m[k] = v``, ``del m[k]``, ``k in m``, ``get``,
    ``keys()``, ``values()``, ``items()``, ``update()``, ``clear()``.
    ``len(m)`` works only where it is cheap (array types: it is max_entries);
    elsewhere use :meth:`count`, which walks the map.
    """

    kind = "map"

    def __init__(self, fd: int, info: MapInfo | None = None, *, name: str | None = None,
                 key_codec: Any = None, value_codec: Any = None):
        super().__init__(fd)
        try:
            self._info = info or MapInfo.of_fd(fd)
        except BaseException:
            self.close()
            raise
        self.name = name if name is not None else self._info.name
        self.type = self._info.type
        self.key_size = self._info.key_size
        self.value_size = self._info.value_size
        self.max_entries = self._info.max_entries
        self.flags = self._info.flags
        self.per_cpu = self.type in PER_CPU_TYPES
        self._ncpus = possible_cpu_count() if self.per_cpu else 1
        self._stride = _round8(self.value_size) if self.per_cpu else self.value_size
        self.key_codec = as_codec(key_codec, self.key_size)
        default_value = FDValueCodec(self.value_size) if self.type in FD_VALUE_TYPES and self.value_size in (4, 8) else None
        self.value_codec = as_codec(value_codec or default_value, self.value_size)
        self._batch_ok = self.type in _BATCH_TYPES
        # Ring buffers and perf event arrays: how records decode when a reader is given no codec
        # (the object loader sets it from the map's ``__type(value, struct event)``).
        self.record_codec: Any = None

    # -- construction --------------------------------------------------------

    @classmethod
    def create(
        cls,
        type: MapType | int,
        key_size: int,
        value_size: int,
        max_entries: int,
        *,
        flags: int = 0,
        name: str = "",
        inner_map: "Map | None" = None,
        btf: Any = None,
        btf_key_type_id: int = 0,
        btf_value_type_id: int = 0,
        btf_vmlinux_value_type_id: int = 0,
        map_extra: int = 0,
        numa_node: int | None = None,
        ifindex: int = 0,
        key_codec: Any = None,
        value_codec: Any = None,
    ) -> "Map":
        """Create a map (BPF_MAP_CREATE) and return the Map subclass suited to its type.

        ``inner_map`` is the template for array/hash of maps; ``btf`` a KernelBTF
        (or fd) with the key/value type ids.  A perf event array with
        ``max_entries=0`` is sized to the possible CPUs, as libbpf does.
        """
        mtype = MapType(type) if type in MapType._value2member_map_ else type
        label = f"{_type_name(mtype)} map {name!r}" if name else f"{_type_name(mtype)} map"
        key_size, value_size, max_entries, flags = _check_parameters(
            label, mtype, key_size, value_size, max_entries, flags, inner_map, btf)
        attr = MapCreateAttr(
            map_type=int(mtype), key_size=key_size, value_size=value_size, max_entries=max_entries,
            map_flags=int(flags), map_name=object_name(name), map_ifindex=ifindex,
            btf_key_type_id=btf_key_type_id, btf_value_type_id=btf_value_type_id,
            btf_vmlinux_value_type_id=btf_vmlinux_value_type_id, map_extra=map_extra,
        )
        if inner_map is not None:
            attr.inner_map_fd = inner_map.fd
        if btf is not None:
            attr.btf_fd = btf if isinstance(btf, int) else btf.fd
        if numa_node is not None:
            attr.numa_node = numa_node
            attr.map_flags |= MapFlags.NUMA_NODE
        fd, err = bpf_errno(Cmd.MAP_CREATE, attr)
        if err:
            raise _create_error(err, label, mtype, key_size, value_size, max_entries, int(attr.map_flags))
        info = MapInfo(mtype, 0, name, key_size, value_size, max_entries, int(attr.map_flags), map_extra,
                       0, btf_key_type_id, btf_value_type_id, ifindex)
        return _class_for(mtype)(fd, info, name=name, key_codec=key_codec, value_codec=value_codec)

    @classmethod
    def from_spec(cls, spec: Any, *, inner_map: "Map | None" = None, btf: Any = None,
                  pin_root: str | None = None, key_codec: Any = None, value_codec: Any = None) -> "Map":
        """Create (or, for ``pinning``, reuse) a map from a map spec.

        The spec is any object with the attributes ``name, type, key_size,
        value_size, max_entries`` and optionally ``flags, map_extra,
        btf_key_type_id, btf_value_type_id, btf_vmlinux_value_type_id,
        numa_node, inner`` (spec of the inner map of a map-in-map) and
        ``pinning`` (1 = by name under ``pin_root``, default /sys/fs/bpf).
        """
        def g(attr: str, default: Any = 0) -> Any:
            value = getattr(spec, attr, None)
            return default if value is None else value

        name = g("name", "")
        pin_path = None
        if g("pinning", 0):
            from .fs import ensure_bpffs
            pin_path = os.path.join(pin_root or ensure_bpffs(), name)
            if os.path.exists(pin_path):
                existing = cls.from_pin(pin_path, key_codec=key_codec, value_codec=value_codec)
                _check_compatible(existing, spec, pin_path)
                existing.name = name
                return existing
        template = None
        inner_spec = g("inner", None)
        if inner_map is None and inner_spec is not None:
            inner_map = template = cls.from_spec(inner_spec, btf=btf)
        try:
            m = cls.create(
                g("type"), g("key_size"), g("value_size"), g("max_entries"), flags=g("flags"), name=name,
                inner_map=inner_map, btf=btf if g("btf_value_type_id") or g("btf_vmlinux_value_type_id") else None,
                btf_key_type_id=g("btf_key_type_id"), btf_value_type_id=g("btf_value_type_id"),
                btf_vmlinux_value_type_id=g("btf_vmlinux_value_type_id"), map_extra=g("map_extra"),
                numa_node=g("numa_node", None), key_codec=key_codec, value_codec=value_codec,
            )
        finally:
            if template is not None:
                template.close()
        if pin_path:
            try:
                m.pin(pin_path)
            except BaseException:
                m.close()
                raise
        return m

    @classmethod
    def from_fd(cls, fd: int, *, key_codec: Any = None, value_codec: Any = None) -> "Map":
        """Wrap an existing map fd; the Map takes ownership (closes it)."""
        if fd_kind(fd) != "map":
            raise MapError(f"fd {fd} is not a BPF map")
        info = MapInfo.of_fd(fd)
        return _class_for(info.type)(fd, info, key_codec=key_codec, value_codec=value_codec)

    @classmethod
    def from_id(cls, map_id: int, *, key_codec: Any = None, value_codec: Any = None) -> "Map":
        return cls.from_fd(fd_by_id(Cmd.MAP_GET_FD_BY_ID, map_id, "map"), key_codec=key_codec, value_codec=value_codec)

    @classmethod
    def from_pin(cls, path: str | os.PathLike, *, key_codec: Any = None, value_codec: Any = None) -> "Map":
        m = cls.from_fd(open_pinned(path, "map", "map", MapError), key_codec=key_codec, value_codec=value_codec)
        m.pinned_path = os.fspath(path)
        return m

    # -- kernel object -------------------------------------------------------

    def info(self) -> MapInfo:
        return MapInfo.of_fd(self.fd)

    def freeze(self) -> None:
        """Make the map read-only for user space from now on (BPF_MAP_FREEZE)."""
        _, err = bpf_errno(Cmd.MAP_FREEZE, MapElemAttr(map_fd=self.fd))
        if err:
            raise self._error(err, "freeze")

    @property
    def ncpus(self) -> int:
        """Values per entry: the possible CPUs for per-CPU maps, else 1."""
        return self._ncpus

    def describe(self) -> str:
        return f"{_type_name(self.type)} map {self.name!r}" if self.name else f"{_type_name(self.type)} map"

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"fd={self._fd}"
        return (f"<{type(self).__name__} {self.name!r} {_type_name(self.type)} key={self.key_size} "
                f"value={self.value_size} max_entries={self.max_entries} {state}>")

    # -- raw byte-level operations ------------------------------------------

    def _error(self, err: int, op: str) -> BPFError:
        what = f"{op} on {self.describe()}"
        if err == errno.E2BIG and op in ("update", "batch update"):
            return MapError(f"{what} failed: the map is full (max_entries={self.max_entries})")
        if err == errno.EEXIST:
            return MapError(f"{what} failed: the key already exists (flags=NOEXIST)")
        if self.type in KEYLESS_TYPES and op in ("iterate", "delete"):
            return MapError(f"{what}: {_type_name(self.type)} maps have no keys (use push/pop/peek or add/in)")
        if err in (errno.EOPNOTSUPP, ENOTSUPP) or (err == errno.EINVAL and self.type in _NO_USER_LOOKUP):
            return MapError(f"{what}: this operation is not supported on {_type_name(self.type)} maps")
        return kernel_error(err, what, (CAP_BPF,))

    def _encoded(self, codec: Any, item: Any, what: str, size: int) -> bytes:
        """``item`` through ``codec``, checked to be the map's key or value size."""
        try:
            data = codec.encode(item)
        except MapError as exc:
            raise MapError(f"{self.describe()}: bad {what} {item!r}: {exc} ({what}_size={size})") from None
        if len(data) != size:
            raise MapError(f"{self.describe()}: {what} {item!r} encodes to {len(data)} bytes, the map's {what}_size "
                           f"is {size}")
        return data

    def _key_bytes(self, key: Any) -> bytes:
        return self._encoded(self.key_codec, key, "key", self.key_size)

    def _value_bytes(self, value: Any) -> bytes:
        if self.per_cpu:
            if isinstance(value, list):
                if len(value) != self._ncpus:
                    raise MapError(f"{self.describe()}: per-CPU value needs {self._ncpus} items (one per possible CPU), got {len(value)}")
                parts = [self._one_value(v) for v in value]
            else:
                parts = [self._one_value(value)] * self._ncpus
            pad = bytes(self._stride - self.value_size)
            return b"".join(p + pad for p in parts)
        return self._one_value(value)

    def _one_value(self, value: Any) -> bytes:
        return self._encoded(self.value_codec, value, "value", self.value_size)

    def _decode_value(self, data: bytes | memoryview) -> Any:
        if self.per_cpu:
            s, n, dec = self._stride, self.value_size, self.value_codec.decode
            return [dec(data[i:i + n]) for i in range(0, s * self._ncpus, s)]
        return self.value_codec.decode(data)

    @property
    def _value_buf_size(self) -> int:
        return self._stride * self._ncpus

    def lookup_raw(self, key: bytes | None, flags: int = 0) -> bytes | None:
        """Value bytes for ``key`` bytes, or None when absent."""
        kbuf = ctypes.create_string_buffer(key, len(key)) if key else None
        vbuf = ctypes.create_string_buffer(max(self._value_buf_size, 1))
        attr = MapElemAttr(map_fd=self.fd, key=ctypes.addressof(kbuf) if kbuf else 0,
                           value=ctypes.addressof(vbuf), flags=flags)
        _, err = bpf_errno(Cmd.MAP_LOOKUP_ELEM, attr)
        if err == errno.ENOENT:
            return None
        if err:
            raise self._error(err, "lookup")
        return vbuf.raw[:self._value_buf_size]

    def update_raw(self, key: bytes | None, value: bytes | None, flags: int = ANY) -> None:
        kbuf = ctypes.create_string_buffer(key, len(key)) if key else None
        vbuf = ctypes.create_string_buffer(value, len(value)) if value else None
        attr = MapElemAttr(map_fd=self.fd, key=ctypes.addressof(kbuf) if kbuf else 0,
                           value=ctypes.addressof(vbuf) if vbuf else 0, flags=int(flags))
        _, err = bpf_errno(Cmd.MAP_UPDATE_ELEM, attr)
        if err == errno.ENOENT and flags & UpdateFlags.EXIST:
            raise KeyError(f"{self.describe()}: no such key (flags=EXIST)")
        if err:
            raise self._error(err, "update")

    def delete_raw(self, key: bytes) -> bool:
        """Delete ``key``; False when it was not there."""
        kbuf = ctypes.create_string_buffer(key, len(key))
        attr = MapElemAttr(map_fd=self.fd, key=ctypes.addressof(kbuf))
        _, err = bpf_errno(Cmd.MAP_DELETE_ELEM, attr)
        if err == errno.ENOENT:
            return False
        if err == errno.EINVAL and self.type in _FIXED_ARRAYS:
            raise MapError(f"{self.describe()}: array elements cannot be deleted (assign zero instead)")
        if err:
            raise self._error(err, "delete")
        return True

    def next_key_raw(self, key: bytes | None) -> bytes | None:
        """The key after ``key`` (the first key for None); None at the end."""
        kbuf = ctypes.create_string_buffer(key, len(key)) if key is not None else None
        nbuf = ctypes.create_string_buffer(max(self.key_size, 1))
        attr = MapElemAttr(map_fd=self.fd, key=ctypes.addressof(kbuf) if kbuf is not None else 0,
                           value=ctypes.addressof(nbuf))
        _, err = bpf_errno(Cmd.MAP_GET_NEXT_KEY, attr)
        if err == errno.ENOENT:
            return None
        if err:
            raise self._error(err, "iterate")
        return nbuf.raw[:self.key_size]

    def lookup_and_delete_raw(self, key: bytes | None) -> bytes | None:
        kbuf = ctypes.create_string_buffer(key, len(key)) if key else None
        vbuf = ctypes.create_string_buffer(max(self._value_buf_size, 1))
        attr = MapElemAttr(map_fd=self.fd, key=ctypes.addressof(kbuf) if kbuf else 0, value=ctypes.addressof(vbuf))
        _, err = bpf_errno(Cmd.MAP_LOOKUP_AND_DELETE_ELEM, attr)
        if err == errno.ENOENT:
            return None
        if err:
            raise self._error(err, "lookup_and_delete")
        return vbuf.raw[:self._value_buf_size]

    # -- batch operations ----------------------------------------------------

    def lookup_batch(self, chunk: int = 256, delete: bool = False) -> Iterator[tuple[bytes, bytes]]:
        """(key, value) bytes using BPF_MAP_LOOKUP[_AND_DELETE]_BATCH, ``chunk`` entries per call.

        Raises NotSupportedError when the kernel or map type has no batch ops.
        """
        cmd = Cmd.MAP_LOOKUP_AND_DELETE_BATCH if delete else Cmd.MAP_LOOKUP_BATCH
        tok = max(self.key_size, 8)
        in_batch = ctypes.create_string_buffer(tok)
        out_batch = ctypes.create_string_buffer(tok)
        first = True
        while True:
            keys = ctypes.create_string_buffer(chunk * self.key_size)
            values = ctypes.create_string_buffer(chunk * self._value_buf_size)
            attr = MapBatchAttr(in_batch=0 if first else ctypes.addressof(in_batch),
                                out_batch=ctypes.addressof(out_batch), keys=ctypes.addressof(keys),
                                values=ctypes.addressof(values), count=chunk, map_fd=self.fd)
            _, err = bpf_errno(cmd, attr)
            if err == errno.ENOSPC and attr.count == 0:
                chunk *= 2  # a hash bucket holds more entries than fit in one chunk
                continue
            if err and err != errno.ENOENT:
                if first and err in _NO_BATCH_ERRNOS:
                    self._batch_ok = False
                    raise NotSupportedError(f"batch operations on {_type_name(self.type)} maps", "5.6")
                raise self._error(err, "batch lookup")
            first = False
            n, ks, vs = attr.count, self.key_size, self._value_buf_size
            kraw, vraw = keys.raw, values.raw
            for i in range(n):
                yield kraw[i * ks:(i + 1) * ks], vraw[i * vs:(i + 1) * vs]
            if err == errno.ENOENT:
                return
            ctypes.memmove(in_batch, out_batch, tok)

    def delete_batch(self, keys: Sequence[Any]) -> int:
        """Delete many keys in one call (falls back to one call per key); returns how many went."""
        raw = [self._key_bytes(k) for k in keys]
        if not raw:
            return 0
        if self._batch_ok:
            buf = ctypes.create_string_buffer(b"".join(raw), len(raw) * self.key_size)
            attr = MapBatchAttr(keys=ctypes.addressof(buf), count=len(raw), map_fd=self.fd)
            _, err = bpf_errno(Cmd.MAP_DELETE_BATCH, attr)
            if not err:
                return attr.count
            if err == errno.ENOENT:
                # Stopped at a missing key: delete the rest one by one.
                return attr.count + sum(self.delete_raw(k) for k in raw[attr.count + 1:])
            if err not in _NO_BATCH_ERRNOS:
                raise self._error(err, "batch delete")
            self._batch_ok = False
        return sum(self.delete_raw(k) for k in raw)

    def update_batch(self, items: Any, flags: int = ANY) -> None:
        """Write many (key, value) pairs in one call where the kernel can (else one call each)."""
        pairs = list(items.items() if hasattr(items, "items") else items)
        if not pairs:
            return
        kraw = [self._key_bytes(k) for k, _ in pairs]
        vraw = [self._value_bytes(v) for _, v in pairs]
        if self._batch_ok and self.type not in FD_VALUE_TYPES:
            kb = ctypes.create_string_buffer(b"".join(kraw), len(kraw) * self.key_size)
            vb = ctypes.create_string_buffer(b"".join(vraw), len(vraw) * self._value_buf_size)
            attr = MapBatchAttr(keys=ctypes.addressof(kb), values=ctypes.addressof(vb), count=len(pairs),
                                map_fd=self.fd, elem_flags=int(flags))
            _, err = bpf_errno(Cmd.MAP_UPDATE_BATCH, attr)
            if not err:
                return
            if err not in _NO_BATCH_ERRNOS or attr.count:
                raise self._error(err, "batch update")
            self._batch_ok = False
        for k, v in zip(kraw, vraw):
            self.update_raw(k, v, flags)

    # -- dict-like API: lookup/get/[]/update/del/in/keys come from MapDict ---------

    def items(self) -> Iterator[tuple[Any, Any]]:
        """(key, value) pairs: batched when the kernel supports it, else key by key."""
        kdec, vdec = self.key_codec.decode, self._decode_value
        if self._batch_ok:
            try:
                pairs = list(self.lookup_batch())
            except NotSupportedError:
                pass
            else:
                for k, v in pairs:
                    yield kdec(k), vdec(v)
                return
        for k in self.iter_keys_raw():
            v = self.lookup_raw(k)
            if v is not None:  # deleted since we saw its key
                yield kdec(k), vdec(v)

    def values(self) -> Iterator[Any]:
        for _, v in self.items():
            yield v

    def count(self) -> int:
        """Number of entries, by walking the keys (O(n) system calls)."""
        return sum(1 for _ in self.iter_keys_raw())

    def __len__(self) -> int:
        if self.type in ARRAY_TYPES:
            return self.max_entries
        raise TypeError(f"len() of a {_type_name(self.type)} map would walk every key; use .count()")

    def __bool__(self) -> bool:
        return True

    def clear(self) -> None:
        """Remove every entry; arrays, whose slots cannot be deleted, are zeroed."""
        if self.type in _FIXED_ARRAYS:
            zero = bytes(self._value_buf_size)
            for i in range(self.max_entries):
                self.update_raw(i.to_bytes(4, "little"), zero)
            return
        if self.type in ARRAY_TYPES:
            for i in range(self.max_entries):
                self.delete_raw(i.to_bytes(4, "little"))
            return
        keys = list(self.iter_keys_raw())
        if self._batch_ok:
            self.delete_batch([self.key_codec.decode(k) for k in keys])
        else:
            for k in keys:
                self.delete_raw(k)


class QueueMap(QueueValues, Map):
    """Queue (FIFO) and stack (LIFO) maps: push, pop and peek values; no keys."""


class BloomFilterMap(Map):
    """Bloom filter: add values and test membership (false positives possible, no deletes)."""

    def add(self, value: Any) -> None:
        self.update_raw(None, self._value_bytes(value))

    def __contains__(self, value: Any) -> bool:
        return self.lookup_raw_value(self._value_bytes(value))

    def lookup_raw_value(self, value: bytes) -> bool:
        vbuf = ctypes.create_string_buffer(value, len(value))
        attr = MapElemAttr(map_fd=self.fd, value=ctypes.addressof(vbuf))
        _, err = bpf_errno(Cmd.MAP_LOOKUP_ELEM, attr)
        if err == errno.ENOENT:
            return False
        if err:
            raise self._error(err, "lookup")
        return True


class MapOfMaps(Map):
    """Array/hash of maps: store Map objects (or fds); lookups give inner map ids."""

    def inner(self, key: Any, default: Any = KeyError) -> Map:
        """Open the inner map stored at ``key`` (a new Map object the caller closes)."""
        inner_id = self.lookup(key)
        if inner_id is None:
            if default is KeyError:
                raise KeyError(key)
            return default
        return Map.from_id(inner_id)


class ProgArray(Map):
    """Program array for tail calls: store Program objects (or fds); lookups give program ids.

    Slots and programs can be named: :meth:`bind` gives the names of slots
    (``{"ipv4": 0, "ipv6": 1}``, often an enum of the BPF program) and where
    program names are looked up (a Collection's ``programs``), so that
    ``prog_array["ipv4"] = "handle_ipv4"`` works, as does ``fill({...})``.
    """

    slots: dict[str, int] | None = None
    programs: Any = None

    def bind(self, programs: Any = None, slots: dict[str, int] | None = None) -> "ProgArray":
        if programs is not None:
            self.programs = getattr(programs, "programs", programs)
        if slots is not None:
            bad = {k: v for k, v in slots.items() if not 0 <= v < self.max_entries}
            if bad:
                raise MapError(f"{self.describe()}: slots {bad} are outside 0..{self.max_entries - 1}")
            self.slots = dict(slots)
        return self

    def _key_bytes(self, key: Any) -> bytes:
        if isinstance(key, str):
            if not self.slots or key not in self.slots:
                known = ", ".join(self.slots or ()) or "none; name them with bind(slots={...})"
                raise MapError(f"{self.describe()}: no slot named {key!r} (slots: {known})")
            key = self.slots[key]
        return super()._key_bytes(key)

    def _value_bytes(self, value: Any) -> bytes:
        if isinstance(value, str):
            if self.programs is None or value not in self.programs:
                known = ", ".join(self.programs or ()) if self.programs is not None else \
                    "none; bind(programs=collection) first"
                raise MapError(f"{self.describe()}: no program named {value!r} (programs: {known})")
            value = self.programs[value]
        return super()._value_bytes(value)

    def fill(self, entries: dict[Any, Any]) -> None:
        """Set several slots at once: {slot index or name: Program or program name}."""
        for key, value in entries.items():
            self[key] = value

    def program(self, key: Any) -> Any:
        """Open the program stored at ``key`` (a new Program object the caller closes)."""
        from .program import Program

        return Program.from_id(self[key])


class RingBuf(Map):
    """BPF ring buffer: read with :meth:`reader` or :meth:`events`."""

    def reader(self, codec: Any = None, callback: Any = None) -> "Any":
        """A RingBufReader on this map (records decoded with ``codec``, raw bytes by default)."""
        from .ringbuf import RingBufReader

        return RingBufReader(self, codec=codec if codec is not None else self.record_codec, callback=callback)

    def events(self, timeout: float | None = None, codec: Any = None) -> Iterator[Any]:
        """Yield records as they arrive; stop after ``timeout`` seconds (None: forever)."""
        with self.reader(codec) as r:
            yield from r.events(timeout)


_CLASS_FOR: dict[int, type[Map]] = {
    MapType.QUEUE: QueueMap, MapType.STACK: QueueMap, MapType.BLOOM_FILTER: BloomFilterMap,
    MapType.ARRAY_OF_MAPS: MapOfMaps, MapType.HASH_OF_MAPS: MapOfMaps, MapType.PROG_ARRAY: ProgArray,
    MapType.RINGBUF: RingBuf,
}


def _class_for(map_type: int) -> type[Map]:
    if map_type == MapType.STACK_TRACE and map_type not in _CLASS_FOR:
        from .stacks import StackTraceMap

        _CLASS_FOR[MapType.STACK_TRACE] = StackTraceMap
    if map_type == MapType.PERF_EVENT_ARRAY and map_type not in _CLASS_FOR:
        from .perfbuf import PerfEventArray

        _CLASS_FOR[MapType.PERF_EVENT_ARRAY] = PerfEventArray
    return _CLASS_FOR.get(map_type, Map)


# --- parameter checks with messages that say what to change -----------------


def _check_parameters(label, mtype, key_size, value_size, max_entries, flags, inner_map, btf):
    def bad(msg: str) -> MapError:
        return MapError(f"cannot create {label}: {msg}")

    if mtype == MapType.PERF_EVENT_ARRAY and max_entries == 0:
        max_entries = possible_cpu_count()
    if mtype in (MapType.RINGBUF, MapType.USER_RINGBUF):
        if key_size or value_size:
            raise bad("ring buffers have key_size=0 and value_size=0")
        if max_entries < PAGE_SIZE or max_entries & (max_entries - 1):
            raise bad(f"max_entries (the size in bytes, {max_entries}) must be a power of 2 and at least the page size {PAGE_SIZE}")
    elif mtype in KEYLESS_TYPES:
        if key_size:
            raise bad(f"{_type_name(mtype)} maps have no keys: key_size must be 0, not {key_size}")
    elif mtype in ARRAY_TYPES and key_size != 4:
        raise bad(f"array maps are indexed by u32: key_size must be 4, not {key_size}")
    if mtype == MapType.LPM_TRIE:
        flags |= MapFlags.NO_PREALLOC
        if key_size <= 4:
            raise bad("an LPM trie key is a u32 prefix length followed by the data: key_size must be > 4")
    if mtype in STORAGE_TYPES:
        flags |= MapFlags.NO_PREALLOC
        if btf is None:
            raise bad("storage maps need BTF: pass btf= with btf_key_type_id and btf_value_type_id")
    if mtype in (MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS) and inner_map is None:
        raise bad("a map of maps needs inner_map= (a template map of the inner type)")
    if max_entries <= 0 and mtype not in STORAGE_TYPES | {MapType.CGROUP_STORAGE, MapType.PERCPU_CGROUP_STORAGE, MapType.STRUCT_OPS}:
        raise bad("max_entries must be positive")
    if mtype not in KEYLESS_TYPES | {MapType.RINGBUF, MapType.USER_RINGBUF, MapType.ARENA} and key_size <= 0:
        raise bad("key_size must be positive")
    return key_size, value_size, max_entries, flags


def _create_error(err, label, mtype, key_size, value_size, max_entries, flags) -> BPFError:
    if err == errno.EINVAL or err == errno.E2BIG or err == errno.EOPNOTSUPP:
        from .features import supports_map_type

        if isinstance(mtype, MapType) and not supports_map_type(mtype):
            return NotSupportedError(f"BPF_MAP_TYPE_{mtype.name} maps", MAP_TYPE_MIN_KERNEL.get(mtype))
        if not isinstance(mtype, MapType):
            return NotSupportedError(f"map type {mtype}", reason="pybpf does not know it and the kernel refused it")
        return KernelError(err, f"cannot create {label}: the kernel refused key_size={key_size} "
                                f"value_size={value_size} max_entries={max_entries} flags={flags:#x}")
    if err == errno.ENOMEM:
        return KernelError(err, f"cannot create {label}: not enough kernel memory for max_entries={max_entries} "
                                f"x value_size={value_size}")
    return kernel_error(err, f"cannot create {label}", (CAP_BPF,))


def _check_compatible(existing: Map, spec: Any, path: str) -> None:
    """A pinned map reused by name must match the spec, or loading would silently misbehave."""
    diffs = []
    for field in ("type", "key_size", "value_size", "max_entries"):
        want = getattr(spec, field)
        have = getattr(existing, field)
        if int(want) != int(have):
            diffs.append(f"{field} {have} (spec wants {want})")
    if diffs:
        existing.close()
        raise MapError(f"the map pinned at {path} does not match map {getattr(spec, 'name', '')!r}: "
                       + ", ".join(diffs) + "; unpin it or change the spec")
