/* Timers of every kind, with checks a restored process can run on itself.
 *
 *   timers itimers   ITIMER_REAL one-shot (3000 s), ITIMER_VIRTUAL every
 *                    50 ms (counted), ITIMER_PROF at 4000 s then every 7 s
 *   timers posix     POSIX timers with holes between their ids: A
 *                    MONOTONIC one-shot 3600 s (SIGUSR1, value &A), B
 *                    REALTIME every 20 ms (SIGRTMIN+2, value &B), C
 *                    BOOTTIME SIGEV_NONE 1000 s then every 500 s, D
 *                    MONOTONIC every 30 ms to a worker thread (SIGUSR2,
 *                    SIGEV_THREAD_ID), E SIGEV_THREAD every 25 ms (glibc's
 *                    helper thread), F process CPU clock one-shot 1000 s,
 *                    G one-shot 10 ms and H every 10 ms whose signals
 *                    (SIGRTMIN+5, +6) are blocked: both are pending
 *   timers alarm     one CLOCK_REALTIME_ALARM timerfd (needs CAP_WAKE_ALARM)
 *   timers timerfd   timerfds: 1 MONOTONIC 50 us then every 1 s, expired
 *                    and not read; 2 REALTIME absolute (now + 3600 s) with
 *                    TFD_TIMER_CANCEL_ON_SET; 3 BOOTTIME absolute (now +
 *                    3000 s); 4 MONOTONIC every 20 ms
 *
 * Prints "ready", then answers commands on stdin (one line each):
 *   report   one line per timer: "NAME id ID value_ms V interval_ms I"
 *            (timerfds: "tfdN clock C ticks T flags F value_ms V
 *            interval_ms I" from /proc/self/fdinfo)
 *   tick     waits and checks that the periodic timers fire, with the
 *            right siginfo, in the right thread: "tick ok" or why not
 *   pending  (posix) G's and H's signals are pending; unblocked, each
 *            handler runs once with SI_TIMER, its timer id and value:
 *            "pending ok"
 *   read     (timerfd) timerfd 1 has expirations to read at once and
 *            expires again within 1.5 s; timerfd 4 ticks: "read ok" */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

static long ms(const struct timespec *t)
{
    return t->tv_sec * 1000L + t->tv_nsec / 1000000L;
}

static long tv_ms(const struct timeval *t)
{
    return t->tv_sec * 1000L + t->tv_usec / 1000L;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void sleep_ms(long n)
{
    struct timespec t = {n / 1000, n % 1000 * 1000000L};
    while (nanosleep(&t, &t) != 0 && errno == EINTR)
        ;
}

/* ---------------------------------------------------------------- itimers */

static volatile int vtalrm;

static void on_vtalrm(int sig)
{
    (void)sig;
    vtalrm++;
}

static void itimers_setup(void)
{
    signal(SIGVTALRM, on_vtalrm);
    signal(SIGALRM, SIG_DFL);
    signal(SIGPROF, SIG_DFL);
    struct itimerval real = {{0, 0}, {3000, 0}};
    struct itimerval virt = {{0, 50000}, {0, 50000}};
    struct itimerval prof = {{7, 0}, {4000, 0}};
    setitimer(ITIMER_REAL, &real, NULL);
    setitimer(ITIMER_VIRTUAL, &virt, NULL);
    setitimer(ITIMER_PROF, &prof, NULL);
}

static void itimers_report(void)
{
    static const char *names[] = {"real", "virtual", "prof"};
    for (int i = 0; i < 3; i++) {
        struct itimerval v;
        getitimer(i, &v);
        printf("%s id %d value_ms %ld interval_ms %ld\n", names[i], i, tv_ms(&v.it_value),
               tv_ms(&v.it_interval));
    }
}

static void itimers_tick(void)
{
    int before = vtalrm;
    struct timespec t0, t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
    volatile unsigned long spin = 0;
    do { /* 400 ms of CPU time, most of it in user mode */
        for (int i = 0; i < 1000000; i++)
            spin++;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    } while (ms(&t) - ms(&t0) < 400);
    int n = vtalrm - before;
    if (n < 3)
        printf("tick failed: %d SIGVTALRM in 400 ms of CPU time\n", n);
    else
        printf("tick ok\n");
}

/* ------------------------------------------------------------------ posix */

struct ptimer {
    const char *name;
    timer_t id;
    volatile int count;
    volatile int bad;
    volatile int code, overrun;
};

static struct ptimer A = {"A"}, B = {"B"}, C = {"C"}, D = {"D"}, E = {"E"}, F = {"F"}, G = {"G"},
                     H = {"H"};
static pthread_t worker;

static int timer_number(timer_t t)
{
    return (int)(intptr_t)t;
}

static void on_timer(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    struct ptimer *p = si->si_value.sival_ptr;
    if (p != &B && p != &D && p != &G && p != &H) {
        A.bad |= 1 << sig % 16; /* a signal for no timer of ours */
        return;
    }
    p->count++;
    p->code = si->si_code;
    if (si->si_code != SI_TIMER || si->si_timerid != timer_number(p->id))
        p->bad |= 1;
    if (p == &D && !pthread_equal(pthread_self(), worker))
        p->bad |= 2;
    if (p == &H)
        p->overrun = timer_getoverrun(p->id);
}

static void on_thread_timer(union sigval v)
{
    struct ptimer *p = v.sival_ptr;
    if (p != &E)
        E.bad |= 1;
    else
        E.count++;
}

static void *worker_main(void *arg)
{
    (void)arg;
    for (;;)
        pause();
    return NULL;
}

static void make(struct ptimer *p, clockid_t clock, int notify, int sig, long value_ms,
                 long interval_ms, pid_t tid)
{
    struct sigevent ev;
    memset(&ev, 0, sizeof ev);
    ev.sigev_notify = notify;
    ev.sigev_signo = sig;
    ev.sigev_value.sival_ptr = p;
    if (notify == SIGEV_THREAD_ID)
        ev._sigev_un._tid = tid;
    if (notify == SIGEV_THREAD)
        ev.sigev_notify_function = on_thread_timer;
    if (timer_create(clock, &ev, &p->id) != 0) {
        printf("timer_create %s: %s\n", p->name, strerror(errno));
        exit(1);
    }
    struct itimerspec its = {{interval_ms / 1000, interval_ms % 1000 * 1000000L},
                             {value_ms / 1000, value_ms % 1000 * 1000000L}};
    timer_settime(p->id, 0, &its, NULL);
}

static volatile pid_t worker_tid;

static void *worker_start(void *arg)
{
    worker_tid = (pid_t)syscall(SYS_gettid);
    return worker_main(arg);
}

static void holes(int n)
{
    for (int i = 0; i < n; i++) {
        timer_t t;
        timer_create(CLOCK_MONOTONIC, NULL, &t);
        timer_delete(t);
    }
}

static void posix_setup(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_timer;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGUSR2, &sa, NULL);
    sigaction(SIGRTMIN + 2, &sa, NULL);
    sigaction(SIGRTMIN + 5, &sa, NULL);
    sigaction(SIGRTMIN + 6, &sa, NULL);
    /* G's and H's signals stay blocked everywhere until "pending"; D's
     * signal only reaches the worker. */
    sigset_t blocked;
    sigemptyset(&blocked);
    sigaddset(&blocked, SIGRTMIN + 5);
    sigaddset(&blocked, SIGRTMIN + 6);
    sigaddset(&blocked, SIGUSR2);
    sigprocmask(SIG_BLOCK, &blocked, NULL);
    sigset_t worker_mask = blocked;
    sigdelset(&worker_mask, SIGUSR2);
    sigaddset(&worker_mask, SIGRTMIN + 2);
    pthread_sigmask(SIG_SETMASK, &worker_mask, NULL);
    pthread_create(&worker, NULL, worker_start, NULL);
    pthread_sigmask(SIG_SETMASK, &blocked, NULL);
    while (!worker_tid)
        sleep_ms(1);

    make(&A, CLOCK_MONOTONIC, SIGEV_SIGNAL, SIGUSR1, 3600000, 0, 0);
    holes(3);
    make(&B, CLOCK_REALTIME, SIGEV_SIGNAL, SIGRTMIN + 2, 20, 20, 0);
    holes(2);
    make(&C, CLOCK_BOOTTIME, SIGEV_NONE, 0, 1000000, 500000, 0);
    make(&D, CLOCK_MONOTONIC, SIGEV_THREAD_ID, SIGUSR2, 30, 30, worker_tid);
    make(&E, CLOCK_MONOTONIC, SIGEV_THREAD, 0, 25, 25, 0);
    holes(4);
    make(&F, CLOCK_PROCESS_CPUTIME_ID, SIGEV_SIGNAL, SIGUSR1, 1000000, 0, 0);
    make(&G, CLOCK_MONOTONIC, SIGEV_SIGNAL, SIGRTMIN + 5, 10, 0, 0);
    make(&H, CLOCK_MONOTONIC, SIGEV_SIGNAL, SIGRTMIN + 6, 10, 10, 0);
    sleep_ms(100); /* G and H have fired */
}

static struct ptimer *all[] = {&A, &B, &C, &D, &E, &F, &G, &H};

static void posix_report(void)
{
    for (unsigned i = 0; i < sizeof all / sizeof all[0]; i++) {
        struct itimerspec v;
        struct ptimer *p = all[i];
        if (timer_gettime(p->id, &v) != 0) {
            printf("%s id %d gettime failed: %s\n", p->name, timer_number(p->id),
                   strerror(errno));
            continue;
        }
        long value = ms(&v.it_value);
        /* A pending timer reports 1 ns left: not the same in ms. */
        if (value == 0 && v.it_value.tv_nsec)
            value = 0;
        printf("%s id %d value_ms %ld interval_ms %ld\n", p->name, timer_number(p->id),
               p == &H ? 0 : value, ms(&v.it_interval));
    }
}

static void posix_tick(void)
{
    int b = B.count, d = D.count, e = E.count;
    sigset_t usr2;
    sigemptyset(&usr2);
    sigaddset(&usr2, SIGUSR2);
    sigset_t unblock;
    sigemptyset(&unblock);
    sigaddset(&unblock, SIGRTMIN + 2);
    sigprocmask(SIG_UNBLOCK, &unblock, NULL);
    sleep_ms(400);
    if (B.count - b < 5 || D.count - d < 5 || E.count - e < 5)
        printf("tick failed: B %d D %d E %d times in 400 ms\n", B.count - b, D.count - d,
               E.count - e);
    else if (A.bad || B.bad || D.bad || E.bad)
        printf("tick failed: bad signals (A %d B %d D %d E %d)\n", A.bad, B.bad, D.bad, E.bad);
    else
        printf("tick ok\n");
}

static void posix_pending(void)
{
    sigset_t p;
    sigpending(&p);
    if (!sigismember(&p, SIGRTMIN + 5) || !sigismember(&p, SIGRTMIN + 6)) {
        printf("pending failed: G %d H %d not pending\n", sigismember(&p, SIGRTMIN + 5),
               sigismember(&p, SIGRTMIN + 6));
        return;
    }
    struct itimerspec g;
    timer_gettime(G.id, &g);
    sigset_t u;
    sigemptyset(&u);
    sigaddset(&u, SIGRTMIN + 5);
    sigaddset(&u, SIGRTMIN + 6);
    sigprocmask(SIG_UNBLOCK, &u, NULL);
    /* Both delivered at the unblock, once each (the periodic H may have
     * fired again since, if this process did not run for 10 ms). */
    if (G.count != 1 || H.count < 1 || G.bad || H.bad) {
        printf("pending failed: G ran %d times (bad %d), H %d times (bad %d)\n", G.count,
               G.bad, H.count, H.bad);
        return;
    }
    if (g.it_value.tv_sec || g.it_value.tv_nsec) {
        printf("pending failed: the one-shot G is armed again\n");
        return;
    }
    if (H.overrun < 0) {
        printf("pending failed: timer_getoverrun of H: %d\n", H.overrun);
        return;
    }
    /* H goes on every 10 ms once its signal was delivered. */
    sleep_ms(200);
    if (H.count < 5) {
        printf("pending failed: H ran %d times in 200 ms after its signal\n", H.count);
        return;
    }
    printf("pending ok\n");
}

/* ---------------------------------------------------------------- timerfd */

static int tfd[5];

static void timerfd_setup(void)
{
    struct timespec now;
    tfd[1] = timerfd_create(CLOCK_MONOTONIC, 0);
    struct itimerspec one = {{1, 0}, {0, 50000}};
    timerfd_settime(tfd[1], 0, &one, NULL);
    tfd[2] = timerfd_create(CLOCK_REALTIME, 0);
    clock_gettime(CLOCK_REALTIME, &now);
    struct itimerspec two = {{0, 0}, {now.tv_sec + 3600, now.tv_nsec}};
    timerfd_settime(tfd[2], TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, &two, NULL);
    tfd[3] = timerfd_create(CLOCK_BOOTTIME, TFD_NONBLOCK);
    clock_gettime(CLOCK_BOOTTIME, &now);
    struct itimerspec three = {{0, 0}, {now.tv_sec + 3000, now.tv_nsec}};
    timerfd_settime(tfd[3], TFD_TIMER_ABSTIME, &three, NULL);
    tfd[4] = timerfd_create(CLOCK_MONOTONIC, 0);
    struct itimerspec four = {{0, 20000000}, {0, 20000000}};
    timerfd_settime(tfd[4], 0, &four, NULL);
    sleep_ms(100); /* timerfd 1 has expired */
}

static void timerfd_report(void)
{
    for (int i = 1; i <= 4; i++) {
        char path[64], line[128];
        snprintf(path, sizeof path, "/proc/self/fdinfo/%d", tfd[i]);
        FILE *f = fopen(path, "r");
        int clock = -1, flags = -1;
        unsigned long long ticks = 0, vs = 0, vn = 0, is = 0, in = 0;
        while (f && fgets(line, sizeof line, f)) {
            sscanf(line, "clockid: %d", &clock);
            sscanf(line, "ticks: %llu", &ticks);
            sscanf(line, "settime flags: %o", (unsigned *)&flags);
            sscanf(line, "it_value: (%llu, %llu)", &vs, &vn);
            sscanf(line, "it_interval: (%llu, %llu)", &is, &in);
        }
        if (f)
            fclose(f);
        if (i == 4)
            ticks = 0; /* ticks all the time */
        printf("tfd%d clock %d ticks %llu flags %d value_ms %llu interval_ms %llu\n", i, clock,
               ticks, flags, vs * 1000 + vn / 1000000, is * 1000 + in / 1000000);
    }
}

static void timerfd_read(void)
{
    uint64_t n = 0;
    double t0 = now_s();
    if (read(tfd[1], &n, 8) != 8 || n < 1 || now_s() - t0 > 0.2) {
        printf("read failed: timerfd 1 had nothing to read at once (%llu)\n",
               (unsigned long long)n);
        return;
    }
    t0 = now_s();
    if (read(tfd[1], &n, 8) != 8 || n != 1 || now_s() - t0 > 1.5) {
        printf("read failed: timerfd 1 did not expire again within 1.5 s\n");
        return;
    }
    for (int i = 0; i < 3; i++)
        if (read(tfd[4], &n, 8) != 8 || n < 1) {
            printf("read failed: timerfd 4\n");
            return;
        }
    if (read(tfd[3], &n, 8) != -1 || errno != EAGAIN) {
        printf("read failed: timerfd 3 expired\n");
        return;
    }
    printf("read ok\n");
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *mode = argc > 1 ? argv[1] : "";
    int posix = strcmp(mode, "posix") == 0, itimers = strcmp(mode, "itimers") == 0,
        tfds = strcmp(mode, "timerfd") == 0;
    if (strcmp(mode, "alarm") == 0) {
        int fd = timerfd_create(CLOCK_REALTIME_ALARM, 0);
        struct itimerspec v = {{0, 0}, {3600, 0}};
        if (fd < 0 || timerfd_settime(fd, 0, &v, NULL) != 0) {
            printf("alarm timerfd: %s\n", strerror(errno));
            return 1;
        }
    } else if (itimers)
        itimers_setup();
    else if (posix)
        posix_setup();
    else if (tfds)
        timerfd_setup();
    else
        return 2;
    printf("ready\n");
    char line[64];
    while (fgets(line, sizeof line, stdin)) {
        if (strncmp(line, "report", 6) == 0) {
            if (itimers)
                itimers_report();
            if (posix)
                posix_report();
            if (tfds)
                timerfd_report();
            printf("end\n");
        } else if (strncmp(line, "tick", 4) == 0) {
            if (itimers)
                itimers_tick();
            if (posix)
                posix_tick();
        } else if (strncmp(line, "pending", 7) == 0) {
            posix_pending();
        } else if (strncmp(line, "read", 4) == 0) {
            timerfd_read();
        }
    }
    return 0;
}
