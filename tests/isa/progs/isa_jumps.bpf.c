/* Every conditional jump, 64-bit and (at v3+) 32-bit, against registers and immediates; gotol and may_goto. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

typedef unsigned long long u64;
typedef long long s64;
typedef unsigned int u32;
typedef int s32;

volatile u64 in[4];
u64 hits;

/* A helper call in each branch keeps clang from turning the test into a select. */
#define T(cond) do { if (cond) hits += bpf_get_prandom_u32(); } while (0)

SEC("tc")
int jumps(struct __sk_buff *skb)
{
	u64 a = in[0], b = in[1];
	s64 sa = (s64)in[2], sb = (s64)in[3];
	u32 c = (u32)in[0], d = (u32)in[1];
	s32 sc = (s32)in[2], sd = (s32)in[3];

	T(a == b); T(a != b); T(a > b); T(a >= b); T(a < b); T(a <= b); T(a & b);
	T(sa > sb); T(sa >= sb); T(sa < sb); T(sa <= sb);
	T(a == 3); T(a != 4); T(a > 5); T(a >= 6); T(a < 7); T(a <= 8); T(a & 0x10);
	T(sa > -5); T(sa >= -6); T(sa < -7); T(sa <= -8);
	T(c == d); T(c != d); T(c > d); T(c >= d); T(c < d); T(c <= d); T(c & d);
	T(sc > sd); T(sc >= sd); T(sc < sd); T(sc <= sd);
	T(c == 3); T(c != 4); T(c > 5); T(c >= 6); T(c < 7); T(c <= 8); T(c & 0x10);
	T(sc > -5); T(sc >= -6); T(sc < -7); T(sc <= -8);
	/* clang canonicalizes conditions (>= becomes > or an inverted jump), so spell every one out. */
#define JUMPS(R) \
	"if " R "1 == " R "2 goto +0\n\tif " R "1 != " R "2 goto +0\n\tif " R "1 > " R "2 goto +0\n\t"  \
	"if " R "1 >= " R "2 goto +0\n\tif " R "1 < " R "2 goto +0\n\tif " R "1 <= " R "2 goto +0\n\t"  \
	"if " R "1 & " R "2 goto +0\n\tif " R "1 s> " R "2 goto +0\n\tif " R "1 s>= " R "2 goto +0\n\t"  \
	"if " R "1 s< " R "2 goto +0\n\tif " R "1 s<= " R "2 goto +0\n\t"                                 \
	"if " R "1 == -3 goto +0\n\tif " R "1 != 4 goto +0\n\tif " R "1 > 5 goto +0\n\t"                \
	"if " R "1 >= 6 goto +0\n\tif " R "1 < 7 goto +0\n\tif " R "1 <= 8 goto +0\n\t"                 \
	"if " R "1 & 0x10 goto +0\n\tif " R "1 s> -5 goto +0\n\tif " R "1 s>= -6 goto +0\n\t"           \
	"if " R "1 s< -7 goto +0\n\tif " R "1 s<= -8 goto -1\n\t"
	asm volatile(JUMPS("r") "goto +0" ::: "r1", "r2");
#if __BPF_CPU_VERSION__ >= 3
	asm volatile(JUMPS("w") "goto +0" ::: "r1", "r2");
#endif
#if __BPF_CPU_VERSION__ >= 4
	asm volatile("gotol +1\n\tr0 = 1\n\tmay_goto +1\n\tr0 = 2\n" ::: "r0");
#endif
	return (int)hits;
}

char LICENSE[] SEC("license") = "GPL";
