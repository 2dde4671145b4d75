"""Helpers in the VM: printk output, identity, reads, strings, loops and callbacks, custom helpers."""

from __future__ import annotations

import io

import pytest

from conftest import compile_bpf
from pybpf.errors import VMError, VMFault
from pybpf.object import ObjectSpec
from pybpf.vm import VM, Identity
from pybpf.vm.constants import ProgType
from vmcode import EXIT, call, mov

PREAMBLE = """
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
char LICENSE[] SEC("license") = "GPL";
"""


def load(source: str, name: str, **options):
    return ObjectSpec.from_file(compile_bpf(PREAMBLE + source, name=name)).load(backend="vm", **options)


PRINTK = r"""
long results[4];

SEC("tracepoint/syscalls/sys_enter_getpid")
int say(void *ctx)
{
    char name[] = "vm";
    results[0] = bpf_printk("hello %s pid=%d %x", name, 42, 255);
    results[1] = bpf_printk("bad %q");
    results[2] = bpf_printk("%d %d %d %d", 1, 2, 3, 4);   /* trace_vprintk: more than 3 arguments */
    return 0;
}
"""


def test_printk_writes_kernel_formatted_lines_to_the_trace_stream():
    out = io.StringIO()
    obj = load(PRINTK, "printk", trace_output=out)
    obj.programs["say"].test_run(ctx=bytes(16))
    assert out.getvalue() == "hello vm pid=42 ff\n1 2 3 4\n"
    ok, bad, many, _ = obj.bss["results"]
    assert ok == len("hello vm pid=42 ff") and bad == -22 and many == len("1 2 3 4")


IDENTITY = r"""
__u64 values[6];
char comm[16];

SEC("tracepoint/syscalls/sys_enter_getpid")
int who(void *ctx)
{
    values[0] = bpf_get_current_pid_tgid();
    values[1] = bpf_get_current_uid_gid();
    values[2] = bpf_get_current_task();
    values[3] = bpf_get_smp_processor_id();
    values[4] = bpf_ktime_get_ns();
    values[5] = bpf_get_prandom_u32();
    bpf_get_current_comm(comm, sizeof(comm));
    return 0;
}
"""


def test_identity_helpers_report_the_configured_identity():
    ident = Identity(pid=1234, tgid=1200, uid=1000, gid=100, comm=b"worker-process-name", task=0xFFFF888012345678)
    obj = load(IDENTITY, "identity", identity=ident, cpus=4, seed=7)
    obj.programs["who"].test_run(ctx=bytes(16), cpu=3)
    values = obj.bss["values"]
    assert values[:4] == [(1200 << 32) | 1234, (100 << 32) | 1000, 0xFFFF888012345678, 3]
    assert values[4] > 0 and 0 <= values[5] < 1 << 32
    assert obj.bss["comm"] == "worker-process-"  # 15 characters and the NUL, like TASK_COMM_LEN


STRINGS = r"""
long results[8];
char copy[8];

struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 3); __type(key, __u32); __type(value, __u64); }
    numbers SEC(".maps");

static long add_value(void *map, __u32 *key, __u64 *value, long *sum)
{
    *sum += *value;
    return *key == 1;  /* stop after the second element */
}

static long count_to(__u32 index, long *total)
{
    *total += index;
    return 0;
}

SEC("tracepoint/syscalls/sys_enter_getpid")
int strings(void *ctx)
{
    char hay[] = "needle";
    long sum = 0, total = 0;
    results[0] = bpf_strncmp(hay, sizeof(hay), "needle");
    results[1] = bpf_strncmp(hay, 3, "nee");
    results[2] = bpf_strncmp(hay, sizeof(hay), "needlz") < 0;
    results[3] = bpf_probe_read_kernel_str(copy, sizeof(copy), hay);
    results[4] = bpf_probe_read_kernel(copy, 4, (void *)16);   /* unreadable: -EFAULT, zeroed */
    results[5] = bpf_for_each_map_elem(&numbers, add_value, &sum, 0);
    results[6] = sum;
    results[7] = bpf_loop(5, count_to, &total, 0) * 100 + total;
    return 0;
}
"""


def test_strings_probe_reads_and_callback_helpers():
    obj = load(STRINGS, "strings")
    for i, v in enumerate([10, 20, 30]):
        obj.maps["numbers"][i] = v
    obj.programs["strings"].test_run(ctx=bytes(16))
    r = obj.bss["results"]
    assert r[0] == 0 and r[1] == 0 and r[2] == 1
    assert r[3] == 7 and r[4] == -14
    assert r[5] == 2 and r[6] == 30  # two elements visited, the callback stopped the walk
    assert r[7] == 5 * 100 + (0 + 1 + 2 + 3 + 4)


def test_embedders_add_helpers_by_number_or_kernel_name():
    vm = VM()
    seen = []
    vm.helpers.register(0x1000, lambda _vm, a, b: seen.append((a, b)) or a * b, name="multiply", args=2)
    vm.helpers.register("get_numa_node_id", lambda _vm: 3, args=0)
    prog = vm.load([mov(1, 6), mov(2, 7), call(0x1000), mov(6, src=0), call(42), I_add(0, 6), EXIT])
    assert prog.run() == 42 + 3 and seen == [(6, 7)]
    with pytest.raises(VMError, match="no kernel helper is called 'nonsense'"):
        vm.helpers.register("nonsense", lambda _vm: 0)
    with pytest.raises(VMError, match=r"helper bpf_skb_vlan_push \(#18\) is not available"):
        vm.load([call(18), EXIT])


def test_a_helper_raising_an_unexpected_exception_names_the_helper():
    vm = VM()
    vm.helpers.register(0x2000, lambda _vm: 1 // 0, name="broken", args=0)
    with pytest.raises(VMError, match="helper broken failed: ZeroDivisionError"):
        vm.load([call(0x2000), EXIT]).run()


def test_helper_faults_name_the_call_instruction():
    vm = VM()
    prog = vm.load([mov(1, 0), mov(2, 16), call(16), EXIT], type=ProgType.TRACEPOINT)  # get_current_comm(NULL, 16)
    with pytest.raises(VMFault, match="instruction 2: .*call bpf_get_current_comm.*null pointer") as info:
        prog.test_run(ctx=bytes(8))
    assert info.value.pc == 2


def I_add(dst: int, src: int):  # noqa: N802 - reads like the other constructors
    from vmcode import alu

    return alu("add", dst, src)


HOOKED = r"""
__u64 opened;

SEC("tracepoint/syscalls/sys_enter_openat")
int count_open(void *ctx)
{
    opened += *(int *)(ctx + 8);  /* __syscall_nr */
    return 0;
}

SEC("xdp")
int not_attached(struct xdp_md *ctx)
{
    return XDP_PASS;
}
"""


def test_attach_all_and_fire_hooks_like_kernel_events():
    with load(HOOKED, "hooked") as obj:
        links = obj.attach_all()
        assert [link.program.name for link in links] == ["count_open"]
        ctx = (257).to_bytes(4, "little")
        assert obj.vm.fire("tracepoint/syscalls/sys_enter_openat", ctx=bytes(8) + ctx) == [0]
        obj.vm.fire("tracepoint/syscalls/sys_enter_openat", ctx=bytes(8) + ctx)
        assert obj.bss["opened"] == 514
    assert obj.vm.fire("tracepoint/syscalls/sys_enter_openat", ctx=bytes(12)) == []  # detached on close
