/* holder MODE [ARG]: holds one resource kckpt refuses to dump (issue 3),
   prints a ready line, then "tick N link L" every 100 ms, where L is
   readlink(/proc/self/fd/FD) of the descriptor holding it ("-" when the
   resource is not a descriptor).

   MODE       resource                                   ready line
   udp        UDP socket bound to 127.0.0.1 with IP_MULTICAST_TTL  ready fd N
   udp_cork   UDP socket on 127.0.0.1 connected to itself, 5 bytes corked (UDP_CORK)  ready fd N
              (an option kckpt does not restore)
   inotify    inotify instance with 2 unread events      ready fd N
   io_uring   io_uring instance (raw io_uring_setup)     ready fd N
   tracer P   PTRACE_SEIZE of pid P                      ready
   seccomp_notif  seccomp filter with a user notification listener
              (SECCOMP_FILTER_FLAG_NEW_LISTENER, getppid ->
              SECCOMP_RET_USER_NOTIF; after PR_SET_NO_NEW_PRIVS)  ready fd N
   mntns      a mount namespace of its own (root)        ready
   sem_undo   SysV semaphore set, semop with SEM_UNDO    ready id N
   unix_unconn  unix stream socket, never connected, with SO_PRIORITY 3
                (an option kckpt does not restore)       ready fd N
                (and /dev/null open next to it: the dumper once took the
                unconnected socket's "peer", inode 0, for that descriptor
                and failed with EINVAL instead of naming the socket)

   peercred   unix stream socketpair made by a child (sharing the
              descriptor table) that exited: its peer credentials
              (SO_PEERCRED) name a process outside the dump  ready fd N

   A setup failure prints "FAILED <what>: <error>" and exits 2 (io_uring:
   with the value of /proc/sys/kernel/io_uring_disabled). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/io_uring.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <sched.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/sem.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void fail(const char *what) {
    printf("FAILED %s: %s\n", what, strerror(errno));
    exit(2);
}

/* The child of mode peercred: makes the pair in the shared table. */
static int make_pair(void *arg) {
    return socketpair(AF_UNIX, SOCK_STREAM, 0, (int *)arg) ? 1 : 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc < 2) {
        printf("usage: holder MODE [ARG]\n");
        return 2;
    }
    const char *mode = argv[1];
    int fd = -1;
    if (!strcmp(mode, "udp")) {
        fd = socket(AF_INET, SOCK_DGRAM, 0);
        if (fd < 0) fail("socket");
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0) fail("bind");
        int ttl = 7; /* IP_TOS is restored since format 1.6; this is not */
        if (setsockopt(fd, IPPROTO_IP, IP_MULTICAST_TTL, &ttl, sizeof ttl) != 0)
            fail("IP_MULTICAST_TTL");
        printf("ready fd %d\n", fd);
    } else if (!strcmp(mode, "udp_cork")) {
        fd = socket(AF_INET, SOCK_DGRAM, 0);
        if (fd < 0) fail("socket");
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0) fail("bind");
        socklen_t len = sizeof a;
        if (getsockname(fd, (struct sockaddr *)&a, &len) != 0) fail("getsockname");
        if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) fail("connect");
        int on = 1; /* UDP_CORK, from <netinet/udp.h> */
        if (setsockopt(fd, IPPROTO_UDP, 1, &on, sizeof on) != 0) fail("UDP_CORK");
        if (send(fd, "corked", 5, 0) != 5) fail("send");
        printf("ready fd %d\n", fd);
    } else if (!strcmp(mode, "inotify")) {
        /* An event queued and not read (kckpt cannot save it without
         * consuming it): IN_OPEN of a private directory, then the
         * IN_IGNORED of its removal. */
        char dir[] = "/tmp/holder-inotify-XXXXXX";
        if (!mkdtemp(dir)) fail("mkdtemp");
        fd = inotify_init1(0);
        if (fd < 0) fail("inotify_init1");
        if (inotify_add_watch(fd, dir, IN_OPEN) < 0) fail("inotify_add_watch");
        close(open(dir, O_RDONLY));
        rmdir(dir);
        printf("ready fd %d\n", fd);
    } else if (!strcmp(mode, "io_uring")) {
        struct io_uring_params p;
        memset(&p, 0, sizeof p);
        fd = syscall(__NR_io_uring_setup, 4, &p);
        if (fd < 0) {
            int e = errno;
            char v[16] = "?";
            FILE *f = fopen("/proc/sys/kernel/io_uring_disabled", "r");
            if (f) {
                if (!fgets(v, sizeof v, f)) strcpy(v, "?");
                v[strcspn(v, "\n")] = 0;
                fclose(f);
            }
            printf("FAILED io_uring_setup: %s (io_uring_disabled=%s)\n", strerror(e), v);
            return 2;
        }
        printf("ready fd %d\n", fd);
    } else if (!strcmp(mode, "tracer") && argc > 2) {
        if (ptrace(PTRACE_SEIZE, atoi(argv[2]), 0, 0) != 0) fail("PTRACE_SEIZE");
        printf("ready\n");
    } else if (!strcmp(mode, "seccomp_notif")) {
        struct sock_filter f[] = {
            BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
            BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_getppid, 0, 1),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        };
        struct sock_fprog prog = {.len = 4, .filter = f};
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) fail("PR_SET_NO_NEW_PRIVS");
        int fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
                         SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
        if (fd < 0) fail("seccomp(SECCOMP_FILTER_FLAG_NEW_LISTENER)");
        printf("ready fd %d\n", fd);
    } else if (!strcmp(mode, "mntns")) {
        if (unshare(CLONE_NEWNS)) fail("unshare(CLONE_NEWNS)");
        printf("ready\n");
    } else if (!strcmp(mode, "sem_undo")) {
        int id = semget(IPC_PRIVATE, 1, 0600);
        if (id < 0) fail("semget");
        struct sembuf op = {.sem_num = 0, .sem_op = 1, .sem_flg = SEM_UNDO};
        if (semop(id, &op, 1) != 0) fail("semop");
        printf("ready id %d\n", id);
    } else if (!strcmp(mode, "unix_unconn")) {
        fd = socket(AF_UNIX, SOCK_STREAM, 0);
        if (fd < 0) fail("socket");
        int prio = 3;
        if (setsockopt(fd, SOL_SOCKET, SO_PRIORITY, &prio, sizeof prio)) fail("SO_PRIORITY");
        if (open("/dev/null", O_RDONLY) < 0) fail("open /dev/null");
        printf("ready fd %d\n", fd);
    } else if (!strcmp(mode, "peercred")) {
        static char stack[1 << 16];
        int pair[2] = {-1, -1};
        pid_t c = clone(make_pair, stack + sizeof stack, CLONE_VM | CLONE_FILES | SIGCHLD, pair);
        if (c < 0) fail("clone");
        int st;
        if (waitpid(c, &st, 0) != c || !WIFEXITED(st) || WEXITSTATUS(st) != 0 || pair[0] < 0)
            fail("socketpair in the child");
        fd = pair[0];
        printf("ready fd %d\n", fd);
    } else {
        printf("unknown mode %s\n", mode);
        return 2;
    }
    char path[64], link[256];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    for (unsigned long n = 1;; n++) {
        const char *l = "-";
        if (fd >= 0) {
            ssize_t k = readlink(path, link, sizeof link - 1);
            link[k < 0 ? 0 : k] = 0;
            l = k < 0 ? "<closed>" : link;
        }
        printf("tick %lu link %s\n", n, l);
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}
