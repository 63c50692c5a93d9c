/* Process-tree restore check (issue 9). The root leads its own session
 * and forks: a child that exits at once with code 7 and one killed at
 * once by SIGUSR2, neither reaped (zombies), child "a" (which forks
 * grandchild "g") and child "b" (a process group of its own). Each live
 * process notes its pid, parent, process group, session and capabilities,
 * prints "NAME PID", and waits. The root then prints "ready" and reads a
 * line from stdin; on it, it sends SIGUSR1 to "a" and "b" ("a" passes it
 * on to "g"), and each process compares its state with the noted one:
 * "ok NAME" or "FAIL NAME what". Parents reap their children and check
 * how they ended; the root checks the zombies' statuses (exit 7,
 * SIGUSR2), prints "done" and exits with status 3. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

struct ids {
    pid_t pid, ppid, pgid, sid;
    char caps[256]; /* the Cap* lines of /proc/self/status */
};

static void read_caps(char *out, size_t size)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    size_t used = 0;
    out[0] = 0;
    if (!f)
        return;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "Cap", 3) == 0 && used + strlen(line) < size) {
            strcpy(out + used, line);
            used += strlen(line);
        }
    fclose(f);
}

static struct ids noted(void)
{
    struct ids i = {getpid(), getppid(), getpgid(0), getsid(0), ""};
    read_caps(i.caps, sizeof i.caps);
    return i;
}

static void say(const char *fmt, const char *name, long v)
{
    char line[160];
    int n = snprintf(line, sizeof line, fmt, name, v);
    if (write(1, line, n) != n)
        exit(1);
}

static void put(const char *a, const char *b)
{
    char line[160];
    int n = snprintf(line, sizeof line, "%s%s\n", a, b);
    if (write(1, line, n) != n)
        exit(1);
}

/* Compare the ids now with `then`; the root's parent is whoever restored
 * it, so its parent is not compared. Returns the number of differences. */
static int check(const char *name, struct ids then, int root)
{
    struct ids now = noted();
    int bad = 0;
    if (now.pid != then.pid)
        say("FAIL %s pid %ld\n", name, now.pid), bad++;
    if (!root && now.ppid != then.ppid)
        say("FAIL %s ppid %ld\n", name, now.ppid), bad++;
    if (now.pgid != then.pgid)
        say("FAIL %s pgid %ld\n", name, now.pgid), bad++;
    if (now.sid != then.sid)
        say("FAIL %s sid %ld\n", name, now.sid), bad++;
    if (strcmp(now.caps, then.caps) != 0) {
        for (char *c = now.caps; (c = strchr(c, '\n')); c++)
            *c = ' ';
        say("FAIL %s capabilities %ld: ", name, 0L);
        put(now.caps, "");
        bad++;
    }
    if (!bad)
        put("ok ", name);
    return bad;
}

/* Wait for SIGUSR1 (blocked since the start, so none is lost). */
static void wait_usr1(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    int sig;
    while (sigwait(&set, &sig) != 0 || sig != SIGUSR1)
        ;
}

/* Reap `pid` and expect exit status 0. */
static void reap(const char *name, pid_t pid)
{
    int st;
    if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        say("FAIL %s child %ld\n", name, (long)pid);
}

int main(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigprocmask(SIG_BLOCK, &set, NULL);
    if (setsid() < 0)
        return 1;
    pid_t z = fork();
    if (z < 0)
        return 1;
    if (z == 0)
        _exit(7);
    pid_t z2 = fork();
    if (z2 < 0)
        return 1;
    if (z2 == 0) {
        signal(SIGUSR2, SIG_DFL);
        sigprocmask(SIG_UNBLOCK, &set, NULL);
        raise(SIGUSR2);
        _exit(1);
    }
    pid_t a = fork();
    if (a < 0)
        return 1;
    if (a == 0) {
        pid_t g = fork();
        if (g < 0)
            exit(1);
        if (g == 0) {
            struct ids me = noted();
            say("%s %ld\n", "g", me.pid);
            wait_usr1();
            exit(check("g", me, 0) ? 1 : 0);
        }
        struct ids me = noted();
        say("%s %ld\n", "a", me.pid);
        wait_usr1();
        int bad = check("a", me, 0);
        kill(g, SIGUSR1);
        reap("a", g);
        exit(bad ? 1 : 0);
    }
    pid_t b = fork();
    if (b < 0)
        return 1;
    if (b == 0) {
        setpgid(0, 0);
        struct ids me = noted();
        say("%s %ld\n", "b", me.pid);
        wait_usr1();
        exit(check("b", me, 0) ? 1 : 0);
    }
    setpgid(b, b);
    struct ids me = noted();
    /* Let the zombie be one before the test dumps. */
    siginfo_t si;
    waitid(P_PID, z, &si, WEXITED | WNOWAIT);
    waitid(P_PID, z2, &si, WEXITED | WNOWAIT);
    say("%s %ld\n", "root", me.pid);
    say("%s %ld\n", "zombie", z);
    put("ready", "");
    char buf[64];
    if (read(0, buf, sizeof buf) <= 0)
        return 1;
    check("root", me, 1);
    kill(a, SIGUSR1);
    kill(b, SIGUSR1);
    reap("root", a);
    reap("root", b);
    int st;
    if (waitpid(z, &st, 0) != z || !WIFEXITED(st) || WEXITSTATUS(st) != 7)
        say("FAIL %s zombie status %ld\n", "root", (long)st);
    if (waitpid(z2, &st, 0) != z2 || !WIFSIGNALED(st) || WTERMSIG(st) != SIGUSR2)
        say("FAIL %s zombie killed by a signal: status %ld\n", "root", (long)st);
    put("done", "");
    return 3;
}
