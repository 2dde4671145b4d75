"""``pybpf.compile("x.bpf.c")``: BPF C -> clang -> ObjectSpec, with a vmlinux.h for this kernel.

The header is generated from the running kernel's BTF (the BTF layer's C
dumper) once per kernel and cached in ``$XDG_CACHE_HOME/pybpf`` (default
``~/.cache/pybpf``) under the BTF's hash, so ``#include "vmlinux.h"`` works
without shipping headers.  Compiled objects are cached too, keyed by source,
flags, clang version and that hash.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path
from typing import Iterable

from ..errors import BTFError, CompileError
from .spec import ObjectSpec

VMLINUX_BTF = "/sys/kernel/btf/vmlinux"
CLANG_NAMES = ("clang-19", "clang-20", "clang-18", "clang")
_HEADER_GUARD = "__VMLINUX_H__"


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "pybpf"


def find_clang() -> str:
    """The clang to use: $PYBPF_CLANG, else the first of clang-19, clang-20, clang-18, clang on PATH."""
    wanted = os.environ.get("PYBPF_CLANG")
    if wanted:
        path = shutil.which(wanted)
        if path is None:
            raise CompileError(f"PYBPF_CLANG={wanted!r} is not an executable on PATH")
        return path
    for name in CLANG_NAMES:
        path = shutil.which(name)
        if path:
            return path
    raise CompileError("clang is not installed; BPF C needs clang with the BPF target: "
                       "apt-get install clang-19 (Debian/Ubuntu), dnf install clang (Fedora), "
                       "or set PYBPF_CLANG to a clang binary")


def vmlinux_header(btf_path: str = VMLINUX_BTF) -> Path:
    """Directory holding a ``vmlinux.h`` for the kernel whose BTF is ``btf_path`` (generated once, cached)."""
    try:
        data = Path(btf_path).read_bytes()
    except OSError as exc:
        raise CompileError(f"cannot read kernel BTF {btf_path}: {exc.strerror}; vmlinux.h cannot be generated "
                           "(the kernel needs CONFIG_DEBUG_INFO_BTF=y)") from None
    digest = hashlib.sha256(data).hexdigest()[:24]
    directory = cache_dir() / f"vmlinux-{digest}"
    header = directory / "vmlinux.h"
    if header.exists():
        return directory
    directory.mkdir(parents=True, exist_ok=True)
    text = _dump_c(data, btf_path)
    tmp = header.with_suffix(f".h.{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, header)
    return directory


def _dump_c(data: bytes, btf_path: str) -> str:
    """vmlinux.h text from BTF: pybpf's own C dumper (pybpf.btf)."""
    from ..btf import BTF

    try:
        text = BTF.from_bytes(data, name=btf_path, validate=False).dump_c()
    except BTFError as exc:
        raise CompileError(f"cannot turn {btf_path} into C: {exc}") from None
    if _HEADER_GUARD not in text:
        text = (f"#ifndef {_HEADER_GUARD}\n#define {_HEADER_GUARD}\n\n"
                "#ifndef BPF_NO_PRESERVE_ACCESS_INDEX\n"
                "#pragma clang attribute push (__attribute__((preserve_access_index)), apply_to = record)\n"
                "#endif\n\n" + text +
                "\n#ifndef BPF_NO_PRESERVE_ACCESS_INDEX\n#pragma clang attribute pop\n#endif\n\n"
                f"#endif /* {_HEADER_GUARD} */\n")
    return text


def compile(source: str | os.PathLike, cflags: Iterable[str] = (), *, include_dirs: Iterable[str | os.PathLike] = (),
            vmlinux: bool = True, cpu: str = "v3", output: str | os.PathLike | None = None,
            name: str | None = None) -> ObjectSpec:
    """Compile BPF C (a path, or the source text itself) and parse the object.

    Runs clang with ``-target bpf -g -O2 -D__TARGET_ARCH_x86``, the libbpf
    headers and ``-I/usr/include/x86_64-linux-gnu``; with ``vmlinux=True`` a
    generated ``vmlinux.h`` for the running kernel is on the include path.
    clang's own diagnostics come back as :class:`~pybpf.errors.CompileError`.
    """
    clang = find_clang()
    path: Path | None = None
    if isinstance(source, os.PathLike) or ("\n" not in str(source) and str(source).endswith(".c")):
        path = Path(source)
        try:
            text = path.read_text()
        except OSError as exc:
            raise CompileError(f"cannot read {path}: {exc.strerror}") from None
    else:
        text = str(source)
    includes = [str(Path(d)) for d in include_dirs]
    if path is not None:
        includes.append(str(path.resolve().parent))
    if vmlinux:
        includes.append(str(vmlinux_header()))
    argv = [clang, "-target", "bpf", f"-mcpu={cpu}", "-g", "-O2", "-c", "-D__TARGET_ARCH_x86",
            "-I/usr/include/x86_64-linux-gnu", *(f"-I{d}" for d in includes), *cflags]
    stem = (path.name if path is not None else "program.bpf.c").split(".", 1)[0]
    if output is None:
        version = subprocess.run([clang, "--version"], capture_output=True, text=True).stdout
        key = hashlib.sha256("\0".join([*argv, version, text]).encode()).hexdigest()[:24]
        out_dir = cache_dir() / "objects"
        out_dir.mkdir(parents=True, exist_ok=True)
        out = out_dir / f"{stem}-{key}.bpf.o"
    else:
        out = Path(output)
    if output is not None or not out.exists():
        tmp = out.with_name(f"{out.name}.{os.getpid()}.tmp")
        src_label = str(path) if path is not None else "<source>"
        proc = subprocess.run([*argv, "-x", "c", "-", "-o", str(tmp)], input=text, capture_output=True, text=True)
        if proc.returncode != 0:
            tmp.unlink(missing_ok=True)
            message = proc.stderr.replace("<stdin>", src_label).strip()
            raise CompileError(f"clang failed on {src_label}:\n{message}")
        os.replace(tmp, out)
    spec = ObjectSpec.from_file(out, name=name or stem)
    return spec


__all__ = ["cache_dir", "compile", "find_clang", "vmlinux_header"]
