// syscount: count system calls by syscall number, per CPU, optionally for one process.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

const volatile u32 target_tgid = 0;   // set from user space before load; 0 = every process

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_HASH);
    __uint(max_entries, 1024);
    __type(key, u32);     // syscall number
    __type(value, u64);   // calls on this CPU
} counts SEC(".maps");

SEC("raw_tracepoint/sys_enter")
int count_syscalls(struct bpf_raw_tracepoint_args *ctx)
{
    u32 tgid = bpf_get_current_pid_tgid() >> 32;
    u32 id = ctx->args[1];
    u64 one = 1, *value;

    if (target_tgid && tgid != target_tgid)
        return 0;
    value = bpf_map_lookup_elem(&counts, &id);
    if (value)
        *value += 1;
    else
        bpf_map_update_elem(&counts, &id, &one, BPF_NOEXIST);
    return 0;
}

char LICENSE[] SEC("license") = "GPL";
