/* unix_kinds MODE DIR: holds Unix sockets of one kind of state (issue 10,
   fd kind 45), prints "ready", and on a line "check" on stdin checks what
   it holds the way a program would use it: one "ok <what>" or
   "FAIL <what>: <detail>" line per check, then "done". Socket files are
   made in DIR; abstract names carry the pid given at start.

   MODE
   unconn    unbound stream (cloexec); datagram on DIR/d.sock with
             SO_PASSCRED, SO_RCVBUF, SO_RCVTIMEO, O_NONBLOCK; seqpacket on
             an abstract name; autobound datagram; stream on DIR/s.sock
             never connected, with SO_REUSEADDR
   pairs     datagram and seqpacket socketpairs with messages queued both
             ways (one empty), a stream socketpair with bytes both ways, one
             end shut down for writing, SO_SNDTIMEO and SO_PEEK_OFF set
   accepted  stream pair made by connect/accept on a listener at DIR/l.sock
             (kept), seqpacket pair on an abstract listener (kept), stream
             pair whose listener at DIR/gone.sock was closed; bytes queued
             both ways on each
   senders   datagram socket on DIR/r.sock with messages from a socket on
             DIR/a.sock (kept), an abstract one (closed), an unbound one, one
             on DIR/d.sock (closed, file removed), and from a socket
             connected to it; a datagram socket on DIR/gone.sock whose file
             was removed, one message queued; one on DIR/self.sock
             connected to itself with a message from itself
   samepath  datagram sockets bound to DIR/p.sock one after the other
             (the first two files removed), each but the last with a client
             connected to it and a message from it queued (zdtm sk-unix01)
   rmdir     in DIR/sub: a stream listener with a connection accepted, a
             datagram socket with a client connected and a message from it
             and one from a socket on DIR/sub/e.sock (closed);
             both files and DIR/sub then removed (zdtm sk-unix01)
   closed    stream and datagram socketpairs whose other end sent and
             closed
   shut      seqpacket pair shut down for writing on one end, stream pair
             shut down for reading, a bound datagram socket shut down both
             ways
   prio      unbound stream socket with SO_PRIORITY 3
   oob       stream socketpair with an out-of-band byte pending
   outside P datagram socket connected to the socket at path P
   (a pair across processes of a tree: tests/programs/unix_tree.c) */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

static const char *dir;
static int pid;
static int failures;

static void die(const char *what) {
    printf("FAILED %s: %s\n", what, strerror(errno));
    exit(2);
}

static socklen_t addr(struct sockaddr_un *a, const char *name) {
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    if (name[0] == '@') {
        strncpy(a->sun_path + 1, name + 1, sizeof a->sun_path - 2);
        return offsetof(struct sockaddr_un, sun_path) + 1 + strlen(name + 1);
    }
    strncpy(a->sun_path, name, sizeof a->sun_path - 1);
    return offsetof(struct sockaddr_un, sun_path) + strlen(name) + 1;
}

static char *path(const char *file) {
    static char bufs[8][128];
    static int n;
    char *b = bufs[n++ % 8];
    snprintf(b, 128, "%s/%s", dir, file);
    return b;
}

static char *abs_name(const char *tag) {
    static char bufs[4][64];
    static int n;
    char *b = bufs[n++ % 4];
    snprintf(b, 64, "@kckpt-%d-%s", pid, tag);
    return b;
}

static int sock(int type) {
    int s = socket(AF_UNIX, type, 0);
    if (s < 0) die("socket");
    return s;
}

static void bind_to(int s, const char *name) {
    struct sockaddr_un a;
    socklen_t len = addr(&a, name);
    if (bind(s, (struct sockaddr *)&a, len)) die(name);
}

static void connect_to(int s, const char *name) {
    struct sockaddr_un a;
    socklen_t len = addr(&a, name);
    if (connect(s, (struct sockaddr *)&a, len)) die(name);
}

/* The name as text: "" unbound, "@x" abstract, the path. */
static void show(const struct sockaddr_un *a, socklen_t len, char *out) {
    size_t n = len > offsetof(struct sockaddr_un, sun_path)
                   ? len - offsetof(struct sockaddr_un, sun_path)
                   : 0;
    if (n == 0) {
        out[0] = 0;
    } else if (a->sun_path[0] == 0) {
        out[0] = '@';
        memcpy(out + 1, a->sun_path + 1, n - 1);
        out[n] = 0;
    } else {
        memcpy(out, a->sun_path, n);
        out[n] = 0;
        out[strlen(out)] = 0;
    }
}

static void name_of(int s, int peer, char *out) {
    struct sockaddr_un a;
    socklen_t len = sizeof a;
    int r = peer ? getpeername(s, (struct sockaddr *)&a, &len)
                 : getsockname(s, (struct sockaddr *)&a, &len);
    if (r) {
        snprintf(out, 128, "error %s", strerror(errno));
        return;
    }
    show(&a, len, out);
}

static void ok(int good, const char *what, const char *detail) {
    if (good) {
        printf("ok %s\n", what);
    } else {
        printf("FAIL %s: %s\n", what, detail);
        failures++;
    }
}

static void expect_name(const char *what, int s, int peer, const char *want) {
    char got[128], detail[300];
    name_of(s, peer, got);
    snprintf(detail, sizeof detail, "%s, not %s", got, want);
    ok(!strcmp(got, want), what, detail);
}

static void send_to(int s, const char *msg, size_t n, const char *to) {
    struct sockaddr_un a;
    socklen_t len = to ? addr(&a, to) : 0;
    if (sendto(s, msg, n, 0, to ? (struct sockaddr *)&a : NULL, len) != (ssize_t)n)
        die("sendto");
}

/* The next message on s (without waiting) is `want` from `from` (NULL:
   sender not checked). */
static void expect_msg(const char *what, int s, const char *want, size_t n, const char *from) {
    char buf[4096], got[128], detail[600];
    struct sockaddr_un a;
    socklen_t len = sizeof a;
    ssize_t r = recvfrom(s, buf, sizeof buf, MSG_DONTWAIT, (struct sockaddr *)&a, &len);
    if (r < 0) {
        snprintf(detail, sizeof detail, "recv: %s", strerror(errno));
        ok(0, what, detail);
        return;
    }
    show(&a, len, got);
    snprintf(detail, sizeof detail, "%zd bytes '%.*s' from '%s', not %zu '%s' from '%s'", r,
             (int)(r < 64 ? r : 64), buf, got, n, want, from ? from : "?");
    ok((size_t)r == n && !memcmp(buf, want, n) && (!from || !strcmp(from, got)), what, detail);
}

static void expect_empty(const char *what, int s) {
    char b;
    ssize_t r = recv(s, &b, 1, MSG_DONTWAIT);
    char detail[64];
    snprintf(detail, sizeof detail, "recv gave %zd (%s)", r, r < 0 ? strerror(errno) : "data");
    ok(r < 0 && errno == EAGAIN, what, detail);
}

static void expect_eof(const char *what, int s) {
    char b;
    ssize_t r = recv(s, &b, 1, MSG_DONTWAIT);
    char detail[64];
    snprintf(detail, sizeof detail, "recv gave %zd (%s)", r, r < 0 ? strerror(errno) : "");
    ok(r == 0, what, detail);
}

static void expect_send_error(const char *what, int s, int err) {
    ssize_t r = send(s, "x", 1, MSG_DONTWAIT | MSG_NOSIGNAL);
    char detail[80];
    snprintf(detail, sizeof detail, "send gave %zd (%s)", r, r < 0 ? strerror(errno) : "sent");
    ok(r < 0 && errno == err, what, detail);
}

static int opt(int s, int o) {
    int v = -1;
    socklen_t len = sizeof v;
    getsockopt(s, SOL_SOCKET, o, &v, &len);
    return v;
}

static long timeo(int s, int o) {
    struct timeval tv = {0};
    socklen_t len = sizeof tv;
    getsockopt(s, SOL_SOCKET, o, &tv, &len);
    return tv.tv_sec * 1000000L + tv.tv_usec;
}

static void expect_int(const char *what, long got, long want) {
    char detail[80];
    snprintf(detail, sizeof detail, "%ld, not %ld", got, want);
    ok(got == want, what, detail);
}

/* A round trip through a pair: a byte from a to b. */
static void expect_link(const char *what, int a, int b) {
    char c = 0;
    int good = send(a, "z", 1, MSG_DONTWAIT | MSG_NOSIGNAL) == 1 &&
               recv(b, &c, 1, MSG_DONTWAIT) == 1 && c == 'z';
    ok(good, what, "the byte did not go through");
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    signal(SIGPIPE, SIG_IGN);
    if (argc < 3) {
        printf("usage: unix_kinds MODE DIR\n");
        return 2;
    }
    const char *mode = argv[1];
    dir = argv[2];
    pid = getpid();
    int s[8];
    char saved[8][128];
    struct timeval tv = {2, 500000};

    if (!strcmp(mode, "unconn")) {
        s[0] = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        s[1] = sock(SOCK_DGRAM);
        bind_to(s[1], path("d.sock"));
        int one = 1, buf = 65536;
        setsockopt(s[1], SOL_SOCKET, SO_PASSCRED, &one, sizeof one);
        setsockopt(s[1], SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
        setsockopt(s[1], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        fcntl(s[1], F_SETFL, O_NONBLOCK);
        s[2] = sock(SOCK_SEQPACKET);
        bind_to(s[2], abs_name("seq"));
        s[3] = sock(SOCK_DGRAM);
        struct sockaddr_un a = {.sun_family = AF_UNIX};
        if (bind(s[3], (struct sockaddr *)&a, sizeof(sa_family_t))) die("autobind");
        name_of(s[3], 0, saved[3]);
        s[4] = sock(SOCK_STREAM);
        bind_to(s[4], path("s.sock"));
        setsockopt(s[4], SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    } else if (!strcmp(mode, "pairs")) {
        if (socketpair(AF_UNIX, SOCK_DGRAM, 0, s) || socketpair(AF_UNIX, SOCK_SEQPACKET, 0, s + 2) ||
            socketpair(AF_UNIX, SOCK_STREAM, 0, s + 4))
            die("socketpair");
        send_to(s[0], "first", 5, NULL);
        send_to(s[0], "", 0, NULL);
        send_to(s[0], "third one", 9, NULL);
        send_to(s[1], "back", 4, NULL);
        send_to(s[2], "seq one", 7, NULL);
        send_to(s[2], "seq two", 7, NULL);
        send_to(s[3], "seq back", 8, NULL);
        send_to(s[4], "stream a", 8, NULL);
        send_to(s[4], "stream b", 8, NULL);
        send_to(s[5], "reply", 5, NULL);
        if (shutdown(s[5], SHUT_WR)) die("shutdown");
        setsockopt(s[0], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        int off = 0;
        setsockopt(s[1], SOL_SOCKET, SO_PEEK_OFF, &off, sizeof off);
    } else if (!strcmp(mode, "accepted")) {
        const char *names[3] = {path("l.sock"), abs_name("l"), path("gone.sock")};
        int types[3] = {SOCK_STREAM, SOCK_SEQPACKET, SOCK_STREAM};
        for (int i = 0; i < 3; i++) {
            int l = sock(types[i]);
            bind_to(l, names[i]);
            if (listen(l, 5)) die("listen");
            s[2 * i] = sock(types[i]);
            connect_to(s[2 * i], names[i]);
            s[2 * i + 1] = accept4(l, NULL, NULL, SOCK_CLOEXEC);
            if (s[2 * i + 1] < 0) die("accept");
            send_to(s[2 * i], "to server", 9, NULL);
            send_to(s[2 * i + 1], "to client", 9, NULL);
            if (i == 2) close(l);
            else s[6 + i] = l;
        }
    } else if (!strcmp(mode, "senders")) {
        s[0] = sock(SOCK_DGRAM);
        bind_to(s[0], path("r.sock"));
        s[1] = sock(SOCK_DGRAM);
        bind_to(s[1], path("a.sock"));
        send_to(s[1], "from a", 6, path("r.sock"));
        int b = sock(SOCK_DGRAM);
        bind_to(b, abs_name("b"));
        send_to(b, "from b", 6, path("r.sock"));
        close(b);
        int c = sock(SOCK_DGRAM);
        send_to(c, "from nobody", 11, path("r.sock"));
        close(c);
        int d = sock(SOCK_DGRAM);
        bind_to(d, path("d.sock"));
        send_to(d, "from d", 6, path("r.sock"));
        close(d);
        unlink(path("d.sock"));
        s[2] = sock(SOCK_DGRAM);
        bind_to(s[2], path("e.sock"));
        connect_to(s[2], path("r.sock"));
        send_to(s[2], "from e", 6, NULL);
        s[3] = sock(SOCK_DGRAM);
        bind_to(s[3], path("gone.sock"));
        send_to(s[1], "to gone", 7, path("gone.sock"));
        unlink(path("gone.sock"));
        s[4] = sock(SOCK_DGRAM);
        bind_to(s[4], path("self.sock"));
        connect_to(s[4], path("self.sock"));
        send_to(s[4], "to myself", 9, NULL);
    } else if (!strcmp(mode, "samepath")) {
        for (int i = 0; i < 3; i++) {
            s[2 * i] = sock(SOCK_DGRAM);
            bind_to(s[2 * i], path("p.sock"));
            if (i == 2) break;
            s[2 * i + 1] = sock(SOCK_DGRAM);
            connect_to(s[2 * i + 1], path("p.sock"));
            send_to(s[2 * i + 1], i ? "to second" : "to first", i ? 9 : 8, NULL);
            unlink(path("p.sock"));
        }
    } else if (!strcmp(mode, "rmdir")) {
        if (mkdir(path("sub"), 0755)) die("mkdir");
        s[0] = sock(SOCK_STREAM);
        bind_to(s[0], path("sub/l.sock"));
        if (listen(s[0], 4)) die("listen");
        s[1] = sock(SOCK_STREAM);
        connect_to(s[1], path("sub/l.sock"));
        s[2] = accept(s[0], NULL, NULL);
        if (s[2] < 0) die("accept");
        s[3] = sock(SOCK_DGRAM);
        bind_to(s[3], path("sub/d.sock"));
        s[4] = sock(SOCK_DGRAM);
        connect_to(s[4], path("sub/d.sock"));
        send_to(s[4], "to d", 4, NULL);
        int e = sock(SOCK_DGRAM);
        bind_to(e, path("sub/e.sock"));
        send_to(e, "from e", 6, path("sub/d.sock"));
        close(e);
        unlink(path("sub/e.sock"));
        unlink(path("sub/l.sock"));
        unlink(path("sub/d.sock"));
        if (rmdir(path("sub"))) die("rmdir");
    } else if (!strcmp(mode, "closed")) {
        int t[2];
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, s) || socketpair(AF_UNIX, SOCK_DGRAM, 0, t)) die("socketpair");
        send_to(s[1], "last words", 10, NULL);
        close(s[1]);
        s[1] = t[0];
        send_to(t[1], "dgram 1", 7, NULL);
        send_to(t[1], "dgram 2", 7, NULL);
        close(t[1]);
    } else if (!strcmp(mode, "shut")) {
        if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, s) || socketpair(AF_UNIX, SOCK_STREAM, 0, s + 2)) die("socketpair");
        send_to(s[0], "before", 6, NULL);
        if (shutdown(s[0], SHUT_WR) || shutdown(s[3], SHUT_RD)) die("shutdown");
        s[4] = sock(SOCK_DGRAM);
        bind_to(s[4], path("shut.sock"));
        if (shutdown(s[4], SHUT_RDWR)) die("shutdown");
    } else if (!strcmp(mode, "prio")) {
        s[0] = sock(SOCK_STREAM);
        int p = 3;
        if (setsockopt(s[0], SOL_SOCKET, SO_PRIORITY, &p, sizeof p)) die("SO_PRIORITY");
    } else if (!strcmp(mode, "oob")) {
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, s)) die("socketpair");
        if (send(s[1], "ab", 2, 0) != 2 || send(s[1], "!", 1, MSG_OOB) != 1) die("send MSG_OOB");
    } else if (!strcmp(mode, "outside")) {
        s[0] = sock(SOCK_DGRAM);
        connect_to(s[0], argc > 3 ? argv[3] : "");
    } else {
        printf("unknown mode %s\n", mode);
        return 2;
    }
    printf("ready\n");
    char line[32];
    if (!fgets(line, sizeof line, stdin) || strcmp(line, "check\n") != 0) return 2;

    if (!strcmp(mode, "unconn")) {
        expect_name("unbound", s[0], 0, "");
        ok((fcntl(s[0], F_GETFD) & FD_CLOEXEC) != 0, "cloexec", "FD_CLOEXEC is off");
        expect_int("unbound type", opt(s[0], SO_TYPE), SOCK_STREAM);
        expect_name("path", s[1], 0, path("d.sock"));
        expect_int("passcred", opt(s[1], SO_PASSCRED), 1);
        expect_int("rcvbuf", opt(s[1], SO_RCVBUF), 131072);
        expect_int("rcvtimeo", timeo(s[1], SO_RCVTIMEO), 2500000);
        ok((fcntl(s[1], F_GETFL) & O_NONBLOCK) != 0, "nonblock", "O_NONBLOCK is off");
        int c = sock(SOCK_DGRAM);
        send_to(c, "hello", 5, path("d.sock"));
        expect_msg("receives at its path", s[1], "hello", 5, "");
        expect_name("abstract", s[2], 0, abs_name("seq"));
        expect_int("seqpacket type", opt(s[2], SO_TYPE), SOCK_SEQPACKET);
        expect_name("autobound", s[3], 0, saved[3]);
        expect_name("stream bound", s[4], 0, path("s.sock"));
        expect_int("reuseaddr", opt(s[4], SO_REUSEADDR), 1);
        ok(listen(s[4], 1) == 0, "can still listen", strerror(errno));
    } else if (!strcmp(mode, "pairs")) {
        expect_msg("dgram 1", s[1], "first", 5, NULL);
        expect_msg("dgram 2 (empty)", s[1], "", 0, NULL);
        expect_msg("dgram 3", s[1], "third one", 9, NULL);
        expect_empty("dgram queue then empty", s[1]);
        expect_msg("dgram back", s[0], "back", 4, NULL);
        expect_msg("seq 1", s[3], "seq one", 7, NULL);
        expect_msg("seq 2", s[3], "seq two", 7, NULL);
        expect_msg("seq back", s[2], "seq back", 8, NULL);
        expect_msg("stream bytes", s[5], "stream astream b", 16, NULL);
        expect_msg("stream reply", s[4], "reply", 5, NULL);
        expect_eof("stream reply then end of file", s[4]);
        expect_send_error("shut end cannot send", s[5], EPIPE);
        expect_link("stream still carries the other way", s[4], s[5]);
        expect_int("sndtimeo", timeo(s[0], SO_SNDTIMEO), 2500000);
        expect_int("peek_off", opt(s[1], SO_PEEK_OFF), 0);
        expect_link("dgram pair linked", s[0], s[1]);
        expect_link("seqpacket pair linked", s[3], s[2]);
    } else if (!strcmp(mode, "accepted")) {
        const char *names[3] = {path("l.sock"), abs_name("l"), path("gone.sock")};
        for (int i = 0; i < 3; i++) {
            char what[64];
            snprintf(what, sizeof what, "pair %d client peer", i);
            expect_name(what, s[2 * i], 1, names[i]);
            snprintf(what, sizeof what, "pair %d server name", i);
            expect_name(what, s[2 * i + 1], 0, names[i]);
            snprintf(what, sizeof what, "pair %d client unbound", i);
            expect_name(what, s[2 * i], 0, "");
            snprintf(what, sizeof what, "pair %d to server", i);
            expect_msg(what, s[2 * i + 1], "to server", 9, NULL);
            snprintf(what, sizeof what, "pair %d to client", i);
            expect_msg(what, s[2 * i], "to client", 9, NULL);
            snprintf(what, sizeof what, "pair %d linked", i);
            expect_link(what, s[2 * i], s[2 * i + 1]);
        }
        for (int i = 0; i < 2; i++) {
            int c = sock(i ? SOCK_SEQPACKET : SOCK_STREAM);
            struct sockaddr_un a;
            socklen_t len = addr(&a, names[i]);
            int good = connect(c, (struct sockaddr *)&a, len) == 0;
            int n = good ? accept(s[6 + i], NULL, NULL) : -1;
            ok(n >= 0, i ? "abstract listener accepts" : "path listener accepts", strerror(errno));
            close(c);
            close(n);
        }
    } else if (!strcmp(mode, "senders")) {
        expect_msg("from a", s[0], "from a", 6, path("a.sock"));
        expect_msg("from b", s[0], "from b", 6, abs_name("b"));
        expect_msg("from an unbound socket", s[0], "from nobody", 11, "");
        expect_msg("from d", s[0], "from d", 6, path("d.sock"));
        expect_msg("from e", s[0], "from e", 6, path("e.sock"));
        expect_empty("then empty", s[0]);
        expect_name("a still bound", s[1], 0, path("a.sock"));
        expect_name("e connected", s[2], 1, path("r.sock"));
        send_to(s[2], "again", 5, NULL);
        expect_msg("e sends again", s[0], "again", 5, path("e.sock"));
        ok(access(path("d.sock"), F_OK) != 0, "d's file still gone", "it exists");
        expect_name("gone keeps its name", s[3], 0, path("gone.sock"));
        ok(access(path("gone.sock"), F_OK) != 0, "gone's file still gone", "it exists");
        expect_msg("gone's message", s[3], "to gone", 7, path("a.sock"));
        expect_msg("self's message", s[4], "to myself", 9, path("self.sock"));
        expect_name("self connected to itself", s[4], 1, path("self.sock"));
        send_to(s[4], "again", 5, NULL);
        expect_msg("self sends to itself again", s[4], "again", 5, path("self.sock"));
    } else if (!strcmp(mode, "samepath")) {
        expect_msg("first's message", s[0], "to first", 8, "");
        expect_msg("second's message", s[2], "to second", 9, "");
        send_to(s[1], "again 1", 7, NULL);
        send_to(s[3], "again 2", 7, NULL);
        expect_msg("first's client still sends to it", s[0], "again 1", 7, "");
        expect_msg("second's client still sends to it", s[2], "again 2", 7, "");
        int c = sock(SOCK_DGRAM);
        send_to(c, "new", 3, path("p.sock"));
        expect_msg("the path leads to the last", s[4], "new", 3, "");
        for (int i = 0; i < 5; i++) {
            char what[32];
            snprintf(what, sizeof what, "name %d", i);
            expect_name(what, s[i], i % 2, path("p.sock"));
        }
    } else if (!strcmp(mode, "rmdir")) {
        expect_name("listener", s[0], 0, path("sub/l.sock"));
        expect_name("accepted", s[2], 0, path("sub/l.sock"));
        expect_name("client's peer", s[1], 1, path("sub/l.sock"));
        expect_link("pair linked", s[1], s[2]);
        expect_name("datagram", s[3], 0, path("sub/d.sock"));
        expect_msg("its message", s[3], "to d", 4, "");
        expect_msg("a message from a sender of the removed directory", s[3], "from e", 6,
                   path("sub/e.sock"));
        send_to(s[4], "again", 5, NULL);
        expect_msg("its client sends again", s[3], "again", 5, "");
        ok(access(path("sub"), F_OK) != 0, "the directory is still gone", "it exists");
    } else if (!strcmp(mode, "closed")) {
        expect_msg("stream last words", s[0], "last words", 10, NULL);
        expect_eof("then end of file", s[0]);
        expect_send_error("stream cannot send", s[0], EPIPE);
        expect_msg("dgram 1", s[1], "dgram 1", 7, NULL);
        expect_msg("dgram 2", s[1], "dgram 2", 7, NULL);
        expect_empty("dgram then empty", s[1]);
        expect_send_error("dgram cannot send", s[1], ECONNREFUSED);
    } else if (!strcmp(mode, "shut")) {
        expect_msg("seqpacket message", s[1], "before", 6, NULL);
        expect_eof("then end of file", s[1]);
        expect_send_error("seqpacket shut end", s[0], EPIPE);
        expect_link("seqpacket other way", s[1], s[0]);
        expect_send_error("stream peer of a reader shut down", s[2], EPIPE);
        expect_eof("stream shut for reading", s[3]);
        expect_link("stream other way", s[3], s[2]);
        expect_name("dgram bound", s[4], 0, path("shut.sock"));
        int c = sock(SOCK_DGRAM);
        struct sockaddr_un a;
        socklen_t len = addr(&a, path("shut.sock"));
        ssize_t r = sendto(c, "x", 1, MSG_DONTWAIT, (struct sockaddr *)&a, len);
        ok(r < 0 && errno == EPIPE, "dgram shut for reading refuses senders", strerror(errno));
        expect_send_error("dgram shut for writing", s[4], EPIPE);
        close(c);
    } else if (!strcmp(mode, "outside")) {
        expect_name("connected again", s[0], 1, argv[3]);
    }
    printf("done\n");
    return failures ? 1 : 0;
}
