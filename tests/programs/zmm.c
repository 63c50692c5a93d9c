/* zmm: keeps known values in zmm0-zmm31 (512-bit registers) across sleeps and spins.
   Prints "ready", then after every 100 ms nanosleep(2) plus a busy spin, stores all registers,
   compares them with the values it loaded once at start and prints "zmm ok NNNNNNNN"
   (an increasing 8-digit count) or "zmm BAD" and exits 1. The whole loop is one asm block:
   C code (printf, memcmp) could clobber vector registers, so output goes through raw write(2).
   Needs AVX-512F; exits 2 with a message on CPUs without it.
   */
#include <cpuid.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#define NREGS 32
#define WIDTH 64

static uint8_t expected[NREGS * WIDTH] __attribute__((aligned(64)));
static uint8_t got[NREGS * WIDTH] __attribute__((aligned(64)));
static char okmsg[] = "zmm ok 00000000\n";
static const char badmsg[] = "zmm BAD\n";
static const struct timespec pause_ts = {0, 100 * 1000 * 1000};

static uint64_t xgetbv0(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

/* AVX-512F: CPUID.7.0:EBX.AVX512F and OSXSAVE, and the OS saves opmask/ZMM state (XCR0 bits 5-7). */
static int cpu_ok(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_OSXSAVE)) return 0;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(b & bit_AVX512F)) return 0;
    return (xgetbv0() & 0xe6) == 0xe6;
}

__attribute__((target("avx512f")))
static void run(void) {
    __asm__ volatile(
        "vmovdqu64 0(%[e]), %%zmm0\n"
        "vmovdqu64 64(%[e]), %%zmm1\n"
        "vmovdqu64 128(%[e]), %%zmm2\n"
        "vmovdqu64 192(%[e]), %%zmm3\n"
        "vmovdqu64 256(%[e]), %%zmm4\n"
        "vmovdqu64 320(%[e]), %%zmm5\n"
        "vmovdqu64 384(%[e]), %%zmm6\n"
        "vmovdqu64 448(%[e]), %%zmm7\n"
        "vmovdqu64 512(%[e]), %%zmm8\n"
        "vmovdqu64 576(%[e]), %%zmm9\n"
        "vmovdqu64 640(%[e]), %%zmm10\n"
        "vmovdqu64 704(%[e]), %%zmm11\n"
        "vmovdqu64 768(%[e]), %%zmm12\n"
        "vmovdqu64 832(%[e]), %%zmm13\n"
        "vmovdqu64 896(%[e]), %%zmm14\n"
        "vmovdqu64 960(%[e]), %%zmm15\n"
        "vmovdqu64 1024(%[e]), %%zmm16\n"
        "vmovdqu64 1088(%[e]), %%zmm17\n"
        "vmovdqu64 1152(%[e]), %%zmm18\n"
        "vmovdqu64 1216(%[e]), %%zmm19\n"
        "vmovdqu64 1280(%[e]), %%zmm20\n"
        "vmovdqu64 1344(%[e]), %%zmm21\n"
        "vmovdqu64 1408(%[e]), %%zmm22\n"
        "vmovdqu64 1472(%[e]), %%zmm23\n"
        "vmovdqu64 1536(%[e]), %%zmm24\n"
        "vmovdqu64 1600(%[e]), %%zmm25\n"
        "vmovdqu64 1664(%[e]), %%zmm26\n"
        "vmovdqu64 1728(%[e]), %%zmm27\n"
        "vmovdqu64 1792(%[e]), %%zmm28\n"
        "vmovdqu64 1856(%[e]), %%zmm29\n"
        "vmovdqu64 1920(%[e]), %%zmm30\n"
        "vmovdqu64 1984(%[e]), %%zmm31\n"
        "1:\n"
        /* nanosleep(&pause_ts, NULL) */
        "mov $35, %%eax\n"
        "mov %[ts], %%rdi\n"
        "xor %%esi, %%esi\n"
        "syscall\n"
        /* busy spin, so a checkpoint also catches the process in user mode */
        "mov $2000000, %%r8\n"
        "2: pause\n"
        "dec %%r8\n"
        "jnz 2b\n"
        "vmovdqu64 %%zmm0, 0(%[g])\n"
        "vmovdqu64 %%zmm1, 64(%[g])\n"
        "vmovdqu64 %%zmm2, 128(%[g])\n"
        "vmovdqu64 %%zmm3, 192(%[g])\n"
        "vmovdqu64 %%zmm4, 256(%[g])\n"
        "vmovdqu64 %%zmm5, 320(%[g])\n"
        "vmovdqu64 %%zmm6, 384(%[g])\n"
        "vmovdqu64 %%zmm7, 448(%[g])\n"
        "vmovdqu64 %%zmm8, 512(%[g])\n"
        "vmovdqu64 %%zmm9, 576(%[g])\n"
        "vmovdqu64 %%zmm10, 640(%[g])\n"
        "vmovdqu64 %%zmm11, 704(%[g])\n"
        "vmovdqu64 %%zmm12, 768(%[g])\n"
        "vmovdqu64 %%zmm13, 832(%[g])\n"
        "vmovdqu64 %%zmm14, 896(%[g])\n"
        "vmovdqu64 %%zmm15, 960(%[g])\n"
        "vmovdqu64 %%zmm16, 1024(%[g])\n"
        "vmovdqu64 %%zmm17, 1088(%[g])\n"
        "vmovdqu64 %%zmm18, 1152(%[g])\n"
        "vmovdqu64 %%zmm19, 1216(%[g])\n"
        "vmovdqu64 %%zmm20, 1280(%[g])\n"
        "vmovdqu64 %%zmm21, 1344(%[g])\n"
        "vmovdqu64 %%zmm22, 1408(%[g])\n"
        "vmovdqu64 %%zmm23, 1472(%[g])\n"
        "vmovdqu64 %%zmm24, 1536(%[g])\n"
        "vmovdqu64 %%zmm25, 1600(%[g])\n"
        "vmovdqu64 %%zmm26, 1664(%[g])\n"
        "vmovdqu64 %%zmm27, 1728(%[g])\n"
        "vmovdqu64 %%zmm28, 1792(%[g])\n"
        "vmovdqu64 %%zmm29, 1856(%[g])\n"
        "vmovdqu64 %%zmm30, 1920(%[g])\n"
        "vmovdqu64 %%zmm31, 1984(%[g])\n"
        /* compare got with expected */
        "mov %[e], %%rsi\n"
        "mov %[g], %%rdi\n"
        "mov $2048, %%ecx\n"
        "repe cmpsb\n"
        "jne 5f\n"
        /* increment the decimal count in okmsg (8 digits before the newline) */
        "lea 14(%[m]), %%rdx\n"
        "3: incb (%%rdx)\n"
        "cmpb $0x39, (%%rdx)\n"
        "jle 4f\n"
        "movb $0x30, (%%rdx)\n"
        "dec %%rdx\n"
        "jmp 3b\n"
        /* write(1, okmsg, len) */
        "4: mov $1, %%eax\n"
        "mov $1, %%edi\n"
        "mov %[m], %%rsi\n"
        "mov $16, %%edx\n"
        "syscall\n"
        "jmp 1b\n"
        /* write(1, badmsg, len); exit_group(1) */
        "5: mov $1, %%eax\n"
        "mov $1, %%edi\n"
        "mov %[b], %%rsi\n"
        "mov $8, %%edx\n"
        "syscall\n"
        "mov $231, %%eax\n"
        "mov $1, %%edi\n"
        "syscall\n"
        :
        : [e] "r"(expected), [g] "r"(got), [m] "r"(okmsg), [b] "r"(badmsg), [ts] "r"(&pause_ts)
        : "rax", "rcx", "rdx", "rsi", "rdi", "r8", "r11", "memory", "cc", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22", "xmm23", "xmm24", "xmm25", "xmm26", "xmm27", "xmm28", "xmm29", "xmm30", "xmm31");
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    if (!cpu_ok()) {
        printf("zmm: CPU or kernel lacks the needed vector state\n");
        return 2;
    }
    for (int i = 0; i < NREGS * WIDTH; i++) expected[i] = (uint8_t)(i * 37 + 11 + i / WIDTH);
    printf("ready\n");
    run();
    return 1;
}
