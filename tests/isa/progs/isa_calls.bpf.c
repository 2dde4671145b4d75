/* Helper calls, bpf-to-bpf calls (static and global), callbacks, callx, kfuncs, maps; ld_abs/ld_ind. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, int);
	__type(value, long);
} counters SEC(".maps");

extern int bpf_kfunc_example(int value) __ksym;
typedef int (*handler_t)(int);
volatile handler_t handlers[2];
const volatile int config = 3;

static __attribute__((noinline)) int twice(int x) { return x * 2 + config; }
__attribute__((noinline)) int thrice(int x) { return twice(x) + x; }
static int step(__u32 index, void *data) { *(long *)data += index; return 0; }

SEC("tc")
int calls(struct __sk_buff *skb)
{
	int key = 0;
	long total = 0, *slot = bpf_map_lookup_elem(&counters, &key);
	if (slot)
		total = *slot;
	bpf_loop(4, step, &total, 0);
	total += thrice(skb->len) + twice(skb->mark);
	total += bpf_kfunc_example(skb->len);
	total += handlers[skb->len & 1]((int)total);
	return (int)total;
}

unsigned long long load_byte(void *skb, unsigned long long off) asm("llvm.bpf.load.byte");
unsigned long long load_half(void *skb, unsigned long long off) asm("llvm.bpf.load.half");
unsigned long long load_word(void *skb, unsigned long long off) asm("llvm.bpf.load.word");

SEC("socket")
int packet(struct __sk_buff *skb)
{
	unsigned long long ihl = load_byte(skb, 14) & 0xf, end = skb->len;
	unsigned long long sum = load_half(skb, 12) + load_word(skb, 26);                   /* ld_abs */
	sum += load_byte(skb, ihl * 4 + 14) + load_half(skb, ihl * 4 + 16) + load_word(skb, end - 4);  /* ld_ind */
	return (int)sum;
}

char LICENSE[] SEC("license") = "GPL";
