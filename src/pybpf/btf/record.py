"""A small frozen-record class decorator for the BTF type classes.

``dataclasses`` would do, but building its ~25 classes costs ~20 ms at import, paid by
every command that touches BTF; this generates only what the types need (``__init__``,
``__repr__``, ``__eq__``, ``__hash__``, ``replace``, frozen attributes, ``__slots__``)
from one template each.
"""

from __future__ import annotations

from typing import Any, Callable, TypeVar

T = TypeVar("T")

_MISSING = object()
_COMPILED: dict[tuple, dict[str, Any]] = {}


class FrozenError(AttributeError):
    """Assigning to an attribute of an immutable BTF object."""


def _frozen_setattr(self: Any, name: str, value: Any) -> None:
    raise FrozenError(f"{type(self).__name__} objects are immutable; use .replace({name}=...) for a changed copy")


def _frozen_delattr(self: Any, name: str) -> None:
    raise FrozenError(f"{type(self).__name__} objects are immutable")


def _replace(self: Any, **changes: Any) -> Any:
    """A copy with some fields changed (``id`` and ``btf`` are dropped unless given)."""
    values = {name: getattr(self, name) for name in self._init_fields}
    for name in self._detached:
        values[name] = None
    unknown = set(changes) - set(values)
    if unknown:
        raise TypeError(f"{type(self).__name__} has no field {sorted(unknown)[0]!r}")
    values.update(changes)
    return type(self)(**values)


def frozen_record(*, kw_only: bool = False, hidden: tuple[str, ...] = (), uncompared: tuple[str, ...] = (),
                  detached: tuple[str, ...] = ()) -> Callable[[type[T]], type[T]]:
    """Turn the annotated class attributes into immutable slots.

    ``hidden`` fields stay out of repr, ``uncompared`` out of ==/hash, and ``detached``
    ones (an object's place in a BTF) are reset by ``replace``.  A ``_post_init``
    method, if defined, runs after the fields are set.
    """

    def wrap(cls: type[T]) -> type[T]:
        own = [n for n in cls.__dict__.get("__annotations__", {})]
        inherited: list[str] = list(getattr(cls, "_init_fields", ()))
        defaults: dict[str, Any] = dict(getattr(cls, "_defaults", {}))
        for name in own:
            if name in cls.__dict__:
                defaults[name] = cls.__dict__[name]
        fields = inherited + [n for n in own if n not in inherited]
        new_slots = tuple(n for n in own if n not in inherited)
        hide = set(getattr(cls, "_hidden", ())) | set(hidden)
        skip = set(getattr(cls, "_uncompared", ())) | set(uncompared)
        detach = tuple(dict.fromkeys(tuple(getattr(cls, "_detached", ())) + detached))
        ns = {k: v for k, v in cls.__dict__.items() if k not in own and k not in ("__dict__", "__weakref__")}
        ns["__slots__"] = new_slots
        ns.update(_init_fields=tuple(fields), _defaults=defaults, _hidden=tuple(hide), _uncompared=tuple(skip),
                  _detached=detach, __setattr__=_frozen_setattr, __delattr__=_frozen_delattr, replace=_replace)
        globs: dict[str, Any] = {"_set": object.__setattr__, "_MISSING": _MISSING}
        params = []
        for name in fields:
            if name in defaults:
                globs[f"_d_{name}"] = defaults[name]
                params.append(f"{name}=_d_{name}")
            elif kw_only:
                params.append(name)
            else:
                if any("=" in p for p in params):
                    raise TypeError(f"{cls.__name__}: field {name!r} without a default follows one with a default")
                params.append(name)
        sig = ("*, " if kw_only and params else "") + ", ".join(params)
        body = "".join(f"    _set(self, {n!r}, {n})\n" for n in fields) or "    pass\n"
        if hasattr(cls, "_post_init"):
            body += "    self._post_init()\n"
        compared = [n for n in fields if n not in skip]
        key = "(" + "".join(f"self.{n}, " for n in compared) + ")"
        other_key = key.replace("self.", "other.")
        shown = [n for n in fields if n not in hide]
        repr_body = ", ".join(f"{n}={{self.{n}!r}}" for n in shown)
        source = (
            f"def __init__(self, {sig}):\n{body}"
            f"def __repr__(self):\n    return f\"{{type(self).__qualname__}}({repr_body})\"\n"
            f"def __eq__(self, other):\n"
            f"    if other.__class__ is not self.__class__:\n        return NotImplemented\n"
            f"    return {key} == {other_key}\n"
            f"def __hash__(self):\n    return hash({key})\n"
        )
        key = (source, tuple((k, id(v)) for k, v in sorted(globs.items())))
        functions = _COMPILED.get(key)
        if functions is None:  # classes with the same fields share one compiled template
            exec(compile(source, f"<frozen_record {cls.__name__}>", "exec"), globs)
            functions = _COMPILED[key] = {name: globs[name] for name in ("__init__", "__repr__", "__eq__", "__hash__")}
        ns.update(functions)
        new_cls = type(cls)(cls.__name__, cls.__bases__, ns)
        new_cls.__qualname__ = cls.__qualname__
        return new_cls  # type: ignore[return-value]

    return wrap
