"""Packages that import their modules on first use (pybpf._lazy): every exported name still imports,
and loading an object does not drag in what it does not use (the start of `pybpf prog load`)."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
LAZY_PACKAGES = ("pybpf.kernel", "pybpf.isa", "pybpf.object")


def _fresh(code: str) -> str:
    """Run ``code`` in a new interpreter (this one has imported everything already)."""
    proc = subprocess.run([sys.executable, "-c", code], env={"PYTHONPATH": str(SRC)}, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.parametrize("package", LAZY_PACKAGES)
def test_every_exported_name_imports_from_a_fresh_interpreter(package):
    out = _fresh(f"import {package} as p\n"
                 f"for name in p.__all__:\n"
                 f"    exec(f'from {package} import {{name}}')\n"
                 f"    print(name, getattr(p, name) is not None)")
    names = importlib.import_module(package).__all__
    assert out.split() == [word for name in names for word in (name, "True")]


def test_submodules_stay_reachable_as_attributes_and_unknown_names_fail_as_attributes():
    out = _fresh("import pybpf.kernel as k, pybpf.isa as i\n"
                 "print(k.loader.__name__, i.assembler.__name__, hasattr(k, 'no_such_name'))\n"
                 "from pybpf.kernel import maps\n"
                 "print(maps.__name__)")
    assert out.split() == ["pybpf.kernel.loader", "pybpf.isa.assembler", "False", "pybpf.kernel.maps"]


def test_loading_an_object_imports_neither_the_assembler_nor_links():
    out = _fresh("import sys\n"
                 "from pybpf.object import ObjectSpec\n"
                 "from pybpf.kernel import Object, ensure_bpffs\n"
                 "from pybpf.cli import prog, objfile\n"
                 "print(' '.join(sorted(sys.modules)))")
    loaded = set(out.split())
    assert {"pybpf.object.spec", "pybpf.kernel.loader", "pybpf.isa.instruction"} <= loaded
    for unneeded in ("pybpf.isa.assembler", "pybpf.kernel.link", "pybpf.kernel.usdt", "pybpf.kernel.symbolize",
                     "pybpf.cli.run", "json"):
        assert unneeded not in loaded, unneeded
