"""The committed helper-id table against the installed UAPI header and the running kernel."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT
from pybpf.isa import HELPER_COUNT, helper_id, helper_name
from pybpf.isa.helper_ids import HELPER_NAMES

HEADER = Path("/usr/include/linux/bpf.h")


def _tool():
    spec = importlib.util.spec_from_file_location("gen_helper_table", ROOT / "tools" / "gen_helper_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(not HEADER.exists(), reason="the UAPI header is not installed (apt install linux-libc-dev)")
def test_table_agrees_with_the_installed_header():
    from_header = _tool().parse_header(HEADER.read_text())
    assert len(from_header) > 200
    for hid, name in from_header.items():
        assert HELPER_NAMES[hid] == name


@pytest.mark.skipif(shutil.which("bpftool") is None or not Path("/sys/kernel/btf/vmlinux").exists(),
                    reason="needs bpftool and the kernel's BTF")
def test_table_agrees_with_the_running_kernel():
    dump = subprocess.run(["bpftool", "btf", "dump", "file", "/sys/kernel/btf/vmlinux", "format", "raw"],
                          capture_output=True, text=True, check=True).stdout
    kernel = {int(v): n for n, v in re.findall(r"'BPF_FUNC_(\w+)' val=(\d+)", dump)}
    assert kernel, "the kernel BTF has no enum bpf_func_id"
    for hid, name in kernel.items():
        assert HELPER_NAMES[hid] == name
    assert HELPER_COUNT >= len(kernel)  # every helper this kernel has is named


def test_names_and_ids():
    assert HELPER_COUNT >= 212  # Linux 6.18: ids 0-211
    assert helper_name(1) == "bpf_map_lookup_elem" and helper_name(1, prefix=False) == "map_lookup_elem"
    assert helper_name(211) == "bpf_cgrp_storage_delete"
    assert helper_name(HELPER_COUNT) is None and helper_name(-1) is None
    assert helper_id("bpf_ringbuf_output") == helper_id("ringbuf_output") == 130
    assert helper_id("bpf_no_such_helper") is None
    assert all(helper_id(helper_name(i)) == i for i in range(1, HELPER_COUNT))
