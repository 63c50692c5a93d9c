/* procstate [fork]: process state beyond memory, for tests/tests/process_state.rs.
   Sets: RLIMIT_NOFILE soft 100, RLIMIT_CORE 1 MiB / 2 MiB, personality ADDR_NO_RANDOMIZE |
   READ_IMPLIES_EXEC, command name "procstate-nm", dumpable 0, no_new_privs 1; blocks every
   signal and queues to itself (all stay pending):
     process-wide: kill(SIGUSR1); sigqueue(SIGRTMIN+2, 4242); sigqueue(SIGRTMIN+2, 4343)
     this thread:  tgkill(SIGUSR2); rt_tgsigqueueinfo(SIGRTMIN+3, SI_QUEUE, 777)
   Prints "ready", then on stdin lines:
     "state" -> "state nofile S H core S H personality P dumpable D nnp N comm C pending MASK"
     "map"   -> "map r-x" or "map r--": the permissions of a new PROT_READ mapping
     "go"    -> unblocks everything; the handler (SA_SIGINFO, all signals blocked meanwhile)
                records each delivery; prints one "got SIG code C value V pid-self yes|no" per
                signal in delivery order, then "done".
   With "fork" the process forks first and the parent exits: the child (which never called
   execve) prints "child PID" and then works as above. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

struct got { int sig, code, value, pid; };
static struct got got[64];
static volatile int ngot;
static pid_t self_pid;

static void on_signal(int sig, siginfo_t *si, void *uc) {
    (void)uc;
    if (ngot < 64) {
        got[ngot].sig = sig;
        got[ngot].code = si->si_code;
        got[ngot].value = si->si_value.sival_int;
        got[ngot].pid = si->si_pid;
        ngot++;
    }
}

static void die(const char *what) { perror(what); exit(1); }

static void state(void) {
    struct rlimit nf, core;
    getrlimit(RLIMIT_NOFILE, &nf);
    getrlimit(RLIMIT_CORE, &core);
    char comm[17] = {0};
    prctl(PR_GET_NAME, comm);
    sigset_t pend;
    sigpending(&pend);
    unsigned long long mask = 0;
    for (int s = 1; s <= 64; s++)
        if (sigismember(&pend, s) == 1) mask |= 1ULL << (s - 1);
    printf("state nofile %llu %llu core %llu %llu personality %#x dumpable %d nnp %d comm %s pending %#llx\n",
           (unsigned long long)nf.rlim_cur, (unsigned long long)nf.rlim_max,
           (unsigned long long)core.rlim_cur, (unsigned long long)core.rlim_max,
           personality(0xffffffff), prctl(PR_GET_DUMPABLE), prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0), comm, mask);
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "fork") == 0) {
        pid_t c = fork();
        if (c < 0) die("fork");
        if (c > 0) return 0;
        printf("child %d\n", getpid());
        fflush(stdout);
    }
    self_pid = getpid();
    struct rlimit nf;
    getrlimit(RLIMIT_NOFILE, &nf);
    nf.rlim_cur = 100;
    if (setrlimit(RLIMIT_NOFILE, &nf) != 0) die("RLIMIT_NOFILE");
    struct rlimit core = {1 << 20, 2 << 20};
    if (setrlimit(RLIMIT_CORE, &core) != 0) die("RLIMIT_CORE");
    if (personality(ADDR_NO_RANDOMIZE | READ_IMPLIES_EXEC) < 0) die("personality");
    if (prctl(PR_SET_NAME, "procstate-nm") != 0) die("PR_SET_NAME");
    if (prctl(PR_SET_DUMPABLE, 0) != 0) die("PR_SET_DUMPABLE");
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) die("PR_SET_NO_NEW_PRIVS");

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_signal;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigfillset(&sa.sa_mask);
    int sigs[] = {SIGUSR1, SIGUSR2, SIGRTMIN + 2, SIGRTMIN + 3};
    for (unsigned i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        if (sigaction(sigs[i], &sa, NULL) != 0) die("sigaction");
    sigset_t all;
    sigfillset(&all);
    if (sigprocmask(SIG_BLOCK, &all, NULL) != 0) die("sigprocmask");

    pid_t tid = (pid_t)syscall(SYS_gettid);
    if (kill(self_pid, SIGUSR1) != 0) die("kill");
    if (sigqueue(self_pid, SIGRTMIN + 2, (union sigval){.sival_int = 4242}) != 0) die("sigqueue");
    if (sigqueue(self_pid, SIGRTMIN + 2, (union sigval){.sival_int = 4343}) != 0) die("sigqueue");
    if (syscall(SYS_tgkill, self_pid, tid, SIGUSR2) != 0) die("tgkill");
    siginfo_t si;
    memset(&si, 0, sizeof si);
    si.si_signo = SIGRTMIN + 3;
    si.si_code = SI_QUEUE;
    si.si_pid = self_pid;
    si.si_uid = getuid();
    si.si_value.sival_int = 777;
    if (syscall(SYS_rt_tgsigqueueinfo, self_pid, tid, SIGRTMIN + 3, &si) != 0) die("rt_tgsigqueueinfo");

    printf("ready\n");
    fflush(stdout);
    char line[64];
    while (fgets(line, sizeof line, stdin)) {
        if (strncmp(line, "state", 5) == 0) {
            state();
        } else if (strncmp(line, "map", 3) == 0) {
            unsigned char *p = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            char buf[256], perm[8] = "?";
            unsigned long start;
            FILE *m = fopen("/proc/self/maps", "r");
            while (m && fgets(buf, sizeof buf, m))
                if (sscanf(buf, "%lx-%*x %3s", &start, perm) == 2 && start == (unsigned long)p) break;
            printf("map %s\n", perm);
            if (m) fclose(m);
            munmap(p, 4096);
        } else if (strncmp(line, "go", 2) == 0) {
            sigset_t none;
            sigemptyset(&none);
            sigprocmask(SIG_SETMASK, &none, NULL);
            for (int i = 0; i < ngot; i++)
                printf("got %d code %d value %d pid-self %s\n", got[i].sig, got[i].code,
                       got[i].sig >= SIGRTMIN ? got[i].value : 0,
                       got[i].pid == self_pid ? "yes" : "no");
            printf("done\n");
        }
        fflush(stdout);
    }
    return 0;
}
