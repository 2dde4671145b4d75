"""Memory safety: every bad access is a VMFault naming instruction, region, offset, size and C line;
context field rules per program type; garbage bytecode never escapes as anything but a BPFError."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

from conftest import compile_bpf
from pybpf.errors import BPFError, VMFault
from pybpf.object import ObjectSpec
from pybpf.vm import VM, TracepointFormat
from pybpf.vm.constants import ProgType
from vmcode import EXIT, alu, call, ldx, map_fd, mov, st, stx

PREAMBLE = """
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
char LICENSE[] SEC("license") = "GPL";
"""

UNSAFE = r"""
__u32 table[4];

SEC("xdp")
int index_unchecked(struct xdp_md *ctx)
{
    __u8 *data = (void *)(long)ctx->data;
    if ((void *)(data + 1) > (void *)(long)ctx->data_end)
        return XDP_ABORTED;
    return table[data[0]];
}

SEC("xdp")
int read_past_packet(struct xdp_md *ctx)
{
    __u8 *data = (void *)(long)ctx->data;
    return data[100];
}

struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 1); __type(key, __u32); __type(value, __u64); }
    counts SEC(".maps");

SEC("xdp")
int no_null_check(struct xdp_md *ctx)
{
    __u32 key = 9;
    __u64 *v = bpf_map_lookup_elem(&counts, &key);
    return *v;
}
"""


@pytest.fixture(scope="module")
def unsafe():
    return ObjectSpec.from_file(compile_bpf(PREAMBLE + UNSAFE, name="unsafe"))


@pytest.mark.parametrize("engine", ["compiled", "interpreter"])
def test_out_of_bounds_global_names_region_offset_size_and_c_line(unsafe, engine):
    obj = unsafe.load(backend="vm", engine=engine)
    prog = obj.programs["index_unchecked"]
    assert prog.test_run(bytes([3]) + bytes(13)).retval == 0
    with pytest.raises(VMFault) as info:
        prog.test_run(bytes([4]) + bytes(13))
    fault = info.value
    text = str(fault)
    assert re.search(r"read of 4 bytes at offset 16 of ARRAY map '\w+\.bss' \(global data\) \(size 16\): out of "
                     r"bounds", text), text
    assert fault.pc is not None and f"instruction {fault.pc}" in text
    assert fault.source and "return table[data[0]];" in fault.source and re.search(r"\.c:\d+", fault.source)


def test_packet_and_null_pointer_faults(unsafe):
    obj = unsafe.load(backend="vm")
    with pytest.raises(VMFault, match=r"read of 1 byte at offset 100 of packet \(size 14\): out of bounds"):
        obj.programs["read_past_packet"].test_run(bytes(14))
    with pytest.raises(VMFault, match=r"null pointer dereference") as info:
        obj.programs["no_null_check"].test_run(bytes(14))
    assert "return *v;" in info.value.source


def test_stack_underflow_and_writes_to_read_only_memory():
    vm = VM()
    code = [mov(1, src=10), alu("add", 1, None, -520), stx(8, 1, 0, 1), EXIT]
    with pytest.raises(VMFault, match=r"write of 8 bytes at offset -8 of stack of frame 0 \(size 512\): before the "
                                      r"start of the region"):
        vm.load(code).run()
    ro = vm.create_map(2, 4, 4, 1, flags=1 << 7)
    code = [st(4, 10, -4, 0), mov(2, src=10), alu("add", 2, None, -4), map_fd(1, ro.fd), call(1), st(4, 0, 0, 7),
            EXIT]
    with pytest.raises(VMFault, match="the region is read-only"):
        vm.load(code, type=ProgType.XDP).test_run(bytes(14))


CTX_RULES = r"""
SEC("socket")
int write_mark(struct __sk_buff *skb)
{
    skb->mark = 1;                  /* socket filters may only write cb[] */
    return 0;
}

SEC("socket")
int read_data(struct __sk_buff *skb)
{
    return skb->data;               /* no direct packet access for socket filters */
}

SEC("xdp")
int write_xdp_md(struct xdp_md *ctx)
{
    ctx->rx_queue_index = 1;        /* struct xdp_md is read-only */
    return XDP_PASS;
}

SEC("tc")
int tc_ok(struct __sk_buff *skb)
{
    skb->mark = 5;
    skb->cb[1] = skb->len;
    return 0;
}
"""


@pytest.mark.parametrize("program,message", [
    ("write_mark", "SOCKET_FILTER programs cannot write __sk_buff.mark"),
    ("read_data", "SOCKET_FILTER programs cannot read __sk_buff.data"),
    ("write_xdp_md", "struct xdp_md is read-only"),
])
def test_context_fields_follow_the_kernels_rules(program, message):
    obj = ObjectSpec.from_file(compile_bpf(PREAMBLE + CTX_RULES, name="ctxrules")).load(backend="vm")
    with pytest.raises(VMFault, match=message):
        obj.programs[program].test_run(bytes(64))
    ctx = bytes(192)
    out = obj.programs["tc_ok"].test_run(bytes(64), ctx=ctx).ctx_out
    assert int.from_bytes(out[8:12], "little") == 5 and int.from_bytes(out[52:56], "little") == 64


def test_modified_context_pointer_cannot_be_dereferenced():
    vm = VM()
    code = [alu("add", 1, None, 4), ldx(4, 0, 1, 0), EXIT]
    with pytest.raises(VMFault, match="context may only be accessed directly"):
        vm.load(code, type=ProgType.XDP).test_run(bytes(14))


def test_tracepoint_context_from_the_format_and_read_only():
    fmt = TracepointFormat.parse("""name: sys_enter_openat
ID: 700
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;
\tfield:int dfd;\toffset:16;\tsize:8;\tsigned:0;
\tfield:const char * filename;\toffset:24;\tsize:8;\tsigned:0;
\tfield:__data_loc char[] path;\toffset:32;\tsize:4;\tsigned:0;
""")
    assert fmt.fields["filename"].offset == 24 and fmt.fields["path"].data_loc
    ctx = fmt.context(common_pid=77, dfd=-100, path="/etc/hosts")
    vm = VM()
    read_pid = vm.load([ldx(4, 0, 1, 4), EXIT], type=ProgType.TRACEPOINT)
    assert read_pid.test_run(ctx=ctx).retval == 77
    read_dfd = vm.load([ldx(8, 0, 1, 16), EXIT], type=ProgType.TRACEPOINT)
    assert read_dfd.test_run(ctx=ctx).retval == (-100) & 0xFFFFFFFF
    with pytest.raises(VMFault, match="the context is read-only"):
        vm.load([st(4, 1, 4, 0), EXIT], type=ProgType.TRACEPOINT).test_run(ctx=ctx)
    loc = int.from_bytes(ctx.data[32:36], "little")
    assert ctx.data[loc & 0xFFFF:(loc & 0xFFFF) + (loc >> 16)] == b"/etc/hosts\0"


def test_tracefs_formats_are_read_when_present():
    try:
        fmt = TracepointFormat.from_tracefs("syscalls", "sys_enter_openat")
    except BPFError as exc:
        pytest.skip(str(exc))
    assert {"filename", "flags", "mode"} <= set(fmt.fields)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(code=hs.binary(min_size=8, max_size=160).map(lambda b: b[:len(b) // 8 * 8]),
       memory=hs.binary(max_size=64), engine=hs.sampled_from(["compiled", "interpreter"]))
def test_garbage_bytecode_only_ever_raises_bpf_errors(code, memory, engine):
    """Whatever the bytes, the VM refuses them, faults cleanly, or runs them: the host is unharmed."""
    vm = VM(engine=engine, budget=5000)
    try:
        vm.execute(vm.load(code), memory=bytearray(memory))
    except BPFError:
        pass


def _valid_instruction(opcode, dst, src, off, imm):
    from pybpf.isa import Instruction

    insn = Instruction(opcode, dst, src, off, imm if opcode != 0x18 else imm & ((1 << 64) - 1))
    try:
        return insn.validate()
    except BPFError:
        return None


_INSTRUCTIONS = hs.builds(
    _valid_instruction, hs.sampled_from(sorted(__import__("pybpf.isa", fromlist=["OPCODES"]).OPCODES)),
    hs.integers(0, 10), hs.integers(0, 10), hs.sampled_from([0, 0, 1, -1, 2, 8, 16, 32, -8, -512, 0x7FFF]),
    hs.sampled_from([0, 1, -1, 5, 16, 32, 64, 0x100, 0x110, 0xE1, 0xF1, 1 << 31 - 1, -(1 << 31)]),
).filter(lambda i: i is not None)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(code=hs.lists(_INSTRUCTIONS, min_size=1, max_size=30), memory=hs.binary(max_size=64),
       engine=hs.sampled_from(["compiled", "interpreter"]))
def test_random_valid_instructions_only_ever_raise_bpf_errors(code, memory, engine):
    vm = VM(engine=engine, budget=5000)
    try:
        vm.execute(vm.load(code + [EXIT]), memory=bytearray(memory))
    except BPFError:
        pass


def test_probe_read_str_follows_a_tracepoint_data_loc_string():
    from pybpf.isa import assemble

    fmt = TracepointFormat.parse("field:int pid;\toffset:8;\tsize:4;\tsigned:1;\n"
                                 "field:__data_loc char[] path;\toffset:12;\tsize:4;\tsigned:0;\n")
    ctx = fmt.context(pid=5, path="/tmp/x")
    # r0 = bpf_probe_read_str(r10 - 16, 16, ctx + (ctx->path & 0xffff)); return the copied first byte
    code = assemble("""
        r6 = r1
        r3 = *(u32 *)(r6 + 12)
        r3 &= 0xffff
        r3 += r6
        r1 = r10
        r1 += -16
        r2 = 16
        call 45
        r0 = *(u8 *)(r10 - 16)
        exit
    """)
    assert VM().load(code, type=ProgType.TRACEPOINT).test_run(ctx=ctx).retval == ord("/")
