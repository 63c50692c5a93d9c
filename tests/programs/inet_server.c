/* inet_server MODE [PORT]: a small TCP or UDP server for tests/inet_sockets.rs.

   MODE     socket                                              ready line
   tcp4     TCP listener on 127.0.0.1:0, backlog 7, options     ready port P
   tcp6     the same on [::1]:0 (IPV6_V6ONLY)                   ready port P
   udp4     UDP socket bound to 127.0.0.1:0                     ready port P
   udpconn  UDP socket bound to 127.0.0.1:0, connected to       ready port P
            127.0.0.1:PORT
   tcp4 noaccept   as tcp4, never accepts                       ready port P
   tcp4 selfconnect  as noaccept, and connects a socket of its
                   own to the listener (a connection waiting to be
                   accepted whose client is in the dump)        ready port P
   udp4 wait       as udp4, serves once a line is read from     ready port P
                   standard input (datagrams queue until then)

   Options set on the socket: SO_REUSEADDR, SO_KEEPALIVE, SO_RCVBUF 65536,
   SO_SNDTIMEO 2.5 s, SO_LINGER 3 s; TCP: TCP_NODELAY, TCP_KEEPIDLE 77,
   TCP_KEEPINTVL 11, TCP_KEEPCNT 5; UDP: SO_BROADCAST. The socket is
   non-blocking and not close-on-exec. A client sending "opts" gets the
   options and flags the server reads back from its socket now ("opts
   ..."); anything else is echoed back ("echo TEXT"). The server polls
   every 100 ms and prints "served N" after each answer. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void fail(const char *what) {
    printf("FAILED %s: %s\n", what, strerror(errno));
    exit(2);
}

static int geti(int fd, int level, int opt) {
    int v = -1;
    socklen_t len = sizeof v;
    if (getsockopt(fd, level, opt, &v, &len) != 0) return -1;
    return v;
}

static void seti(int fd, int level, int opt, int v) {
    if (setsockopt(fd, level, opt, &v, sizeof v) != 0) fail("setsockopt");
}

static int opts(int fd, int tcp, int v6, char *out, size_t n) {
    struct linger l = {0};
    socklen_t ll = sizeof l;
    getsockopt(fd, SOL_SOCKET, SO_LINGER, &l, &ll);
    struct timeval tv = {0};
    socklen_t tl = sizeof tv;
    getsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, &tl);
    int fl = fcntl(fd, F_GETFL), fdfl = fcntl(fd, F_GETFD);
    return snprintf(out, n,
                    "reuseaddr %d keepalive %d rcvbuf %d sndtimeo %ld.%06ld linger %d/%d "
                    "nodelay %d keepidle %d keepintvl %d keepcnt %d broadcast %d v6only %d "
                    "nonblock %d cloexec %d acceptconn %d",
                    geti(fd, SOL_SOCKET, SO_REUSEADDR), geti(fd, SOL_SOCKET, SO_KEEPALIVE),
                    geti(fd, SOL_SOCKET, SO_RCVBUF), (long)tv.tv_sec, (long)tv.tv_usec,
                    l.l_onoff, l.l_linger, tcp ? geti(fd, IPPROTO_TCP, TCP_NODELAY) : -1,
                    tcp ? geti(fd, IPPROTO_TCP, TCP_KEEPIDLE) : -1,
                    tcp ? geti(fd, IPPROTO_TCP, TCP_KEEPINTVL) : -1,
                    tcp ? geti(fd, IPPROTO_TCP, TCP_KEEPCNT) : -1,
                    geti(fd, SOL_SOCKET, SO_BROADCAST), v6 ? geti(fd, IPPROTO_IPV6, IPV6_V6ONLY) : -1,
                    !!(fl & O_NONBLOCK), !!(fdfl & FD_CLOEXEC), geti(fd, SOL_SOCKET, SO_ACCEPTCONN));
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc < 2) {
        printf("usage: inet_server MODE [PORT]\n");
        return 2;
    }
    const char *mode = argv[1];
    int tcp = !strncmp(mode, "tcp", 3), v6 = !strcmp(mode, "tcp6");
    int fd = socket(v6 ? AF_INET6 : AF_INET, tcp ? SOCK_STREAM : SOCK_DGRAM, 0);
    if (fd < 0) fail("socket");
    seti(fd, SOL_SOCKET, SO_REUSEADDR, 1);
    seti(fd, SOL_SOCKET, SO_KEEPALIVE, 1);
    seti(fd, SOL_SOCKET, SO_RCVBUF, 32768); /* the kernel doubles it */
    struct timeval tv = {2, 500000};
    if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0) fail("SO_SNDTIMEO");
    struct linger l = {1, 3};
    if (setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l) != 0) fail("SO_LINGER");
    if (tcp) {
        seti(fd, IPPROTO_TCP, TCP_NODELAY, 1);
        seti(fd, IPPROTO_TCP, TCP_KEEPIDLE, 77);
        seti(fd, IPPROTO_TCP, TCP_KEEPINTVL, 11);
        seti(fd, IPPROTO_TCP, TCP_KEEPCNT, 5);
    } else {
        seti(fd, SOL_SOCKET, SO_BROADCAST, 1);
    }
    if (v6) {
        seti(fd, IPPROTO_IPV6, IPV6_V6ONLY, 1);
        struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
        if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0) fail("bind");
    } else {
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0) fail("bind");
    }
    if (tcp && listen(fd, 7) != 0) fail("listen");
    if (!strcmp(mode, "udpconn")) {
        if (argc < 3) fail("udpconn needs a port");
        struct sockaddr_in p = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2])),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        if (connect(fd, (struct sockaddr *)&p, sizeof p) != 0) fail("connect");
    }
    if (fcntl(fd, F_SETFL, O_NONBLOCK) != 0) fail("O_NONBLOCK");
    struct sockaddr_storage me;
    socklen_t ml = sizeof me;
    getsockname(fd, (struct sockaddr *)&me, &ml);
    int port = ntohs(((struct sockaddr_in *)&me)->sin_port); /* same offset in sockaddr_in6 */
    if (argc > 2 && !strcmp(argv[2], "selfconnect")) {
        int c = socket(AF_INET, SOCK_STREAM, 0);
        if (c < 0 || connect(c, (struct sockaddr *)&me, ml) != 0) fail("connect to itself");
    }
    printf("ready port %d\n", port);
    int served = 0;
    if (argc > 2 && (!strcmp(argv[2], "noaccept") || !strcmp(argv[2], "selfconnect")))
        for (;;) pause();
    if (argc > 2 && !strcmp(argv[2], "wait")) {
        char go[16];
        if (read(0, go, sizeof go) <= 0) return 1;
    }
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 100) <= 0) continue;
        char in[256], out[700];
        struct sockaddr_storage from;
        socklen_t fl = sizeof from;
        int c = -1;
        ssize_t n;
        if (tcp) {
            c = accept(fd, NULL, NULL);
            if (c < 0) continue;
            struct pollfd q = {.fd = c, .events = POLLIN};
            poll(&q, 1, 5000);
            n = read(c, in, sizeof in - 1);
        } else {
            n = recvfrom(fd, in, sizeof in - 1, 0, (struct sockaddr *)&from, &fl);
        }
        if (n < 0) n = 0;
        in[n] = 0;
        int len;
        if (!strncmp(in, "opts", 4)) {
            len = snprintf(out, 30, "opts ");
            len += opts(fd, tcp, v6, out + len, sizeof out - len);
        } else {
            len = snprintf(out, sizeof out, "echo %s", in);
        }
        if (tcp) {
            if (write(c, out, len) < 0) {}
            close(c);
        } else {
            sendto(fd, out, len, 0, (struct sockaddr *)&from, fl);
        }
        printf("served %d\n", ++served);
    }
}
