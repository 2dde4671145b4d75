"""What real-world objects (xdp-tutorial's router, tc programs fed short frames) found the VM doing unlike the kernel.

bench/compare_vm_kernel.py runs objects from xdp-tools, katran, xdp-tutorial,
cilium's and libbpf-bootstrap's examples in both backends; each difference it
found is pinned here by a small C program run in both.  The kernel runs the
programs in a fresh network namespace (a forked child that unshares its
network), because that is the network the VM models: loopback alone, no
routes, forwarding off.
"""

from __future__ import annotations

import ctypes
import os
import pickle
import struct

import pytest

from conftest import compile_bpf
from pybpf.errors import BPFError
from pybpf.object import ObjectSpec

pytestmark = pytest.mark.kernel

CLONE_NEWNET = 0x40000000


def in_fresh_netns(fn):
    """fn() run in a forked child inside a new, empty network namespace; its result or its error text."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never returns into pytest
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.unshare(CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET)")
            payload = ("ok", fn())
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            payload = ("error", f"{type(exc).__name__}: {exc}")
        os.write(write_end, pickle.dumps(payload))
        os._exit(0)
    os.close(write_end)
    chunks = []
    while chunk := os.read(read_end, 65536):
        chunks.append(chunk)
    os.close(read_end)
    os.waitpid(pid, 0)
    status, value = pickle.loads(b"".join(chunks))
    if status == "error":
        raise AssertionError(f"kernel side failed: {value}")
    return value


def outcome(prog, data: bytes, ctx: bytes | None = None):
    """(retval, data_out, ctx_out), or 'refused' when the test run is refused (both backends raise BPFError)."""
    try:
        r = prog.test_run(data, ctx=ctx)
    except BPFError:
        return "refused"
    return r.retval, bytes(r.data_out), bytes(r.ctx_out)


def run_both(source: str, name: str, prog_name: str, inputs: list[tuple[bytes, bytes | None]]):
    """Outcomes of every input in the VM and in the kernel (fresh namespace)."""
    spec_path = compile_bpf(source, name=name)
    with ObjectSpec.from_file(spec_path).load(backend="vm") as vm_obj:
        vm = [outcome(vm_obj.programs[prog_name], d, c) for d, c in inputs]
    with ObjectSpec.from_file(spec_path).load(backend="kernel") as k_obj:
        kprog = k_obj.programs[prog_name]
        kernel = in_fresh_netns(lambda: [outcome(kprog, d, c) for d, c in inputs])
    return vm, kernel


# --- bpf_fib_lookup (xdp-tutorial packet03-redirecting's xdp_router_func) ----------------------------------

FIB = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
char LICENSE[] SEC("license") = "GPL";

struct fib_case {           /* after the 14-byte Ethernet header */
    __u8 family, short_plen, pad[2];
    __u32 ifindex, flags;
    __u8 src[16], dst[16];
};

static __always_inline long lookup(void *ctx, void *data, void *end)
{
    struct fib_case *c = data + 14;
    struct bpf_fib_lookup *out = (void *)(c + 1);
    struct bpf_fib_lookup p = {};
    long r;

    if ((void *)(out + 1) > end)
        return 1000;
    p.family = c->family;
    p.ifindex = c->ifindex;
    p.tot_len = 100;
    if (c->family == 2) {
        __builtin_memcpy(&p.ipv4_src, c->src, 4);
        __builtin_memcpy(&p.ipv4_dst, c->dst, 4);
    } else {
        __builtin_memcpy(p.ipv6_src, c->src, 16);
        __builtin_memcpy(p.ipv6_dst, c->dst, 16);
    }
    if (c->short_plen)
        r = bpf_fib_lookup(ctx, &p, 32, c->flags);
    else
        r = bpf_fib_lookup(ctx, &p, sizeof(p), c->flags);
    __builtin_memcpy(out, &p, sizeof(p));   /* what the helper wrote back is in data_out */
    return r;
}

SEC("xdp")
int fib_xdp(struct xdp_md *ctx)
{
    return lookup(ctx, (void *)(long)ctx->data, (void *)(long)ctx->data_end);
}

SEC("tc")
int fib_tc(struct __sk_buff *skb)
{
    return lookup(skb, (void *)(long)skb->data, (void *)(long)skb->data_end);
}
"""

GLOBAL6_A = bytes.fromhex("20010db8000000000000000000000001")
GLOBAL6_B = bytes.fromhex("20010db8000000000000000000000002")
IP4_A, IP4_B = bytes([198, 18, 0, 1]).ljust(16, b"\0"), bytes([198, 18, 0, 2]).ljust(16, b"\0")

FIB_CASES = {
    "ipv4-loopback": (2, 0, 1, 0, IP4_A, IP4_B),
    "ipv4-every-flag": (2, 0, 1, 0x3F, IP4_A, IP4_B),
    "ipv4-unknown-flag": (2, 0, 1, 0x40, IP4_A, IP4_B),
    "ipv4-no-such-device": (2, 0, 4242, 0, IP4_A, IP4_B),
    "ipv4-short-params": (2, 1, 1, 0, IP4_A, IP4_B),
    "ipv6-loopback": (10, 0, 1, 0, GLOBAL6_A, GLOBAL6_B),
    "ipv6-no-such-device": (10, 0, 4242, 0, GLOBAL6_A, GLOBAL6_B),
    "ipv6-to-link-local": (10, 0, 1, 0, GLOBAL6_A, bytes.fromhex("fe800000000000000000000000000001")),
    "ipv6-from-multicast": (10, 0, 4242, 0, bytes.fromhex("ff020000000000000000000000000001"), GLOBAL6_B),
    "ipv6-to-loopback": (10, 0, 1, 0, GLOBAL6_A, bytes(15) + b"\1"),
    "family-0": (0, 0, 1, 0, IP4_A, IP4_B),
    "family-packet": (17, 0, 1, 0, IP4_A, IP4_B),
}


def _fib_frame(family, short, ifindex, flags, src, dst) -> bytes:
    case = struct.pack("<BB2xII16s16s", family, short, ifindex, flags, src, dst)
    return bytes(6) + bytes.fromhex("020000000001") + b"\x88\xb5" + case + bytes(64)


@pytest.mark.parametrize("prog_name", ["fib_xdp", "fib_tc"])
def test_fib_lookup_answers_like_the_kernel_in_an_empty_namespace(prog_name):
    inputs = [(_fib_frame(*case), None) for case in FIB_CASES.values()]
    vm, kernel = run_both(FIB, "vm_fib_lookup", prog_name, inputs)
    for name, got, expected in zip(FIB_CASES, vm, kernel):
        assert got == expected, name
    # The answers are not all one: the cases reach every branch the VM models.
    assert len({r[0] for r in kernel}) >= 4


# --- what a test run accepts ------------------------------------------------------------------------------

PASS = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
char LICENSE[] SEC("license") = "GPL";

SEC("xdp")
int xdp_info(struct xdp_md *ctx)
{
    return ctx->ingress_ifindex * 1000 + ctx->rx_queue_index * 10 + (ctx->data_end - ctx->data) % 10;
}

SEC("tc")
int tc_len(struct __sk_buff *skb)
{
    return skb->len + skb->ifindex * 10000;
}
"""


def _xdp_md(data: int = 0, data_end: int = 0, meta: int = 0, ifindex: int = 0, rxq: int = 0, egress: int = 0):
    return struct.pack("<6I", data, data_end, meta, ifindex, rxq, egress)


def test_xdp_md_device_and_queue_are_checked_like_the_kernel():
    frame = bytes(6) + bytes.fromhex("020000000001") + b"\x88\xb5" + bytes(46)
    n = len(frame)
    contexts = [None, _xdp_md(0, n, 0, 1, 0), _xdp_md(0, n, 0, 1, 1), _xdp_md(0, n, 0, 4242, 0),
                _xdp_md(0, n, 0, 0, 1), _xdp_md(8, n + 8, 0, 1, 0), _xdp_md(3, n + 3, 0, 1, 0),
                _xdp_md(0, n, 0, 1, 0, 1), _xdp_md(0, n, 4, 1, 0)]
    vm, kernel = run_both(PASS, "vm_ctx_checks", "xdp_info", [(frame, c) for c in contexts])
    assert vm == kernel
    assert kernel[2] == kernel[3] == "refused" and kernel[1] != "refused"


def test_a_test_skb_needs_its_whole_ip_header_like_the_kernel():
    inputs = []
    for ethertype, header in ((0x0800, 20), (0x86DD, 40), (0x0806, 28)):
        for size in (14, 14 + header - 1, 14 + header, 14 + header + 7):
            frame = bytes(6) + bytes.fromhex("020000000001") + struct.pack("!H", ethertype)
            inputs.append(((frame + bytes([0x45 if ethertype == 0x0800 else 0x60]) + bytes(80))[:size], None))
    inputs.append((inputs[2][0], struct.pack("<10I", 0, 0, 0, 0, 0, 0, 0, 0, 0, 0) + struct.pack("<I", 4242)
                   + bytes(148)))  # ifindex of a device that does not exist
    vm, kernel = run_both(PASS, "vm_ctx_checks", "tc_len", inputs)
    assert vm == kernel
    assert kernel[1] == "refused" and kernel[2] != "refused" and kernel[-1] == "refused"


# --- a long parser (the libbpf-bootstrap tutorial's XDP load balancer crashed the compiled engine) ---------

LONG_PARSER = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
char LICENSE[] SEC("license") = "GPL";

SEC("xdp")
int long_parser(struct xdp_md *ctx)
{
    unsigned char *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
    __u32 sum = 0;
#pragma clang loop unroll(full)
    for (int i = 0; i < 900; i++) {   /* one bounds check, so one block, per byte */
        if (data + i + 1 > end)
            return sum + i;
        sum = sum * 31 + (data[i] ^ i);
    }
    return sum;
}
"""


def test_a_program_of_a_thousand_blocks_runs_in_the_compiled_engine_as_in_the_kernel():
    """Blocks that fall into each other were emitted by recursion, one level per block: a long
    run of them exceeded Python's recursion limit (RecursionError) instead of compiling."""
    inputs = [(bytes(range(256)) * n, None) for n in (1, 2, 4)]
    spec_path = compile_bpf(LONG_PARSER, name="vm_long_parser")
    spec = ObjectSpec.from_file(spec_path)
    assert len(spec.programs["long_parser"].instructions) > 3 * 900
    results = {}
    for engine in ("compiled", "interpreter"):
        with ObjectSpec.from_file(spec_path).load(backend="vm", engine=engine) as obj:
            results[engine] = [outcome(obj.programs["long_parser"], d, c) for d, c in inputs]
    with spec.load(backend="kernel") as k_obj:
        kernel = [outcome(k_obj.programs["long_parser"], d, c) for d, c in inputs]
    assert results["compiled"] == results["interpreter"] == kernel
    assert len({r[0] for r in kernel}) == 3


# --- helpers xdp-tools' xdp-bench and katran's tc programs call ---------------------------------------------

HELPERS = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
char LICENSE[] SEC("license") = "GPL";

struct {
    __uint(type, BPF_MAP_TYPE_DEVMAP_HASH);
    __uint(key_size, sizeof(int));
    __uint(value_size, sizeof(int));
    __uint(max_entries, 8);
} ports SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_CPUMAP);
    __uint(key_size, sizeof(int));
    __uint(value_size, sizeof(struct bpf_cpumap_val));
    __uint(max_entries, 4);
} cpus SEC(".maps");

struct args { __u32 op, offset, value; };   /* after the Ethernet header */

SEC("xdp")
int xdp_bytes(struct xdp_md *ctx)
{
    struct args a;
    char buf[16] = "0123456789abcdef";
    long r;

    if (bpf_xdp_load_bytes(ctx, 14, &a, sizeof(a)))
        return 1000;
    switch (a.op) {
    case 0: r = bpf_xdp_load_bytes(ctx, a.offset, buf, 4); break;
    case 1: r = bpf_xdp_load_bytes(ctx, a.offset, buf, 16); break;
    case 2: r = bpf_xdp_store_bytes(ctx, a.offset, buf, 4); break;
    case 3: r = bpf_xdp_store_bytes(ctx, a.offset, buf, 16); break;
    case 4: r = bpf_redirect_map(&ports, a.offset, a.value); break;
    case 5: r = bpf_redirect_map(&cpus, a.offset, a.value); break;
    default: r = bpf_xdp_get_buff_len(ctx);
    }
    bpf_xdp_store_bytes(ctx, 26, buf, 16);   /* what a load copied shows in data_out */
    return r;
}

SEC("tc")
int tc_pull(struct __sk_buff *skb)
{
    struct args a;

    if (bpf_skb_load_bytes(skb, 14, &a, sizeof(a)))
        return 1000;
    return bpf_skb_pull_data(skb, a.offset);
}

SEC("xdp/devmap")
int on_devmap(struct xdp_md *ctx)
{
    return XDP_PASS;
}

SEC("xdp/cpumap")
int on_cpumap(struct xdp_md *ctx)
{
    return XDP_PASS;
}
"""


def _args_frame(op: int, offset: int, value: int = 0, size: int = 64) -> bytes:
    frame = bytes(6) + bytes.fromhex("020000000001") + b"\x88\xb5" + struct.pack("<3I", op, offset, value)
    return (frame + bytes(range(256)) * 8)[:size]


def test_xdp_load_store_bytes_and_redirect_map_flags_match_the_kernel():
    inputs = [(_args_frame(op, offset), None) for op in range(4)
              for offset in (0, 1, 14, 40, 47, 48, 49, 60, 61, 64, 0xFFFF, 0x10000, 0xFFFFFFFF)]
    inputs += [(_args_frame(op, key, flags), None) for op in (4, 5) for key in (0, 3)
               for flags in (0, 1, 2, 3, 4, 8, 8 | 16, 16, 8 | 2, 1 << 31)]
    inputs += [(_args_frame(6, 0, size=n), None) for n in (26, 42, 600)]
    vm, kernel = run_both(HELPERS, "vm_xdp_helpers", "xdp_bytes", inputs)
    assert vm == kernel
    assert len({r[0] for r in kernel}) >= 6


def test_skb_pull_data_matches_the_kernel():
    inputs = [(_args_frame(0, n, size=64), None) for n in (0, 1, 14, 63, 64, 65, 4096, 0xFFFFFFFF)]
    vm, kernel = run_both(HELPERS, "vm_xdp_helpers", "tc_pull", inputs)
    assert vm == kernel
    assert {r[0] for r in kernel} == {0, (-12) & 0xFFFFFFFF}


@pytest.mark.parametrize("prog_name", ["on_devmap", "on_cpumap"])
def test_devmap_and_cpumap_programs_cannot_be_test_run_like_in_the_kernel(prog_name):
    vm, kernel = run_both(HELPERS, "vm_xdp_helpers", prog_name, [(_args_frame(6, 0), None)])
    assert vm == kernel == ["refused"]


# --- bpf_skb_adjust_room (katran's tc decap and healthcheck encap) ---------------------------------------

ADJUST_ROOM = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
char LICENSE[] SEC("license") = "GPL";

struct room { __s32 len_diff; __u32 mode; __u64 flags; __s32 again; __u32 pad; };  /* at offset 54 */

SEC("tc")
int adjust(struct __sk_buff *skb)
{
    struct room r;
    long ret;

    if (bpf_skb_load_bytes(skb, 54, &r, sizeof(r)))
        return 1000;
    ret = bpf_skb_adjust_room(skb, r.len_diff, r.mode, r.flags);
    if (ret || !r.again)
        return ret;
    return 2000 + bpf_skb_adjust_room(skb, r.again, r.mode, r.flags);  /* a second encap: -EALREADY */
}
"""

ENCAP4, ENCAP6, GRE, UDP, CSUM, L2ETH, DECAP4, DECAP6 = 2, 4, 8, 16, 32, 64, 128, 256


def _room_frame(ipv6: bool, len_diff: int, mode: int, flags: int, again: int = 0, size: int = 120) -> bytes:
    room = struct.pack("<iIQiI", len_diff, mode, flags, again, 0)
    if ipv6:
        frame = bytes(6) + bytes.fromhex("020000000001") + b"\x86\xdd" + bytes([0x60]) + bytes(39)
    else:
        frame = bytes(6) + bytes.fromhex("020000000001") + b"\x08\x00" + bytes([0x45]) + bytes(19) + bytes(20)
    return (frame + room + bytes(range(256)))[:max(size, 78)]


ROOM_CASES = [
    (v6, diff, mode, flags, again)
    for v6 in (False, True)
    for diff, mode, flags, again in [
        (8, 0, 0, 0), (8, 1, 0, 0), (-8, 0, 0, 0), (-8, 1, 0, 0), (20, 0, ENCAP4, 0), (40, 0, ENCAP6, 0),
        (28, 0, ENCAP4 | UDP, 0), (24, 0, ENCAP4 | GRE, 0), (24, 0, ENCAP4 | GRE | UDP, 0),
        (20, 0, ENCAP4 | ENCAP6, 0), (34, 0, ENCAP4 | L2ETH | (14 << 56), 0), (34, 0, ENCAP4 | L2ETH | (4 << 56), 0),
        (10, 0, ENCAP4 | (20 << 56), 0), (20, 0, ENCAP4, 20), (20, 0, 0, 20), (8, 0, CSUM, 0), (8, 0, 1, 0),
        (-20, 0, DECAP4, 0), (-40, 0, DECAP6, 0), (-20, 0, DECAP4 | DECAP6, 0), (20, 0, DECAP4, 0),
        (-20, 0, 0, 0), (-40, 0, 0, 0), (-60, 0, 0, 0), (-1000, 0, 0, 0), (0x1000, 0, 0, 0), (0xFFF, 0, 0, 0),
        (8, 2, 0, 0), (8, 0, 1 << 9, 0), (-8, 0, ENCAP4, 0), (0, 0, 0, 0), (300, 0, 0, 0), (-4, 1, 0, 0),
    ]
]


def test_skb_adjust_room_matches_the_kernel():
    inputs = [(_room_frame(*case), None) for case in ROOM_CASES]
    inputs.append((_room_frame(False, 8, 0, 0), struct.pack("<44I", *([0] * 44)) + struct.pack("<I", 1400)
                   + bytes(12)))  # gso_size set: a GSO skb
    vm, kernel = run_both(ADJUST_ROOM, "vm_adjust_room", "adjust", inputs)
    for case, got, expected in zip(ROOM_CASES + ["gso"], vm, kernel):
        assert got == expected, case
    assert len({r[0] for r in kernel}) >= 5


TUNNEL_KEY = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
char LICENSE[] SEC("license") = "GPL";

struct req { __u32 size, flags, label, ext; };   /* at offset 14 */

SEC("tc")
int set_key(struct __sk_buff *skb)
{
    struct req q;
    struct bpf_tunnel_key key = {};

    if (bpf_skb_load_bytes(skb, 14, &q, sizeof(q)))
        return 1000;
    key.tunnel_id = 42;
    key.remote_ipv4 = 0xc6120001;
    key.tunnel_ttl = 64;
    key.tunnel_label = q.label;
    key.tunnel_ext = q.ext;
    switch (q.size) {
    case 8: return bpf_skb_set_tunnel_key(skb, &key, 8, q.flags);
    case 22: return bpf_skb_set_tunnel_key(skb, &key, 22, q.flags);
    case 24: return bpf_skb_set_tunnel_key(skb, &key, 24, q.flags);
    case 28: return bpf_skb_set_tunnel_key(skb, &key, 28, q.flags);
    case 30: return bpf_skb_set_tunnel_key(skb, &key, 30, q.flags);
    default: return bpf_skb_set_tunnel_key(skb, &key, sizeof(key), q.flags);
    }
}
"""


def test_skb_set_tunnel_key_checks_match_the_kernel():
    """katran's IPIP health-check program sets the tunnel key before redirecting to its ipip device."""
    cases = [(size, flags, label, ext) for size in (8, 22, 24, 28, 30, 44) for flags in (0, 1, 2, 16, 32)
             for label, ext in ((0, 0), (5, 0), (0, 1))]
    head = bytes(6) + bytes.fromhex("020000000001") + b"\x88\xb5"
    inputs = [(head + struct.pack("<4I", *case) + bytes(40), None) for case in cases]
    vm, kernel = run_both(TUNNEL_KEY, "vm_tunnel_key", "set_key", inputs)
    for case, got, expected in zip(cases, vm, kernel):
        assert got == expected, case
    assert {r[0] for r in kernel} == {0, (-22) & 0xFFFFFFFF}


CHANGE_PROTO = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
char LICENSE[] SEC("license") = "GPL";

SEC("tc")
int change_proto(struct __sk_buff *skb)
{
    __u32 q[2];   /* the new protocol (network order) and the flags, after the frame's first 60 bytes */

    if (bpf_skb_load_bytes(skb, 60, q, sizeof(q)))
        return 1000;
    long r = bpf_skb_change_proto(skb, q[0], q[1]);
    return r ? r : 2000 + skb->len + skb->protocol;
}
"""


def test_skb_change_proto_matches_the_kernel():
    """katran's tc decap turns IPv6-in-IPv4 into IPv6 with it."""
    inputs = []
    for ethertype in (0x0800, 0x86DD, 0x0806):
        for proto, flags in ((0x86DD, 0), (0x0800, 0), (0x0806, 0), (0x86DD, 1), (0x0800, 1)):
            frame = bytes(6) + bytes.fromhex("020000000001") + struct.pack("!H", ethertype) + bytes([0x45]) + bytes(45)
            inputs.append((frame + struct.pack("!H", proto) + bytes(2) + struct.pack("<I", flags) + bytes(64), None))
    vm, kernel = run_both(CHANGE_PROTO, "vm_change_proto", "change_proto", inputs)
    assert vm == kernel
    assert len({r[0] for r in kernel}) >= 4
