"""pybpf's VM against the kernel's BPF_PROG_TEST_RUN on bpf-benchmark-style programs.

Five XDP programs written for this benchmark (prime sieve over a global array,
a log2 loop, memcpy of packet bytes to the stack, strcmp of two packet halves,
a 20-way switch) are compiled with clang, loaded from the same ObjectSpec into
the VM and into the kernel, and run on the same packet.  For each: the
instructions one run executes (counted by the VM), the VM's time per run and
instructions per second with the compiled engine (and the reference
interpreter), the kernel's time per run (JIT, test_run's own duration) and the
ratio kernel/VM.  Results must agree; a mismatch aborts.

Run:  python bench/bench_vm.py [--repeat N] [--no-kernel] [--interpreter]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "src"))

from pybpf.object import ObjectSpec  # noqa: E402
from pybpf.vm import VM, load_spec  # noqa: E402

SOURCE = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
char LICENSE[] SEC("license") = "GPL";

#define SIEVE 1024
__u8 sieve[SIEVE];

SEC("xdp")
int prime_sieve(struct xdp_md *ctx)
{
    __u32 count = 0;
    for (__u32 i = 0; i < SIEVE; i++)
        sieve[i] = i >= 2;
    for (__u32 n = 2; n < 32; n++) {        /* 32 * 32 = SIEVE */
        if (!sieve[n])
            continue;
        for (__u32 j = n * n; j < SIEVE; j += n)
            sieve[j] = 0;
    }
    for (__u32 i = 0; i < SIEVE; i++)
        count += sieve[i];
    return count;
}

SEC("xdp")
int log2_loop(struct xdp_md *ctx)
{
    __u64 acc = 0;
    for (__u32 i = 1; i < 4000; i++) {
        __u64 v = (__u64)i * 2654435761u;
        __u32 r = 0;
        while (v >>= 1)
            r++;
        acc += r;
    }
    return acc;
}

SEC("xdp")
int memcpy_loop(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    __u8 buf[256];
    if (data + 256 > data_end)
        return 0;
    __u32 sum = 0;
    for (int rep = 0; rep < 40; rep++) {
        for (int i = 0; i < 256; i++)
            buf[i] = ((__u8 *)data)[i] + rep;
        sum += buf[rep];
    }
    return sum;
}

SEC("xdp")
int strcmp_loop(struct xdp_md *ctx)
{
    char *data = (void *)(long)ctx->data;
    char *data_end = (void *)(long)ctx->data_end;
    if ((void *)data + 512 > (void *)data_end)
        return 0;
    int equal = 0;
    for (int rep = 0; rep < 8; rep++) {    /* more would exceed the verifier's jump history */
        int i = 0;
        while (i < 255 && data[i] == data[256 + i] && data[i])
            i++;
        equal += i;
    }
    return equal;
}

static __always_inline __u32 classify(__u32 v)
{
    switch (v & 31) {
    case 0: return 11; case 1: return 23; case 2: return 5; case 3: return 77; case 4: return 13;
    case 5: return 2; case 6: return 99; case 7: return 41; case 8: return 7; case 9: return 66;
    case 10: return 3; case 11: return 18; case 12: return 27; case 13: return 31; case 14: return 8;
    case 15: return 55; case 16: return 1; case 17: return 90; case 18: return 12; case 19: return 44;
    default: return 0;
    }
}

SEC("xdp")
int switch_loop(struct xdp_md *ctx)
{
    __u32 acc = 0;
    for (__u32 i = 0; i < 5000; i++)
        acc += classify(i * 7 + acc);
    return acc;
}
"""

PROGRAMS = ["prime_sieve", "log2_loop", "memcpy_loop", "strcmp_loop", "switch_loop"]
HALF = bytes(i % 255 + 1 for i in range(256))
PACKET = HALF + HALF + bytes(64)


def compile_source() -> str:
    clang = shutil.which("clang-19") or shutil.which("clang")
    if clang is None:
        sys.exit("clang-19 is needed to build the benchmark programs")
    key = hashlib.sha256(SOURCE.encode()).hexdigest()[:16]
    out = os.path.join(tempfile.gettempdir(), f"pybpf-bench-vm-{os.getuid()}-{key}.o")
    if not os.path.exists(out):
        src = out[:-2] + ".c"
        with open(src, "w") as f:
            f.write(SOURCE)
        subprocess.run([clang, "-target", "bpf", "-mcpu=v3", "-O2", "-g", "-c", "-I/usr/include/x86_64-linux-gnu",
                        src, "-o", out], check=True)
    return out


def vm_run(path: str, name: str, engine: str, repeat: int) -> tuple[int, int, float]:
    """(retval, instructions per run, seconds per run) of ``name`` in a fresh VM."""
    vm = VM(engine=engine, budget=1 << 40)
    spec = ObjectSpec.from_file(path)
    prog = load_spec(spec, vm=vm).programs[name]
    first = prog.test_run(PACKET)  # compiles the program, and warms up
    instructions = vm.last_instructions
    start = time.perf_counter()
    result = prog.test_run(PACKET, repeat=repeat)
    elapsed = (time.perf_counter() - start) / repeat
    assert result.retval == first.retval
    return result.retval, instructions, elapsed


def kernel_run(path: str, name: str, repeat: int) -> tuple[int, float] | None:
    """(retval, seconds per run) from the kernel's BPF_PROG_TEST_RUN, or None when bpf() is refused."""
    try:
        from pybpf.kernel import Map, Program
    except Exception:
        return None
    spec = ObjectSpec.from_file(path)
    maps = {}
    try:
        for map_name, ms in spec.maps.items():
            maps[map_name] = m = Map.from_spec(ms)
            if ms.data is not None:
                m.update_raw(bytes(4), bytes(ms.data))
        ps = spec.programs[name]
        code = spec.link_instructions(name, {n: m.fd for n, m in maps.items()})
        with Program.load(ps.type, code, name=name[:15]) as prog:
            result = prog.test_run(PACKET, repeat=repeat)
            return result.retval, result.duration / 1e9
    except Exception as exc:  # no privileges, or the verifier refuses: report, do not crash the bench
        print(f"  kernel: {name}: {exc}".splitlines()[0], file=sys.stderr)
        return None
    finally:
        for m in maps.values():
            m.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20, help="VM runs per program (the kernel does 1000x more)")
    parser.add_argument("--no-kernel", action="store_true", help="skip the kernel side")
    parser.add_argument("--interpreter", action="store_true", help="also time the reference interpreter")
    args = parser.parse_args()
    path = compile_source()
    header = (f"{'program':<12} {'insns/run':>10} {'VM us/run':>10} {'VM M insn/s':>12} "
              f"{'kernel us/run':>14} {'kernel M insn/s':>16} {'kernel/VM':>10}")
    if args.interpreter:
        header += f" {'interp M insn/s':>16}"
    print(header)
    rates = []
    for name in PROGRAMS:
        retval, insns, vm_time = vm_run(path, name, "compiled", args.repeat)
        rate = insns / vm_time / 1e6
        rates.append(rate)
        line = f"{name:<12} {insns:>10} {vm_time * 1e6:>10.0f} {rate:>12.1f}"
        kernel = None if args.no_kernel else kernel_run(path, name, args.repeat * 1000)
        if kernel is not None:
            kretval, ktime = kernel
            if kretval != retval:
                sys.exit(f"{name}: the VM returned {retval}, the kernel {kretval}")
            line += f" {ktime * 1e6:>14.2f} {insns / ktime / 1e6:>16.0f} {vm_time / ktime:>9.0f}x"
        else:
            line += f" {'-':>14} {'-':>16} {'-':>10}"
        if args.interpreter:
            _, _, itime = vm_run(path, name, "interpreter", max(1, args.repeat // 10))
            line += f" {insns / itime / 1e6:>16.2f}"
        print(line)
    print(f"compiled engine: {min(rates):.1f}-{max(rates):.1f} M instructions/s "
          f"(geometric mean {geomean(rates):.1f}); Python {sys.version.split()[0]}")
    return 0


def geomean(values: list[float]) -> float:
    product = 1.0
    for v in values:
        product *= v
    return product ** (1 / len(values))


if __name__ == "__main__":
    sys.exit(main())
