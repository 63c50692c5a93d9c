/* Descriptors in flight in Unix socket queues (SCM_RIGHTS, format 1.7).
   Usage: scm_rights MODE DIR. Sets up the queues of MODE, prints "ready", then on a "check"
   line on stdin receives every queued message and checks what came with it the way a program
   would, printing "ok WHAT" or "FAIL WHAT" per check, then "done".
   Modes:
     dgram   a datagram socketpair: message "one" carries a pipe's read end that the process
             closed after sending (5 bytes wait in the pipe); message "two" carries the pipe's
             write end, still held (O_NONBLOCK set on it after the send: the received one is
             the same open file description), and a regular file opened in DIR, at offset 3,
             closed after the send
     gone    as dgram, then the sending end is closed (the queue's peer is gone)
     stream  a stream socketpair: "abc", then "de" with a pipe's read end (closed), then "fgh"
     seqpacket  a seqpacket socketpair: one message with both ends of a new pipe (both
             closed), then a message without descriptors
     named   a datagram socket bound to DIR/n.sock; an unbound socket sends it one end of a
             new socketpair (closed; the other end held) and an epoll instance (closed)
             watching the held end of that pair
     nested  a datagram socketpair carrying one end of a stream socketpair (closed; the other
             end held) whose own queue carries a pipe's read end (closed) after "in"
     epollsrc  an epoll instance (held) watching a pipe's read end that holds 5 bytes, sent in
             a datagram socketpair and closed: the item's file is only in flight
     twice   (refused at dump) a regular file in flight in a socketpair's queue of the process
             and in one of its child (which waits), closed by both
     shared  a datagram socketpair its child (which waits) also holds, carrying a pipe's read
             end the process closed (it holds the write end; the child holds no end)
     plain   a datagram socketpair with "a", an empty datagram and "c", no descriptors
     tree    (refused at dump) a datagram socketpair carrying a regular file the process
             closed, which its child (which waits) still holds
     tcp     (refused at dump) a datagram socketpair carrying one end of a TCP connection over
             loopback, closed after the send */
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static void die(const char *what) {
    printf("FAIL setup %s: %s\n", what, strerror(errno));
    exit(1);
}

static int ok_count, fail_count;
static void check(int cond, const char *what) {
    printf("%s %s\n", cond ? "ok" : "FAIL", what);
    if (cond) ok_count++; else fail_count++;
}

/* Send `len` bytes of `data` on `s` (to `to` when not NULL) with the `n` descriptors `fds`. */
static void send_fds(int s, const char *data, size_t len, const int *fds, int n, struct sockaddr_un *to) {
    char ctl[CMSG_SPACE(4 * sizeof(int))];
    memset(ctl, 0, sizeof ctl);
    struct iovec iov = {.iov_base = (void *)data, .iov_len = len};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    if (to) {
        m.msg_name = to;
        m.msg_namelen = sizeof *to;
    }
    if (n) {
        m.msg_control = ctl;
        m.msg_controllen = CMSG_SPACE(n * sizeof(int));
        struct cmsghdr *c = CMSG_FIRSTHDR(&m);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(n * sizeof(int));
        memcpy(CMSG_DATA(c), fds, n * sizeof(int));
    }
    if (sendmsg(s, &m, 0) != (ssize_t)len) die("sendmsg");
}

/* Receive one message on `s` into `buf` (NUL-terminated); its descriptors into `fds` (at most
   4); returns the number of descriptors, -1 on error. */
static int recv_fds(int s, char *buf, size_t cap, int *fds) {
    char ctl[CMSG_SPACE(4 * sizeof(int))];
    struct iovec iov = {.iov_base = buf, .iov_len = cap - 1};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof ctl};
    ssize_t r = recvmsg(s, &m, MSG_DONTWAIT);
    if (r < 0) return -1;
    buf[r] = 0;
    int n = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        int k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        memcpy(fds + n, CMSG_DATA(c), k * sizeof(int));
        n += k;
    }
    return n;
}

static int sk[2], held, held_pair;
static char dir[4096];

/* A pipe with 5 bytes in it. */
static void pipe5(int p[2]) {
    if (pipe(p)) die("pipe");
    if (write(p[1], "hello", 5) != 5) die("write");
}

static void setup_dgram(int gone) {
    int p[2];
    if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sk)) die("socketpair");
    pipe5(p);
    send_fds(sk[0], "one", 3, &p[0], 1, NULL);
    close(p[0]);
    char path[4200];
    snprintf(path, sizeof path, "%s/data", dir);
    int f = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (f < 0 || write(f, "0123456789", 10) != 10 || lseek(f, 3, SEEK_SET) != 3) die("file");
    int two[2] = {p[1], f};
    send_fds(sk[0], "two", 3, two, 2, NULL);
    close(f);
    held = p[1];
    if (fcntl(held, F_SETFL, O_NONBLOCK)) die("O_NONBLOCK");
    if (gone) close(sk[0]);
}

static void check_dgram(void) {
    char buf[64];
    int fds[4];
    int n = recv_fds(sk[1], buf, sizeof buf, fds);
    check(n == 1 && !strcmp(buf, "one"), "message one with one descriptor");
    if (n != 1) return;
    int r = fds[0];
    char got[16] = {0};
    check(read(r, got, sizeof got) == 5 && !memcmp(got, "hello", 5), "pipe bytes read from the end in flight");
    n = recv_fds(sk[1], buf, sizeof buf, fds);
    check(n == 2 && !strcmp(buf, "two"), "message two with two descriptors");
    if (n != 2) return;
    int w = fds[0], f = fds[1];
    check(fcntl(w, F_GETFL) & O_NONBLOCK, "the write end in flight has the held end's O_NONBLOCK");
    if (fcntl(held, F_SETFL, 0)) die("F_SETFL");
    check(!(fcntl(w, F_GETFL) & O_NONBLOCK), "the write end in flight is the held end's open file");
    check(write(w, "xy", 2) == 2 && read(r, got, sizeof got) == 2 && !memcmp(got, "xy", 2),
          "the pipe works end to end");
    check(lseek(f, 0, SEEK_CUR) == 3, "the file in flight is at its offset");
    check(read(f, got, 4) == 4 && !memcmp(got, "3456", 4), "the file in flight reads its bytes");
    check(recv_fds(sk[1], buf, sizeof buf, fds) < 0 && errno == EAGAIN, "nothing more queued");
}

static void setup_stream(void) {
    int p[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sk)) die("socketpair");
    pipe5(p);
    send_fds(sk[0], "abc", 3, NULL, 0, NULL);
    send_fds(sk[0], "de", 2, &p[0], 1, NULL);
    send_fds(sk[0], "fgh", 3, NULL, 0, NULL);
    close(p[0]);
    held = p[1];
}

static void check_stream(void) {
    char buf[64], got[16];
    int fds[4];
    int n = recv_fds(sk[1], buf, sizeof buf, fds);
    check(n == 1 && !strcmp(buf, "abcde"), "the bytes up to the descriptor, with it");
    if (n == 1)
        check(read(fds[0], got, sizeof got) == 5 && !memcmp(got, "hello", 5), "pipe bytes read from the end in flight");
    n = recv_fds(sk[1], buf, sizeof buf, fds);
    check(n == 0 && !strcmp(buf, "fgh"), "the bytes after it, without descriptors");
}

static void setup_seqpacket(void) {
    int p[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sk)) die("socketpair");
    pipe5(p);
    if (fcntl(p[0], F_SETFL, O_NONBLOCK)) die("O_NONBLOCK");
    send_fds(sk[0], "both", 4, p, 2, NULL);
    send_fds(sk[0], "plain", 5, NULL, 0, NULL);
    close(p[0]);
    close(p[1]);
}

static void check_seqpacket(void) {
    char buf[64], got[16];
    int fds[4];
    int n = recv_fds(sk[1], buf, sizeof buf, fds);
    check(n == 2 && !strcmp(buf, "both"), "one message with both ends");
    if (n == 2) {
        check(fcntl(fds[0], F_GETFL) & O_NONBLOCK, "the read end kept O_NONBLOCK");
        check(read(fds[0], got, sizeof got) == 5 && !memcmp(got, "hello", 5), "the bytes in the pipe");
        check(read(fds[0], got, sizeof got) < 0 && errno == EAGAIN, "then nothing (non-blocking)");
        check(write(fds[1], "z", 1) == 1 && read(fds[0], got, 1) == 1 && got[0] == 'z', "the ends are one pipe");
    }
    n = recv_fds(sk[1], buf, sizeof buf, fds);
    check(n == 0 && !strcmp(buf, "plain"), "then the message without descriptors");
}

static struct sockaddr_un named_addr(void) {
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s/n.sock", dir);
    return a;
}

static void setup_named(void) {
    struct sockaddr_un a = named_addr();
    sk[1] = socket(AF_UNIX, SOCK_DGRAM, 0);
    if (sk[1] < 0 || bind(sk[1], (struct sockaddr *)&a, sizeof a)) die("bind");
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, pair)) die("socketpair");
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 42};
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, pair[1], &ev)) die("epoll");
    int c = socket(AF_UNIX, SOCK_DGRAM, 0);
    if (c < 0) die("socket");
    int two[2] = {pair[0], ep};
    send_fds(c, "sock", 4, two, 2, &a);
    close(c);
    close(pair[0]);
    close(ep);
    held_pair = pair[1];
}

static void check_named(void) {
    char buf[64], got[16];
    int fds[4];
    int n = recv_fds(sk[1], buf, sizeof buf, fds);
    check(n == 2 && !strcmp(buf, "sock"), "a socket and an epoll in one message");
    if (n != 2) return;
    int s = fds[0], ep = fds[1];
    struct epoll_event ev;
    check(epoll_wait(ep, &ev, 1, 0) == 0, "the epoll in flight: nothing to read yet");
    check(write(s, "ping", 4) == 4, "the socket in flight writes");
    check(epoll_wait(ep, &ev, 1, 1000) == 1 && ev.data.u64 == 42, "the epoll in flight sees the held end readable");
    check(read(held_pair, got, sizeof got) == 4 && !memcmp(got, "ping", 4), "the held end reads it");
}

static void setup_nested(void) {
    int p[2], b[2];
    if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sk) || socketpair(AF_UNIX, SOCK_STREAM, 0, b)) die("socketpair");
    pipe5(p);
    send_fds(b[1], "in", 2, &p[0], 1, NULL);
    close(p[0]);
    send_fds(sk[0], "out", 3, &b[0], 1, NULL);
    close(b[0]);
    held = p[1];
    held_pair = b[1];
}

static void check_nested(void) {
    char buf[64], got[16];
    int fds[4];
    int n = recv_fds(sk[1], buf, sizeof buf, fds);
    check(n == 1 && !strcmp(buf, "out"), "the outer message with a socket");
    if (n != 1) return;
    int in = fds[0];
    n = recv_fds(in, buf, sizeof buf, fds);
    check(n == 1 && !strcmp(buf, "in"), "the socket in flight has its own message with a pipe end");
    if (n != 1) return;
    check(read(fds[0], got, sizeof got) == 5 && !memcmp(got, "hello", 5), "pipe bytes through both");
    check(write(held, "q", 1) == 1 && read(fds[0], got, 1) == 1 && got[0] == 'q', "the held write end feeds it");
    check(write(held_pair, "r", 1) == 1 && read(in, got, 1) == 1 && got[0] == 'r', "the socket in flight is the held end's peer");
}

static int ep_held;

static void setup_epollsrc(void) {
    int p[2];
    if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sk)) die("socketpair");
    pipe5(p);
    ep_held = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 7};
    if (ep_held < 0 || epoll_ctl(ep_held, EPOLL_CTL_ADD, p[0], &ev)) die("epoll");
    send_fds(sk[0], "r", 1, &p[0], 1, NULL);
    close(p[0]);
    held = p[1];
}

static void check_epollsrc(void) {
    char buf[64], got[16];
    int fds[4];
    struct epoll_event ev;
    check(epoll_wait(ep_held, &ev, 1, 0) == 1 && ev.data.u64 == 7, "the epoll sees the pipe end in flight readable");
    int n = recv_fds(sk[1], buf, sizeof buf, fds);
    check(n == 1 && !strcmp(buf, "r"), "the pipe end comes with its message");
    if (n != 1) return;
    check(read(fds[0], got, sizeof got) == 5, "its bytes");
    check(epoll_wait(ep_held, &ev, 1, 0) == 0, "then the epoll sees it empty");
    check(write(held, "w", 1) == 1 && epoll_wait(ep_held, &ev, 1, 0) == 1, "and readable again after a write");
}

static void setup_twice(void) {
    char path[4200], c;
    snprintf(path, sizeof path, "%s/twice", dir);
    int f = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600), sync[2];
    if (f < 0 || socketpair(AF_UNIX, SOCK_DGRAM, 0, sk) || pipe(sync)) die("setup");
    pid_t child = fork();
    if (child < 0) die("fork");
    if (child == 0) {
        int s[2];
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        close(sk[0]);
        close(sk[1]);
        if (socketpair(AF_UNIX, SOCK_DGRAM, 0, s)) _exit(1);
        send_fds(s[0], "f", 1, &f, 1, NULL);
        close(f);
        close(sync[0]);
        if (write(sync[1], "x", 1) != 1) _exit(1);
        close(sync[1]);
        for (;;) pause();
    }
    close(sync[1]);
    if (read(sync[0], &c, 1) != 1) die("sync");
    close(sync[0]);
    send_fds(sk[0], "f", 1, &f, 1, NULL);
    close(f);
}

static void setup_shared(void) {
    int p[2], sync[2];
    char c;
    if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sk) || pipe(sync)) die("socketpair");
    pipe5(p);
    pid_t child = fork();
    if (child < 0) die("fork");
    if (child == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        close(p[0]);
        close(p[1]);
        close(sync[0]);
        if (write(sync[1], "x", 1) != 1) _exit(1);
        close(sync[1]);
        for (;;) pause();
    }
    close(sync[1]);
    if (read(sync[0], &c, 1) != 1) die("sync");
    close(sync[0]);
    send_fds(sk[0], "one", 3, &p[0], 1, NULL);
    close(p[0]);
    held = p[1];
}

static void check_shared(void) {
    char buf[64], got[16];
    int fds[4];
    int n = recv_fds(sk[1], buf, sizeof buf, fds);
    check(n == 1 && !strcmp(buf, "one"), "the shared socket's message with its descriptor");
    if (n != 1) return;
    check(read(fds[0], got, sizeof got) == 5 && !memcmp(got, "hello", 5), "pipe bytes");
    check(write(held, "s", 1) == 1 && read(fds[0], got, 1) == 1 && got[0] == 's', "the held write end feeds it");
}

static void setup_plain(void) {
    if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sk)) die("socketpair");
    send_fds(sk[0], "a", 1, NULL, 0, NULL);
    send_fds(sk[0], "", 0, NULL, 0, NULL);
    send_fds(sk[0], "c", 1, NULL, 0, NULL);
}

static void check_plain(void) {
    char buf[64];
    int fds[4];
    check(recv_fds(sk[1], buf, sizeof buf, fds) == 0 && !strcmp(buf, "a"), "datagram a");
    check(recv_fds(sk[1], buf, sizeof buf, fds) == 0 && !strcmp(buf, ""), "the empty datagram");
    check(recv_fds(sk[1], buf, sizeof buf, fds) == 0 && !strcmp(buf, "c"), "datagram c");
}

static void setup_tree(void) {
    char path[4200];
    snprintf(path, sizeof path, "%s/shared", dir);
    int f = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (f < 0 || socketpair(AF_UNIX, SOCK_DGRAM, 0, sk)) die("setup");
    pid_t child = fork();
    if (child < 0) die("fork");
    if (child == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        for (;;) pause();
    }
    send_fds(sk[0], "f", 1, &f, 1, NULL);
    close(f);
}

static void setup_tcp(void) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int l = socket(AF_INET, SOCK_STREAM, 0);
    if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 1) ||
        getsockname(l, (struct sockaddr *)&a, &len))
        die("listen");
    int c = socket(AF_INET, SOCK_STREAM, 0);
    if (c < 0 || connect(c, (struct sockaddr *)&a, sizeof a)) die("connect");
    held = accept(l, NULL, NULL);
    if (held < 0) die("accept");
    if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sk)) die("socketpair");
    send_fds(sk[0], "tcp", 3, &c, 1, NULL);
    close(c);
}

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    const char *mode = argv[1];
    snprintf(dir, sizeof dir, "%s", argv[2]);
    setvbuf(stdout, NULL, _IOLBF, 0);
    void (*checker)(void) = NULL;
    if (!strcmp(mode, "dgram") || !strcmp(mode, "gone")) {
        setup_dgram(!strcmp(mode, "gone"));
        checker = check_dgram;
    } else if (!strcmp(mode, "stream")) {
        setup_stream();
        checker = check_stream;
    } else if (!strcmp(mode, "seqpacket")) {
        setup_seqpacket();
        checker = check_seqpacket;
    } else if (!strcmp(mode, "named")) {
        setup_named();
        checker = check_named;
    } else if (!strcmp(mode, "nested")) {
        setup_nested();
        checker = check_nested;
    } else if (!strcmp(mode, "epollsrc")) {
        setup_epollsrc();
        checker = check_epollsrc;
    } else if (!strcmp(mode, "twice")) {
        setup_twice();
    } else if (!strcmp(mode, "shared")) {
        setup_shared();
        checker = check_shared;
    } else if (!strcmp(mode, "plain")) {
        setup_plain();
        checker = check_plain;
    } else if (!strcmp(mode, "tree")) {
        setup_tree();
    } else if (!strcmp(mode, "tcp")) {
        setup_tcp();
    } else {
        printf("FAIL mode %s\n", mode);
        return 2;
    }
    printf("ready\n");
    char line[64];
    while (fgets(line, sizeof line, stdin)) {
        if (!strcmp(line, "check\n") && checker) {
            checker();
            printf("done\n");
            return fail_count ? 1 : 0;
        }
    }
    return 0;
}
