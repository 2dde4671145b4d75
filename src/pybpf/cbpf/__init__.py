"""Classic BPF: instructions, interpreter, pcap filter compiler, seccomp."""

from .compiler import compile

__all__ = ["compile"]
