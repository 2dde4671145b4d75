"""Feature probes: does this kernel offer map type X, program type Y, helper Z?

Each probe creates the smallest possible object (a one-entry map, a two
instruction program) and looks at how the kernel answers; results are cached
for the life of the process.  Errors use them to tell "your kernel lacks this"
from "your arguments are wrong".
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..btf import BTFFeatures

from ..errors import BPFError, NotSupportedError
from .syscall import bpf_errno, kernel_error, CAP_BPF
from .uapi import (
    ENOTSUPP, HELPER_IDS, HELPERS, MAP_TYPE_MIN_KERNEL, PROG_TYPE_MIN_KERNEL, AttachType, Cmd, MapCreateAttr,
    MapFlags, MapType, ProgFlags, ProgLoadAttr, ProgType,
)

_MOV_R0_0 = struct.pack("<BBhi", 0xB7, 0, 0, 0)
_EXIT = struct.pack("<BBhi", 0x95, 0, 0, 0)
_LICENSE = ctypes.create_string_buffer(b"GPL")

# Program types that only load with a specific expected attach type.
_PROBE_ATTACH = {
    ProgType.CGROUP_SOCK_ADDR: AttachType.CGROUP_INET4_CONNECT,
    ProgType.SK_LOOKUP: AttachType.SK_LOOKUP,
    ProgType.CGROUP_SOCKOPT: AttachType.CGROUP_GETSOCKOPT,
    ProgType.NETFILTER: AttachType.NETFILTER,
}
# Types that cannot load without a BTF attach target: a verifier log proves the type exists.
_NEEDS_TARGET = frozenset({ProgType.TRACING, ProgType.EXT, ProgType.LSM, ProgType.STRUCT_OPS})


def kernel_release() -> str:
    return os.uname().release


def kernel_version() -> tuple[int, int, int]:
    """(major, minor, patch) of the running kernel, from uname."""
    parts = []
    for piece in kernel_release().split("-")[0].split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    while len(parts) < 3:
        parts.append(0)
    return parts[0], parts[1], parts[2]


def kernel_version_code() -> int:
    """LINUX_VERSION_CODE of the running kernel (kprobe programs of old kernels check it)."""
    major, minor, patch = kernel_version()
    return (major << 16) | (minor << 8) | min(patch, 255)


@cache
def kernel_config() -> dict[str, str]:
    """The running kernel's build options (CONFIG_X -> 'y'/'m'/value), from /proc/config.gz or
    /boot/config-RELEASE; empty when neither is readable.  Options that are 'not set' are absent."""
    import gzip

    text = ""
    for path, opener in (("/proc/config.gz", gzip.open), (f"/boot/config-{kernel_release()}", open)):
        try:
            with opener(path, "rt") as f:
                text = f.read()
            break
        except OSError:
            continue
    config: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("CONFIG_") and "=" in line:
            key, _, value = line.partition("=")
            config[key] = value.strip('"')
    return config


def config_cause(option: str) -> str | None:
    """'CONFIG_X is not set in this kernel' when the kernel config is known and lacks ``option``."""
    config = kernel_config()
    name = option if option.startswith("CONFIG_") else f"CONFIG_{option}"
    if config and name not in config:
        return f"{name} is not set in this kernel's configuration"
    return None


def lockdown_mode() -> str | None:
    """The kernel lockdown level ('none', 'integrity', 'confidentiality'), or None when unknown.

    Read from securityfs; when it is not mounted, it is mounted in a private mount
    namespace of a short-lived child so this process's view does not change.
    """
    for path in ("/sys/kernel/security/lockdown",):
        try:
            with open(path) as f:
                return _selected(f.read())
        except OSError:
            pass
    import subprocess

    script = ("mkdir -p /tmp/.pybpf-securityfs-$$ && mount -t securityfs securityfs /tmp/.pybpf-securityfs-$$ && "
              "cat /tmp/.pybpf-securityfs-$$/lockdown; umount /tmp/.pybpf-securityfs-$$ 2>/dev/null; "
              "rmdir /tmp/.pybpf-securityfs-$$")
    try:
        out = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return _selected(out.stdout) if out.returncode == 0 and out.stdout.strip() else None


def _selected(text: str) -> str | None:
    for word in text.split():
        if word.startswith("[") and word.endswith("]"):
            return word[1:-1]
    return None


@cache
def trampoline_refusal_cause() -> str:
    """Why this kernel refuses BPF trampolines (fentry/fexit/fmod_ret/LSM) to a privileged process.

    Trampolines are attached through ftrace direct calls; the evidence collected
    here names what is missing or locked: kernel config, the ftrace function
    interface, kernel lockdown.
    """
    reasons = []
    for option in ("DYNAMIC_FTRACE_WITH_DIRECT_CALLS", "FUNCTION_TRACER", "BPF_JIT"):
        cause = config_cause(option)
        if cause:
            reasons.append(cause)
    try:
        with open(os.path.join(_tracefs_dir(), "available_filter_functions")) as f:
            f.read(1)
    except PermissionError:
        reasons.append("the kernel's ftrace function interface refuses access "
                       "(available_filter_functions: EPERM), so functions cannot be hooked")
    except OSError:
        pass
    mode = lockdown_mode()
    if mode and mode != "none":
        reasons.append(f"kernel lockdown is '{mode}'")
    if not reasons:
        return "the kernel refused with EPERM although every capability is present"
    return "; ".join(reasons)


def _tracefs_dir() -> str:
    from .fs import tracefs

    try:
        return tracefs()
    except BPFError:
        return "/sys/kernel/tracing"


def _probe_map_attr(map_type: MapType) -> tuple[MapCreateAttr, list]:
    keep: list = []
    attr = MapCreateAttr(map_type=int(map_type), key_size=4, value_size=4, max_entries=1)
    if map_type == MapType.LPM_TRIE:
        attr.key_size, attr.value_size, attr.map_flags = 8, 8, MapFlags.NO_PREALLOC
    elif map_type in (MapType.QUEUE, MapType.STACK, MapType.BLOOM_FILTER):
        attr.key_size = 0
    elif map_type in (MapType.RINGBUF, MapType.USER_RINGBUF):
        attr.key_size = attr.value_size = 0
        attr.max_entries = os.sysconf("SC_PAGE_SIZE")
    elif map_type == MapType.ARENA:
        attr.key_size = attr.value_size = 0
        attr.map_flags = MapFlags.MMAPABLE
    elif map_type == MapType.STACK_TRACE:
        attr.value_size = 8
    elif map_type in (MapType.CGROUP_STORAGE, MapType.PERCPU_CGROUP_STORAGE):
        attr.key_size, attr.value_size, attr.max_entries = 16, 8, 0
    elif map_type in (MapType.SK_STORAGE, MapType.INODE_STORAGE, MapType.TASK_STORAGE, MapType.CGRP_STORAGE):
        from .btf_object import KernelBTF, minimal_btf

        data, key_id, value_id = minimal_btf(8)
        btf = KernelBTF.load(data)
        keep.append(btf)
        attr.value_size, attr.max_entries, attr.map_flags = 8, 0, MapFlags.NO_PREALLOC
        attr.btf_fd, attr.btf_key_type_id, attr.btf_value_type_id = btf.fd, key_id, value_id
    elif map_type in (MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS):
        inner = MapCreateAttr(map_type=int(MapType.ARRAY), key_size=4, value_size=4, max_entries=1)
        fd, err = bpf_errno(Cmd.MAP_CREATE, inner)
        if err:
            raise kernel_error(err, "cannot probe map-in-map support", (CAP_BPF,))
        keep.append(fd)
        attr.inner_map_fd = fd
    elif map_type == MapType.STRUCT_OPS:
        attr.btf_vmlinux_value_type_id = 1
    return attr, keep


@cache
def supports_map_type(map_type: MapType) -> bool:
    """Whether BPF_MAP_CREATE knows ``map_type`` (creates a tiny map of it)."""
    attr, keep = _probe_map_attr(MapType(map_type))
    try:
        fd, err = bpf_errno(Cmd.MAP_CREATE, attr)
    finally:
        for k in keep:
            k.close() if hasattr(k, "close") else os.close(k)
    if fd >= 0:
        os.close(fd)
        return True
    if err in (errno.EPERM, errno.EACCES):
        raise kernel_error(err, f"cannot probe BPF_MAP_TYPE_{MapType(map_type).name}", (CAP_BPF,))
    if map_type == MapType.STRUCT_OPS:
        return err == ENOTSUPP  # it exists, but type id 1 is no struct_ops type
    return err not in (errno.EINVAL, errno.E2BIG, errno.EOPNOTSUPP, ENOTSUPP)


_LOG = ctypes.create_string_buffer(64 * 1024)  # reused: thousands of helper probes would each zero 64 KiB


def _load(prog_type: int, insns: bytes, expected_attach_type: int = 0, flags: int = 0,
          log: bool = True) -> tuple[int, int, str]:
    code = ctypes.create_string_buffer(insns, len(insns))
    _LOG[0] = b"\0"
    attr = ProgLoadAttr(prog_type=prog_type, insn_cnt=len(insns) // 8, insns=ctypes.addressof(code),
                        license=ctypes.addressof(_LICENSE), expected_attach_type=expected_attach_type,
                        prog_flags=flags)
    if log:
        attr.log_level, attr.log_size, attr.log_buf = 1, len(_LOG), ctypes.addressof(_LOG)
    fd, err = bpf_errno(Cmd.PROG_LOAD, attr)
    if fd >= 0:
        os.close(fd)
    return fd, err, _LOG.value.decode(errors="replace")


def _probe_load(prog_type: ProgType, insns: bytes) -> tuple[int, int, str]:
    flags = ProgFlags.SLEEPABLE if prog_type == ProgType.SYSCALL else 0
    return _load(int(prog_type), insns, int(_PROBE_ATTACH.get(prog_type, 0)), int(flags))


@cache
def supports_prog_type(prog_type: ProgType) -> bool:
    """Whether BPF_PROG_LOAD knows ``prog_type`` (loads ``r0 = 0; exit``)."""
    fd, err, log = _probe_load(ProgType(prog_type), _MOV_R0_0 + _EXIT)
    if fd >= 0:
        return True
    if log:
        return True  # the verifier ran: the type exists (it only lacked an attach target)
    if err in (errno.EPERM, errno.EACCES) and prog_type not in _NEEDS_TARGET:
        raise kernel_error(err, f"cannot probe BPF_PROG_TYPE_{ProgType(prog_type).name}", (CAP_BPF,))
    return err not in (errno.EINVAL, errno.E2BIG, errno.EOPNOTSUPP, ENOTSUPP)


@cache
def supports_helper(prog_type: ProgType, helper: int | str) -> bool:
    """Whether programs of ``prog_type`` may call ``helper`` (a name like 'ringbuf_output' or an id)."""
    helper_id = HELPER_IDS[helper.removeprefix("bpf_")] if isinstance(helper, str) else helper
    call = struct.pack("<BBhi", 0x85, 0, 0, helper_id)
    fd, err, log = _probe_load(ProgType(prog_type), call + _MOV_R0_0 + _EXIT)
    if fd >= 0:
        return True
    return not ("invalid func " in log or "unknown func " in log or "program of this type cannot use helper" in log)


def require_map_type(map_type: MapType) -> None:
    if not supports_map_type(map_type):
        raise NotSupportedError(f"BPF_MAP_TYPE_{MapType(map_type).name} maps", MAP_TYPE_MIN_KERNEL.get(MapType(map_type)))


def require_prog_type(prog_type: ProgType) -> None:
    if not supports_prog_type(prog_type):
        raise NotSupportedError(f"BPF_PROG_TYPE_{ProgType(prog_type).name} programs",
                                PROG_TYPE_MIN_KERNEL.get(ProgType(prog_type)))


def helper_name(helper_id: int) -> str:
    return f"bpf_{HELPERS[helper_id]}" if 0 <= helper_id < len(HELPERS) else f"helper#{helper_id}"


# --- the whole picture: what `pybpf feature` (and `bpftool feature probe`) reports ---------

def _insn(opcode: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", opcode, dst | (src << 4), off, imm)


_MISC_PROBES = {
    # BPF_MAXINSNS (4096) + 1 instructions: loads only with the 1M instruction limit (5.2+)
    "have_large_insn_limit": _insn(0xB7) * 4096 + _EXIT,
    # r0 = 10; do r0 -= 1 while r0 != 0: a bounded loop (5.3+)
    "have_bounded_loops": _insn(0xB7, 0, 0, 0, 10) + _insn(0x17, 0, 0, 0, 1) + _insn(0x55, 0, 0, -2, 0) + _EXIT,
    # jlt (v2: 4.14+)
    "have_v2_isa_extension": _MOV_R0_0 + _insn(0xA5, 0, 0, 1, 0) + _insn(0xB7, 0, 0, 0, 1) + _EXIT,
    # jlt on 32-bit registers (v3: 5.1+)
    "have_v3_isa_extension": _MOV_R0_0 + _insn(0xA6, 0, 0, 1, 0) + _insn(0xB7, 0, 0, 0, 1) + _EXIT,
    # sign-extending move r0 = (s8) r0 (v4: 6.6+)
    "have_v4_isa_extension": _MOV_R0_0 + _insn(0xBF, 0, 0, 8, 0) + _EXIT,
}

BTF_KINDS = ("int", "ptr", "array", "struct", "union", "enum", "fwd", "typedef", "volatile", "const", "restrict",
             "func", "func_proto", "var", "datasec", "float", "decl_tag", "type_tag", "enum64")


def _btf_blob(types: bytes, strings: bytes) -> bytes:
    header = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types), len(strings))
    return header + types + strings


def _btf_type(name: int, kind: int, vlen: int, size_or_type: int, kind_flag: int = 0) -> bytes:
    return struct.pack("<III", name, (kind_flag << 31) | (kind << 24) | vlen, size_or_type)


def btf_kind_probe(kind: str) -> bytes:
    """A tiny BTF blob whose last type is of ``kind`` (type 1 is always 'int')."""
    strings = b"\0int\0x\0"
    name_int, name_x = 1, 5
    t = _btf_type(name_int, 1, 0, 4) + struct.pack("<I", (1 << 24) | 32)   # [1] int, signed 32 bits
    extra = {
        "int": b"",
        "ptr": _btf_type(0, 2, 0, 1),
        "array": _btf_type(0, 3, 0, 0) + struct.pack("<III", 1, 1, 2),
        "struct": _btf_type(name_x, 4, 1, 4) + struct.pack("<III", name_x, 1, 0),
        "union": _btf_type(name_x, 5, 1, 4) + struct.pack("<III", name_x, 1, 0),
        "enum": _btf_type(name_x, 6, 1, 4) + struct.pack("<Ii", name_x, 0),
        "fwd": _btf_type(name_x, 7, 0, 0),
        "typedef": _btf_type(name_x, 8, 0, 1),
        "volatile": _btf_type(0, 9, 0, 1),
        "const": _btf_type(0, 10, 0, 1),
        "restrict": _btf_type(0, 2, 0, 1) + _btf_type(0, 11, 0, 2),
        "func_proto": _btf_type(0, 13, 1, 1) + struct.pack("<II", name_x, 1),
        "func": _btf_type(0, 13, 1, 1) + struct.pack("<II", name_x, 1) + _btf_type(name_x, 12, 0, 2),
        "var": _btf_type(name_x, 14, 0, 1) + struct.pack("<I", 1),
        "datasec": _btf_type(name_x, 14, 0, 1) + struct.pack("<I", 1) + _btf_type(name_x, 15, 1, 4)
        + struct.pack("<III", 2, 0, 4),
        "float": _btf_type(name_x, 16, 0, 4),
        "decl_tag": _btf_type(name_x, 4, 1, 4) + struct.pack("<III", name_x, 1, 0) + _btf_type(name_x, 17, 0, 2)
        + struct.pack("<i", -1),
        "type_tag": _btf_type(0, 2, 0, 3) + _btf_type(name_x, 18, 0, 1),
        "enum64": _btf_type(name_x, 19, 1, 8) + struct.pack("<III", name_x, 0, 1),
    }[kind]
    return _btf_blob(t + extra, strings)


@cache
def supports_btf_kind(kind: str) -> bool:
    """Whether BPF_BTF_LOAD accepts BTF using ``kind`` ('func', 'decl_tag', 'enum64'...)."""
    from .uapi import BTFLoadAttr

    data = btf_kind_probe(kind)
    buf = ctypes.create_string_buffer(data, len(data))
    fd, err = bpf_errno(Cmd.BTF_LOAD, BTFLoadAttr(btf=ctypes.addressof(buf), btf_size=len(data)))
    if fd >= 0:
        os.close(fd)
        return True
    if err in (errno.EPERM, errno.EACCES):
        raise kernel_error(err, "cannot probe BTF support", (CAP_BPF,))
    return False


def _sysctl(name: str) -> int | None:
    try:
        with open(f"/proc/sys/{name.replace('.', '/')}") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


_CONFIG_OPTIONS = (
    "CONFIG_BPF", "CONFIG_BPF_SYSCALL", "CONFIG_HAVE_EBPF_JIT", "CONFIG_BPF_JIT", "CONFIG_BPF_JIT_ALWAYS_ON",
    "CONFIG_DEBUG_INFO_BTF", "CONFIG_DEBUG_INFO_BTF_MODULES", "CONFIG_CGROUPS", "CONFIG_CGROUP_BPF",
    "CONFIG_CGROUP_NET_CLASSID", "CONFIG_SOCK_CGROUP_DATA", "CONFIG_BPF_EVENTS", "CONFIG_KPROBE_EVENTS",
    "CONFIG_UPROBE_EVENTS", "CONFIG_TRACING", "CONFIG_FTRACE_SYSCALLS", "CONFIG_FUNCTION_ERROR_INJECTION",
    "CONFIG_BPF_KPROBE_OVERRIDE", "CONFIG_NET", "CONFIG_XDP_SOCKETS", "CONFIG_LWTUNNEL_BPF", "CONFIG_NET_ACT_BPF",
    "CONFIG_NET_CLS_BPF", "CONFIG_NET_CLS_ACT", "CONFIG_NET_SCH_INGRESS", "CONFIG_XFRM", "CONFIG_IP_ROUTE_CLASSID",
    "CONFIG_IPV6_SEG6_BPF", "CONFIG_BPF_LIRC_MODE2", "CONFIG_BPF_STREAM_PARSER", "CONFIG_NETFILTER_XT_MATCH_BPF",
    "CONFIG_BPF_LSM", "CONFIG_NETFILTER_BPF_LINK", "CONFIG_NET_XGRESS", "CONFIG_NETKIT", "CONFIG_KPROBES",
    "CONFIG_FPROBE", "CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS", "CONFIG_HZ",
)
_feature_report: dict | None = None


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return "unknown-boot"


def feature_cache_path() -> str:
    """Where probe results are kept: ~/.cache/pybpf/features-RELEASE-BOOTID.json (a reboot or another
    kernel probes again)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "pybpf", f"features-{kernel_release()}-{_boot_id()}.json")


def probe_features(*, use_cache: bool = True, helpers: bool = True) -> dict:
    """Everything this kernel offers, in bpftool's JSON layout (system_config, syscall_config,
    program_types, map_types, helpers, misc) plus btf_kinds and the v4 ISA.

    Probing loads a few thousand tiny programs; results are cached for the process
    and on disk per kernel release and boot (``use_cache=False`` probes afresh).
    """
    global _feature_report
    import json

    path = feature_cache_path()
    if use_cache:
        if _feature_report is not None and (not helpers or _feature_report.get("helpers")):
            return _feature_report
        try:
            with open(path) as f:
                cached = json.load(f)
            if not helpers or cached.get("helpers"):
                _feature_report = cached
                return cached
        except (OSError, ValueError):
            pass
    config = kernel_config()
    report: dict = {
        "system_config": {
            "unprivileged_bpf_disabled": _sysctl("kernel.unprivileged_bpf_disabled"),
            "bpf_jit_enable": _sysctl("net.core.bpf_jit_enable"),
            "bpf_jit_harden": _sysctl("net.core.bpf_jit_harden"),
            "bpf_jit_kallsyms": _sysctl("net.core.bpf_jit_kallsyms"),
            "bpf_jit_limit": _sysctl("net.core.bpf_jit_limit"),
            **{opt: config.get(opt) for opt in _CONFIG_OPTIONS},
        },
        "syscall_config": {"have_bpf_syscall": True},
        "program_types": {}, "map_types": {}, "helpers": {}, "misc": {}, "btf_kinds": {},
    }
    for ptype in ProgType:
        if ptype != ProgType.UNSPEC:
            report["program_types"][f"have_{ptype.name.lower()}_prog_type"] = supports_prog_type(ptype)
    for mtype in MapType:
        if mtype != MapType.UNSPEC:
            report["map_types"][f"have_{mtype.name.lower()}_map_type"] = supports_map_type(mtype)
    if helpers:
        for ptype in ProgType:
            if ptype == ProgType.UNSPEC:
                continue
            key = f"{ptype.name.lower()}_available_helpers"
            usable = ptype not in _NEEDS_TARGET and report["program_types"][f"have_{ptype.name.lower()}_prog_type"]
            report["helpers"][key] = [helper_name(h) for h in range(1, len(HELPERS)) if supports_helper(ptype, h)] \
                if usable else []
    for name, code in _MISC_PROBES.items():
        fd, _err, _log = _load(int(ProgType.SOCKET_FILTER), code, log=False)
        report["misc"][name] = fd >= 0
    for kind in BTF_KINDS:
        report["btf_kinds"][f"have_{kind}_btf_kind"] = supports_btf_kind(kind)
    _feature_report = report
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            json.dump(report, f)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only home: the in-process cache still holds
    return report


# --- what the object loader adapts to ----------------------------------------------


def _btf_loads(data: bytes) -> bool:
    from .uapi import BTFLoadAttr

    buf = ctypes.create_string_buffer(data, len(data))
    fd, err = bpf_errno(Cmd.BTF_LOAD, BTFLoadAttr(btf=ctypes.addressof(buf), btf_size=len(data)))
    if fd >= 0:
        os.close(fd)
        return True
    if err in (errno.EPERM, errno.EACCES):
        raise kernel_error(err, "cannot probe BTF support", (CAP_BPF,))
    return False


@cache
def supports_btf() -> bool:
    """Whether BPF_BTF_LOAD accepts the plainest BTF there is (Linux 4.18+)."""
    from ..btf import probe_btf

    return _btf_loads(probe_btf("btf"))


@cache
def btf_features() -> "BTFFeatures":
    """Which BTF kinds the kernel accepts, as pybpf.btf's sanitizer wants to know (probed once per process)."""
    from ..btf import BTFFeatures, probe_btf

    if not supports_btf():
        return BTFFeatures.none()
    return BTFFeatures(**{name: _btf_loads(probe_btf(name)) for name in BTFFeatures.names()})


@cache
def supports_mmapable_arrays() -> bool:
    """Whether array maps may be created with BPF_F_MMAPABLE (5.5+): global data is then read without syscalls."""
    attr = MapCreateAttr(map_type=int(MapType.ARRAY), key_size=4, value_size=4, max_entries=1,
                         map_flags=int(MapFlags.MMAPABLE))
    fd, err = bpf_errno(Cmd.MAP_CREATE, attr)
    if fd >= 0:
        os.close(fd)
        return True
    if err in (errno.EPERM, errno.EACCES):
        raise kernel_error(err, "cannot probe BPF_F_MMAPABLE", (CAP_BPF,))
    return False


@cache
def bpf_unavailable() -> str | None:
    """Why this process cannot use bpf() (no privilege, no syscall, not Linux), or None when it can."""
    import sys

    if not sys.platform.startswith("linux"):
        return f"the kernel backend needs Linux (this is {sys.platform})"
    attr = MapCreateAttr(map_type=int(MapType.ARRAY), key_size=4, value_size=4, max_entries=1)
    try:
        fd, err = bpf_errno(Cmd.MAP_CREATE, attr)
    except OSError as exc:
        return f"the bpf() system call failed: {exc}"
    if fd >= 0:
        os.close(fd)
        return None
    if err == errno.ENOSYS:
        return "this kernel has no bpf() system call (CONFIG_BPF_SYSCALL is off)"
    if err in (errno.EPERM, errno.EACCES):
        from .syscall import missing_capabilities

        missing = missing_capabilities((CAP_BPF,))
        return (f"no bpf() privilege ({', '.join(missing) or 'EPERM'}): run as root or grant CAP_BPF "
                "(+ CAP_PERFMON for tracing, CAP_NET_ADMIN for networking)")
    return f"bpf() refuses to create a map here ({errno.errorcode.get(err, err)})"
