"""How long pybpf takes to read a BPF object and apply CO-RE, beside libbpf.

    python bench/bench_object.py [OBJECT.o ...]

Without arguments it compiles a typical tracing tool (the exec/exit/open
tracer below, CO-RE reads through task_struct) with pybpf.compile().  For
each object it prints:

* pybpf ObjectSpec.from_file: cold (first parse in the process) and warm;
* pybpf apply_core against the running kernel: cold (vmlinux BTF parsed on
  first use) and warm (vmlinux cached in the process, the case the goal is
  about: < 150 ms for from_file + CO-RE);
* peak Python memory of a warm from_file + apply_core (tracemalloc);
* libbpf 1.1 (ctypes) bpf_object__open_file, and open + load when run as root
  (load includes CO-RE, map creation and the kernel verifier, so it is context,
  not a like-for-like number).
"""

from __future__ import annotations

import ctypes
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

import pybpf  # noqa: E402
from pybpf.btf import clear_cache  # noqa: E402
from pybpf.object import ObjectSpec  # noqa: E402

TOOL = r"""
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>

struct event { int pid, ppid, uid, exit_code; __u64 duration_ns; char comm[16]; char filename[127]; bool exit; };
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 8192); __type(key, pid_t); __type(value, __u64); } start SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 256 * 1024); } rb SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY); __uint(max_entries, 1); __type(key, int); __type(value, struct event); } heap SEC(".maps");
const volatile unsigned long long min_duration_ns = 0;
const volatile pid_t target_pid = 0;

static __always_inline bool skip(void)
{
    return target_pid && (bpf_get_current_pid_tgid() >> 32) != target_pid;
}

static __noinline int fill(struct event *e, struct task_struct *task)
{
    e->pid = BPF_CORE_READ(task, tgid);
    e->ppid = BPF_CORE_READ(task, real_parent, tgid);
    e->uid = BPF_CORE_READ(task, cred, uid.val);
    bpf_get_current_comm(&e->comm, sizeof(e->comm));
    return 0;
}

SEC("tp/sched/sched_process_exec")
int handle_exec(struct trace_event_raw_sched_process_exec *ctx)
{
    struct task_struct *task = (void *)bpf_get_current_task();
    unsigned fname_off = ctx->__data_loc_filename & 0xFFFF;
    pid_t pid = bpf_get_current_pid_tgid() >> 32;
    __u64 ts = bpf_ktime_get_ns();
    struct event *e;
    if (skip())
        return 0;
    bpf_map_update_elem(&start, &pid, &ts, BPF_ANY);
    e = bpf_ringbuf_reserve(&rb, sizeof(*e), 0);
    if (!e)
        return 0;
    e->exit = false;
    fill(e, task);
    bpf_probe_read_str(&e->filename, sizeof(e->filename), (void *)ctx + fname_off);
    bpf_ringbuf_submit(e, 0);
    return 0;
}

SEC("tp/sched/sched_process_exit")
int handle_exit(struct trace_event_raw_sched_process_template *ctx)
{
    struct task_struct *task = (void *)bpf_get_current_task();
    __u64 id = bpf_get_current_pid_tgid(), *start_ts, duration_ns = 0;
    pid_t pid = id >> 32, tid = (__u32)id;
    struct event *e;
    if (pid != tid || skip())
        return 0;
    start_ts = bpf_map_lookup_elem(&start, &pid);
    if (start_ts)
        duration_ns = bpf_ktime_get_ns() - *start_ts;
    else if (min_duration_ns)
        return 0;
    bpf_map_delete_elem(&start, &pid);
    if (min_duration_ns && duration_ns < min_duration_ns)
        return 0;
    e = bpf_ringbuf_reserve(&rb, sizeof(*e), 0);
    if (!e)
        return 0;
    e->exit = true;
    e->duration_ns = duration_ns;
    fill(e, task);
    e->exit_code = (BPF_CORE_READ(task, exit_code) >> 8) & 0xff;
    if (bpf_core_field_exists(task->__state))
        e->exit_code |= BPF_CORE_READ(task, __state) << 16;
    bpf_ringbuf_submit(e, 0);
    return 0;
}

SEC("tp/syscalls/sys_enter_openat")
int handle_openat(struct trace_event_raw_sys_enter *ctx)
{
    int zero = 0;
    struct event *e = bpf_map_lookup_elem(&heap, &zero);
    if (!e || skip())
        return 0;
    fill(e, (void *)bpf_get_current_task());
    bpf_probe_read_user_str(&e->filename, sizeof(e->filename), (void *)ctx->args[1]);
    return bpf_ringbuf_output(&rb, e, sizeof(*e), 0);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
"""


def _time(fn, repeat: int = 20) -> float:
    """Median wall time of fn() in milliseconds."""
    samples = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1000)
    return statistics.median(samples)


def _libbpf():
    try:
        lib = ctypes.CDLL("libbpf.so.1")
    except OSError:
        return None
    lib.bpf_object__open_file.restype = ctypes.c_void_p
    lib.bpf_object__open_file.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
    lib.bpf_object__load.argtypes = [ctypes.c_void_p]
    lib.bpf_object__close.argtypes = [ctypes.c_void_p]
    silent = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)(lambda *a: 0)
    lib.libbpf_set_print.argtypes = [ctypes.c_void_p]
    lib.libbpf_set_print(ctypes.cast(silent, ctypes.c_void_p))
    lib._keep = silent
    return lib


def bench(path: Path, lib) -> None:
    name = path.name
    clear_cache()
    t = time.perf_counter()
    spec = ObjectSpec.from_file(path)
    cold_parse = (time.perf_counter() - t) * 1000
    t = time.perf_counter()
    results = spec.apply_core()
    cold_core = (time.perf_counter() - t) * 1000
    warm_parse = _time(lambda: ObjectSpec.from_file(path))
    warm_total = _time(lambda: ObjectSpec.from_file(path).apply_core())
    tracemalloc.start()
    ObjectSpec.from_file(path).apply_core()
    peak = tracemalloc.get_traced_memory()[1] / 1024
    tracemalloc.stop()
    insns = sum(len(p.instructions) for p in spec.programs.values())
    print(f"{name}: {len(spec.programs)} programs, {insns} instructions, {len(spec.maps)} maps, "
          f"{len(results)} CO-RE relocations")
    print(f"  pybpf from_file            cold {cold_parse:7.1f} ms   warm {warm_parse:7.1f} ms")
    print(f"  pybpf apply_core           cold {cold_core:7.1f} ms   (parses vmlinux BTF)")
    print(f"  pybpf from_file+apply_core warm {warm_total:7.1f} ms   goal < 150 ms: "
          f"{'met' if warm_total < 150 else 'MISSED'};  peak Python memory {peak:,.0f} KiB")
    if lib is None:
        print("  libbpf: libbpf.so.1 not installed, no comparison")
        return

    def libbpf_open():
        obj = lib.bpf_object__open_file(str(path).encode(), None)
        lib.bpf_object__close(obj)

    def libbpf_load():
        obj = lib.bpf_object__open_file(str(path).encode(), None)
        lib.bpf_object__load(obj)
        lib.bpf_object__close(obj)

    l_open = _time(libbpf_open)
    print(f"  libbpf bpf_object__open    warm {l_open:7.2f} ms   ratio pybpf/libbpf {warm_parse / l_open:6.1f}x")
    try:
        l_load = _time(libbpf_load, repeat=5)
        print(f"  libbpf open+load (CO-RE + kernel verifier, context) {l_load:7.1f} ms   "
              f"ratio pybpf(parse+CO-RE)/libbpf(open+load) {warm_total / l_load:5.2f}x")
    except OSError:
        pass


def main() -> int:
    paths = [Path(p) for p in sys.argv[1:]]
    if not paths:
        src = Path("/tmp") / f"pybpf-bench-tool-{id(TOOL):x}.bpf.c"
        src.write_text(TOOL)
        spec = pybpf.compile(src)
        paths = [Path(spec.path)]
        src.unlink()
    lib = _libbpf()
    for p in paths:
        bench(p, lib)
    return 0


if __name__ == "__main__":
    sys.exit(main())
