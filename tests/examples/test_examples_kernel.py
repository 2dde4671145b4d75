"""The examples and `pybpf run` / `pybpf prog run` against real kernel events.

Each test starts an example (the Python script, or `pybpf run` on its C file) as
a user would, waits until it says it is attached, makes the events happen
itself (an exec, getppid() calls, UDP datagrams through a veth pair, calls of
a function in a gcc-built program), stops it, and checks what it printed.
Whatever a test creates (netns, veth, pins, tracefs instances) is gone after.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "kernel"))

from conftest import ROOT, run_cli  # noqa: E402
from kernel_testlib import (  # noqa: E402
    build_c_binary, inside_netns, ip, links_left, open_fds, veth_pair_in_namespaces,
)

import pybpf  # noqa: E402
from pybpf.kernel import link_ids, prog_ids, tracefs  # noqa: E402

pytestmark = pytest.mark.kernel

EXAMPLES = ROOT / "examples"
READY_TIMEOUT = 90  # clang compiling and the kernel verifying, on a loaded 2-core machine


class Running:
    """A command started in the background: wait for its "attached" line, make events, stop it, read it all."""

    def __init__(self, argv: list[str], ready: str, ready_on: str = "stderr", netns: str | None = None):
        if netns:
            argv = ["ip", "netns", "exec", netns, *argv]
        env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT)
        self.out: list[str] = []
        self.err: list[str] = []
        self._ready = threading.Event()
        self.seen_ready = False
        self._readers = [threading.Thread(target=self._read, args=(self.proc.stdout, self.out, ready_on == "stdout",
                                                                  ready), daemon=True),
                         threading.Thread(target=self._read, args=(self.proc.stderr, self.err, ready_on == "stderr",
                                                                  ready), daemon=True)]
        for t in self._readers:
            t.start()

    def _read(self, stream, into: list[str], watch: bool, ready: str) -> None:
        for raw in stream:
            line = raw.decode(errors="replace").rstrip("\n")
            into.append(line)
            if watch and ready in line:
                self.seen_ready = True
                self._ready.set()
        if watch:
            self._ready.set()  # ended without the line: wait_ready() reports it

    def wait_ready(self) -> None:
        if not self._ready.wait(READY_TIMEOUT) or not self.seen_ready:
            self.stop()
            pytest.fail(f"{self.proc.args} did not get ready (exit {self.proc.returncode}):\n" + "\n".join(self.err))

    def stop(self, settle: float = 0.3, wait: bool = False) -> int:
        """Ctrl-C it (after ``settle`` s for the last events to arrive), or let it end by itself when ``wait``."""
        time.sleep(settle)
        if not wait and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"{self.proc.args} did not stop within 30 s")
        for t in self._readers:
            t.join(5)
        return self.proc.returncode

    def __enter__(self) -> "Running":
        return self

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for t in self._readers:
            t.join(5)
        self.proc.stdout.close()  # now, not when garbage collected (the fd checks count them)
        self.proc.stderr.close()


def script(name: str, *args: str) -> list[str]:
    return [sys.executable, str(EXAMPLES / name / f"{name}.py"), *map(str, args)]


def pybpf_cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "pybpf", *map(str, args)]


def exec_child(tmp_path: Path, name: str = "pybpf_exec_probe") -> tuple[int, str]:
    """Exec a uniquely named program (a copy of /bin/true) from this process: (its pid, its path)."""
    target = tmp_path / name
    if not target.exists():
        shutil.copy("/bin/true", target)
    child = subprocess.Popen([str(target)])
    child.wait()
    return child.pid, str(target)


def no_traceback(text: str) -> None:
    assert "Traceback" not in text, text


# --- hello: bpf_printk lines ---------------------------------------------------------------


def test_pybpf_run_hello_prints_the_childs_pid(tmp_path):
    instance = os.path.join(tracefs(), "instances")
    links = set(link_ids())
    with Running(pybpf_cli("run", EXAMPLES / "hello/hello.bpf.c", "--duration", "3"), ready="attached") as run:
        run.wait_ready()
        own_instance = os.path.join(instance, f"pybpf_run_{run.proc.pid}")
        assert os.path.isdir(own_instance)  # its private trace buffer
        pid, _ = exec_child(tmp_path)
        assert run.stop(settle=0, wait=True) == 0, run.err
    comm = Path("/proc/self/comm").read_text().strip()
    assert any(line.endswith(f": hello from pid {pid} ({comm})") for line in run.out), run.out
    assert not os.path.exists(own_instance)  # removed on exit
    assert links_left(links) == set()  # nor a link outliving the process
    no_traceback("\n".join(run.err))


def test_hello_script_prints_the_childs_pid(tmp_path):
    with Running(script("hello", "--duration", "30"), ready="Saying hello") as run:
        run.wait_ready()
        pid, _ = exec_child(tmp_path)
        assert run.stop(settle=0.5) == 0, run.err
    assert any(line.endswith(f"-{pid}: hello from pid {pid} (" + Path("/proc/self/comm").read_text().strip() + ")")
               for line in run.out), run.out


# --- syscount: per-CPU hash, syscalls by name ---------------------------------------------------


def test_syscount_counts_getppid_of_this_process_exactly():
    calls = 137
    with Running(script("syscount", "--pid", os.getpid(), "--duration", "30", "--top", "100"),
                 ready="Counting system calls") as run:
        run.wait_ready()
        for _ in range(calls):
            os.getppid()
        assert run.stop(settle=0) == 0, run.err
    counts = {}
    for line in run.out[1:]:
        name, count = line.split()
        counts[name] = int(count)
    assert run.out[0].split() == ["SYSCALL", "COUNT"]
    assert counts.get("getppid") == calls, run.out
    assert counts.get("read", 0) >= 1  # the reader threads of this test, by name too


def test_pybpf_run_syscount_with_set_counts_exactly_our_calls():
    calls = 50
    with Running(pybpf_cli("run", EXAMPLES / "syscount/syscount.bpf.c", "--json", "--duration", "30",
                           "--set", f"target_tgid={os.getpid()}"), ready="attached") as run:
        run.wait_ready()
        for _ in range(calls):
            os.getppid()
        assert run.stop(settle=0) == 0, run.err
    records = [json.loads(line) for line in run.out]  # every line of --json output is JSON
    counts = {entry["key"]: entry["value"] for entry in records[-1]["maps"]["counts"]}  # per-CPU values summed
    getppid = 110  # x86-64
    assert counts[getppid] == calls, counts


# --- xdp_firewall: veth pair between two namespaces ------------------------------------------------


def _quiet_link(ns: str, ifname: str, peer_addr: str, peer_mac: str) -> None:
    """No traffic but ours: no IPv6 (router solicitations, MLD) and a static neighbour (no ARP)."""
    subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-qw", f"net.ipv6.conf.{ifname}.disable_ipv6=1"],
                   check=True, capture_output=True)
    ip("-n", ns, "neigh", "replace", peer_addr, "lladdr", peer_mac, "dev", ifname, "nud", "permanent")


def _mac(ns: str, ifname: str) -> str:
    out = subprocess.run(["ip", "-n", ns, "-j", "link", "show", ifname], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)[0]["address"]


def test_xdp_firewall_drops_the_blocked_port_and_counts_verdicts():
    dropped_n, passed_n = 5, 7
    with veth_pair_in_namespaces() as (ns_a, if_a, addr_a, ns_b, if_b, addr_b):
        _quiet_link(ns_a, if_a, addr_b, _mac(ns_b, if_b))
        _quiet_link(ns_b, if_b, addr_a, _mac(ns_a, if_a))
        with inside_netns(ns_b):
            receivers = {}
            for port in (11111, 11112):
                receivers[port] = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                receivers[port].bind((addr_b, port))
                receivers[port].settimeout(0.5)
        with inside_netns(ns_a):
            sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            with Running(script("xdp_firewall", if_b, "--port", "11111", "--duration", "30", "--interval", "60"),
                         ready="Dropping UDP", netns=ns_b) as run:
                run.wait_ready()
                for i in range(max(dropped_n, passed_n)):
                    if i < dropped_n:
                        sender.sendto(b"blocked %d" % i, (addr_b, 11111))
                    if i < passed_n:
                        sender.sendto(b"open %d" % i, (addr_b, 11112))
                got = {port: [] for port in receivers}
                for port, s in receivers.items():
                    try:
                        while True:
                            got[port].append(s.recv(100))
                    except socket.timeout:
                        pass
                assert run.stop(settle=0) == 0, run.err
        finally:
            sender.close()
            for s in receivers.values():
                s.close()
        assert got[11111] == [] and sorted(got[11112]) == sorted(b"open %d" % i for i in range(passed_n))
        assert run.out[-1] == f"total: dropped {dropped_n}, passed {passed_n}", run.out
        assert "xdp" not in subprocess.run(["ip", "-n", ns_b, "link", "show", if_b], capture_output=True,
                                           text=True).stdout  # detached on exit
    assert not os.path.exists(f"/run/netns/{ns_a}") and not os.path.exists(f"/run/netns/{ns_b}")


# --- execsnoop: ring buffer records ------------------------------------------------------------------


def test_execsnoop_script_reports_the_childs_exec(tmp_path):
    with Running(script("execsnoop", "--duration", "30"), ready="FILENAME", ready_on="stdout") as run:
        run.wait_ready()
        pid, path = exec_child(tmp_path)
        assert run.stop() == 0, run.err
    comm = Path("/proc/self/comm").read_text().strip()
    mine = [line.split(None, 4) for line in run.out[1:] if line.split()[0] == str(pid)]
    assert mine == [[str(pid), str(os.getpid()), str(os.getuid()), comm, path]], run.out


def test_pybpf_run_json_lines_carry_the_exec_record(tmp_path):
    with Running(pybpf_cli("run", EXAMPLES / "execsnoop/execsnoop.bpf.c", "--json", "--duration", "30"),
                 ready="attached") as run:
        run.wait_ready()
        pid, path = exec_child(tmp_path, "pybpf_json_probe")
        assert run.stop() == 0, run.err
    records = [json.loads(line) for line in run.out]  # JSON lines, every one
    events = [r["event"] for r in records if r.get("map") == "events" and r["event"]["pid"] == pid]
    assert events == [{"pid": pid, "ppid": os.getpid(), "uid": os.getuid(),
                       "comm": Path("/proc/self/comm").read_text().strip(), "filename": path}]
    assert records[-1] == {"maps": {}, "globals": {}}  # the closing summary (a ring buffer is not listed)


# --- uprobe: calls of a function in a gcc-built program ------------------------------------------

TARGET = r"""
#include <stdlib.h>
__attribute__((noinline)) long pybpf_counted(long x) { __asm__ volatile("" ::: "memory"); return x * 2; }
int main(int argc, char **argv)
{
    long n = atol(argv[1]), total = 0;
    for (long i = 1; i <= n; i++)
        total += pybpf_counted(i);
    return total == n * (n + 1) ? 0 : 1;
}
"""


def test_uprobe_script_counts_every_call():
    binary = build_c_binary(TARGET, "uprobe-counted")
    calls = 23
    with Running(script("uprobe", binary, "pybpf_counted", "--duration", "30", "--interval", "60"),
                 ready="Counting calls") as run:
        run.wait_ready()
        subprocess.run([str(binary), str(calls)], check=True)
        assert run.stop(settle=0) == 0, run.err
    expected = f"total: {calls} calls of pybpf_counted, first arguments summing to {calls * (calls + 1) // 2}"
    assert run.out[-1] == expected, run.out


# --- lsm_file_access: refused here; clearly ---------------------------------------------------------


def test_lsm_file_access_denies_opens_or_says_why_not():
    nobody = 65534
    with Running(script("lsm_file_access", "--deny-uid", nobody, "--duration", "30"), ready="Denying file opens") as run:
        run._ready.wait(READY_TIMEOUT)
        if run.seen_ready:  # attached: a process of that uid cannot open files
            child = os.fork()
            if child == 0:
                code = 3
                try:
                    os.setuid(nobody)
                    os.open("/etc/hostname", os.O_RDONLY)
                    code = 0
                except PermissionError:
                    code = 1
                finally:
                    os._exit(code)
            _, status = os.waitpid(child, 0)
            assert run.stop(settle=0) == 0
            assert os.waitstatus_to_exitcode(status) == 1, "the open was not denied"
            return
        code = run.stop(settle=0, wait=True)
    err = "\n".join(run.err)
    no_traceback(err)
    assert code == 2, err  # the exit status examples/README.md documents for a refusal
    assert run.err[0].startswith("lsm_file_access: the kernel refuses the LSM program: ")
    assert "pybpf seccomp --deny" in err  # the fallback, spelled out
    # the same object through `pybpf run`: one line, status 1
    proc = run_cli("run", EXAMPLES / "lsm_file_access/lsm_file_access.bpf.c", "--duration", "1")
    lines = proc.stderr.decode().splitlines()
    assert proc.returncode == 1 and len(lines) == 1 and lines[0].startswith("pybpf: error: "), lines
    assert "deny_file_open" in lines[0]
    pytest.skip(f"BPF LSM cannot load here, so denying opens is not checked: {run.err[0]}")


# --- prog run against bpftool prog run ------------------------------------------------------------


def _udp_packet(dport: int) -> bytes:
    udp = struct.pack("!HHHH", 40000, dport, 12, 0) + b"ping"
    ip_header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                            bytes((198, 18, 0, 1)), bytes((198, 18, 0, 2)))
    return b"\x02\0\0\0\0\x02" + b"\x02\0\0\0\0\x01" + b"\x08\x00" + ip_header + udp


def _bpftool_run(pinned: str, data_in: Path, data_out: Path, repeat: int) -> int:
    proc = subprocess.run(["bpftool", "prog", "run", "pinned", pinned, "data_in", str(data_in), "data_out",
                           str(data_out), "repeat", str(repeat)], capture_output=True, text=True, check=True)
    first = (proc.stdout + proc.stderr).split("Return value: ", 1)[1]
    return int(first.split(",", 1)[0])


@pytest.mark.skipif(shutil.which("bpftool") is None, reason="bpftool is not installed")
def test_prog_run_matches_bpftool_prog_run(tmp_path):
    obj = tmp_path / "xdp_firewall.bpf.o"
    pybpf.compile(EXAMPLES / "xdp_firewall/xdp_firewall.bpf.c", output=obj)
    pins = {side: f"/sys/fs/bpf/pybpf_examples_{side}_{os.getpid()}" for side in ("bpftool", "pybpf")}
    repeat = 50
    try:
        subprocess.run(["bpftool", "prog", "loadall", str(obj), pins["bpftool"]], check=True, capture_output=True)
        run_cli("prog", "load", obj, pins["pybpf"], check=True)
        for dport, verdict in ((11111, 1), (11112, 2)):  # XDP_DROP, XDP_PASS
            data_in = tmp_path / f"udp{dport}.bin"
            data_in.write_bytes(_udp_packet(dport))
            ours = json.loads(run_cli("prog", "run", obj, "xdp_firewall", "--data-in", data_in, "--repeat", repeat,
                                      "--json", check=True).stdout)
            for side, pin in pins.items():  # bpftool on its own load, and on the program pybpf pinned
                data_out = tmp_path / f"out{dport}-{side}.bin"
                assert _bpftool_run(f"{pin}/xdp_firewall", data_in, data_out, repeat) == ours["retval"] == verdict
                assert data_out.read_bytes() == bytes.fromhex(ours["data_out"]) == data_in.read_bytes()
            vm = json.loads(run_cli("prog", "run", obj, "xdp_firewall", "--data-in", data_in, "--json",
                                    "--backend", "vm", check=True).stdout)
            assert vm["retval"] == verdict and vm["data_out"] == ours["data_out"]
    finally:
        for pin in pins.values():
            shutil.rmtree(pin, ignore_errors=True)
    assert not any(os.path.exists(pin) for pin in pins.values())


def test_prog_load_refusal_leaves_no_pin_directory(tmp_path):
    obj = tmp_path / "xdp_firewall.bpf.o"
    pybpf.compile(EXAMPLES / "xdp_firewall/xdp_firewall.bpf.c", output=obj)
    pin = f"/sys/fs/bpf/pybpf_examples_refused_{os.getpid()}"
    proc = run_cli("prog", "load", obj, pin, "--only", "no_such_program")
    assert proc.returncode == 1 and "no program 'no_such_program'" in proc.stderr.decode()
    assert not os.path.exists(pin)


# --- nothing stays behind ---------------------------------------------------------------------------


def test_closing_an_example_object_leaves_no_fd_link_or_program(tmp_path):
    fds = open_fds()
    spec = pybpf.compile(EXAMPLES / "execsnoop/execsnoop.bpf.c")
    with spec.load(backend="kernel") as obj, obj.maps["events"].reader(codec=spec.btf.codec("struct event")) as ring:
        links = obj.attach_all()
        ours_links = {link.id for link in links}
        ours_progs = {prog.id for prog in obj.programs.values()}
        assert ours_links and ours_links <= set(link_ids()) and ours_progs <= set(prog_ids())
        pid, path = exec_child(tmp_path)
        deadline = time.monotonic() + 5
        seen = []
        while time.monotonic() < deadline and not any(e.pid == pid for e in seen):
            seen += ring.read(timeout=0.2)
        assert any(e.pid == pid and e.filename == path for e in seen)
    assert open_fds() == fds
    assert not ours_links & set(link_ids()) and not ours_progs & set(prog_ids())
