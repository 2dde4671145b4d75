// File access control with BPF LSM: deny file opens to the uids listed in a map.
// Needs a kernel with CONFIG_BPF_LSM and "bpf" in the lsm= boot list; where the
// kernel refuses, pybpf says so and `pybpf seccomp --deny openat` is the fallback.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#define EPERM 1

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 64);
    __type(key, u32);    // uid
    __type(value, u8);   // 1 = deny
} denied_uids SEC(".maps");

SEC("lsm/file_open")
int BPF_PROG(deny_file_open, struct file *file, int ret)
{
    u32 uid = (u32)bpf_get_current_uid_gid();

    if (ret != 0)
        return ret;
    if (bpf_map_lookup_elem(&denied_uids, &uid))
        return -EPERM;
    return 0;
}

char LICENSE[] SEC("license") = "GPL";
