"""Real-world CO-RE tools (bcc's libbpf-tools) load with pybpf as with libbpf, program by program.

The tools are not in this repository: the test runs where a checkout of bcc is at
/work/ref (the project's reference machine) and skips elsewhere.  The full
comparison over every tool is `python bench/compare_load.py DIR --programs --fixup`
(see bench/README.md); this is a handful of them, compiled here with clang.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "kernel"))
sys.path.insert(0, str(HERE.parent / "object"))
sys.path.insert(0, str(HERE.parent.parent / "bench"))

from conftest import compile_bpf  # noqa: E402
from kernel_testlib import vmlinux_include  # noqa: E402

TOOLS = Path("/work/ref/iovisor+bcc/libbpf-tools")
HEADERS = Path("/work/ref/inc")  # libbpf headers newer than libbpf-dev 1.1's, which the tools need

pytestmark = [pytest.mark.kernel, pytest.mark.slow,
              pytest.mark.skipif(not TOOLS.is_dir(), reason=f"no libbpf-tools sources at {TOOLS} (bcc checkout)")]

# tracepoints + CO-RE + ring/perf buffers; tp_btf and raw_tp; kprobes (refused here); fentry (refused here);
# histograms in hash maps sized from user space (--fixup sizes them on both sides)
CHOSEN = ["execsnoop", "runqlat", "tcpconnect", "vfsstat", "biolatency"]


@pytest.fixture(scope="module")
def libbpf():
    import compare_load

    return compare_load.LibBPF()


@pytest.mark.parametrize("tool", CHOSEN)
def test_tool_loads_program_by_program_like_libbpf(tool, libbpf):
    import compare_load

    cflags = (*vmlinux_include(), *(("-I", str(HEADERS)) if HEADERS.is_dir() else ()))
    obj = compile_bpf(TOOLS / f"{tool}.bpf.c", cflags=cflags, name=f"libbpf-tools-{tool}")
    result = compare_load.compare(obj, libbpf, programs=True, fixup=True)
    assert result["programs"], f"libbpf sees no program in {tool}"
    differ = {name: p for name, p in result["programs"].items() if p["libbpf"][0] != p["pybpf"][0]}
    assert not differ, differ
    assert result["libbpf"][0] == result["pybpf"][0], result
    for name, p in result["programs"].items():
        if not p["libbpf"][0]:
            assert compare_load.reason_class("libbpf", p["libbpf"][1]) == \
                compare_load.reason_class("pybpf", p["pybpf"][1]), (name, p)


def test_the_chosen_tools_load_something(libbpf):
    """Not every comparison is both sides refusing: the tracepoint and BTF-tracepoint tools load whole."""
    import compare_load

    cflags = (*vmlinux_include(), *(("-I", str(HEADERS)) if HEADERS.is_dir() else ()))
    for tool in ("execsnoop", "runqlat"):
        obj = compile_bpf(TOOLS / f"{tool}.bpf.c", cflags=cflags, name=f"libbpf-tools-{tool}")
        result = compare_load.compare(obj, libbpf, programs=False, fixup=True)
        assert result["libbpf"][0] and result["pybpf"][0], result
