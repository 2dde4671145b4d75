"""The kernel's BPF ABI as data: enums, flags and the ``union bpf_attr`` layouts.

Values follow include/uapi/linux/bpf.h.  Each command group of ``union bpf_attr``
is one ctypes Structure; the syscall is passed the size of that structure only,
so the kernel zero-fills what we do not know and rejects nothing we leave out.
Minimum kernel versions are kept next to the types so that an EINVAL on an
unknown type becomes a :class:`~pybpf.errors.NotSupportedError` that says which
Linux release is needed.
"""

from __future__ import annotations

import ctypes
from enum import IntEnum, IntFlag

# Program, attach and map types and flags are the object layer's (one definition for both layers).
from ..object.kinds import AttachType, MapFlags, MapType, ProgFlags, ProgType

c_u8, c_u16, c_u32, c_s32, c_u64 = ctypes.c_uint8, ctypes.c_uint16, ctypes.c_uint32, ctypes.c_int32, ctypes.c_uint64

OBJ_NAME_LEN = 16
TAG_SIZE = 8


class Cmd(IntEnum):
    MAP_CREATE = 0
    MAP_LOOKUP_ELEM = 1
    MAP_UPDATE_ELEM = 2
    MAP_DELETE_ELEM = 3
    MAP_GET_NEXT_KEY = 4
    PROG_LOAD = 5
    OBJ_PIN = 6
    OBJ_GET = 7
    PROG_ATTACH = 8
    PROG_DETACH = 9
    PROG_TEST_RUN = 10
    PROG_GET_NEXT_ID = 11
    MAP_GET_NEXT_ID = 12
    PROG_GET_FD_BY_ID = 13
    MAP_GET_FD_BY_ID = 14
    OBJ_GET_INFO_BY_FD = 15
    PROG_QUERY = 16
    RAW_TRACEPOINT_OPEN = 17
    BTF_LOAD = 18
    BTF_GET_FD_BY_ID = 19
    TASK_FD_QUERY = 20
    MAP_LOOKUP_AND_DELETE_ELEM = 21
    MAP_FREEZE = 22
    BTF_GET_NEXT_ID = 23
    MAP_LOOKUP_BATCH = 24
    MAP_LOOKUP_AND_DELETE_BATCH = 25
    MAP_UPDATE_BATCH = 26
    MAP_DELETE_BATCH = 27
    LINK_CREATE = 28
    LINK_UPDATE = 29
    LINK_GET_FD_BY_ID = 30
    LINK_GET_NEXT_ID = 31
    ENABLE_STATS = 32
    ITER_CREATE = 33
    LINK_DETACH = 34
    PROG_BIND_MAP = 35
    TOKEN_CREATE = 36
    PROG_STREAM_READ_BY_FD = 37
    PROG_ASSOC_STRUCT_OPS = 38


class LinkType(IntEnum):
    UNSPEC = 0
    RAW_TRACEPOINT = 1
    TRACING = 2
    CGROUP = 3
    ITER = 4
    NETNS = 5
    XDP = 6
    PERF_EVENT = 7
    KPROBE_MULTI = 8
    STRUCT_OPS = 9
    NETFILTER = 10
    TCX = 11
    UPROBE_MULTI = 12
    NETKIT = 13
    SOCKMAP = 14


class UpdateFlags(IntFlag):
    """Flags of BPF_MAP_UPDATE_ELEM (and lookups, for LOCK)."""

    ANY = 0
    NOEXIST = 1
    EXIST = 2
    LOCK = 4


ANY, NOEXIST, EXIST = UpdateFlags.ANY, UpdateFlags.NOEXIST, UpdateFlags.EXIST


class XDPFlags(IntFlag):
    UPDATE_IF_NOEXIST = 1 << 0
    SKB_MODE = 1 << 1
    DRV_MODE = 1 << 2
    HW_MODE = 1 << 3
    REPLACE = 1 << 4


class AttachFlags(IntFlag):
    """Flags of BPF_PROG_ATTACH and BPF_LINK_CREATE (ordering of multi-program hooks)."""

    ALLOW_OVERRIDE = 1 << 0
    ALLOW_MULTI = 1 << 1
    REPLACE = 1 << 2
    BEFORE = 1 << 3
    AFTER = 1 << 4
    ID = 1 << 5
    LINK = 1 << 13


class StatsType(IntEnum):
    RUN_TIME = 0


# Netfilter protocol families and hooks (BPF_LINK_TYPE_NETFILTER).
NFPROTO_IPV4 = 2
NFPROTO_IPV6 = 10
NF_INET_HOOKS = {"prerouting": 0, "input": 1, "local_in": 1, "forward": 2, "output": 3, "local_out": 3,
                 "postrouting": 4}
NETFILTER_IP_DEFRAG = 1


class TestRunFlags(IntFlag):
    RUN_ON_CPU = 1 << 0
    XDP_LIVE_FRAMES = 1 << 1


# ld_imm64 src_reg values the loader patches in.
PSEUDO_MAP_FD = 1
PSEUDO_MAP_VALUE = 2
PSEUDO_BTF_ID = 3
PSEUDO_FUNC = 4
PSEUDO_MAP_IDX = 5
PSEUDO_MAP_IDX_VALUE = 6

RINGBUF_BUSY_BIT = 1 << 31
RINGBUF_DISCARD_BIT = 1 << 30
RINGBUF_HDR_SIZE = 8

# Errno values the kernel uses internally but lets escape to user space.
ENOTSUPP = 524

# The release that introduced each map / program type (for NotSupportedError).
MAP_TYPE_MIN_KERNEL: dict[MapType, str] = {
    MapType.HASH: "3.19", MapType.ARRAY: "3.19", MapType.PROG_ARRAY: "4.2",
    MapType.PERF_EVENT_ARRAY: "4.3", MapType.PERCPU_HASH: "4.6", MapType.PERCPU_ARRAY: "4.6",
    MapType.STACK_TRACE: "4.6", MapType.CGROUP_ARRAY: "4.8", MapType.LRU_HASH: "4.10",
    MapType.LRU_PERCPU_HASH: "4.10", MapType.LPM_TRIE: "4.11", MapType.ARRAY_OF_MAPS: "4.12",
    MapType.HASH_OF_MAPS: "4.12", MapType.DEVMAP: "4.14", MapType.SOCKMAP: "4.14",
    MapType.CPUMAP: "4.15", MapType.XSKMAP: "4.18", MapType.SOCKHASH: "4.18",
    MapType.CGROUP_STORAGE: "4.19", MapType.REUSEPORT_SOCKARRAY: "4.19",
    MapType.PERCPU_CGROUP_STORAGE: "4.20", MapType.QUEUE: "4.20", MapType.STACK: "4.20",
    MapType.SK_STORAGE: "5.2", MapType.DEVMAP_HASH: "5.4", MapType.STRUCT_OPS: "5.6",
    MapType.RINGBUF: "5.8", MapType.INODE_STORAGE: "5.10", MapType.TASK_STORAGE: "5.11",
    MapType.BLOOM_FILTER: "5.16", MapType.USER_RINGBUF: "6.1", MapType.CGRP_STORAGE: "6.2",
    MapType.ARENA: "6.9",
}

PROG_TYPE_MIN_KERNEL: dict[ProgType, str] = {
    ProgType.SOCKET_FILTER: "3.19", ProgType.KPROBE: "4.1", ProgType.SCHED_CLS: "4.1",
    ProgType.SCHED_ACT: "4.1", ProgType.TRACEPOINT: "4.7", ProgType.XDP: "4.8",
    ProgType.PERF_EVENT: "4.9", ProgType.CGROUP_SKB: "4.10", ProgType.CGROUP_SOCK: "4.10",
    ProgType.LWT_IN: "4.10", ProgType.LWT_OUT: "4.10", ProgType.LWT_XMIT: "4.10",
    ProgType.SOCK_OPS: "4.13", ProgType.SK_SKB: "4.14", ProgType.CGROUP_DEVICE: "4.15",
    ProgType.SK_MSG: "4.17", ProgType.RAW_TRACEPOINT: "4.17", ProgType.CGROUP_SOCK_ADDR: "4.17",
    ProgType.LWT_SEG6LOCAL: "4.18", ProgType.LIRC_MODE2: "4.18", ProgType.SK_REUSEPORT: "4.19",
    ProgType.FLOW_DISSECTOR: "4.20", ProgType.CGROUP_SYSCTL: "5.2",
    ProgType.RAW_TRACEPOINT_WRITABLE: "5.2", ProgType.CGROUP_SOCKOPT: "5.3", ProgType.TRACING: "5.5",
    ProgType.STRUCT_OPS: "5.6", ProgType.EXT: "5.6", ProgType.LSM: "5.7", ProgType.SK_LOOKUP: "5.9",
    ProgType.SYSCALL: "5.14", ProgType.NETFILTER: "6.4",
}

# Helper function names by id (the kernel's __BPF_FUNC_MAPPER order).
HELPERS: tuple[str, ...] = (
    "unspec", "map_lookup_elem", "map_update_elem", "map_delete_elem", "probe_read", "ktime_get_ns",
    "trace_printk", "get_prandom_u32", "get_smp_processor_id", "skb_store_bytes", "l3_csum_replace",
    "l4_csum_replace", "tail_call", "clone_redirect", "get_current_pid_tgid", "get_current_uid_gid",
    "get_current_comm", "get_cgroup_classid", "skb_vlan_push", "skb_vlan_pop", "skb_get_tunnel_key",
    "skb_set_tunnel_key", "perf_event_read", "redirect", "get_route_realm", "perf_event_output",
    "skb_load_bytes", "get_stackid", "csum_diff", "skb_get_tunnel_opt", "skb_set_tunnel_opt",
    "skb_change_proto", "skb_change_type", "skb_under_cgroup", "get_hash_recalc", "get_current_task",
    "probe_write_user", "current_task_under_cgroup", "skb_change_tail", "skb_pull_data", "csum_update",
    "set_hash_invalid", "get_numa_node_id", "skb_change_head", "xdp_adjust_head", "probe_read_str",
    "get_socket_cookie", "get_socket_uid", "set_hash", "setsockopt", "skb_adjust_room", "redirect_map",
    "sk_redirect_map", "sock_map_update", "xdp_adjust_meta", "perf_event_read_value",
    "perf_prog_read_value", "getsockopt", "override_return", "sock_ops_cb_flags_set",
    "msg_redirect_map", "msg_apply_bytes", "msg_cork_bytes", "msg_pull_data", "bind", "xdp_adjust_tail",
    "skb_get_xfrm_state", "get_stack", "skb_load_bytes_relative", "fib_lookup", "sock_hash_update",
    "msg_redirect_hash", "sk_redirect_hash", "lwt_push_encap", "lwt_seg6_store_bytes",
    "lwt_seg6_adjust_srh", "lwt_seg6_action", "rc_repeat", "rc_keydown", "skb_cgroup_id",
    "get_current_cgroup_id", "get_local_storage", "sk_select_reuseport", "skb_ancestor_cgroup_id",
    "sk_lookup_tcp", "sk_lookup_udp", "sk_release", "map_push_elem", "map_pop_elem", "map_peek_elem",
    "msg_push_data", "msg_pop_data", "rc_pointer_rel", "spin_lock", "spin_unlock", "sk_fullsock",
    "tcp_sock", "skb_ecn_set_ce", "get_listener_sock", "skc_lookup_tcp", "tcp_check_syncookie",
    "sysctl_get_name", "sysctl_get_current_value", "sysctl_get_new_value", "sysctl_set_new_value",
    "strtol", "strtoul", "sk_storage_get", "sk_storage_delete", "send_signal", "tcp_gen_syncookie",
    "skb_output", "probe_read_user", "probe_read_kernel", "probe_read_user_str",
    "probe_read_kernel_str", "tcp_send_ack", "send_signal_thread", "jiffies64", "read_branch_records",
    "get_ns_current_pid_tgid", "xdp_output", "get_netns_cookie", "get_current_ancestor_cgroup_id",
    "sk_assign", "ktime_get_boot_ns", "seq_printf", "seq_write", "sk_cgroup_id",
    "sk_ancestor_cgroup_id", "ringbuf_output", "ringbuf_reserve", "ringbuf_submit", "ringbuf_discard",
    "ringbuf_query", "csum_level", "skc_to_tcp6_sock", "skc_to_tcp_sock", "skc_to_tcp_timewait_sock",
    "skc_to_tcp_request_sock", "skc_to_udp6_sock", "get_task_stack", "load_hdr_opt", "store_hdr_opt",
    "reserve_hdr_opt", "inode_storage_get", "inode_storage_delete", "d_path", "copy_from_user",
    "snprintf_btf", "seq_printf_btf", "skb_cgroup_classid", "redirect_neigh", "per_cpu_ptr",
    "this_cpu_ptr", "redirect_peer", "task_storage_get", "task_storage_delete", "get_current_task_btf",
    "bprm_opts_set", "ktime_get_coarse_ns", "ima_inode_hash", "sock_from_file", "check_mtu",
    "for_each_map_elem", "snprintf", "sys_bpf", "btf_find_by_name_kind", "sys_close", "timer_init",
    "timer_set_callback", "timer_start", "timer_cancel", "get_func_ip", "get_attach_cookie",
    "task_pt_regs", "get_branch_snapshot", "trace_vprintk", "skc_to_unix_sock", "kallsyms_lookup_name",
    "find_vma", "loop", "strncmp", "get_func_arg", "get_func_ret", "get_func_arg_cnt", "get_retval",
    "set_retval", "xdp_get_buff_len", "xdp_load_bytes", "xdp_store_bytes", "copy_from_user_task",
    "skb_set_tstamp", "ima_file_hash", "kptr_xchg", "map_lookup_percpu_elem", "skc_to_mptcp_sock",
    "dynptr_from_mem", "ringbuf_reserve_dynptr", "ringbuf_submit_dynptr", "ringbuf_discard_dynptr",
    "dynptr_read", "dynptr_write", "dynptr_data", "tcp_raw_gen_syncookie_ipv4",
    "tcp_raw_gen_syncookie_ipv6", "tcp_raw_check_syncookie_ipv4", "tcp_raw_check_syncookie_ipv6",
    "ktime_get_tai_ns", "user_ringbuf_drain", "cgrp_storage_get", "cgrp_storage_delete",
)
HELPER_IDS: dict[str, int] = {name: i for i, name in enumerate(HELPERS)}


# --- union bpf_attr, one structure per command group ------------------------


class MapCreateAttr(ctypes.Structure):
    _fields_ = [
        ("map_type", c_u32), ("key_size", c_u32), ("value_size", c_u32), ("max_entries", c_u32),
        ("map_flags", c_u32), ("inner_map_fd", c_u32), ("numa_node", c_u32),
        ("map_name", ctypes.c_char * OBJ_NAME_LEN), ("map_ifindex", c_u32), ("btf_fd", c_u32),
        ("btf_key_type_id", c_u32), ("btf_value_type_id", c_u32), ("btf_vmlinux_value_type_id", c_u32),
        ("map_extra", c_u64), ("value_type_btf_obj_fd", c_s32), ("map_token_fd", c_s32),
    ]


class MapElemAttr(ctypes.Structure):
    """BPF_MAP_*_ELEM, BPF_MAP_GET_NEXT_KEY (value is next_key) and BPF_MAP_FREEZE."""

    _fields_ = [("map_fd", c_u32), ("key", c_u64), ("value", c_u64), ("flags", c_u64)]


class MapBatchAttr(ctypes.Structure):
    _fields_ = [
        ("in_batch", c_u64), ("out_batch", c_u64), ("keys", c_u64), ("values", c_u64),
        ("count", c_u32), ("map_fd", c_u32), ("elem_flags", c_u64), ("flags", c_u64),
    ]


class ProgLoadAttr(ctypes.Structure):
    _fields_ = [
        ("prog_type", c_u32), ("insn_cnt", c_u32), ("insns", c_u64), ("license", c_u64),
        ("log_level", c_u32), ("log_size", c_u32), ("log_buf", c_u64), ("kern_version", c_u32),
        ("prog_flags", c_u32), ("prog_name", ctypes.c_char * OBJ_NAME_LEN), ("prog_ifindex", c_u32),
        ("expected_attach_type", c_u32), ("prog_btf_fd", c_u32), ("func_info_rec_size", c_u32),
        ("func_info", c_u64), ("func_info_cnt", c_u32), ("line_info_rec_size", c_u32),
        ("line_info", c_u64), ("line_info_cnt", c_u32), ("attach_btf_id", c_u32),
        ("attach_prog_fd", c_u32),  # or attach_btf_obj_fd
        ("core_relo_cnt", c_u32), ("fd_array", c_u64), ("core_relos", c_u64),
        ("core_relo_rec_size", c_u32), ("log_true_size", c_u32),
    ]


class ObjAttr(ctypes.Structure):
    """BPF_OBJ_PIN / BPF_OBJ_GET."""

    _fields_ = [("pathname", c_u64), ("bpf_fd", c_u32), ("file_flags", c_u32), ("path_fd", c_s32)]


class ProgAttachAttr(ctypes.Structure):
    """BPF_PROG_ATTACH / BPF_PROG_DETACH (target_fd doubles as target_ifindex)."""

    _fields_ = [
        ("target_fd", c_u32), ("attach_bpf_fd", c_u32), ("attach_type", c_u32), ("attach_flags", c_u32),
        ("replace_bpf_fd", c_u32), ("relative_fd", c_u32), ("expected_revision", c_u64),
    ]


class TestRunAttr(ctypes.Structure):
    _fields_ = [
        ("prog_fd", c_u32), ("retval", c_u32), ("data_size_in", c_u32), ("data_size_out", c_u32),
        ("data_in", c_u64), ("data_out", c_u64), ("repeat", c_u32), ("duration", c_u32),
        ("ctx_size_in", c_u32), ("ctx_size_out", c_u32), ("ctx_in", c_u64), ("ctx_out", c_u64),
        ("flags", c_u32), ("cpu", c_u32), ("batch_size", c_u32),
    ]


class GetIdAttr(ctypes.Structure):
    """BPF_*_GET_NEXT_ID and BPF_*_GET_FD_BY_ID (start_id doubles as the object id)."""

    _fields_ = [("start_id", c_u32), ("next_id", c_u32), ("open_flags", c_u32)]


class InfoAttr(ctypes.Structure):
    _fields_ = [("bpf_fd", c_u32), ("info_len", c_u32), ("info", c_u64)]


class ProgQueryAttr(ctypes.Structure):
    _fields_ = [
        ("target_fd", c_u32), ("attach_type", c_u32), ("query_flags", c_u32), ("attach_flags", c_u32),
        ("prog_ids", c_u64), ("prog_cnt", c_u32), ("_pad", c_u32), ("prog_attach_flags", c_u64),
        ("link_ids", c_u64), ("link_attach_flags", c_u64), ("revision", c_u64),
    ]


class RawTracepointAttr(ctypes.Structure):
    _fields_ = [("name", c_u64), ("prog_fd", c_u32), ("_pad", c_u32), ("cookie", c_u64)]


class BTFLoadAttr(ctypes.Structure):
    _fields_ = [
        ("btf", c_u64), ("btf_log_buf", c_u64), ("btf_size", c_u32), ("btf_log_size", c_u32),
        ("btf_log_level", c_u32), ("btf_log_true_size", c_u32),
    ]


class TaskFdQueryAttr(ctypes.Structure):
    _fields_ = [
        ("pid", c_u32), ("fd", c_u32), ("flags", c_u32), ("buf_len", c_u32), ("buf", c_u64),
        ("prog_id", c_u32), ("fd_type", c_u32), ("probe_offset", c_u64), ("probe_addr", c_u64),
    ]


class _LinkTracing(ctypes.Structure):
    _fields_ = [("target_btf_id", c_u32), ("cookie", c_u64)]


class _LinkIter(ctypes.Structure):
    _fields_ = [("iter_info", c_u64), ("iter_info_len", c_u32)]


class _LinkRelative(ctypes.Structure):
    """tcx / netkit / cgroup link targets: position relative to another program or link."""

    _fields_ = [("relative_fd", c_u32), ("expected_revision", c_u64)]


class _LinkKprobeMulti(ctypes.Structure):
    _fields_ = [("flags", c_u32), ("cnt", c_u32), ("syms", c_u64), ("addrs", c_u64), ("cookies", c_u64)]


class _LinkUprobeMulti(ctypes.Structure):
    _fields_ = [
        ("path", c_u64), ("offsets", c_u64), ("ref_ctr_offsets", c_u64), ("cookies", c_u64),
        ("cnt", c_u32), ("flags", c_u32), ("pid", c_u32), ("path_fd", c_u32),
    ]


class _LinkNetfilter(ctypes.Structure):
    _fields_ = [("pf", c_u32), ("hooknum", c_u32), ("priority", c_s32), ("flags", c_u32)]


class _LinkTarget(ctypes.Union):
    _fields_ = [
        ("target_btf_id", c_u32), ("iter", _LinkIter), ("perf_event_cookie", c_u64),
        ("kprobe_multi", _LinkKprobeMulti), ("tracing", _LinkTracing), ("netfilter", _LinkNetfilter),
        ("tcx", _LinkRelative), ("uprobe_multi", _LinkUprobeMulti), ("netkit", _LinkRelative),
        ("cgroup", _LinkRelative),
    ]


class LinkCreateAttr(ctypes.Structure):
    """BPF_LINK_CREATE; prog_fd doubles as a struct_ops map fd, target_fd as target_ifindex."""

    _fields_ = [
        ("prog_fd", c_u32), ("target_fd", c_u32), ("attach_type", c_u32), ("flags", c_u32),
        ("target", _LinkTarget),
    ]


class LinkUpdateAttr(ctypes.Structure):
    _fields_ = [("link_fd", c_u32), ("new_prog_fd", c_u32), ("flags", c_u32), ("old_prog_fd", c_u32)]


class LinkDetachAttr(ctypes.Structure):
    _fields_ = [("link_fd", c_u32)]


class EnableStatsAttr(ctypes.Structure):
    _fields_ = [("type", c_u32)]


class IterCreateAttr(ctypes.Structure):
    _fields_ = [("link_fd", c_u32), ("flags", c_u32)]


class ProgBindMapAttr(ctypes.Structure):
    _fields_ = [("prog_fd", c_u32), ("map_fd", c_u32), ("flags", c_u32)]


# --- object info (BPF_OBJ_GET_INFO_BY_FD) -----------------------------------


class MapInfoStruct(ctypes.Structure):
    _fields_ = [
        ("type", c_u32), ("id", c_u32), ("key_size", c_u32), ("value_size", c_u32),
        ("max_entries", c_u32), ("map_flags", c_u32), ("name", ctypes.c_char * OBJ_NAME_LEN),
        ("ifindex", c_u32), ("btf_vmlinux_value_type_id", c_u32), ("netns_dev", c_u64),
        ("netns_ino", c_u64), ("btf_id", c_u32), ("btf_key_type_id", c_u32),
        ("btf_value_type_id", c_u32), ("btf_vmlinux_id", c_u32), ("map_extra", c_u64),
    ]


class ProgInfoStruct(ctypes.Structure):
    _fields_ = [
        ("type", c_u32), ("id", c_u32), ("tag", c_u8 * TAG_SIZE), ("jited_prog_len", c_u32),
        ("xlated_prog_len", c_u32), ("jited_prog_insns", c_u64), ("xlated_prog_insns", c_u64),
        ("load_time", c_u64), ("created_by_uid", c_u32), ("nr_map_ids", c_u32), ("map_ids", c_u64),
        ("name", ctypes.c_char * OBJ_NAME_LEN), ("ifindex", c_u32), ("gpl_compatible", c_u32),
        ("netns_dev", c_u64), ("netns_ino", c_u64), ("nr_jited_ksyms", c_u32),
        ("nr_jited_func_lens", c_u32), ("jited_ksyms", c_u64), ("jited_func_lens", c_u64),
        ("btf_id", c_u32), ("func_info_rec_size", c_u32), ("func_info", c_u64), ("nr_func_info", c_u32),
        ("nr_line_info", c_u32), ("line_info", c_u64), ("jited_line_info", c_u64),
        ("nr_jited_line_info", c_u32), ("line_info_rec_size", c_u32), ("jited_line_info_rec_size", c_u32),
        ("nr_prog_tags", c_u32), ("prog_tags", c_u64), ("run_time_ns", c_u64), ("run_cnt", c_u64),
        ("recursion_misses", c_u64), ("verified_insns", c_u32), ("attach_btf_obj_id", c_u32),
        ("attach_btf_id", c_u32), ("_pad", c_u32),
    ]


class LinkInfoStruct(ctypes.Structure):
    """bpf_link_info: the common header, then the per-type union kept as raw words."""

    _fields_ = [("type", c_u32), ("id", c_u32), ("prog_id", c_u32), ("_pad", c_u32), ("extra", c_u64 * 6)]


class BTFInfoStruct(ctypes.Structure):
    _fields_ = [
        ("btf", c_u64), ("btf_size", c_u32), ("id", c_u32), ("name", c_u64), ("name_len", c_u32),
        ("kernel_btf", c_u32),
    ]
