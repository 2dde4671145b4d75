"""BPF ELF objects (and executables, for uprobes): sections, symbols, relocations."""

from .reader import ELFFile, Relocation, Section, Segment, Symbol

__all__ = ["ELFFile", "Relocation", "Section", "Segment", "Symbol"]
