import os
import subprocess
import sys

import pytest

from conftest import ROOT, run_cli
from pybpf.cli.main import COMMANDS, main


def test_help_lists_every_command():
    out = run_cli("--help", check=True).stdout.decode()
    assert "usage: pybpf" in out
    for name in COMMANDS:
        assert name in out


def test_no_command_prints_help_and_fails():
    proc = run_cli()
    assert proc.returncode == 2
    assert b"usage: pybpf" in proc.stdout


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_each_command_teaches_with_help(name):
    out = run_cli(name, "--help", check=True).stdout.decode()
    assert f"usage: pybpf {name}" in out


def test_unknown_command_is_one_clear_error():
    proc = run_cli("frobnicate")
    assert proc.returncode == 2
    assert b"invalid choice: 'frobnicate'" in proc.stderr


VMLINUX = "/sys/kernel/btf/vmlinux"


@pytest.mark.skipif(not os.path.exists(VMLINUX), reason="no kernel BTF at /sys/kernel/btf/vmlinux")
def test_btf_dump_quick_exit_only_as_the_program(tmp_path, capfdbinary):
    """`btf dump` ends the process without teardown when it is the program, and must then have
    written everything (to a file, not only a pipe); called in process, main() just returns."""
    assert main(["btf", "dump", VMLINUX, "--format", "c"]) == 0  # still here: no os._exit
    in_process = capfdbinary.readouterr().out
    out = tmp_path / "vmlinux.h"
    with out.open("wb") as f:
        proc = subprocess.run([sys.executable, "-m", "pybpf", "btf", "dump", VMLINUX, "--format", "c"], stdout=f,
                              env=dict(os.environ, PYTHONPATH=str(ROOT / "src")), timeout=120)
    assert proc.returncode == 0
    assert in_process.endswith(b"#endif /* __VMLINUX_H__ */\n")
    assert out.read_bytes() == in_process


def test_unreadable_path_is_one_clear_error(tmp_path):
    proc = run_cli("btf", "dump", str(tmp_path))
    assert proc.returncode == 1
    assert proc.stderr.decode() == f"pybpf: error: Is a directory: {tmp_path}\n"


@pytest.mark.skipif(not os.path.exists("/dev/full") or not os.path.exists(VMLINUX), reason="needs /dev/full and kernel BTF")
def test_output_that_cannot_be_written_is_one_clear_error():
    """`> /dev/full` (like a full disk): one line on stderr and exit 1, whatever the command."""
    with open("/dev/full", "wb") as full:
        proc = subprocess.run([sys.executable, "-m", "pybpf", "btf", "dump", VMLINUX], stdout=full,
                              stderr=subprocess.PIPE, env=dict(os.environ, PYTHONPATH=str(ROOT / "src")), timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.decode() == "pybpf: error: cannot write the output: No space left on device\n"
