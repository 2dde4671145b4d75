"""The dict-like face of a map, written only against byte-level primitives.

A backend's map class provides ``lookup_raw``, ``update_raw``, ``delete_raw``,
``next_key_raw``, ``lookup_and_delete_raw`` (bytes in, bytes or None out) and
the attributes ``key_codec``, ``value_codec``, ``key_size``, ``value_size``,
``per_cpu``, ``ncpus``, ``type``, ``max_entries`` and ``describe()``; this
class adds ``m[k]``, ``m[k] = v``, ``del m[k]``, ``in``, ``get``, ``keys``,
``values``, ``items``, ``update``, ``clear``, ``count`` with the same meaning
and errors as the kernel backend's Map, so both backends share this layer.
"""

from __future__ import annotations

from typing import Any, Iterator

from ..errors import MapError

ANY = 0


def round8(n: int) -> int:
    return (n + 7) & ~7


class MapDict:
    """Dict-like access to a map through its codecs (per-CPU values are lists, one per CPU)."""

    # Array types: every index exists; len() is max_entries.
    fixed_size = False
    # Arrays whose slots cannot be deleted: clear() zeroes them instead.
    fixed_slots = False

    # -- encoding ------------------------------------------------------------

    def _key_bytes(self, key: Any) -> bytes:
        try:
            data = self.key_codec.encode(key)
        except MapError as exc:
            raise MapError(f"{self.describe()}: bad key {key!r}: {exc} (key_size={self.key_size})") from None
        if len(data) != self.key_size:
            raise MapError(f"{self.describe()}: key {key!r} encodes to {len(data)} bytes, the map's key_size is "
                           f"{self.key_size}")
        return data

    def _one_value(self, value: Any) -> bytes:
        try:
            data = self.value_codec.encode(value)
        except MapError as exc:
            raise MapError(f"{self.describe()}: bad value {value!r}: {exc} (value_size={self.value_size})") from None
        if len(data) != self.value_size:
            raise MapError(f"{self.describe()}: value {value!r} encodes to {len(data)} bytes, the map's value_size "
                           f"is {self.value_size}")
        return data

    def _value_bytes(self, value: Any) -> bytes:
        if not self.per_cpu:
            return self._one_value(value)
        if isinstance(value, list):
            if len(value) != self.ncpus:
                raise MapError(f"{self.describe()}: per-CPU value needs {self.ncpus} items (one per CPU), got "
                               f"{len(value)}")
            parts = [self._one_value(v) for v in value]
        else:
            parts = [self._one_value(value)] * self.ncpus
        pad = bytes(round8(self.value_size) - self.value_size)
        return b"".join(p + pad for p in parts)

    def _decode_value(self, data: bytes) -> Any:
        if self.per_cpu:
            stride, n, dec = round8(self.value_size), self.value_size, self.value_codec.decode
            return [dec(data[i:i + n]) for i in range(0, stride * self.ncpus, stride)]
        return self.value_codec.decode(data)

    # -- iteration over raw keys -----------------------------------------------

    def iter_keys_raw(self) -> Iterator[bytes]:
        """Key bytes, each once, even when keys are deleted during the walk."""
        seen: set[bytes] = set()
        key = None
        budget = 4 * max(self.max_entries, 256)  # bound the walk when other writers churn the map
        while budget > 0:
            budget -= 1
            nxt = self.next_key_raw(key)
            if nxt is None:
                return
            key = nxt
            if nxt in seen:
                continue  # the kernel restarted from the first key: skip what we already gave
            seen.add(nxt)
            yield nxt

    # -- dict-like API ---------------------------------------------------------

    def lookup(self, key: Any, default: Any = None) -> Any:
        raw = self.lookup_raw(self._key_bytes(key))
        return default if raw is None else self._decode_value(raw)

    get = lookup

    def __getitem__(self, key: Any) -> Any:
        raw = self.lookup_raw(self._key_bytes(key))
        if raw is None:
            raise KeyError(key)
        return self._decode_value(raw)

    def update(self, key: Any, value: Any, flags: int = ANY) -> None:
        """Write one entry; ``flags`` is ANY, NOEXIST (create only) or EXIST (replace only)."""
        self.update_raw(self._key_bytes(key), self._value_bytes(value), flags)

    def __setitem__(self, key: Any, value: Any) -> None:
        self.update_raw(self._key_bytes(key), self._value_bytes(value), ANY)

    def __delitem__(self, key: Any) -> None:
        if not self.delete_raw(self._key_bytes(key)):
            raise KeyError(key)

    def delete(self, key: Any) -> bool:
        """Delete ``key``; False when it was absent."""
        return self.delete_raw(self._key_bytes(key))

    def lookup_and_delete(self, key: Any) -> Any:
        raw = self.lookup_and_delete_raw(self._key_bytes(key))
        if raw is None:
            raise KeyError(key)
        return self._decode_value(raw)

    def __contains__(self, key: Any) -> bool:
        return self.lookup_raw(self._key_bytes(key)) is not None

    def keys(self) -> Iterator[Any]:
        decode = self.key_codec.decode
        for k in self.iter_keys_raw():
            yield decode(k)

    __iter__ = keys

    def items(self) -> Iterator[tuple[Any, Any]]:
        kdec, vdec = self.key_codec.decode, self._decode_value
        for k in self.iter_keys_raw():
            v = self.lookup_raw(k)
            if v is not None:
                yield kdec(k), vdec(v)

    def values(self) -> Iterator[Any]:
        for _, v in self.items():
            yield v

    # -- batches (one call each here; the kernel backend uses BPF_MAP_*_BATCH) --------------

    def lookup_batch(self, chunk: int = 256, delete: bool = False) -> Iterator[tuple[bytes, bytes]]:
        """(key, value) bytes of every entry; with ``delete`` the entries are removed as they are read."""
        for k in list(self.iter_keys_raw()):
            v = self.lookup_and_delete_raw(k) if delete else self.lookup_raw(k)
            if v is not None:
                yield k, v

    def update_batch(self, items: Any, flags: int = ANY) -> None:
        """Write many (key, value) pairs (a mapping or an iterable of pairs)."""
        for k, v in list(items.items() if hasattr(items, "items") else items):
            self.update_raw(self._key_bytes(k), self._value_bytes(v), flags)

    def delete_batch(self, keys: Any) -> int:
        """Delete many keys; returns how many were there."""
        return sum(self.delete_raw(self._key_bytes(k)) for k in keys)

    def count(self) -> int:
        """Number of entries, by walking the keys."""
        return sum(1 for _ in self.iter_keys_raw())

    def __len__(self) -> int:
        if self.fixed_size:
            return self.max_entries
        raise TypeError(f"len() of {self.describe()} would walk every key; use .count()")

    def __bool__(self) -> bool:
        return True

    def clear(self) -> None:
        """Remove every entry; arrays, whose slots cannot be deleted, are zeroed."""
        if self.fixed_slots:
            zero = bytes(round8(self.value_size) * self.ncpus if self.per_cpu else self.value_size)
            for i in range(self.max_entries):
                self.update_raw(i.to_bytes(4, "little"), zero)
            return
        for k in list(self.iter_keys_raw()):
            self.delete_raw(k)


class QueueValues:
    """The push/pop/peek face of queue and stack maps (no keys: the byte primitives get None).

    Shared by both backends' QueueMap, listed before their map base so that iterating
    pops values instead of walking keys; a backend may override ``clear`` with a
    faster equivalent."""

    def push(self, value: Any, flags: int = ANY) -> None:
        """Add a value; with flags=EXIST a full map drops its oldest value instead of failing."""
        self.update_raw(None, self._value_bytes(value), flags)

    def pop(self, default: Any = KeyError) -> Any:
        raw = self.lookup_and_delete_raw(None)
        if raw is None:
            if default is KeyError:
                raise KeyError(f"{self.describe()} is empty")
            return default
        return self._decode_value(raw)

    def peek(self, default: Any = None) -> Any:
        raw = self.lookup_raw(None)
        return default if raw is None else self._decode_value(raw)

    def __iter__(self) -> Iterator[Any]:
        """Pop values until the map is empty."""
        while (raw := self.lookup_and_delete_raw(None)) is not None:
            yield self._decode_value(raw)

    def clear(self) -> None:
        for _ in self:
            pass
