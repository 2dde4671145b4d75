"""pybpf's userspace eBPF runtime: the VM, its maps, helpers and program contexts.

Programs run without the kernel: checked before they start, executed by a
compiler to Python (or the reference interpreter), with every memory access
bounds- and permission-checked.  Three ways in:

- ``ObjectSpec.from_file("x.bpf.o").load(backend="vm")`` -> :class:`VMObject`
  with ``maps``/``programs`` by name (the kernel backend's API: dict-like
  maps decoded through BTF, ``prog.test_run(data=..., ctx=..., repeat=N)``,
  ring buffer and perf readers), global variables (``obj.bss["x"]``) and
  hooks the embedder fires (``obj.attach_all()``, ``obj.vm.fire(section, ctx)``);
- :class:`VM` directly: ``vm.create_map(...)``, ``vm.load(instructions)``,
  ``vm.execute(prog, ...)``, ``vm.helpers.register(...)``;
- :func:`run`, uBPF style: bytecode and a memory buffer in, r0 out.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from .context import Context, RawContext, SkbContext, TracepointFormat, XDPContext
from .events import PerfBufReader, PerfEventArray, RingBuf, RingBufReader
from .helpers import Helper, HelperRegistry, default_helpers, unwind_helper_registry
from .loader import LiveData, VMObject, load_spec
from .machine import DEFAULT_BUDGET, VM, Hook, Identity, Run
from .maps import (
    ArrayMap, BloomFilterMap, HashMap, LPMTrieMap, LRUHashMap, MapOfMaps, ProgArray, QueueMap, StackTraceMap, VMMap,
)
from .program import TestRunResult, VMProgram
from ..object.backends import register_backend

# The VM needs nothing from the host, so it is always available.
register_backend("vm", load_spec)


def run(code: Any, memory: bytes | bytearray = b"", *, helpers: Mapping[int, Callable[..., int]] | None = None,
        budget: int = DEFAULT_BUDGET, engine: str = "compiled") -> int:
    """Run bytecode the way uBPF embeds it: r1 = ``memory``, r2 = its length, r10 = the stack top.

    ``code`` is bytes, a pybpf.isa Program or Instructions; ``memory`` is
    copied unless it is a bytearray (then the program's writes land in it).
    ``helpers`` maps helper ids to plain callables ``f(r1, ..., r5) -> int``
    (added to the built-in ones).  Returns r0.
    """
    vm = VM(budget=budget, engine=engine)
    for helper_id, func in (helpers or {}).items():
        vm.helpers.register(helper_id, lambda _vm, *args, _f=func: _f(*args), name=f"helper #{helper_id}")
    prog = vm.load(code)
    buf = memory if isinstance(memory, bytearray) else bytearray(memory)
    return vm.execute(prog, memory=buf)


__all__ = [
    "ArrayMap", "BloomFilterMap", "Context", "DEFAULT_BUDGET", "HashMap", "Helper", "HelperRegistry", "Hook",
    "Identity",
    "LPMTrieMap", "LRUHashMap", "MapOfMaps", "PerfBufReader", "PerfEventArray", "ProgArray", "QueueMap",
    "RawContext", "RingBuf", "RingBufReader", "Run", "SkbContext", "StackTraceMap", "TestRunResult",
    "TracepointFormat", "VM", "VMMap", "VMObject", "VMProgram", "XDPContext", "LiveData", "default_helpers",
    "load_spec", "run", "unwind_helper_registry",
]
