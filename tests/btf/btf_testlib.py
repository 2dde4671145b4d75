"""Shared BPF C sources and reference-tool helpers for the BTF tests."""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
from pathlib import Path

import pytest

BPFTOOL = shutil.which("bpftool")
VMLINUX = Path("/sys/kernel/btf/vmlinux")

needs_bpftool = pytest.mark.skipif(BPFTOOL is None, reason="bpftool is not installed (apt-get install bpftool)")
needs_vmlinux = pytest.mark.skipif(not VMLINUX.exists(), reason="no kernel BTF at /sys/kernel/btf/vmlinux")

# Every BTF kind clang emits: ENUM64 (a 64-bit enumerator), DECL_TAG, TYPE_TAG, FLOAT,
# FUNC linkage, DATASEC/VAR, bitfields, anonymous members, packed structs, arrays of arrays.
ALL_KINDS = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define __user_tag __attribute__((btf_type_tag("user")))
#define __dtag __attribute__((btf_decl_tag("dtag")))

enum big { BIG_A = 1, BIG_B = 0xffffffffffULL };
enum small { S_A = -1, S_B = 2 };
enum __attribute__((packed)) tiny { T_A = 1 };
enum { ANON_X = 7 };

struct inner { int x; char c; };
struct bits { unsigned int a:3, b:5; int c:7; unsigned long long d:40; char e; } __attribute__((packed));
struct packed_s { char a; int b; } __attribute__((packed));
union u { int i; float f; double d; };
typedef struct inner inner_t;
struct node { struct node *next; inner_t payload; };

struct event {
    int pid;
    char comm[16];
    struct inner in;
    struct { int ax; short ay; } anon_named;
    union { int ua; long ub; };
    enum big big;
    enum small sm;
    enum tiny ti;
    float fl;
    double db;
    int *ptr;
    int __user_tag *tagged;
    const volatile int cv;
    int matrix[2][3];
    void (*fn)(int, char *);
    struct bits bf;
    unsigned long long ts;
    int dtagged __dtag;
    struct packed_s ps;
} __dtag;

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 16);
    __type(key, int);
    __type(value, struct event);
} events SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, int);
    __type(value, struct node);
} nodes SEC(".maps");

int global_counter = 0;
long global_data = 3;
const volatile int config = 5;
char buf[32];
union u shared;

__attribute__((noinline)) int helper(struct event *e __dtag, int x) {
    return e->pid + x;
}

static __attribute__((noinline)) int local_helper(int y) {
    return y * 2 + ANON_X;
}

SEC("tracepoint/syscalls/sys_enter_execve")
int handle(void *ctx)
{
    int key = 0;
    struct event *e = bpf_map_lookup_elem(&events, &key);
    struct node *n = bpf_map_lookup_elem(&nodes, &key);
    if (!e || !n)
        return 0;
    global_counter += helper(e, config) + buf[1] + local_helper(key) + shared.i;
    global_data += n->payload.x;
    return e->bf.a + e->ti;
}

char LICENSE[] SEC("license") = "GPL";
"""

# A CO-RE tracing program written against a generated vmlinux.h (no kernel headers).
CORE_PROGRAM = r"""
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 4096);
} events SEC(".maps");

struct event { int pid; int ppid; char comm[16]; };

SEC("tp_btf/sched_process_fork")
int BPF_PROG(on_fork, struct task_struct *parent, struct task_struct *child)
{
    struct event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
    if (!e)
        return 0;
    e->pid = BPF_CORE_READ(child, pid);
    e->ppid = BPF_CORE_READ(parent, tgid);
    bpf_probe_read_kernel_str(e->comm, sizeof(e->comm), parent->comm);
    bpf_ringbuf_submit(e, 0);
    return 0;
}

SEC("raw_tracepoint/sched_switch")
int on_switch(struct bpf_raw_tracepoint_args *ctx)
{
    struct task_struct *prev = (struct task_struct *)ctx->args[1];
    int pid = BPF_CORE_READ(prev, pid);
    return pid > 0 && bpf_core_field_exists(prev->se.vruntime);
}

char LICENSE[] SEC("license") = "GPL";
"""


def bpftool(*args: str, check: bool = True) -> str:
    if BPFTOOL is None:
        pytest.skip("bpftool is not installed")
    proc = subprocess.run([BPFTOOL, *map(str, args)], capture_output=True, text=True, errors="surrogateescape")
    if check and proc.returncode != 0:
        raise AssertionError(f"bpftool {' '.join(map(str, args))} failed: {proc.stderr}")
    return proc.stdout


@functools.lru_cache(maxsize=None)
def bpftool_dump(path: str, fmt: str = "raw", base: str | None = None) -> str:
    """bpftool's listing of a BTF file (cached: vmlinux takes a while)."""
    args = ["-B", base] if base else []
    return bpftool(*args, "btf", "dump", "file", path, "format", fmt)


def bpftool_json(path: str) -> dict:
    return json.loads(bpftool("-j", "btf", "dump", "file", path))
