"""Instruction set: encode, decode, assemble, disassemble."""
