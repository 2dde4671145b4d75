/* Kernel types as CO-RE sees them: only the members the tests use, in any order, with any
 * layout - relocations find the real offsets in the kernel's BTF by name. */
#ifndef PYBPF_CORE_TYPES_H
#define PYBPF_CORE_TYPES_H

#pragma clang attribute push (__attribute__((preserve_access_index)), apply_to = record)

struct list_head {
	struct list_head *next, *prev;
};

struct task_struct {
	int pid;
	int tgid;
	char comm[16];
	struct task_struct *real_parent;
	unsigned int in_execve: 1;
	struct list_head children;
};

/* a flavor: same essential name, a member the kernel never had */
struct task_struct___old {
	int pybpf_no_such_field;
	int pid;
};

struct pybpf_no_such_struct {
	int x;
};

#pragma clang attribute pop

enum bpf_func_id { BPF_FUNC_unspec, BPF_FUNC_map_lookup_elem, BPF_FUNC_pybpf_nope = 999,
		   BPF_FUNC_get_attach_cookie = 1000 };
enum perf_event_state { PERF_EVENT_STATE_DEAD = -5, PERF_EVENT_STATE_ACTIVE = 1 };
enum perf_callchain_context { PERF_CONTEXT_KERNEL = 0xffffffffffffff80ULL, PERF_CONTEXT_MAX = 0xfffffffffffff001ULL };

#endif
