/* Established TCP connections (issue 10, fd kind 44).
 *
 * `tcp_conn tree4|tree6 [reset]`: the parent listens on loopback
 * (127.0.0.1 or ::1, an ephemeral port, SO_REUSEADDR) and forks a child
 * that connects to it; the parent accepts and keeps the listener. Before
 * the dump, data is left in flight both ways: the child sends CHILD_FIRST
 * bytes the parent does not read, the parent writes (non-blocking, small
 * buffers) until the child's receive queue and its own send queue are
 * full, so some of it was never sent. Both print "NAME PID", the parent
 * "ports LISTEN CHILDPORT" and "ready", then reads a line from stdin.
 * On it the parent wakes the child (SIGUSR1) and both go on: each sends
 * the rest of its stream (CHILD_REST, PARENT_REST bytes), shuts down
 * writing and reads the other's stream to its end, checking every byte
 * ("ok NAME sent S received R" or "FAIL NAME ..."). With `reset`, each
 * expects its first read to fail with ECONNRESET instead ("reset NAME").
 * The parent reaps the child and prints "done".
 *
 * `tcp_conn self4|self6`: one process connects to its own listener on
 * loopback and accepts; "ping\n" and "pong\n" are left unread one way
 * and the other; prints "self PID", "port LISTEN" and "ready", reads a
 * line from stdin, then reads both, sends "more\n" and "back\n" through
 * them and reads those ("ok self", or "FAIL self ...").
 *
 * `tcp_conn client HOST PORT`: connects to a server outside, sends
 * "hello\n", prints "ready" and reads a line from stdin; on it, reads the
 * line the server sent meanwhile (before the dump, unread), checks it is
 * "queued\n", sends "after\n", reads the server's "bye\n" and prints
 * "ok client" (or "FAIL client ..."). `tcp_conn client HOST PORT MB` first
 * fills MB MiB of memory (a dump that takes a while). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <stdarg.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHILD_FIRST 5000
#define CHILD_REST 300000
#define PARENT_REST 400000

static const char *me = "parent";
static char *volatile kept;

static unsigned char byte_at(int side, long i)
{
    return (unsigned char)(i * 7 + i / 251 + side * 13);
}

static void say(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (write(1, line, n) != n)
        exit(1);
}

static void die(const char *what)
{
    say("FAIL %s %s: %s\n", me, what, strerror(errno));
    exit(2);
}

static volatile sig_atomic_t woken;
static void on_usr1(int sig)
{
    (void)sig;
    woken = 1;
}

/* Write bytes [from, to) of side `side`'s stream; non-blocking: returns
 * where it stopped. */
static long send_range(int fd, int side, long from, long to, int nonblock)
{
    unsigned char buf[8192];
    while (from < to) {
        long n = to - from < (long)sizeof buf ? to - from : (long)sizeof buf;
        for (long i = 0; i < n; i++)
            buf[i] = byte_at(side, from + i);
        ssize_t w = send(fd, buf, n, nonblock ? MSG_DONTWAIT : 0);
        if (w < 0) {
            if (nonblock && errno == EAGAIN)
                return from;
            die("send");
        }
        from += w;
    }
    return from;
}

/* Send [sent, total) of `side`'s stream and read the other side's to its
 * end at the same time; returns the bytes received. */
static long exchange(int fd, int side, long sent, long total)
{
    long got = 0;
    int other = !side;
    int shut = 0, eof = 0;
    fcntl(fd, F_SETFL, O_NONBLOCK);
    while (!eof || !shut) {
        if (sent == total && !shut) {
            shutdown(fd, SHUT_WR);
            shut = 1;
            continue;
        }
        struct pollfd p = {fd, (eof ? 0 : POLLIN) | (shut ? 0 : POLLOUT), 0};
        if (poll(&p, 1, 20000) <= 0) {
            say("FAIL %s stuck: sent %ld of %ld, received %ld\n", me, sent, total, got);
            exit(2);
        }
        if (p.revents & POLLOUT && !shut)
            sent = send_range(fd, side, sent, total, 1);
        if (!eof && p.revents & (POLLIN | POLLHUP | POLLERR)) {
            unsigned char buf[8192];
            ssize_t n = recv(fd, buf, sizeof buf, 0);
            if (n < 0 && errno == EAGAIN)
                continue;
            if (n < 0)
                die("recv");
            if (n == 0) {
                eof = 1;
                continue;
            }
            for (ssize_t i = 0; i < n; i++)
                if (buf[i] != byte_at(other, got + i)) {
                    say("FAIL %s byte %ld is %d, not %d\n", me, got + i, buf[i],
                        byte_at(other, got + i));
                    exit(2);
                }
            got += n;
        }
    }
    return got;
}

static void expect_reset(int fd)
{
    char c;
    ssize_t n = recv(fd, &c, 1, 0);
    if (n < 0 && errno == ECONNRESET) {
        n = send(fd, "x", 1, MSG_NOSIGNAL);
        if (n < 0 && (errno == EPIPE || errno == ECONNRESET))
            say("reset %s\n", me);
        else
            say("FAIL %s write after the reset: %zd %s\n", me, n, strerror(errno));
    } else {
        say("FAIL %s read %zd: %s, not ECONNRESET\n", me, n, n < 0 ? strerror(errno) : "data");
    }
}

/* The loopback address of the family (port 0) in `ss`; its length. */
static socklen_t loopback(int v6, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof *ss);
    if (v6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
        a->sin6_family = AF_INET6;
        a->sin6_addr = in6addr_loopback;
        return sizeof *a;
    }
    struct sockaddr_in *a = (struct sockaddr_in *)ss;
    a->sin_family = AF_INET;
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return sizeof *a;
}

/* Read exactly strlen(want) bytes from fd and compare them. */
static void expect(int fd, const char *want)
{
    char buf[16];
    size_t n = strlen(want), got = 0;
    while (got < n) {
        ssize_t r = recv(fd, buf + got, n - got, 0);
        if (r <= 0)
            die("recv");
        got += (size_t)r;
    }
    if (memcmp(buf, want, n)) {
        say("FAIL %s read %.*s, not %s", me, (int)n, buf, want);
        exit(2);
    }
}

/* One process holding both ends of a connection to its own listener. */
static int self_conn(int v6)
{
    me = "self";
    struct sockaddr_storage ss;
    socklen_t len = loopback(v6, &ss);
    int family = v6 ? AF_INET6 : AF_INET;
    int l = socket(family, SOCK_STREAM, 0);
    if (l < 0 || bind(l, (struct sockaddr *)&ss, len) || listen(l, 4))
        die("listen");
    if (getsockname(l, (struct sockaddr *)&ss, &len))
        die("getsockname");
    int c = socket(family, SOCK_STREAM, 0);
    if (c < 0 || connect(c, (struct sockaddr *)&ss, len))
        die("connect");
    int s = accept(l, NULL, NULL);
    if (s < 0)
        die("accept");
    if (send(c, "ping\n", 5, 0) != 5 || send(s, "pong\n", 5, 0) != 5)
        die("send");
    usleep(50000);
    say("self %d\n", getpid());
    say("port %d\n", ntohs(((struct sockaddr_in *)&ss)->sin_port));
    say("ready\n");
    char line[64];
    if (!fgets(line, sizeof line, stdin))
        die("stdin");
    expect(s, "ping\n");
    expect(c, "pong\n");
    if (send(c, "more\n", 5, 0) != 5 || send(s, "back\n", 5, 0) != 5)
        die("send");
    expect(s, "more\n");
    expect(c, "back\n");
    say("ok self\n");
    return 0;
}

static int tree(int v6, int reset)
{
    int family = v6 ? AF_INET6 : AF_INET;
    struct sockaddr_storage ss;
    socklen_t len = loopback(v6, &ss);
    int l = socket(family, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (l < 0 || bind(l, (struct sockaddr *)&ss, len) || listen(l, 4))
        die("listen");
    if (getsockname(l, (struct sockaddr *)&ss, &len))
        die("getsockname");
    signal(SIGUSR1, on_usr1);
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    sigprocmask(SIG_BLOCK, &block, &old);
    pid_t parent = getpid();
    pid_t child = fork();
    if (child < 0)
        die("fork");
    if (child == 0) {
        me = "child";
        /* Never outlive a parent that died (a failed test). */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(1);
        close(l);
        int c = socket(family, SOCK_STREAM, 0);
        int small = 16384;
        setsockopt(c, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
        if (connect(c, (struct sockaddr *)&ss, len))
            die("connect");
        send_range(c, 1, 0, CHILD_FIRST, 0);
        say("child %d\n", getpid());
        while (!woken)
            sigsuspend(&old);
        if (reset) {
            expect_reset(c);
            return 0;
        }
        long got = exchange(c, 1, CHILD_FIRST, CHILD_FIRST + CHILD_REST);
        say("ok child sent %d received %ld\n", CHILD_FIRST + CHILD_REST, got);
        return 0;
    }
    int s = accept(l, NULL, NULL);
    if (s < 0)
        die("accept");
    int small = 16384;
    setsockopt(s, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    /* Fill the child's receive queue and our send queue. */
    long first = 0;
    for (int tries = 0; tries < 50; tries++) {
        long was = first;
        first = send_range(s, 0, first, 1 << 30, 1);
        if (first == was && tries > 5)
            break;
        usleep(20000);
    }
    /* Wait until the child's bytes are all here (unread). */
    for (int tries = 0; tries < 500; tries++) {
        char buf[CHILD_FIRST];
        if (recv(s, buf, sizeof buf, MSG_PEEK | MSG_DONTWAIT) == CHILD_FIRST)
            break;
        usleep(10000);
    }
    struct sockaddr_storage peer;
    socklen_t plen = sizeof peer;
    getpeername(s, (struct sockaddr *)&peer, &plen);
    int lport = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    int cport = ntohs(((struct sockaddr_in *)&peer)->sin_port);
    say("parent %d\n", getpid());
    say("ports %d %d queued %ld\n", lport, cport, first);
    /* Let the child say its line first. */
    usleep(100000);
    say("ready\n");
    char line[64];
    if (!fgets(line, sizeof line, stdin))
        die("stdin");
    kill(child, SIGUSR1);
    if (reset) {
        expect_reset(s);
    } else {
        long total = first + PARENT_REST;
        long got = exchange(s, 0, first, total);
        if (got != CHILD_FIRST + CHILD_REST)
            say("FAIL parent received %ld, not %d\n", got, CHILD_FIRST + CHILD_REST);
        else
            say("ok parent sent %ld received %ld\n", total, got);
    }
    int st;
    if (waitpid(child, &st, 0) != child || !WIFEXITED(st) || WEXITSTATUS(st))
        say("FAIL parent child status %d\n", st);
    say("done\n");
    return 0;
}

static int client(const char *host, int port)
{
    me = "client";
    struct sockaddr_storage ss;
    socklen_t len;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons(port);
        len = sizeof *a6;
    } else if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons(port);
        len = sizeof *a4;
    } else {
        say("FAIL client bad host %s\n", host);
        return 2;
    }
    int c = socket(ss.ss_family, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(c, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(c, (struct sockaddr *)&ss, len))
        die("connect");
    if (send(c, "hello\n", 6, 0) != 6)
        die("send");
    say("ready\n");
    char line[64];
    if (!fgets(line, sizeof line, stdin))
        die("stdin");
    char buf[64];
    int got = 0;
    while (got < 7) {
        ssize_t n = recv(c, buf + got, 7 - got, 0);
        if (n <= 0)
            die("recv queued");
        got += n;
    }
    if (memcmp(buf, "queued\n", 7)) {
        say("FAIL client read %.7s, not queued\n", buf);
        return 2;
    }
    if (send(c, "after\n", 6, 0) != 6)
        die("send after");
    got = 0;
    while (got < 4) {
        ssize_t n = recv(c, buf + got, 4 - got, 0);
        if (n <= 0)
            die("recv bye");
        got += n;
    }
    if (memcmp(buf, "bye\n", 4)) {
        say("FAIL client read %.4s, not bye\n", buf);
        return 2;
    }
    int keep = 0;
    socklen_t kl = sizeof keep;
    getsockopt(c, SOL_SOCKET, SO_KEEPALIVE, &keep, &kl);
    say("ok client keepalive %d\n", keep);
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc >= 2 && (!strcmp(argv[1], "tree4") || !strcmp(argv[1], "tree6")))
        return tree(argv[1][4] == '6', argc >= 3 && !strcmp(argv[2], "reset"));
    if (argc == 2 && (!strcmp(argv[1], "self4") || !strcmp(argv[1], "self6")))
        return self_conn(argv[1][4] == '6');
    if ((argc == 4 || argc == 5) && !strcmp(argv[1], "client")) {
        if (argc == 5) {
            /* Memory that makes the dump take a while. */
            size_t len = (size_t)atoi(argv[4]) << 20;
            char *m = malloc(len);
            if (!m)
                return 2;
            memset(m, 1, len);
            kept = m; /* escapes: the stores stay */
        }
        return client(argv[2], atoi(argv[3]));
    }
    fprintf(stderr, "usage: tcp_conn tree4|tree6 [reset] | self4|self6 | client HOST PORT [MB]\n");
    return 2;
}
