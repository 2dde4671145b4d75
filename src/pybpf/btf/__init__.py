"""BTF and BTF.ext: read, write, look up, dump as C."""
