#!/usr/bin/env python3
"""File access control with BPF LSM: deny file opens to the users you list.

    sudo python3 examples/lsm_file_access/lsm_file_access.py --deny-uid UID [--deny-uid UID...] [--duration S]

The C half (lsm_file_access.bpf.c) is an LSM program on the file_open hook: it
returns -EPERM when the opening process's uid is a key of the ``denied_uids``
map, which Python fills after loading.  It needs a kernel with CONFIG_BPF_LSM
and "bpf" in its lsm= list, and the BPF trampolines LSM programs ride on.
Where the kernel refuses, this script says why and suggests the seccomp
fallback, which denies openat to one command and everything it starts.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pybpf

HERE = Path(__file__).resolve().parent
EXIT_REFUSED = 2

FALLBACK = """\
Without BPF LSM, a seccomp filter can still deny file opens, per command instead of per user:
    pybpf seccomp --deny open,openat,openat2 --errno EPERM -- COMMAND [ARGS]
(seccomp filters are classic BPF and need no BPF LSM, trampolines or privilege.)"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     epilog="Fallback where BPF LSM is refused: pybpf seccomp --deny openat -- CMD")
    parser.add_argument("--deny-uid", type=int, action="append", default=[], metavar="UID",
                        help="deny file opens to this user id (repeatable)")
    parser.add_argument("--duration", type=float, help="enforce for this many seconds (default: until Ctrl-C)")
    args = parser.parse_args()
    if not args.deny_uid:
        parser.error("give at least one --deny-uid")

    spec = pybpf.compile(HERE / "lsm_file_access.bpf.c")
    try:
        obj = spec.load(backend="kernel")
    except pybpf.NotSupportedError as exc:
        print(f"lsm_file_access: the kernel refuses the LSM program: {exc}", file=sys.stderr)
        print(FALLBACK, file=sys.stderr)
        return EXIT_REFUSED
    with obj:
        for uid in args.deny_uid:
            obj.maps["denied_uids"][uid] = 1
        obj.attach_all()
        print(f"Denying file opens to uid {', '.join(map(str, args.deny_uid))}; Ctrl-C to stop.", file=sys.stderr)
        try:
            time.sleep(args.duration if args.duration is not None else 1e9)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(0)
    except pybpf.BPFError as exc:
        sys.exit(f"lsm_file_access: {exc}")
