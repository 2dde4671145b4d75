"""The eBPF instruction set: one Instruction type, the opcode table, programs."""

from .instruction import SLOT_SIZE, Instruction, Program
from .opcodes import (
    CALL,
    CALLX,
    EXIT,
    JA,
    JA32,
    LD_IMM64,
    OPCODES,
    AluOp,
    AtomicOp,
    Class,
    JmpOp,
    Kind,
    Mode,
    OpInfo,
    PseudoCall,
    PseudoLoad,
    Size,
    Source,
)

__all__ = [
    "CALL", "CALLX", "EXIT", "JA", "JA32", "LD_IMM64", "OPCODES", "SLOT_SIZE",
    "AluOp", "AtomicOp", "Class", "Instruction", "JmpOp", "Kind", "Mode", "OpInfo",
    "Program", "PseudoCall", "PseudoLoad", "Size", "Source",
]
