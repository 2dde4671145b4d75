"""ObjectSpec: programs, maps, relocations, CO-RE, without kernel I/O."""
