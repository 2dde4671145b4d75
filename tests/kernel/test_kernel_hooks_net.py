"""Networking hooks with real traffic: tc through tcx links and through netlink (clsact + cls_bpf)
on a veth pair between two namespaces, netfilter, sk_lookup, sockmap redirection; and clean failures."""

from __future__ import annotations

import os
import socket
import subprocess

import pytest

from kernel_testlib import inside_netns, ip, links_left, load_c, open_fds, veth_pair_in_namespaces

from pybpf.errors import LinkError, NotSupportedError
from pybpf.isa import Instruction
from pybpf.kernel import IntCodec, LinkType, Map, MapType, Program, ProgType, link_ids
from pybpf.kernel.link import ProgAttachLink, TCFilterLink

pytestmark = pytest.mark.kernel

TC_COUNT_DROP = r"""
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 2); __type(key, __u32); __type(value, __u64); } seen SEC(".maps");

SEC("tc")
int count_drop(struct __sk_buff *skb)
{
    void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
    struct ethhdr *eth = data;
    struct iphdr *ip = data + sizeof(*eth);
    struct udphdr *udp = (void *)ip + sizeof(*ip);
    if ((void *)(udp + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP) || ip->protocol != IPPROTO_UDP || ip->ihl != 5)
        return -1;  /* TCX_NEXT / TC_ACT_UNSPEC: carry on */
    __u32 k = udp->dest == bpf_htons(%d);   /* slot 1: the blocked port, slot 0: others */
    __u64 *n = bpf_map_lookup_elem(&seen, &k);
    if (n)
        __sync_fetch_and_add(n, 1);
    return k ? 2 : -1;  /* TC_ACT_SHOT for the blocked port */
}
"""


def _udp_exchange(ns_a, addr_a, ns_b, ports, per_port=4):
    """Send ``per_port`` datagrams from ns_b to each port in ns_a; return what arrived per port."""
    with inside_netns(ns_a):
        receivers = {}
        for port in ports:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((addr_a, port))
            s.settimeout(0.3)
            receivers[port] = s
    with inside_netns(ns_b):
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    got = {}
    try:
        for i in range(per_port):
            for port in ports:
                sender.sendto(b"msg %d" % i, (addr_a, port))
        for port, s in receivers.items():
            got[port] = []
            try:
                while len(got[port]) < per_port:
                    got[port].append(s.recv(100))
            except socket.timeout:
                pass
    finally:
        sender.close()
        for s in receivers.values():
            s.close()
    return got


def _tc(ns: str, *args: str) -> str:
    return subprocess.run(["ip", "netns", "exec", ns, "tc", *args], capture_output=True, text=True, check=True).stdout


@pytest.mark.parametrize("mode", ["tcx", "netlink"])
def test_tc_counts_and_drops_on_veth(mode):
    blocked, open_port = 42000 + os.getpid() % 1000, 43000 + os.getpid() % 1000
    fds, links = open_fds(), set(link_ids())
    with Map.create(MapType.ARRAY, 4, 8, 2, name="seen", key_codec=IntCodec(4), value_codec=IntCodec(8)) as seen, \
         load_c(TC_COUNT_DROP % blocked, "tc", ProgType.SCHED_CLS, {"seen": seen}, name="tc_drop") as loaded, \
         veth_pair_in_namespaces() as (ns_a, if_a, addr_a, ns_b, if_b, addr_b):
        with inside_netns(ns_a):
            link = loaded.program.attach_tc(if_a, "ingress", mode=mode)
        try:
            if mode == "tcx":
                assert link.info().type == LinkType.TCX
            else:
                assert isinstance(link, TCFilterLink) and link.created_qdisc
                shown = _tc(ns_a, "filter", "show", "dev", if_a, "ingress")
                assert f"handle {link.handle:#x}" in shown and "direct-action" in shown
                assert f"id {loaded.program.id}" in shown
                assert "clsact" in _tc(ns_a, "qdisc", "show", "dev", if_a)
            got = _udp_exchange(ns_a, addr_a, ns_b, [blocked, open_port])
            assert got[blocked] == [] and len(got[open_port]) == 4
            assert seen[1] == 4 and seen[0] >= 4
        finally:
            link.close()
        if mode == "netlink":
            assert "bpf" not in _tc(ns_a, "filter", "show", "dev", if_a, "ingress")
            assert "clsact" not in _tc(ns_a, "qdisc", "show", "dev", if_a)  # we created it, we removed it
        got = _udp_exchange(ns_a, addr_a, ns_b, [blocked], per_port=1)
        assert len(got[blocked]) == 1  # detached
    assert open_fds() == fds and links_left(links) == set()


def test_tc_netlink_keeps_a_qdisc_it_did_not_create():
    with veth_pair_in_namespaces() as (ns_a, if_a, *_), \
         Program.load(ProgType.SCHED_CLS, [Instruction(0xB7, 0, 0, 0, 0), Instruction(0x95)], name="tcpass") as prog:
        ip("-n", ns_a, "link", "set", if_a, "up")
        subprocess.run(["ip", "netns", "exec", ns_a, "tc", "qdisc", "add", "dev", if_a, "clsact"], check=True)
        with inside_netns(ns_a):
            with prog.attach_tc(if_a, "egress", mode="netlink", priority=7) as link:
                assert not link.created_qdisc and link.priority == 7
                assert "pref 7 bpf" in _tc(ns_a, "filter", "show", "dev", if_a, "egress")
                with prog.attach_tc(if_a, "egress", mode="netlink", priority=7) as second:
                    assert second.handle != link.handle  # the kernel picked a new handle at the same priority
        assert "bpf" not in _tc(ns_a, "filter", "show", "dev", if_a, "egress")
        assert "clsact" in _tc(ns_a, "qdisc", "show", "dev", if_a)


ORDER_C = r"""
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 3); __type(key, __u32); __type(value, __u64); } order SEC(".maps");
SEC("tcx/ingress")
int mark(struct __sk_buff *skb)
{
    __u32 clock = 0, me = %d;
    __u64 *c = bpf_map_lookup_elem(&order, &clock), *slot = bpf_map_lookup_elem(&order, &me);
    if (c && slot && *slot == 0)
        *slot = __sync_fetch_and_add(c, 1) + 1;
    return -1;  /* TCX_NEXT */
}
"""


def test_tcx_before_and_after_order_programs():
    with Map.create(MapType.ARRAY, 4, 8, 3, name="order", key_codec=IntCodec(4), value_codec=IntCodec(8)) as order, \
         load_c(ORDER_C % 1, "tcx/ingress", ProgType.SCHED_CLS, {"order": order}, name="first") as one, \
         load_c(ORDER_C % 2, "tcx/ingress", ProgType.SCHED_CLS, {"order": order}, name="second") as two, \
         veth_pair_in_namespaces() as (ns_a, if_a, addr_a, ns_b, if_b, addr_b):
        with inside_netns(ns_a):
            l1 = one.program.attach("tcx/ingress", interface=if_a)
            l2 = two.program.attach_tcx(if_a, "ingress", before=l1)  # runs first although attached last
        order.clear()  # a stray IPv6 packet may have met l1 alone before l2 was attached
        try:
            _udp_exchange(ns_a, addr_a, ns_b, [44000 + os.getpid() % 1000], per_port=1)
            assert order[2] == 1 and order[1] == 2
            with inside_netns(ns_a), pytest.raises(LinkError, match="it is attached there already"):
                one.program.attach_tcx(if_a, "ingress")
            with inside_netns(ns_a), \
                 Program.load(ProgType.SCHED_CLS, [Instruction(0xB7, 0, 0, 0, 0), Instruction(0x95)]) as third, \
                 pytest.raises(LinkError, match="order against is not attached"):
                third.attach_tcx(if_a, "ingress", after=999999)
        finally:
            l2.close()
            l1.close()


def test_tc_errors_leave_nothing():
    fds, links = open_fds(), set(link_ids())
    with Program.load(ProgType.XDP, [Instruction(0xB7, 0, 0, 0, 2), Instruction(0x95)], name="xdp") as xdp, \
         Program.load(ProgType.SCHED_CLS, [Instruction(0xB7, 0, 0, 0, 0), Instruction(0x95)], name="cls") as cls:
        with pytest.raises(LinkError, match="tcx/ingress of lo: that hook needs a SCHED_CLS program"):
            xdp.attach_tcx("lo")
        with pytest.raises(LinkError, match="no network interface 'nosuch0'"):
            cls.attach_tc("nosuch0", mode="netlink")
        with pytest.raises(LinkError, match="must be 'ingress' or 'egress'"):
            cls.attach_tc("lo", "sideways")
        with pytest.raises(LinkError, match="needs interface="):
            cls.attach("tc")
        with pytest.raises(NotSupportedError, match="netkit links.*CONFIG_NETKIT is not set"):
            cls.attach_netkit("lo")
    assert open_fds() == fds and links_left(links) == set()


# --- netfilter ---------------------------------------------------------------------

NF_COUNT = r"""
__u64 packets = 0;
SEC("netfilter")
int nf_count(void *ctx) { __sync_fetch_and_add(&packets, 1); return 1; /* NF_ACCEPT */ }
"""


def test_netfilter_counts_local_in_packets():
    with veth_pair_in_namespaces() as (ns_a, if_a, addr_a, ns_b, if_b, addr_b), \
         load_c(NF_COUNT, "netfilter", ProgType.NETFILTER, name="nfcount") as loaded:
        with inside_netns(ns_a):
            link = loaded.program.attach("netfilter", hook="input", priority=-128)
        try:
            info = link.info()
            assert info.type == LinkType.NETFILTER and info.details["hooknum"] == 1 and info.details["priority"] == -128
            got = _udp_exchange(ns_a, addr_a, ns_b, [45000 + os.getpid() % 1000], per_port=6)
            assert len(next(iter(got.values()))) == 6
            assert loaded.global_u64("packets") >= 6  # plus ARP-free IPv4 control traffic, if any
        finally:
            link.close()
        before = loaded.global_u64("packets")
        _udp_exchange(ns_a, addr_a, ns_b, [45000 + os.getpid() % 1000], per_port=2)
        assert loaded.global_u64("packets") == before
        with pytest.raises(LinkError, match="netfilter hook 'sideways'"):
            loaded.program.attach_netfilter(hook="sideways")


# --- sk_lookup ----------------------------------------------------------------------

SK_LOOKUP = r"""
struct { __uint(type, BPF_MAP_TYPE_SOCKMAP); __uint(max_entries, 1); __type(key, __u32); __type(value, __u64); } target SEC(".maps");
SEC("sk_lookup")
int steer(struct bpf_sk_lookup *ctx)
{
    if (ctx->protocol != 6 || ctx->local_port != %d)
        return SK_PASS;
    __u32 zero = 0;
    struct bpf_sock *sk = bpf_map_lookup_elem(&target, &zero);
    if (!sk)
        return SK_DROP;
    long err = bpf_sk_assign(ctx, sk, 0);
    bpf_sk_release(sk);
    return err ? SK_DROP : SK_PASS;
}
"""


def test_sk_lookup_steers_a_connection_to_a_listener():
    port_a, port_b = 46000 + os.getpid() % 1000, 47000 + os.getpid() % 1000
    with veth_pair_in_namespaces() as (ns_a, if_a, addr_a, *_), \
         Map.create(MapType.SOCKMAP, 4, 8, 1, name="target") as target, \
         load_c(SK_LOOKUP % port_b, "sk_lookup", ProgType.SK_LOOKUP, {"target": target}, name="steer") as loaded:
        with inside_netns(ns_a):
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.bind(("127.0.0.1", port_a))
            listener.listen(4)
            listener.settimeout(2)
            target[0] = listener
            link = loaded.program.attach_sk_lookup()
            try:
                assert link.info().type == LinkType.NETNS
                client = socket.create_connection(("127.0.0.1", port_b), timeout=2)  # nobody listens on port_b
                conn, _ = listener.accept()
                client.sendall(b"steered")
                assert conn.recv(100) == b"steered" and conn.getsockname()[1] == port_b
                conn.close()
                client.close()
            finally:
                link.close()
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", port_b), timeout=2)
            listener.close()
        with pytest.raises(LinkError, match="no network namespace 'pybpf-nosuch'"):
            loaded.program.attach_sk_lookup("pybpf-nosuch")


# --- sockmap ------------------------------------------------------------------------

SK_MSG_REDIRECT = r"""
struct { __uint(type, BPF_MAP_TYPE_SOCKMAP); __uint(max_entries, 2); __type(key, __u32); __type(value, __u64); } socks SEC(".maps");
SEC("sk_msg")
int redirect(struct sk_msg_md *msg) { return bpf_msg_redirect_map(msg, &socks, 1, BPF_F_INGRESS); }
"""

SK_SKB_VERDICT = r"""
struct { __uint(type, BPF_MAP_TYPE_SOCKMAP); __uint(max_entries, 2); __type(key, __u32); __type(value, __u64); } socks SEC(".maps");
SEC("sk_skb/stream_verdict")
int verdict(struct __sk_buff *skb) { return bpf_sk_redirect_map(skb, &socks, 1, 0); }
"""


def _tcp_pair(listener):
    client = socket.create_connection(listener.getsockname(), timeout=2)
    server, _ = listener.accept()
    server.settimeout(0.5)
    client.settimeout(0.5)
    return client, server


@pytest.mark.parametrize("use_link", [True, False])
def test_sk_msg_redirects_between_sockets(use_link):
    listener = socket.create_server(("127.0.0.1", 0))
    (c1, s1), (c2, s2) = _tcp_pair(listener), _tcp_pair(listener)
    fds = open_fds()
    try:
        with Map.create(MapType.SOCKMAP, 4, 8, 2, name="socks") as socks, \
             load_c(SK_MSG_REDIRECT, "sk_msg", ProgType.SK_MSG, {"socks": socks}, name="msgredir") as loaded:
            from pybpf.kernel.attach_net import attach_sockmap

            link = attach_sockmap(loaded.program, socks, use_link=use_link)
            assert isinstance(link, ProgAttachLink) != use_link
            socks[0] = c1
            socks[1] = c2
            c1.sendall(b"to the other socket")
            assert c2.recv(100) == b"to the other socket"  # delivered into c2's receive queue
            with pytest.raises(socket.timeout):
                s1.recv(100)
            link.close()
            socks.clear()
        s1.settimeout(0.5)
        c1.sendall(b"plain")
        assert s1.recv(100) == b"plain"
    finally:
        for s in (c1, s1, c2, s2, listener):
            s.close()
    assert open_fds() <= fds


def test_sk_skb_stream_verdict_redirects_received_data():
    listener = socket.create_server(("127.0.0.1", 0))
    (c1, s1), (c2, s2) = _tcp_pair(listener), _tcp_pair(listener)
    try:
        with load_c(SK_SKB_VERDICT, "sk_skb/stream_verdict", ProgType.SK_SKB, name="skbredir") as loaded:
            socks = loaded.object.maps["socks"]  # the object's own sockmap takes sockets too
            with loaded.program.attach(map=socks):
                socks[0] = s1   # data arriving at s1 ...
                socks[1] = c2   # ... leaves through c2 and reaches s2
                c1.sendall(b"forwarded")
                assert s2.recv(100) == b"forwarded"
                socks.clear()
            with pytest.raises(LinkError, match="must be a SOCKMAP or SOCKHASH"):
                with Map.create(MapType.ARRAY, 4, 4, 1) as arr:
                    loaded.program.attach_sockmap(arr)
    finally:
        for s in (c1, s1, c2, s2, listener):
            s.close()


def test_tc_filter_of_an_exiting_process_is_removed():
    from conftest import ROOT

    script = (
        "import sys\n"
        "from pybpf.isa import Instruction as I\n"
        "from pybpf.kernel import Program, ProgType\n"
        "p = Program.load(ProgType.SCHED_CLS, [I(0xB7, 0, 0, 0, 0), I(0x95)], name='leaky')\n"
        "link = p.attach_tc(sys.argv[1], 'ingress', mode='netlink')\n"
        "print(link.handle, flush=True)\n"  # exits without closing anything
    )
    with veth_pair_in_namespaces() as (ns_a, if_a, *_):
        env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
        out = subprocess.run(["ip", "netns", "exec", ns_a, "python3", "-c", script, if_a], capture_output=True,
                             text=True, env=env, timeout=30)
        assert out.returncode == 0 and int(out.stdout) > 0, out.stderr
        assert "bpf" not in _tc(ns_a, "filter", "show", "dev", if_a, "ingress")
        assert "clsact" not in _tc(ns_a, "qdisc", "show", "dev", if_a)
