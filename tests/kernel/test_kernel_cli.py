"""`pybpf trace-pipe` as a user runs it, against real bpf_printk output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, run_cli
from kernel_testlib import PRINTK, load_c

from pybpf.kernel import ProgType

pytestmark = pytest.mark.kernel


def test_trace_pipe_help_teaches():
    out = run_cli("trace-pipe", "--help", check=True).stdout.decode()
    assert "examples:" in out and "--private" in out and "--json" in out


def test_trace_pipe_prints_our_lines_as_json():
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    cli = subprocess.Popen([sys.executable, "-m", "pybpf", "trace-pipe", "--private", "--json", "--timeout", "3",
                            "--pid", str(os.getpid())], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    instance = f"/sys/kernel/tracing/instances/pybpf_cli_{cli.pid}"
    enable = os.path.join(instance, "events", "bpf_trace", "bpf_trace_printk", "enable")
    deadline = time.monotonic() + 10

    def enabled() -> bool:  # the instance exists before its printk event is on: lines before that go elsewhere
        try:
            return Path(enable).read_text().strip() == "1"
        except OSError:
            return False

    while not enabled() and time.monotonic() < deadline:
        time.sleep(0.02)
    with load_c(PRINTK, "tracepoint/syscalls/sys_enter_getppid", ProgType.TRACEPOINT, name="cliprintk") as loaded:
        with loaded.program.attach():
            os.getppid()
            os.getppid()
    out, err = cli.communicate(timeout=20)
    assert cli.returncode == 0, err.decode()
    records = [json.loads(line) for line in out.decode().splitlines()]
    assert [r["message"] for r in records] == [f"pybpf says {os.getpid()}"] * 2
    assert all(r["pid"] == os.getpid() for r in records)
    assert not os.path.exists(instance)
