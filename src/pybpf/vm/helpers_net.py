"""Packet helpers: XDP head/tail/meta adjustment, skb load/store, checksums, redirects.

Checksum arithmetic is the kernel's one's-complement arithmetic on raw
(network byte order) memory words, so results match byte for byte.
"""

from __future__ import annotations

import errno

from ..errors import VMFault
from .constants import MapType, ProgType, XDPAction
from .context import SkbContext, XDPContext
from .helpers import helper, neg, run_state

TC_ACT_SHOT = 2
TC_ACT_REDIRECT = 7
BPF_F_INGRESS = 1
BPF_F_RECOMPUTE_CSUM = 1
BPF_F_INVALIDATE_HASH = 2
BPF_F_HDR_FIELD_MASK = 0xF
BPF_F_PSEUDO_HDR = 0x10
BPF_F_MARK_MANGLED_0 = 0x20
BPF_F_MARK_ENFORCE = 0x40
BPF_F_IPV6 = 0x80
CSUM_MANGLED_0 = 0xFFFF


def _s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >> 31 else v


def _xdp(vm, address: int, what: str) -> XDPContext:
    ctx = vm.context_at(address, what)
    if not isinstance(ctx, XDPContext):
        raise VMFault(f"{what} needs an XDP context")
    return ctx


def _skb(vm, address: int, what: str) -> SkbContext:
    ctx = vm.context_at(address, what)
    if not isinstance(ctx, SkbContext):
        raise VMFault(f"{what} needs a socket buffer (__sk_buff) context")
    return ctx


@helper("xdp_adjust_head", 2)
def xdp_adjust_head(vm, ctx: int, delta: int) -> int:
    return _xdp(vm, ctx, "bpf_xdp_adjust_head").adjust_head(_s32(delta))


@helper("xdp_adjust_tail", 2)
def xdp_adjust_tail(vm, ctx: int, delta: int) -> int:
    return _xdp(vm, ctx, "bpf_xdp_adjust_tail").adjust_tail(_s32(delta))


@helper("xdp_adjust_meta", 2)
def xdp_adjust_meta(vm, ctx: int, delta: int) -> int:
    return _xdp(vm, ctx, "bpf_xdp_adjust_meta").adjust_meta(_s32(delta))


@helper("xdp_get_buff_len", 1)
def xdp_get_buff_len(vm, ctx: int) -> int:
    x = _xdp(vm, ctx, "bpf_xdp_get_buff_len")
    return x.data_end - x.data


@helper("skb_load_bytes", 4)
def skb_load_bytes(vm, ctx: int, offset: int, to: int, length: int) -> int:
    skb = _skb(vm, ctx, "bpf_skb_load_bytes")
    offset &= 0xFFFFFFFF
    length &= 0xFFFFFFFF
    out = vm.memory.view(to, length, write=True, what="bpf_skb_load_bytes buffer")
    if offset > 0xFFFF or offset + length > skb.length:
        out[:] = bytes(length)
        return neg(errno.EFAULT)
    start = skb.data + offset
    out[:] = skb.buffer[start:start + length]
    return 0


@helper("skb_store_bytes", 5)
def skb_store_bytes(vm, ctx: int, offset: int, frm: int, length: int, flags: int) -> int:
    skb = _skb(vm, ctx, "bpf_skb_store_bytes")
    offset &= 0xFFFFFFFF
    length &= 0xFFFFFFFF
    if flags & ~(BPF_F_RECOMPUTE_CSUM | BPF_F_INVALIDATE_HASH):
        return neg(errno.EINVAL)
    data = vm.memory.load(frm, length, "bpf_skb_store_bytes data")
    if offset > 0x7FFFFFFF or offset + length > skb.length:
        return neg(errno.EFAULT)
    start = skb.data + offset
    skb.buffer[start:start + length] = data
    return 0


# --- checksums ---------------------------------------------------------------------------------------


def _add32(a: int, b: int) -> int:
    s = (a & 0xFFFFFFFF) + (b & 0xFFFFFFFF)
    return (s & 0xFFFFFFFF) + (s >> 32)


def _fold(csum: int) -> int:
    s = (csum & 0xFFFF) + (csum >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def _add16(a: int, b: int) -> int:
    s = (a + b) & 0xFFFF
    return (s + (s < b)) & 0xFFFF


def _replace(old_sum: int, size: int, frm: int, to: int) -> int:
    """The new 16-bit checksum after a field of ``size`` (0: ``to`` is a precomputed diff) changed."""
    if size == 2:
        return ~_add16(_add16(~old_sum & 0xFFFF, ~frm & 0xFFFF), to & 0xFFFF) & 0xFFFF
    if size == 4:
        tmp = _add32(~old_sum & 0xFFFFFFFF, ~frm & 0xFFFFFFFF)
        return _fold(_add32(tmp, to))
    return _fold(_add32(to, ~old_sum & 0xFFFFFFFF))


def _csum_field(skb: SkbContext, offset: int) -> int | None:
    offset &= 0xFFFFFFFF
    if offset > 0xFFFF or offset & 1 or offset + 2 > skb.length:
        return None
    return skb.data + offset


@helper("l3_csum_replace", 5)
def l3_csum_replace(vm, ctx: int, offset: int, frm: int, to: int, flags: int) -> int:
    skb = _skb(vm, ctx, "bpf_l3_csum_replace")
    if flags & ~BPF_F_HDR_FIELD_MASK:
        return neg(errno.EINVAL)
    where = _csum_field(skb, offset)
    if where is None:
        return neg(errno.EFAULT)
    size = flags & BPF_F_HDR_FIELD_MASK
    if size not in (0, 2, 4) or (size == 0 and frm):
        return neg(errno.EINVAL)
    old = int.from_bytes(skb.buffer[where:where + 2], "little")
    skb.buffer[where:where + 2] = _replace(old, size, frm, to).to_bytes(2, "little")
    return 0


@helper("l4_csum_replace", 5)
def l4_csum_replace(vm, ctx: int, offset: int, frm: int, to: int, flags: int) -> int:
    skb = _skb(vm, ctx, "bpf_l4_csum_replace")
    if flags & ~(BPF_F_MARK_MANGLED_0 | BPF_F_MARK_ENFORCE | BPF_F_PSEUDO_HDR | BPF_F_HDR_FIELD_MASK | BPF_F_IPV6):
        return neg(errno.EINVAL)
    where = _csum_field(skb, offset)
    if where is None:
        return neg(errno.EFAULT)
    size = flags & BPF_F_HDR_FIELD_MASK
    if size not in (0, 2, 4) or (size == 0 and frm):
        return neg(errno.EINVAL)
    old = int.from_bytes(skb.buffer[where:where + 2], "little")
    mangled_zero = flags & BPF_F_MARK_MANGLED_0
    if mangled_zero and not flags & BPF_F_MARK_ENFORCE and old == 0:
        return 0
    new = _replace(old, size, frm, to)
    if mangled_zero and new == 0:
        new = CSUM_MANGLED_0
    skb.buffer[where:where + 2] = new.to_bytes(2, "little")
    return 0


def _csum_partial(data: bytes, seed: int) -> int:
    """The 32-bit one's-complement sum of little-endian words plus ``seed`` (csum_partial on x86-64)."""
    total = seed & 0xFFFFFFFF
    for i in range(0, len(data), 4):
        total += int.from_bytes(data[i:i + 4], "little")
    while total >> 32:
        total = (total & 0xFFFFFFFF) + (total >> 32)
    return total


def _from32to16(s: int) -> int:
    s = (s + (((s >> 16) | (s << 16)) & 0xFFFFFFFF)) & 0xFFFFFFFF
    return s >> 16


@helper("csum_diff", 5)
def csum_diff(vm, frm: int, from_size: int, to: int, to_size: int, seed: int) -> int:
    """Checksum of the change from ``from`` to ``to`` folded to 16 bits, as Linux 6.13+ computes it."""
    from_size &= 0xFFFFFFFF
    to_size &= 0xFFFFFFFF
    seed &= 0xFFFFFFFF
    if (from_size | to_size) % 4 or from_size + to_size > 512:
        return neg(errno.EINVAL)
    old = vm.memory.load(frm, from_size, "bpf_csum_diff from") if from_size else b""
    new = vm.memory.load(to, to_size, "bpf_csum_diff to") if to_size else b""
    if from_size and to_size:
        return _from32to16(_add32(_csum_partial(new, seed), ~_csum_partial(old, 0) & 0xFFFFFFFF))
    if to_size:
        return _from32to16(_csum_partial(new, seed))
    if from_size:
        return _from32to16(~_csum_partial(old, ~seed & 0xFFFFFFFF) & 0xFFFFFFFF)
    return seed


# --- redirects -------------------------------------------------------------------------------------------


def _redirect_verdict(run) -> tuple[int, int]:
    """(success verdict, failure verdict) for the running program's type."""
    if run.program.type == ProgType.XDP:
        return XDPAction.REDIRECT, XDPAction.ABORTED
    return TC_ACT_REDIRECT, TC_ACT_SHOT


@helper("redirect", 2)
def redirect(vm, ifindex: int, flags: int) -> int:
    run = run_state(vm)
    ok, bad = _redirect_verdict(run)
    allowed = BPF_F_INGRESS if run.program.type != ProgType.XDP else 0
    if flags & ~allowed:
        return bad
    run.redirect = (ifindex & 0xFFFFFFFF, flags)
    return ok


@helper("redirect_map", 3)
def redirect_map(vm, map_ptr: int, key: int, flags: int) -> int:
    m = vm.map_at(map_ptr, "bpf_redirect_map")
    if m.type not in (MapType.DEVMAP, MapType.DEVMAP_HASH, MapType.CPUMAP, MapType.XSKMAP):
        raise VMFault(f"bpf_redirect_map: {m.describe()} is not a devmap, cpumap or xskmap")
    run = run_state(vm)
    key_bytes = (key & 0xFFFFFFFF).to_bytes(4, "little")
    if m._find(key_bytes, run.cpu, True) is None:
        return flags & 0x3  # the low bits of flags are the verdict when the slot is empty
    run.redirect = (m, key & 0xFFFFFFFF)
    return XDPAction.REDIRECT
