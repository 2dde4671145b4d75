/* Every ALU operation, 32 and 64 bit, immediate and register (pybpf ISA tests). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

typedef unsigned long long u64;
typedef long long s64;
typedef unsigned int u32;
typedef int s32;

volatile u64 in[4];
u64 out[64];

#define U64(i) (in[i])
#define S64(i) ((s64)in[i])
#define U32(i) ((u32)in[i])
#define S32(i) ((s32)in[i])

SEC("xdp")
int alu(struct xdp_md *ctx)
{
	int n = 0;
	u64 a = U64(0), b = U64(1);
	u32 c = U32(2), d = U32(3);

	out[n++] = a + b;  out[n++] = a + 7;  out[n++] = c + d;  out[n++] = c + 7;
	out[n++] = a - b;  out[n++] = a - 0x123456;  out[n++] = c - d;
	out[n++] = a * b;  out[n++] = a * 13;  out[n++] = c * d;  out[n++] = c * 13;
	out[n++] = a / b;  out[n++] = a / 10;  out[n++] = c / d;  out[n++] = c / 10;
	out[n++] = a % b;  out[n++] = a % 10;  out[n++] = c % d;  out[n++] = c % 10;
	out[n++] = a | b;  out[n++] = a | 0x40;  out[n++] = c | d;  out[n++] = c | 0x40;
	out[n++] = a & b;  out[n++] = a & 0xff00;  out[n++] = c & d;  out[n++] = c & 0xff00;
	out[n++] = a ^ b;  out[n++] = a ^ -1;  out[n++] = c ^ d;  out[n++] = c ^ 0x5a;
	out[n++] = a << (b & 63);  out[n++] = a << 3;  out[n++] = c << (d & 31);  out[n++] = c << 3;
	out[n++] = a >> (b & 63);  out[n++] = a >> 5;  out[n++] = c >> (d & 31);  out[n++] = c >> 5;
	out[n++] = S64(0) >> (b & 63);  out[n++] = S64(0) >> 9;
	out[n++] = (u32)(S32(2) >> (d & 31));  out[n++] = (u32)(S32(2) >> 9);
	out[n++] = -a;  out[n++] = (u32)-c;
#if __BPF_CPU_VERSION__ >= 4
	/* signed division and modulo: sdiv/smod exist from -mcpu=v4 */
	out[n++] = S64(0) / S64(1);  out[n++] = S64(0) / -7;  out[n++] = S64(0) % S64(1);  out[n++] = S64(0) % -7;
	out[n++] = (u32)(S32(2) / S32(3));  out[n++] = (u32)(S32(2) / -7);
	out[n++] = (u32)(S32(2) % S32(3));  out[n++] = (u32)(S32(2) % -7);
#endif
	/* sign-extending moves: movsx at v4 */
	out[n++] = (s64)(signed char)a;  out[n++] = (s64)(short)a;  out[n++] = (s64)(int)a;
	out[n++] = (u32)(s32)(signed char)c;  out[n++] = (u32)(s32)(short)c;
#if __BPF_CPU_VERSION__ >= 4
	asm volatile("w1 = (s16)w1" ::: "r1");  /* clang prefers the 64-bit form above */
#endif
	/* byte swaps: be/le everywhere, bswap at v4 */
	out[n++] = bpf_htons((unsigned short)c);  out[n++] = bpf_htonl(c);  out[n++] = bpf_cpu_to_be64(a);
	out[n++] = __builtin_bswap16((unsigned short)d);  out[n++] = __builtin_bswap32(d);  out[n++] = __builtin_bswap64(b);
	out[n++] = 0x1122334455667788ULL;
	/* Encodings clang never chooses (it adds a negative immediate instead of subtracting, and
	 * to-little-endian is a no-op on bpfel), but which are valid and llvm-objdump prints. */
	asm volatile("r1 -= 5\n\tw1 -= 5\n\tr1 = le16 r1\n\tr1 = le32 r1\n\tr1 = le64 r1\n\t"
		     "w1 |= 3\n\tw1 ^= 3\n\tw1 >>= 3\n\tr1 = -r1\n\tw1 = -w1" ::: "r1");
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
