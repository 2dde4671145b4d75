/* CO-RE relocations of every kind, so that `disasm -r` is compared on what .BTF.ext holds. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

struct inner { int a; union { int b; unsigned int c : 3; int d : 5; }; };
struct outer {
	long head;
	struct inner items[4];
	struct { const volatile struct inner *ptr; } anon;
} __attribute__((preserve_access_index));
typedef struct outer outer_t;
enum color { RED, GREEN = -2, BLUE = 7 };
enum big { SMALL = 1, HUGE = 0x1ffffffffLL };
typedef enum color color_t;

long sink[32];

SEC("raw_tp/sys_enter")
int core(struct outer *o)
{
	int n = 0;
	sink[n++] = BPF_CORE_READ(o, items[2].b);
	sink[n++] = bpf_core_field_exists(o->anon.ptr);
	sink[n++] = bpf_core_field_size(o->items[1].a);
	sink[n++] = BPF_CORE_READ_BITFIELD_PROBED(&o->items[3], c);
	sink[n++] = BPF_CORE_READ_BITFIELD_PROBED(&o->items[0], d);
	sink[n++] = bpf_core_type_id_local(outer_t);
	sink[n++] = bpf_core_type_id_kernel(struct inner);
	sink[n++] = bpf_core_type_exists(color_t);
	sink[n++] = bpf_core_type_size(struct outer);
	sink[n++] = bpf_core_enum_value_exists(enum color, GREEN);
	sink[n++] = bpf_core_enum_value(color_t, BLUE);
	sink[n++] = bpf_core_enum_value(enum big, HUGE);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
