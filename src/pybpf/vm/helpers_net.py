"""Packet helpers: XDP head/tail/meta adjustment, skb load/store, checksums, redirects.

Checksum arithmetic is the kernel's one's-complement arithmetic on raw
(network byte order) memory words, so results match byte for byte.
"""

from __future__ import annotations

import errno

from ..errors import VMFault
from .constants import MapType, ProgType, XDPAction
from .context import LOOPBACK_IFINDEX, SkbContext, XDPContext
from .helpers import helper, neg, run_state

TC_ACT_SHOT = 2
TC_ACT_REDIRECT = 7
BPF_F_INGRESS = 1
BPF_F_BROADCAST = 8  # bpf_redirect_map() on a devmap: to every device in it (an empty one too)
BPF_F_EXCLUDE_INGRESS = 16
XDP_ACTION_MASK = 3  # ABORTED DROP PASS TX: the verdict a failed bpf_redirect_map() returns
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


def _xdp_span(x: XDPContext, offset: int, length: int) -> int:
    """bpf_xdp_pointer()'s checks: the start of [offset, offset + length) in the buffer, or -errno.
    (The VM's XDP packets have no fragments: the span is in the linear part or out of the packet.)"""
    offset &= 0xFFFFFFFF
    length &= 0xFFFFFFFF
    if offset > 0xFFFF or length > 0xFFFF:
        return -errno.EFAULT
    if offset + length > x.data_end - x.data:
        return -errno.EINVAL
    return x.data + offset


@helper("xdp_load_bytes", 4)
def xdp_load_bytes(vm, ctx: int, offset: int, buf: int, length: int) -> int:
    x = _xdp(vm, ctx, "bpf_xdp_load_bytes")
    start = _xdp_span(x, offset, length)
    if start < 0:
        return neg(-start)
    out = vm.memory.view(buf, length, write=True, what="bpf_xdp_load_bytes buffer")
    out[:] = x.buffer[start:start + length]
    return 0


@helper("xdp_store_bytes", 4)
def xdp_store_bytes(vm, ctx: int, offset: int, buf: int, length: int) -> int:
    x = _xdp(vm, ctx, "bpf_xdp_store_bytes")
    start = _xdp_span(x, offset, length)
    if start < 0:
        return neg(-start)
    x.buffer[start:start + length] = vm.memory.load(buf, length, "bpf_xdp_store_bytes buffer")
    return 0


@helper("skb_pull_data", 2)
def skb_pull_data(vm, ctx: int, length: int) -> int:
    """Make ``length`` bytes (0: the linear part) direct-accessible: a test skb is linear and private,
    so this only fails (-ENOMEM, pskb_may_pull) when the packet is shorter."""
    skb = _skb(vm, ctx, "bpf_skb_pull_data")
    return neg(errno.ENOMEM) if (length & 0xFFFFFFFF) > skb.length else 0


@helper("skb_adjust_room", 4)
def skb_adjust_room(vm, ctx: int, len_diff: int, mode: int, flags: int) -> int:
    result = _skb(vm, ctx, "bpf_skb_adjust_room").adjust_room(_s32(len_diff), mode & 0xFFFFFFFF, flags)
    return neg(-result) if result < 0 else 0


@helper("skb_change_proto", 3)
def skb_change_proto(vm, ctx: int, proto: int, flags: int) -> int:
    skb = _skb(vm, ctx, "bpf_skb_change_proto")
    if flags:
        return neg(errno.EINVAL)
    result = skb.change_proto(proto & 0xFFFF)
    return neg(-result) if result < 0 else 0


BPF_TUNNEL_KEY_SIZE = 44  # sizeof(struct bpf_tunnel_key)
TUNNEL_KEY_OLD_SIZES = (8, 22, 24, 28)  # remote_ipv6[1], tunnel_ext, tunnel_label, local_ipv4: older layouts
BPF_F_TUNINFO_IPV6 = 1
TUNNEL_KEY_FLAGS = 0x1F  # TUNINFO_IPV6 ZERO_CSUM_TX DONT_FRAGMENT SEQ_NUMBER NO_TUNNEL_KEY


@helper("skb_set_tunnel_key", 4)
def skb_set_tunnel_key(vm, ctx: int, key: int, size: int, flags: int) -> int:
    """Give the skb tunnel metadata for a collect-metadata tunnel device; the checks are the kernel's."""
    skb = _skb(vm, ctx, "bpf_skb_set_tunnel_key")
    size &= 0xFFFFFFFF
    if flags & ~TUNNEL_KEY_FLAGS or size not in (BPF_TUNNEL_KEY_SIZE, *TUNNEL_KEY_OLD_SIZES):
        return neg(errno.EINVAL)
    raw = vm.memory.load(key, size, "bpf_skb_set_tunnel_key key").ljust(BPF_TUNNEL_KEY_SIZE, b"\0")
    tunnel_ext, tunnel_label = int.from_bytes(raw[22:24], "little"), int.from_bytes(raw[24:28], "little")
    if tunnel_ext or (tunnel_label and not flags & BPF_F_TUNINFO_IPV6):
        return neg(errno.EINVAL)
    skb.tunnel_key = (raw, flags)
    return 0


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
    devmap = m.type in (MapType.DEVMAP, MapType.DEVMAP_HASH)
    if flags & ~(XDP_ACTION_MASK | (BPF_F_BROADCAST | BPF_F_EXCLUDE_INGRESS if devmap else 0)):
        return XDPAction.ABORTED
    key_bytes = (key & 0xFFFFFFFF).to_bytes(4, "little")
    if m._find(key_bytes, run.cpu, True) is None and not flags & BPF_F_BROADCAST:
        return flags & XDP_ACTION_MASK  # the low bits of flags are the verdict when the slot is empty
    run.redirect = (m, key & 0xFFFFFFFF)
    return XDPAction.REDIRECT


# --- routing ---------------------------------------------------------------------------------------------

# The VM's network is a fresh namespace: the loopback device alone, no addresses, no routes and forwarding
# off (the kernel's built-in default), so bpf_fib_lookup answers what the kernel answers there.
BPF_FIB_LOOKUP_FLAGS = 0x3F  # DIRECT OUTPUT SKIP_NEIGH TBID SRC MARK
FIB_LOOKUP_SIZE = 64  # sizeof(struct bpf_fib_lookup)
BPF_FIB_LKUP_RET_NOT_FWDED = 4
BPF_FIB_LKUP_RET_FWD_DISABLED = 5
AF_INET, AF_INET6 = 2, 10


def _ipv6_never_forwarded(address: bytes) -> bool:
    """rt6_need_strict(): multicast, link-local and loopback addresses are never forwarded."""
    return address[0] == 0xFF or (address[0] == 0xFE and address[1] & 0xC0 == 0x80) or address == bytes(15) + b"\1"


@helper("fib_lookup", 4)
def fib_lookup(vm, ctx: int, params: int, plen: int, flags: int) -> int:
    if _s32(plen) < FIB_LOOKUP_SIZE or flags & ~BPF_FIB_LOOKUP_FLAGS & 0xFFFFFFFF:
        return neg(errno.EINVAL)
    raw = vm.memory.load(params, FIB_LOOKUP_SIZE, "bpf_fib_lookup params")
    family, ifindex = raw[0], int.from_bytes(raw[8:12], "little")
    if family == AF_INET6:
        if _ipv6_never_forwarded(raw[16:32]) or _ipv6_never_forwarded(raw[32:48]):
            return BPF_FIB_LKUP_RET_NOT_FWDED
    elif family != AF_INET:
        return neg(errno.EAFNOSUPPORT)
    if ifindex != LOOPBACK_IFINDEX:
        return neg(errno.ENODEV)
    return BPF_FIB_LKUP_RET_FWD_DISABLED
