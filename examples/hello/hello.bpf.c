// Hello world: print a line to the trace pipe every time a process calls execve.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

SEC("tracepoint/syscalls/sys_enter_execve")
int hello(void *ctx)
{
    u32 pid = bpf_get_current_pid_tgid() >> 32;
    char comm[16];

    bpf_get_current_comm(comm, sizeof(comm));
    bpf_printk("hello from pid %d (%s)", pid, comm);
    return 0;
}

char LICENSE[] SEC("license") = "GPL";
