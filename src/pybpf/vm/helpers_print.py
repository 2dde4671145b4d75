"""bpf_trace_printk, bpf_trace_vprintk and bpf_snprintf with the kernel's format rules.

The kernel accepts only a subset of printf: ``%d %i %u %x %X`` with optional
``l``/``ll``, ``%c``, ``%s``, ``%p`` (plain, ``K``, ``x``, ``s``, ``S``, ``B``,
``i4``/``I4``/``i6``/``I6``, ``ks``/``us``), flags ``0 + - space`` and a width;
no precision.  Any other conversion, a conversion without an argument, or a
non-printable byte makes the helper fail with -EINVAL and print nothing, as in
the kernel.  Pointers are VM addresses: ``%s`` and the IP formats read VM
memory (an unreadable string prints empty, an unreadable address as zeros).
"""

from __future__ import annotations

import errno
import sys
from ..errors import VMFault
from .helpers import helper, neg

MAX_BPRINTF_BUF = 1024
MAX_BPRINTF_VARARGS = 12
M64 = (1 << 64) - 1


class FormatError(ValueError):
    """The format string breaks the kernel's rules (the helper returns -EINVAL)."""


def _read_string(vm, address: int) -> bytes:
    try:
        return vm.memory.load_cstr(address, MAX_BPRINTF_BUF - 1)
    except VMFault:
        return b""


def _read_bytes(vm, address: int, size: int) -> bytes:
    try:
        return vm.memory.load(address, size)
    except VMFault:
        return bytes(size)


def _pad(text: str, width: int, left: bool, zero: bool) -> str:
    if len(text) >= width:
        return text
    if left:
        return text.ljust(width)
    if zero:
        sign = text[0] if text[:1] in "+- " else ""
        return sign + text[len(sign):].rjust(width - len(sign), "0")
    return text.rjust(width)


def format_bprintf(vm, fmt: bytes, args: list[int]) -> str:
    """Format ``fmt`` (without its NUL) with raw 64-bit ``args`` as the kernel's bstr_printf would."""
    out: list[str] = []
    i, n, used = 0, len(fmt), 0
    while i < n:
        c = fmt[i]
        if not (32 <= c < 127 or c in b" \t\n\r\x0b\x0c"):
            raise FormatError(f"byte {c:#x} at offset {i} is not printable ASCII")
        if c != ord("%"):
            out.append(chr(c))
            i += 1
            continue
        if i + 1 < n and fmt[i + 1] == ord("%"):
            out.append("%")
            i += 2
            continue
        if used >= len(args):
            raise FormatError(f"conversion at offset {i} has no argument (at most {len(args)})")
        start = i
        i += 1
        flags = ""
        while i < n and chr(fmt[i]) in "0+- ":
            flags += chr(fmt[i])
            i += 1
        width = 0
        if i < n and ord("1") <= fmt[i] <= ord("9"):
            j = i
            while i < n and ord("0") <= fmt[i] <= ord("9"):
                i += 1
            width = int(fmt[j:i])
        left, zero = "-" in flags, "0" in flags
        conv = chr(fmt[i]) if i < n else "\0"
        nxt = chr(fmt[i + 1]) if i + 1 < n else "\0"
        arg = args[used]
        used += 1
        if conv == "p":
            text, i = _pointer(vm, fmt, i, arg)
        elif conv == "s":
            if nxt not in "\0 \t\n\r" and not _ispunct(nxt):
                raise FormatError(f"%s at offset {start} must be followed by a space, punctuation or the end")
            text = _read_string(vm, arg).decode("latin-1")
            i += 1
        elif conv == "c":
            text = chr(arg & 0xFF)
            i += 1
        else:
            size = 4
            if conv == "l":
                size = 8
                i += 1
                if i < n and fmt[i] == ord("l"):
                    i += 1
            conv = chr(fmt[i]) if i < n else "\0"
            if conv not in "diuxX":
                raise FormatError(f"unsupported conversion %{fmt[start + 1:i + 1].decode('latin-1')} at offset "
                                  f"{start} (the kernel accepts %d %i %u %x %X %c %s %p with l/ll)")
            i += 1
            value = arg & ((1 << (8 * size)) - 1)
            if conv in "di":
                if value >> (8 * size - 1):
                    value -= 1 << (8 * size)
                text = str(value)
                if value >= 0 and "+" in flags:
                    text = "+" + text
                elif value >= 0 and " " in flags:
                    text = " " + text
            elif conv == "u":
                text = str(value)
            else:
                text = f"{value:x}" if conv == "x" else f"{value:X}"
        out.append(_pad(text, width, left, zero and conv not in "sc"))
    return "".join(out)


def _ispunct(ch: str) -> bool:
    return 33 <= ord(ch) < 127 and not ch.isalnum()


def _pointer(vm, fmt: bytes, i: int, value: int) -> tuple[str, int]:
    """Format a %p conversion starting at fmt[i] == 'p'; returns (text, index after it)."""
    n = len(fmt)
    nxt = chr(fmt[i + 1]) if i + 1 < n else "\0"
    after = chr(fmt[i + 2]) if i + 2 < n else "\0"
    if nxt in "ku" and after == "s":
        return _read_string(vm, value).decode("latin-1"), i + 3
    if nxt == "\0" or nxt.isspace() or _ispunct(nxt) or nxt in "KxsSB":
        # No kernel symbols in the VM: plain, K, x, s, S and B all print the address.
        skip = 2 if nxt in "KxsSB" else 1
        return f"{value & M64:016x}" if nxt != "x" else f"{value & M64:x}", i + skip
    if nxt in "iI" and after in "46":
        if after == "4":
            octets = _read_bytes(vm, value, 4)
            text = ".".join(f"{o:03d}" if nxt == "i" else str(o) for o in octets)
        else:
            raw = _read_bytes(vm, value, 16)
            groups = [raw[k:k + 2].hex() for k in range(0, 16, 2)]
            text = "".join(groups) if nxt == "i" else ":".join(groups)
        return text, i + 3
    raise FormatError(f"unsupported pointer conversion %p{nxt} (the kernel accepts %pK %px %ps %pS %pB %pks %pus "
                      "%pi4 %pI4 %pi6 %pI6)")


def _format_string(vm, fmt_ptr: int, fmt_size: int | None) -> bytes:
    """The format bytes up to the NUL, which must fall within ``fmt_size`` bytes."""
    if fmt_size is None:
        return vm.memory.load_cstr(fmt_ptr, 1 << 16, "format string")
    raw = vm.memory.load(fmt_ptr, fmt_size, "format string")
    nul = raw.find(0)
    if nul < 0:
        raise FormatError("the format string has no terminating NUL within fmt_size bytes")
    return raw[:nul]


def _emit(vm, text: str) -> None:
    stream = vm.trace_output if vm.trace_output is not None else sys.stderr
    stream.write(text if text.endswith("\n") else text + "\n")


def _printk(vm, fmt_ptr: int, fmt_size: int | None, args: list[int]) -> int:
    try:
        fmt = _format_string(vm, fmt_ptr, fmt_size)
        text = format_bprintf(vm, fmt, args)
    except FormatError:
        return neg(errno.EINVAL)
    _emit(vm, text[:MAX_BPRINTF_BUF - 1])
    return len(text)


@helper("trace_printk", 5)
def trace_printk(vm, fmt: int, fmt_size: int, a1: int, a2: int, a3: int) -> int:
    return _printk(vm, fmt, fmt_size & 0xFFFFFFFF, [a1, a2, a3])


def _varargs(vm, args_ptr: int, data_len: int, what: str) -> list[int] | None:
    data_len &= 0xFFFFFFFF
    if data_len % 8 or data_len > MAX_BPRINTF_VARARGS * 8 or (data_len and not args_ptr):
        return None
    raw = vm.memory.load(args_ptr, data_len, f"{what} arguments") if data_len else b""
    return [int.from_bytes(raw[k:k + 8], "little") for k in range(0, data_len, 8)]


@helper("trace_vprintk", 4)
def trace_vprintk(vm, fmt: int, fmt_size: int, args_ptr: int, data_len: int) -> int:
    args = _varargs(vm, args_ptr, data_len, "bpf_trace_vprintk")
    if args is None:
        return neg(errno.EINVAL)
    return _printk(vm, fmt, fmt_size & 0xFFFFFFFF, args)


@helper("snprintf", 5)
def snprintf(vm, out: int, out_size: int, fmt: int, args_ptr: int, data_len: int) -> int:
    args = _varargs(vm, args_ptr, data_len, "bpf_snprintf")
    if args is None:
        return neg(errno.EINVAL)
    out_size &= 0xFFFFFFFF
    try:
        text = format_bprintf(vm, _format_string(vm, fmt, None), args).encode("latin-1")
    except FormatError:
        return neg(errno.EINVAL)
    if out_size:
        data = text[:out_size - 1] + b"\0"
        vm.memory.store(out, data, "bpf_snprintf output")
    return len(text) + 1


__all__ = ["FormatError", "format_bprintf"]
