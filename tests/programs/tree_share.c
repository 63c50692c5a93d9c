/* Open file descriptions shared across a process tree, for the tree dump
 * tests. argv[1] picks the case; every process prints "NAME PID [FD...]"
 * once set up, the root last after "ready" lines of its children:
 *   pipe     root keeps the read end, its child the write end and writes
 *            "in-flight" (nobody reads); on "go" on stdin the root reads
 *            the pipe and prints "got DATA";
 *   file     the root opens argv[2], writes "12345", forks a child: both
 *            share the description (and its offset);
 *   siblings the root makes a pipe, forks "a" (write end, writes "xyz")
 *            and "b" (read end) and closes both ends itself;
 *   sibfile  the root opens argv[2], forks two children and closes it;
 *   pipeline the root forks "a" and "b" into a new process group led by
 *            "a" (the root stays outside it), "a" writes "xyz" into a pipe
 *            whose read end only "b" holds;
 *   session  the root makes a session of its own and forks a child;
 *   badsession as session, and the child forks a grandchild, then makes
 *            a session of its own (the grandchild stays in the root's);
 *   fifo     the root and its child each open the named pipe argv[2]
 *            (read-write) on their own, the root writes "in-fifo" into
 *            it; on "go" on stdin the root makes its description
 *            non-blocking, reads the pipe and prints "got DATA", then
 *            "empty" when a second read finds nothing;
 *   vfork    the root vforks a child that says its pid and "ready" and
 *            waits (the root is suspended meanwhile). */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static void idle(void)
{
    for (;;)
        pause();
}

static void say(const char *name, int a, int b)
{
    char line[96];
    int n = snprintf(line, sizeof line, "%s %d %d %d\n", name, (int)getpid(), a, b);
    if (write(1, line, n) != n)
        exit(1);
}

/* Fork a child that prints its line and idles; the parent waits for the
 * line to be out (a pipe of its own, closed at once). */
static pid_t child(const char *name, int a, int b, int close_fd, const char *data, int wfd)
{
    int sync[2];
    if (pipe(sync) < 0)
        exit(1);
    pid_t p = fork();
    if (p < 0)
        exit(1);
    if (p == 0) {
        close(sync[0]);
        if (close_fd >= 0)
            close(close_fd);
        if (data && write(wfd, data, strlen(data)) != (ssize_t)strlen(data))
            exit(1);
        say(name, a, b);
        close(sync[1]);
        idle();
    }
    close(sync[1]);
    char c;
    if (read(sync[0], &c, 1) != 0)
        exit(1);
    close(sync[0]);
    return p;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    const char *mode = argv[1];
    if (!strcmp(mode, "pipe")) {
        int p[2];
        if (pipe(p) < 0)
            return 1;
        child("child", p[1], -1, p[0], "in-flight", p[1]);
        close(p[1]);
        say("root", p[0], -1);
        if (write(1, "ready\n", 6) != 6)
            return 1;
        char line[16];
        if (!fgets(line, sizeof line, stdin))
            return 1;
        char buf[64];
        ssize_t n = read(p[0], buf, sizeof buf - 1);
        if (n < 0)
            return 1;
        buf[n] = 0;
        printf("got %s\n", buf);
        fflush(stdout);
        idle();
    }
    if (!strcmp(mode, "file") || !strcmp(mode, "sibfile")) {
        if (argc < 3)
            return 2;
        int fd = open(argv[2], O_RDWR | O_CREAT | O_TRUNC, 0600);
        if (fd < 0 || write(fd, "12345", 5) != 5)
            return 1;
        child("child", fd, -1, -1, NULL, -1);
        if (!strcmp(mode, "sibfile")) {
            child("child", fd, -1, -1, NULL, -1);
            close(fd);
        }
        say("root", fd, -1);
        if (write(1, "ready\n", 6) != 6)
            return 1;
        idle();
    }
    if (!strcmp(mode, "siblings")) {
        int p[2];
        if (pipe(p) < 0)
            return 1;
        child("a", p[1], -1, p[0], "xyz", p[1]);
        child("b", p[0], -1, p[1], NULL, -1);
        close(p[0]);
        close(p[1]);
        say("root", -1, -1);
        if (write(1, "ready\n", 6) != 6)
            return 1;
        idle();
    }
    if (!strcmp(mode, "pipeline")) {
        int p[2], said[2];
        if (pipe(p) < 0 || pipe(said) < 0)
            return 1;
        pid_t a = fork();
        if (a < 0)
            return 1;
        if (a == 0) {
            setpgid(0, 0);
            close(p[0]);
            close(said[0]);
            if (write(p[1], "xyz", 3) != 3)
                exit(1);
            say("a", p[1], -1);
            close(said[1]);
            idle();
        }
        /* a's line is out before the root goes on (its end closed). */
        close(said[1]);
        char c;
        while (read(said[0], &c, 1) > 0)
            ;
        close(said[0]);
        setpgid(a, a);
        pid_t b = child("b", p[0], (int)a, p[1], NULL, -1);
        /* b joins a's group before the root says "ready". */
        if (setpgid(b, a) < 0)
            return 1;
        close(p[0]);
        close(p[1]);
        say("root", (int)a, -1);
        if (write(1, "ready\n", 6) != 6)
            return 1;
        idle();
    }
    if (!strcmp(mode, "session") || !strcmp(mode, "badsession")) {
        if (setsid() < 0)
            return 1;
        if (!strcmp(mode, "badsession")) {
            int sync[2];
            if (pipe(sync) < 0)
                return 1;
            pid_t c = fork();
            if (c < 0)
                return 1;
            if (c == 0) {
                close(sync[0]);
                pid_t g = fork();
                if (g < 0)
                    exit(1);
                if (g == 0) {
                    close(sync[1]);
                    idle();
                }
                if (setsid() < 0)
                    exit(1);
                say("child", (int)g, -1);
                close(sync[1]);
                idle();
            }
            close(sync[1]);
            char ch;
            if (read(sync[0], &ch, 1) != 0)
                return 1;
            close(sync[0]);
        } else {
            child("child", -1, -1, -1, NULL, -1);
        }
        say("root", -1, -1);
        if (write(1, "ready\n", 6) != 6)
            return 1;
        idle();
    }
    if (!strcmp(mode, "fifo")) {
        if (argc < 3)
            return 2;
        int fd = open(argv[2], O_RDWR);
        int sync[2];
        if (fd < 0 || pipe(sync) < 0)
            return 1;
        pid_t c = fork();
        if (c < 0)
            return 1;
        if (c == 0) {
            close(fd);
            close(sync[0]);
            int own = open(argv[2], O_RDWR);
            if (own < 0)
                exit(1);
            say("child", own, -1);
            close(sync[1]);
            idle();
        }
        close(sync[1]);
        char ch;
        if (read(sync[0], &ch, 1) != 0)
            return 1;
        close(sync[0]);
        if (write(fd, "in-fifo", 7) != 7)
            return 1;
        say("root", fd, -1);
        if (write(1, "ready\n", 6) != 6)
            return 1;
        char line[16], buf[64] = {0};
        if (!fgets(line, sizeof line, stdin))
            return 1;
        fcntl(fd, F_SETFL, O_NONBLOCK);
        ssize_t n = read(fd, buf, sizeof buf - 1);
        printf("got %s\n", n > 0 ? buf : "nothing");
        if (read(fd, buf, sizeof buf) < 0)
            printf("empty\n");
        fflush(stdout);
        idle();
    }
    if (!strcmp(mode, "vfork")) {
        say("root", -1, -1);
        pid_t c = vfork();
        if (c < 0)
            return 1;
        if (c == 0) {
            char line[64];
            int n = snprintf(line, sizeof line, "child %d -1 -1\nready\n", (int)getpid());
            if (write(1, line, n) != n)
                _exit(1);
            for (;;)
                pause();
        }
        idle();
    }
    return 2;
}
