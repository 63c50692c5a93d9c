/* A slow receiver and a busy connection, for TCP repair (issue 10).
 *
 * `tcp_flow FAMILY TOTAL`: one process holds both ends of a connection
 * over loopback (FAMILY 4: 127.0.0.1, 6: ::1): `r`, the receiver, whose
 * program set SO_RCVBUF to 4096 before it connected, and `s`, the sender,
 * accepted on a listener (closed afterwards). The sender writes (without
 * waiting) until its buffer is full, then the process prints
 * "ready QUEUED" (bytes written so far) and reads a line from stdin. On
 * it, it writes the rest of TOTAL bytes and reads them all at the
 * receiver (poll, both ends non-blocking), checking every byte (a
 * pattern of its position), and prints "drained N in S.SSS s" (N bytes
 * read, S seconds), "ok" or "FAIL ...", then "done".
 *
 * `tcp_flow FAMILY TOTAL busy`: both ends (buffers of TOTAL bytes, or
 * 4 MiB when TOTAL is 0, each way: SO_RCVBUF and SO_SNDBUF, which the
 * kernel doubles within twice net.core.rmem_max / wmem_max) write to each other without end, and read a
 * little every millisecond (32 KiB, fewer than they are sent): every
 * buffer stays full both ways while the data keeps moving, up to and
 * during the dump (CRIU's socket-tcpbuf situation). "ready" once the
 * buffers are full; on "go" each end writes no more
 * and shuts down writing, and both read to the end of file, checking
 * every byte: "drained N in S.SSS s" (N the bytes read after "go"), "ok",
 * "done". */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static void fail(const char *what) {
  printf("FAIL %s: %s\n", what, strerror(errno));
  printf("done\n");
  exit(1);
}

/* Byte `i` of the stream written by end `who`. */
static unsigned char at(long i, int who) {
  return (unsigned char)(i * 7 + i / 251 + who * 101);
}

struct end {
  int fd;
  int who;   /* the pattern it writes */
  long sent; /* bytes written */
  long got;  /* bytes read and checked (the other's pattern) */
};

/* Write as much as fits, up to `total`. */
static void push(struct end *e, long total) {
  unsigned char buf[65536];
  while (e->sent < total) {
    long n = total - e->sent;
    if (n > (long)sizeof buf)
      n = sizeof buf;
    for (long i = 0; i < n; i++)
      buf[i] = at(e->sent + i, e->who);
    ssize_t w = write(e->fd, buf, n);
    if (w < 0) {
      if (errno == EAGAIN)
        return;
      fail("write");
    }
    e->sent += w;
  }
}

/* Read what is there, checking it. */
static void pull(struct end *e) {
  unsigned char buf[65536];
  for (;;) {
    ssize_t n = read(e->fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EAGAIN)
        return;
      fail("read");
    }
    if (n == 0) {
      errno = 0;
      fail("end of file");
    }
    for (ssize_t i = 0; i < n; i++)
      if (buf[i] != at(e->got + i, !e->who)) {
        printf("FAIL byte %ld read by end %d: %u, not %u\n", e->got + i,
               e->who, buf[i], at(e->got + i, !e->who));
        printf("done\n");
        exit(1);
      }
    e->got += n;
  }
}

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

/* Read at most `max` bytes (checked), or to the end of file; 1 at the end. */
static int pull_some(struct end *e, long max) {
  unsigned char buf[65536];
  while (max > 0) {
    ssize_t n = read(e->fd, buf, max < (long)sizeof buf ? max : (long)sizeof buf);
    if (n < 0) {
      if (errno == EAGAIN)
        return 0;
      fail("read");
    }
    if (n == 0)
      return 1;
    for (ssize_t i = 0; i < n; i++)
      if (buf[i] != at(e->got + i, !e->who)) {
        printf("FAIL byte %ld read by end %d: %u, not %u\n", e->got + i,
               e->who, buf[i], at(e->got + i, !e->who));
        printf("done\n");
        exit(1);
      }
    e->got += n;
    max -= n;
  }
  return 0;
}

static double now(void);

/* The buffer size of the busy mode: TOTAL when given, else 4 MiB. */
static int busy_buf = 4 << 20;

/* The busy mode (see the top). */
static int busy_pair(struct end *a, struct end *b) {
  long endless = 1L << 62;
  int big = busy_buf;
  struct end *e[2] = {a, b};
  for (int i = 0; i < 2; i++) {
    if (setsockopt(e[i]->fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof big) ||
        setsockopt(e[i]->fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big))
      fail("buffer sizes");
    push(e[i], endless);
  }
  usleep(100000);
  printf("ready 0\n");
  int go = 0;
  while (!go) {
    for (int i = 0; i < 2; i++) {
      push(e[i], endless);
      pull_some(e[i], 2 << 20);
    }
    struct pollfd in = {0, POLLIN, 0};
    go = poll(&in, 1, 10) > 0;
  }
  char line[64];
  if (!fgets(line, sizeof line, stdin))
    fail("stdin");
  double t0 = now();
  long before = a->got + b->got;
  for (int i = 0; i < 2; i++)
    if (shutdown(e[i]->fd, SHUT_WR))
      fail("shutdown");
  int eof[2] = {0, 0};
  while (!eof[0] || !eof[1]) {
    struct pollfd p[2] = {{a->fd, POLLIN, 0}, {b->fd, POLLIN, 0}};
    if (poll(p, 2, 1000) < 0)
      fail("poll");
    for (int i = 0; i < 2; i++)
      if (!eof[i])
        eof[i] = pull_some(e[i], 1L << 30);
    if (now() - t0 > 60) {
      printf("FAIL stuck after 60 s\n");
      printf("done\n");
      return 1;
    }
  }
  if (a->got != b->sent || b->got != a->sent) {
    printf("FAIL read %ld and %ld, written %ld and %ld\n", a->got, b->got,
           b->sent, a->sent);
    printf("done\n");
    return 1;
  }
  printf("drained %ld in %.3f s\n", a->got + b->got - before, now() - t0);
  printf("ok\n");
  printf("done\n");
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 3)
    return 2;
  int v6 = argv[1][0] == '6';
  long total = atol(argv[2]);
  int busy = argc > 3 && !strcmp(argv[3], "busy");
  if (busy && total > 0)
    busy_buf = (int)total;
  setvbuf(stdout, NULL, _IOLBF, 0);
  int fam = v6 ? AF_INET6 : AF_INET;
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  socklen_t len;
  if (v6) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
    a->sin6_family = AF_INET6;
    a->sin6_addr = in6addr_loopback;
    len = sizeof *a;
  } else {
    struct sockaddr_in *a = (struct sockaddr_in *)&ss;
    a->sin_family = AF_INET;
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    len = sizeof *a;
  }
  int l = socket(fam, SOCK_STREAM, 0);
  if (l < 0 || bind(l, (struct sockaddr *)&ss, len) || listen(l, 1) ||
      getsockname(l, (struct sockaddr *)&ss, &len))
    fail("listener");
  int r = socket(fam, SOCK_STREAM, 0);
  int small = busy ? busy_buf : 4096;
  if (r < 0 || setsockopt(r, SOL_SOCKET, SO_RCVBUF, &small, sizeof small))
    fail("receiver");
  if (connect(r, (struct sockaddr *)&ss, len))
    fail("connect");
  int s = accept(l, NULL, NULL);
  if (s < 0)
    fail("accept");
  close(l);
  struct end snd = {s, 0, 0, 0}, rcv = {r, 1, 0, 0};
  fcntl(s, F_SETFL, O_NONBLOCK);
  fcntl(r, F_SETFL, O_NONBLOCK);
  if (busy)
    return busy_pair(&snd, &rcv);
  push(&snd, total);
  /* Let loopback deliver what it can. */
  usleep(100000);
  push(&snd, total);
  printf("ready %ld\n", snd.sent);
  char line[64];
  if (!fgets(line, sizeof line, stdin))
    fail("stdin");
  double t0 = now();
  struct pollfd p[2] = {{s, 0, 0}, {r, 0, 0}};
  while (rcv.got < total) {
    p[0].events = snd.sent < total ? POLLOUT : 0;
    p[1].events = POLLIN;
    if (poll(p, 2, 1000) < 0)
      fail("poll");
    push(&snd, total);
    pull(&rcv);
    if (now() - t0 > 60) {
      printf("FAIL stuck: %ld of %ld read after 60 s\n", rcv.got, total);
      printf("done\n");
      return 1;
    }
  }
  printf("drained %ld in %.3f s\n", rcv.got, now() - t0);
  printf("ok\n");
  printf("done\n");
  return 0;
}
