"""Instruction semantics in both engines: RFC 9669 edge cases, random programs cross-checked,
calls, budgets and the checks made before a program runs."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

from pybpf.errors import InstructionError, VMError, VMFault
from pybpf.isa import Instruction as I
from pybpf.vm import VM, unwind_helper_registry
from pybpf.vm.constants import ProgType
from pybpf.vm.interpreter import BudgetExceeded
from vmcode import (
    EXIT, M64, PACKET_SIZE, alu, atomic, call, call_local, ja, jmp, lddw, ldx, mov, programs, register_values,
    stack_values, st, stx, with_prologue, xdp_wrapper,
)

ENGINES = ("interpreter", "compiled")


def run_both(code, memory: bytes = b"", **vm_options) -> int:
    """r0 of ``code`` in both engines (which must agree, memory included)."""
    results = []
    for engine in ENGINES:
        vm = VM(engine=engine, **vm_options)
        prog = vm.load(code)
        buf = bytearray(memory)
        results.append((vm.execute(prog, memory=buf), bytes(buf)))
    assert results[0] == results[1]
    return results[0][0]


def value_of(*code) -> int:
    return run_both([*code, EXIT])


# --- ALU edge cases (RFC 9669 section 4) ----------------------------------------------------------


@pytest.mark.parametrize("wide,dividend,expected", [(True, 7, 0), (False, 7, 0)])
def test_division_by_zero_gives_zero(wide, dividend, expected):
    assert value_of(lddw(0, dividend), mov(1, 0), alu("div", 0, 1, wide=wide)) == expected
    assert value_of(lddw(0, dividend), alu("div", 0, None, 0, wide=wide)) == expected
    assert value_of(lddw(0, dividend), mov(1, 0), alu("div", 0, 1, wide=wide, off=1)) == expected


def test_modulo_by_zero_keeps_dst_64_and_truncates_32():
    big = 0x1234_5678_9ABC_DEF0
    assert value_of(lddw(0, big), mov(1, 0), alu("mod", 0, 1)) == big
    assert value_of(lddw(0, big), mov(1, 0), alu("mod", 0, 1, wide=False)) == 0x9ABC_DEF0
    assert value_of(lddw(0, big), alu("mod", 0, None, 0, wide=False, off=1)) == 0x9ABC_DEF0


def test_signed_division_overflow_wraps():
    int_min64 = 1 << 63
    assert value_of(lddw(0, int_min64), lddw(1, M64), alu("div", 0, 1, off=1)) == int_min64
    assert value_of(lddw(0, int_min64), lddw(1, M64), alu("mod", 0, 1, off=1)) == 0
    assert value_of(lddw(0, 0x80000000), alu("div", 0, None, -1, wide=False, off=1)) == 0x80000000
    # truncation toward zero, remainder takes the dividend's sign
    assert value_of(lddw(0, -7), alu("div", 0, None, 2, off=1)) == (-3) & M64
    assert value_of(lddw(0, -7), alu("mod", 0, None, 2, off=1)) == (-1) & M64
    assert value_of(lddw(0, 7), alu("mod", 0, None, -2, off=1)) == 1


def test_32_bit_results_are_zero_extended():
    assert value_of(lddw(0, M64), alu("add", 0, None, 1, wide=False)) == 0
    assert value_of(lddw(0, 0xFFFF_FFFF_0000_0001), alu("mov", 0, 0, wide=False)) == 1
    assert value_of(lddw(0, 0xFFFF_FFFF_8000_0000), alu("neg", 0, wide=False)) == 0x8000_0000
    assert value_of(lddw(0, 0xFFFF_FFFF_FFFF_FFFF), alu("arsh", 0, None, 4, wide=False)) == 0xFFFF_FFFF


def test_shift_amounts_are_masked():
    assert value_of(mov(0, 1), mov(1, 65), alu("lsh", 0, 1)) == 2
    assert value_of(mov(0, 1), mov(1, 33), alu("lsh", 0, 1, wide=False)) == 2
    assert value_of(lddw(0, 1 << 63), mov(1, 127), alu("arsh", 0, 1)) == M64


def test_immediates_are_sign_extended_in_64_bit_operations():
    assert value_of(mov(0, -1)) == M64
    assert value_of(mov(0, -1, wide=False)) == 0xFFFF_FFFF
    assert value_of(mov(0, 0), alu("or", 0, None, -2)) == M64 - 1


def test_sign_extending_moves_and_loads():
    assert value_of(mov(1, 0x80), alu("mov", 0, 1, off=8)) == M64 - 0x7F
    assert value_of(mov(1, 0x8000), alu("mov", 0, 1, wide=False, off=16)) == 0xFFFF_8000
    assert value_of(lddw(1, 0x8000_0000), alu("mov", 0, 1, off=32)) == 0xFFFF_FFFF_8000_0000
    assert value_of(st(1, 10, -1, 0xF0), ldx(1, 0, 10, -1, signed=True)) == M64 - 0x0F


@pytest.mark.parametrize("opcode,width,value,expected", [
    (0xD4, 16, 0x1122334455667788, 0x7788),  # le16 truncates
    (0xD4, 32, 0x1122334455667788, 0x55667788),
    (0xD4, 64, 0x1122334455667788, 0x1122334455667788),
    (0xDC, 16, 0x1122334455667788, 0x8877),  # be16 swaps and truncates
    (0xDC, 32, 0x1122334455667788, 0x88776655),
    (0xDC, 64, 0x1122334455667788, 0x8877665544332211),
    (0xD7, 16, 0x1122334455667788, 0x8877),  # bswap (v4)
    (0xD7, 64, 0x1122334455667788, 0x8877665544332211),
])
def test_byte_swaps(opcode, width, value, expected):
    assert value_of(lddw(0, value), I(opcode, 0, 0, 0, width)) == expected


def test_jmp32_compares_low_halves_signed_and_unsigned():
    # low half 0xFFFFFFFF is -1 signed (< 0) and huge unsigned (> 0)
    code = [lddw(1, 0x1_FFFF_FFFF), mov(0, 0), jmp("jslt", 1, 1, imm=0, wide=False), EXIT, mov(0, 1), EXIT]
    assert run_both(code) == 1
    code = [lddw(1, 0x1_FFFF_FFFF), mov(0, 0), jmp("jgt", 1, 1, imm=0, wide=False), EXIT, mov(0, 1), EXIT]
    assert run_both(code) == 1


def test_atomics_fetch_and_cmpxchg():
    code = [
        st(8, 10, -8, 10), mov(1, 5), atomic(8, 10, -8, 1, 0x01),  # fetch_add: r1 = 10, mem = 15
        mov(2, 15), mov(0, 15), atomic(8, 10, -8, 2, 0xF1),        # cmpxchg equal: mem = 15 (r2), r0 = 15
        mov(3, 99), atomic(4, 10, -8, 3, 0xE1),                    # xchg32: r3 = 15, mem low = 99
        ldx(8, 0, 10, -8), alu("add", 0, 1), alu("add", 0, 3), EXIT,
    ]
    assert run_both(code) == 99 + 10 + 15


# --- random programs: both engines must agree exactly ---------------------------------------------


def _outcome(code, engine):
    """(r0 or the fault message, the stack, instructions executed) of a run."""
    vm = VM(engine=engine)
    prog = vm.load(code)
    try:
        r0 = vm.execute(prog)
    except VMFault as exc:
        r0 = (exc.pc, str(exc))
    return r0, bytes(vm.stack_regions[0].buffer), vm.last_instructions


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=hs.one_of(programs(packet=True), programs(loop=True, packet=True)), regs=register_values,
       stack=stack_values)
def test_random_programs_agree_between_engines(body, regs, stack):
    code = xdp_wrapper(body, regs, stack)
    outcomes = []
    for engine in ENGINES:
        vm = VM(engine=engine)
        result = vm.load(code, type=ProgType.XDP).test_run(bytes(range(PACKET_SIZE)))
        outcomes.append((result.retval, result.data_out, vm.last_instructions))
    assert outcomes[0] == outcomes[1]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=programs(max_len=12), regs=register_values, stack=stack_values,
       access=hs.tuples(hs.sampled_from([1, 2, 4, 8]), hs.integers(0, 9), hs.integers(-600, 600), hs.booleans()))
def test_faults_agree_between_engines(body, regs, stack, access):
    """A load or store through an arbitrary register: both engines fault at the same instruction
    with the same message, or both succeed."""
    size, reg, off, store = access
    probe = stx(size, reg, off, 1) if store else ldx(size, 0, reg, off)
    code = with_prologue(body, regs, stack) + [mov(5, src=10), alu("add", 5, None, -256), probe, EXIT]
    assert _outcome(code, "interpreter") == _outcome(code, "compiled")


# --- calls, tail calls, callx ------------------------------------------------------------------------


def test_bpf_to_bpf_call_preserves_r6_to_r9_and_gets_its_own_stack():
    code = [
        mov(6, 6), mov(7, 7), mov(8, 8), mov(9, 9), st(8, 10, -8, 1234), mov(1, 10), mov(2, 20),
        call_local(8),
        jmp("jne", 6, 5, imm=6), jmp("jne", 9, 4, imm=9),
        ldx(8, 1, 10, -8), jmp("jne", 1, 2, imm=1234),
        alu("add", 0, 0), EXIT,
        mov(0, -1), EXIT,
        # callee: r0 = r1 + r2, clobbers r6-r9 and its own stack slot
        mov(6, 0), mov(9, 0), st(8, 10, -8, 0), mov(0, src=1), alu("add", 0, 2), EXIT,
    ]
    assert run_both(code) == 60


def test_recursion_stops_at_eight_frames():
    code = [call_local(-1), EXIT]
    for engine in ENGINES:
        vm = VM(engine=engine)
        with pytest.raises(VMFault, match="call depth exceeds 8 frames"):
            vm.execute(vm.load(code))


def test_budget_stops_runaway_loop_in_both_engines():
    code = [mov(0, 0), alu("add", 0, None, 1), ja(-2), EXIT]
    for engine in ENGINES:
        vm = VM(engine=engine, budget=10_000)
        with pytest.raises(BudgetExceeded, match="instructions"):
            vm.execute(vm.load(code))


def test_unwind_helper_stops_the_program_when_it_returns_zero():
    code = [mov(1, 0), call(5), mov(0, 2), EXIT]
    for engine in ENGINES:
        vm = VM(engine=engine, helpers=unwind_helper_registry())
        assert vm.execute(vm.load(code)) == 0
        assert vm.execute(vm.load([mov(1, 7), call(5), mov(0, 2), EXIT])) == 2


def test_callx_to_a_function_pointer_and_to_a_helper_id():
    # slots: lddw 0-1, mov 2, callx 3, exit 4, exit 5, function at slot 6 = 0 + 1 + 5 (as for a call)
    code = [
        I(0x18, 2, 4, 0, 5), mov(1, 20), I(0x8D, 2, 0, 0, 0), EXIT,
        EXIT,
        mov(0, src=1), alu("add", 0, None, 22), EXIT,
    ]
    assert run_both(code) == 42
    vm = VM(helpers=unwind_helper_registry())
    assert vm.execute(vm.load([mov(1, -1), mov(2, 5), I(0x8D, 2, 0, 0, 0), mov(0, 2), EXIT])) == 2


def test_tail_call_runs_the_target_and_counts_at_most_33():
    for engine in ENGINES:
        vm = VM(engine=engine)
        progs = vm.create_map(3, 4, 4, 2, name="jumps")
        # target: r0 = 42
        target = vm.load([mov(0, 42), EXIT], name="target")
        # entry: tail call index 0, fall back to 7
        entry = vm.load([I(0x18, 2, 1, 0, progs.fd), mov(3, 0), call(12), mov(0, 7), EXIT], name="entry")
        assert vm.execute(entry) == 7  # empty slot: the program continues
        progs[0] = target
        assert vm.execute(entry) == 42
        # a program that tail-calls itself forever stops after 33 tail calls and continues
        counter = vm.create_map(2, 4, 8, 1, name="count")
        loop = vm.load([
            mov(6, 1),
            I(0x18, 1, 1, 0, counter.fd), st(4, 10, -4, 0), mov(2, src=10), alu("add", 2, None, -4), call(1),
            jmp("jeq", 0, 1, imm=0), atomic(8, 0, 0, 6, 0x00),
            I(0x18, 2, 1, 0, progs.fd), mov(3, 1), call(12), mov(0, 0), EXIT,
        ], name="loop")
        progs[1] = loop
        vm.execute(loop)
        assert counter[0] == (34).to_bytes(8, "little")


# --- checks before running ---------------------------------------------------------------------------


@pytest.mark.parametrize("code,message", [
    ([ja(5), EXIT], "outside the program"),
    ([mov(0, 1)], "does not end with exit"),
    ([call(999_999), EXIT], "helper #999999"),
    ([mov(10, 1), EXIT], "frame pointer.*read-only"),
    ([lddw(0, 1), I(0x05, 0, 0, -2, 0), EXIT], "middle of an lddw"),
    ([I(0x85, 0, 2, 0, 1), EXIT], "kfuncs"),
    ([I(0x18, 1, 1, 0, 12345), EXIT], "map fd 12345"),
    ([call_local(2), jmp("jeq", 1, 2, imm=0), EXIT, mov(0, 0), EXIT], "leaves the function"),
    ([], "no instructions"),
])
def test_bad_programs_are_refused_before_running(code, message):
    with pytest.raises(VMError, match=message):
        VM().load(code)


def test_malformed_bytecode_is_an_instruction_error():
    with pytest.raises(InstructionError):
        VM().load(b"\x95\x00\x00\x00")
    with pytest.raises(InstructionError, match="unknown opcode"):
        VM().load(bytes.fromhex("ff00000000000000 9500000000000000".replace(" ", "")))
