"""Helpers for kernel tests: compile BPF C and load it through the real loader, netns, veth, cgroups.

``load_c`` compiles a test program, keeps only the program of one section
(autoload off for the others, as with libbpf) and loads the object with
``ObjectSpec.load(backend="kernel")``; maps the test created itself replace
the object's declarations of the same name (``reuse_maps``).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import subprocess
import uuid
from pathlib import Path
from typing import Any

from conftest import LLVM_OBJDUMP, compile_bpf

from pybpf.kernel import Map, Program, ProgType, SourceLine
from pybpf.object import ObjectSpec

PREAMBLE = """
#include <linux/bpf.h>
#include <linux/types.h>
#include <bpf/bpf_helpers.h>
char LICENSE[] SEC("license") = "GPL";
"""

# bpf_printk's helper with the format on the stack (no .rodata needed)
PRINTK = r"""
SEC("tracepoint/syscalls/sys_enter_getppid")
int say(void *ctx)
{
    char fmt[] = "pybpf says %d";
    bpf_trace_printk(fmt, sizeof(fmt), (int)(bpf_get_current_pid_tgid() >> 32));
    return 0;
}
"""


class Loaded:
    """One program of a loaded object; ``close()`` closes the object (maps the test gave stay open)."""

    def __init__(self, obj: Any, program: str):
        self.object = obj
        self.program: Program = obj.programs[program]
        self.data_maps: dict[str, Map] = {section: live.map for section, live in obj.data_maps.items()}

    def close(self) -> None:
        self.object.close()

    def __enter__(self) -> "Loaded":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def global_u64(self, name: str) -> int:
        """The current value of a global variable of the program (an integer)."""
        section = self.object.spec.variables[name].map.internal
        return int(self.object.section_variables(section)[name])


def load_c(source: str, section: str, prog_type: ProgType | None = None, maps: dict[str, Map] | None = None,
           name: str = "test", *, preamble: str = PREAMBLE, cflags: tuple[str, ...] = (),
           kconfig: dict[str, int] | None = None) -> Loaded:
    """Compile ``preamble + source`` and load the program of SEC(``section``) through the real loader.

    ``prog_type`` is checked against what the section makes of the program;
    ``maps`` (by name) are used instead of creating the object's maps of those
    names; ``kconfig`` answers ``__kconfig`` externs first.  ``name`` names the
    compiled object only: programs are named after their C functions, as libbpf does.
    """
    obj = compile_bpf(preamble + source, name=name, cflags=cflags)
    spec = ObjectSpec.from_file(obj)
    wanted = [p for p in spec.programs.values() if p.section.lstrip("?") == section]
    assert len(wanted) == 1, f"{len(wanted)} programs in section {section} of {obj}"
    for prog in spec.programs.values():
        prog.autoload = prog is wanted[0]
    if prog_type is not None:
        assert wanted[0].type == prog_type, f"SEC({section!r}) makes a {wanted[0].type.name} program, not {prog_type}"
    live = spec.load(backend="kernel", reuse_maps=maps, kconfig=kconfig)
    return Loaded(live, wanted[0].name)


def source_lines(obj: Path, section: str) -> list[SourceLine]:
    """Line info per instruction from the reference disassembler (llvm-objdump -l)."""
    out = subprocess.run([LLVM_OBJDUMP, "-d", "-l", "--no-show-raw-insn", f"--section={section}", str(obj)],
                         capture_output=True, text=True, check=True).stdout
    lines: list[SourceLine] = []
    where = None
    for ln in out.splitlines():
        m = re.match(r"^; (\S+):(\d+)", ln)
        if m:
            where = (m.group(1), int(m.group(2)))
            continue
        m = re.match(r"^\s*(\d+):\s", ln)
        if m and where:
            path, line = where
            text = ""
            try:
                text = Path(path).read_text().splitlines()[line - 1]
            except (OSError, IndexError):
                pass
            lines.append(SourceLine(int(m.group(1)), path, line, 0, text))
            where = None
    return lines


# --- network namespaces and veth pairs --------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000


@contextlib.contextmanager
def inside_netns(name: str):
    """Run the block with this thread in network namespace ``name`` (sockets made there stay there)."""
    home = os.open("/proc/self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if _libc.setns(target, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {name}")
        yield
    finally:
        _libc.setns(home, CLONE_NEWNET)
        os.close(home)
        os.close(target)


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@contextlib.contextmanager
def veth_pair_in_namespaces():
    """Two fresh netns joined by a veth pair: (ns_a, if_a, addr_a, ns_b, if_b, addr_b), removed afterwards."""
    tag = f"{os.getpid() % 100000}{uuid.uuid4().hex[:4]}"
    ns_a, ns_b = f"pybpf-a{tag}", f"pybpf-b{tag}"
    if_a, if_b = f"pva{tag}"[:15], f"pvb{tag}"[:15]
    octet = os.getpid() % 250 + 1
    addr_a, addr_b = f"198.18.{octet}.1", f"198.18.{octet}.2"
    try:
        ip("netns", "add", ns_a)
        ip("netns", "add", ns_b)
        ip("link", "add", if_a, "type", "veth", "peer", "name", if_b)
        ip("link", "set", if_a, "netns", ns_a)
        ip("link", "set", if_b, "netns", ns_b)
        ip("-n", ns_a, "addr", "add", f"{addr_a}/24", "dev", if_a)
        ip("-n", ns_b, "addr", "add", f"{addr_b}/24", "dev", if_b)
        ip("-n", ns_a, "link", "set", if_a, "up")
        ip("-n", ns_b, "link", "set", if_b, "up")
        ip("-n", ns_a, "link", "set", "lo", "up")
        ip("-n", ns_b, "link", "set", "lo", "up")
        yield ns_a, if_a, addr_a, ns_b, if_b, addr_b
    finally:
        for ns in (ns_a, ns_b):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def open_fds() -> set[int]:
    return {int(n) for n in os.listdir("/proc/self/fd")}


def links_left(before: set[int]) -> set[int]:
    """BPF links made since ``before`` (ids) that still exist and that no other process holds an fd of.

    Link ids are system-wide and other test runs on this machine make links too;
    one of ours that outlives its fds was leaked (pinned, or kept by the kernel).
    """
    from pybpf.kernel.syscall import link_ids

    new = set(link_ids()) - before
    if not new:
        return new
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if int(pid) == os.getpid():
            continue
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}") == "anon_inode:bpf_link":
                    with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                        found = re.search(r"^link_id:\s*(\d+)", f.read(), re.M)
                    if found:
                        new.discard(int(found.group(1)))
        except OSError:
            continue  # the process or fd went away meanwhile
    return new


# --- cgroups ------------------------------------------------------------------------


@contextlib.contextmanager
def child_cgroup():
    """A fresh cgroup v2 directory under the cgroup2 root, removed afterwards (its processes must be gone)."""
    from pybpf.kernel.cgroup import cgroup2_root

    path = os.path.join(cgroup2_root(), f"pybpf_test_{os.getpid()}_{uuid.uuid4().hex[:6]}")
    os.mkdir(path)
    try:
        yield path
    finally:
        for _ in range(100):
            try:
                os.rmdir(path)
                break
            except OSError as exc:
                if exc.errno != 16:  # EBUSY: a zombie still counted in the cgroup
                    raise
                import time

                time.sleep(0.01)


def run_in_cgroup(path: str, action) -> int:
    """Fork; the child joins cgroup ``path``, runs ``action()`` and exits with its return value
    (0 when it returns None, 99 on an exception).  Returns the child's exit status."""
    pid = os.fork()
    if pid == 0:
        code = 99
        try:
            with open(os.path.join(path, "cgroup.procs"), "w") as f:
                f.write("0")
            result = action()
            code = 0 if result is None else int(result)
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


# --- vmlinux BTF, through the reference tool ---------------------------------------

VMLINUX_PREAMBLE = """
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
char LICENSE[] SEC("license") = "GPL";
"""


def vmlinux_include() -> tuple[str, ...]:
    """cflags that make '#include "vmlinux.h"' work (generated once per kernel by bpftool)."""
    from conftest import CACHE

    d = CACHE / f"vmlinux-{os.uname().release}"
    header = d / "vmlinux.h"
    if not header.exists():
        d.mkdir(parents=True, exist_ok=True)
        out = subprocess.run(["bpftool", "btf", "dump", "file", "/sys/kernel/btf/vmlinux", "format", "c"],
                             capture_output=True, check=True).stdout
        tmp = header.with_suffix(".tmp")
        tmp.write_bytes(out)
        os.replace(tmp, header)
    return ("-I", str(d))


_btf_ids: dict[tuple[str, str], int] | None = None


def vmlinux_btf_id(name: str, kind: str = "FUNC") -> int:
    """The vmlinux BTF type id of ``name`` (a FUNC, TYPEDEF, STRUCT...), from bpftool's dump."""
    global _btf_ids
    if _btf_ids is None:
        out = subprocess.run(["bpftool", "btf", "dump", "file", "/sys/kernel/btf/vmlinux"], capture_output=True,
                             text=True, check=True).stdout
        _btf_ids = {}
        for m in re.finditer(r"^\[(\d+)\] (\w+) '([^']*)'", out, re.M):
            _btf_ids.setdefault((m.group(3), m.group(2)), int(m.group(1)))
    return _btf_ids[(name, kind)]


def build_c_binary(source: str, name: str, flags: tuple[str, ...] = ("-O1",)) -> Path:
    """A native test program compiled with gcc, cached by source and flags."""
    import hashlib

    from conftest import CACHE

    CACHE.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha256(("\0".join(flags) + source).encode()).hexdigest()[:12]
    out = CACHE / f"{name}-{key}"
    if not out.exists():
        src = out.with_suffix(".c")
        src.write_text(source)
        subprocess.run(["gcc", *flags, "-o", str(out) + ".tmp", str(src)], check=True)
        os.replace(str(out) + ".tmp", out)
    return out
