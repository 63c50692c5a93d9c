/* sigusr1: signal state that must survive a checkpoint.
   Installs a SIGUSR1 handler (SA_SIGINFO | SA_ONSTACK) running on a sigaltstack, blocks SIGUSR2.
   Prints "ready", then every 100 ms "tick N usr2-blocked yes|no usr2-pending yes|no altstack yes|no".
   The handler prints "got SIGUSR1 signo S altstack yes|no" (it checks that it runs on the altstack). */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char altstack[64 * 1024];

static void put(const char *s) { (void)!write(1, s, strlen(s)); }

static void on_usr1(int sig, siginfo_t *si, void *uc) {
    (void)sig; (void)uc;
    char here;
    int on_alt = &here >= altstack && &here < altstack + sizeof altstack;
    char buf[96];
    /* snprintf is not async-signal-safe in general, but the main loop only sleeps and
       prints with write(2), so nothing it holds can deadlock here. */
    int n = snprintf(buf, sizeof buf, "got SIGUSR1 signo %d altstack %s\n", si->si_signo,
                     on_alt ? "yes" : "no");
    (void)!write(1, buf, (size_t)n);
}

int main(void) {
    stack_t ss = { .ss_sp = altstack, .ss_size = sizeof altstack, .ss_flags = 0 };
    if (sigaltstack(&ss, NULL) != 0) { perror("sigaltstack"); return 1; }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_usr1;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGUSR1, &sa, NULL) != 0) { perror("sigaction"); return 1; }
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR2);
    if (sigprocmask(SIG_BLOCK, &block, NULL) != 0) { perror("sigprocmask"); return 1; }
    put("ready\n");
    for (unsigned long n = 1;; n++) {
        sigset_t cur, pend;
        sigprocmask(SIG_BLOCK, NULL, &cur);
        sigpending(&pend);
        stack_t now;
        sigaltstack(NULL, &now);
        int alt_ok = now.ss_sp == altstack && now.ss_size == sizeof altstack && !(now.ss_flags & SS_DISABLE);
        char buf[128];
        int len = snprintf(buf, sizeof buf, "tick %lu usr2-blocked %s usr2-pending %s altstack %s\n", n,
                           sigismember(&cur, SIGUSR2) ? "yes" : "no",
                           sigismember(&pend, SIGUSR2) ? "yes" : "no", alt_ok ? "yes" : "no");
        (void)!write(1, buf, (size_t)len);
        struct timespec ts = {0, 100 * 1000 * 1000};
        while (nanosleep(&ts, &ts) != 0) {}
    }
}
