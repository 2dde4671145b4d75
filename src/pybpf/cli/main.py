"""`pybpf` command line: one sub-command per module, errors as one line."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from ..errors import BPFError

# Each module defines register(subparsers); a sub-command sets `func(args) -> int`.
# Only the module of the command being run is imported, so `pybpf X` does not pay
# for every layer's imports; the summaries here are what `pybpf --help` lists.
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("run", "compile, load and attach a BPF program; stream its output and print its maps"),
    "disasm": ("disasm", "disassemble a BPF object or raw bytecode"),
    "asm": ("asm", "assemble BPF assembly text into bytecode"),
    "object": ("object", "inspect a compiled BPF object (.o): programs, maps, variables, CO-RE"),
    "btf": ("btf", "dump BTF files (raw, JSON, C header) and list the kernel's BTF objects"),
    "prog": ("prog", "list, show, dump and pin programs loaded in the kernel (like bpftool prog)"),
    "map": ("map", "list, show, dump, read and write maps in the kernel (like bpftool map)"),
    "link": ("link", "list, show, detach and pin BPF links (like bpftool link)"),
    "feature": ("feature", "probe which BPF features the running kernel has (like bpftool feature probe)"),
    "trace-pipe": ("tracepipe", "print bpf_printk output from the kernel's trace pipe"),
    "filter": ("filter", "compile a tcpdump filter expression to classic BPF"),
    "capture": ("capture", "capture packets on an interface (filter in the kernel)"),
    "seccomp": ("seccomp", "run a command under a seccomp system call filter"),
    "vm": ("vm", "run BPF programs in pybpf's userspace VM (no kernel, no root); conformance suite"),
}


def build_parser(command: str | None = None, *, others: bool = True) -> argparse.ArgumentParser:
    """The parser; only `command`'s module is imported, the others are listed by summary
    (or, with ``others=False``, left out: parsing `command`'s own arguments needs none of them)."""
    parser = argparse.ArgumentParser(
        prog="pybpf",
        description="eBPF in pure Python: assemble, disassemble, inspect, load, attach, run and observe BPF programs.",
        epilog="Run 'pybpf COMMAND --help' for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"pybpf {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, summary) in COMMANDS.items():
        if command == name:
            importlib.import_module(f"pybpf.cli.{module}").register(sub)
        elif others:
            sub.add_parser(name, help=summary, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    program = argv is None  # main() is the process (console script, python -m pybpf)
    argv = sys.argv[1:] if argv is None else argv
    command = next((a for a in argv if not a.startswith("-")), None)
    # `pybpf CMD ...` needs only CMD's parser (each of the others costs argparse ~0.1 ms of
    # gettext look-ups); with options before the command (`pybpf --help btf`) or an unknown
    # command, the top level may list them all.
    parser = build_parser(command, others=not argv or argv[0] != command or command not in COMMANDS)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        code = int(args.func(args) or 0)
    except BPFError as exc:
        print(f"pybpf: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`pybpf ... | head`): exit quietly like other Unix tools.
        import signal

        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        return 0
    except OSError as exc:
        if exc.filename is None:
            if exc.errno is None:
                raise
            # Writing the output failed (`> /dev/full`, a full disk, an I/O error).
            print(f"pybpf: error: cannot write the output: {exc.strerror}", file=sys.stderr)
            _drop_stdout()
            return 1
        # A path the user gave that cannot be read (missing, a directory, no permission).
        print(f"pybpf: error: {exc.strerror}: {exc.filename}", file=sys.stderr)
        return 1
    if program and getattr(args, "quick_exit", False):
        _quick_exit(code)
    return code


def _drop_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's last flush of what could not be written stays quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def _quick_exit(code: int) -> None:
    """End the process now, for a command whose output is all written and that left nothing to
    clean up: freeing its objects one by one at interpreter exit is pure cost (~20 ms after a
    vmlinux dump).  Only when main() is the program, never for in-process callers."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:
        return  # let the normal exit report it
    os._exit(code)


def _version() -> str:
    from .. import __version__

    return __version__


if __name__ == "__main__":
    sys.exit(main())
