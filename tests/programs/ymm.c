/* ymm: keeps known values in ymm0-ymm15 (256-bit registers) across sleeps and spins.
   Prints "ready", then after every 100 ms nanosleep(2) plus a busy spin, stores all registers,
   compares them with the values it loaded once at start and prints "ymm ok NNNNNNNN"
   (an increasing 8-digit count) or "ymm BAD" and exits 1. The whole loop is one asm block:
   C code (printf, memcmp) could clobber vector registers, so output goes through raw write(2).
   */
#include <cpuid.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#define NREGS 16
#define WIDTH 32

static uint8_t expected[NREGS * WIDTH] __attribute__((aligned(64)));
static uint8_t got[NREGS * WIDTH] __attribute__((aligned(64)));
static char okmsg[] = "ymm ok 00000000\n";
static const char badmsg[] = "ymm BAD\n";
static const struct timespec pause_ts = {0, 100 * 1000 * 1000};

static uint64_t xgetbv0(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

/* AVX: CPUID.1:ECX.AVX and OSXSAVE, and the OS saves SSE+AVX state (XCR0 bits 1, 2). */
static int cpu_ok(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    if (!(c & bit_AVX) || !(c & bit_OSXSAVE)) return 0;
    return (xgetbv0() & 0x6) == 0x6;
}


static void run(void) {
    __asm__ volatile(
        "vmovdqu 0(%[e]), %%ymm0\n"
        "vmovdqu 32(%[e]), %%ymm1\n"
        "vmovdqu 64(%[e]), %%ymm2\n"
        "vmovdqu 96(%[e]), %%ymm3\n"
        "vmovdqu 128(%[e]), %%ymm4\n"
        "vmovdqu 160(%[e]), %%ymm5\n"
        "vmovdqu 192(%[e]), %%ymm6\n"
        "vmovdqu 224(%[e]), %%ymm7\n"
        "vmovdqu 256(%[e]), %%ymm8\n"
        "vmovdqu 288(%[e]), %%ymm9\n"
        "vmovdqu 320(%[e]), %%ymm10\n"
        "vmovdqu 352(%[e]), %%ymm11\n"
        "vmovdqu 384(%[e]), %%ymm12\n"
        "vmovdqu 416(%[e]), %%ymm13\n"
        "vmovdqu 448(%[e]), %%ymm14\n"
        "vmovdqu 480(%[e]), %%ymm15\n"
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
        "vmovdqu %%ymm0, 0(%[g])\n"
        "vmovdqu %%ymm1, 32(%[g])\n"
        "vmovdqu %%ymm2, 64(%[g])\n"
        "vmovdqu %%ymm3, 96(%[g])\n"
        "vmovdqu %%ymm4, 128(%[g])\n"
        "vmovdqu %%ymm5, 160(%[g])\n"
        "vmovdqu %%ymm6, 192(%[g])\n"
        "vmovdqu %%ymm7, 224(%[g])\n"
        "vmovdqu %%ymm8, 256(%[g])\n"
        "vmovdqu %%ymm9, 288(%[g])\n"
        "vmovdqu %%ymm10, 320(%[g])\n"
        "vmovdqu %%ymm11, 352(%[g])\n"
        "vmovdqu %%ymm12, 384(%[g])\n"
        "vmovdqu %%ymm13, 416(%[g])\n"
        "vmovdqu %%ymm14, 448(%[g])\n"
        "vmovdqu %%ymm15, 480(%[g])\n"
        /* compare got with expected */
        "mov %[e], %%rsi\n"
        "mov %[g], %%rdi\n"
        "mov $512, %%ecx\n"
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
        : "rax", "rcx", "rdx", "rsi", "rdi", "r8", "r11", "memory", "cc", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15");
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    if (!cpu_ok()) {
        printf("ymm: CPU or kernel lacks the needed vector state\n");
        return 2;
    }
    for (int i = 0; i < NREGS * WIDTH; i++) expected[i] = (uint8_t)(i * 37 + 11 + i / WIDTH);
    printf("ready\n");
    run();
    return 1;
}
