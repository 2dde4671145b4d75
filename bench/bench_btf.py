"""BTF: pybpf vs bpftool on the running kernel's BTF, plus the value codec's decode rate.

Figures, each the best of --runs:

- vmlinux.h: `pybpf btf dump /sys/kernel/btf/vmlinux --format c` vs
  `bpftool btf dump file /sys/kernel/btf/vmlinux format c`, wall time of the whole
  command (interpreter start-up included) and peak RSS, and pybpf in-process;
- raw listing: the same for the default (raw) format;
- interactive lookup: a fresh process opens vmlinux BTF, finds struct task_struct
  and the offsets of all its members;
- codec: decoding ring-buffer-like batches of struct event { int pid; char comm[16];
  char filename[256]; u64 ts; } vs a hand-written struct.Struct + namedtuple;
- with --phases, where the in-process vmlinux.h time goes (parse, string table,
  struct members, ordering, layouts, emitting).

The child Python processes get a private bytecode cache (PYTHONPYCACHEPREFIX), as an
installed package would have; the first run warms it and is not counted.

Run:  python bench/bench_btf.py [--runs N] [--phases]
"""

from __future__ import annotations

import argparse
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections import namedtuple
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from pybpf.btf import BTF, Int, IntEncoding, Member, Struct  # noqa: E402
from pybpf.btf.types import Array  # noqa: E402

VMLINUX = "/sys/kernel/btf/vmlinux"
CACHE_DIR = tempfile.mkdtemp(prefix="pybpf-bench-pyc-")
CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
CHILD_ENV.update(PYTHONPATH=str(ROOT / "src"), PYTHONPYCACHEPREFIX=CACHE_DIR)

LOOKUP = """
import time
t0 = time.perf_counter()
from pybpf.btf import kernel_btf
vmlinux = kernel_btf()
task = vmlinux.find("struct task_struct")
offsets = {m.name: vmlinux.member_offset(task, m.name) for m in task.members if m.name}
print(time.perf_counter() - t0, len(offsets), offsets["pid"])
"""


def run(argv: list[str], env: dict | None = None) -> tuple[float, int, bytes]:
    """(wall seconds, peak RSS in KiB, stdout) of one command.

    Peak RSS comes from GNU time when it is there: a child forked from this (large)
    process would otherwise report this process's size (Linux keeps maxrss across exec).
    """
    timer = ["/usr/bin/time", "-f", "%M"] if os.path.exists("/usr/bin/time") else []
    start = time.perf_counter()
    proc = subprocess.run(timer + argv, capture_output=True, env=env)
    wall = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"{' '.join(argv)} failed: {proc.stderr.decode()[-2000:]}")
    rss = int(proc.stderr.decode().split()[-1]) if timer else 0
    return wall, rss, proc.stdout


def best(argv: list[str], runs: int, env: dict | None = None) -> tuple[float, int, bytes]:
    run(argv, env)  # warm caches (page cache, bytecode)
    results = [run(argv, env) for _ in range(runs)]
    wall = min(r[0] for r in results)
    return wall, max(r[1] for r in results), results[0][2]


def compare(title: str, ours: list[str], theirs: list[str], runs: int) -> None:
    o_wall, o_rss, o_out = best(ours, runs, CHILD_ENV)
    t_wall, t_rss, t_out = best(theirs, runs)
    same = "identical output" if o_out == t_out else f"OUTPUT DIFFERS ({len(o_out)} vs {len(t_out)} bytes)"
    print(f"{title}")
    print(f"  bpftool  {t_wall * 1000:8.0f} ms   peak RSS {t_rss / 1024:6.1f} MiB")
    print(f"  pybpf    {o_wall * 1000:8.0f} ms   peak RSS {o_rss / 1024:6.1f} MiB   "
          f"ratio {o_wall / t_wall:.2f}x time, {o_rss / t_rss:.2f}x memory   ({same})")


def in_process(fmt: str, runs: int) -> float:
    from pybpf.btf.cdump import dump_c
    from pybpf.btf.rawdump import dump_raw

    data = Path(VMLINUX).read_bytes()
    times = []
    for _ in range(runs + 1):
        start = time.perf_counter()
        btf = BTF.from_bytes(data, validate=False)
        (dump_c if fmt == "c" else dump_raw)(btf)
        times.append(time.perf_counter() - start)
    return min(times[1:])


def phases(runs: int) -> None:
    """Best time of each step of the vmlinux.h dump (the steps of CDumper.dump_all)."""
    from itertools import compress

    from pybpf.btf import cdump

    data = Path(VMLINUX).read_bytes()
    names = ("parse", "string table", "struct members", "ordering", "layouts", "emitting")
    best_t = [float("inf")] * len(names)
    for _ in range(runs + 1):
        marks = [time.perf_counter()]
        btf = BTF.from_bytes(data, validate=False)
        marks.append(time.perf_counter())
        dumper = cdump.CDumper(btf)
        btf._all_strings()
        marks.append(time.perf_counter())
        dumper._members = cdump._Members(dumper)
        marks.append(time.perf_counter())
        queue = dumper.order_types(compress(range(dumper.n), dumper.kind.translate(cdump._DECLARABLE_MASK)))
        marks.append(time.perf_counter())
        dumper._plan_layouts()
        marks.append(time.perf_counter())
        dumper.emit_queue(queue)
        "".join(dumper.out)
        marks.append(time.perf_counter())
        best_t = [min(b, t1 - t0) for b, t0, t1 in zip(best_t, marks, marks[1:])]
    print("vmlinux.h in process, step by step (best of each):")
    for name, t in zip(names, best_t):
        print(f"  {name:15} {t * 1000:6.0f} ms")
    print(f"  {'sum':15} {sum(best_t) * 1000:6.0f} ms\n")


def event_codec():
    """struct event { int pid; char comm[16]; char filename[256]; unsigned long long ts; }"""
    b = BTF.new()
    i32 = b.add(Int(name="int", size=4, encoding=IntEncoding.SIGNED))
    char = b.add(Int(name="char", size=1, encoding=IntEncoding.SIGNED))
    u64 = b.add(Int(name="unsigned long long", size=8))
    comm = b.add(Array(type_id=char, index_type_id=i32, nelems=16))
    fname = b.add(Array(type_id=char, index_type_id=i32, nelems=256))
    b.add(Struct(name="event", size=288, members=(Member("pid", i32, 0), Member("comm", comm, 32),
                                                    Member("filename", fname, 160), Member("ts", u64, 2240))))
    return b.codec("struct event")


def bench_codec(runs: int) -> None:
    codec = event_codec()
    batch = 1024
    stride = (codec.size + 8 + 7) // 8 * 8  # ring buffer records: 8-byte header, 8-byte aligned
    records = [codec.encode({"pid": 1000 + i, "comm": "bash", "filename": f"/usr/bin/tool{i}", "ts": i})
               for i in range(batch)]
    buf = b"".join(bytes(8) + r + bytes(stride - 8 - len(r)) for r in records)

    Event = namedtuple("Event", "pid comm filename ts")
    layout = struct.Struct(f"<8x i 16s 256s 4x Q {stride - 8 - 288}x")

    def baseline() -> list:
        return [Event(p, c.partition(b"\0")[0].decode(), f.partition(b"\0")[0].decode(), t)
                for p, c, f, t in layout.iter_unpack(buf)]

    def ours() -> list:
        return codec.decode_many(buf, batch, stride, 8)

    def ours_and_read() -> int:
        n = 0
        for ev in codec.decode_many(buf, batch, stride, 8):
            n += ev.pid + len(ev.comm) + len(ev.filename) + ev.ts
        return n

    def rate(fn, loops: int = 200) -> float:
        fn()
        best_t = min(_timed(fn, loops) for _ in range(runs))
        return batch * loops / best_t / 1e6

    assert ours()[5].filename == "/usr/bin/tool5" and ours()[5] == baseline()[5]._asdict()
    print("codec: struct event { int pid; char comm[16]; char filename[256]; u64 ts; }, batches of 1024")
    print(f"  pybpf decode_many (strings decoded on access)   {rate(ours):6.2f} M events/s")
    print(f"  pybpf decode_many + read every field            {rate(ours_and_read):6.2f} M events/s")
    print(f"  hand-written struct.Struct + namedtuple + str   {rate(baseline):6.2f} M events/s")
    one = records[0]
    start = time.perf_counter()
    for _ in range(100000):
        codec.decode(one)
    print(f"  pybpf decode() one record at a time             {100000 / (time.perf_counter() - start) / 1e6:6.2f} M events/s")


def _timed(fn, loops: int) -> float:
    start = time.perf_counter()
    for _ in range(loops):
        fn()
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5, help="repetitions per figure (best is reported)")
    ap.add_argument("--phases", action="store_true", help="also time each step of the in-process vmlinux.h dump")
    args = ap.parse_args()
    bpftool = shutil.which("bpftool")
    have_kernel_btf = Path(VMLINUX).exists()
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs; best of {args.runs}\n")
    if bpftool and have_kernel_btf:
        py = [sys.executable, "-m", "pybpf", "btf", "dump", VMLINUX]
        compare("vmlinux.h (format c)", py + ["--format", "c"], [bpftool, "btf", "dump", "file", VMLINUX, "format", "c"],
                args.runs)
        print(f"  pybpf in-process (parse + dump, no start-up)   {in_process('c', args.runs) * 1000:6.0f} ms")
        compare("raw listing", py, [bpftool, "btf", "dump", "file", VMLINUX], args.runs)
        print(f"  pybpf in-process (parse + dump, no start-up)   {in_process('raw', args.runs) * 1000:6.0f} ms")
        start_only, _, _ = best([sys.executable, "-c", "pass"], args.runs, CHILD_ENV)
        print(f"python start-up alone: {start_only * 1000:.0f} ms\n")
        if args.phases:
            phases(args.runs)
    else:
        print("bpftool or /sys/kernel/btf/vmlinux missing: skipping the comparisons with bpftool\n")
    if have_kernel_btf:
        results = []
        for _ in range(args.runs):
            wall, rss, out = run([sys.executable, "-c", LOOKUP], CHILD_ENV)
            inner, count, pid_off = out.split()
            results.append((float(inner), wall, rss))
        inner, wall, rss = min(results)
        print(f"open vmlinux BTF, find struct task_struct, offsets of its {count.decode()} named members "
              f"(pid at {pid_off.decode()}):")
        print(f"  {inner * 1000:.0f} ms in process, {wall * 1000:.0f} ms for the whole command, "
              f"peak RSS {rss / 1024:.1f} MiB\n")
    bench_codec(args.runs)
    shutil.rmtree(CACHE_DIR, ignore_errors=True)


if __name__ == "__main__":
    main()
