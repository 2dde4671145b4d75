"""Helpers on maps and event channels: lookup/update/delete, queues, ring buffers, perf output,
stack ids, for_each_map_elem, spin locks."""

from __future__ import annotations

import errno

from ..errors import VMFault
from .constants import BPF_F_SKIP_FIELD_MASK, BPF_F_USER_STACK, MapType
from .helpers import helper, neg, run_state


def _map(vm, address: int, what: str):
    return vm.map_at(address, what)


@helper("map_lookup_elem", 2)
def map_lookup_elem(vm, map_ptr: int, key_ptr: int) -> int:
    m = _map(vm, map_ptr, "bpf_map_lookup_elem")
    run = run_state(vm)
    if m.type in (MapType.QUEUE, MapType.STACK, MapType.BLOOM_FILTER, MapType.RINGBUF, MapType.PERF_EVENT_ARRAY):
        raise VMFault(f"bpf_map_lookup_elem: {m.describe()} has no keys to look up")
    return m.prog_lookup(run, m.read_key(key_ptr, "bpf_map_lookup_elem"))


@helper("map_lookup_percpu_elem", 3)
def map_lookup_percpu_elem(vm, map_ptr: int, key_ptr: int, cpu: int) -> int:
    m = _map(vm, map_ptr, "bpf_map_lookup_percpu_elem")
    if not m.per_cpu:
        raise VMFault(f"bpf_map_lookup_percpu_elem: {m.describe()} is not a per-CPU map")
    cpu &= 0xFFFFFFFF
    if cpu >= m.ncpus:
        return 0
    run = run_state(vm)
    key = m.read_key(key_ptr, "bpf_map_lookup_percpu_elem")
    found = m._find(key, cpu, True)
    if found is None:
        return 0
    return run.region_for(found[cpu], m._value_name(key) + f" (CPU {cpu})", writable=m.program_writable, owner=m)


@helper("map_update_elem", 4)
def map_update_elem(vm, map_ptr: int, key_ptr: int, value_ptr: int, flags: int) -> int:
    m = _map(vm, map_ptr, "bpf_map_update_elem")
    key = m.read_key(key_ptr, "bpf_map_update_elem")
    value = vm.memory.load(value_ptr, m.value_size, f"bpf_map_update_elem value for {m.describe()}")
    return m.prog_update(run_state(vm), key, value, flags)


@helper("map_delete_elem", 2)
def map_delete_elem(vm, map_ptr: int, key_ptr: int) -> int:
    m = _map(vm, map_ptr, "bpf_map_delete_elem")
    return m.prog_delete(run_state(vm), m.read_key(key_ptr, "bpf_map_delete_elem"))


@helper("map_push_elem", 3)
def map_push_elem(vm, map_ptr: int, value_ptr: int, flags: int) -> int:
    m = _map(vm, map_ptr, "bpf_map_push_elem")
    if not hasattr(m, "prog_push"):
        raise VMFault(f"bpf_map_push_elem: {m.describe()} is not a queue, stack or bloom filter")
    value = vm.memory.load(value_ptr, m.value_size, f"bpf_map_push_elem value for {m.describe()}")
    return m.prog_push(run_state(vm), value, flags)


def _pop_or_peek(vm, map_ptr: int, value_ptr: int, remove: bool) -> int:
    name = "bpf_map_pop_elem" if remove else "bpf_map_peek_elem"
    m = _map(vm, map_ptr, name)
    if m.type == MapType.BLOOM_FILTER and not remove:
        return m.prog_peek(vm.memory.load(value_ptr, m.value_size, f"{name} value"))
    if not hasattr(m, "prog_pop"):
        raise VMFault(f"{name}: {m.describe()} is not a queue or stack")
    out = vm.memory.view(value_ptr, m.value_size, write=True, what=f"{name} value buffer")
    value = m.prog_pop(run_state(vm), remove)
    if value is None:
        return neg(errno.ENOENT)
    out[:] = value
    return 0


@helper("map_pop_elem", 2)
def map_pop_elem(vm, map_ptr: int, value_ptr: int) -> int:
    return _pop_or_peek(vm, map_ptr, value_ptr, True)


@helper("map_peek_elem", 2)
def map_peek_elem(vm, map_ptr: int, value_ptr: int) -> int:
    return _pop_or_peek(vm, map_ptr, value_ptr, False)


@helper("for_each_map_elem", 4, callbacks=True)
def for_each_map_elem(vm, map_ptr: int, callback: int, ctx: int, flags: int) -> int:
    """Call ``callback(map, &key, &value, ctx)`` per element until it returns 1."""
    if flags:
        return neg(errno.EINVAL)
    m = _map(vm, map_ptr, "bpf_for_each_map_elem")
    run = run_state(vm)
    count = 0
    for key, value in m.prog_elements(run):
        key_addr = run.region_for(bytearray(key), f"key of {m.describe()} (for_each callback)", writable=False)
        value_addr = run.region_for(value, m._value_name(key), writable=m.program_writable, owner=m)
        count += 1
        if run.call_function(callback, (map_ptr, key_addr, value_addr, ctx)) & 0xFFFFFFFFFFFFFFFF:
            break
    return count


# --- ring buffer ---------------------------------------------------------------------------------


def _ring(vm, address: int, what: str):
    m = _map(vm, address, what)
    if m.type != MapType.RINGBUF:
        raise VMFault(f"{what}: {m.describe()} is not a ring buffer")
    return m


@helper("ringbuf_reserve", 3)
def ringbuf_reserve(vm, ring_ptr: int, size: int, flags: int) -> int:
    return _ring(vm, ring_ptr, "bpf_ringbuf_reserve").reserve(run_state(vm), size, flags)


@helper("ringbuf_submit", 2)
def ringbuf_submit(vm, data: int, flags: int) -> int:
    run = run_state(vm)
    record = _find_record(run, data, "bpf_ringbuf_submit")
    record.release(run, False)
    return 0


@helper("ringbuf_discard", 2)
def ringbuf_discard(vm, data: int, flags: int) -> int:
    run = run_state(vm)
    record = _find_record(run, data, "bpf_ringbuf_discard")
    record.release(run, True)
    return 0


def _find_record(run, address: int, what: str):
    region = run.memory.region_at(address)
    record = run.ringbuf_records.get(region.id) if region is not None else None
    if record is None or address != region.address:
        raise VMFault(f"{what}: {address:#x} is not a ring buffer record reserved by this program and not yet "
                      "submitted or discarded")
    return record


@helper("ringbuf_output", 4)
def ringbuf_output(vm, ring_ptr: int, data: int, size: int, flags: int) -> int:
    ring = _ring(vm, ring_ptr, "bpf_ringbuf_output")
    payload = vm.memory.load(data, size & 0xFFFFFFFF, "bpf_ringbuf_output data")
    return ring.output(run_state(vm), payload, flags)


@helper("ringbuf_query", 2)
def ringbuf_query(vm, ring_ptr: int, flags: int) -> int:
    return _ring(vm, ring_ptr, "bpf_ringbuf_query").query(flags)


# --- perf event output -----------------------------------------------------------------------------


@helper("perf_event_output", 5)
def perf_event_output(vm, ctx: int, map_ptr: int, flags: int, data: int, size: int) -> int:
    m = _map(vm, map_ptr, "bpf_perf_event_output")
    if m.type != MapType.PERF_EVENT_ARRAY:
        raise VMFault(f"bpf_perf_event_output: {m.describe()} is not a perf event array")
    payload = vm.memory.load(data, size & 0xFFFFFFFF, "bpf_perf_event_output data")
    return m.output(run_state(vm), flags, payload)


# --- stacks ---------------------------------------------------------------------------------------------


def _stack(vm, flags: int) -> tuple[int, ...]:
    run = run_state(vm)
    ips = vm.stack_of(run, user=bool(flags & BPF_F_USER_STACK))
    return tuple(ips[flags & BPF_F_SKIP_FIELD_MASK:])


@helper("get_stackid", 3)
def get_stackid(vm, ctx: int, map_ptr: int, flags: int) -> int:
    m = _map(vm, map_ptr, "bpf_get_stackid")
    if m.type != MapType.STACK_TRACE:
        raise VMFault(f"bpf_get_stackid: {m.describe()} is not a stack trace map")
    if flags & ~(0xFF | 0x700):
        return neg(errno.EINVAL)
    return m.stack_id(_stack(vm, flags), flags)


@helper("get_stack", 4)
def get_stack(vm, ctx: int, buf: int, size: int, flags: int) -> int:
    size &= 0xFFFFFFFF
    out = vm.memory.view(buf, size, write=True, what="bpf_get_stack buffer")
    if flags & ~(0xFF | 0x900) or size % 8:
        out[:] = bytes(size)
        return neg(errno.EINVAL)
    ips = _stack(vm, flags)[:size // 8]
    data = b"".join(ip.to_bytes(8, "little") for ip in ips)
    out[:] = data + bytes(size - len(data))
    return len(data)


# --- spin locks ---------------------------------------------------------------------------------------


@helper("spin_lock", 1)
def spin_lock(vm, lock: int) -> int:
    run = run_state(vm)
    if run.locks:
        raise VMFault("bpf_spin_lock: the program already holds a lock (only one may be held at a time)")
    word = vm.memory.view(lock, 4, write=True, what="bpf_spin_lock")
    if int.from_bytes(word, "little"):
        raise VMFault("bpf_spin_lock: the lock is already taken (it would never be released: deadlock)")
    word[:] = (1).to_bytes(4, "little")
    run.locks.add(lock)
    return 0


@helper("spin_unlock", 1)
def spin_unlock(vm, lock: int) -> int:
    run = run_state(vm)
    if lock not in run.locks:
        raise VMFault("bpf_spin_unlock: the program does not hold this lock")
    vm.memory.view(lock, 4, write=True, what="bpf_spin_unlock")[:] = bytes(4)
    run.locks.discard(lock)
    return 0
