import pytest

from conftest import run_cli
from pybpf.cli.main import COMMANDS


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
