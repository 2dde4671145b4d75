"""Stack traces: a sampling profile of a busy process folded into flame graph input with the
right symbols; bpf_get_stack buffers; kernel and user symbolization against the reference tools."""

from __future__ import annotations

import os
import re
import subprocess
import time

import pytest

from kernel_testlib import build_c_binary, load_c

from pybpf.kernel import IntCodec, Map, MapType, ProgType
from pybpf.kernel.stacks import FoldedStacks, StackTraceMap, decode_stack
from pybpf.kernel.symbolize import ProcessSymbols, kernel_symbols

pytestmark = pytest.mark.kernel

BUSY_C = r"""
#include <stdio.h>
#include <time.h>
__attribute__((noinline)) long pybpf_busy_spin(long n)
{
    volatile long x = 0;
    for (long i = 0; i < n; i++) x += i;
    return x;
}
__attribute__((noinline)) long pybpf_busy_outer(double seconds)
{
    struct timespec a, b;
    long total = 0;
    clock_gettime(CLOCK_MONOTONIC, &a);
    do {
        total += pybpf_busy_spin(100000);
        clock_gettime(CLOCK_MONOTONIC, &b);
    } while ((b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9 < seconds);
    return total;
}
int main(void)
{
    char line[16];
    if (!fgets(line, sizeof line, stdin)) return 1;       /* go */
    printf("%ld\n", pybpf_busy_outer(0.4));
    fflush(stdout);
    return !fgets(line, sizeof line, stdin);               /* stay alive until the profile is read */
}
"""

PROFILE = r"""
#include <linux/bpf_perf_event.h>
struct key { __u32 pid; __s32 user_stack; __s32 kernel_stack; char comm[16]; };
struct { __uint(type, BPF_MAP_TYPE_STACK_TRACE); __uint(max_entries, 1024); __uint(key_size, 4); __uint(value_size, 127 * 8); } stacks SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 4096); __type(key, struct key); __type(value, __u64); } counts SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1); __type(key, __u32); __type(value, __u32); } target SEC(".maps");

SEC("perf_event")
int sample(struct bpf_perf_event_data *ctx)
{
    __u32 zero = 0, *want = bpf_map_lookup_elem(&target, &zero);
    __u32 pid = bpf_get_current_pid_tgid() >> 32;
    if (!want || pid != *want)
        return 0;
    struct key k = {.pid = pid};
    k.user_stack = bpf_get_stackid(ctx, &stacks, BPF_F_USER_STACK);
    k.kernel_stack = bpf_get_stackid(ctx, &stacks, 0);
    bpf_get_current_comm(k.comm, sizeof(k.comm));
    __u64 one = 1, *n = bpf_map_lookup_elem(&counts, &k);
    if (n)
        __sync_fetch_and_add(n, 1);
    else
        bpf_map_update_elem(&counts, &k, &one, BPF_NOEXIST);
    return 0;
}
"""


def test_profile_of_a_busy_loop_folds_to_its_symbols():
    busy = build_c_binary(BUSY_C, "busy", ("-O1", "-fno-omit-frame-pointer"))
    with Map.create(MapType.STACK_TRACE, 4, 127 * 8, 1024, name="stacks") as stacks, \
         Map.create(MapType.HASH, 28, 8, 4096, name="counts", value_codec=IntCodec(8)) as counts, \
         Map.create(MapType.ARRAY, 4, 4, 1, name="target", key_codec=IntCodec(4), value_codec=IntCodec(4)) as target, \
         load_c(PROFILE, "perf_event", ProgType.PERF_EVENT, {"stacks": stacks, "counts": counts, "target": target},
                name="profile") as loaded:
        assert isinstance(stacks, StackTraceMap)
        child = subprocess.Popen([str(busy)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        try:
            target[0] = child.pid
            with loaded.program.attach_perf_event(frequency=997):
                child.stdin.write(b"go\n")
                child.stdin.flush()
                child.stdout.readline()  # the busy loop is over
            folded = FoldedStacks()
            total = 0
            for raw_key, n in counts.items():
                pid, user_id, kernel_id = int.from_bytes(raw_key[0:4], "little"), \
                    int.from_bytes(raw_key[4:8], "little", signed=True), int.from_bytes(raw_key[8:12], "little", signed=True)
                comm = raw_key[12:].split(b"\0")[0].decode()
                folded.add(comm, user=stacks.stack(user_id), kernel=stacks.stack(kernel_id), pid=pid, count=n)
                total += n
        finally:
            child.communicate(b"done\n", timeout=10)
    lines = folded.lines()
    assert total >= 100  # ~400 samples expected at 997 Hz over 0.4 s
    hot = [ln for ln in lines if ";pybpf_busy_spin" in ln]
    assert hot, "\n".join(lines[:10])
    assert sum(int(ln.rsplit(" ", 1)[1]) for ln in hot) >= total // 2  # most samples are in the spin loop
    assert any(re.match(rf"^{busy.name[:15]};(.*;)?main;pybpf_busy_outer;pybpf_busy_spin \d+$", ln) for ln in hot)
    for ln in lines:  # flamegraph.pl's input format: frames joined by ';', a space, a count
        assert re.match(r"^[^ ;]+(;[^;]+)* \d+$", ln)


GET_STACK = r"""
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1); __type(key, __u32); __type(value, __u64[33]); } out SEC(".maps");
SEC("tracepoint/syscalls/sys_enter_getppid")
int grab(void *ctx)
{
    __u32 zero = 0;
    __u64 *buf = bpf_map_lookup_elem(&out, &zero);
    if (!buf || buf[0])
        return 0;
    long n = bpf_get_stack(ctx, buf + 1, 32 * 8, BPF_F_USER_STACK);
    buf[0] = n > 0 ? n : 1;
    return 0;
}
"""


def test_get_stack_into_a_map_value():
    with Map.create(MapType.ARRAY, 4, 33 * 8, 1, name="out") as out, \
         load_c(GET_STACK, "tracepoint/syscalls/sys_enter_getppid", ProgType.TRACEPOINT, {"out": out},
                name="getstack") as loaded:
        with loaded.program.attach():
            os.getppid()
        value = out.lookup_raw((0).to_bytes(4, "little"))
    length = int.from_bytes(value[:8], "little")
    assert length > 8 and length % 8 == 0
    ips = decode_stack(value[8:], length)
    assert len(ips) == length // 8
    frames = ProcessSymbols(os.getpid()).resolve(ips[0])
    assert frames.symbol in ("getppid", "__getppid") and frames.module.startswith("libc")


def test_kernel_symbols_match_kallsyms():
    ks = kernel_symbols()
    with open("/proc/kallsyms") as f:
        rows = [line.split() for line in f if " do_nanosleep" in line]
    addr = int(next(r for r in rows if r[2] == "do_nanosleep")[0], 16)
    assert ks.address_of("do_nanosleep") == addr and ks.is_function("do_nanosleep")
    assert str(ks.resolve(addr)) == "do_nanosleep"
    assert str(ks.resolve(addr + 0x15)) == "do_nanosleep+0x15"
    assert ks.resolve(1).symbol is None and str(ks.resolve(0)) == "[unknown]"


def test_user_symbols_match_nm_in_a_pie_process():
    busy = build_c_binary(BUSY_C, "busy", ("-O1", "-fno-omit-frame-pointer"))
    nm = subprocess.run(["nm", str(busy)], capture_output=True, text=True, check=True).stdout
    spin = int(next(ln.split()[0] for ln in nm.splitlines() if ln.endswith(" pybpf_busy_spin")), 16)
    child = subprocess.Popen([str(busy)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        time.sleep(0.05)
        with open(f"/proc/{child.pid}/maps") as f:
            base = next(int(ln.split("-")[0], 16) for ln in f if ln.split()[-1] == str(busy) and " 00000000 " in ln)
        syms = ProcessSymbols(child.pid)
        frame = syms.resolve(base + spin + 3)
        assert (frame.symbol, frame.offset, frame.module) == ("pybpf_busy_spin", 3, busy.name)
        assert str(frame) == f"pybpf_busy_spin+0x3 [{busy.name}]"
        assert str(syms.resolve(8)) == "[unknown]"
        vdso = syms.resolve(_vdso_symbol_address(child.pid, "__vdso_clock_gettime"))
        assert vdso.symbol in ("__vdso_clock_gettime", "clock_gettime") and vdso.module == "[vdso]"  # aliases
    finally:
        child.communicate(b"go\ndone\n", timeout=10)


def _vdso_symbol_address(pid: int, name: str) -> int:
    from pybpf.elf.reader import ELFFile

    with open(f"/proc/{pid}/maps") as f:
        start, end = next((int(a, 16), int(b, 16)) for a, b in
                          (ln.split()[0].split("-") for ln in f if ln.rstrip().endswith("[vdso]")))
    with open(f"/proc/{pid}/mem", "rb") as mem:
        mem.seek(start)
        elf = ELFFile(mem.read(end - start), machine=None)
    sym = next(s for s in elf.dynamic_symbols if s.name == name)
    load = next(seg for seg in elf.segments if seg.type == 1)
    return start + sym.value - load.vaddr
