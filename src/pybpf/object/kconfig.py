"""Values of ``__kconfig`` externs, computed the way libbpf computes them.

``CONFIG_*`` come from the kernel configuration (a text the caller gives, else
``/boot/config-$(uname -r)``, else ``/proc/config.gz``); ``LINUX_KERNEL_VERSION``
from the Ubuntu version signature, the Debian version string or ``uname -r``;
``LINUX_HAS_BPF_COOKIE`` and ``LINUX_HAS_SYSCALL_WRAPPER`` from probes the
backend may supply (defaults read the running kernel's BTF and kallsyms).
Nothing is read at parse time: the backend calls :func:`resolve_kconfig` when
it loads.
"""

from __future__ import annotations

import gzip
import os
import re
from typing import TYPE_CHECKING, Callable, Mapping

from ..errors import ObjectError

if TYPE_CHECKING:
    from .spec import ExternSpec, ObjectSpec

TRI_NO, TRI_YES, TRI_MODULE = 0, 1, 2


def kernel_version_code(major: int, minor: int, patch: int) -> int:
    """KERNEL_VERSION(a, b, c) as bpf_helpers.h defines it (patch clamped to 255)."""
    return (major << 16) + (minor << 8) + min(patch, 255)


def running_kernel_version() -> int:
    """libbpf's get_kernel_version(): what LINUX_KERNEL_VERSION becomes."""
    try:
        with open("/proc/version_signature") as f:  # Ubuntu: "Ubuntu 5.4.0-12.15-generic 5.4.8"
            parts = f.read().split()
        m = re.match(r"(\d+)\.(\d+)\.(\d+)", parts[2]) if len(parts) >= 3 else None
        if m:
            return kernel_version_code(*map(int, m.groups()))
    except OSError:
        pass
    uts = os.uname()
    m = re.search(r"Debian (\d+)\.(\d+)\.(\d+)", uts.version)
    if m:
        return kernel_version_code(*map(int, m.groups()))
    m = re.match(r"(\d+)\.(\d+)\.(\d+)", uts.release)
    if not m:
        raise ObjectError(f"cannot tell the kernel version from uname release {uts.release!r}")
    return kernel_version_code(*map(int, m.groups()))


def read_kernel_config() -> str:
    """The running kernel's configuration text (/boot/config-$(uname -r), else /proc/config.gz)."""
    release = os.uname().release
    for path in (f"/boot/config-{release}", "/proc/config.gz"):
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            continue
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        return data.decode("utf-8", "replace")
    raise ObjectError(f"cannot read the kernel configuration: neither /boot/config-{release} nor /proc/config.gz "
                      "exists (load the 'configs' module, or pass the config text)")


def probe_bpf_cookie() -> bool:
    """Whether bpf_get_attach_cookie() exists: the helper is in the kernel's enum bpf_func_id."""
    from ..btf import kernel_btf

    return any(v.name == "BPF_FUNC_get_attach_cookie"
               for t in kernel_btf().find_all("bpf_func_id", "enum") for v in t.values)


def probe_syscall_wrapper() -> bool:
    """Whether syscalls go through arch wrappers (``__x64_sys_bpf``), as libbpf's kprobe probe finds out."""
    prefix = {"x86_64": "x64", "i686": "ia32", "aarch64": "arm64", "s390x": "s390x", "riscv64": "riscv",
              "ppc64le": "powerpc", "armv7l": "arm", "mips": "mips"}.get(os.uname().machine)
    if prefix is None:
        return False
    want = f" __{prefix}_sys_bpf"
    try:
        with open("/proc/kallsyms") as f:
            return any(line.rstrip().endswith(want) for line in f)
    except OSError:
        return False


DEFAULT_PROBES: dict[str, Callable[[], int]] = {
    "LINUX_KERNEL_VERSION": running_kernel_version,
    "LINUX_HAS_BPF_COOKIE": lambda: int(probe_bpf_cookie()),
    "LINUX_HAS_SYSCALL_WRAPPER": lambda: int(probe_syscall_wrapper()),
}


def resolve_kconfig(spec: "ObjectSpec", resolver: Callable[[str], object] | None = None, *,
                    config: str | Mapping[str, str] | None = None,
                    probes: Mapping[str, Callable[[], int]] | None = None) -> bytes | None:
    """Fill the ``.kconfig`` map of ``spec`` and return its bytes (None when there are no kconfig externs).

    ``resolver(name)`` may answer any extern first (return None to fall through);
    ``config`` is Kconfig text (``CONFIG_X=y`` lines) or a mapping, read from the
    running kernel when needed and not given; ``probes`` override the virtual
    ``LINUX_*`` values.  Unresolved weak externs stay zero; an unresolved strong
    one is an :class:`ObjectError`, as in libbpf.
    """
    externs = [e for e in spec.externs.values() if e.kind == "kconfig"]
    kmap = spec.map_by_section(".kconfig")
    if not externs or kmap is None or kmap.data is None:
        return None
    data = kmap.data
    data[:] = bytes(len(data))
    probes = {**DEFAULT_PROBES, **(probes or {})}
    unset: list["ExternSpec"] = []
    for ext in externs:
        answer = resolver(ext.name) if resolver is not None else None
        if answer is not None:
            _set_value(ext, data, answer)
        elif ext.name.startswith("CONFIG_"):
            unset.append(ext)
        elif ext.name in probes:
            _set_number(ext, data, int(probes[ext.name]()))
        elif not ext.name.startswith("LINUX_") or not ext.weak:
            raise ObjectError(f"{spec.name}: kconfig extern {ext.name!r} is not a CONFIG_ option nor a virtual "
                              "value pybpf knows (LINUX_KERNEL_VERSION, LINUX_HAS_BPF_COOKIE, "
                              "LINUX_HAS_SYSCALL_WRAPPER)")
    if unset:
        values = _parse_config(config if config is not None else read_kernel_config())
        for ext in unset:
            value = values.get(ext.name)
            if value is not None:
                _set_value(ext, data, value)
            elif not ext.weak:
                raise ObjectError(f"{spec.name}: kconfig extern {ext.name!r} (strong) is not set in the kernel "
                                  "configuration; declare it __weak to default to 0")
    return bytes(data)


def _parse_config(config: str | Mapping[str, str]) -> dict[str, str]:
    if isinstance(config, Mapping):
        return {k: str(v) for k, v in config.items()}
    out: dict[str, str] = {}
    for line in config.splitlines():
        if not line.startswith("CONFIG_"):
            continue
        name, sep, value = line.partition("=")
        if not sep:
            raise ObjectError(f"kernel configuration line {line!r} has no '='")
        if not value:
            raise ObjectError(f"kernel configuration line {line!r} has no value")
        out.setdefault(name, value)
    return out


def _set_value(ext: "ExternSpec", data: bytearray, value: object) -> None:
    if isinstance(value, bool):
        _set_number(ext, data, int(value))
    elif isinstance(value, int):
        _set_number(ext, data, value)
    elif isinstance(value, (bytes, str)):
        text = value.decode() if isinstance(value, bytes) else value
        if text in ("y", "n", "m"):
            _set_tristate(ext, data, text)
        elif text.startswith('"'):
            _set_string(ext, data, text)
        else:
            number = _strtoull(text)
            if number is None:
                raise ObjectError(f"kconfig extern {ext.name!r}: value {text!r} isn't a valid integer")
            if ext.kconfig_type not in ("int", "char"):
                raise ObjectError(f"kconfig extern {ext.name!r}: value {text!r} implies an integer type")
            _set_number(ext, data, number)
    else:
        raise ObjectError(f"kconfig extern {ext.name!r}: cannot use a {type(value).__name__} as its value")


def _strtoull(text: str) -> int | None:
    """C's strtoull(text, NULL, 0) on a whole string: 0x hex, 0 octal, decimal; '-' wraps around."""
    neg = text.startswith("-")
    body = text[1:] if neg or text.startswith("+") else text
    try:
        if body[:2].lower() == "0x":
            value = int(body[2:], 16)
        elif body.startswith("0") and len(body) > 1:
            value = int(body[1:], 8)
        else:
            value = int(body, 10)
    except ValueError:
        return None
    return (-value if neg else value) & ((1 << 64) - 1)


def _set_tristate(ext: "ExternSpec", data: bytearray, value: str) -> None:
    if ext.kconfig_type == "bool":
        if value == "m":
            raise ObjectError(f"kconfig extern {ext.name!r}: value 'm' implies a tristate or char type")
        raw = 1 if value == "y" else 0
    elif ext.kconfig_type == "tristate":
        raw = {"y": TRI_YES, "m": TRI_MODULE, "n": TRI_NO}[value]
    elif ext.kconfig_type == "char":
        raw = ord(value)
    else:
        raise ObjectError(f"kconfig extern {ext.name!r}: value {value!r} implies a bool, tristate or char type")
    data[ext.offset:ext.offset + ext.size] = raw.to_bytes(ext.size, "little")


def _set_string(ext: "ExternSpec", data: bytearray, value: str) -> None:
    if ext.kconfig_type != "char_array":
        raise ObjectError(f"kconfig extern {ext.name!r}: value {value} implies a char array type")
    if len(value) < 2 or not value.endswith('"'):
        raise ObjectError(f"kconfig extern {ext.name!r}: invalid string value {value}")
    raw = value[1:-1].encode()[:ext.size - 1]
    data[ext.offset:ext.offset + ext.size] = raw.ljust(ext.size, b"\0")


def _set_number(ext: "ExternSpec", data: bytearray, value: int) -> None:
    if ext.kconfig_type not in ("int", "char", "bool"):
        raise ObjectError(f"kconfig extern {ext.name!r}: value {value} implies an integer, char or bool type")
    if ext.kconfig_type == "bool" and value not in (0, 1):
        raise ObjectError(f"kconfig extern {ext.name!r}: value {value} isn't boolean compatible")
    bits = ext.size * 8
    v = value & ((1 << 64) - 1)
    if ext.size < 8:
        fits = (v + (1 << (bits - 1))) & ((1 << 64) - 1) < (1 << bits) if ext.signed else v >> bits == 0
        if not fits:
            raise ObjectError(f"kconfig extern {ext.name!r}: value {value} doesn't fit in {ext.size} bytes")
    data[ext.offset:ext.offset + ext.size] = (v & ((1 << bits) - 1)).to_bytes(ext.size, "little")


__all__ = [
    "DEFAULT_PROBES", "kernel_version_code", "probe_bpf_cookie", "probe_syscall_wrapper", "read_kernel_config",
    "resolve_kconfig", "running_kernel_version",
]
