"""seccomp filters: the compiler against the policy, the kernel against both, the CLI on real commands."""

from __future__ import annotations

import ctypes
import errno
import hashlib
import importlib.util
import json
import mmap
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cbpf_machine_strategies as G
from conftest import CACHE, ROOT, run_cli
from pybpf.cbpf import insn as I
from pybpf.cbpf.machine import Machine
from pybpf.cbpf.seccomp import (ALLOW, AUDIT_ARCH_X86_64, KILL_PROCESS, LOG, Arg, ArgCondition, Errno,
                                SeccompPolicy, Trace, describe, parse_action, seccomp_data, syscall_number)
from pybpf.syscalls import SYSCALLS
from pybpf.cbpf.validate import validate
from pybpf.errors import BPFError, FilterValidationError

HEADER = Path("/usr/include/x86_64-linux-gnu/asm/unistd_64.h")
BOUNDARY = [0, 1, 2, 3, 5, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFE, 0xFFFFFFFF, 0x1_0000_0000, 0x1_0000_0001,
            0x1_0000_0005, 0x1_0000_0006, 0x7FFF_FFFF_FFFF_FFFF, 0x8000_0000_0000_0000, 0xFFFF_FFFF_FFFF_FFFF]
ON_LINUX_X86_64 = pytest.mark.skipif(sys.platform != "linux" or os.uname().machine != "x86_64",
                                     reason="seccomp filters here are for Linux on x86-64")


def test_syscall_table_is_the_header():
    if not HEADER.exists():
        pytest.skip(f"{HEADER} is not installed (linux-libc-dev)")
    spec = importlib.util.spec_from_file_location("gen_syscall_table", ROOT / "tools" / "gen_syscall_table.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    assert SYSCALLS == tool.parse_header(HEADER.read_text())
    assert (SYSCALLS["read"], SYSCALLS["openat"], SYSCALLS["execve"]) == (0, 257, 59)


# --- the compiler against the policy's own meaning -----------------------------

values = st.one_of(st.sampled_from(BOUNDARY), st.integers(0, 2**64 - 1))
conditions = st.builds(ArgCondition, st.integers(0, 5), st.sampled_from(["==", "!=", "<", "<=", ">", ">=", "&=="]),
                       values, st.one_of(st.sampled_from([0xFF, 0xFFFF_FFFF, 0xFFFF_FFFF_0000_0000, 2**64 - 1]),
                                         values))
actions = st.sampled_from([ALLOW, KILL_PROCESS, LOG, Errno("EPERM"), Errno(errno.ENOKEY), Trace(7)])
NRS = [0, 1, 39, 257, 110, 435]


@st.composite
def policies(draw):
    policy = SeccompPolicy(default=draw(actions))
    for _ in range(draw(st.integers(0, 8))):
        policy.add(draw(st.sampled_from(NRS)), draw(actions), *draw(st.lists(conditions, max_size=3)))
    return policy


@settings(max_examples=300, deadline=None)
@given(policies(), st.lists(st.tuples(st.sampled_from(NRS + [2, 0x40000000 + 1, 0xFFFFFFFF]),
                                      st.lists(values, min_size=6, max_size=6),
                                      st.sampled_from([AUDIT_ARCH_X86_64, AUDIT_ARCH_X86_64, 0x40000003])),
                            min_size=1, max_size=12))
def test_compiled_filters_decide_like_the_policy(policy, calls):
    machine = Machine(policy.compile(), "seccomp")
    for nr, args, arch in calls:
        data = seccomp_data(nr if nr < 0x80000000 else nr - (1 << 32), args, arch)
        assert machine.run(data) == policy.decide(nr, args, arch).value


def test_conditions_hit_their_boundaries():
    v = 0x1_0000_0005
    for op in ("==", "!=", "<", "<=", ">", ">="):
        policy = SeccompPolicy().add("getppid", Errno("EPERM"), ArgCondition(1, op, v))
        machine = Machine(policy.compile(), "seccomp")
        for arg in BOUNDARY:
            got = machine.run(seccomp_data(110, [0, arg]))
            assert got == policy.decide(110, [0, arg]).value
            assert (got == Errno("EPERM").value) == {"==": arg == v, "!=": arg != v, "<": arg < v, "<=": arg <= v,
                                                     ">": arg > v, ">=": arg >= v}[op]


def test_long_allowlists_jump_far():
    policy = SeccompPolicy(default=Errno("EACCES"))
    for name in SYSCALLS:
        if name not in ("openat", "open"):
            policy.add(name, ALLOW)
    program = policy.compile()
    assert len(program) > 700 and any(ins.code == I.JMP | I.JA for ins in program)
    machine = Machine(program, "seccomp")
    for nr in range(0, 460):
        assert machine.run(seccomp_data(nr)) == policy.decide(nr).value


def test_names_errnos_and_actions_are_checked():
    with pytest.raises(BPFError, match="unknown x86-64 system call 'opnat'; did you mean openat"):
        SeccompPolicy().add("opnat", ALLOW)
    with pytest.raises(BPFError, match="unknown errno name 'EPRM'.*EPERM"):
        Errno("EPRM")
    with pytest.raises(BPFError, match="arguments 0..5"):
        Arg(6) == 1
    with pytest.raises(BPFError, match="not an argument condition"):
        SeccompPolicy().add("read", ALLOW, True)
    with pytest.raises(BPFError, match="unknown seccomp action 'maybe'"):
        parse_action("maybe")
    assert parse_action("errno=EACCES") == Errno(errno.EACCES) and parse_action("errno=13") == Errno(13)
    assert syscall_number("openat") == 257 and syscall_number("999") == 999
    text = "\n".join(describe(SeccompPolicy().add("openat", Errno("EPERM")).compile()))
    assert "openat" in text and "errno EPERM" in text and "AUDIT_ARCH_X86_64" in text


# --- the kernel ---------------------------------------------------------------

_HELPER_C = r"""
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
/* A static binary: no dynamic loader that would need openat before main. */
int main(int argc, char **argv) {
    if (argc > 2 && strcmp(argv[1], "cat") == 0) {
        char buf[4096];
        ssize_t n;
        int fd = open(argv[2], O_RDONLY);
        if (fd < 0) { printf("%s: %s\n", argv[2], strerror(errno)); return 1; }
        while ((n = read(fd, buf, sizeof buf)) > 0) write(1, buf, n);
        return 0;
    }
    for (int i = 2; i < argc; i++) printf("%s%s", argv[i], i + 1 < argc ? " " : "\n");
    return 0;
}
"""


@pytest.fixture(scope="module")
def static_helper() -> Path:
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang-19")
    if cc is None or not Path("/usr/lib/x86_64-linux-gnu/libc.a").exists():
        pytest.skip("needs a C compiler and a static libc (libc6-dev) for a static test binary")
    CACHE.mkdir(parents=True, exist_ok=True)
    out = CACHE / f"seccomp-helper-{hashlib.sha256(_HELPER_C.encode()).hexdigest()[:16]}"
    if not out.exists():
        src = out.with_suffix(".c")
        src.write_text(_HELPER_C)
        subprocess.run([cc, "-static", "-O1", "-o", str(out) + ".tmp", str(src)], check=True, capture_output=True)
        os.replace(str(out) + ".tmp", out)
    return out


def _cli(*args: str) -> subprocess.CompletedProcess:
    return run_cli("seccomp", *args, timeout=60)


@ON_LINUX_X86_64
def test_denied_openat_fails_with_eperm_and_nothing_else_changes(static_helper):
    plain = subprocess.run([str(static_helper), "cat", "/etc/hostname"], capture_output=True, text=True)
    assert plain.returncode == 0 and plain.stdout  # without a filter it works
    denied = _cli("--deny", "openat", "--errno", "EPERM", "--", str(static_helper), "cat", "/etc/hostname")
    assert denied.returncode == 1
    assert denied.stdout.decode() == "/etc/hostname: Operation not permitted\n"
    echo = _cli("--deny", "openat", "--errno", "EPERM", "--", str(static_helper), "echo", "hi")
    assert (echo.returncode, echo.stdout) == (0, b"hi\n")
    # A dynamically linked cat cannot even load libc: the loader's openat gets EPERM too.
    dynamic = _cli("--deny", "openat", "--", "cat", "/etc/hostname")
    assert dynamic.returncode != 0 and b"Operation not permitted" in dynamic.stderr


@ON_LINUX_X86_64
def test_kill_log_and_allowlist_modes(static_helper):
    killed = _cli("--deny", "openat", "--kill", "--", str(static_helper), "cat", "/etc/hostname")
    assert killed.returncode == -signal.SIGSYS
    logged = _cli("--deny", "openat", "--log", "--", str(static_helper), "cat", "/etc/hostname")
    assert logged.returncode == 0 and logged.stdout
    everything_but_open = ",".join(n for n in SYSCALLS if n not in ("open", "openat"))
    allowlist = _cli("--allow", everything_but_open, "--errno", "EACCES", "--", str(static_helper), "cat",
                     "/etc/hostname")
    assert allowlist.stdout.decode() == "/etc/hostname: Permission denied\n"
    dump = _cli("--deny", "openat,open", "--dump")
    assert dump.returncode == 0 and b"openat" in dump.stdout and b"errno EPERM" in dump.stdout
    for args, message in [(("--deny", "opnat", "--", "true"), b"did you mean openat"),
                          (("--deny", "openat", "--errno", "EWHAT", "--", "true"), b"unknown errno name"),
                          (("--deny", "openat"), b"no command to run"),
                          (("--deny", "openat", "--", "no-such-command-xyz"), b"command not found")]:
        proc = _cli(*args)
        assert proc.returncode == 1 and message in proc.stderr and b"Traceback" not in proc.stderr


_PYTHON_CHILD = r"""
import errno, json, os, sys
from pybpf.cbpf.seccomp import SeccompPolicy, Errno
SeccompPolicy().add("openat", Errno("EPERM")).install()
result = {"pid": os.getpid() > 0}
try:
    os.open("/etc/hostname", os.O_RDONLY)
    result["open"] = "opened"
except PermissionError as exc:
    result["open"] = exc.errno
print(json.dumps(result))
"""

_ARGS_CHILD = r"""
import ctypes, json, sys
from pybpf.cbpf.seccomp import SeccompPolicy, Errno, ArgCondition
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
libc.syscall.argtypes = [ctypes.c_long] + [ctypes.c_uint64] * 6
spec = json.loads(sys.argv[1])
policy = SeccompPolicy()
for nr, op, value, mask, err in spec["rules"]:
    policy.add(nr, Errno(err), ArgCondition(2, op, value, mask))
policy.install()
out = []
for nr, arg in spec["calls"]:
    r = libc.syscall(nr, 0, 0, arg, 0, 0, 0)
    out.append(-ctypes.get_errno() if r == -1 else 0)
print(json.dumps(out))
"""


def _python(script: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    return subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, env=env, timeout=60)


@ON_LINUX_X86_64
def test_python_child_gets_permission_error():
    proc = _python(_PYTHON_CHILD)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"pid": True, "open": errno.EPERM}


@ON_LINUX_X86_64
def test_64_bit_argument_checks_in_the_kernel():
    # Syscalls that ignore their arguments, so only the filter decides; each gets one comparison.
    v, mask = 0x1_0000_0005, 0xFFFF_0000_0000_00FF
    rules = [(110, "==", v, 2**64 - 1, 1), (39, "!=", v, 2**64 - 1, 2), (102, "<", v, 2**64 - 1, 3),
             (104, "<=", v, 2**64 - 1, 4), (107, ">", v, 2**64 - 1, 5), (108, ">=", v, 2**64 - 1, 6),
             (186, "&==", 0xABCD_0000_0000_0005, mask, 7)]
    arguments = BOUNDARY + [0xABCD_0000_0000_0005, 0xABCD_1234_5678_9A05, 0xABCE_0000_0000_0005]
    calls = [(nr, a) for nr, *_ in rules for a in arguments]
    proc = _python(_ARGS_CHILD, json.dumps({"rules": rules, "calls": calls}))
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    policy = SeccompPolicy()
    for nr, op, value, m, err in rules:
        policy.add(nr, Errno(err), ArgCondition(2, op, value, m))
    expected = []
    for nr, a in calls:
        action = policy.decide(nr, [0, 0, a])
        expected.append(-(action.value & 0xFFFF) if action != ALLOW else 0)
    assert got == expected
    assert sum(1 for g in got if g) > len(got) // 4  # both outcomes occur


# --- the seccomp validator against seccomp() ------------------------------------

class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter))]


_libc = ctypes.CDLL(None, use_errno=True)


def _seccomp_accepts(program) -> bool:
    """Install the filter in a forked child; the answer travels through shared memory (no syscall needed)."""
    array = (_SockFilter * len(program))(*[_SockFilter(*i) for i in program])
    fprog = _SockFprog(len(program), array)
    shared = mmap.mmap(-1, 1)
    pid = os.fork()
    if pid == 0:  # child: never returns into pytest
        try:
            _libc.prctl(38, 1, 0, 0, 0)
            r = _libc.syscall(317, 1, 0, ctypes.byref(fprog))
            shared[0] = 255 if r == 0 else min(ctypes.get_errno(), 250)
        finally:
            while True:
                pass
    deadline = time.monotonic() + 5
    died = False
    while not shared[0] and time.monotonic() < deadline:
        if os.waitpid(pid, os.WNOHANG)[0]:
            died = True
            break
        time.sleep(0.0002)
    if not died:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    verdict = shared[0]
    assert verdict in (0, 255, errno.EINVAL), f"seccomp() failed with errno {verdict}"
    return verdict != errno.EINVAL  # a rejected filter leaves the child free to report EINVAL


@st.composite
def _maybe_seccomp_programs(draw):
    program = list(draw(G.programs(max_len=12, seccomp=True)))
    pc = draw(st.integers(0, len(program) - 1))
    how = draw(st.sampled_from(["none", "code", "k", "load"]))
    code, jt, jf, k = program[pc]
    if how == "code":
        program[pc] = (draw(st.sampled_from(sorted({I.LD | I.H | I.ABS, I.LD | I.B | I.ABS, I.LD | I.W | I.IND,
                                                    I.LDX | I.B | I.MSH, I.ALU | I.MOD | I.K, I.ALU | I.MOD | I.X,
                                                    I.LD | I.W | I.LEN, I.LDX | I.W | I.LEN, 0x07, 0x99}))), 0, 0,
                       draw(st.integers(1, 60)))
    elif how == "k" and code == I.LD | I.W | I.ABS:
        program[pc] = (code, 0, 0, draw(st.one_of(st.integers(0, 80), st.just(0xFFFFF000))))
    elif how == "load":
        program.insert(pc, (I.LD | I.W | I.ABS, 0, 0, draw(st.integers(0, 70))))
    return program


@ON_LINUX_X86_64
@settings(max_examples=150, deadline=None)
@given(_maybe_seccomp_programs())
def test_seccomp_validator_agrees_with_the_kernel(program):
    try:
        validate(program, seccomp=True)
        ours = True
    except FilterValidationError:
        ours = False
    assert ours == _seccomp_accepts(program), program
