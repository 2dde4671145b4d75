"""Shared test fixtures: the kernel marker, clang-compiled BPF objects, the CLI."""

from __future__ import annotations

import ctypes
import errno
import hashlib
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
CACHE = ROOT / ".cache" / "test-objects"
CLANG = shutil.which("clang-19") or shutil.which("clang")
LLVM_OBJDUMP = shutil.which("llvm-objdump-19") or shutil.which("llvm-objdump")


def _bpf_syscall_refusal() -> str | None:
    """Why bpf() cannot be used here, or None when it can (creates and closes a tiny map)."""
    if platform.system() != "Linux" or platform.machine() != "x86_64":
        return f"bpf() tests need Linux on x86-64, this is {platform.system()} {platform.machine()}"
    libc = ctypes.CDLL(None, use_errno=True)
    # union bpf_attr for BPF_MAP_CREATE: map_type, key_size, value_size, max_entries
    attr = (ctypes.c_uint32 * 32)(2, 4, 4, 1)
    fd = libc.syscall(321, 0, ctypes.byref(attr), ctypes.sizeof(attr))
    if fd < 0:
        err = ctypes.get_errno()
        return f"bpf() is refused here: {os.strerror(err)} ({errno.errorcode.get(err)}); run as root"
    os.close(fd)
    return None


KERNEL_REFUSAL = _bpf_syscall_refusal()


def pytest_collection_modifyitems(config, items):
    if KERNEL_REFUSAL is None:
        return
    skip = pytest.mark.skip(reason=KERNEL_REFUSAL)
    for item in items:
        if "kernel" in item.keywords:
            item.add_marker(skip)


def compile_bpf(source: str | Path, cpu: str = "v3", cflags: tuple[str, ...] = (), name: str | None = None) -> Path:
    """Compile BPF C (a path or the source text) with clang; cached by content and flags."""
    if CLANG is None:
        pytest.skip("clang-19 is not installed (apt-get install clang-19)")
    text = Path(source).read_text() if isinstance(source, Path) else source
    argv = [
        CLANG, "-target", "bpf", f"-mcpu={cpu}", "-g", "-O2", "-c",
        "-D__TARGET_ARCH_x86", "-I/usr/include/x86_64-linux-gnu", *cflags,
    ]
    key = hashlib.sha256(("\0".join(argv) + "\0" + text).encode()).hexdigest()[:20]
    CACHE.mkdir(parents=True, exist_ok=True)
    out = CACHE / f"{name or 'prog'}-{cpu}-{key}.o"
    if not out.exists():
        src = CACHE / f"{key}.c"
        src.write_text(text)
        include_dir = Path(source).parent if isinstance(source, Path) else None
        extra = ["-I", str(include_dir)] if include_dir else []
        proc = subprocess.run([*argv, *extra, str(src), "-o", str(out) + ".tmp"], capture_output=True, text=True)
        if proc.returncode != 0:
            raise AssertionError(f"clang failed on {source if isinstance(source, Path) else 'inline source'}:\n{proc.stderr}")
        os.replace(str(out) + ".tmp", out)
    return out


@pytest.fixture
def bpf_compile():
    return compile_bpf


def run_cli(*args: str, input: bytes | None = None, check: bool = False, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run `pybpf ARGS` as a user would, from this checkout's src/."""
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    proc = subprocess.run(
        [sys.executable, "-m", "pybpf", *map(str, args)], input=input, capture_output=True, env=env, timeout=timeout
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"pybpf {' '.join(map(str, args))} exited {proc.returncode}:\n{proc.stderr.decode()}")
    return proc


@pytest.fixture
def cli():
    return run_cli
