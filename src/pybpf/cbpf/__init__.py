"""Classic BPF: instructions, interpreter, pcap filter compiler, seccomp.

Live capture is in :mod:`pybpf.cbpf.capture`, seccomp policies in
:mod:`pybpf.cbpf.seccomp` (both Linux-only, imported on demand).
"""

from .insn import CInsn
from .machine import Machine, PacketMeta, ethernet_meta, run_filter
from .pcap import CaptureReader, Packet, PcapngWriter, PcapWriter, open_writer, read_packets
from .to_ebpf import to_ebpf
from .validate import validate
