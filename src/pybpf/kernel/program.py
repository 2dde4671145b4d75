"""Live BPF programs: load (with a complete verifier log on failure), run, attach, pin."""

from __future__ import annotations

import ctypes
import errno
import os
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from ..errors import BPFError, KernelError, NotSupportedError
from .fd import PinnableObject
from .features import kernel_version_code, supports_prog_type
from .maps import object_name
from .syscall import (
    CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON, CAP_SYS_ADMIN, bpf_errno, fd_by_id, fd_kind, kernel_error,
    missing_capabilities, obj_info, open_pinned,
)
from .uapi import ENOTSUPP, PROG_TYPE_MIN_KERNEL, AttachType, Cmd, ProgInfoStruct, ProgLoadAttr, ProgType, TestRunAttr
from .verifier import SourceLine, run_with_log, verifier_error

_TRACING_TYPES = frozenset({
    ProgType.KPROBE, ProgType.TRACEPOINT, ProgType.PERF_EVENT, ProgType.RAW_TRACEPOINT,
    ProgType.RAW_TRACEPOINT_WRITABLE, ProgType.TRACING, ProgType.LSM, ProgType.EXT,
})
_NETWORK_TYPES = frozenset({
    ProgType.SCHED_CLS, ProgType.SCHED_ACT, ProgType.XDP, ProgType.LWT_IN, ProgType.LWT_OUT,
    ProgType.LWT_XMIT, ProgType.LWT_SEG6LOCAL, ProgType.SK_SKB, ProgType.SK_MSG, ProgType.FLOW_DISSECTOR,
    ProgType.SK_LOOKUP, ProgType.NETFILTER, ProgType.SOCK_OPS, ProgType.CGROUP_SKB,
})
_TRAMPOLINE_TYPES = frozenset({ProgType.TRACING, ProgType.LSM, ProgType.EXT})
_TRAMPOLINE_KINDS = {
    AttachType.TRACE_FENTRY: "fentry", AttachType.TRACE_FEXIT: "fexit", AttachType.MODIFY_RETURN: "fmod_ret",
    AttachType.TRACE_RAW_TP: "tp_btf", AttachType.TRACE_ITER: "iterator",
}


def _type_name(prog_type: int) -> str:
    try:
        return ProgType(prog_type).name
    except ValueError:
        return f"type {prog_type}"


def _caps_for(prog_type: int) -> tuple[int, ...]:
    if prog_type in _TRACING_TYPES:
        return (CAP_BPF, CAP_PERFMON)
    if prog_type in _NETWORK_TYPES:
        return (CAP_BPF, CAP_NET_ADMIN)
    return (CAP_BPF,)


def instruction_bytes(instructions: Any) -> bytes:
    """Encoded instructions from bytes, a pybpf.isa Program, or an iterable of Instructions."""
    if isinstance(instructions, (bytes, bytearray, memoryview)):
        code = bytes(instructions)
    elif hasattr(instructions, "encode") and not isinstance(instructions, str):
        code = instructions.encode()
    else:
        code = b"".join(insn.encode() for insn in instructions)
    if not code or len(code) % 8:
        raise BPFError(f"program code must be a non-empty multiple of 8 bytes, got {len(code)} bytes")
    return code


@dataclass(frozen=True)
class TestRunResult:
    """What BPF_PROG_TEST_RUN returned: the program's return value, output data/context, ns per run."""

    __test__ = False  # not a pytest test class, despite the name

    retval: int
    data_out: bytes
    ctx_out: bytes
    duration: int


@dataclass(frozen=True)
class ProgramInfo:
    type: ProgType | int
    id: int
    name: str
    tag: str
    xlated_size: int
    jited_size: int
    map_ids: tuple[int, ...]
    btf_id: int
    run_time_ns: int
    run_count: int
    verified_insns: int
    gpl_compatible: bool
    load_time: int  # ns since boot; see introspect.loaded_at for the wall clock
    uid: int = 0
    recursion_misses: int = 0
    ifindex: int = 0
    attach_btf_id: int = 0
    attach_btf_obj_id: int = 0
    nr_func_info: int = 0
    nr_line_info: int = 0
    nr_jited_ksyms: int = 0


def program_info(fd: int, what: str = "program") -> ProgramInfo:
    """BPF_OBJ_GET_INFO_BY_FD of a program fd (the fd stays the caller's)."""
    first = obj_info(fd, ProgInfoStruct, what)
    ids = (ctypes.c_uint32 * max(first.nr_map_ids, 1))()

    def prepare(info: ProgInfoStruct) -> None:
        info.nr_map_ids = first.nr_map_ids
        info.map_ids = ctypes.addressof(ids)

    i = obj_info(fd, ProgInfoStruct, what, prepare) if first.nr_map_ids else first
    try:
        ptype: ProgType | int = ProgType(i.type)
    except ValueError:
        ptype = i.type
    return ProgramInfo(
        ptype, i.id, i.name.decode(errors="replace"), bytes(i.tag).hex(), i.xlated_prog_len,
        i.jited_prog_len, tuple(ids[:min(i.nr_map_ids, first.nr_map_ids)]), i.btf_id, i.run_time_ns,
        i.run_cnt, i.verified_insns, bool(i.gpl_compatible & 1), i.load_time, i.created_by_uid,
        i.recursion_misses, i.ifindex, i.attach_btf_id, i.attach_btf_obj_id, i.nr_func_info, i.nr_line_info,
        i.nr_jited_ksyms,
    )


class Program(PinnableObject):
    """A program loaded into the kernel.  ``attach_*`` methods return Links; close() unloads
    (the kernel keeps it alive while a link or pin still refers to it)."""

    kind = "program"

    def __init__(self, fd: int, *, name: str = "", type: ProgType | int | None = None,
                 expected_attach_type: int | None = None, section: str = "", attach_btf_id: int = 0,
                 verifier_log: str = ""):
        super().__init__(fd)
        if type is None:
            try:
                info = obj_info(fd, ProgInfoStruct, "program")
            except BaseException:
                self.close()
                raise
            type = info.type
            name = name or info.name.decode(errors="replace")
            attach_btf_id = attach_btf_id or info.attach_btf_id
        try:
            type = ProgType(type)
        except ValueError:
            pass
        self.name = name
        self.type = type
        self.expected_attach_type = expected_attach_type
        self.section = section
        self.attach_btf_id = attach_btf_id
        self.verifier_log = verifier_log

    # -- construction --------------------------------------------------------

    @classmethod
    def load(
        cls,
        type: ProgType | int,
        instructions: Any,
        *,
        license: str = "GPL",
        name: str = "",
        section: str = "",
        expected_attach_type: AttachType | int | None = None,
        flags: int = 0,
        kern_version: int = 0,
        btf: Any = None,
        func_info: bytes = b"",
        func_info_rec_size: int = 8,
        line_info: bytes = b"",
        line_info_rec_size: int = 16,
        source_lines: Sequence[SourceLine] = (),
        attach_btf_id: int = 0,
        attach_btf_obj_fd: int = 0,
        attach_prog_fd: int = 0,
        ifindex: int = 0,
        fd_array: Sequence[int] = (),
        log_level: int = 0,
        log_size: int = 0,
    ) -> "Program":
        """Load a program (BPF_PROG_LOAD).

        ``instructions``: bytes, a pybpf.isa Program or Instructions, already
        relocated (map fds in ld_imm64).  ``btf`` (KernelBTF or fd) with
        ``func_info``/``line_info`` (raw kernel records) lets the kernel annotate
        its log; ``source_lines`` (SourceLine per line_info record) lets a
        VerifierError name the failing C line.  With ``log_level`` > 0 the log
        of a successful load is kept in ``.verifier_log``.

        Raises VerifierError (log, summary, ``instruction``, ``location``),
        NotSupportedError when the kernel lacks the program type, or
        BPFPermissionError naming the missing capability.
        """
        code = instruction_bytes(instructions)
        label = f"{_type_name(type)} program {name!r}" if name else f"{_type_name(type)} program"
        if not kern_version and type == ProgType.KPROBE:
            kern_version = kernel_version_code()
        keep = [ctypes.create_string_buffer(code, len(code)), ctypes.create_string_buffer(license.encode())]
        attr = ProgLoadAttr(
            prog_type=int(type), insn_cnt=len(code) // 8, insns=ctypes.addressof(keep[0]),
            license=ctypes.addressof(keep[1]), kern_version=kern_version, prog_flags=int(flags),
            prog_name=object_name(name), prog_ifindex=ifindex,
            expected_attach_type=int(expected_attach_type or 0), attach_btf_id=attach_btf_id,
            attach_prog_fd=attach_prog_fd or attach_btf_obj_fd,
        )
        if btf is not None:
            attr.prog_btf_fd = btf if isinstance(btf, int) else btf.fd
            for field, data, rec in (("func_info", func_info, func_info_rec_size),
                                     ("line_info", line_info, line_info_rec_size)):
                if data:
                    buf = ctypes.create_string_buffer(bytes(data), len(data))
                    keep.append(buf)
                    setattr(attr, field, ctypes.addressof(buf))
                    setattr(attr, f"{field}_rec_size", rec)
                    setattr(attr, f"{field}_cnt", len(data) // rec)
        if fd_array:
            arr = (ctypes.c_int32 * len(fd_array))(*fd_array)
            keep.append(arr)
            attr.fd_array = ctypes.addressof(arr)

        def attempt(level: int, buf: int, size: int) -> tuple[int, int, int]:
            attr.log_level, attr.log_buf, attr.log_size = level, buf, size
            attr.log_true_size = 0
            fd, err = bpf_errno(Cmd.PROG_LOAD, attr)
            return fd, err, attr.log_true_size

        fd, err, log = run_with_log(attempt, log_level, log_size)
        if err:
            raise _load_error(err, type, label, name, log, source_lines, expected_attach_type)
        return cls(fd, name=name, type=type, expected_attach_type=expected_attach_type, section=section,
                   attach_btf_id=attach_btf_id, verifier_log=log)

    @classmethod
    def from_spec(cls, spec: Any, *, btf: Any = None, log_level: int = 0) -> "Program":
        """Load from a program spec: an object with ``type, instructions`` and optionally
        ``name, section, license, expected_attach_type, flags, kern_version, func_info,
        func_info_rec_size, line_info, line_info_rec_size, source_lines, attach_btf_id,
        attach_btf_obj_fd, attach_prog_fd, ifindex``.  ``instructions`` must be relocated."""

        def g(attr: str, default: Any = None) -> Any:
            value = getattr(spec, attr, None)
            return default if value is None else value

        return cls.load(
            g("type"), g("instructions"), license=g("license", "GPL"), name=g("name", ""), section=g("section", ""),
            expected_attach_type=g("expected_attach_type"), flags=g("flags", 0), kern_version=g("kern_version", 0),
            btf=btf, func_info=g("func_info", b""), func_info_rec_size=g("func_info_rec_size", 8),
            line_info=g("line_info", b""), line_info_rec_size=g("line_info_rec_size", 16),
            source_lines=g("source_lines", ()), attach_btf_id=g("attach_btf_id", 0),
            attach_btf_obj_fd=g("attach_btf_obj_fd", 0), attach_prog_fd=g("attach_prog_fd", 0),
            ifindex=g("ifindex", 0), log_level=log_level,
        )

    @classmethod
    def from_fd(cls, fd: int) -> "Program":
        """Wrap an existing program fd; the Program takes ownership (closes it)."""
        if fd_kind(fd) != "prog":
            raise BPFError(f"fd {fd} is not a BPF program")
        return cls(fd)

    @classmethod
    def from_id(cls, prog_id: int) -> "Program":
        return cls.from_fd(fd_by_id(Cmd.PROG_GET_FD_BY_ID, prog_id, "program"))

    @classmethod
    def from_pin(cls, path: str | os.PathLike) -> "Program":
        p = cls(open_pinned(path, "prog", "program", BPFError))
        p.pinned_path = os.fspath(path)
        return p

    # -- kernel object -------------------------------------------------------

    def info(self) -> ProgramInfo:
        return program_info(self.fd, self.describe())

    @property
    def tag(self) -> str:
        return self.info().tag

    def describe(self) -> str:
        return f"{_type_name(self.type)} program {self.name!r}" if self.name else f"{_type_name(self.type)} program"

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"fd={self._fd}"
        return f"<Program {self.name!r} {_type_name(self.type)} {state}>"

    # -- running -------------------------------------------------------------

    def test_run(
        self,
        data: bytes = b"",
        ctx: bytes | None = None,
        *,
        repeat: int = 1,
        data_size_out: int | None = None,
        ctx_size_out: int | None = None,
        flags: int = 0,
        cpu: int = 0,
        batch_size: int = 0,
    ) -> TestRunResult:
        """Run the program in the kernel on ``data``/``ctx`` (BPF_PROG_TEST_RUN), ``repeat`` times.

        ``duration`` is the kernel's average ns per run.  Output buffers default
        to the input size plus room to grow (XDP may push headers).
        """
        data = bytes(data)
        ctx_in = bytes(ctx) if ctx is not None else b""
        # Generous output buffers: a too-small one would make the kernel fail the run (ENOSPC)
        # after the program already ran, and running it again could repeat its side effects.
        out_size = data_size_out if data_size_out is not None else (len(data) + 4096 if data else 0)
        ctx_out_size = ctx_size_out if ctx_size_out is not None else (max(len(ctx_in), 4096) if ctx_in else 0)
        din = ctypes.create_string_buffer(data, len(data)) if data else None
        dout = ctypes.create_string_buffer(out_size) if out_size else None
        cin = ctypes.create_string_buffer(ctx_in, len(ctx_in)) if ctx_in else None
        cout = ctypes.create_string_buffer(ctx_out_size) if ctx_out_size else None
        attr = TestRunAttr(
            prog_fd=self.fd, data_size_in=len(data), data_size_out=out_size,
            data_in=ctypes.addressof(din) if din else 0, data_out=ctypes.addressof(dout) if dout else 0,
            repeat=repeat, ctx_size_in=len(ctx_in), ctx_size_out=ctx_out_size,
            ctx_in=ctypes.addressof(cin) if cin else 0, ctx_out=ctypes.addressof(cout) if cout else 0,
            flags=flags, cpu=cpu, batch_size=batch_size,
        )
        _, err = bpf_errno(Cmd.PROG_TEST_RUN, attr)
        if err == errno.ENOSPC:
            raise KernelError(err, f"test run of {self.describe()}: the output needs {attr.data_size_out} data bytes "
                                   f"and {attr.ctx_size_out} context bytes; pass larger data_size_out/ctx_size_out")
        if err in (ENOTSUPP, errno.EOPNOTSUPP):
            raise NotSupportedError(f"BPF_PROG_TEST_RUN of {_type_name(self.type)} programs",
                                    reason="this kernel cannot run such programs on demand")
        if err == errno.EINVAL:
            raise KernelError(err, f"test run of {self.describe()} failed: the kernel refused data of {len(data)} "
                                   f"bytes / ctx of {len(ctx_in)} bytes (this program type may need ctx=, no data, "
                                   "or a context whose read-only fields are zero)")
        if err:
            raise kernel_error(err, f"test run of {self.describe()} failed", (CAP_BPF,))
        return TestRunResult(
            attr.retval,
            dout.raw[:attr.data_size_out] if dout else b"",
            cout.raw[:attr.ctx_size_out] if cout else b"",
            attr.duration,
        )

    # -- attaching (implemented in attach.py) ---------------------------------

    def attach(self, target: str | None = None, **options: Any):
        """Attach by a libbpf-style section name (``"tracepoint/syscalls/sys_enter_read"``,
        ``"raw_tp/sched_switch"``, ``"uprobe//bin/bash:readline"``, ``"xdp"`` with
        ``interface=``...); without ``target``, by the section the program came from."""
        from .attach import attach_by_section

        return attach_by_section(self, target or self.section, **options)

    def attach_tracepoint(self, category: str, name: str | None = None, *, cookie: int = 0):
        from .attach import attach_tracepoint

        return attach_tracepoint(self, category, name, cookie=cookie)

    def attach_raw_tracepoint(self, name: str, *, cookie: int = 0):
        from .attach import attach_raw_tracepoint

        return attach_raw_tracepoint(self, name, cookie=cookie)

    def attach_tracing(self, *, cookie: int = 0):
        from .attach import attach_tracing

        return attach_tracing(self, cookie=cookie)

    def attach_uprobe(self, binary: str, symbol: str | int | None = None, *, offset: int = 0,
                      pid: int | None = None, retprobe: bool = False, cookie: int = 0):
        from .attach import attach_uprobe

        return attach_uprobe(self, binary, symbol, offset=offset, pid=pid, retprobe=retprobe, cookie=cookie)

    def attach_uretprobe(self, binary: str, symbol: str | int | None = None, *, offset: int = 0,
                         pid: int | None = None, cookie: int = 0):
        from .attach import attach_uprobe

        return attach_uprobe(self, binary, symbol, offset=offset, pid=pid, retprobe=True, cookie=cookie)

    def attach_perf_event(self, *, frequency: int | None = None, period: int | None = None,
                          cpus: Iterable[int] | None = None, pid: int = -1, event: Any = None):
        from .attach import attach_perf_event

        return attach_perf_event(self, frequency=frequency, period=period, cpus=cpus, pid=pid, event=event)

    def attach_xdp(self, interface: str | int, *, mode: str | None = None, replace: bool = False):
        from .attach import attach_xdp

        return attach_xdp(self, interface, mode=mode, replace=replace)

    def attach_socket_filter(self, sock: Any):
        from .attach import attach_socket_filter

        return attach_socket_filter(self, sock)

    def attach_tcx(self, interface: str | int, direction: str = "ingress", *, before: Any = None, after: Any = None,
                   expected_revision: int = 0):
        from .attach_net import attach_tcx

        return attach_tcx(self, interface, direction, before=before, after=after, expected_revision=expected_revision)

    def attach_tc(self, interface: str | int, direction: str = "ingress", *, priority: int = 0, handle: int = 0,
                  mode: str = "auto"):
        from .attach_net import attach_tc

        return attach_tc(self, interface, direction, priority=priority, handle=handle, mode=mode)

    def attach_netkit(self, interface: str | int, peer: bool = False, *, before: Any = None, after: Any = None):
        from .attach_net import attach_netkit

        return attach_netkit(self, interface, peer, before=before, after=after)

    def attach_netfilter(self, *, family: str | int = "ipv4", hook: str | int = "input", priority: int = 0,
                         defrag: bool = False):
        from .attach_net import attach_netfilter

        return attach_netfilter(self, family=family, hook=hook, priority=priority, defrag=defrag)

    def attach_sk_lookup(self, netns: str | int | None = None):
        from .attach_net import attach_sk_lookup

        return attach_sk_lookup(self, netns)

    def attach_sockmap(self, sockmap: Any, hook: str | None = None):
        from .attach_net import attach_sockmap

        return attach_sockmap(self, sockmap, hook)

    def attach_cgroup(self, cgroup: str | os.PathLike | int, hook: Any = None, *, before: Any = None, after: Any = None):
        """Attach to a cgroup v2 directory; ``hook`` defaults to the one the program was loaded for."""
        from .cgroup import attach_cgroup, hook_of

        if hook is None:
            if self.expected_attach_type is None:
                raise BPFError(f"{self.describe()}: say which cgroup hook (hook='ingress', 'connect4', ...)")
            hook = hook_of(self.expected_attach_type) if self.type != ProgType.CGROUP_SOCK or self.expected_attach_type \
                else "sock_create"
        return attach_cgroup(self, cgroup, hook, before=before, after=after)

    def attach_iter(self, **options: Any):
        """An iterator link (``map=``, ``cgroup=``/``order=``, ``tid=``/``pid=``); read it with ``.read()``."""
        from .iterator import attach_iter

        return attach_iter(self, **options)

    def attach_kprobe(self, function: str, offset: int = 0, *, retprobe: bool = False, cookie: int = 0):
        from .kprobe import attach_kprobe

        return attach_kprobe(self, function, offset, retprobe=retprobe, cookie=cookie)

    def attach_ksyscall(self, syscall: str, *, retprobe: bool = False, cookie: int = 0):
        from .kprobe import attach_ksyscall

        return attach_ksyscall(self, syscall, retprobe=retprobe, cookie=cookie)

    def attach_kprobe_multi(self, functions: Any, *, retprobe: bool = False, cookies: Sequence[int] = ()):
        from .kprobe import attach_kprobe_multi

        return attach_kprobe_multi(self, functions, retprobe=retprobe, cookies=cookies)

    def attach_usdt(self, binary: str, provider: str, name: str, *, pid: int | None = None, cookie: int = 0,
                    specs_map: Any = None, ip_map: Any = None, use_bpf_cookie: bool | None = None):
        from .usdt import attach_usdt

        return attach_usdt(self, binary, provider, name, pid=pid, cookie=cookie, specs_map=specs_map, ip_map=ip_map,
                           use_bpf_cookie=use_bpf_cookie)


def _load_error(err: int, ptype: int, label: str, name: str, log: str,
                source_lines: Sequence[SourceLine], expected_attach_type: int | None) -> BPFError:
    if log.strip():
        return verifier_error(err, name or label, log, source_lines)
    if err == errno.EPERM and ptype in _TRAMPOLINE_TYPES and not missing_capabilities(_caps_for(ptype) + (CAP_SYS_ADMIN,)):
        kind = _TRAMPOLINE_KINDS.get(expected_attach_type, "")
        kind = {ProgType.LSM: "LSM programs", ProgType.EXT: "freplace (EXT) programs"}.get(
            ptype, f"{kind or 'TRACING'} programs")
        from .features import trampoline_refusal_cause

        return NotSupportedError(
            kind, reason="the kernel refuses BPF trampolines here (EPERM although CAP_BPF, CAP_PERFMON and "
                         f"CAP_SYS_ADMIN are present): {trampoline_refusal_cause()}")
    if err in (errno.EPERM, errno.EACCES):
        return kernel_error(err, f"cannot load {label}", _caps_for(ptype))
    if err == errno.EINVAL:
        if isinstance(ptype, ProgType) and not supports_prog_type(ptype):
            return NotSupportedError(f"BPF_PROG_TYPE_{ptype.name} programs", PROG_TYPE_MIN_KERNEL.get(ptype))
        if not isinstance(ptype, ProgType):
            return NotSupportedError(f"program type {ptype}", reason="pybpf does not know it and the kernel refused it")
    if err == errno.E2BIG:
        return KernelError(err, f"cannot load {label}: too many instructions or attributes this kernel does not know")
    return kernel_error(err, f"cannot load {label}", _caps_for(ptype))
