// XDP firewall: drop IPv4 UDP datagrams to a blocked port, count every verdict.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define ETH_P_IP 0x0800
#define IPPROTO_UDP 17

const volatile u16 blocked_port = 11111;

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 5);      // indexed by XDP verdict: XDP_DROP = 1, XDP_PASS = 2
    __type(key, u32);
    __type(value, u64);
} verdicts SEC(".maps");

static __always_inline int count(u32 verdict)
{
    u64 *n = bpf_map_lookup_elem(&verdicts, &verdict);

    if (n)
        __sync_fetch_and_add(n, 1);
    return verdict;
}

SEC("xdp")
int xdp_firewall(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    struct iphdr *ip;
    struct udphdr *udp;

    if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
        return count(XDP_PASS);
    ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > data_end || ip->protocol != IPPROTO_UDP)
        return count(XDP_PASS);
    udp = (void *)ip + ip->ihl * 4;
    if ((void *)(udp + 1) > data_end)
        return count(XDP_PASS);
    if (udp->dest == bpf_htons(blocked_port))
        return count(XDP_DROP);
    return count(XDP_PASS);
}

char LICENSE[] SEC("license") = "GPL";
