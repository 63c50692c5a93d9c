/* Every signal 1-64 but SIGKILL and SIGSTOP gets its own disposition: a
 * handler of its own (one function per signal), SIG_IGN or SIG_DFL, with
 * flags (SA_SIGINFO, SA_RESTART, SA_NODEFER, SA_RESETHAND, SA_ONSTACK, and
 * SA_NOCLDSTOP|SA_NOCLDWAIT for SIGCHLD) and a blocked-during-handler mask
 * that differ from signal to signal. Signals 32 and 33 (which glibc keeps
 * for itself) are set with the raw system call.
 *
 * Prints "ready", then reads commands on stdin:
 *   check  compares every disposition with what the kernel reported right
 *          after it was set: "check ok" or "check mismatch sig N ..."
 *   raise  raises every signal that has a handler (SIGTRAP also with a real
 *          int3 trap) and checks that its own handler ran on the expected
 *          stack, once, and that SA_RESETHAND ones were reset: "raise ok" or
 *          "raise failed ..."
 * With the argument "thread", a second thread sleeps in the process (the
 * restore then has two threads going through the tracer's int3). */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

struct ksigaction {
    uint64_t handler, flags, restorer, mask;
};

#define SA_RESTORER_ 0x04000000ULL

static struct ksigaction expected[65];
static volatile int calls[65];
static volatile int on_alt[65];
static char altstack[1 << 16];

static int raw_get(int sig, struct ksigaction *out)
{
    return (int)syscall(SYS_rt_sigaction, sig, NULL, out, 8);
}

static int raw_set(int sig, const struct ksigaction *act)
{
    return (int)syscall(SYS_rt_sigaction, sig, act, NULL, 8);
}

static void note(int sig, void *sp_probe)
{
    uintptr_t p = (uintptr_t)sp_probe;
    calls[sig]++;
    on_alt[sig] = p >= (uintptr_t)altstack && p < (uintptr_t)altstack + sizeof altstack;
}

#define H(n)                                                                                   \
    static void h##n(int sig)                                                                  \
    {                                                                                          \
        int probe;                                                                             \
        if (sig == n)                                                                          \
            note(n, &probe);                                                                   \
    }
H(1) H(2) H(3) H(4) H(5) H(6) H(7) H(8) H(10) H(11) H(12) H(13) H(14) H(15) H(16) H(17) H(18)
H(20) H(21) H(22) H(23) H(24) H(25) H(26) H(27) H(28) H(29) H(30) H(31) H(32) H(33) H(34) H(35)
H(36) H(37) H(38) H(39) H(40) H(41) H(42) H(43) H(44) H(45) H(46) H(47) H(48) H(49) H(50) H(51)
H(52) H(53) H(54) H(55) H(56) H(57) H(58) H(59) H(60) H(61) H(62) H(63) H(64)

static void (*handlers[65])(int) = {
    0, h1, h2, h3, h4, h5, h6, h7, h8, 0, h10, h11, h12, h13, h14, h15, h16, h17, h18, 0, h20,
    h21, h22, h23, h24, h25, h26, h27, h28, h29, h30, h31, h32, h33, h34, h35, h36, h37, h38,
    h39, h40, h41, h42, h43, h44, h45, h46, h47, h48, h49, h50, h51, h52, h53, h54, h55, h56,
    h57, h58, h59, h60, h61, h62, h63, h64,
};

/* What each signal gets: 0 handler, 1 SIG_IGN, 2 SIG_DFL. Signals whose
 * default action would stop or kill the process when raised get handlers. */
static int kind_of(int sig)
{
    if (sig == SIGTRAP || sig == SIGCHLD || sig == SIGUSR1 || sig == SIGSEGV)
        return 0;
    if (sig == SIGWINCH || sig == SIGURG || sig == 45 || sig == SIGPIPE)
        return 1;
    if (sig == SIGCONT || sig == 50)
        return 2;
    return 0;
}

static uint64_t flags_of(int sig)
{
    static const uint64_t combos[] = {
        0,
        SA_RESTART,
        SA_NODEFER,
        SA_ONSTACK,
        SA_RESTART | SA_ONSTACK,
        SA_SIGINFO | SA_RESTART,
        SA_RESETHAND,
        SA_NODEFER | SA_RESETHAND | SA_ONSTACK,
    };
    uint64_t f = combos[sig % 8];
    if (sig == SIGCHLD)
        f |= SA_NOCLDSTOP | SA_NOCLDWAIT;
    if (sig == SIGTRAP)
        f = SA_RESTART; /* raised twice: no SA_RESETHAND */
    return f;
}

static uint64_t mask_of(int sig)
{
    /* A few signals per mask, different for each (never 9 or 19: the
     * kernel drops those). */
    uint64_t m = (1ULL << ((sig * 7) % 64)) | (1ULL << ((sig * 13 + 5) % 64));
    m &= ~((1ULL << 8) | (1ULL << 18));
    return m;
}

static void install(void)
{
    struct ksigaction usr1;
    for (int sig = 1; sig <= 64; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP || sig == 32 || sig == 33)
            continue;
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        int kind = kind_of(sig);
        sa.sa_handler = kind == 1 ? SIG_IGN : kind == 2 ? SIG_DFL : handlers[sig];
        sa.sa_flags = (int)flags_of(sig);
        memcpy(&sa.sa_mask, &(uint64_t){mask_of(sig)}, 8);
        if (sigaction(sig, &sa, NULL) != 0) {
            printf("sigaction %d failed\n", sig);
            exit(1);
        }
    }
    /* 32 and 33 with the raw call and glibc's restorer. */
    raw_get(SIGUSR1, &usr1);
    for (int sig = 32; sig <= 33; sig++) {
        struct ksigaction k = {
            (uint64_t)(uintptr_t)handlers[sig],
            flags_of(sig) | SA_RESTORER_,
            usr1.restorer,
            mask_of(sig),
        };
        if (raw_set(sig, &k) != 0) {
            printf("rt_sigaction %d failed\n", sig);
            exit(1);
        }
    }
    for (int sig = 1; sig <= 64; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            raw_get(sig, &expected[sig]);
}

static void check(void)
{
    for (int sig = 1; sig <= 64; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP)
            continue;
        struct ksigaction now;
        raw_get(sig, &now);
        if (memcmp(&now, &expected[sig], sizeof now) != 0) {
            printf("check mismatch sig %d: handler %#llx flags %#llx mask %#llx, expected "
                   "handler %#llx flags %#llx mask %#llx\n",
                   sig, (unsigned long long)now.handler, (unsigned long long)now.flags,
                   (unsigned long long)now.mask, (unsigned long long)expected[sig].handler,
                   (unsigned long long)expected[sig].flags,
                   (unsigned long long)expected[sig].mask);
            return;
        }
    }
    printf("check ok\n");
}

static void do_raise(void)
{
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    memset((void *)calls, 0, sizeof calls);
    for (int sig = 1; sig <= 64; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP || kind_of(sig) != 0)
            continue;
        syscall(SYS_tgkill, getpid(), (pid_t)syscall(SYS_gettid), sig);
        int want_alt = (flags_of(sig) & SA_ONSTACK) != 0;
        if (calls[sig] != 1 || on_alt[sig] != want_alt) {
            printf("raise failed: sig %d handler ran %d times, on the altstack %d (expected %d)\n",
                   sig, calls[sig], on_alt[sig], want_alt);
            return;
        }
        struct ksigaction now;
        raw_get(sig, &now);
        int reset = (flags_of(sig) & SA_RESETHAND) != 0;
        if (reset ? now.handler != 0 : now.handler != expected[sig].handler) {
            printf("raise failed: sig %d handler %#llx after delivery\n", sig,
                   (unsigned long long)now.handler);
            return;
        }
        if (reset)
            raw_set(sig, &expected[sig]); /* for the next round */
    }
#if defined(__x86_64__)
    __asm__ volatile("int3");
#elif defined(__aarch64__)
    __asm__ volatile("brk #0");
#endif
    if (calls[SIGTRAP] != 2) {
        printf("raise failed: the SIGTRAP handler ran %d times for tgkill and a trap\n",
               calls[SIGTRAP]);
        return;
    }
    printf("raise ok\n");
}

static void *sleeper(void *arg)
{
    (void)arg;
    for (;;)
        pause();
    return NULL;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack};
    if (sigaltstack(&ss, NULL) != 0) {
        printf("sigaltstack failed\n");
        return 1;
    }
    /* The thread first: glibc's pthread_create installs its own handler
     * for signal 33, which install() then replaces. */
    if (argc > 1 && strcmp(argv[1], "thread") == 0) {
        pthread_t t;
        /* The thread must not take the process-directed signals raised
         * below: it blocks them all. */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        pthread_create(&t, NULL, sleeper, NULL);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    }
    install();
    printf("ready\n");
    char line[64];
    while (fgets(line, sizeof line, stdin)) {
        if (strncmp(line, "check", 5) == 0)
            check();
        else if (strncmp(line, "raise", 5) == 0)
            do_raise();
    }
    return 0;
}
