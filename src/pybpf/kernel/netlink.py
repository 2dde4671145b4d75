"""rtnetlink in pure Python: just enough of it to hang BPF programs on tc (clsact + cls_bpf).

Kernels before 6.6 have no tcx links; there a ``tc`` program is attached the
way ``tc filter add dev X ingress bpf da obj ...`` does it: make sure the
``clsact`` qdisc exists, then add a ``bpf`` classifier in direct-action mode.
Requests are built with ``struct`` and sent over an AF_NETLINK socket; every
request asks for an acknowledgement, so a refusal comes back as an errno.
"""

from __future__ import annotations

import errno
import socket
import struct
from dataclasses import dataclass

from ..errors import KernelError
from .syscall import CAP_NET_ADMIN, kernel_error

NETLINK_ROUTE = 0

RTM_NEWQDISC, RTM_DELQDISC, RTM_GETQDISC = 36, 37, 38
RTM_NEWTFILTER, RTM_DELTFILTER, RTM_GETTFILTER = 44, 45, 46

NLM_F_REQUEST = 0x1
NLM_F_MULTI = 0x2
NLM_F_ACK = 0x4
NLM_F_ECHO = 0x8
NLM_F_DUMP = 0x300
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400

NLMSG_ERROR = 2
NLMSG_DONE = 3
NLA_F_NESTED = 1 << 15

TCA_KIND = 1
TCA_OPTIONS = 2
TCA_BPF_FD = 6
TCA_BPF_NAME = 7
TCA_BPF_FLAGS = 8
TCA_BPF_ID = 11
TCA_BPF_FLAG_ACT_DIRECT = 1

TC_H_ROOT = 0xFFFFFFFF
TC_H_CLSACT = 0xFFFFFFF1  # == TC_H_INGRESS
TC_H_MIN_INGRESS = 0xFFF2
TC_H_MIN_EGRESS = 0xFFF3
CLSACT_HANDLE = 0xFFFF0000
ETH_P_ALL = 0x0003

_NLMSGHDR = struct.Struct("=IHHII")
_TCMSG = struct.Struct("=BxxxiIII")
_NLATTR = struct.Struct("=HH")


def tc_parent(direction: str) -> int:
    """The clsact parent handle of 'ingress' or 'egress' (ffff:fff2 / ffff:fff3)."""
    minor = {"ingress": TC_H_MIN_INGRESS, "egress": TC_H_MIN_EGRESS}[direction]
    return (TC_H_CLSACT & 0xFFFF0000) | minor


def _align4(n: int) -> int:
    return (n + 3) & ~3


def attr(kind: int, payload: bytes) -> bytes:
    """One netlink attribute (type-length-value), padded to 4 bytes."""
    length = _NLATTR.size + len(payload)
    return _NLATTR.pack(length, kind) + payload + bytes(_align4(length) - length)


def parse_attrs(data: bytes | memoryview) -> dict[int, bytes]:
    """Attributes of one level: type (flags stripped) -> payload (the last one wins)."""
    out: dict[int, bytes] = {}
    off = 0
    while off + _NLATTR.size <= len(data):
        length, kind = _NLATTR.unpack_from(data, off)
        if length < _NLATTR.size:
            break
        out[kind & ~NLA_F_NESTED & 0x7FFF] = bytes(data[off + _NLATTR.size:off + length])
        off += _align4(length)
    return out


@dataclass(frozen=True)
class TCMessage:
    """A tcmsg (qdisc or filter) as the kernel reported it."""

    ifindex: int
    handle: int
    parent: int
    info: int
    attrs: dict[int, bytes]

    @property
    def kind(self) -> str:
        return self.attrs.get(TCA_KIND, b"").rstrip(b"\0").decode()

    @property
    def priority(self) -> int:
        return self.info >> 16


class RouteSocket:
    """An rtnetlink socket bound to the network namespace it was created in.

    Holding one keeps the namespace of a tc attachment: closing a filter later
    works even if the calling thread has since moved to another namespace.
    """

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE)
        try:
            self.sock.bind((0, 0))
        except BaseException:
            self.sock.close()
            raise
        try:
            self.sock.setsockopt(270, 11, 1)  # SOL_NETLINK, NETLINK_EXT_ACK: the kernel explains refusals
        except OSError:
            pass  # kernels before 4.12: plain errno only
        self._seq = 0

    def close(self) -> None:
        self.sock.close()

    def request(self, msg_type: int, flags: int, body: bytes, what: str) -> list[tuple[int, bytes]]:
        """Send one request, collect (type, payload) of every reply until the ACK/DONE; raise on error."""
        self._seq += 1
        seq = self._seq
        header = _NLMSGHDR.pack(_NLMSGHDR.size + len(body), msg_type, flags | NLM_F_REQUEST | NLM_F_ACK, seq, 0)
        self.sock.send(header + body)
        replies: list[tuple[int, bytes]] = []
        while True:
            data = self.sock.recv(1 << 16)
            off = 0
            while off + _NLMSGHDR.size <= len(data):
                length, rtype, rflags, rseq, _pid = _NLMSGHDR.unpack_from(data, off)
                if length < _NLMSGHDR.size:
                    raise KernelError(errno.EIO, f"{what}: malformed netlink reply")
                payload = data[off + _NLMSGHDR.size:off + length]
                off += _align4(length)
                if rseq != seq:
                    continue
                if rtype == NLMSG_ERROR:
                    err = -struct.unpack_from("=i", payload)[0]
                    if err:
                        raise _netlink_error(err, what, payload)
                    return replies
                if rtype == NLMSG_DONE:
                    return replies
                replies.append((rtype, payload))

    # -- tc ------------------------------------------------------------------

    def _tc(self, msg_type: int, flags: int, ifindex: int, handle: int, parent: int, info: int, attrs: bytes,
            what: str) -> list[TCMessage]:
        body = _TCMSG.pack(socket.AF_UNSPEC, ifindex, handle, parent, info) + attrs
        return [_tcmsg(p) for t, p in self.request(msg_type, flags, body, what) if t in (RTM_NEWTFILTER, RTM_NEWQDISC)]

    def add_clsact(self, ifindex: int) -> bool:
        """Create the clsact qdisc on ``ifindex``; False when one was there already."""
        try:
            self._tc(RTM_NEWQDISC, NLM_F_CREATE | NLM_F_EXCL, ifindex, CLSACT_HANDLE, TC_H_CLSACT, 0,
                     attr(TCA_KIND, b"clsact\0"), f"cannot add a clsact qdisc to ifindex {ifindex}")
        except KernelError as exc:
            if exc.errno == errno.EEXIST:
                return False
            raise
        return True

    def delete_clsact(self, ifindex: int) -> None:
        self._tc(RTM_DELQDISC, 0, ifindex, CLSACT_HANDLE, TC_H_CLSACT, 0, attr(TCA_KIND, b"clsact\0"),
                 f"cannot delete the clsact qdisc of ifindex {ifindex}")

    def qdiscs(self, ifindex: int) -> list[TCMessage]:
        body = _TCMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
        replies = self.request(RTM_GETQDISC, NLM_F_DUMP, body, "cannot list qdiscs")
        return [m for m in (_tcmsg(p) for t, p in replies if t == RTM_NEWQDISC) if m.ifindex == ifindex]

    def add_bpf_filter(self, ifindex: int, parent: int, prog_fd: int, name: str, *, priority: int = 0,
                       handle: int = 0, replace: bool = False) -> TCMessage:
        """Add a cls_bpf filter in direct-action mode; returns it with the handle/priority the kernel chose."""
        options = attr(TCA_BPF_FD, struct.pack("=I", prog_fd)) + attr(TCA_BPF_NAME, name.encode() + b"\0")
        options += attr(TCA_BPF_FLAGS, struct.pack("=I", TCA_BPF_FLAG_ACT_DIRECT))
        attrs = attr(TCA_KIND, b"bpf\0") + attr(TCA_OPTIONS | NLA_F_NESTED, options)
        info = (priority << 16) | socket.htons(ETH_P_ALL)
        flags = NLM_F_CREATE | NLM_F_ECHO | (0 if replace else NLM_F_EXCL)
        made = self._tc(RTM_NEWTFILTER, flags, ifindex, handle, parent, info, attrs,
                        f"cannot add a bpf filter to ifindex {ifindex}")
        if not made:
            raise KernelError(errno.EIO, f"the kernel did not echo the new bpf filter on ifindex {ifindex}")
        return made[0]

    def delete_filter(self, ifindex: int, parent: int, handle: int, priority: int) -> None:
        info = (priority << 16) | socket.htons(ETH_P_ALL)
        self._tc(RTM_DELTFILTER, 0, ifindex, handle, parent, info, attr(TCA_KIND, b"bpf\0"),
                 f"cannot delete bpf filter {handle:#x} (priority {priority}) of ifindex {ifindex}")

    def filters(self, ifindex: int, parent: int) -> list[TCMessage]:
        body = _TCMSG.pack(socket.AF_UNSPEC, ifindex, 0, parent, 0)
        replies = self.request(RTM_GETTFILTER, NLM_F_DUMP, body, f"cannot list filters of ifindex {ifindex}")
        return [_tcmsg(p) for t, p in replies if t == RTM_NEWTFILTER]


def _tcmsg(payload: bytes) -> TCMessage:
    _family, ifindex, handle, parent, info = _TCMSG.unpack_from(payload)
    return TCMessage(ifindex, handle, parent, info, parse_attrs(payload[_TCMSG.size:]))


def filter_prog_id(msg: TCMessage) -> int | None:
    """The BPF program id of a cls_bpf filter, None for other filters."""
    if msg.kind != "bpf":
        return None
    opts = parse_attrs(msg.attrs.get(TCA_OPTIONS, b""))
    raw = opts.get(TCA_BPF_ID)
    return struct.unpack("=I", raw[:4])[0] if raw else None


def _netlink_error(err: int, what: str, payload: bytes) -> KernelError:
    """The errno of an NLMSG_ERROR, with the kernel's extended-ack message when it sent one."""
    message = ""
    # payload: error (4) + the original header (16, and the request unless capped) + ext-ack attributes
    if len(payload) >= 4 + _NLMSGHDR.size:
        orig_len = _NLMSGHDR.unpack_from(payload, 4)[0]
        for start in (4 + _align4(orig_len), 4 + _NLMSGHDR.size):
            attrs = parse_attrs(payload[start:])
            if 1 in attrs:  # NLMSGERR_ATTR_MSG
                message = attrs[1].rstrip(b"\0").decode(errors="replace")
                break
    if err in (errno.EPERM, errno.EACCES):
        return kernel_error(err, what, (CAP_NET_ADMIN,))
    return KernelError(err, f"{what}{': ' + message if message else ''}")
