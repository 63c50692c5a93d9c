/* nolibc: a static x86_64 program without libc, so its memory holds neither a
   "syscall; ret" sequence nor an rt_sigreturn sequence (the test checks the bytes): the
   dumper must fall back to injecting bare system calls. Prints "ready", then "tick N" every
   50 ms through raw system calls; N counts up from 1 and is kept in a callee-saved register
   and in memory, which must agree ("BAD" and exit 1 otherwise).
   Built with -nostdlib -static -fno-stack-protector. */
#define NR_WRITE 1
#define NR_NANOSLEEP 35
#define NR_EXIT 60

static volatile unsigned long ticks;

static inline __attribute__((always_inline)) long sys3(long n, long a, long b, long c) {
    long r;
    __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
    return r;
}

static inline __attribute__((always_inline)) void say(const char *s, unsigned long len) {
    sys3(NR_WRITE, 1, (long)s, (long)len);
}

__attribute__((noreturn, used)) void start_c(void) {
    static const long ts[2] = {0, 50 * 1000 * 1000};
    say("ready\n", 6);
    register unsigned long n __asm__("rbx") = 0;
    for (;;) {
        n++;
        ticks++;
        if (ticks != n) {
            say("BAD\n", 4);
            sys3(NR_EXIT, 1, 0, 0);
        }
        char buf[32] = "tick ";
        char digits[20];
        int k = 0;
        unsigned long v = n;
        do {
            digits[k++] = (char)('0' + v % 10);
            v /= 10;
        } while (v);
        int len = 5;
        while (k)
            buf[len++] = digits[--k];
        buf[len++] = '\n';
        say(buf, (unsigned long)len);
        sys3(NR_NANOSLEEP, (long)ts, 0, 0);
        __asm__ volatile("" : "+r"(n));
    }
}

/* The kernel enters with the stack 16-byte aligned; a call keeps the ABI's alignment. */
__asm__(".globl _start\n_start:\n\txor %ebp, %ebp\n\tcall start_c\n\thlt\n");
