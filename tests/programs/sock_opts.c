/* sock_opts: TCP and UDP sockets in every state kckpt restores, with
   options set, for tests/inet_sockets.rs (self-checking, as CRIU's zdtm
   sock_opts00 and socket-udp tests check themselves).

   Sockets (all on loopback, ports chosen by the kernel):
   - a TCP listener over IPv4 with SO_REUSEADDR, SO_REUSEPORT,
     SO_KEEPALIVE, TCP_KEEPIDLE/INTVL/CNT, SO_RCVBUF, SO_SNDBUF,
     SO_RCVTIMEO, SO_SNDTIMEO, SO_LINGER, TCP_NODELAY,
     TCP_CORK, IP_TOS, IP_TTL, SO_PRIORITY, SO_OOBINLINE, SO_DONTROUTE,
     SO_RCVLOWAT, IP_PKTINFO, IP_FREEBIND, non-blocking, close-on-exec
     (not SO_PASSCRED: Linux 6.18 refuses it on inet sockets, EOPNOTSUPP);
   - a TCP listener over IPv6 with IPV6_V6ONLY, IPV6_UNICAST_HOPS,
     IPV6_TCLASS, IPV6_RECVPKTINFO, SO_BUF_LOCK (receive, no size set);
   - a UDP socket with SO_BROADCAST, IP_TOS, IP_TTL, SO_NO_CHECK and four
     datagrams queued (one empty, one from another port, one sent to
     itself, one from a UDP socket the program keeps, restored before it);
   - a TCP socket not bound (SO_REUSEADDR, TCP_NODELAY set), one bound
     and not listening, bound to device "lo" (SO_BINDTODEVICE, which needs
     no privilege since Linux 5.7 on a socket not bound to one yet);
   - with argument "refused": also a TCP socket whose connect was refused
     (its port, which getsockname still gives, is not compared: kckpt
     restores it not bound, with a warning), SO_MARK 42 on the IPv4
     listener (which needs CAP_NET_ADMIN: this mode runs as root), and no
     empty datagram (a
     refused dump peeks at the queue, and the kernel shows a zero-length
     datagram to one peek only).

   Prints "ready" once set up, then "tick N" every 200 ms. On SIGUSR1 it reads everything back and
   prints "FAIL what: now X, was Y" for each difference, then "check
   done": a state string of each socket is taken once at start and again
   at each check. Queued datagrams are peeked (SO_PEEK_OFF) at a check
   only, never before the dump: the kernel shows a zero-length datagram to
   one peek only (it is marked peeked, and skipped by the next). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <netinet/udp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX 7
static int n_fds = 6, refused_mode;
static int fds[MAX];
static const char *names[MAX] = {"tcp4 listener", "tcp6 listener", "udp4 queued",
                               "tcp unbound",   "tcp bound",     "udp sender",
                               "tcp refused"};
static char before[MAX][1024];
static volatile sig_atomic_t check;

static void fail(const char *what) {
    printf("FAILED %s: %s\n", what, strerror(errno));
    exit(2);
}

static int geti(int fd, int level, int opt) {
    int v = -1;
    socklen_t len = sizeof v;
    if (getsockopt(fd, level, opt, &v, &len) != 0) return -1000 - errno;
    return v;
}

static void seti(int fd, int level, int opt, int v, const char *name) {
    if (setsockopt(fd, level, opt, &v, sizeof v) != 0) fail(name);
}

static void addr_text(struct sockaddr_storage *a, char *out, size_t n) {
    char ip[64] = "?";
    int port = 0;
    if (a->ss_family == AF_INET) {
        struct sockaddr_in *s = (struct sockaddr_in *)a;
        inet_ntop(AF_INET, &s->sin_addr, ip, sizeof ip);
        port = ntohs(s->sin_port);
    } else if (a->ss_family == AF_INET6) {
        struct sockaddr_in6 *s = (struct sockaddr_in6 *)a;
        inet_ntop(AF_INET6, &s->sin6_addr, ip, sizeof ip);
        port = ntohs(s->sin6_port);
    }
    snprintf(out, n, "%s/%d", ip, port);
}

/* Everything readable about socket `fd`. */
static void state(int fd, char *out, size_t n, int peek) {
    struct linger l = {0};
    socklen_t len = sizeof l;
    getsockopt(fd, SOL_SOCKET, SO_LINGER, &l, &len);
    struct timeval rt = {0}, st = {0};
    len = sizeof rt;
    getsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &rt, &len);
    len = sizeof st;
    getsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &st, &len);
    struct sockaddr_storage me = {0};
    len = sizeof me;
    getsockname(fd, (struct sockaddr *)&me, &len);
    char name[80];
    addr_text(&me, name, sizeof name);
    if (refused_mode && fd == fds[6]) snprintf(name, sizeof name, "(not compared)");
    char dev[32] = "";
    len = sizeof dev - 1;
    getsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, dev, &len);
    int ty = geti(fd, SOL_SOCKET, SO_TYPE), dom = geti(fd, SOL_SOCKET, SO_DOMAIN);
    int tcp = ty == SOCK_STREAM, v6 = dom == AF_INET6;
    int w = snprintf(
        out, n,
        "name %s dev '%s' type %d reuseaddr %d reuseport %d keepalive %d rcvbuf %d sndbuf %d "
        "rcvtimeo %ld.%06ld sndtimeo %ld.%06ld linger %d/%d passcred %d broadcast %d "
        "priority %d tos %d ttl %d acceptconn %d error %d fl %o fd %d oobinline %d "
        "dontroute %d nocheck %d rcvlowat %d pktinfo %d freebind %d mark %d buflock %d",
        name, dev, ty, geti(fd, SOL_SOCKET, SO_REUSEADDR), geti(fd, SOL_SOCKET, SO_REUSEPORT),
        geti(fd, SOL_SOCKET, SO_KEEPALIVE), geti(fd, SOL_SOCKET, SO_RCVBUF),
        geti(fd, SOL_SOCKET, SO_SNDBUF), (long)rt.tv_sec, (long)rt.tv_usec, (long)st.tv_sec,
        (long)st.tv_usec, l.l_onoff, l.l_linger, geti(fd, SOL_SOCKET, SO_PASSCRED),
        geti(fd, SOL_SOCKET, SO_BROADCAST), geti(fd, SOL_SOCKET, SO_PRIORITY),
        geti(fd, IPPROTO_IP, IP_TOS), geti(fd, IPPROTO_IP, IP_TTL),
        geti(fd, SOL_SOCKET, SO_ACCEPTCONN), geti(fd, SOL_SOCKET, SO_ERROR),
        fcntl(fd, F_GETFL), fcntl(fd, F_GETFD), geti(fd, SOL_SOCKET, SO_OOBINLINE),
        geti(fd, SOL_SOCKET, SO_DONTROUTE), geti(fd, SOL_SOCKET, SO_NO_CHECK),
        geti(fd, SOL_SOCKET, SO_RCVLOWAT), geti(fd, IPPROTO_IP, IP_PKTINFO),
        geti(fd, IPPROTO_IP, IP_FREEBIND), geti(fd, SOL_SOCKET, SO_MARK),
        geti(fd, SOL_SOCKET, 72 /* SO_BUF_LOCK */));
    if (tcp)
        w += snprintf(out + w, n - w,
                      " nodelay %d cork %d keepidle %d keepintvl %d keepcnt %d state %d",
                      geti(fd, IPPROTO_TCP, TCP_NODELAY), geti(fd, IPPROTO_TCP, TCP_CORK),
                      geti(fd, IPPROTO_TCP, TCP_KEEPIDLE), geti(fd, IPPROTO_TCP, TCP_KEEPINTVL),
                      geti(fd, IPPROTO_TCP, TCP_KEEPCNT), ({
                          struct tcp_info ti = {0};
                          socklen_t tl = sizeof ti;
                          getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &tl);
                          ti.tcpi_state;
                      }));
    else
        w += snprintf(out + w, n - w, " cork %d", geti(fd, IPPROTO_UDP, UDP_CORK));
    if (v6)
        w += snprintf(out + w, n - w, " v6only %d hops %d tclass %d recvpktinfo %d",
                      geti(fd, IPPROTO_IPV6, IPV6_V6ONLY), geti(fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS),
                      geti(fd, IPPROTO_IPV6, IPV6_TCLASS), geti(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO));
    if (!tcp && peek) {
        /* The queued datagrams, peeked one after the other. */
        int zero = 0, off = -1;
        setsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, &zero, sizeof zero);
        for (int i = 0; i < 8; i++) {
            char b[256];
            struct sockaddr_storage from = {0};
            socklen_t fl = sizeof from;
            ssize_t got = recvfrom(fd, b, sizeof b - 1, MSG_PEEK | MSG_DONTWAIT,
                                   (struct sockaddr *)&from, &fl);
            if (got < 0) break;
            b[got] = 0;
            char f[80];
            addr_text(&from, f, sizeof f);
            w += snprintf(out + w, n - w, " [%s from %s]", b, f);
        }
        setsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, &off, sizeof off);
    }
}

static void on_usr1(int s) {
    (void)s;
    check = 1;
}

static struct sockaddr_in lo4(int port) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    return a;
}

static int port_of(int fd) {
    struct sockaddr_storage me;
    socklen_t ml = sizeof me;
    getsockname(fd, (struct sockaddr *)&me, &ml);
    return ntohs(((struct sockaddr_in *)&me)->sin_port); /* same offset in sockaddr_in6 */
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    refused_mode = argc > 1 && !strcmp(argv[1], "refused");
    if (refused_mode) n_fds = 7;
    signal(SIGUSR1, on_usr1);

    int t = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    seti(t, SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR");
    seti(t, SOL_SOCKET, SO_REUSEPORT, 1, "SO_REUSEPORT");
    seti(t, SOL_SOCKET, SO_KEEPALIVE, 1, "SO_KEEPALIVE");
    seti(t, IPPROTO_TCP, TCP_KEEPIDLE, 100, "TCP_KEEPIDLE");
    seti(t, IPPROTO_TCP, TCP_KEEPINTVL, 20, "TCP_KEEPINTVL");
    seti(t, IPPROTO_TCP, TCP_KEEPCNT, 4, "TCP_KEEPCNT");
    seti(t, SOL_SOCKET, SO_RCVBUF, 40000, "SO_RCVBUF");
    seti(t, SOL_SOCKET, SO_SNDBUF, 50000, "SO_SNDBUF");
    struct timeval rt = {1, 250000}, st = {3, 500000};
    if (setsockopt(t, SOL_SOCKET, SO_RCVTIMEO, &rt, sizeof rt)) fail("SO_RCVTIMEO");
    if (setsockopt(t, SOL_SOCKET, SO_SNDTIMEO, &st, sizeof st)) fail("SO_SNDTIMEO");
    struct linger l = {1, 7};
    if (setsockopt(t, SOL_SOCKET, SO_LINGER, &l, sizeof l)) fail("SO_LINGER");
    seti(t, IPPROTO_TCP, TCP_NODELAY, 1, "TCP_NODELAY");
    seti(t, IPPROTO_TCP, TCP_CORK, 1, "TCP_CORK");
    seti(t, IPPROTO_IP, IP_TOS, 0x28, "IP_TOS");
    seti(t, IPPROTO_IP, IP_TTL, 33, "IP_TTL");
    seti(t, SOL_SOCKET, SO_PRIORITY, 5, "SO_PRIORITY");
    seti(t, SOL_SOCKET, SO_OOBINLINE, 1, "SO_OOBINLINE");
    seti(t, SOL_SOCKET, SO_DONTROUTE, 1, "SO_DONTROUTE");
    seti(t, SOL_SOCKET, SO_RCVLOWAT, 10, "SO_RCVLOWAT");
    seti(t, IPPROTO_IP, IP_PKTINFO, 1, "IP_PKTINFO");
    seti(t, IPPROTO_IP, IP_FREEBIND, 1, "IP_FREEBIND");
    if (refused_mode) seti(t, SOL_SOCKET, SO_MARK, 42, "SO_MARK");
    struct sockaddr_in a = lo4(0);
    if (bind(t, (struct sockaddr *)&a, sizeof a) || listen(t, 9)) fail("tcp4 listen");
    fds[0] = t;

    int t6 = socket(AF_INET6, SOCK_STREAM, 0);
    seti(t6, IPPROTO_IPV6, IPV6_V6ONLY, 1, "IPV6_V6ONLY");
    /* Locks the receive buffer without setting its size. */
    seti(t6, SOL_SOCKET, 72, 2, "SO_BUF_LOCK");
    seti(t6, IPPROTO_IPV6, IPV6_UNICAST_HOPS, 17, "IPV6_UNICAST_HOPS");
    seti(t6, IPPROTO_IPV6, IPV6_TCLASS, 0x40, "IPV6_TCLASS");
    seti(t6, IPPROTO_IPV6, IPV6_RECVPKTINFO, 1, "IPV6_RECVPKTINFO");
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    if (bind(t6, (struct sockaddr *)&a6, sizeof a6) || listen(t6, 3)) fail("tcp6 listen");
    fds[1] = t6;

    /* A UDP socket kept open (a lower fd: restored first) that sends a
       datagram to the next one. */
    int kept = socket(AF_INET, SOCK_DGRAM, 0);
    a = lo4(0);
    if (bind(kept, (struct sockaddr *)&a, sizeof a)) fail("kept bind");
    fds[5] = kept;
    int u = socket(AF_INET, SOCK_DGRAM, 0);
    seti(u, SOL_SOCKET, SO_BROADCAST, 1, "SO_BROADCAST");
    seti(u, IPPROTO_IP, IP_TOS, 0x10, "IP_TOS");
    seti(u, IPPROTO_IP, IP_TTL, 5, "IP_TTL");
    seti(u, SOL_SOCKET, SO_NO_CHECK, 1, "SO_NO_CHECK");
    a = lo4(0);
    if (bind(u, (struct sockaddr *)&a, sizeof a)) fail("udp bind");
    struct sockaddr_in to = lo4(port_of(u));
    int sender = socket(AF_INET, SOCK_DGRAM, 0);
    a = lo4(0);
    if (bind(sender, (struct sockaddr *)&a, sizeof a)) fail("sender bind");
    if (sendto(sender, "first", 5, 0, (struct sockaddr *)&to, sizeof to) != 5 ||
        (!refused_mode && sendto(sender, "", 0, 0, (struct sockaddr *)&to, sizeof to) != 0) ||
        sendto(u, "to myself", 9, 0, (struct sockaddr *)&to, sizeof to) != 9 ||
        sendto(kept, "kept", 4, 0, (struct sockaddr *)&to, sizeof to) != 4)
        fail("sendto");
    char expected[400], from[80], self[80], kept_name[80];
    struct sockaddr_storage sa = {0};
    socklen_t sl = sizeof sa;
    getsockname(sender, (struct sockaddr *)&sa, &sl);
    addr_text(&sa, from, sizeof from);
    sl = sizeof sa;
    getsockname(u, (struct sockaddr *)&sa, &sl);
    addr_text(&sa, self, sizeof self);
    sl = sizeof sa;
    getsockname(kept, (struct sockaddr *)&sa, &sl);
    addr_text(&sa, kept_name, sizeof kept_name);
    if (refused_mode)
        snprintf(expected, sizeof expected, " [first from %s] [to myself from %s] [kept from %s]",
                 from, self, kept_name);
    else
        snprintf(expected, sizeof expected,
                 " [first from %s] [ from %s] [to myself from %s] [kept from %s]", from, from, self,
                 kept_name);
    close(sender);
    fds[2] = u;

    int un = socket(AF_INET, SOCK_STREAM, 0);
    seti(un, SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR");
    seti(un, IPPROTO_TCP, TCP_NODELAY, 1, "TCP_NODELAY");
    fds[3] = un;

    int b = socket(AF_INET, SOCK_STREAM, 0);
    seti(b, SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR");
    if (setsockopt(b, SOL_SOCKET, SO_BINDTODEVICE, "lo", 2)) fail("SO_BINDTODEVICE");
    a = lo4(0);
    if (bind(b, (struct sockaddr *)&a, sizeof a)) fail("tcp bind");
    fds[4] = b;

    /* A port nobody listens on: bound (to hold it), closed. */
    if (refused_mode) {
        int free_port = socket(AF_INET, SOCK_STREAM, 0);
        a = lo4(0);
        if (bind(free_port, (struct sockaddr *)&a, sizeof a)) fail("bind a free port");
        struct sockaddr_in nobody = lo4(port_of(free_port));
        close(free_port);
        int r = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(r, (struct sockaddr *)&nobody, sizeof nobody) == 0 || errno != ECONNREFUSED)
            fail("connect to a port nobody listens on");
        fds[6] = r;
    }

    for (int i = 0; i < n_fds; i++) state(fds[i], before[i], sizeof before[i], 0);
    strcat(before[2], expected);
    printf("ready\n");
    for (int tick = 0;; tick++) {
        usleep(200000);
        printf("tick %d\n", tick);
        if (!check) continue;
        check = 0;
        for (int i = 0; i < n_fds; i++) {
            char now[1024];
            state(fds[i], now, sizeof now, 1);
            if (strcmp(now, before[i]))
                printf("FAIL %s: now %s, was %s\n", names[i], now, before[i]);
        }
        printf("check done\n");
    }
}
