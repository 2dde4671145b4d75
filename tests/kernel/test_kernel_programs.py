"""Programs in the real kernel: load, verifier rejections mapped to C lines, test_run vs bpftool, pins."""

from __future__ import annotations

import os
import re
import struct
import subprocess

import pytest

from kernel_testlib import load_c, open_fds, source_lines

from pybpf.errors import BPFError, KernelError, NotSupportedError, VerifierError
from pybpf.isa import Instruction
from pybpf.kernel import AttachType, IntCodec, Map, MapType, Program, ProgType, SourceLine, prog_ids

pytestmark = pytest.mark.kernel

RETURN_0 = [Instruction(0xB7, 0, 0, 0, 0), Instruction(0x95)]

XDP_FLIP = r"""
SEC("xdp")
int flip(struct xdp_md *ctx)
{
    unsigned char *data = (void *)(long)ctx->data;
    unsigned char *end = (void *)(long)ctx->data_end;
    if (data + 5 > end)
        return XDP_ABORTED;
    for (int i = 0; i < 4; i++)
        data[i] = ~data[i];          /* visible in data_out */
    return data[4] == 0xbd ? XDP_TX : XDP_PASS;
}
"""

NO_NULL_CHECK = r"""
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u64);
} counts SEC(".maps");

SEC("socket")
int no_null_check(struct __sk_buff *skb)
{
    __u32 key = 0;
    __u64 *value = bpf_map_lookup_elem(&counts, &key);
    return *value;   /* the verifier insists on a NULL check here */
}
"""


def test_load_info_and_close():
    before = open_fds()
    with Program.load(ProgType.SOCKET_FILTER, RETURN_0, name="ret0") as p:
        info = p.info()
        assert info.type == ProgType.SOCKET_FILTER and info.name == "ret0"
        assert len(info.tag) == 16 and info.xlated_size == 16 and info.gpl_compatible
        assert info.id in set(prog_ids())
        with Program.from_id(info.id) as again:
            assert again.type == ProgType.SOCKET_FILTER and again.name == "ret0"
    assert open_fds() == before


def test_verifier_rejection_names_the_c_line():
    with Map.create(MapType.HASH, 4, 8, 1, name="counts") as counts:
        with pytest.raises(VerifierError) as exc:
            load_c(NO_NULL_CHECK, "socket", ProgType.SOCKET_FILTER, {"counts": counts}, name="nonull")
        obj = exc.value
        assert "invalid mem access" in obj.summary and "map_value_or_null" in obj.summary
        assert obj.instruction is not None and f"{obj.instruction}: (" in obj.log
        assert "processed" in obj.log or "R0" in obj.log
        # the loader gives the kernel the object's BTF line info: the C line is named, and it is the
        # line the reference disassembler (llvm-objdump -l) puts at the failing instruction
        from conftest import compile_bpf
        from kernel_testlib import PREAMBLE
        lines = source_lines(compile_bpf(PREAMBLE + NO_NULL_CHECK, name="nonull"), "socket")
        reference = [ln for ln in lines if ln.insn_off <= obj.instruction][-1]
        assert obj.location is not None and "return *value;" in obj.location.text
        assert obj.location.line == reference.line
        assert "return *value;" in str(obj) and obj.errno == 13  # EACCES
        assert re.search(r"\.c:\d+", obj.source)


def test_verifier_error_from_hand_written_line_info():
    bad = [Instruction(0x61, 0, 1, 1000, 0), Instruction(0x95)]  # r0 = *(u32 *)(r1 + 1000): outside the context
    lines = [SourceLine(0, "filter.c", 7, 5, "return skb->cb[250];"), SourceLine(1, "filter.c", 8, 1, "}")]
    with pytest.raises(VerifierError) as exc:
        Program.load(ProgType.SOCKET_FILTER, bad, name="badctx", source_lines=lines)
    assert exc.value.instruction == 0
    assert "invalid bpf_context access" in exc.value.summary
    assert exc.value.source == "filter.c:7:5: return skb->cb[250];"


def test_log_grows_until_complete():
    # A long straight-line program with log_level=2 produces a log far larger than the first buffer.
    insns = [Instruction(0xB7, 0, 0, 0, 0)] + [Instruction(0x07, 0, 0, 0, 1)] * 20000 + [Instruction(0x95)]
    with Program.load(ProgType.SOCKET_FILTER, insns, name="longlog", log_level=2, log_size=4096) as p:
        assert len(p.verifier_log) > 256 * 1024
        assert "processed 20002 insns" in p.verifier_log


def test_unknown_program_type_and_bad_code():
    with pytest.raises(NotSupportedError, match="program type 250"):
        Program.load(250, RETURN_0)
    with pytest.raises(BPFError, match="multiple of 8"):
        Program.load(ProgType.SOCKET_FILTER, b"\x95\0\0\0")


@pytest.mark.parametrize("prog_type, attach_type, kind", [
    (ProgType.LSM, AttachType.LSM_MAC, "LSM programs"),
    (ProgType.TRACING, AttachType.TRACE_FENTRY, "fentry programs"),
])
def test_trampoline_programs_refused_by_the_kernel_say_not_supported(prog_type, attach_type, kind):
    # On kernels without BPF trampolines / BPF LSM (like this test machine) the load fails with EPERM
    # even for root: that must read as "not supported", not as a permission problem.
    try:
        Program.load(prog_type, RETURN_0, expected_attach_type=attach_type, attach_btf_id=1)
    except NotSupportedError as exc:
        assert kind in str(exc) and "EPERM" in str(exc)
    except VerifierError as exc:
        assert exc.errno == 22  # trampolines work here: only the fake target (btf id 1) is refused
    else:
        pytest.fail("a program with attach_btf_id=1 cannot load")


def test_test_run_matches_bpftool(tmp_path):
    packet = bytes([0x01, 0x02, 0x03, 0x04, 0x42]) + bytes(60)
    with load_c(XDP_FLIP, "xdp", ProgType.XDP, name="flip") as loaded:
        prog = loaded.program
        ours = prog.test_run(packet)
        assert ours.retval == 2  # XDP_PASS
        assert ours.data_out[:4] == bytes([0xFE, 0xFD, 0xFC, 0xFB]) and ours.data_out[4:] == packet[4:]
        assert ours.duration >= 0

        pin = f"/sys/fs/bpf/pybpf_test_flip_{os.getpid()}"
        prog.pin(pin)
        try:
            din, dout = tmp_path / "in", tmp_path / "out"
            for data in (packet, bytes([9, 9, 9, 9, 0xBD]) + bytes(60)):
                din.write_bytes(data)
                proc = subprocess.run(["bpftool", "prog", "run", "pinned", pin, "data_in", str(din),
                                       "data_out", str(dout), "repeat", "5"], capture_output=True, text=True)
                assert proc.returncode == 0, proc.stderr
                ref_retval = int(re.search(r"Return value: (\d+)", proc.stdout + proc.stderr).group(1))
                got = prog.test_run(data, repeat=5)
                assert got.retval == ref_retval
                assert got.data_out == dout.read_bytes()
            assert got.retval == 3  # XDP_TX for the 0xbd marker
            with Program.from_pin(pin) as pinned:
                assert pinned.type == ProgType.XDP and pinned.test_run(packet).retval == 2
        finally:
            prog.unpin()
        assert not os.path.exists(pin)


def test_test_run_with_context():
    # r0 = skb->mark + skb->len: the mark comes from the context we pass, len from the data (minus Ethernet).
    prog = [Instruction(0x61, 0, 1, 8, 0), Instruction(0x61, 2, 1, 0, 0), Instruction(0x0F, 0, 2, 0, 0),
            Instruction(0x95)]
    ctx = struct.pack("<III", 0, 0, 1000) + bytes(36)
    with Program.load(ProgType.SOCKET_FILTER, prog, name="mark_len") as p:
        got = p.test_run(bytes(60), ctx=ctx)
        assert got.retval == 1000 + 60 - 14
        assert struct.unpack_from("<III", got.ctx_out) == (0, 0, 1000) and len(got.ctx_out) >= len(ctx)
        assert p.test_run(bytes(100), repeat=3).retval == 100 - 14
        with pytest.raises(KernelError, match="read-only fields are zero"):
            p.test_run(bytes(60), ctx=b"\1" + bytes(47))  # __sk_buff.len may not be set


def test_counter_program_with_global_data():
    src = r"""
    __u64 runs = 0;
    SEC("socket")
    int count_runs(struct __sk_buff *skb)
    {
        __sync_fetch_and_add(&runs, 1);
        return 0;
    }
    """
    with load_c(src, "socket", ProgType.SOCKET_FILTER, name="runs") as loaded:
        loaded.program.test_run(bytes(64), repeat=7)
        assert loaded.global_u64("runs") == 7
        assert loaded.program.info().map_ids == (loaded.data_maps[".bss"].id,)


def test_program_pin_wrong_kind():
    path = f"/sys/fs/bpf/pybpf_test_notprog_{os.getpid()}"
    with Map.create(MapType.ARRAY, 4, 4, 1, value_codec=IntCodec(4)) as m:
        m.pin(path)
        try:
            with pytest.raises(BPFError, match="pinned map, not a program"):
                Program.from_pin(path)
        finally:
            m.unpin()
