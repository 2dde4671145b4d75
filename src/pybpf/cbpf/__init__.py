"""Classic BPF: instructions, interpreter, pcap filter compiler, seccomp."""
