"""`pybpf` command line: one sub-command per module, errors as one line."""

from __future__ import annotations

import argparse
import importlib
import signal
import sys

from ..errors import BPFError

# Each module defines register(subparsers); a sub-command sets `func(args) -> int`.
COMMAND_MODULES: tuple[str, ...] = (
    "asm",
    "disasm",
    "tracepipe",
    "prog", "map", "link", "btf", "feature",
    "capture",
    "seccomp",
    "object",
    "vm",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pybpf",
        description="eBPF in pure Python: assemble, disassemble, inspect, load, attach, run and observe BPF programs.",
        epilog="Run 'pybpf COMMAND --help' for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"pybpf {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"pybpf.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except BPFError as exc:
        print(f"pybpf: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`pybpf ... | head`): exit quietly like other Unix tools.
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        return 0
    except FileNotFoundError as exc:
        print(f"pybpf: error: {exc.strerror}: {exc.filename}", file=sys.stderr)
        return 1


def _version() -> str:
    from .. import __version__

    return __version__


if __name__ == "__main__":
    sys.exit(main())
