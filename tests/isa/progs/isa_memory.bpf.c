/* Loads and stores of every size, sign-extending loads (v4), stores of immediates, every atomic. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

typedef unsigned long long u64;
typedef unsigned int u32;

struct record {
	unsigned char u8; unsigned short u16; unsigned int u32; unsigned long long u64;
	signed char s8; short s16; int s32; long long s64;
};

struct record src, dst;
volatile long long wide[8];
volatile int narrow[8];
long long sink[16];

SEC("tracepoint/syscalls/sys_enter_getpid")
int memory(void *ctx)
{
	int n = 0;
	dst.u8 = src.u8 + 1; dst.u16 = src.u16 + 1; dst.u32 = src.u32 + 1; dst.u64 = src.u64 + 1;
	sink[n++] = src.s8; sink[n++] = src.s16; sink[n++] = src.s32;          /* ldsx at v4 */
	dst.u8 = 7; dst.u16 = 0x7ff; dst.u32 = 0x12345; dst.u64 = 42;          /* st imm at v4 */

	__sync_fetch_and_add(&wide[0], 1);                                       /* lock add, 64 */
	__sync_fetch_and_add(&narrow[0], 1);                                     /* lock add, 32 */
#if __BPF_CPU_VERSION__ >= 3
	__sync_fetch_and_or(&wide[1], 2); __sync_fetch_and_and(&wide[2], 3); __sync_fetch_and_xor(&wide[3], 4);
	__sync_fetch_and_or(&narrow[1], 2); __sync_fetch_and_and(&narrow[2], 3); __sync_fetch_and_xor(&narrow[3], 4);
	sink[n++] = __sync_fetch_and_add(&wide[4], 5);   sink[n++] = __sync_fetch_and_add(&narrow[4], 5);
	sink[n++] = __sync_fetch_and_or(&wide[4], 6);    sink[n++] = __sync_fetch_and_or(&narrow[4], 6);
	sink[n++] = __sync_fetch_and_and(&wide[4], 7);   sink[n++] = __sync_fetch_and_and(&narrow[4], 7);
	sink[n++] = __sync_fetch_and_xor(&wide[4], 8);   sink[n++] = __sync_fetch_and_xor(&narrow[4], 8);
	sink[n++] = __sync_lock_test_and_set(&wide[5], 9);  sink[n++] = __sync_lock_test_and_set(&narrow[5], 9);
	sink[n++] = __sync_val_compare_and_swap(&wide[6], 1, 2);
	sink[n++] = __sync_val_compare_and_swap(&narrow[6], 1, 2);
#endif
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
