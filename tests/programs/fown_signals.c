/* fown_signals: descriptors that send I/O signals to their owner.
 * A pipe's read end with O_ASYNC, owned by the process (F_SETOWN), signal
 * SIGUSR1 (F_SETSIG: its siginfo names the descriptor); a socketpair end
 * with O_ASYNC owned by the main thread (F_SETOWN_EX F_OWNER_TID), default
 * SIGIO; a second socketpair end owned by its process group (it leads
 * one: setpgid(0, 0)), signal SIGUSR2. With argv[1] = PID, a second pipe's read end owned by that
 * (outside) process, signal SIGWINCH, never written to.
 * Prints "owners ..." (each owner as "self" when it is this process or
 * thread, else its number; its signal; O_ASYNC) and "ready"; on "go"
 * (stdin) prints the owners again, writes to both peers and prints
 * "signals usr1=N fd=ok|bad io=M" once both signals came (2 s at most). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t usr1, usr2, io, usr1_fd = -1;
static int p[2], s[2], g[2], q[2] = {-1, -1};

static void on_usr1(int sig, siginfo_t *si, void *ctx) {
    (void)sig;
    (void)ctx;
    usr1++;
    usr1_fd = si->si_fd;
}

static void on_io(int sig) {
    if (sig == SIGUSR2)
        usr2++;
    else
        io++;
}

static void owner(const char *name, int fd) {
    struct f_owner_ex o;
    if (fcntl(fd, F_GETOWN_EX, &o) != 0) {
        printf(" %s=error", name);
        return;
    }
    const char *type = o.type == F_OWNER_TID ? "tid" : o.type == F_OWNER_PGRP ? "pgrp" : "pid";
    int self = o.type == F_OWNER_TID ? gettid() : o.type == F_OWNER_PGRP ? getpgrp() : getpid();
    if (o.pid == 0)
        printf(" %s=none", name);
    else if (o.pid == self)
        printf(" %s=%s:self", name, type);
    else
        printf(" %s=%s:%d", name, type, o.pid);
    printf("/sig%d/%s", fcntl(fd, F_GETSIG), fcntl(fd, F_GETFL) & O_ASYNC ? "async" : "sync");
}

static void owners(void) {
    printf("owners");
    owner("pipe", p[0]);
    owner("sock", s[0]);
    owner("group", g[0]);
    if (q[0] >= 0)
        owner("outside", q[0]);
    printf("\n");
    fflush(stdout);
}

static void async(int fd) {
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_ASYNC | O_NONBLOCK) != 0) {
        perror("F_SETFL");
        exit(1);
    }
}

int main(int argc, char **argv) {
    struct sigaction sa = {0};
    sa.sa_sigaction = on_usr1;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigaction(SIGUSR1, &sa, NULL);
    signal(SIGIO, on_io);
    signal(SIGUSR2, on_io);
    setpgid(0, 0);
    if (pipe(p) != 0 || socketpair(AF_UNIX, SOCK_STREAM, 0, s) != 0 ||
        socketpair(AF_UNIX, SOCK_STREAM, 0, g) != 0) {
        perror("pipe");
        return 1;
    }
    struct f_owner_ex me = {F_OWNER_TID, gettid()};
    if (fcntl(p[0], F_SETOWN, getpid()) != 0 || fcntl(p[0], F_SETSIG, SIGUSR1) != 0 ||
        fcntl(s[0], F_SETOWN_EX, &me) != 0 || fcntl(g[0], F_SETOWN, -getpgrp()) != 0 ||
        fcntl(g[0], F_SETSIG, SIGUSR2) != 0) {
        perror("F_SETOWN");
        return 1;
    }
    async(p[0]);
    async(s[0]);
    async(g[0]);
    if (argc > 1) {
        /* SIGWINCH: ignored by default, so the owner survives the
         * signal the pipe sends when this process dies. */
        if (pipe(q) != 0 || fcntl(q[0], F_SETOWN, atoi(argv[1])) != 0 ||
            fcntl(q[0], F_SETSIG, SIGWINCH) != 0) {
            perror("outside");
            return 1;
        }
        async(q[0]);
    }
    owners();
    printf("ready\n");
    fflush(stdout);
    char cmd[64];
    while (fgets(cmd, sizeof cmd, stdin)) {
        if (strncmp(cmd, "go", 2) != 0)
            continue;
        owners();
        if (write(p[1], "x", 1) != 1 || write(s[1], "x", 1) != 1 || write(g[1], "x", 1) != 1)
            perror("write");
        for (int i = 0; i < 200 && !(usr1 && io && usr2); i++) {
            struct timespec ts = {0, 10 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        printf("signals usr1=%d fd=%s io=%d usr2=%d\n", (int)usr1, usr1_fd == p[0] ? "ok" : "bad",
               (int)io, (int)usr2);
        fflush(stdout);
        char b[8];
        while (read(p[0], b, sizeof b) > 0 || read(s[0], b, sizeof b) > 0 ||
               read(g[0], b, sizeof b) > 0)
            ;
        usr1 = usr2 = io = 0;
    }
    return 0;
}
