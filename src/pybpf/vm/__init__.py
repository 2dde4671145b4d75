"""Userspace eBPF runtime: interpreter, memory model, maps, helpers."""
