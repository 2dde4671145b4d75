"""The `pybpf` command line."""
