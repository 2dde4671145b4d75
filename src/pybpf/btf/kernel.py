"""The running kernel's BTF: vmlinux and module BTF from /sys/kernel/btf, parsed once per process."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from ..errors import NotSupportedError
from .btf import BTF

SYSFS_BTF = Path("/sys/kernel/btf")

_lock = threading.Lock()
_cache: dict[str, BTF] = {}


def kernel_btf() -> BTF:
    """vmlinux BTF of the running kernel (cached: the first call parses, later calls are free)."""
    with _lock:
        btf = _cache.get("vmlinux")
        if btf is None:
            path = SYSFS_BTF / "vmlinux"
            if not path.exists():
                raise NotSupportedError(
                    "kernel BTF", min_kernel="5.4",
                    reason=f"{path} does not exist: the kernel was built without CONFIG_DEBUG_INFO_BTF "
                           f"(or sysfs is not mounted)")
            # The kernel verified this BTF when it booted; skip the whole-BTF check.
            btf = _cache["vmlinux"] = BTF.from_file(path, validate=False)
        return btf


def module_btf(name: str) -> BTF:
    """BTF of a loaded kernel module, split on vmlinux (cached per module)."""
    if name == "vmlinux":
        return kernel_btf()
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"{name!r} is not a kernel module name")
    base = kernel_btf()
    with _lock:
        btf = _cache.get(name)
        if btf is None:
            path = SYSFS_BTF / name
            if not path.exists():
                loaded = ", ".join(kernel_modules_with_btf()[:10]) or "none"
                raise NotSupportedError(f"BTF of kernel module {name!r}",
                                        reason=f"{path} does not exist (module not loaded, or built without "
                                               f"BTF); modules with BTF here: {loaded}")
            btf = _cache[name] = BTF.from_file(path, base=base, validate=False)
        return btf


def kernel_modules_with_btf() -> list[str]:
    """Names of loaded modules that have BTF (entries of /sys/kernel/btf besides vmlinux)."""
    try:
        return sorted(n for n in os.listdir(SYSFS_BTF) if n != "vmlinux")
    except OSError:
        return []


def clear_cache() -> None:
    """Forget parsed kernel BTF (after modules were loaded or unloaded)."""
    with _lock:
        _cache.clear()
