/* Half-closed TCP connections (issue 10, format 1.7).
 *
 * `tcp_half MODE FAMILY`: one process holds both ends of a connection over
 * loopback (FAMILY 4: 127.0.0.1, 6: ::1, m: IPv6 sockets on
 * ::ffff:127.0.0.1), `a` accepted on a listener (closed afterwards), `b`
 * connected to it, and puts them in a state by MODE:
 *   fin_wait2   a writes 100 bytes b does not read, b writes 200 bytes a
 *               does not read, a shuts down writing: a fin-wait2, b
 *               close-wait.
 *   fin_wait1   b's receive buffer is made small and a writes 64 KiB
 *               (most of it never sent), then shuts down writing: a
 *               fin-wait1 (its FIN not sent), b established.
 *   last_ack    b writes 50 bytes and shuts down writing (a close-wait, b
 *               fin-wait2), then a writes 64 KiB and shuts down: a
 *               last-ack (its FIN not sent).
 *   closing     both write 64 KiB (more than the other's small buffer)
 *               and shut down (both
 *               fin-wait1), then a reads b's bytes to the end of file: a
 *               closing (its FIN not sent), b fin-wait2.
 *   shut_rd     an established pair, a shut down for reading (refused).
 * It prints "states A B" (the kernel's TCP_INFO states), "ready" and
 * reads a line from stdin. On it, it checks the states are the same, and
 * so are each end's sequence numbers (a moment in TCP repair mode, root
 * only: `TCP_QUEUE_SEQ` of both queues, which count the FINs) and queue
 * lengths (`SIOCINQ`, `SIOCOUTQ`, which counts a FIN not acknowledged), then
 * carries both ends through to their close, checking every byte: each end
 * reads what the other wrote to the end of file, and an end whose peer
 * closed can still write when it had not shut down itself (close-wait:
 * b writes 300 bytes more, which a in fin-wait2 reads); writing to an end
 * shut down fails with EPIPE. Prints "ok MODE ..." or "FAIL ...", then
 * "done".
 *
 * `tcp_half MODE FAMILY tree`: the same, but once the states are set the
 * process forks: the parent keeps a, the child b (a tree, both ends
 * restored by different processes). After "go" the parent checks a's
 * state, then lets the child check b's (pipes), then each carries its end
 * through on its own ("ok MODE a", "ok MODE b"); the parent reaps the
 * child and prints "done". */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* Bytes an end writes to fill its peer's small buffer (some of them are
 * never sent before the dump). */
#define SOME 65536L

static int failed;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

#define FAIL(...) (failed = 1, say("FAIL " __VA_ARGS__))

static unsigned char byte_at(int side, long i)
{
    return (unsigned char)(i * 11 + i / 253 + side * 29);
}

static int state(int fd)
{
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len))
        return -1;
    return ti.tcpi_state;
}

static void nonblock(int fd, int on)
{
    int fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK);
}

/* What the kernel has of one end: its state, `write_seq`, `rcv_nxt`
 * (0, 0 without CAP_NET_ADMIN), bytes to read, bytes not acknowledged. */
struct seen {
    int state;
    unsigned snd, rcv;
    int inq, outq;
};

static struct seen look(int fd)
{
    struct seen s = { .state = state(fd) };
    int on = 1, off = -1 /* TCP_REPAIR_OFF_NO_WP */, q;
    socklen_t len = sizeof s.snd;
    if (!setsockopt(fd, IPPROTO_TCP, TCP_REPAIR, &on, sizeof on)) {
        q = TCP_SEND_QUEUE;
        setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, &q, sizeof q);
        getsockopt(fd, IPPROTO_TCP, TCP_QUEUE_SEQ, &s.snd, &len);
        q = TCP_RECV_QUEUE;
        setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, &q, sizeof q);
        getsockopt(fd, IPPROTO_TCP, TCP_QUEUE_SEQ, &s.rcv, &len);
        q = TCP_NO_QUEUE;
        setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, &q, sizeof q);
        setsockopt(fd, IPPROTO_TCP, TCP_REPAIR, &off, sizeof off);
    }
    ioctl(fd, SIOCINQ, &s.inq);
    ioctl(fd, SIOCOUTQ, &s.outq);
    return s;
}

static void same(const char *who, struct seen was, struct seen now)
{
    if (memcmp(&was, &now, sizeof was))
        FAIL("%s after the restore: state %d write_seq %u rcv_nxt %u inq %d outq %d; "
             "before: %d %u %u %d %d",
             who, now.state, now.snd, now.rcv, now.inq, now.outq, was.state, was.snd, was.rcv,
             was.inq, was.outq);
}

/* Write `side`'s stream from byte `*at` on until the socket takes no more
 * (non-blocking), or `limit` bytes in all. */
static void fill(int fd, int side, long *at, long limit)
{
    unsigned char buf[4096];
    nonblock(fd, 1);
    while (*at < limit) {
        long n = limit - *at < (long)sizeof buf ? limit - *at : (long)sizeof buf;
        for (long i = 0; i < n; i++)
            buf[i] = byte_at(side, *at + i);
        ssize_t w = write(fd, buf, n);
        if (w < 0) {
            if (errno == EAGAIN)
                break;
            FAIL("write: %s", strerror(errno));
            break;
        }
        *at += w;
    }
    nonblock(fd, 0);
}

/* Read `side`'s stream from `*at` on until the end of file, checking each
 * byte; returns 0 on a clean end of file. */
static int drain(int fd, int side, long *at, const char *who)
{
    unsigned char buf[4096];
    struct pollfd p = { .fd = fd, .events = POLLIN };
    for (;;) {
        if (poll(&p, 1, 10000) != 1) {
            FAIL("%s: no end of file after %ld bytes", who, *at);
            return -1;
        }
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0) {
            FAIL("%s: read after %ld bytes: %s", who, *at, strerror(errno));
            return -1;
        }
        if (n == 0)
            return 0;
        for (ssize_t i = 0; i < n; i++)
            if (buf[i] != byte_at(side, *at + i)) {
                FAIL("%s: byte %ld differs", who, *at + i);
                return -1;
            }
        *at += n;
    }
}

/* Exactly `n` bytes of `side`'s stream from `*at` (no end of file). */
static void read_exactly(int fd, int side, long *at, long n, const char *who)
{
    unsigned char c;
    for (long i = 0; i < n; i++) {
        if (read(fd, &c, 1) != 1 || c != byte_at(side, *at)) {
            FAIL("%s: byte %ld missing or wrong", who, *at);
            return;
        }
        (*at)++;
    }
}

static void write_fails(int fd, const char *who)
{
    if (write(fd, "x", 1) != -1 || errno != EPIPE)
        FAIL("%s: a write after shutdown did not fail with EPIPE", who);
}

/* Tree mode: carry end `fd` (`side` 0 is a, 1 is b) through on its own. */
static void one_side(const char *mode, int fd, int side, long a_sent, long b_sent, long a_got)
{
    long got = side ? 0 : a_got, sent = side ? b_sent : a_sent;
    const char *who = side ? "b" : "a";
    if (!strcmp(mode, "fin_wait2") && side == 0) {
        read_exactly(fd, 1, &got, 200, who);
        write_fails(fd, who);
        drain(fd, 1, &got, who);
        if (got != 500)
            FAIL("a read %ld bytes, not 500", got);
    } else if (!strcmp(mode, "fin_wait2")) {
        drain(fd, 0, &got, who);
        if (got != 100)
            FAIL("b read %ld bytes, not 100", got);
        fill(fd, 1, &sent, 500);
        shutdown(fd, SHUT_WR);
        write_fails(fd, who);
    } else if (side == 0) {
        /* fin_wait1: b sends nothing more; last_ack: b's 50 bytes;
         * closing: all of b's bytes, read before the dump. */
        drain(fd, 1, &got, who);
        if (got != b_sent)
            FAIL("a read %ld bytes of %ld", got, b_sent);
        write_fails(fd, who);
    } else {
        drain(fd, 0, &got, who);
        if (got != a_sent)
            FAIL("b read %ld bytes of %ld", got, a_sent);
        if (!strcmp(mode, "fin_wait1"))
            shutdown(fd, SHUT_WR);
        else
            write_fails(fd, who);
    }
    if (!failed)
        say("ok %s %s sent %ld got %ld", mode, who, sent, got);
}

int main(int argc, char **argv)
{
    if (argc != 3 && argc != 4)
        return 2;
    int tree = argc == 4;
    const char *mode = argv[1];
    char fam = argv[2][0];
    signal(SIGPIPE, SIG_IGN);
    int af = fam == '4' ? AF_INET : AF_INET6;
    struct sockaddr_storage ss;
    socklen_t len;
    memset(&ss, 0, sizeof ss);
    if (af == AF_INET) {
        struct sockaddr_in *s = (void *)&ss;
        s->sin_family = AF_INET;
        s->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        len = sizeof *s;
    } else {
        struct sockaddr_in6 *s = (void *)&ss;
        s->sin6_family = AF_INET6;
        inet_pton(AF_INET6, fam == 'm' ? "::ffff:127.0.0.1" : "::1", &s->sin6_addr);
        len = sizeof *s;
    }
    int l = socket(af, SOCK_STREAM, 0);
    if (l < 0 || bind(l, (void *)&ss, len) || listen(l, 1) || getsockname(l, (void *)&ss, &len)) {
        say("FAIL listen: %s", strerror(errno));
        return 1;
    }
    int b = socket(af, SOCK_STREAM, 0);
    if (!strcmp(mode, "fin_wait1") || !strcmp(mode, "last_ack") || !strcmp(mode, "closing")) {
        int small = 8192;
        setsockopt(b, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
        setsockopt(b, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    }
    if (connect(b, (void *)&ss, len)) {
        say("FAIL connect: %s", strerror(errno));
        return 1;
    }
    int a = accept(l, NULL, NULL);
    close(l);
    if (!strcmp(mode, "closing")) {
        int small = 8192;
        setsockopt(a, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
        setsockopt(a, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    }
    long a_sent = 0, b_sent = 0, a_got = 0, b_got = 0;
    if (!strcmp(mode, "fin_wait2")) {
        fill(a, 0, &a_sent, 100);
        fill(b, 1, &b_sent, 200);
        usleep(50000);
        shutdown(a, SHUT_WR);
    } else if (!strcmp(mode, "fin_wait1")) {
        fill(a, 0, &a_sent, SOME);
        shutdown(a, SHUT_WR);
    } else if (!strcmp(mode, "last_ack")) {
        fill(b, 1, &b_sent, 50);
        shutdown(b, SHUT_WR);
        usleep(50000);
        fill(a, 0, &a_sent, SOME);
        shutdown(a, SHUT_WR);
    } else if (!strcmp(mode, "closing")) {
        fill(a, 0, &a_sent, SOME);
        fill(b, 1, &b_sent, SOME);
        shutdown(a, SHUT_WR);
        shutdown(b, SHUT_WR);
        usleep(50000);
        drain(a, 1, &a_got, "a before");
    } else if (!strcmp(mode, "shut_rd")) {
        shutdown(a, SHUT_RD);
    } else {
        return 2;
    }
    usleep(100000);
    struct seen wa = look(a), wb = look(b);
    int sa = wa.state, sb = wb.state;
    say("states %d %d", sa, sb);
    if (tree) {
        int go[2], back[2];
        if (pipe(go) || pipe(back))
            return 1;
        pid_t child = fork();
        if (child == 0) {
            char c;
            close(a);
            if (read(go[0], &c, 1) != 1)
                return 1;
            same("b", wb, look(b));
            if (write(back[1], "b", 1) != 1)
                return 1;
            one_side(mode, b, 1, a_sent, b_sent, a_got);
            return failed;
        }
        close(b);
        say("ready");
        char line[64], c;
        if (!fgets(line, sizeof line, stdin))
            return 1;
        same("a", wa, look(a));
        if (write(go[1], "a", 1) != 1 || read(back[0], &c, 1) != 1)
            FAIL("the child did not answer");
        one_side(mode, a, 0, a_sent, b_sent, a_got);
        int st = 0;
        if (waitpid(child, &st, 0) != child || !WIFEXITED(st) || WEXITSTATUS(st))
            FAIL("child: status %x", st);
        say("done");
        return failed;
    }
    say("ready");
    char line[64];
    if (!fgets(line, sizeof line, stdin))
        return 1;
    struct seen na = look(a), nb = look(b);
    same("a", wa, na);
    same("b", wb, nb);
    if (!strcmp(mode, "fin_wait2")) {
        /* a: fin-wait2, b: close-wait. */
        read_exactly(a, 1, &a_got, 200, "a");
        write_fails(a, "a");
        b_got = 0;
        drain(b, 0, &b_got, "b");
        if (b_got != 100)
            FAIL("b read %ld bytes, not 100", b_got);
        fill(b, 1, &b_sent, 500); /* close-wait: still writes */
        read_exactly(a, 1, &a_got, 300, "a after");
        shutdown(b, SHUT_WR);
        drain(a, 1, &a_got, "a");
        write_fails(b, "b");
    } else if (!strcmp(mode, "fin_wait1")) {
        drain(b, 0, &b_got, "b");
        if (b_got != a_sent)
            FAIL("b read %ld bytes of %ld", b_got, a_sent);
        write_fails(a, "a");
        shutdown(b, SHUT_WR);
        drain(a, 1, &a_got, "a");
    } else if (!strcmp(mode, "last_ack")) {
        drain(a, 1, &a_got, "a");
        if (a_got != 50)
            FAIL("a read %ld bytes, not 50", a_got);
        write_fails(a, "a");
        drain(b, 0, &b_got, "b");
        if (b_got != a_sent)
            FAIL("b read %ld bytes of %ld", b_got, a_sent);
    } else if (!strcmp(mode, "closing")) {
        drain(a, 1, &a_got, "a again");
        if (a_got != b_sent)
            FAIL("a read %ld bytes of %ld", a_got, b_sent);
        drain(b, 0, &b_got, "b");
        if (b_got != a_sent)
            FAIL("b read %ld bytes of %ld", b_got, a_sent);
        write_fails(a, "a");
        write_fails(b, "b");
    }
    if (!failed)
        say("ok %s a sent %ld got %ld, b sent %ld got %ld", mode, a_sent, a_got, b_sent, b_got);
    say("done");
    return failed;
}
