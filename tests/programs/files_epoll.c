/* files_epoll: an epoll loop over a timerfd (every 50 ms), an eventfd, a pipe (edge-triggered)
   that always holds 5 unread bytes, and a signalfd for SIGUSR1; on every tick a socketpair
   ping-pong with 3 messages always in flight each way, and a check of a memfd's content and
   offset. Every byte and message carries a sequence number that is checked.
   Prints "tick T ev E pipe P ping S ok", "signal" for SIGUSR1, or "BAD <what>". */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#define BAD(...) do { printf("BAD " __VA_ARGS__); printf("\n"); exit(1); } while (0)
#define MEMFD_SIZE 100000

static unsigned char pattern(long i) { return (unsigned char)(i * 7 + 3); }

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    int efd = eventfd(0, EFD_NONBLOCK);
    int p[2], s[2];
    if (pipe2(p, O_NONBLOCK) || socketpair(AF_UNIX, SOCK_STREAM, 0, s)) BAD("pipe");
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGUSR1);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    int sfd = signalfd(-1, &mask, SFD_NONBLOCK);
    int mfd = memfd_create("kckpt-test", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    unsigned char *buf = malloc(MEMFD_SIZE);
    for (long i = 0; i < MEMFD_SIZE; i++) buf[i] = pattern(i);
    if (write(mfd, buf, MEMFD_SIZE) != MEMFD_SIZE) BAD("memfd write");
    lseek(mfd, 1234, SEEK_SET);
    fcntl(mfd, F_ADD_SEALS, F_SEAL_GROW);
    if (ep < 0 || tfd < 0 || efd < 0 || sfd < 0 || mfd < 0) BAD("create");
    struct itimerspec its = {{0, 50000000}, {0, 50000000}};
    timerfd_settime(tfd, 0, &its, NULL);
    struct epoll_event ev = {EPOLLIN, {.u64 = 1}};
    epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev);
    ev.data.u64 = 2;
    epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev);
    ev.events = EPOLLIN | EPOLLET;
    ev.data.u64 = 3;
    epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev);
    ev.events = EPOLLIN;
    ev.data.u64 = 4;
    epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev);

    long pipe_w = 0, pipe_r = 0, ping_w = 0, ping_r = 0, pong_w = 0, pong_r = 0, tick = 0, evs = 0;
    for (; pipe_w < 5; pipe_w++) { unsigned char b = (unsigned char)pipe_w; write(p[1], &b, 1); }
    char msg[32];
    for (; ping_w < 3; ping_w++) { snprintf(msg, sizeof msg, "ping%010d", (int)ping_w); send(s[0], msg, 14, 0); }
    for (; pong_w < 3; pong_w++) { snprintf(msg, sizeof msg, "pong%010d", (int)pong_w); send(s[1], msg, 14, 0); }
    for (;;) {
        struct epoll_event out[8];
        int n = epoll_wait(ep, out, 8, 2000);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) BAD("epoll_wait %d", n);
        for (int i = 0; i < n; i++) {
            uint64_t v;
            switch (out[i].data.u64) {
            case 1:
                if (read(tfd, &v, 8) != 8) break;
                tick += (long)v;
                v = 1;
                write(efd, &v, 8);
                { unsigned char b = (unsigned char)pipe_w++; write(p[1], &b, 1); }
                snprintf(msg, sizeof msg, "ping%010d", (int)ping_w++);
                send(s[0], msg, 14, 0);
                char in[15] = {0};
                if (recv(s[1], in, 14, MSG_WAITALL) != 14) BAD("recv ping");
                snprintf(msg, sizeof msg, "ping%010d", (int)ping_r++);
                if (memcmp(in, msg, 14)) BAD("ping %s, expected %s", in, msg);
                snprintf(msg, sizeof msg, "pong%010d", (int)pong_w++);
                send(s[1], msg, 14, 0);
                if (recv(s[0], in, 14, MSG_WAITALL) != 14) BAD("recv pong");
                snprintf(msg, sizeof msg, "pong%010d", (int)pong_r++);
                if (memcmp(in, msg, 14)) BAD("pong %s, expected %s", in, msg);
                if (lseek(mfd, 0, SEEK_CUR) != 1234) BAD("memfd offset");
                if (pread(mfd, buf, MEMFD_SIZE, 0) != MEMFD_SIZE) BAD("memfd size");
                for (long k = 0; k < MEMFD_SIZE; k++) if (buf[k] != pattern(k)) BAD("memfd byte %ld", k);
                if (!(fcntl(mfd, F_GET_SEALS) & F_SEAL_GROW)) BAD("memfd seals");
                printf("tick %ld ev %ld pipe %ld ping %ld ok\n", tick, evs, pipe_r, ping_r);
                break;
            case 2:
                if (read(efd, &v, 8) == 8) evs += (long)v;
                break;
            case 3: {
                int avail = 0;
                ioctl(p[0], FIONREAD, &avail);
                while (avail-- > 5) {
                    unsigned char b;
                    if (read(p[0], &b, 1) != 1) BAD("pipe read");
                    if (b != (unsigned char)pipe_r) BAD("pipe byte %d, expected %d", b, (int)(unsigned char)pipe_r);
                    pipe_r++;
                }
                break;
            }
            case 4: {
                struct signalfd_siginfo si;
                if (read(sfd, &si, sizeof si) == sizeof si) printf("signal %d\n", (int)si.ssi_signo);
                break;
            }
            }
        }
    }
}
