/* A small process tree for the process-tree dump tests: the root forks a
 * child that exits at once and is never reaped (a zombie, exit code 7),
 * child "a" (which forks grandchild "g"), and child "b" (which makes a
 * process group of its own). Each live process prints "NAME PID" (one
 * write per line: the lines do not mix), then every process waits for
 * signals; the root prints "ready" last. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static void idle(void)
{
    for (;;)
        pause();
}

static void say(const char *name)
{
    char line[64];
    int n = snprintf(line, sizeof line, "%s %d\n", name, (int)getpid());
    if (write(1, line, n) != n)
        exit(1);
}

int main(void)
{
    pid_t z = fork();
    if (z < 0)
        return 1;
    if (z == 0)
        _exit(7);
    pid_t a = fork();
    if (a < 0)
        return 1;
    if (a == 0) {
        say("a");
        pid_t g = fork();
        if (g < 0)
            exit(1);
        if (g == 0) {
            say("g");
            idle();
        }
        idle();
    }
    pid_t b = fork();
    if (b < 0)
        return 1;
    if (b == 0) {
        setpgid(0, 0);
        say("b");
        idle();
    }
    setpgid(b, b);
    char line[64];
    int n = snprintf(line, sizeof line, "root %d zombie %d\n", (int)getpid(), (int)z);
    if (write(1, line, n) != n)
        return 1;
    /* Let the zombie be a zombie before the test dumps. */
    siginfo_t si;
    waitid(P_PID, z, &si, WEXITED | WNOWAIT);
    if (write(1, "ready\n", 6) != 6)
        return 1;
    idle();
}
