"""Kernel-style text against the real kernel: the verifier log and `bpftool prog dump xlated`."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from pybpf.isa import Instruction, Program, assemble, disassemble, format_kernel

# Everything the verifier accepts in a socket filter: every ALU/jump form, stack memory of every
# size, atomics, v4 instructions, ld_abs/ld_ind, a helper call, gotol and may_goto.
VERIFIABLE = """
    r6 = r1
    r1 = 0x0
    *(u64 *)(r10 - 0x8) = r1
    *(u32 *)(r10 - 0x10) = 0x5
    *(u16 *)(r10 - 0x12) = w1
    *(u8 *)(r10 - 0x13) = 0x7
    w2 = 0x7
    lock *(u64 *)(r10 - 0x8) += r1
    lock *(u32 *)(r10 - 0x10) |= w2
    r3 = 0x1
    r3 = atomic_fetch_add((u64 *)(r10 - 0x8), r3)
    w4 = 0x2
    w4 = atomic_fetch_xor((u32 *)(r10 - 0x10), w4)
    r0 = 0x0
    r0 = cmpxchg_64(r10 - 0x8, r0, r3)
    w0 = 0x0
    w0 = cmpxchg32_32(r10 - 0x10, w0, w4)
    r5 = 0x3
    r5 = xchg_64(r10 - 0x8, r5)
    r1 = 0x1122334455667788 ll
    r1 s/= 0x3
    w2 s%= 0x5
    r1 *= r3
    w2 <<= w2
    r1 s>>= 0x3
    r1 ^= -0x1
    r7 = (s16)r1
    w8 = (s8)w2
    r7 = bswap32 r7
    r7 = be16 r7
    r7 = le64 r7
    w7 = -w7
    r8 = r7
    r0 = *(u8 *)skb[0xc]
    r0 = *(u16 *)skb[r7 + 0x2]
    r0 = *(u32 *)skb[r8 + -0x4]
    call 0x7
    if w0 s> 0x5 goto +0x1
    r0 = *(s8 *)(r10 - 0x8)
    r1 = *(u16 *)(r10 - 0x12)
    if r0 > r7 goto +0x0
    if w1 & 0x3 goto +0x0
    if r1 s<= r0 goto +0x0
    gotol +0x0
    may_goto +0x0
    goto +0x0
    r0 = 0x0
    exit
"""

_LIVE = re.compile(r"^\s*(\d+): [.0-9]{10} (\([0-9a-f]{2}\) .*)$")


@pytest.mark.kernel
def test_verifier_log_lists_every_instruction_as_pybpf_does():
    from pybpf.kernel import Program as KernelProgram, ProgType

    program = assemble(VERIFIABLE)
    with KernelProgram.load(ProgType.SOCKET_FILTER, program, log_level=2, name="isa_vlog") as loaded:
        log = loaded.verifier_log
    kernel_lines = {int(m.group(1)): m.group(2) for m in map(_LIVE.match, log.splitlines()) if m}
    if not kernel_lines:  # kernels before 6.15 print no liveness table: use the trace lines
        trace = re.compile(r"^(\d+): (\([0-9a-f]{2}\) .*?)(?:\s+;.*)?$")
        kernel_lines = {int(m.group(1)): m.group(2) for m in map(trace.match, log.splitlines()) if m}
    ours = {int(line.split(":")[0]): line.split(": ", 1)[1] for line in disassemble(program, "kernel").splitlines()}
    assert kernel_lines == ours
    # and the kernel's own text assembles back to the program
    assert assemble("\n".join(kernel_lines.values())) == program


def _kallsyms_call_names():
    """bpftool's trick: an xlated helper call's imm is the helper's address minus __bpf_call_base."""
    symbols = {}
    base = None
    with open("/proc/kallsyms") as f:
        for line in f:
            addr, _kind, name = line.split()[:3]
            value = int(addr, 16)
            symbols.setdefault(value, name)
            if name == "__bpf_call_base":
                base = value
    if base is None or not any(symbols):
        pytest.skip("/proc/kallsyms shows no addresses")

    def call_name(insn: Instruction) -> str | None:
        name = symbols.get(base + insn.imm) if insn.src == 0 else None
        return f"{name}#{insn.imm}" if name else None
    return call_name


@pytest.mark.kernel
@pytest.mark.skipif(shutil.which("bpftool") is None, reason="bpftool is not installed")
def test_bpftool_xlated_dump_matches_and_assembles():
    from pybpf.kernel import Program as KernelProgram, ProgType

    # bpftool 7.1 carries a Linux 6.1 disassembler: keep to instructions it knows
    v3 = VERIFIABLE
    for new, old in (("/=", "s/="), ("%=", "s%="), ("", "(s16)"), ("", "(s8)"), ("be32", "bswap32"),
                     ("goto", "gotol"), ("goto", "may_goto"), ("*(u8 *)", "*(s8 *)")):
        v3 = v3.replace(old, new)
    program = assemble(v3)
    with KernelProgram.load(ProgType.SOCKET_FILTER, program, name="isa_xlated") as loaded:
        dump = subprocess.run(["bpftool", "prog", "dump", "xlated", "id", str(loaded.id), "opcodes"],
                              capture_output=True, text=True, check=True).stdout.splitlines()
    text = [line for line in dump if re.match(r"\s*\d+: ", line)]
    code = bytes.fromhex("".join(line for line in dump if not re.match(r"\s*\d+: ", line)).replace(" ", ""))
    xlated = Program.decode(code)
    assert assemble("\n".join(text)) == xlated  # the kernel rewrote ld_abs and the helper: bpftool's text says how
    ours = disassemble(xlated, "kernel", call_name=_kallsyms_call_names()).splitlines()
    assert ours == text


def test_hooks_and_defaults_for_what_the_kernel_names():
    kfunc = Instruction(0x85, 0, 2, 0, 1234)
    assert format_kernel(kfunc) == "(85) call kernel-function#1234"
    assert format_kernel(kfunc, call_name=lambda i: f"bpf_obj_new_impl#{i.imm}") == "(85) call bpf_obj_new_impl#1234"
    assert format_kernel(Instruction(0x85, 0, 1, 0, 3), call_name=lambda i: "+3#sub") == "(85) call pc+3#sub"
    assert format_kernel(Instruction(0x85, 0, 1, 0, -3)) == "(85) call pc-3"
    assert format_kernel(Instruction(0x85, 0, 0, 0, 999)) == "(85) call unknown#999"
    lddw = Instruction(0x18, 1, 1, 0, 7)
    assert format_kernel(lddw) == "(18) r1 = map[id:7]"
    assert format_kernel(lddw, imm_name=None) == "(18) r1 = 0x7"  # the kernel's own default
    assert format_kernel(lddw, imm_name=lambda i: "map[counters]") == "(18) r1 = map[counters]"
    assert format_kernel(Instruction(0x18, 2, 5, 0, 3)) == "(18) r2 = map[idx:3]"
    assert format_kernel(Instruction(0x18, 2, 4, 0, 0xFFFFFFFE)) == "(18) r2 = subprog[-2]"
    assert format_kernel(Instruction(0xcb, 1, 2, -2, 0x100)) == "(cb) r1 = load_acquire((u16 *)(r2 -2))"
    assert format_kernel(Instruction(0xd3, 1, 2, 4, 0x110)) == "(d3) store_release((u8 *)(r1 +4), r2)"
    assert format_kernel(Instruction(0x73, 1, 2, 0, 0)) == "(73) *(u8 *)(r1 +0) = r2"
