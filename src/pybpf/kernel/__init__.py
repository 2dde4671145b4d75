"""Kernel backend: the bpf() syscall, maps, programs, links, events."""
