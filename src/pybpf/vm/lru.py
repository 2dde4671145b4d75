"""The kernel's LRU lists for LRU hash maps, so that a full map evicts the key the kernel would.

A fixed pool of ``max_entries`` nodes moves between lists.  Common LRU (the
default): global active, inactive and free lists plus, per CPU, a local free
list (refilled 128 nodes at a time) and a local pending list of fresh
elements.  A program's lookup sets a node's reference bit; rotation gives
referenced nodes another round on the active list and shrinking evicts
unreferenced nodes from the tail of the inactive list.  With
BPF_F_NO_COMMON_LRU each CPU owns a share of the nodes and its own lists.
The lists are circular doubly-linked lists with a sentinel, as in the kernel,
because eviction order depends on exactly where the rotation cursor stands.
"""

from __future__ import annotations

from typing import Any, Callable

ACTIVE, INACTIVE, FREE, LOCAL_FREE, LOCAL_PENDING = range(5)
LOCAL_FREE_TARGET = 128
PERCPU_FREE_TARGET = 4


class Node:
    __slots__ = ("prev", "next", "type", "ref", "cpu", "key")

    def __init__(self) -> None:
        self.prev: Node = self
        self.next: Node = self
        self.type = FREE
        self.ref = 0
        self.cpu = 0
        self.key: Any = None


class _List:
    """A kernel list_head: ``head.next`` is the most recently added node, ``head.prev`` the oldest."""

    def __init__(self) -> None:
        self.head = Node()

    def empty(self) -> bool:
        return self.head.next is self.head

    def first(self) -> Node | None:
        return None if self.empty() else self.head.next

    def add(self, node: Node) -> None:
        head = self.head
        node.next, node.prev = head.next, head
        head.next.prev = node
        head.next = node

    @staticmethod
    def unlink(node: Node) -> None:
        node.prev.next = node.next
        node.next.prev = node.prev
        node.prev = node.next = node

    def move_here(self, node: Node) -> None:
        _List.unlink(node)
        self.add(node)

    def reverse(self) -> list[Node]:
        """Nodes from the oldest to the newest (safe against moving them while walking)."""
        out, node = [], self.head.prev
        while node is not self.head:
            out.append(node)
            node = node.prev
        return out


class _LRUList:
    """One set of active/inactive/free lists with their counts and rotation cursor."""

    def __init__(self, evict: Callable[[Node], bool], nr_scans: int) -> None:
        self.lists = [_List(), _List(), _List()]
        self.counts = [0, 0]
        self.next_inactive_rotation: Node = self.lists[INACTIVE].head
        self.evict = evict
        self.nr_scans = nr_scans

    def _count(self, node_type: int, delta: int) -> None:
        if node_type < FREE:
            self.counts[node_type] += delta

    def move_to_free(self, node: Node, free_list: _List, free_type: int) -> None:
        if node is self.next_inactive_rotation:
            self.next_inactive_rotation = node.prev
        self._count(node.type, -1)
        node.type = free_type
        free_list.move_here(node)

    def move_in(self, node: Node, target: int) -> None:
        """From a local list into this LRU list."""
        self._count(target, +1)
        node.type = target
        node.ref = 0
        self.lists[target].move_here(node)

    def move(self, node: Node, target: int) -> None:
        if node.type != target:
            self._count(node.type, -1)
            self._count(target, +1)
            node.type = target
        node.ref = 0
        if node is self.next_inactive_rotation:
            self.next_inactive_rotation = node.prev
        self.lists[target].move_here(node)

    def rotate_active(self) -> None:
        active = self.lists[ACTIVE]
        first = active.first()
        for i, node in enumerate(active.reverse(), 1):
            self.move(node, ACTIVE if node.ref else INACTIVE)
            if i == self.nr_scans or node is first:
                break

    def rotate_inactive(self) -> None:
        inactive = self.lists[INACTIVE]
        if inactive.empty():
            return
        head = inactive.head
        last = self.next_inactive_rotation.next
        if last is head:
            last = last.next
        cur = self.next_inactive_rotation
        nxt = cur
        i = 0
        while i < self.nr_scans:
            if cur is head:
                cur = cur.prev
                continue
            nxt = cur.prev
            if cur.ref:
                self.move(cur, ACTIVE)
            if cur is last:
                break
            cur = nxt
            i += 1
        self.next_inactive_rotation = nxt

    def rotate(self) -> None:
        if self.counts[INACTIVE] < self.counts[ACTIVE]:
            self.rotate_active()
        self.rotate_inactive()

    def shrink_inactive(self, target: int, free_list: _List, free_type: int) -> int:
        done = 0
        for i, node in enumerate(self.lists[INACTIVE].reverse(), 1):
            if node.ref:
                self.move(node, ACTIVE)
            elif self.evict(node):
                self.move_to_free(node, free_list, free_type)
                done += 1
                if done == target:
                    break
            if i == self.nr_scans:
                break
        return done

    def shrink(self, target: int, free_list: _List, free_type: int) -> int:
        done = self.shrink_inactive(target, free_list, free_type)
        if done:
            return done
        force = self.lists[INACTIVE] if not self.lists[INACTIVE].empty() else self.lists[ACTIVE]
        for node in force.reverse():
            if self.evict(node):
                self.move_to_free(node, free_list, free_type)
                return 1
        return 0


class _LocalList:
    def __init__(self, cpu: int) -> None:
        self.free = _List()
        self.pending = _List()
        self.next_steal = cpu


class CommonLRU:
    """The shared LRU of a map without BPF_F_NO_COMMON_LRU."""

    def __init__(self, nodes: int, cpus: int, evict: Callable[[Node], bool]):
        self.cpus = cpus
        self.lru = _LRUList(evict, LOCAL_FREE_TARGET)
        self.evict = evict
        self.local = [_LocalList(c) for c in range(cpus)]
        for _ in range(nodes):
            self.lru.lists[FREE].add(Node())
        # How many nodes a CPU takes from the global lists at a time (Linux 6.16+: at most half its
        # share of the map, so that small maps do not starve the other CPUs).
        self.target_free = min(max(nodes // cpus // 2, 1), LOCAL_FREE_TARGET)

    def _flush(self, loc: _LocalList) -> None:
        for node in loc.pending.reverse():
            self.lru.move_in(node, ACTIVE if node.ref else INACTIVE)

    def _refill_local(self, loc: _LocalList) -> None:
        lru = self.lru
        self._flush(loc)
        lru.rotate()
        nfree = 0
        node = lru.lists[FREE].head.next
        while node is not lru.lists[FREE].head and nfree < self.target_free:
            nxt = node.next
            lru.move_to_free(node, loc.free, LOCAL_FREE)
            nfree += 1
            node = nxt
        if nfree < self.target_free:
            lru.shrink(self.target_free - nfree, loc.free, LOCAL_FREE)

    @staticmethod
    def _pop_local_free(loc: _LocalList) -> Node | None:
        node = loc.free.first()
        if node is not None:
            _List.unlink(node)
        return node

    def _pop_local_pending(self, loc: _LocalList) -> Node | None:
        for force in (False, True):
            for node in loc.pending.reverse():
                if (not node.ref or force) and self.evict(node):
                    _List.unlink(node)
                    return node
        return None

    def _add_pending(self, loc: _LocalList, cpu: int, node: Node) -> None:
        node.cpu = cpu
        node.type = LOCAL_PENDING
        node.ref = 0
        loc.pending.add(node)

    def pop_free(self, cpu: int) -> Node | None:
        """A node for a new element inserted on ``cpu`` (evicting an element if it must)."""
        loc = self.local[cpu]
        node = self._pop_local_free(loc)
        if node is None:
            self._refill_local(loc)
            node = self._pop_local_free(loc)
        if node is not None:
            self._add_pending(loc, cpu, node)
            return node
        first = steal = loc.next_steal
        while True:
            other = self.local[steal]
            node = self._pop_local_free(other) or self._pop_local_pending(other)
            steal = (steal + 1) % self.cpus
            if node is not None or steal == first:
                break
        loc.next_steal = steal
        if node is not None:
            self._add_pending(loc, cpu, node)
        return node

    def push_free(self, node: Node) -> None:
        """Give back the node of a deleted or replaced element."""
        if node.type in (FREE, LOCAL_FREE):
            return
        if node.type == LOCAL_PENDING:
            node.type = LOCAL_FREE
            node.ref = 0
            self.local[node.cpu].free.move_here(node)
            return
        self.lru.move(node, FREE)


class PerCPULRU:
    """BPF_F_NO_COMMON_LRU: each CPU has its own lists and an equal share of the nodes."""

    def __init__(self, nodes: int, cpus: int, evict: Callable[[Node], bool]):
        self.lists = [_LRUList(evict, PERCPU_FREE_TARGET) for _ in range(cpus)]
        share = max(1, nodes // cpus)
        for i in range(nodes):
            cpu = min(i // share, cpus - 1)
            node = Node()
            node.cpu = cpu
            self.lists[cpu].lists[FREE].add(node)

    def pop_free(self, cpu: int) -> Node | None:
        lru = self.lists[cpu]
        lru.rotate()
        free = lru.lists[FREE]
        if free.empty():
            lru.shrink(PERCPU_FREE_TARGET, free, FREE)
        node = free.first()
        if node is None:
            return None
        node.ref = 0
        node.cpu = cpu
        lru.move(node, INACTIVE)
        return node

    def push_free(self, node: Node) -> None:
        self.lists[node.cpu].move(node, FREE)
