"""The reference: the installed libpcap (what tcpdump uses), called through ctypes.

Only the tests and the benchmark use this; pybpf itself never loads libpcap.
"""

from __future__ import annotations

import ctypes
import ctypes.util

_NAMES = ("libpcap.so.0.8", "libpcap.so.1", ctypes.util.find_library("pcap"))


def _load():
    for name in _NAMES:
        if not name:
            continue
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    return None


LIB = _load()
MISSING = None if LIB is not None else "libpcap is not installed (apt-get install libpcap0.8)"


class BpfInsn(ctypes.Structure):
    _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte), ("k", ctypes.c_uint32)]


class BpfProgram(ctypes.Structure):
    _fields_ = [("bf_len", ctypes.c_uint), ("bf_insns", ctypes.POINTER(BpfInsn))]


if LIB is not None:
    LIB.pcap_open_dead.restype = ctypes.c_void_p
    LIB.pcap_open_dead.argtypes = [ctypes.c_int, ctypes.c_int]
    LIB.pcap_compile.argtypes = [ctypes.c_void_p, ctypes.POINTER(BpfProgram), ctypes.c_char_p, ctypes.c_int,
                                 ctypes.c_uint32]
    LIB.pcap_geterr.restype = ctypes.c_char_p
    LIB.pcap_geterr.argtypes = [ctypes.c_void_p]
    LIB.pcap_freecode.argtypes = [ctypes.POINTER(BpfProgram)]
    LIB.pcap_close.argtypes = [ctypes.c_void_p]
    LIB.bpf_filter.restype = ctypes.c_uint
    LIB.bpf_filter.argtypes = [ctypes.POINTER(BpfInsn), ctypes.c_char_p, ctypes.c_uint, ctypes.c_uint]
    LIB.pcap_datalink_name_to_val.argtypes = [ctypes.c_char_p]
    LIB.lib_version = LIB.pcap_lib_version
    LIB.pcap_lib_version.restype = ctypes.c_char_p

_DEAD: dict[tuple[int, int], int] = {}


class ReferenceError(Exception):
    """libpcap refused the expression; the message is pcap_geterr()'s."""


def dlt(name: str) -> int:
    return LIB.pcap_datalink_name_to_val(name.encode())


def version() -> str:
    return LIB.pcap_lib_version().decode()


def compile(expr: str, linktype: int = 1, snaplen: int = 262144, optimize: bool = True,
            netmask: int = 0xFFFFFFFF) -> list[tuple[int, int, int, int]]:
    key = (linktype, snaplen)
    if key not in _DEAD:
        _DEAD[key] = LIB.pcap_open_dead(linktype, snaplen)
    p = _DEAD[key]
    prog = BpfProgram()
    if LIB.pcap_compile(p, ctypes.byref(prog), expr.encode(), int(optimize), netmask) != 0:
        raise ReferenceError(LIB.pcap_geterr(p).decode(errors="replace"))
    out = [(prog.bf_insns[i].code, prog.bf_insns[i].jt, prog.bf_insns[i].jf, prog.bf_insns[i].k)
           for i in range(prog.bf_len)]
    LIB.pcap_freecode(ctypes.byref(prog))
    return out


def run(program, packet: bytes, wirelen: int | None = None) -> int:
    """libpcap's bpf_filter: the snap length the program returns for a packet (0 = reject)."""
    return run_many(program, [packet], wirelen_extra=0 if wirelen is None else wirelen - len(packet))[0]


def run_many(program, packets: list[bytes], wirelen_extra: int = 0) -> list[int]:
    """bpf_filter over many packets with the program converted once."""
    arr = (BpfInsn * len(program))(*[BpfInsn(*i) for i in program])
    f = LIB.bpf_filter
    return [f(arr, p, len(p) + wirelen_extra, len(p)) for p in packets]
