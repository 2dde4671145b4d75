"""Where ObjectSpec.load finds its backends (pybpf.kernel, pybpf.vm register here when imported).

Its own module, not part of spec.py, so that registering costs a backend package nothing:
importing pybpf.kernel (for a map dump, a link list) must not import the object parser.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from ..errors import ObjectError

if TYPE_CHECKING:
    from .spec import ObjectSpec

# name -> (load(spec, **options), available() -> reason it cannot be used, or None)
_BACKENDS: dict[str, tuple[Callable[..., Any], Callable[[], str | None]]] = {}


def register_backend(name: str, load: Callable[..., Any], unavailable: Callable[[], str | None] = lambda: None
                     ) -> None:
    """Called by a backend package (pybpf.kernel, pybpf.vm) when imported: how it loads a spec."""
    _BACKENDS[name] = (load, unavailable)


def load_spec(spec: "ObjectSpec", backend: str = "auto", **options: Any) -> Any:
    """Dispatch to a registered backend; importing ``pybpf.<backend>`` registers it."""
    import importlib

    names = ("kernel", "vm") if backend == "auto" else (backend,)
    reasons = []
    for name in names:
        if name not in _BACKENDS:
            try:
                importlib.import_module(f"pybpf.{name}")
            except ImportError as exc:
                reasons.append(f"{name}: {exc}")
                continue
        entry = _BACKENDS.get(name)
        if entry is None:
            reasons.append(f"{name}: pybpf.{name} does not load ObjectSpecs yet")
            continue
        load, unavailable = entry
        why = unavailable()
        if why is not None and backend == "auto":
            reasons.append(f"{name}: {why}")
            continue
        return load(spec, **options)
    raise ObjectError(f"{spec.name}: no backend can load it ({'; '.join(reasons)})")
