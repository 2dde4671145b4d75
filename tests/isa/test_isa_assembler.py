"""The assembler: three syntaxes, labels, listings, round trips and errors that name the line."""

from __future__ import annotations

import pytest
from hypothesis import given, settings

from isa_strategies import programs
from pybpf import AssemblerError
from pybpf.isa import Instruction, Program, assemble, assemble_listing, disassemble, format_llvm

I = Instruction  # noqa: E741


@given(programs())
@settings(max_examples=400)
def test_llvm_style_round_trip(program):
    assert assemble(disassemble(program)) == program


def _kernel_text_keeps(insn: Instruction) -> bool:
    # The kernel prints a kfunc call as "call name#btf_id": the module BTF index in off is not shown.
    return not (insn.opcode == 0x85 and insn.src == 2 and insn.off)


@given(programs().filter(lambda p: all(map(_kernel_text_keeps, p))))
@settings(max_examples=400)
def test_kernel_style_round_trip(program):
    assert assemble(disassemble(program, "kernel")) == program


def test_kernel_style_drops_only_the_kfunc_module_index():
    program = Program([I(0x85, 0, 2, 3, 77)])
    assert disassemble(program, "kernel") == "   0: (85) call kernel-function#77"
    assert assemble(disassemble(program, "kernel"))[0] == I(0x85, 0, 2, 0, 77)


@given(programs())
@settings(max_examples=100)
def test_annotated_listing_round_trip(program):
    assert assemble(disassemble(program, name="prog")) == program


@pytest.mark.parametrize("text, insn", [
    # LLVM syntax, as llvm-objdump prints it
    ("r6 = *(u64 *)(r1 + 0x8)", I(0x79, 6, 1, 8)),
    ("w1 = *(u32 *)(r1 - 0x4)", I(0x61, 1, 1, -4)),
    ("r1 = *(s8 *)(r2 + 0x0)", I(0x91, 1, 2, 0)),
    ("*(u16 *)(r10 - 0x2) = w3", I(0x6b, 10, 3, -2)),
    ("*(u32 *)(r10 - 0x4) = 0x1", I(0x62, 10, 0, -4, 1)),
    ("if r0 == 0x0 goto +0x2 <prog+0x48>", I(0x15, 0, 0, 2, 0)),
    ("if w1 s< w2 goto -0x3", I(0xce, 1, 2, -3)),
    ("if r1 & 0xffffffff goto +0x1", I(0x45, 1, 0, 1, -1)),
    ("call 0x1", I(0x85, 0, 0, 0, 1)),
    ("call -0x1", I(0x85, 0, 1, 0, -1)),
    ("call +0x3", I(0x85, 0, 1, 0, 3)),
    ("callx r2", I(0x8d, 2)),
    ("r1 = 0x0 ll", I(0x18, 1, 0, 0, 0)),
    ("r1 = -0x1 ll", I(0x18, 1, 0, 0, (1 << 64) - 1)),
    ("ld_pseudo\tr1, 0x2, 0x5, 0x10", I(0x18, 1, 2, 0, 0x10_00000005)),
    ("lock *(u64 *)(r0 + 0x0) += r7", I(0xdb, 0, 7, 0, 0)),
    ("lock *(u32 *)(r1 + 0x8) ^= w2", I(0xc3, 1, 2, 8, 0xa0)),
    ("r1 = atomic_fetch_or((u64 *)(r0 + 0x0), r1)", I(0xdb, 0, 1, 0, 0x41)),
    ("w2 = xchg32_32(r1 + 0x0, w2)", I(0xc3, 1, 2, 0, 0xe1)),
    ("r0 = cmpxchg_64(r3 + 0x8, r0, r2)", I(0xdb, 3, 2, 8, 0xf1)),
    ("w1 = w2", I(0xbc, 1, 2)),
    ("r1 = (s32)r2", I(0xbf, 1, 2, 32)),
    ("r1 = bswap16 r1", I(0xd7, 1, 0, 0, 16)),
    ("r1 = be64 r1", I(0xdc, 1, 0, 0, 64)),
    ("r1 s/= -0x7", I(0x37, 1, 0, 1, -7)),
    ("w3 s%= w4", I(0x9c, 3, 4, 1)),
    ("w1 = -w1", I(0x84, 1)),
    ("r0 = *(u16 *)skb[r1]", I(0x48, 0, 1)),
    ("r0 = *(u8 *)skb[0xc]", I(0x30, 0, 0, 0, 12)),
    ("gotol -0x10", I(0x06, 0, 0, 0, -16)),
    ("may_goto +0x1", I(0xe5, 0, 0, 1)),
    ("r1 = addr_space_cast(r2, 0x0, 0x1)", I(0xbf, 1, 2, 1, 1)),
    ("w1 = load_acquire((u8 *)(r2 + 0x0))", I(0xd3, 1, 2, 0, 0x100)),
    ("store_release((u64 *)(r1 + 0x8), r2)", I(0xdb, 1, 2, 8, 0x110)),
    # kernel syntax, as the verifier log and bpftool print it
    ("(bf) r6 = r1", I(0xbf, 6, 1)),
    ("  12: (79) r2 = *(u64 *)(r10 -8)", I(0x79, 2, 10, -8)),
    ("(07) r2 += -4", I(0x07, 2, 0, 0, -4)),
    ("(15) if r0 == 0x0 goto pc+24", I(0x15, 0, 0, 24)),
    ("(85) call bpf_map_lookup_elem#1", I(0x85, 0, 0, 0, 1)),
    ("(85) call __htab_map_lookup_elem#336864", I(0x85, 0, 0, 0, 336864)),
    ("(85) call pc+5#bpf_prog_d4b65d34ee73ffb6_sub", I(0x85, 0, 1, 0, 5)),
    ("(85) call kernel-function#77", I(0x85, 0, 2, 0, 77)),
    ("(18) r1 = map[id:6196]", I(0x18, 1, 1, 0, 6196)),
    ("(18) r1 = map[id:6198][0]+16", I(0x18, 1, 2, 0, 16 << 32 | 6198)),
    ("(18) r2 = map[idx:1]+8", I(0x18, 2, 6, 0, 8 << 32 | 1)),
    ("(18) r3 = subprog[-4]", I(0x18, 3, 4, 0, 0xFFFFFFFC)),
    ("(18) r0 = 0x5", I(0x18, 0, 0, 0, 5)),
    ("(db) r1 = atomic64_fetch_or((u64 *)(r0 +0), r1)", I(0xdb, 0, 1, 0, 0x41)),
    ("(c3) r5 = atomic_fetch_xor((u32 *)(r3 +0), r5)", I(0xc3, 3, 5, 0, 0xa1)),
    ("(db) r0 = atomic64_cmpxchg((u64 *)(r3 +0), r0, r2)", I(0xdb, 3, 2, 0, 0xf1)),
    ("(c3) lock *(u32 *)(r3 +0) &= r4", I(0xc3, 3, 4, 0, 0x50)),
    ("(05) goto pc-1", I(0x05, 0, 0, -1)),
    ("(06) gotol pc+70000", I(0x06, 0, 0, 0, 70000)),
    ("(48) r0 = *(u16 *)skb[r1 + 4]", I(0x48, 0, 1, 0, 4)),
    ("(bf) r1 = addr_space_cast(r2, 1, 0)", I(0xbf, 1, 2, 1, 0x10000)),
    # conformance suite / uBPF syntax
    ("mov %r0, 1", I(0xb7, 0, 0, 0, 1)),
    ("mov32 %r0, 0xffffffff", I(0xb4, 0, 0, 0, -1)),
    ("add %r1, %r2", I(0x0f, 1, 2)),
    ("sdiv32 %r1, -3", I(0x34, 1, 0, 1, -3)),
    ("smod %r1, %r2", I(0x9f, 1, 2, 1)),
    ("movsx1632 %r1, %r2", I(0xbc, 1, 2, 16)),
    ("movsx3264 %r1, %r2", I(0xbf, 1, 2, 32)),
    ("neg32 %r3", I(0x84, 3)),
    ("be16 %r0", I(0xdc, 0, 0, 0, 16)),
    ("swap64 %r0", I(0xd7, 0, 0, 0, 64)),
    ("ldxw %r0, [%r1+4]", I(0x61, 0, 1, 4)),
    ("ldxsh %r0, [%r1]", I(0x89, 0, 1, 0)),
    ("stdw [%r10-8], 0x12", I(0x7a, 10, 0, -8, 0x12)),
    ("stxb [%r1+0xffff], %r2", I(0x73, 1, 2, -1)),
    ("lddw %r0, 0x1122334455667788", I(0x18, 0, 0, 0, 0x1122334455667788)),
    ("lddw %r0, -2", I(0x18, 0, 0, 0, (1 << 64) - 2)),
    ("lock fetch add [%r10-8], %r1", I(0xdb, 10, 1, -8, 0x01)),
    ("lock xor32 [%r1+0], %r2", I(0xc3, 1, 2, 0, 0xa0)),
    ("lock cmpxchg32 [%r1+0], %r2", I(0xc3, 1, 2, 0, 0xf1)),
    ("lock xchg [%r1+0], %r2", I(0xdb, 1, 2, 0, 0xe1)),
    ("jne %r1, 5, +2", I(0x55, 1, 0, 2, 5)),
    ("jsle32 %r1, %r2, -1", I(0xde, 1, 2, -1)),
    ("call 5", I(0x85, 0, 0, 0, 5)),
    ("call %r2", I(0x8d, 2)),
    ("call runtime 7", I(0x85, 0, 2, 0, 7)),
    ("ldabsh 12", I(0x28, 0, 0, 0, 12)),
    ("ldindw %r2, 4", I(0x40, 0, 2, 0, 4)),
    ("exit", I(0x95)),
])
def test_one_instruction(text, insn):
    assert assemble(text) == Program([insn])


def test_labels_in_every_syntax():
    program = assemble("""
        ja L2              # conformance jump to a forward label
    L1:
        r0 = 0x1
        exit
    L2: ; a comment after the label is fine
        if r1 > 0x3 goto L1
        call local func    // conformance call
        call func          // LLVM-style call of a label
        jne %r1, 0, exit   // the conformance suite's implicit 'exit' label
        gotol L1
        lddw %r1, 1
    func:
        exit
    """.replace("L2: ; a comment after the label is fine", "L2:"))
    assert [(i.opcode, i.off, i.imm) for i in program] == [
        (0x05, 2, 0), (0xb7, 0, 1), (0x95, 0, 0), (0x25, -3, 3), (0x85, 0, 5), (0x85, 0, 4), (0x55, -5, 0),
        (0x06, 0, -7), (0x18, 0, 1), (0x95, 0, 0)]
    assert [i.src for i in program][4:6] == [1, 1]


def test_llvm_objdump_listing_with_headers_relocations_and_raw_bytes():
    listing = """
t.o:\tfile format elf64-bpf

Disassembly of section .text:

0000000000000000 <sub>:
       0:\tbc 10 00 00 00 00 00 00\tw0 = w1
       1:\t95 00 00 00 00 00 00 00\texit

Disassembly of section tc:

0000000000000000 <prog>:
       0:\tb7 01 00 00 00 00 00 00\tr1 = 0x0
       1:\t85 10 00 00 ff ff ff ff\tcall -0x1
\t\t0000000000000008:  R_BPF_64_32\tsub
       2:\t18 01 00 00 00 00 00 00 00 00 00 00 00 00 00 00\tr1 = 0x0 ll
\t\t0000000000000010:  R_BPF_64_64\tm
       4:\tc3 53 00 00 a1 00 00 00\t<unknown>
       5:\t95 00 00 00 00 00 00 00\texit
"""
    sections = assemble_listing(listing)
    assert list(sections) == [".text", "tc"]
    assert sections["tc"][1] == I(0x85, 0, 1, 0, -1)
    assert sections["tc"][3] == I(0xc3, 3, 5, 0, 0xa1)  # the bytes decide what <unknown> was
    with pytest.raises(AssemblerError, match="2 sections"):
        assemble(listing)


def test_section_names_are_not_comments():
    listing = ("Disassembly of section uretprobe//proc/self/exe:uprobed_sub:\n\n0000000000000000 <sub>:\n"
               "       0:\tr0 = 0x0 # a comment\n       1:\texit\t// another\n")
    assert list(assemble_listing(listing)) == ["uretprobe//proc/self/exe:uprobed_sub"]


def test_relocation_line_marks_a_call_as_bpf_to_bpf():
    text = "call 0x2\n\t\t0000000000000000:  R_BPF_64_32\t.text\nexit"
    assert assemble(text)[0] == I(0x85, 0, 1, 0, 2)


def test_lossless_text_for_what_objdump_prints_ambiguously():
    for insn in (I(0x85, 0, 1, 0, 2), I(0x85, 0, 2, 0, 9), I(0x85, 0, 2, 3, 9), I(0x85, 0, 0, 0, -5),
                 I(0xc3, 1, 2, 0, 0x01), I(0x40, 0, 1, 0, 6), I(0x18, 1, 2, 0, 7 << 32 | 5)):
        assert assemble(format_llvm(insn)) == Program([insn]), format_llvm(insn)


@pytest.mark.parametrize("text, line, message", [
    ("exit\nldxq %r0, %r1", 2, "unknown mnemonic 'ldxq'"),
    ("exit\nfrobnicate r1", 2, "unknown mnemonic 'frobnicate'"),
    ("mov %r0, %r11", 1, "invalid register '%r11'"),
    ("r12 = 1", 1, "invalid register 'r12'"),
    ("mov32 %r0, 2147483648", 1, "does not fit in 32 bits"),
    ("r1 += 0x100000000", 1, "does not fit in 32 bits"),
    ("ldxb %r0, [%r1+0x10000]", 1, "does not fit in 16 bits"),
    ("r1 = *(u8 *)(r2 + 40000)", 1, "does not fit in 16 bits"),
    ("lddw %r0", 1, "lddw takes 2 operands, not 1"),
    ("add %r0, %r1, %r2", 1, "add takes 2 operands, not 3"),
    ("lock or [%r10-8]", 1, "Invalid number of operands for lock"),
    ("lock", 1, "Invalid number of operands for lock"),
    ("ldxb %r0, %r1", 1, "expected a memory operand"),
    ("exit\nja NOT_A_LABEL", 2, "unknown label 'NOT_A_LABEL'"),
    ("x:\nexit\nx:\nexit", 3, "label 'x' is defined twice"),
    ("w1 += r2", 1, r"mixes 64-bit \(r\) and 32-bit \(w\)"),
    ("r1 = be16 r2", 1, "byte swaps work in place"),
    ("r1 = *(u8 *)skb[0x4]", 1, "always load into r0"),
    ("r0 = cmpxchg_64(r1 + 0x0, r0, r2)\nr1 = cmpxchg_64(r1 + 0x0, r0, r2)", 2, "returns into r0"),
    ("(bf) r1 = 0x5", 1, r"the text is instruction \(b7\), but the line says \(bf\)"),
    ("       4:\t<unknown>", 1, "--exact or --show-raw-insn"),
    ("\t\t...", 1, "skipped zero bytes"),
    ("   3:\t85 00 01 00 00 00 00 00\tcall 0x0", 1, "no valid instruction"),
    ("r1 = addr_space_cast(r2, 0x0, 0x0)", 1, "address spaces 0 and 1"),
    ("call kfunc 5 module 1 2", 1, "cannot parse call"),
])
def test_errors_name_the_line(text, line, message):
    with pytest.raises(AssemblerError, match=message) as info:
        assemble(text)
    assert info.value.line == line
    assert str(info.value).startswith(f"line {line}: ")


def test_gotol_reaches_beyond_16_bits_and_goto_says_so():
    body = "r0 = 0x0\n" * 40000
    far = assemble("gotol end\n" + body + "end:\nexit")
    assert far[0].imm == 40000
    with pytest.raises(AssemblerError, match="beyond the 16-bit jump range; use gotol"):
        assemble("goto end\n" + body + "end:\nexit")
