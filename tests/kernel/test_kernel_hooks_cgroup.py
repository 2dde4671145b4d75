"""cgroup programs on a child cgroup we create: a forked process joins it and does real socket,
sysctl and device work; the hooks count, deny or rewrite what it does (and nothing outside)."""

from __future__ import annotations

import errno
import os
import socket
import subprocess

import pytest

from kernel_testlib import child_cgroup, links_left, load_c, open_fds, run_in_cgroup

from pybpf.errors import LinkError
from pybpf.isa import Instruction
from pybpf.kernel import AttachType, IntCodec, LinkType, Map, MapType, Program, ProgType, link_ids

pytestmark = pytest.mark.kernel

SKB_COUNT = r"""
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 2); __type(key, __u32); __type(value, __u64); } counts SEC(".maps");
static __always_inline int bump(__u32 k) { __u64 *n = bpf_map_lookup_elem(&counts, &k); if (n) __sync_fetch_and_add(n, 1); return 1; }
SEC("cgroup_skb/ingress") int count_in(struct __sk_buff *skb) { return bump(0); }
SEC("cgroup_skb/egress") int count_out(struct __sk_buff *skb) { return bump(1); }
"""


def _udp_to_self(n: int = 5) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    for i in range(n):
        s.sendto(b"%d" % i, s.getsockname())
    for _ in range(n):
        s.recv(10)
    s.close()


def test_cgroup_skb_counts_the_packets_of_a_cgroup():
    fds, links = open_fds(), set(link_ids())
    with child_cgroup() as cg, \
         Map.create(MapType.ARRAY, 4, 8, 2, name="counts", key_codec=IntCodec(4), value_codec=IntCodec(8)) as counts, \
         load_c(SKB_COUNT, "cgroup_skb/ingress", ProgType.CGROUP_SKB, {"counts": counts}, name="cg_in") as cin, \
         load_c(SKB_COUNT, "cgroup_skb/egress", ProgType.CGROUP_SKB, {"counts": counts}, name="cg_out") as cout:
        with cin.program.attach(cgroup=cg) as lin, cout.program.attach_cgroup(cg, "egress") as lout:
            info = lin.info()
            assert info.type == LinkType.CGROUP and info.attach_type == AttachType.CGROUP_INET_INGRESS
            assert info.details["cgroup_id"] == os.stat(cg).st_ino
            assert lout.info().attach_type == AttachType.CGROUP_INET_EGRESS
            _udp_to_self(3)  # this process is not in the cgroup: not counted
            assert run_in_cgroup(cg, lambda: _udp_to_self(5)) == 0
            assert (counts[0], counts[1]) == (5, 5)
            shown = subprocess.run(["bpftool", "cgroup", "show", cg], capture_output=True, text=True).stdout
            assert "count_in" in shown and "count_out" in shown  # programs are named after their functions
        assert run_in_cgroup(cg, lambda: _udp_to_self(2)) == 0
        assert (counts[0], counts[1]) == (5, 5)  # detached
    assert open_fds() == fds and links_left(links) == set()


def _expect_errno(err: int, fn) -> int:
    """Child action: 0 when fn() fails with ``err``, 1 when it succeeds, 2 on another error."""
    try:
        fn()
    except OSError as exc:
        return 0 if exc.errno == err else 2
    return 1


def _connect(port: int) -> None:
    socket.create_connection(("127.0.0.1", port), timeout=2).close()


def _open_read(path: str) -> None:
    with open(path, "rb") as f:
        f.read(1)


def _setsockopt_keepalive() -> None:
    s = socket.socket()
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    finally:
        s.close()


def _getsockopt_rcvbuf() -> None:
    s = socket.socket()
    try:
        s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    finally:
        s.close()


def _bind_any() -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind(("127.0.0.1", 0))
    finally:
        s.close()


def _sendto_self() -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.sendto(b"x", ("127.0.0.1", 9))
    finally:
        s.close()


DENY_CASES = {
    # hook: (program type, expected attach type, C body, the action it must refuse, an action it lets through)
    "connect4": (ProgType.CGROUP_SOCK_ADDR, AttachType.CGROUP_INET4_CONNECT,
                 "int f(struct bpf_sock_addr *ctx) { return 0; }", "connect", None),
    "bind4": (ProgType.CGROUP_SOCK_ADDR, AttachType.CGROUP_INET4_BIND,
              "int f(struct bpf_sock_addr *ctx) { return 0; }", _bind_any, None),
    "sendmsg4": (ProgType.CGROUP_SOCK_ADDR, AttachType.CGROUP_UDP4_SENDMSG,
                 "int f(struct bpf_sock_addr *ctx) { return 0; }", _sendto_self, None),
    "sock_create": (ProgType.CGROUP_SOCK, AttachType.CGROUP_INET_SOCK_CREATE,
                    "int f(struct bpf_sock *sk) { return sk->type != 2; /* SOCK_DGRAM */ }",
                    lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).close(),
                    lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM).close()),
    "sysctl": (ProgType.CGROUP_SYSCTL, AttachType.CGROUP_SYSCTL,
               "int f(struct bpf_sysctl *ctx) { return 0; }", lambda: _open_read("/proc/sys/kernel/ostype"), None),
    "dev": (ProgType.CGROUP_DEVICE, AttachType.CGROUP_DEVICE,
            "int f(struct bpf_cgroup_dev_ctx *ctx) { return !(ctx->major == 1 && ctx->minor == 5); }",
            lambda: _open_read("/dev/zero"), lambda: _open_read("/dev/null")),
    "setsockopt": (ProgType.CGROUP_SOCKOPT, AttachType.CGROUP_SETSOCKOPT,
                   "int f(struct bpf_sockopt *ctx) { return !(ctx->level == 1 && ctx->optname == 9); }",
                   _setsockopt_keepalive, _getsockopt_rcvbuf),
    "getsockopt": (ProgType.CGROUP_SOCKOPT, AttachType.CGROUP_GETSOCKOPT,
                   "int f(struct bpf_sockopt *ctx) { return 0; }", _getsockopt_rcvbuf, _setsockopt_keepalive),
}


@pytest.mark.parametrize("hook", list(DENY_CASES))
def test_cgroup_hook_refuses_only_inside_the_cgroup(hook):
    ptype, eat, body, refused, allowed = DENY_CASES[hook]
    fds = open_fds()
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    if refused == "connect":
        refused = lambda: _connect(port)  # noqa: E731
    try:
        with child_cgroup() as cg, \
             load_c(f'SEC("cgroup/{hook}")\n{body}\n', f"cgroup/{hook}", ptype, name=f"deny_{hook}"[:15]) as loaded:
            with loaded.program.attach(cgroup=cg) as link:
                assert link.info().attach_type == eat
                assert run_in_cgroup(cg, lambda: _expect_errno(errno.EPERM, refused)) == 0
                if allowed is not None:
                    assert run_in_cgroup(cg, lambda: _expect_errno(errno.EPERM, allowed)) == 1
                assert _expect_errno(errno.EPERM, refused) == 1  # this process is outside the cgroup
            assert run_in_cgroup(cg, lambda: _expect_errno(errno.EPERM, refused)) == 1  # detached
    finally:
        listener.close()
    assert open_fds() == fds


REWRITE = r"""
#include <bpf/bpf_endian.h>
SEC("cgroup/recvmsg4")
int rewrite_from(struct bpf_sock_addr *ctx) { ctx->user_port = bpf_htons(4242); return 1; }
SEC("cgroup/getpeername4")
int rewrite_peer(struct bpf_sock_addr *ctx) { ctx->user_port = bpf_htons(4343); return 1; }
"""


def test_cgroup_sock_addr_rewrites_addresses_the_process_sees():
    listener = socket.create_server(("127.0.0.1", 0))

    def child() -> int:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        s.sendto(b"x", s.getsockname())
        _, sender = s.recvfrom(10)
        c = socket.create_connection(listener.getsockname(), timeout=2)
        peer = c.getpeername()
        return 0 if (sender[1], peer[1]) == (4242, 4343) else 1

    with child_cgroup() as cg, \
         load_c(REWRITE, "cgroup/recvmsg4", ProgType.CGROUP_SOCK_ADDR, name="rw_from") as recv, \
         load_c(REWRITE, "cgroup/getpeername4", ProgType.CGROUP_SOCK_ADDR, name="rw_peer") as peer:
        with recv.program.attach(cgroup=cg), peer.program.attach_cgroup(cg):
            assert run_in_cgroup(cg, child) == 0
    listener.close()


SOCKOPS = r"""
__u64 established = 0;
SEC("sockops")
int on_ops(struct bpf_sock_ops *skops)
{
    if (skops->op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB)
        __sync_fetch_and_add(&established, 1);
    return 1;
}
"""


def test_sockops_sees_connections_of_the_cgroup():
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    with child_cgroup() as cg, load_c(SOCKOPS, "sockops", ProgType.SOCK_OPS, name="sockops") as loaded:
        with loaded.program.attach(cgroup=cg):
            _connect(port)  # outside: not seen
            assert run_in_cgroup(cg, lambda: [_connect(port) for _ in range(3)] and None) == 0
            assert loaded.global_u64("established") == 3
    listener.close()


def test_cgroup_attach_errors_are_clear():
    fds, links = open_fds(), set(link_ids())
    ret1 = [Instruction(0xB7, 0, 0, 0, 1), Instruction(0x95)]
    with Program.load(ProgType.XDP, ret1, name="xdp") as xdp, \
         Program.load(ProgType.CGROUP_SOCK_ADDR, ret1, name="conn4",
                      expected_attach_type=AttachType.CGROUP_INET4_CONNECT) as conn4, \
         child_cgroup() as cg:
        with pytest.raises(LinkError, match=r"no cgroup /.*/pybpf_nosuch_cgroup \(cgroup v2 is mounted at"):
            conn4.attach_cgroup("pybpf_nosuch_cgroup", "connect4")
        with pytest.raises(LinkError, match="cgroup ingress hook: it needs a CGROUP_SKB program"):
            xdp.attach_cgroup(cg, "ingress")
        with pytest.raises(LinkError, match="it was loaded for connect4.*expected_attach_type=AttachType.CGROUP_INET4_BIND"):
            conn4.attach_cgroup(cg, "bind4")
        with pytest.raises(LinkError, match="unknown cgroup hook 'connect5'"):
            conn4.attach_cgroup(cg, "connect5")
        with pytest.raises(LinkError, match="needs cgroup="):
            conn4.attach("cgroup/connect4")
    assert open_fds() == fds and links_left(links) == set()
