"""Package namespaces that import their modules on first use.

A CLI command pays for every module its package's ``__init__`` imports: ``pybpf prog
load`` used to spend 80 ms importing all of pybpf.kernel (links, USDT, symbolizers,
the assembler...) to use the loader.  A package lists what it exports, module by
module; each name is imported the first time it is asked for, and then stays in
the package's namespace like an eagerly imported one.
"""

from __future__ import annotations

import sys
from typing import Any, Callable


def _import(name: str) -> Any:
    """The module ``name``, through the import statement's own path: unlike importlib.import_module,
    it shows in ``python -X importtime``, which is how a slow start is found."""
    __import__(name)
    return sys.modules[name]


def lazy_exports(package: str, namespace: dict[str, Any], exports: dict[str, tuple[str, ...]]
                 ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``: ``exports`` maps a relative module name
    (".maps") to the names it provides.  Submodules stay reachable as attributes
    (``pybpf.kernel.loader``), as they were when the package imported them all."""
    module_of = {name: module for module, names in exports.items() for name in names}
    parts = package.split(".")

    def absolute(module: str) -> str:  # ".maps" -> "pybpf.kernel.maps", "..object.codec" -> "pybpf.object.codec"
        up = len(module) - len(module.lstrip("."))
        return ".".join(parts[:len(parts) - up + 1]) + "." + module[up:]

    def __getattr__(name: str) -> Any:
        module = module_of.get(name)
        if module is not None:
            value = getattr(_import(absolute(module)), name)
        elif not name.startswith("__"):
            try:
                value = _import(f"{package}.{name}")
            except ModuleNotFoundError as exc:
                if exc.name != f"{package}.{name}":
                    raise
                raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(module_of))

    return __getattr__, __dir__
