"""Kernel ABI numbers the VM needs: helper ids, map and program types, flags, verdicts.

Map and program types are the kernel backend's enums (the same uapi numbers);
helper ids are the positions in the kernel's ``__BPF_FUNC_MAPPER`` list for the
helpers the VM implements (a test checks them against /usr/include/linux/bpf.h).
"""

from __future__ import annotations

from enum import IntEnum

from ..kernel.uapi import MapType, ProgType

# Helper ids of the helpers the VM implements.
HELPER_IDS: dict[str, int] = {
    "map_lookup_elem": 1, "map_update_elem": 2, "map_delete_elem": 3, "probe_read": 4, "ktime_get_ns": 5,
    "trace_printk": 6, "get_prandom_u32": 7, "get_smp_processor_id": 8, "skb_store_bytes": 9,
    "l3_csum_replace": 10, "l4_csum_replace": 11, "tail_call": 12, "get_current_pid_tgid": 14,
    "get_current_uid_gid": 15, "get_current_comm": 16, "redirect": 23, "perf_event_output": 25,
    "skb_load_bytes": 26, "get_stackid": 27, "csum_diff": 28, "get_current_task": 35, "get_numa_node_id": 42,
    "xdp_adjust_head": 44, "probe_read_str": 45, "redirect_map": 51, "xdp_adjust_meta": 54,
    "xdp_adjust_tail": 65, "get_stack": 67, "get_current_cgroup_id": 80, "map_push_elem": 87,
    "map_pop_elem": 88, "map_peek_elem": 89, "spin_lock": 93, "spin_unlock": 94, "probe_read_user": 112,
    "probe_read_kernel": 113, "probe_read_user_str": 114, "probe_read_kernel_str": 115, "jiffies64": 118,
    "ktime_get_boot_ns": 125, "ringbuf_output": 130, "ringbuf_reserve": 131, "ringbuf_submit": 132,
    "ringbuf_discard": 133, "ringbuf_query": 134, "get_current_task_btf": 158, "ktime_get_coarse_ns": 160,
    "for_each_map_elem": 164, "snprintf": 165, "trace_vprintk": 177, "loop": 181, "strncmp": 182,
    "map_lookup_percpu_elem": 195, "xdp_get_buff_len": 188, "ktime_get_tai_ns": 208,
}
_HELPER_NAMES = {v: k for k, v in HELPER_IDS.items()}


def helper_name(helper_id: int) -> str:
    name = _HELPER_NAMES.get(helper_id)
    return f"bpf_{name}" if name else f"#{helper_id}"


def prog_type_name(prog_type: int | None) -> str:
    try:
        return ProgType(prog_type).name
    except (ValueError, TypeError):
        return f"type {prog_type}"


def map_type_name(map_type: int) -> str:
    try:
        return MapType(map_type).name
    except ValueError:
        return f"type {map_type}"


class UpdateFlag(IntEnum):
    ANY = 0
    NOEXIST = 1
    EXIST = 2
    F_LOCK = 4


class XDPAction(IntEnum):
    ABORTED = 0
    DROP = 1
    PASS = 2
    TX = 3
    REDIRECT = 4


BPF_F_CURRENT_CPU = 0xFFFFFFFF
BPF_F_INDEX_MASK = 0xFFFFFFFF
# Ring buffer flags and query selectors.
BPF_RB_NO_WAKEUP = 1
BPF_RB_FORCE_WAKEUP = 2
BPF_RB_AVAIL_DATA = 0
BPF_RB_RING_SIZE = 1
BPF_RB_CONS_POS = 2
BPF_RB_PROD_POS = 3
# get_stackid / get_stack flags.
BPF_F_SKIP_FIELD_MASK = 0xFF
BPF_F_USER_STACK = 1 << 8
BPF_F_FAST_STACK_CMP = 1 << 9
BPF_F_REUSE_STACKID = 1 << 10
BPF_F_USER_BUILD_ID = 1 << 11
# Map creation flags the VM looks at.
BPF_F_NO_PREALLOC = 1 << 0
BPF_F_NO_COMMON_LRU = 1 << 1
BPF_F_RDONLY_PROG = 1 << 7
BPF_F_WRONLY_PROG = 1 << 8
BPF_F_MMAPABLE = 1 << 10

__all__ = [
    "BPF_F_CURRENT_CPU", "HELPER_IDS", "MapType", "ProgType", "UpdateFlag", "XDPAction", "helper_name",
    "map_type_name", "prog_type_name",
]
