"""The eBPF instruction set: one Instruction type, the opcode table, programs, text.

Encode/decode: :class:`Instruction`, :class:`Program`.  Text:
:func:`disassemble`, :func:`format_instruction` (and :func:`format_llvm`,
:func:`format_kernel`, :func:`objdump_text`), :func:`assemble`.  Facts:
:data:`OPCODES`, :func:`cpu_version`, :func:`conformance_group`,
:func:`helper_name` / :func:`helper_id`.  The conformance suite's test files:
:mod:`pybpf.isa.conformance`.
"""

from .._lazy import lazy_exports as _lazy_exports

_EXPORTS = {
    ".assembler": ("assemble", "assemble_listing"),
    ".disassembler": ("disassemble", "format_instruction", "objdump_section"),
    ".helpers": ("HELPER_COUNT", "helper_id", "helper_name"),
    ".instruction": ("SLOT_SIZE", "Instruction", "Program"),
    ".kernel_syntax": ("bpftool_imm_name", "format_kernel"),
    ".llvm_syntax": ("format_llvm", "objdump_text"),
    ".opcodes": ("CALL", "CALLX", "EXIT", "JA", "JA32", "LD_IMM64", "MAY_GOTO", "OPCODES", "AluOp", "AtomicOp",
                 "Class", "Group", "JmpOp", "Kind", "Mode", "OpInfo", "PseudoCall", "PseudoLoad", "Size", "Source",
                 "conformance_group", "cpu_version"),
}
# Loading an object needs Instruction and Program, not the assembler's parser tables (~14 ms to import).
__getattr__, __dir__ = _lazy_exports(__name__, globals(), _EXPORTS)

__all__ = [
    "CALL", "CALLX", "EXIT", "HELPER_COUNT", "JA", "JA32", "LD_IMM64", "MAY_GOTO", "OPCODES", "SLOT_SIZE",
    "AluOp", "AtomicOp", "Class", "Group", "Instruction", "JmpOp", "Kind", "Mode", "OpInfo", "Program",
    "PseudoCall", "PseudoLoad", "Size", "Source",
    "assemble", "assemble_listing", "bpftool_imm_name", "conformance_group", "cpu_version", "disassemble",
    "format_instruction", "format_kernel", "format_llvm", "helper_id", "helper_name", "objdump_section",
    "objdump_text",
]
