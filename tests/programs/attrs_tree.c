/* Process attributes kept across a dump (tests/process_attrs.rs): a root
 * with a nice value and a parent-death signal, and a child that the root
 * stops (argv[1]: the stop signal) after the child set its own nice value,
 * SCHED_BATCH and a parent-death signal, and started a thread with
 * SCHED_IDLE, another nice value and parent-death signal.
 *
 * Before the dump: prints "child PID", then "ready". On "check" (stdin),
 * the root looks for its child's stop (waitpid WUNTRACED: it consumed the
 * one before the dump, so this one is the restore's), prints "ok stopped"
 * or "FAIL stopped ...", continues the child, which checks itself and its
 * thread ("ok child" or "FAIL child ..."); the root checks itself ("ok
 * root"), reaps the child, prints "done" and exits 0.
 * argv[2] "rt": the root also runs SCHED_FIFO 1 (only root may). */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void say(const char *s)
{
    size_t n = strlen(s);
    if (write(1, s, n) != (ssize_t)n)
        exit(1);
}

/* "" if the calling thread has `policy`, `nice` and `pdeath`, else why not. */
static const char *check_self(int policy, int nice, int pdeath, char *buf, size_t len)
{
    pid_t tid = (pid_t)syscall(SYS_gettid);
    int p = sched_getscheduler(tid);
    errno = 0;
    int n = getpriority(PRIO_PROCESS, (id_t)tid);
    int d = -1;
    prctl(PR_GET_PDEATHSIG, &d);
    if (p == policy && n == nice && d == pdeath)
        return "";
    snprintf(buf, len, "policy %d/%d nice %d/%d pdeathsig %d/%d", p, policy, n, nice, d, pdeath);
    return buf;
}

static int set_self(int policy, int prio, int nice, int pdeath)
{
    struct sched_param sp = { .sched_priority = prio };
    return sched_setscheduler(0, policy, &sp) || setpriority(PRIO_PROCESS, 0, nice) ||
           prctl(PR_SET_PDEATHSIG, pdeath);
}

static char thread_fail[160];
static int thread_ready[2], thread_go[2];

static void *thread_main(void *arg)
{
    (void)arg;
    char c = 'r';
    if (set_self(SCHED_IDLE, 0, 7, SIGUSR2) || write(thread_ready[1], &c, 1) != 1)
        exit(3);
    if (read(thread_go[0], &c, 1) != 1)
        exit(4);
    char buf[128];
    const char *why = check_self(SCHED_IDLE, 7, SIGUSR2, buf, sizeof buf);
    snprintf(thread_fail, sizeof thread_fail, "%s", why);
    return NULL;
}

static void child(int ready, int go)
{
    if (set_self(SCHED_BATCH, 0, 5, SIGUSR1) || pipe(thread_ready) || pipe(thread_go))
        exit(2);
    pthread_t t;
    char c = 'c';
    if (pthread_create(&t, NULL, thread_main, NULL) || read(thread_ready[0], &c, 1) != 1)
        exit(2);
    if (write(ready, &c, 1) != 1 || read(go, &c, 1) != 1)
        exit(2);
    if (write(thread_go[1], &c, 1) != 1 || pthread_join(t, NULL))
        exit(2);
    char buf[128], line[400];
    const char *why = check_self(SCHED_BATCH, 5, SIGUSR1, buf, sizeof buf);
    if (*why || *thread_fail)
        snprintf(line, sizeof line, "FAIL child %s; thread %s\n", why, thread_fail);
    else
        snprintf(line, sizeof line, "ok child\n");
    say(line);
    exit(0);
}

/* The child's next stop or continue report, waiting up to 5 s. */
static int stop_report(pid_t pid, int *status)
{
    for (int i = 0; i < 500; i++) {
        pid_t r = waitpid(pid, status, WUNTRACED | WCONTINUED | WNOHANG);
        if (r != 0)
            return r == pid;
        usleep(10000);
    }
    return 0;
}

int main(int argc, char **argv)
{
    int stopsig = argc > 1 ? atoi(argv[1]) : SIGSTOP;
    int rt = argc > 2 && strcmp(argv[2], "rt") == 0;
    int ready[2], go[2];
    if (pipe(ready) || pipe(go))
        return 2;
    pid_t pid = fork();
    if (pid < 0)
        return 2;
    if (pid == 0) {
        close(ready[0]);
        close(go[1]);
        child(ready[1], go[0]);
    }
    close(ready[1]);
    close(go[0]);
    char c;
    if (read(ready[0], &c, 1) != 1)
        return 2;
    int policy = rt ? SCHED_FIFO : SCHED_OTHER;
    if (set_self(policy, rt ? 1 : 0, 3, SIGHUP))
        return 2;
    int status;
    if (kill(pid, stopsig) || waitpid(pid, &status, WUNTRACED) != pid || !WIFSTOPPED(status))
        return 2;
    char line[300];
    snprintf(line, sizeof line, "child %d\n", (int)pid);
    say(line);
    say("ready\n");
    char cmd[16];
    if (!fgets(cmd, sizeof cmd, stdin))
        return 2;
    if (!stop_report(pid, &status))
        snprintf(line, sizeof line, "FAIL stopped: no stop report\n");
    else if (!WIFSTOPPED(status) || WSTOPSIG(status) != stopsig)
        snprintf(line, sizeof line, "FAIL stopped: status %#x\n", status);
    else
        snprintf(line, sizeof line, "ok stopped\n");
    say(line);
    kill(pid, SIGCONT);
    if (write(go[1], "g", 1) != 1)
        return 2;
    char buf[128];
    const char *why = check_self(policy, 3, SIGHUP, buf, sizeof buf);
    if (*why) {
        snprintf(line, sizeof line, "FAIL root %s\n", why);
        say(line);
    } else {
        say("ok root\n");
    }
    while (waitpid(pid, &status, 0) == pid && !WIFEXITED(status) && !WIFSIGNALED(status))
        ;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        snprintf(line, sizeof line, "FAIL child status %#x\n", status);
        say(line);
    }
    say("done\n");
    return 0;
}
