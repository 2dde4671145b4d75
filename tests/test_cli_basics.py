from conftest import run_cli


def test_help_lists_usage():
    proc = run_cli("--help", check=True)
    assert b"usage: pybpf" in proc.stdout


def test_no_command_prints_help_and_fails():
    proc = run_cli()
    assert proc.returncode == 2
    assert b"usage: pybpf" in proc.stdout
