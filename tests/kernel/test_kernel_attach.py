"""Attaching to real hooks and making real events happen: tracepoints, raw/BTF tracepoints,
uprobes, perf sampling, XDP on a veth pair between namespaces, socket filters; and clean failures."""

from __future__ import annotations

import hashlib
import os
import re
import socket
import subprocess
import time
from pathlib import Path

import pytest

from conftest import ROOT
from kernel_testlib import inside_netns, links_left, load_c, open_fds, veth_pair_in_namespaces

from pybpf.errors import LinkError
from pybpf.kernel.attach import attach_perf_fd
from pybpf.kernel.perf import open_tracepoint
from pybpf.isa import Instruction
from pybpf.kernel import (
    AttachType, BPFLink, IntCodec, Link, LinkGroup, LinkType, Map, MapType, PerfEventLink, Program, ProgType,
    link_ids, online_cpus,
)

pytestmark = pytest.mark.kernel
GETPPID_NR = 110  # x86-64

COUNT_OWN_CALLS = r"""
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1); __type(key, __u32); __type(value, __u64); } counts SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1); __type(key, __u32); __type(value, __u32); } cfg SEC(".maps");

static __always_inline void count_if_mine(void)
{
    __u32 zero = 0;
    __u32 *pid = bpf_map_lookup_elem(&cfg, &zero);
    __u64 *n = bpf_map_lookup_elem(&counts, &zero);
    if (pid && n && (bpf_get_current_pid_tgid() >> 32) == *pid)
        __sync_fetch_and_add(n, 1);
}

SEC("tracepoint/syscalls/sys_enter_getppid")
int on_getppid(void *ctx) { count_if_mine(); return 0; }

SEC("raw_tracepoint/sys_enter")
int on_sys_enter_raw(struct bpf_raw_tracepoint_args *ctx)
{
    if (ctx->args[1] == %d)
        count_if_mine();
    return 0;
}

SEC("tp_btf/sys_enter")
int on_sys_enter_btf(__u64 *ctx)
{
    if (ctx[1] == %d)
        count_if_mine();
    return 0;
}
""" % (GETPPID_NR, GETPPID_NR)


@pytest.fixture
def counter_maps():
    counts = Map.create(MapType.ARRAY, 4, 8, 1, name="counts", key_codec=IntCodec(4), value_codec=IntCodec(8))
    cfg = Map.create(MapType.ARRAY, 4, 4, 1, name="cfg", key_codec=IntCodec(4), value_codec=IntCodec(4))
    cfg[0] = os.getpid()
    yield {"counts": counts, "cfg": cfg}
    counts.close()
    cfg.close()


def _btf_type_id(name: str) -> int:
    """The vmlinux BTF id of a type, from the reference tool (bpftool)."""
    out = subprocess.run(["bpftool", "btf", "dump", "file", "/sys/kernel/btf/vmlinux"], capture_output=True,
                         text=True, check=True).stdout
    return int(re.search(rf"^\[(\d+)\] TYPEDEF '{name}'", out, re.M).group(1))


def _no_leaks(fds_before: set[int], links_before: set[int]) -> None:
    assert open_fds() == fds_before
    assert links_left(links_before) == set()


@pytest.mark.parametrize("section, prog_type, how", [
    ("tracepoint/syscalls/sys_enter_getppid", ProgType.TRACEPOINT, "tracepoint"),
    ("raw_tracepoint/sys_enter", ProgType.RAW_TRACEPOINT, "raw_tp"),
    ("tp_btf/sys_enter", ProgType.TRACING, "tp_btf"),
])
def test_getppid_calls_are_counted(counter_maps, section, prog_type, how):
    fds, links = open_fds(), set(link_ids())
    counts = counter_maps["counts"]
    with load_c(COUNT_OWN_CALLS, section, prog_type, counter_maps, name=how) as loaded:
        if how == "tp_btf":  # the loader found the attach target in vmlinux BTF by name, as bpftool does
            assert loaded.program.info().attach_btf_id == _btf_type_id("btf_trace_sys_enter")
            assert loaded.program.expected_attach_type == AttachType.TRACE_RAW_TP
        with loaded.program.attach() as link:  # by section name, as libbpf would
            info = link.info()
            assert info.prog_id == loaded.program.id and info.id in set(link_ids())
            assert info.type in (LinkType.PERF_EVENT, LinkType.RAW_TRACEPOINT, LinkType.TRACING)
            for _ in range(25):
                os.getppid()
        assert counts[0] == 25
        os.getppid()  # detached: not counted any more
        assert counts[0] == 25
    _no_leaks(fds, links)


def test_legacy_perf_ioctl_attachment(counter_maps):
    # Kernels before 5.15 attach with PERF_EVENT_IOC_SET_BPF: the perf fd alone is the attachment.
    fds = open_fds()
    counts = counter_maps["counts"]
    with load_c(COUNT_OWN_CALLS, "tracepoint/syscalls/sys_enter_getppid", ProgType.TRACEPOINT, counter_maps,
                name="ioctl") as loaded:
        link = attach_perf_fd(loaded.program, open_tracepoint("syscalls", "sys_enter_getppid"), use_ioctl=True)
        with link:
            assert not link.has_bpf_link
            with pytest.raises(LinkError, match="cannot be pinned"):
                link.pin("/sys/fs/bpf/pybpf_never")
            os.getppid()
            os.getppid()
        os.getppid()
        assert counts[0] == 2
    assert open_fds() == fds


def test_link_pin_keeps_attachment_until_unpinned(counter_maps):
    path = f"/sys/fs/bpf/pybpf_test_link_{os.getpid()}"
    counts = counter_maps["counts"]
    with load_c(COUNT_OWN_CALLS, "tracepoint/syscalls/sys_enter_getppid", ProgType.TRACEPOINT, counter_maps,
                name="pinlink") as loaded:
        link = loaded.program.attach_tracepoint("syscalls", "sys_enter_getppid")
        link.pin(path)
        link_id = link.id
        link.close()
    try:
        os.getppid()
        assert counts[0] == 1  # the pin keeps the program attached after every fd is closed
        with Link.from_pin(path) as again:
            assert again.id == link_id
        with Link.from_id(link_id) as byid:
            assert byid.info().type == LinkType.PERF_EVENT
    finally:
        os.unlink(path)
    # The last reference went with the pin: the kernel frees the link from a work queue, soon.
    deadline = time.monotonic() + 2
    while link_id in set(link_ids()) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert link_id not in set(link_ids())
    before = counts[0]
    os.getppid()
    assert counts[0] == before


TARGET_C = r"""
#include <stdio.h>
#include <stdlib.h>
__attribute__((noinline)) int pybpf_target(int x) { __asm__ volatile(""); return x * 2; }
int main(int argc, char **argv)
{
    char line[16];
    if (argc > 2 && !fgets(line, sizeof line, stdin)) return 1;   /* "wait": hold until told to go */
    long sum = 0;
    for (int i = 0; i < atoi(argv[1]); i++) sum += pybpf_target(i);
    printf("%ld\n", sum);
    return 0;
}
"""

UPROBE_BPF = r"""
#include <linux/ptrace.h>
#include <bpf/bpf_tracing.h>
__u64 calls = 0;
__u64 ret_sum = 0;

SEC("uprobe")
int on_call(struct pt_regs *ctx) { __sync_fetch_and_add(&calls, 1); return 0; }

SEC("uretprobe")
int on_return(struct pt_regs *ctx) { __sync_fetch_and_add(&ret_sum, PT_REGS_RC(ctx)); return 0; }
"""


@pytest.fixture(scope="module")
def target_binary() -> Path:
    cache = ROOT / ".cache" / "test-objects"
    cache.mkdir(parents=True, exist_ok=True)
    out = cache / f"uprobe-target-{hashlib.sha256(TARGET_C.encode()).hexdigest()[:12]}"
    if not out.exists():
        src = out.with_suffix(".c")
        src.write_text(TARGET_C)
        subprocess.run(["gcc", "-O1", "-o", str(out) + ".tmp", str(src)], check=True)
        os.replace(str(out) + ".tmp", out)
    return out


def test_uprobe_and_uretprobe_count_calls(target_binary):
    fds, links = open_fds(), set(link_ids())
    with load_c(UPROBE_BPF, "uprobe", ProgType.KPROBE, name="ucall") as calls, \
         load_c(UPROBE_BPF, "uretprobe", ProgType.KPROBE, name="uret") as rets:
        with calls.program.attach_uprobe(str(target_binary), "pybpf_target") as l1, \
             rets.program.attach_uretprobe(str(target_binary), "pybpf_target"):
            assert isinstance(l1, PerfEventLink) and "pybpf_target" in l1.describe()
            out = subprocess.run([str(target_binary), "17"], capture_output=True, text=True, check=True)
        assert calls.global_u64("calls") == 17
        assert int(out.stdout) == sum(2 * i for i in range(17))
        assert rets.global_u64("ret_sum") == int(out.stdout)
        subprocess.run([str(target_binary), "5"], capture_output=True, check=True)
        assert calls.global_u64("calls") == 17  # detached
    _no_leaks(fds, links)


def test_uprobe_pid_filter(target_binary):
    with load_c(UPROBE_BPF, "uprobe", ProgType.KPROBE, name="upid") as calls:
        mine = subprocess.Popen([str(target_binary), "7", "wait"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        try:
            with calls.program.attach_uprobe(str(target_binary), "pybpf_target", pid=mine.pid):
                subprocess.run([str(target_binary), "11"], capture_output=True, check=True)  # another process
                mine.communicate(b"go\n", timeout=10)
            assert calls.global_u64("calls") == 7
        finally:
            mine.kill()
            mine.wait()


def test_uprobe_in_a_library_by_name(target_binary):
    # libc's 'getpid' wrapper, found through the ld.so cache, probed for one process.
    with load_c(UPROBE_BPF, "uprobe", ProgType.KPROBE, name="ulibc") as calls:
        child = subprocess.Popen(["python3", "-c", "import os, sys; sys.stdin.readline(); [os.getpid() for _ in range(9)]"],
                                 stdin=subprocess.PIPE)
        try:
            with calls.program.attach_uprobe("c", "getpid", pid=child.pid) as link:
                assert "libc.so" in link.describe()
                child.communicate(b"go\n", timeout=20)
            assert calls.global_u64("calls") >= 9
        finally:
            child.kill()
            child.wait()


def test_perf_event_sampling_on_every_cpu():
    src = r"""
    __u64 samples = 0;
    SEC("perf_event")
    int on_sample(void *ctx) { __sync_fetch_and_add(&samples, 1); return 0; }
    """
    fds, links = open_fds(), set(link_ids())
    with load_c(src, "perf_event", ProgType.PERF_EVENT, name="sample") as loaded:
        with loaded.program.attach_perf_event(frequency=1000) as group:
            assert isinstance(group, LinkGroup) and len(group) == len(online_cpus())
            end = time.monotonic() + 0.3
            while time.monotonic() < end:
                pass
        n = loaded.global_u64("samples")
        assert n >= 50  # ~300 expected on the busy CPU alone
        time.sleep(0.05)
        assert loaded.global_u64("samples") == n
    _no_leaks(fds, links)


XDP_DROP_PORT = r"""
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1); __type(key, __u32); __type(value, __u64); } drops SEC(".maps");

SEC("xdp")
int drop_port(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    struct iphdr *ip = data + sizeof(*eth);
    struct udphdr *udp = (void *)ip + sizeof(*ip);
    if ((void *)(udp + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP) || ip->protocol != IPPROTO_UDP || ip->ihl != 5)
        return XDP_PASS;
    if (udp->dest != bpf_htons(%d))
        return XDP_PASS;
    __u32 zero = 0;
    __u64 *n = bpf_map_lookup_elem(&drops, &zero);
    if (n)
        __sync_fetch_and_add(n, 1);
    return XDP_DROP;
}
"""


@pytest.mark.parametrize("mode", ["generic", "native"])
def test_xdp_drops_udp_to_one_port_on_veth(mode):
    blocked, open_port = 40000 + os.getpid() % 1000, 41000 + os.getpid() % 1000
    fds, links = open_fds(), set(link_ids())
    with Map.create(MapType.ARRAY, 4, 8, 1, name="drops", key_codec=IntCodec(4), value_codec=IntCodec(8)) as drops, \
         load_c(XDP_DROP_PORT % blocked, "xdp", ProgType.XDP, {"drops": drops}, name="xdpdrop") as loaded, \
         veth_pair_in_namespaces() as (ns_a, if_a, addr_a, ns_b, if_b, addr_b):
        with inside_netns(ns_a):
            receivers = {}
            for port in (blocked, open_port):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.bind((addr_a, port))
                s.settimeout(0.5)
                receivers[port] = s
            link = loaded.program.attach_xdp(if_a, mode=mode)
        with inside_netns(ns_b):
            sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            assert link.info().type == LinkType.XDP
            for i in range(5):
                sender.sendto(b"drop me %d" % i, (addr_a, blocked))
                sender.sendto(b"keep me %d" % i, (addr_a, open_port))
            got = [receivers[open_port].recv(100) for _ in range(5)]
            assert got == [b"keep me %d" % i for i in range(5)]
            with pytest.raises(socket.timeout):
                receivers[blocked].recv(100)
            assert drops[0] == 5
            link.close()
            sender.sendto(b"now passes", (addr_a, blocked))
            assert receivers[blocked].recv(100) == b"now passes"
        finally:
            link.close()
            sender.close()
            for s in receivers.values():
                s.close()
    _no_leaks(fds, links)


SHORT_ONLY = [  # socket filter: keep datagrams of at most 16 bytes, drop the rest
    Instruction(0x61, 0, 1, 0, 0),      # r0 = skb->len
    Instruction(0x25, 0, 0, 1, 16),     # if r0 > 16 goto drop
    Instruction(0x95),
    Instruction(0xB7, 0, 0, 0, 0),      # drop: r0 = 0
    Instruction(0x95),
]


def test_socket_filter_on_socketpair():
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    b.settimeout(0.2)
    fds = open_fds()
    with Program.load(ProgType.SOCKET_FILTER, SHORT_ONLY, name="short") as prog:
        with prog.attach_socket_filter(b) as link:
            assert "socket filter" in link.describe()
            for msg in (b"short", b"x" * 100, b"ok"):
                a.send(msg)
            assert [b.recv(200), b.recv(200)] == [b"short", b"ok"]
            with pytest.raises(socket.timeout):
                b.recv(200)
        a.send(b"y" * 100)
        assert b.recv(200) == b"y" * 100  # filter removed on close
    assert open_fds() == fds
    a.close()
    b.close()


def test_socket_filter_on_loopback_udp():
    recv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    recv.bind(("127.0.0.1", 0))
    recv.settimeout(0.3)
    send = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with Program.load(ProgType.SOCKET_FILTER, SHORT_ONLY, name="short_udp") as prog:
        with prog.attach("socket", sock=recv.fileno()):
            send.sendto(b"z" * 64, recv.getsockname())
            send.sendto(b"tiny", recv.getsockname())
            assert recv.recv(100) == b"tiny"
    recv.close()
    send.close()


# --- mistakes: one clear LinkError, nothing attached, nothing leaked ---------------------


@pytest.fixture
def tracepoint_program():
    with Program.load(ProgType.TRACEPOINT, [Instruction(0xB7, 0, 0, 0, 0), Instruction(0x95)], name="tp0") as p:
        yield p


def test_attach_errors_are_clear_and_leave_nothing(tracepoint_program, target_binary):
    fds, links = open_fds(), set(link_ids())
    prog = tracepoint_program
    with pytest.raises(LinkError, match=r"no tracepoint syscalls/sys_enter_getppidd.*did you mean sys_enter_getppid"):
        prog.attach_tracepoint("syscalls", "sys_enter_getppidd")
    with pytest.raises(LinkError, match="no tracepoint category 'sycalls'.*did you mean syscalls"):
        prog.attach("tracepoint/sycalls/sys_enter_read")
    with pytest.raises(LinkError, match=r"TRACEPOINT program 'tp0' to XDP on lo: that hook needs a XDP program"):
        prog.attach_xdp("lo")
    with pytest.raises(LinkError, match="no network interface 'nosuch0'"):
        prog.attach_xdp("nosuch0")
    with pytest.raises(LinkError, match="needs a KPROBE program"):
        prog.attach_uprobe(str(target_binary), "pybpf_target")
    with pytest.raises(LinkError, match="raw tracepoint .* needs a RAW_TRACEPOINT"):
        prog.attach_raw_tracepoint("sys_enter")
    devnull = os.open("/dev/null", os.O_RDONLY)
    with Program.load(ProgType.SOCKET_FILTER, SHORT_ONLY) as filt:
        with pytest.raises(LinkError, match=f"fd {devnull} is not an open socket"):
            filt.attach_socket_filter(devnull)
    os.close(devnull)
    _no_leaks(fds, links)


def test_uprobe_and_raw_tp_errors(target_binary):
    fds, links = open_fds(), set(link_ids())
    with Program.load(ProgType.KPROBE, [Instruction(0xB7, 0, 0, 0, 0), Instruction(0x95)], name="k0") as prog:
        with pytest.raises(LinkError, match=r"no function 'pybpf_targt' in .*did you mean pybpf_target"):
            prog.attach_uprobe(str(target_binary), "pybpf_targt")
        with pytest.raises(LinkError, match="no such file"):
            prog.attach_uprobe("/nonexistent/binary", "main")
        with pytest.raises(LinkError, match="neither an executable on PATH nor a library"):
            prog.attach_uprobe("libdoesnotexist", "main")
        with pytest.raises(LinkError, match="no process with pid 999999999"):
            prog.attach_uprobe(str(target_binary), "pybpf_target", pid=999999999)
    with Program.load(ProgType.RAW_TRACEPOINT, [Instruction(0xB7, 0, 0, 0, 0), Instruction(0x95)], name="r0") as raw:
        with pytest.raises(LinkError, match="the kernel has no raw tracepoint no_such_tp"):
            raw.attach_raw_tracepoint("no_such_tp")
        with pytest.raises(LinkError, match="kprobe do_sys_open: that hook needs a KPROBE program"):
            raw.attach("kprobe/do_sys_open")
        with pytest.raises(LinkError, match="cannot auto-attach section 'struct_ops/x'"):
            raw.attach("struct_ops/x")
    _no_leaks(fds, links)


def test_xdp_second_attach_is_busy():
    with veth_pair_in_namespaces() as (ns_a, if_a, *_):
        with Program.load(ProgType.XDP, [Instruction(0xB7, 0, 0, 0, 2), Instruction(0x95)], name="pass") as prog, \
             inside_netns(ns_a):
            with prog.attach_xdp(if_a, mode="generic") as first:
                assert isinstance(first, BPFLink)
                with pytest.raises(LinkError, match="another XDP program is attached"):
                    prog.attach_xdp(if_a, mode="generic")
