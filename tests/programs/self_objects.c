/* self_objects MODE: descriptors of the process's own kernel objects.
   MODE "restore": an epoll set holding items whose descriptor numbers were closed (fd 500: a dup of
   pipe A's read end, closed; fd 501: a dup of pipe B's read end, closed, then fd 501 made a dup of
   pipe C's read end and added again), a pidfd of itself (PIDFD_NONBLOCK), its own net and uts
   namespaces (/proc/self/ns), and a private mapping of shared anonymous memory opened through
   /proc/self/map_files (root only; "shm 0" otherwise). Every 100 ms it prints "tick N" and on
   SIGUSR1 checks everything and prints "check ok pid P shm S" or "BAD <what>".
   Refusal modes, each printing "ready" then ticking: "otherpid" holds a pidfd of its parent,
   "lostepoll" an epoll item whose file is at no descriptor any more (a pipe end its child holds,
   its own descriptor closed), "otherns" a descriptor of the
   user namespace it left (unshare(CLONE_NEWUSER)). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define BAD(...) do { printf("BAD " __VA_ARGS__); printf("\n"); exit(1); } while (0)
#define PG 4096

static volatile sig_atomic_t want_check;
static void on_usr1(int sig) { (void)sig; want_check = 1; }

static int ep, pa[2], pb[2], pc[2], pidfd, netfd, utsfd, have_shm;
static char *shared_area, *private_area;

static int pidfd_open_(pid_t pid, unsigned flags) { return (int)syscall(SYS_pidfd_open, pid, flags); }

/* The fdinfo field `key` of descriptor fd, as a number (-1 if absent). */
static long fdinfo_num(int fd, const char *key) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fd);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    long v = -1;
    size_t n = strlen(key);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, n) && line[n] == ':') { v = strtol(line + n + 1, NULL, 10); break; }
    fclose(f);
    return v;
}

/* How many items of epoll `fd` were added with number tfd. */
static int items_with_tfd(int fd, int tfd) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fd);
    FILE *f = fopen(path, "r");
    int count = 0, t;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "tfd: %d", &t) == 1 && t == tfd) count++;
    if (f) fclose(f);
    return count;
}

static void expect_event(int wfd, int rfd, uint64_t data) {
    char b = 'x';
    struct epoll_event ev;
    if (write(wfd, &b, 1) != 1) BAD("pipe write");
    int n = epoll_wait(ep, &ev, 1, 1000);
    if (n != 1 || ev.data.u64 != data) BAD("epoll: %d events, data %llu, expected %llu", n, (unsigned long long)ev.data.u64, (unsigned long long)data);
    if (read(rfd, &b, 1) != 1) BAD("pipe read");
    if (epoll_wait(ep, &ev, 1, 0) != 0) BAD("epoll: an event left after data %llu", (unsigned long long)data);
}

static void same_ns(int fd, const char *name) {
    char path[64], a[64] = "", b[64] = "";
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    if (readlink(path, a, sizeof a - 1) < 0) BAD("readlink %s", path);
    snprintf(path, sizeof path, "/proc/self/ns/%s", name);
    if (readlink(path, b, sizeof b - 1) < 0) BAD("readlink %s", path);
    if (strcmp(a, b)) BAD("fd %d is %s, own %s namespace is %s", fd, a, name, b);
}

static void check(void) {
    /* epoll: 500 closed, its item there; 501 is pipe C's read end, two items there. */
    if (fcntl(500, F_GETFD) != -1 || errno != EBADF) BAD("fd 500 open");
    if (items_with_tfd(ep, 500) != 1 || items_with_tfd(ep, 501) != 2) BAD("epoll tfd numbers");
    expect_event(pa[1], pa[0], 1);
    expect_event(pb[1], pb[0], 2);
    expect_event(pc[1], 501, 3);
    /* pidfd of itself. */
    if (fdinfo_num(pidfd, "Pid") != getpid()) BAD("pidfd Pid %ld, pid %d", fdinfo_num(pidfd, "Pid"), getpid());
    if (!(fcntl(pidfd, F_GETFL) & O_NONBLOCK)) BAD("pidfd lost O_NONBLOCK");
    if (!(fcntl(pidfd, F_GETFD) & FD_CLOEXEC)) BAD("pidfd lost FD_CLOEXEC");
    if (syscall(SYS_pidfd_send_signal, pidfd, 0, NULL, 0)) BAD("pidfd_send_signal: %s", strerror(errno));
    /* Own namespaces. */
    same_ns(netfd, "net");
    same_ns(utsfd, "uts");
    if (setns(utsfd, CLONE_NEWUTS) && errno != EPERM) BAD("setns uts: %s", strerror(errno));
    /* Private mapping of shared anonymous memory: offsets 1..3 of the object. */
    if (have_shm) {
        if (private_area[0] != 11) BAD("private page 0 (object page 1) is %d", private_area[0]);
        if (private_area[PG] != 22) BAD("private page 1 (written) is %d", private_area[PG]);
        if (shared_area[2 * PG] != 3) BAD("shared page 2 is %d", shared_area[2 * PG]);
        shared_area[3 * PG]++; /* the object's page 3: the private page 2 follows it */
        if (private_area[2 * PG] != shared_area[3 * PG]) BAD("private page 2 does not follow the object");
        private_area[0]++; /* a copy: the object stays */
        if (shared_area[PG] != 11) BAD("a private write reached the object");
        private_area[0]--;
    }
    printf("check ok pid %d shm %d\n", getpid(), have_shm);
}

static void setup_restore(void) {
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0 || pipe(pa) || pipe(pb) || pipe(pc)) BAD("create");
    struct epoll_event ev = {EPOLLIN, {.u64 = 1}};
    if (dup2(pa[0], 500) != 500 || epoll_ctl(ep, EPOLL_CTL_ADD, 500, &ev)) BAD("add 500");
    close(500);
    ev.data.u64 = 2;
    if (dup2(pb[0], 501) != 501 || epoll_ctl(ep, EPOLL_CTL_ADD, 501, &ev)) BAD("add 501");
    ev.data.u64 = 3;
    if (dup2(pc[0], 501) != 501 || epoll_ctl(ep, EPOLL_CTL_ADD, 501, &ev)) BAD("add 501 again");
    close(pc[0]);
    pc[0] = 501;
    pidfd = pidfd_open_(getpid(), O_NONBLOCK);
    netfd = open("/proc/self/ns/net", O_RDONLY);
    utsfd = open("/proc/self/ns/uts", O_RDONLY | O_CLOEXEC);
    if (pidfd < 0 || netfd < 0 || utsfd < 0) BAD("pidfd or ns: %s", strerror(errno));
    shared_area = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    for (int i = 0; i < 4; i++) shared_area[i * PG] = (char)(i == 1 ? 11 : i + 1);
    char path[128];
    snprintf(path, sizeof path, "/proc/self/map_files/%lx-%lx", (long)shared_area, (long)shared_area + 4 * PG);
    int fd = open(path, O_RDWR);
    if (fd >= 0) {
        private_area = mmap(NULL, 3 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, PG);
        if (private_area == MAP_FAILED) BAD("private mmap");
        private_area[PG] = 22; /* a copy of the object's page 2 */
        close(fd);
        have_shm = 1;
    }
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    const char *mode = argc > 1 ? argv[1] : "restore";
    signal(SIGUSR1, on_usr1);
    if (!strcmp(mode, "restore")) {
        setup_restore();
        check();
    } else if (!strcmp(mode, "otherpid")) {
        if (pidfd_open_(getppid(), 0) < 0) BAD("pidfd_open");
    } else if (!strcmp(mode, "lostepoll")) {
        int p[2];
        struct epoll_event ev = {EPOLLIN, {.u64 = 7}};
        ep = epoll_create1(0);
        if (pipe(p) || epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev)) BAD("epoll");
        pid_t child = fork();
        if (child < 0) BAD("fork");
        if (child == 0) {
            /* Only the pipe's read end: the epoll item's file lives on here. */
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            for (int fd = 3; fd < 1024; fd++)
                if (fd != p[0]) close(fd);
            for (;;) pause();
        }
        close(p[0]);
    } else if (!strcmp(mode, "otherns")) {
        if (open("/proc/self/ns/user", O_RDONLY) < 0 || unshare(CLONE_NEWUSER)) BAD("unshare: %s", strerror(errno));
    } else {
        BAD("mode %s", mode);
    }
    printf("ready\n");
    for (long n = 1;; n++) {
        if (want_check) { want_check = 0; check(); }
        printf("tick %ld\n", n);
        usleep(100000);
    }
}
