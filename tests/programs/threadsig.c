/* threadsig: pending signals of every thread, for tests/tests/thread_signals.rs.
   Blocks every signal, starts two worker threads (which inherit the mask) and queues
   (all stay pending):
     process-wide: kill(SIGUSR1); sigqueue(SIGRTMIN+2, 4242)
     main thread:  rt_tgsigqueueinfo(SIGRTMIN+3, SI_QUEUE, 555)
     worker 1:     tgkill(SIGUSR2); pthread_sigqueue(SIGRTMIN+3, 777); pthread_sigqueue(SIGRTMIN+3, 778)
     worker 2:     pthread_sigqueue(SIGRTMIN+3, 999); pthread_sigqueue(SIGRTMIN+4, 888)
   Prints "ready", then on stdin lines:
     "go" -> each worker unblocks everything but the two process-wide signals (so those go to
             the main thread), the main thread unblocks everything; the handler (SA_SIGINFO,
             all signals blocked meanwhile) records which thread got what; once both workers
             are through, prints one "tN got SIG code C value V pid-self yes|no" per delivery
             (thread 0 = main, then 1, 2; each in delivery order), then "done". */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

struct got { int sig, code, value, pid; };
static struct got got[3][16];
static volatile int ngot[3];
static __thread int me; /* 0 main, 1 and 2 the workers */
static pid_t self_pid;
static volatile int go_flag, through;
static volatile pid_t worker_tid[3];

static void on_signal(int sig, siginfo_t *si, void *uc) {
    (void)uc;
    int n = ngot[me];
    if (n < 16) {
        got[me][n].sig = sig;
        got[me][n].code = si->si_code;
        got[me][n].value = si->si_value.sival_int;
        got[me][n].pid = si->si_pid;
        ngot[me] = n + 1;
    }
}

static void die(const char *what) { perror(what); exit(1); }

static void nap(void) {
    struct timespec ts = {0, 5 * 1000 * 1000};
    nanosleep(&ts, NULL);
}

static void *worker(void *arg) {
    me = (int)(long)arg;
    worker_tid[me] = (pid_t)syscall(SYS_gettid);
    while (!__atomic_load_n(&go_flag, __ATOMIC_ACQUIRE)) nap();
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGUSR1);
    sigaddset(&s, SIGRTMIN + 2);
    pthread_sigmask(SIG_SETMASK, &s, NULL);
    __atomic_fetch_add(&through, 1, __ATOMIC_ACQ_REL);
    for (;;) pause();
    return NULL;
}

static void queue_value(pthread_t t, int sig, int value) {
    int e = pthread_sigqueue(t, sig, (union sigval){.sival_int = value});
    if (e != 0) { errno = e; die("pthread_sigqueue"); }
}

int main(void) {
    self_pid = getpid();
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_signal;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigfillset(&sa.sa_mask);
    int sigs[] = {SIGUSR1, SIGUSR2, SIGRTMIN + 2, SIGRTMIN + 3, SIGRTMIN + 4};
    for (unsigned i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        if (sigaction(sigs[i], &sa, NULL) != 0) die("sigaction");
    sigset_t all;
    sigfillset(&all);
    if (sigprocmask(SIG_BLOCK, &all, NULL) != 0) die("sigprocmask");

    pthread_t t[3];
    for (long i = 1; i <= 2; i++)
        if (pthread_create(&t[i], NULL, worker, (void *)i) != 0) die("pthread_create");
    while (!worker_tid[1] || !worker_tid[2]) nap();

    if (kill(self_pid, SIGUSR1) != 0) die("kill");
    if (sigqueue(self_pid, SIGRTMIN + 2, (union sigval){.sival_int = 4242}) != 0) die("sigqueue");
    siginfo_t si;
    memset(&si, 0, sizeof si);
    si.si_signo = SIGRTMIN + 3;
    si.si_code = SI_QUEUE;
    si.si_pid = self_pid;
    si.si_uid = getuid();
    si.si_value.sival_int = 555;
    if (syscall(SYS_rt_tgsigqueueinfo, self_pid, (pid_t)syscall(SYS_gettid), SIGRTMIN + 3, &si) != 0)
        die("rt_tgsigqueueinfo");
    if (syscall(SYS_tgkill, self_pid, worker_tid[1], SIGUSR2) != 0) die("tgkill");
    queue_value(t[1], SIGRTMIN + 3, 777);
    queue_value(t[1], SIGRTMIN + 3, 778);
    queue_value(t[2], SIGRTMIN + 3, 999);
    queue_value(t[2], SIGRTMIN + 4, 888);

    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("ready\n");
    char line[64];
    while (fgets(line, sizeof line, stdin)) {
        if (strncmp(line, "go", 2) != 0) continue;
        __atomic_store_n(&go_flag, 1, __ATOMIC_RELEASE);
        while (__atomic_load_n(&through, __ATOMIC_ACQUIRE) < 2) nap();
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        for (int th = 0; th < 3; th++)
            for (int i = 0; i < ngot[th]; i++)
                printf("t%d got %d code %d value %d pid-self %s\n", th, got[th][i].sig,
                       got[th][i].code, got[th][i].sig >= SIGRTMIN ? got[th][i].value : 0,
                       got[th][i].pid == self_pid ? "yes" : "no");
        printf("done\n");
    }
    return 0;
}
