/* injectee: state that the dumper's system calls run inside a thread must leave exactly as
   it was, whether the dumper finishes or is killed half-way (issue 7). Two threads (main and
   one worker) each loop: load known values into rbx, r12-r15 and xmm0-xmm15, sleep 20 ms with a
   raw nanosleep(2), spin a little, store the registers and compare; then check the thread's
   blocked mask, its alternate signal stack, its clear-child-tid address and the SIGUSR1
   handler (raised and counted). Prints "ready", then "T N ok" per round (T = 0 main, 1 worker);
   on any difference "BAD T what" and exit 1. x86_64 only (SSE2, no other CPU feature). */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#define WORDS (16 * 2 + 5)

struct lane {
    int id;
    uint64_t expected[WORDS] __attribute__((aligned(16)));
    uint64_t got[WORDS] __attribute__((aligned(16)));
    char altstack[64 * 1024];
    sigset_t mask;
    void *tid_address;
};

static struct lane lanes[2];
static volatile sig_atomic_t usr1_count[2];
static __thread int lane_id;
static const struct timespec pause_ts = {0, 20 * 1000 * 1000};

static void on_usr1(int sig) {
    (void)sig;
    usr1_count[lane_id]++;
}

static void bad(struct lane *l, const char *what) {
    printf("BAD %d %s\n", l->id, what);
    exit(1);
}

/* One round of the register check: everything between the loads and the stores is a system
   call and a spin loop, where the dumper stops the thread. */
static void registers_round(struct lane *l) {
    long ret;
    __asm__ volatile(
        "movdqu 0(%[e]), %%xmm0\n\t"
        "movdqu 16(%[e]), %%xmm1\n\t"
        "movdqu 32(%[e]), %%xmm2\n\t"
        "movdqu 48(%[e]), %%xmm3\n\t"
        "movdqu 64(%[e]), %%xmm4\n\t"
        "movdqu 80(%[e]), %%xmm5\n\t"
        "movdqu 96(%[e]), %%xmm6\n\t"
        "movdqu 112(%[e]), %%xmm7\n\t"
        "movdqu 128(%[e]), %%xmm8\n\t"
        "movdqu 144(%[e]), %%xmm9\n\t"
        "movdqu 160(%[e]), %%xmm10\n\t"
        "movdqu 176(%[e]), %%xmm11\n\t"
        "movdqu 192(%[e]), %%xmm12\n\t"
        "movdqu 208(%[e]), %%xmm13\n\t"
        "movdqu 224(%[e]), %%xmm14\n\t"
        "movdqu 240(%[e]), %%xmm15\n\t"
        "mov 256(%[e]), %%rbx\n\t"
        "mov 264(%[e]), %%r12\n\t"
        "mov 272(%[e]), %%r13\n\t"
        "mov 280(%[e]), %%r14\n\t"
        "mov 288(%[e]), %%r15\n\t"
        "mov $35, %%eax\n\t" /* nanosleep(&pause_ts, NULL) */
        "mov %[ts], %%rdi\n\t"
        "xor %%esi, %%esi\n\t"
        "syscall\n\t"
        "mov %%rax, %[ret]\n\t"
        "mov $3000000, %%ecx\n"
        "1:\n\t"
        "dec %%ecx\n\t"
        "jnz 1b\n\t"
        "movdqu %%xmm0, 0(%[g])\n\t"
        "movdqu %%xmm1, 16(%[g])\n\t"
        "movdqu %%xmm2, 32(%[g])\n\t"
        "movdqu %%xmm3, 48(%[g])\n\t"
        "movdqu %%xmm4, 64(%[g])\n\t"
        "movdqu %%xmm5, 80(%[g])\n\t"
        "movdqu %%xmm6, 96(%[g])\n\t"
        "movdqu %%xmm7, 112(%[g])\n\t"
        "movdqu %%xmm8, 128(%[g])\n\t"
        "movdqu %%xmm9, 144(%[g])\n\t"
        "movdqu %%xmm10, 160(%[g])\n\t"
        "movdqu %%xmm11, 176(%[g])\n\t"
        "movdqu %%xmm12, 192(%[g])\n\t"
        "movdqu %%xmm13, 208(%[g])\n\t"
        "movdqu %%xmm14, 224(%[g])\n\t"
        "movdqu %%xmm15, 240(%[g])\n\t"
        "mov %%rbx, 256(%[g])\n\t"
        "mov %%r12, 264(%[g])\n\t"
        "mov %%r13, 272(%[g])\n\t"
        "mov %%r14, 280(%[g])\n\t"
        "mov %%r15, 288(%[g])\n\t"
        : [ret] "=m"(ret)
        : [e] "r"(l->expected), [g] "r"(l->got), [ts] "r"(&pause_ts)
        : "rax", "rcx", "rdi", "rsi", "r11", "rbx", "r12", "r13", "r14", "r15", "xmm0", "xmm1",
          "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11",
          "xmm12", "xmm13", "xmm14", "xmm15", "memory", "cc");
    /* A sleep cut short by the stop is fine; anything else is not. */
    if (ret != 0 && ret != -4)
        bad(l, "nanosleep result");
    if (memcmp(l->expected, l->got, 37 * 8) != 0)
        bad(l, "registers");
}

static void *loop(void *arg) {
    struct lane *l = arg;
    lane_id = l->id;
    uint64_t x = 0x9e3779b97f4a7c15ull * (l->id + 1);
    for (int i = 0; i < WORDS; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        l->expected[i] = x;
    }
    stack_t ss = {.ss_sp = l->altstack, .ss_size = sizeof l->altstack, .ss_flags = 0};
    if (sigaltstack(&ss, NULL) != 0)
        bad(l, "sigaltstack setup");
    sigemptyset(&l->mask);
    sigaddset(&l->mask, SIGUSR2);
    if (l->id == 1)
        sigaddset(&l->mask, SIGHUP);
    pthread_sigmask(SIG_SETMASK, &l->mask, NULL);
    if (prctl(PR_GET_TID_ADDRESS, &l->tid_address) != 0)
        bad(l, "tid address setup");
    for (long round = 1;; round++) {
        registers_round(l);
        sigset_t now;
        pthread_sigmask(SIG_SETMASK, NULL, &now);
        for (int s = 1; s < NSIG; s++)
            if (sigismember(&now, s) != sigismember(&l->mask, s))
                bad(l, "blocked mask");
        stack_t cur;
        sigaltstack(NULL, &cur);
        if (cur.ss_sp != l->altstack || cur.ss_size != sizeof l->altstack || cur.ss_flags != 0)
            bad(l, "sigaltstack");
        void *tid_address = 0;
        prctl(PR_GET_TID_ADDRESS, &tid_address);
        if (tid_address != l->tid_address)
            bad(l, "clear-child-tid address");
        struct sigaction sa;
        sigaction(SIGUSR1, NULL, &sa);
        if (sa.sa_handler != on_usr1 || !(sa.sa_flags & SA_ONSTACK))
            bad(l, "SIGUSR1 handler");
        int before = usr1_count[l->id];
        pthread_kill(pthread_self(), SIGUSR1);
        if (usr1_count[l->id] != before + 1)
            bad(l, "SIGUSR1 not handled");
        printf("%d %ld ok\n", l->id, round);
    }
    return NULL;
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    struct sigaction sa = {.sa_handler = on_usr1, .sa_flags = SA_ONSTACK | SA_RESTART};
    sigaction(SIGUSR1, &sa, NULL);
    lanes[0].id = 0;
    lanes[1].id = 1;
    pthread_t worker;
    pthread_create(&worker, NULL, loop, &lanes[1]);
    printf("ready\n");
    loop(&lanes[0]);
    return 0;
}
