/* fown_tree: a descriptor whose I/O signal owner is another process of
 * the tree, one the restore forks after it (a younger sibling). The root
 * forks "a" and "b", then tells "a" the pid of "b"; "a" makes a pipe with
 * O_ASYNC owned by "b" (F_SETOWN), signal SIGUSR1. Each child prints
 * "NAME PID", the root "ready". On a line from stdin the root sends
 * SIGUSR2 to "a", which writes into its pipe; "b" then gets SIGUSR1 and
 * prints "b usr1", and "a" prints "a owner self|b|N" (F_GETOWN, compared
 * with the pid of "b" it was told). On "quit" or the end of stdin the
 * root kills both and exits 0. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t got;

static void on_sig(int sig) {
    (void)sig;
    got = 1;
}

static void say(const char *text) {
    if (write(1, text, strlen(text)) < 0)
        exit(1);
}

static void say_pid(const char *name) {
    char line[64];
    snprintf(line, sizeof line, "%s %d\n", name, (int)getpid());
    say(line);
}

/* Wait for the signal of `on_sig` (blocked outside sigsuspend). */
static void wait_sig(sigset_t *old) {
    while (!got)
        sigsuspend(old);
    got = 0;
}

int main(void) {
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    sigaddset(&block, SIGUSR2);
    sigprocmask(SIG_BLOCK, &block, &old);
    signal(SIGUSR1, on_sig);
    signal(SIGUSR2, on_sig);
    int tell[2];
    if (pipe(tell) != 0)
        return 1;
    pid_t a = fork();
    if (a == 0) {
        close(tell[1]);
        int b;
        if (read(tell[0], &b, sizeof b) != sizeof b)
            return 1;
        close(tell[0]);
        int w[2];
        if (pipe(w) != 0 || fcntl(w[0], F_SETOWN, b) != 0 || fcntl(w[0], F_SETSIG, SIGUSR1) != 0 ||
            fcntl(w[0], F_SETFL, fcntl(w[0], F_GETFL) | O_ASYNC) != 0)
            return 1;
        say_pid("a");
        for (;;) {
            wait_sig(&old);
            if (write(w[1], "x", 1) != 1)
                return 1;
            char b2[8];
            read(w[0], b2, sizeof b2);
            int owner = fcntl(w[0], F_GETOWN);
            char line[64];
            if (owner == b)
                snprintf(line, sizeof line, "a owner b\n");
            else
                snprintf(line, sizeof line, "a owner %d\n", owner);
            say(line);
        }
    }
    pid_t b = fork();
    if (b == 0) {
        close(tell[0]);
        close(tell[1]);
        say_pid("b");
        for (;;) {
            wait_sig(&old);
            say("b usr1\n");
        }
    }
    close(tell[0]);
    if (write(tell[1], &b, sizeof b) != sizeof b)
        return 1;
    close(tell[1]);
    /* Let "a" set its pipe up before "ready". */
    usleep(200 * 1000);
    say_pid("root");
    say("ready\n");
    char cmd[64];
    while (fgets(cmd, sizeof cmd, stdin) && strncmp(cmd, "quit", 4) != 0)
        kill(a, SIGUSR2);
    kill(a, SIGKILL);
    kill(b, SIGKILL);
    return 0;
}
