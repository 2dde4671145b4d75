"""`pybpf vm run` and the embedding API `pybpf.vm.run`."""

from __future__ import annotations

import json
import struct

from conftest import compile_bpf, run_cli
from pybpf.isa import Instruction as I
from pybpf.vm import run
from vmcode import EXIT, alu, ldx, mov, stx

FIREWALL = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
char LICENSE[] SEC("license") = "GPL";

SEC("xdp")
int first_byte(struct xdp_md *ctx)
{
    __u8 *data = (void *)(long)ctx->data;
    if ((void *)(data + 2) > (void *)(long)ctx->data_end)
        return XDP_ABORTED;
    data[1] = data[0] + 1;
    bpf_printk("first byte %d", data[0]);
    return data[0] == 7 ? XDP_DROP : XDP_PASS;
}
"""


def test_vm_run_object_program_with_packet_file(tmp_path):
    obj = compile_bpf(FIREWALL, name="clirun")
    packet = tmp_path / "packet.bin"
    packet.write_bytes(bytes([7]) + bytes(20))
    proc = run_cli("vm", "run", obj, "first_byte", "--data-in", packet, "--json", check=True)
    result = json.loads(proc.stdout)
    assert result["retval"] == 1 and bytes.fromhex(result["data_out"])[:2] == b"\x07\x08"
    assert result["instructions"] > 5
    assert b"first byte 7" in proc.stderr  # bpf_printk goes to stderr
    out = tmp_path / "out.bin"
    proc = run_cli("vm", "run", obj, "--mem", "05 " * 16, "--data-out", out, "--repeat", "3", check=True)
    assert b"retval: 2 (0x2)" in proc.stdout and out.read_bytes()[:2] == b"\x05\x06"


def test_vm_run_raw_bytecode_and_errors(tmp_path):
    code = tmp_path / "prog.bin"
    code.write_bytes(b"".join(i.encode() for i in [mov(0, src=2), EXIT]))  # r0 = length of the memory
    proc = run_cli("vm", "run", code, "--mem", "01 02 03", check=True)
    assert b"retval: 3" in proc.stdout
    (tmp_path / "prog.hex").write_text("b7 00 00 00 2a 00 00 00 95 00 00 00 00 00 00 00\n")
    assert b"retval: 42" in run_cli("vm", "run", tmp_path / "prog.hex", check=True).stdout
    (tmp_path / "bad.bin").write_bytes(bytes.fromhex("0500050000000000 9500000000000000"))
    proc = run_cli("vm", "run", tmp_path / "bad.bin")
    assert proc.returncode == 1 and b"outside the program" in proc.stderr
    proc = run_cli("vm", "run", compile_bpf(FIREWALL, name="clirun"), "nope")
    assert proc.returncode == 1 and b"no program 'nope'" in proc.stderr


def test_embedding_api_memory_length_and_helpers():
    memory = bytearray(struct.pack("<Q", 40))
    code = [ldx(8, 3, 1, 0), alu("add", 3, src=2), stx(8, 1, 0, 3), mov(1, src=3), I(0x85, 0, 0, 0, 0x77),
            EXIT]
    r0 = run(code, memory, helpers={0x77: lambda a, b, c, d, e: a * 2})
    assert struct.unpack("<Q", memory)[0] == 48 and r0 == 96
    assert run([mov(0, src=10), EXIT]) != 0  # r10 points at the top of the stack
