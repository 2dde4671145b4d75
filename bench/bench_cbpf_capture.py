"""Live capture at a high packet rate: `pybpf capture` vs tcpdump, same filter, same packets.

Two network namespaces joined by a veth pair (198.18.0.1 <-> 198.18.0.2, names
unique to this run, removed at the end).  A sender in the first namespace
blasts N Ethernet frames as fast as it can through a packet socket; half of
them match the filter.  tcpdump and pybpf capture run at the same time on the
receiving end, each with the filter in the kernel, writing to /dev/null.
Reported per capturer: packets captured, received by the filter and dropped
by the kernel (its own PACKET_STATISTICS summary), and CPU seconds used.

Run as root:  python bench/bench_cbpf_capture.py [--packets N] [--expr EXPR]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(HERE, "..", "src")
sys.path.insert(0, SRC)
sys.path.insert(0, os.path.join(HERE, "..", "tests", "cbpf"))

import cbpf_machine_support as S  # noqa: E402  (namespaces, libpcap compile, packet builders)

SENDER = r"""
import socket, struct, sys, time
dev, n = sys.argv[1], int(sys.argv[2])
frames = [bytes.fromhex(h) for h in sys.argv[3:]]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((dev, 0))
s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 22)
send, k, sent = s.send, len(frames), 0
start = time.perf_counter()
for i in range(n):
    while True:
        try:
            send(frames[i % k])
            break
        except BlockingIOError:
            pass
elapsed = time.perf_counter() - start
print(f"{n} {elapsed}")
"""


def summary(stderr: str) -> tuple[int, int, int]:
    def grab(what: str) -> int:
        m = re.search(rf"(\d+) packets? {what}", stderr)
        return int(m.group(1)) if m else -1
    return grab("captured"), grab("received by filter"), grab("dropped by kernel")


def start(ns: str, argv: list[str]) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=SRC)
    proc = subprocess.Popen(["ip", "netns", "exec", ns, *argv], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, env=env)
    line = proc.stderr.readline()
    if "listening on" not in line:
        proc.kill()
        raise SystemExit(f"{argv[0]} did not start: {line}{proc.stderr.read()}")
    return proc


def stop(proc: subprocess.Popen, expected: int, timeout: float) -> tuple[tuple[int, int, int], float]:
    """Wait for the capturer to see ``expected`` packets (it exits by -c), else interrupt it; returns summary, CPU s."""
    deadline = time.monotonic() + timeout
    while True:  # wait4, not poll(): it also gives the child's CPU time
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            proc.send_signal(signal.SIGINT)
            _, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.05)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return summary(proc.stderr.read()), usage.ru_utime + usage.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--packets", type=int, default=200_000, help="frames to send (half match)")
    parser.add_argument("--expr", default="udp and dst port 4242")
    parser.add_argument("--snaplen", type=int, default=256)
    args = parser.parse_args()
    tcpdump = shutil.which("tcpdump")
    if os.geteuid() != 0 or tcpdump is None or S.LIBPCAP is None:
        print("needs root, tcpdump and libpcap", file=sys.stderr)
        return 1
    expected = args.packets // 2
    with S.PairLab("bench") as pair:
        mac_a, mac_b = (bytes.fromhex(m.replace(":", "")) for m in (pair.mac_a, pair.mac_b))
        frames = [S.ether(mac_b, mac_a, 0x0800, S.ipv4(pair.ip_a, pair.ip_b, 17, S.udp(1000 + i, port, b"x" * 18)))
                  for i, port in enumerate((4242, 9999))]
        prog_file = f"/tmp/pybpf-bench-capture-{os.getpid()}.txt"
        with open(prog_file, "w") as f:
            f.write(S.program_text(S.pcap_compile(args.expr, snaplen=args.snaplen)))
        try:
            theirs = start(pair.ns_b, [tcpdump, "-i", pair.dev_b, "-nn", "-w", "/dev/null", "-s", str(args.snaplen),
                                       "-B", "65536", "-c", str(expected), args.expr])
            ours = start(pair.ns_b, [sys.executable, "-m", "pybpf", "capture", "-i", pair.dev_b, "-w", "/dev/null",
                                     "-s", str(args.snaplen), "-B", "65536", "-c", str(expected), "-F", prog_file])
            sender = subprocess.run(["ip", "netns", "exec", pair.ns_a, sys.executable, "-c", SENDER, pair.dev_a,
                                     str(args.packets), *(f.hex() for f in frames)], capture_output=True, text=True)
            sent, elapsed = sender.stdout.split()
            sent_rate = int(sent) / float(elapsed)
            results = {"tcpdump": stop(theirs, expected, 30), "pybpf capture": stop(ours, expected, 30)}
        finally:
            os.unlink(prog_file)
    print(f"sent {sent} frames in {float(elapsed):.2f} s ({sent_rate / 1e3:.0f} k frames/s), {expected} match "
          f"{args.expr!r}\n")
    print(f"{'capturer':<14} {'captured':>9} {'by filter':>10} {'dropped':>8} {'CPU s':>7} {'k pkts per CPU s':>17}")
    for name, ((captured, received, dropped), cpu) in results.items():
        per_cpu = captured / cpu / 1e3 if cpu else 0
        print(f"{name:<14} {captured:>9} {received:>10} {dropped:>8} {cpu:>7.2f} {per_cpu:>17.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
