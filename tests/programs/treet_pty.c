/* A terminal multiplexer in miniature (issue 9 tests): this process opens
 * a pseudo-terminal pair, sets its mode (no echo, VINTR = 7) and window
 * size (33x101), and forks a "shell" that makes the slave its controlling
 * terminal (setsid, TIOCSCTTY) and forks a "job" in a group of its own that
 * it makes the terminal's foreground group, as a job-control shell does.
 *
 * The multiplexer copies what the pair prints to its stdout ("\r"
 * dropped) and each line of its stdin to the master. The shell prints
 * "shell N rows R cols C echo E intr I fg F sid S" every 200 ms (F: its
 * group is the foreground one; S: it leads its session); the job answers
 * each line it reads with "pong LINE" and the same report for itself. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

static void report(const char *who, long n) {
    struct winsize ws = {0};
    struct termios t = {0};
    ioctl(1, TIOCGWINSZ, &ws);
    tcgetattr(0, &t);
    printf("%s %ld rows %d cols %d echo %d intr %d fg %d sid %d\n", who, n, ws.ws_row,
           ws.ws_col, !!(t.c_lflag & ECHO), t.c_cc[VINTR], tcgetpgrp(0) == getpgrp(),
           getsid(0) == getpid());
    fflush(stdout);
}

static int job(void) {
    setpgid(0, 0);
    while (tcgetpgrp(0) != getpgrp())
        usleep(1000);
    printf("job %d ready\n", getpid());
    fflush(stdout);
    char line[256];
    long n = 0;
    while (fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\n")] = 0;
        printf("pong %s\n", line);
        report("job", ++n);
    }
    return 0;
}

static int shell(int s) {
    setsid();
    if (ioctl(s, TIOCSCTTY, 0) < 0) {
        perror("TIOCSCTTY");
        return 1;
    }
    dup2(s, 0);
    dup2(s, 1);
    dup2(s, 2);
    if (s > 2)
        close(s);
    pid_t j = fork();
    if (j == 0)
        return job();
    setpgid(j, j);
    tcsetpgrp(0, j);
    printf("shell %d ready\n", getpid());
    for (long n = 0;; n++) {
        report("shell", n);
        usleep(200000);
    }
}

int main(void) {
    int m = posix_openpt(O_RDWR | O_NOCTTY);
    if (m < 0 || grantpt(m) < 0 || unlockpt(m) < 0) {
        perror("posix_openpt");
        return 1;
    }
    int s = open(ptsname(m), O_RDWR | O_NOCTTY);
    struct termios t;
    tcgetattr(s, &t);
    t.c_lflag &= ~ECHO;
    t.c_cc[VINTR] = 7;
    tcsetattr(s, TCSANOW, &t);
    struct winsize ws = {33, 101, 0, 0};
    ioctl(m, TIOCSWINSZ, &ws);
    pid_t sh = fork();
    if (sh == 0) {
        close(m);
        return shell(s);
    }
    close(s);
    printf("mux %d ready\n", getpid());
    fflush(stdout);
    struct pollfd fds[2] = {{m, POLLIN, 0}, {0, POLLIN, 0}};
    char buf[4096];
    for (;;) {
        if (poll(fds, 2, -1) < 0)
            continue;
        if (fds[0].revents & (POLLIN | POLLHUP)) {
            ssize_t n = read(m, buf, sizeof buf);
            if (n <= 0)
                return 0;
            for (ssize_t i = 0; i < n; i++)
                if (buf[i] != '\r')
                    putchar(buf[i]);
            fflush(stdout);
        }
        if (fds[1].revents & (POLLIN | POLLHUP)) {
            ssize_t n = read(0, buf, sizeof buf);
            if (n <= 0)
                fds[1].fd = -1;
            else
                write(m, buf, n);
        }
    }
}
