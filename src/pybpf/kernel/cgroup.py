"""Programs on cgroups (cgroup v2): packet, socket, sysctl, sockopt and device hooks.

A cgroup program sees what the processes of that cgroup (and its
descendants) do.  pybpf attaches with BPF links (BPF_LINK_CREATE with the
cgroup directory's fd, 5.7+), so closing the link detaches it; kernels
without cgroup links get BPF_PROG_ATTACH with BPF_F_ALLOW_MULTI, detached
on close as well.
"""

from __future__ import annotations

import errno
import os
from functools import cache
from typing import Any

from ..errors import LinkError
from .link import BPFLink, Link, ProgAttachLink
from .syscall import CAP_NET_ADMIN, CAP_SYS_ADMIN, bpf_errno, kernel_error
from .uapi import AttachFlags, AttachType, Cmd, LinkCreateAttr, ProgAttachAttr, ProgType

A = AttachType
# hook name (libbpf's SEC suffix after "cgroup/" or the whole "cgroup_skb/..." / "sockops") ->
# (attach type, program type)
CGROUP_HOOKS: dict[str, tuple[AttachType, ProgType]] = {
    "ingress": (A.CGROUP_INET_INGRESS, ProgType.CGROUP_SKB),
    "egress": (A.CGROUP_INET_EGRESS, ProgType.CGROUP_SKB),
    "sock_create": (A.CGROUP_INET_SOCK_CREATE, ProgType.CGROUP_SOCK),
    "sock": (A.CGROUP_INET_SOCK_CREATE, ProgType.CGROUP_SOCK),
    "sock_release": (A.CGROUP_INET_SOCK_RELEASE, ProgType.CGROUP_SOCK),
    "post_bind4": (A.CGROUP_INET4_POST_BIND, ProgType.CGROUP_SOCK),
    "post_bind6": (A.CGROUP_INET6_POST_BIND, ProgType.CGROUP_SOCK),
    "bind4": (A.CGROUP_INET4_BIND, ProgType.CGROUP_SOCK_ADDR),
    "bind6": (A.CGROUP_INET6_BIND, ProgType.CGROUP_SOCK_ADDR),
    "connect4": (A.CGROUP_INET4_CONNECT, ProgType.CGROUP_SOCK_ADDR),
    "connect6": (A.CGROUP_INET6_CONNECT, ProgType.CGROUP_SOCK_ADDR),
    "connect_unix": (A.CGROUP_UNIX_CONNECT, ProgType.CGROUP_SOCK_ADDR),
    "sendmsg4": (A.CGROUP_UDP4_SENDMSG, ProgType.CGROUP_SOCK_ADDR),
    "sendmsg6": (A.CGROUP_UDP6_SENDMSG, ProgType.CGROUP_SOCK_ADDR),
    "sendmsg_unix": (A.CGROUP_UNIX_SENDMSG, ProgType.CGROUP_SOCK_ADDR),
    "recvmsg4": (A.CGROUP_UDP4_RECVMSG, ProgType.CGROUP_SOCK_ADDR),
    "recvmsg6": (A.CGROUP_UDP6_RECVMSG, ProgType.CGROUP_SOCK_ADDR),
    "recvmsg_unix": (A.CGROUP_UNIX_RECVMSG, ProgType.CGROUP_SOCK_ADDR),
    "getpeername4": (A.CGROUP_INET4_GETPEERNAME, ProgType.CGROUP_SOCK_ADDR),
    "getpeername6": (A.CGROUP_INET6_GETPEERNAME, ProgType.CGROUP_SOCK_ADDR),
    "getpeername_unix": (A.CGROUP_UNIX_GETPEERNAME, ProgType.CGROUP_SOCK_ADDR),
    "getsockname4": (A.CGROUP_INET4_GETSOCKNAME, ProgType.CGROUP_SOCK_ADDR),
    "getsockname6": (A.CGROUP_INET6_GETSOCKNAME, ProgType.CGROUP_SOCK_ADDR),
    "getsockname_unix": (A.CGROUP_UNIX_GETSOCKNAME, ProgType.CGROUP_SOCK_ADDR),
    "sysctl": (A.CGROUP_SYSCTL, ProgType.CGROUP_SYSCTL),
    "getsockopt": (A.CGROUP_GETSOCKOPT, ProgType.CGROUP_SOCKOPT),
    "setsockopt": (A.CGROUP_SETSOCKOPT, ProgType.CGROUP_SOCKOPT),
    "dev": (A.CGROUP_DEVICE, ProgType.CGROUP_DEVICE),
    "sockops": (A.CGROUP_SOCK_OPS, ProgType.SOCK_OPS),
}
_BY_ATTACH_TYPE = {at: (name, pt) for name, (at, pt) in reversed(list(CGROUP_HOOKS.items()))}


@cache
def cgroup2_root() -> str:
    """Where the unified (v2) cgroup hierarchy is mounted, from /proc/mounts."""
    candidates = []
    with open("/proc/mounts") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3 and parts[2] == "cgroup2":
                candidates.append(parts[1].replace("\\040", " "))
    if not candidates:
        raise LinkError("no cgroup2 file system is mounted (mount -t cgroup2 none /sys/fs/cgroup)")
    # Prefer the shortest path: /sys/fs/cgroup over a nested /sys/fs/cgroup/unified bind.
    return min(candidates, key=len)


def cgroup_path(cgroup: str | os.PathLike) -> str:
    """An absolute cgroup directory: given as such, or relative to the cgroup2 root."""
    path = os.fspath(cgroup)
    if not os.path.isabs(path):
        path = os.path.join(cgroup2_root(), path)
    return path


def open_cgroup(cgroup: str | os.PathLike | int) -> tuple[int, str]:
    """(fd, label) of a cgroup v2 directory; an int is taken as an fd the caller keeps."""
    if isinstance(cgroup, int):
        return os.dup(cgroup), f"cgroup fd {cgroup}"
    path = cgroup_path(cgroup)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise LinkError(f"no cgroup {path} (cgroup v2 is mounted at {cgroup2_root()})") from None
    except NotADirectoryError:
        raise LinkError(f"{path} is not a cgroup directory") from None
    return fd, f"cgroup {path}"


def hook_of(attach_type: int) -> str:
    found = _BY_ATTACH_TYPE.get(attach_type)
    return found[0] if found else f"attach type {attach_type}"


def attach_cgroup(prog: Any, cgroup: str | os.PathLike | int, hook: str | AttachType, *,
                  before: Any = None, after: Any = None, use_link: bool = True) -> Link:
    """Attach ``prog`` to ``hook`` of a cgroup v2 directory (a path, relative to the cgroup2 root, or an fd).

    ``hook`` is a libbpf section suffix ('ingress', 'egress', 'sock_create',
    'connect4', 'sysctl', 'dev', 'sockops', ...) or an AttachType.  ``before``/
    ``after`` (a Program or Link on the same hook) order the program among
    others on kernels with cgroup mprog support (6.16+).
    """
    attach_type, want = _resolve_hook(hook)
    name = hook_of(attach_type)
    if prog.type != want:
        raise LinkError(f"cannot attach {prog.describe()} to the cgroup {name} hook: it needs a {want.name} program")
    eat = getattr(prog, "expected_attach_type", None)
    if eat is not None and not eat and want == ProgType.CGROUP_SOCK:
        eat = AttachType.CGROUP_INET_SOCK_CREATE  # what the kernel assumes for a CGROUP_SOCK program loaded without one
    if eat and int(eat) != int(attach_type):
        raise LinkError(f"cannot attach {prog.describe()} to the cgroup {name} hook: it was loaded for "
                        f"{hook_of(int(eat))} (expected_attach_type); load it with "
                        f"expected_attach_type=AttachType.{AttachType(attach_type).name}")
    fd, label = open_cgroup(cgroup)
    what = f"{label} ({name})"
    try:
        if use_link:
            from .attach import relative_target

            attr = LinkCreateAttr(prog_fd=prog.fd, target_fd=fd, attach_type=int(attach_type))
            flags, rel = relative_target(before, after)
            if flags:
                attr.flags = flags
                attr.target.cgroup.relative_fd = rel
            link_fd, err = bpf_errno(Cmd.LINK_CREATE, attr)
            if not err:
                return BPFLink(link_fd, program=prog, description=what)
            if err != errno.EINVAL or flags:
                raise _cgroup_error(err, prog, what)
            # EINVAL: a kernel without cgroup links (before 5.7): fall back to BPF_PROG_ATTACH.
        attr2 = ProgAttachAttr(target_fd=fd, attach_bpf_fd=prog.fd, attach_type=int(attach_type),
                               attach_flags=int(AttachFlags.ALLOW_MULTI))
        _, err = bpf_errno(Cmd.PROG_ATTACH, attr2)
        if err:
            raise _cgroup_error(err, prog, what)
        return ProgAttachLink(fd, prog, int(attach_type), description=what)
    finally:
        os.close(fd)


def _resolve_hook(hook: str | AttachType) -> tuple[AttachType, ProgType]:
    if isinstance(hook, str):
        key = hook.removeprefix("cgroup/").removeprefix("cgroup_skb/")
        if key not in CGROUP_HOOKS:
            raise LinkError(f"unknown cgroup hook {hook!r}; one of: {', '.join(CGROUP_HOOKS)}")
        return CGROUP_HOOKS[key]
    if int(hook) not in _BY_ATTACH_TYPE:
        raise LinkError(f"{hook!r} is not a cgroup attach type")
    at = AttachType(hook)
    return at, _BY_ATTACH_TYPE[at][1]


def _cgroup_error(err: int, prog: Any, what: str) -> Exception:
    if err == errno.EINVAL:
        return LinkError(f"cannot attach {prog.describe()} to {what}: the kernel refused (EINVAL); the program's "
                         "expected_attach_type must match the hook, and the target must be a cgroup v2 directory")
    if err == errno.EBADF:
        return LinkError(f"cannot attach {prog.describe()} to {what}: not a cgroup v2 directory")
    return kernel_error(err, f"cannot attach {prog.describe()} to {what}", (CAP_NET_ADMIN, CAP_SYS_ADMIN))
