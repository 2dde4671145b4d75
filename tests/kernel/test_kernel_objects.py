"""BTF objects, feature probes and Collections in the real kernel."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT
from kernel_testlib import links_left, load_c, open_fds

from pybpf.errors import BPFError, BTFLoadError
from pybpf.isa import Instruction
from pybpf.kernel import (
    Collection, IntCodec, KernelBTF, Map, MapType, Program, ProgType, btf_ids, link_ids, minimal_btf,
    supports_helper, supports_map_type, supports_prog_type,
)
from pybpf.kernel.features import kernel_version

pytestmark = pytest.mark.kernel


def test_btf_load_and_read_back():
    data, key_id, value_id = minimal_btf(16)
    with KernelBTF.load(data, log_level=1) as btf:
        info = btf.info()
        assert info.id in set(btf_ids()) and info.size == len(data) and not info.kernel_btf
        assert btf.data() == data
        assert "magic: 0xeb9f" in btf.log
        with KernelBTF.from_id(info.id) as again:
            assert again.data() == data


def test_bad_btf_is_rejected_with_the_kernel_log():
    data, _, _ = minimal_btf(8)
    broken = data[:24 + 12] + (0xFFFF).to_bytes(4, "little") + data[24 + 16:]  # INT type with a bogus encoding
    with pytest.raises(BTFLoadError) as exc:
        KernelBTF.load(broken)
    assert exc.value.log and exc.value.errno == 22
    assert "rejected BTF" in str(exc.value)


def test_vmlinux_btf_is_readable_by_id():
    vmlinux = None
    for btf_id in btf_ids():
        with KernelBTF.from_id(btf_id) as btf:
            info = btf.info()
            if info.kernel_btf and info.name == "vmlinux":
                vmlinux = btf.data()
                break
    assert vmlinux is not None
    with open("/sys/kernel/btf/vmlinux", "rb") as f:
        assert f.read() == vmlinux


def test_feature_probes():
    assert supports_map_type(MapType.HASH) and supports_map_type(MapType.RINGBUF)
    assert supports_prog_type(ProgType.XDP) and supports_prog_type(ProgType.TRACEPOINT)
    assert supports_helper(ProgType.TRACEPOINT, "bpf_get_current_pid_tgid")
    assert supports_helper(ProgType.TRACEPOINT, "ringbuf_output")
    assert not supports_helper(ProgType.SOCKET_FILTER, "probe_write_user")  # tracing-only helper
    assert kernel_version() >= (5, 8, 0)


def test_collection_closes_everything_it_owns():
    fds, links = open_fds(), set(link_ids())
    counts = Map.create(MapType.ARRAY, 4, 8, 1, name="counts", key_codec=IntCodec(4), value_codec=IntCodec(8))
    src = r"""
    struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1); __type(key, __u32); __type(value, __u64); } counts SEC(".maps");
    SEC("tracepoint/syscalls/sys_enter_getppid")
    int count(void *ctx) { __u32 k = 0; __u64 *v = bpf_map_lookup_elem(&counts, &k); if (v) __sync_fetch_and_add(v, 1); return 0; }
    """
    loaded = load_c(src, "tracepoint/syscalls/sys_enter_getppid", ProgType.TRACEPOINT, {"counts": counts}, name="coll")
    ret0 = Program.load(ProgType.XDP, [Instruction(0xB7, 0, 0, 0, 2), Instruction(0x95)], name="xdp_pass")
    with Collection({"counts": counts}, {"count": loaded.program, "xdp_pass": ret0}) as coll:
        made = coll.attach_all()  # the tracepoint attaches by its section; XDP needs an interface: skipped
        assert len(made) == 1 and coll.links == made
        os.getppid()
        assert coll.maps["counts"][0] >= 1
        with pytest.raises(BPFError, match="no program 'nope' \\(there are: count, xdp_pass\\)"):
            coll.program("nope")
    assert coll.closed and counts.closed and loaded.program.closed and ret0.closed
    assert made[0].closed
    # what the object still holds: its BTF and its own handle on the map it was given
    assert open_fds() - fds == {loaded.object.btf.fd, loaded.object.maps["counts"].fd}
    loaded.close()
    assert loaded.object.maps["counts"].closed and loaded.object.btf.closed
    assert open_fds() == fds and links_left(links) == set()


@pytest.mark.skipif(shutil.which("capsh") is None, reason="capsh (libcap2-bin) is not installed")
@pytest.mark.parametrize("drop, action, missing", [
    ("cap_bpf,cap_sys_admin,cap_perfmon", "Map.create(MapType.HASH, 4, 4, 1)", "missing CAP_BPF (or CAP_SYS_ADMIN)"),
    ("cap_sys_admin,cap_perfmon", "Program.load(ProgType.TRACEPOINT, RET0)", "missing CAP_PERFMON (or CAP_SYS_ADMIN)"),
])
def test_permission_errors_name_the_missing_capability(drop, action, missing):
    code = ("import sys\nfrom pybpf.errors import BPFPermissionError\nfrom pybpf.isa import Instruction as I\n"
            "from pybpf.kernel import Map, MapType, Program, ProgType\n"
            "RET0 = [I(0xB7, 0, 0, 0, 0), I(0x95)]\n"
            f"try:\n    {action}\nexcept BPFPermissionError as exc:\n    print(exc)\n    sys.exit(3)\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    proc = subprocess.run(["capsh", f"--drop={drop}", "--", "-c", f"{sys.executable} -c \"$0\"", code],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert missing in proc.stdout and "permission denied" in proc.stdout


@pytest.mark.skipif(shutil.which("unshare") is None, reason="unshare (util-linux) is not installed")
def test_missing_bpffs_and_tracefs_are_mounted():
    # In a private mount namespace (nothing changes for other processes): unmount both, then use them.
    code = (
        "import ctypes, os\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "for path in ('/sys/kernel/tracing', '/sys/fs/bpf'):\n"
        "    while path in open('/proc/self/mounts').read().split():\n"
        "        assert libc.umount2(path.encode(), 2) == 0, os.strerror(ctypes.get_errno())\n"
        "from pybpf.kernel import Map, MapType, ensure_bpffs, tracefs\n"
        "from pybpf.kernel.perf import tracepoint_id\n"
        "assert tracepoint_id('syscalls', 'sys_enter_getppid') > 0\n"
        "with Map.create(MapType.ARRAY, 4, 4, 1) as m:\n"
        "    m.pin('/sys/fs/bpf/pybpf_mount_test')\n"
        "mounts = [line.split()[1:3] for line in open('/proc/self/mounts')]\n"
        "print(['/sys/kernel/tracing', 'tracefs'] in mounts, ['/sys/fs/bpf', 'bpf'] in mounts,\n"
        "      os.path.exists('/sys/fs/bpf/pybpf_mount_test'))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    proc = subprocess.run(["unshare", "--mount", "--propagation", "private", sys.executable, "-c", code],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "True", "True"]
    assert not os.path.exists("/sys/fs/bpf/pybpf_mount_test")  # that bpffs lived only in the namespace


def test_feature_report_is_cached_per_kernel_and_boot(tmp_path, monkeypatch):
    import json

    from pybpf.kernel import features

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(features, "_feature_report", None)
    path = features.feature_cache_path()
    with open("/proc/sys/kernel/random/boot_id") as f:
        assert path == str(tmp_path / "pybpf" / f"features-{os.uname().release}-{f.read().strip()}.json")
    report = features.probe_features(helpers=False)
    with open(path) as f:
        assert json.load(f) == report
    assert report["misc"]["have_bounded_loops"] and report["map_types"]["have_ringbuf_map_type"]
    assert features.probe_features(helpers=False) is report  # in-process cache
    monkeypatch.setattr(features, "_feature_report", None)
    with open(path, "w") as f:
        json.dump({**report, "marker": 1}, f)
    assert features.probe_features(helpers=False)["marker"] == 1  # read from disk, not probed again
