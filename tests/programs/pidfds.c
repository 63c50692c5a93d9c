/* Pidfds of other processes (format 1.7). argv[1]:
 *   "tree": holds a pidfd of its live child (with a dup and an epoll item
 *   watching it) and two pidfds, opened separately, of a child that exited
 *   with status 7 and was reaped. Prints "ready"; on "go" checks each and
 *   prints "child ok" (the pidfd still signals the child and epoll sees it
 *   exit) and "dead ok" (one inode for both, readable, ESRCH, exit status
 *   7 when the kernel reports it), or "FAIL what".
 *   "outside": holds a pidfd of its parent (not dumped); prints "ready".
 *   "two": it and its live child each open a pidfd of a third child that
 *   exited with status 7 and was reaped (two open file descriptions in two
 *   processes). Prints "ready"; on "go" sends the child its pidfd's inode
 *   through a pipe; the child checks its own pidfd (same inode, readable,
 *   ESRCH) and exits 0, or prints "FAIL what" and exits 1; the holder
 *   prints "two ok" when the child exited 0. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

struct pidfd_info {
    uint64_t mask, cgroupid;
    uint32_t ids[11];
    int32_t exit_code;
    uint32_t coredump_mask, spare;
};
#define PIDFD_GET_INFO _IOWR(0xFF, 11, struct pidfd_info)
#define PIDFD_INFO_EXIT (1u << 3)

static int pidfd_open(pid_t pid) { return syscall(SYS_pidfd_open, pid, 0); }
static int pidfd_signal(int fd, int sig) { return syscall(SYS_pidfd_send_signal, fd, sig, NULL, 0); }

static int fail(const char *what) {
    printf("FAIL %s (errno %d)\n", what, errno);
    fflush(stdout);
    return 1;
}

/* Its own pidfd of `dead` is the one `ino` names, of an exited process. */
static int dead_pidfd_ok(int fd, ino_t ino) {
    struct stat s;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (fstat(fd, &s) || s.st_ino != ino)
        return fail("one inode for the exited process in two processes");
    if (poll(&p, 1, 0) != 1)
        return fail("dead pidfd readable");
    if (pidfd_signal(fd, 0) == 0 || errno != ESRCH)
        return fail("dead pidfd ESRCH");
    return 0;
}

static int two(void) {
    int up[2], down[2];
    if (pipe(up) || pipe(down))
        return fail("pipe");
    pid_t dead = fork();
    if (dead == 0)
        _exit(7);
    int mine = pidfd_open(dead);
    pid_t child = fork();
    if (child == 0) {
        close(mine);
        int own = pidfd_open(dead);
        ino_t ino;
        if (own < 0 || write(up[1], "r", 1) != 1)
            _exit(fail("child pidfd_open"));
        if (read(down[0], &ino, sizeof ino) != sizeof ino)
            _exit(fail("child read"));
        _exit(dead_pidfd_ok(own, ino));
    }
    char c;
    if (mine < 0 || read(up[0], &c, 1) != 1)
        return fail("pidfd_open");
    if (waitpid(dead, NULL, 0) != dead)
        return fail("waitpid dead");
    puts("ready");
    char line[64];
    if (!fgets(line, sizeof line, stdin))
        return fail("stdin");
    struct stat s;
    if (fstat(mine, &s) || write(down[1], &s.st_ino, sizeof s.st_ino) != sizeof s.st_ino)
        return fail("write");
    int status;
    if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status))
        return fail("child status");
    if (dead_pidfd_ok(mine, s.st_ino))
        return 1;
    puts("two ok");
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc > 1 && !strcmp(argv[1], "outside")) {
        int fd = pidfd_open(getppid());
        if (fd < 0)
            return fail("pidfd_open parent");
        puts("ready");
        for (;;)
            pause();
    }
    if (argc > 1 && !strcmp(argv[1], "two"))
        return two();
    pid_t child = fork();
    if (child == 0) {
        for (;;)
            pause();
    }
    pid_t dead = fork();
    if (dead == 0)
        _exit(7);
    int live = pidfd_open(child), copy = dup(live);
    int d1 = pidfd_open(dead), d2 = pidfd_open(dead);
    if (live < 0 || copy < 0 || d1 < 0 || d2 < 0)
        return fail("pidfd_open");
    if (waitpid(dead, NULL, 0) != dead)
        return fail("waitpid dead");
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 0x1234};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, live, &ev))
        return fail("epoll_ctl");
    puts("ready");
    char line[64];
    if (!fgets(line, sizeof line, stdin))
        return fail("stdin");

    if (epoll_wait(ep, &ev, 1, 0) != 0)
        return fail("epoll before the signal");
    if (pidfd_signal(copy, SIGTERM))
        return fail("pidfd_send_signal child");
    if (epoll_wait(ep, &ev, 1, 5000) != 1 || ev.data.u64 != 0x1234)
        return fail("epoll after the signal");
    int status;
    if (waitpid(child, &status, 0) != child || !WIFSIGNALED(status) || WTERMSIG(status) != SIGTERM)
        return fail("child status");
    puts("child ok");

    struct stat s1, s2;
    if (fstat(d1, &s1) || fstat(d2, &s2) || s1.st_ino != s2.st_ino)
        return fail("one inode for the exited process");
    struct pollfd p = {.fd = d1, .events = POLLIN};
    if (poll(&p, 1, 0) != 1)
        return fail("dead pidfd readable");
    if (pidfd_signal(d2, 0) == 0 || errno != ESRCH)
        return fail("dead pidfd ESRCH");
    struct pidfd_info info = {.mask = PIDFD_INFO_EXIT};
    if (ioctl(d1, PIDFD_GET_INFO, &info) == 0 && (info.mask & PIDFD_INFO_EXIT) &&
        info.exit_code != (7 << 8))
        return fail("exit status");
    puts("dead ok");
    return 0;
}
