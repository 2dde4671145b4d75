// uprobe: count calls of a function in a user-space program and sum its first argument.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

u64 calls = 0;
u64 arg_sum = 0;

SEC("uprobe")
int BPF_KPROBE(on_call, long arg)
{
    __sync_fetch_and_add(&calls, 1);
    __sync_fetch_and_add(&arg_sum, arg);
    return 0;
}

char LICENSE[] SEC("license") = "GPL";
