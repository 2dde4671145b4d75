"""The -d/-dd/-ddd listings: byte-for-byte libpcap's bpf_image/bpf_dump and tcpdump's output."""

from __future__ import annotations

import ctypes
import re
import shutil
import subprocess

import pytest

import libpcap_reference as ref
from conftest import run_cli
from pybpf.cbpf import compile
from pybpf.cbpf.insn import CInsn
from pybpf.cbpf.text import dump, image
from pybpf.errors import FilterSyntaxError

TCPDUMP = shutil.which("tcpdump") or ("/usr/bin/tcpdump" if shutil.os.path.exists("/usr/bin/tcpdump") else None)


@pytest.mark.skipif(ref.MISSING is not None, reason=ref.MISSING or "")
def test_image_matches_bpf_image_for_every_opcode():
    lib = ref.LIB
    lib.bpf_image.restype = ctypes.c_char_p
    lib.bpf_image.argtypes = [ctypes.POINTER(ref.BpfInsn), ctypes.c_int]
    mismatches = []
    for code in range(0x10000):
        for jt, jf, k, n in ((1, 2, 0x1C, 7), (0, 255, 0xFFFFF000 + 4, 123)):
            want = lib.bpf_image(ctypes.byref(ref.BpfInsn(code, jt, jf, k)), n).decode()
            got = image(CInsn(code, jt, jf, k), n)
            if got != want:
                mismatches.append((hex(code), want, got))
    assert not mismatches, mismatches[:5]


def _tcpdump(*args: str) -> str | None:
    proc = subprocess.run([TCPDUMP, *args], capture_output=True, text=True, timeout=30)
    return proc.stdout if proc.returncode == 0 else None


@pytest.mark.slow
@pytest.mark.skipif(TCPDUMP is None, reason="tcpdump is not installed")
@pytest.mark.parametrize("flag,level", [("-d", 1), ("-dd", 2), ("-ddd", 3)])
def test_cli_prints_what_tcpdump_prints(flag, level):
    checked = 0
    for expr in ("tcp port 80", "icmp[icmptype] == icmp-echo", "host 198.18.0.1 and not port 22",
                 "ip[2:2] > 576", "portrange 1-1023 or ether broadcast", "ip6 protochain 6", "less 64"):
        for extra in ([], ["-O"], ["-s", "96"]):
            want = _tcpdump(flag, *extra, "-i", "lo", expr)
            if want is None:
                pytest.skip("tcpdump cannot open lo here (needs root)")
            if expr == "tcp port 80":  # the command once per option set; the library for all
                got = run_cli("filter", flag, *extra, expr, check=True).stdout.decode()
                assert got == want, f"{flag} {extra} {expr}"
            assert dump(compile(expr, "EN10MB", 96 if "-s" in extra else 262144, "-O" not in extra), level) == want
            checked += 1
    assert checked == 21


def test_cli_joins_words_and_reports_syntax_errors_with_a_caret():
    joined = run_cli("filter", "tcp", "and", "port", "80", check=True).stdout
    assert joined == run_cli("filter", "tcp and port 80", check=True).stdout
    bad = run_cli("filter", "tcp and (port 80 or")
    assert bad.returncode == 1
    lines = bad.stderr.decode().splitlines()
    assert lines[0] == "pybpf: error: can't parse filter expression: syntax error"
    assert lines[1].strip() == "tcp and (port 80 or"
    assert lines[2].index("^") == lines[1].index("tcp and (port 80 or") + len("tcp and (port 80 or")


@pytest.mark.parametrize("expr,column", [("tcp prt 80", 4), ("host 1.2.3.4 and and", 17), ("ip[0 = 1", 5),
                                         ("(tcp", 4), ("tcp)", 3), ("port 80 @", 8), ("vlan 1 2", 7)])
def test_syntax_error_position(expr, column):
    with pytest.raises(FilterSyntaxError) as info:
        compile(expr)
    assert info.value.position == column
    assert info.value.expression == expr
    assert str(info.value).startswith("can't parse filter expression: syntax error")


def test_scanner_errors_name_the_token():
    for expr, message in (("port 08", "number 08 contains non-octal digit"),
                          ("len > 4294967296", "number 4294967296 overflows 32 bits"),
                          ("ether host 1:2:3:4:5:6:7", "bogus ethernet address 1:2:3:4:5:6:$"),
                          ("ip6 host 1:2:3:4:5:6:999.1.1.1", "bogus IPv6 address 1:2:3:4:5:6:999.1.1.1$"),
                          ("ip6 host fd00:::1", "syntax error$")):
        with pytest.raises(FilterSyntaxError) as info:
            compile(expr)
        assert re.search(message, str(info.value).splitlines()[0]), (expr, str(info.value))
        with pytest.raises(ref.ReferenceError) as theirs:
            ref.compile(expr)
        assert str(theirs.value) == str(info.value).splitlines()[0]


def test_cli_errors_for_link_types_and_primitives_name_them():
    proc = run_cli("filter", "-y", "EN10MB", "vpi 1")
    assert proc.returncode == 1 and proc.stderr.decode().strip().endswith("'vpi' supported only on raw ATM")
    proc = run_cli("filter", "-y", "NOSUCH", "ip")
    assert proc.returncode == 1 and b"NOSUCH" in proc.stderr
    assert b"examples:" in run_cli("filter", "--help", check=True).stdout
    beacon = run_cli("filter", "-y", "ieee802_11_radio", "-ddd", "type", "mgt", "subtype", "beacon", check=True)
    assert beacon.stdout.decode() == dump(compile("type mgt subtype beacon", "IEEE802_11_RADIO"), 3)
