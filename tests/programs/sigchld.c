/* SIGCHLD across a restore. argv[1]:
 *   "none":   a SIGCHLD handler and a child that stays alive (a tree);
 *             on a stdin line prints "sigchld N", N the number of
 *             SIGCHLDs it got (0: the restore must not add one of its
 *             own), and kills the child;
 *   "handled": a child that exited with status 5, whose SIGCHLD the
 *             handler got, not reaped; on a stdin line prints "sigchld N"
 *             (1: the restore must not send that child's SIGCHLD again);
 *   "zombie": SIGCHLD blocked, a child that exited with status 5 and was
 *             not reaped (its SIGCHLD pending); on a stdin line unblocks
 *             it and prints "ok" when the handler saw that child's pid and
 *             status, else "FAIL pid P status S (child C)".
 * Prints "ready" once set up. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t count, seen_pid, seen_status;

static void on_chld(int sig, siginfo_t *si, void *ctx)
{
    (void)sig;
    (void)ctx;
    count++;
    seen_pid = si->si_pid;
    seen_status = si->si_status;
}

int main(int argc, char **argv)
{
    int zombie = argc > 1 && !strcmp(argv[1], "zombie");
    int handled = argc > 1 && !strcmp(argv[1], "handled");
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_chld;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigaction(SIGCHLD, &sa, NULL);
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    pid_t child = 0;
    if (handled) {
        child = fork();
        if (child == 0)
            _exit(5);
        while (count == 0)
            usleep(1000);
    } else if (!zombie) {
        child = fork();
        if (child == 0)
            for (;;)
                pause();
    } else {
        sigprocmask(SIG_BLOCK, &chld, NULL);
        child = fork();
        if (child == 0)
            _exit(5);
        siginfo_t info;
        if (waitid(P_PID, child, &info, WEXITED | WNOWAIT))
            return 1;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    puts("ready");
    char line[64];
    if (!fgets(line, sizeof line, stdin))
        return 1;
    if (!zombie) {
        usleep(100 * 1000);
        printf("sigchld %d\n", (int)count);
        if (!handled)
            kill(child, SIGKILL);
        return 0;
    }
    sigprocmask(SIG_UNBLOCK, &chld, NULL);
    if (count == 1 && seen_pid == child && seen_status == 5)
        puts("ok");
    else
        printf("FAIL count %d pid %d status %d (child %d)\n", (int)count, (int)seen_pid,
               (int)seen_status, (int)child);
    return 0;
}
