"""`pybpf link`: BPF links in the kernel, like `bpftool link` (list, show, detach, pin)."""

from __future__ import annotations

import argparse

from ..errors import BPFError
from .bpfobjects import add_output_options, open_selected, selector_help, show_records, split_selector

EXAMPLES = """\
examples:
  pybpf link list                      every link: type, program, where it is attached
  pybpf link show 12 --json
  pybpf link detach id 12              detach now, even if pinned (kernels that support it)
  pybpf link pin 12 /sys/fs/bpf/mylink

LINK is """ + selector_help("link") + "."


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "link", help="list, show, detach and pin BPF links (like bpftool link)",
        description="Inspect the attachments (BPF links) in the kernel: type, program, and target.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="verb", metavar="VERB")
    for verb in ("list", "show"):
        s = sub.add_parser(verb, help="show links (all, or the LINK given)")
        s.add_argument("link", nargs="*", metavar="LINK", help=selector_help("link"))
        add_output_options(s)
        s.set_defaults(func=run_show)
    d = sub.add_parser("detach", help="detach a link (BPF_LINK_DETACH)")
    d.add_argument("link", nargs="+", metavar="LINK", help=selector_help("link"))
    d.set_defaults(func=run_detach)
    pin = sub.add_parser("pin", help="pin a link on bpffs")
    pin.add_argument("link", nargs="+", metavar="LINK PATH", help=f"{selector_help('link')}, then the path")
    pin.set_defaults(func=run_pin)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def run_show(args: argparse.Namespace) -> int:
    from ..kernel.introspect import link_record

    return show_records("link", args, args.link, link_record, format_plain)


def format_plain(rec: dict) -> str:
    """A link the way bpftool prints it without -j."""
    from ..kernel.introspect import INET_HOOK_NAMES, NFPROTO_NAMES

    out = f"{rec['id']}: {rec['type']}  "
    out += f"map {rec['map_id']}  " if rec["type"] == "struct_ops" else f"prog {rec['prog_id']}  "

    def attach() -> str:
        return f"attach_type {rec['attach_type']}  "

    def ifindex() -> str:
        name = rec["devname"]
        return f"ifindex {name}({rec['ifindex']})  " if not name.startswith("(") else f"ifindex {name}  "

    t = rec["type"]
    if t == "raw_tracepoint":
        out += f"\n\ttp '{rec['tp_name']}'  " + (f"cookie {rec['cookie']}  " if rec.get("cookie") else "")
    elif t == "tracing":
        out += f"\n\tprog_type {rec.get('prog_type', '?')}  " + attach()
        if rec["target_obj_id"] or rec["target_btf_id"]:
            out += f"\n\ttarget_obj_id {rec['target_obj_id']}  target_btf_id {rec['target_btf_id']}  "
        if rec.get("cookie"):
            out += f"\n\tcookie {rec['cookie']}  "
    elif t == "cgroup":
        out += f"\n\tcgroup_id {rec['cgroup_id']}  " + attach()
    elif t == "iter":
        out += f"target_name {rec['target_name']}  " + (f"map_id {rec['map_id']}  " if "map_id" in rec else "")
    elif t == "netns":
        out += f"\n\tnetns_ino {rec['netns_ino']}  " + attach()
    elif t == "netfilter":
        pf = NFPROTO_NAMES.get(rec["pf"])
        hook = INET_HOOK_NAMES.get(rec["hook"]) if rec["pf"] in (1, 2, 7, 10) else None
        out += f"\n\t{pf}" if pf else f"\n\tpf: {rec['pf']}"
        out += f" {hook}" if hook else f", hook {rec['hook']},"
        out += f" prio {rec['prio']}" + (f" flags {rec['flags']:#x}" if rec["flags"] else "")
    elif t in ("tcx", "netkit"):
        out += "\n\t" + ifindex() + attach()
    elif t == "sockmap":
        out += f"\n\tmap_id {rec['map_id']}  " + attach()
    elif t == "xdp":
        out += "\n\t" + ifindex()
    elif t == "perf_event":
        if "func" in rec:
            out += f"\n\t{'kretprobe' if rec['retprobe'] else 'kprobe'} "
            out += (f"{rec['addr']:x} " if rec["addr"] else "") + rec["func"]
            out += (f"+{rec['offset']:#x}" if rec["offset"] else "") + "  "
        elif "file" in rec:
            out += f"\n\t{'uretprobe' if rec['retprobe'] else 'uprobe'} {rec['file']}+{rec['offset']:#x}  "
            out += (f"cookie {rec['cookie']}  " if rec["cookie"] else "")
            out += (f"ref_ctr_offset {rec['ref_ctr_offset']:#x}  " if rec["ref_ctr_offset"] else "")
        elif "tracepoint" in rec:
            out += f"\n\ttracepoint {rec['tracepoint']}  " + (f"cookie {rec['cookie']}  " if rec["cookie"] else "")
        elif "event" in rec:
            out += f"\n\tevent {rec['event']['type']}:{rec['event']['config']}  "
    for path in rec.get("pinned", ()):
        out += f"\n\tpinned {path}"
    if rec.get("pids"):
        out += "\n\tpids " + ", ".join(f"{p['comm']}({p['pid']})" for p in rec["pids"])
    return out


def _one_link(tokens: list[str]):
    from ..kernel import Link
    from ..kernel.syscall import close_fd

    selector, rest = split_selector("link", tokens)
    fds = open_selected("link", selector)
    if len(fds) != 1:
        for fd in fds:
            close_fd(fd)
        raise BPFError(f"{' '.join(selector)} names {len(fds)} links; this command needs exactly one")
    return Link.from_fd(fds[0]), rest


def run_detach(args: argparse.Namespace) -> int:
    link, rest = _one_link(args.link)
    if rest:
        link.close()
        raise BPFError(f"unexpected arguments: {' '.join(rest)}")
    link.detach()
    return 0


def run_pin(args: argparse.Namespace) -> int:
    link, rest = _one_link(args.link)
    with link:
        if len(rest) != 1:
            raise BPFError("usage: pybpf link pin LINK PATH")
        link.pin(rest[0])
    return 0
