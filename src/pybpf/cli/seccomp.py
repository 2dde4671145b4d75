"""`pybpf seccomp`: run a command under a seccomp-bpf system call filter."""

from __future__ import annotations

import argparse
import os
import shutil
import sys

from ..cbpf.seccomp import ALLOW, KILL_PROCESS, LOG, TRAP, Errno, SeccompPolicy, describe, parse_action
from ..errors import BPFError

EPILOG = """\
examples:
  pybpf seccomp --deny openat --errno EPERM -- cat /etc/hostname   cat fails: Operation not permitted
  pybpf seccomp --deny socket --kill -- python3 -c 'import socket; socket.socket()'
                                                                   killed by SIGSYS at socket()
  pybpf seccomp --deny ptrace --log -- gdb -p 1                     allowed, but logged by the kernel
  pybpf seccomp --allow read,write,exit_group,brk,mmap --default errno=EACCES --dump
                                                                   print the filter, run nothing

--deny NAMES get the deny action (--errno ERR, the default EPERM; or --kill,
--log, --trap); everything else is allowed unless --default says otherwise.
With --allow alone, the deny action becomes the default (an allowlist); execve
is always allowed then, or the command could not start. The filter checks the
architecture (x86-64; x32 calls are killed), is installed with
PR_SET_NO_NEW_PRIVS (no privilege needed) and the command is exec'd in place,
so its exit status is the command's.

The filter applies from the exec on: a dynamically linked program opens its
shared libraries with openat before main, so --deny openat stops it right
there (with EPERM). To deny only the opens a program makes once running,
install the policy from inside it (pybpf.cbpf.seccomp.SeccompPolicy.install).
"""


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "seccomp", help="run a command under a seccomp system call filter",
        description="Build a seccomp-bpf filter from allowed and denied system calls and run a command\n"
                    "under it (the policy is inherited by everything the command starts).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--deny", action="append", default=[], metavar="NAME[,NAME]",
                   help="system calls that get the deny action")
    p.add_argument("--allow", action="append", default=[], metavar="NAME[,NAME]", help="system calls to allow")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--errno", metavar="ERR", help="deny by failing with this errno (name or number; default EPERM)")
    how.add_argument("--kill", action="store_true", help="deny by killing the process (SIGSYS)")
    how.add_argument("--log", action="store_true", help="allow but log denied calls (SECCOMP_RET_LOG)")
    how.add_argument("--trap", action="store_true", help="deny by sending SIGSYS to the thread")
    p.add_argument("--default", metavar="ACTION", help="action for all other system calls: allow, kill, "
                   "kill-thread, log, trap, errno[=ERR], trace[=N]")
    p.add_argument("--dump", action="store_true", help="print the filter program (tcpdump -d style) and exit")
    p.add_argument("command", nargs="*", metavar="-- CMD [ARGS]", help="the command to run")
    p.set_defaults(func=run)


def _names(groups: list[str]) -> list[str]:
    return [n.strip() for g in groups for n in g.split(",") if n.strip()]


def build_policy(args) -> SeccompPolicy:
    deny_action = (KILL_PROCESS if args.kill else LOG if args.log else TRAP if args.trap
                   else Errno(args.errno or "EPERM"))
    deny, allow = _names(args.deny), _names(args.allow)
    if not deny and not allow and args.default is None:
        raise BPFError("nothing to filter: give --deny NAMES, --allow NAMES or --default ACTION")
    if args.default is not None:
        default = parse_action(args.default)
    else:
        default = deny_action if allow and not deny else ALLOW
    policy = SeccompPolicy(default=default)
    for name in deny:
        policy.add(name, deny_action)
    for name in allow:
        policy.add(name, ALLOW)
    if default != ALLOW and "execve" not in deny and "execve" not in allow:
        policy.add("execve", ALLOW)  # the command itself must be able to start
    return policy


def run(args) -> int:
    policy = build_policy(args)
    program = policy.compile()
    if args.dump:
        print("\n".join(describe(program)))
        return 0
    if not args.command:
        raise BPFError("no command to run: add -- CMD [ARGS] (or --dump to print the filter)")
    path = shutil.which(args.command[0])
    if path is None:
        raise BPFError(f"command not found: {args.command[0]}")
    sys.stdout.flush()
    sys.stderr.flush()
    policy.install()
    try:
        os.execv(path, args.command)
    except OSError as exc:
        os.write(2, f"pybpf: error: cannot run {args.command[0]} under the filter: {exc.strerror}\n".encode())
        return 126
