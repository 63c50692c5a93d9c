/* pingpong: a parent-less pipeline inside one process, for tests/tests/pipeline.rs.
   Two threads ping-pong over a SOCK_STREAM socketpair, each owning one end: the main
   thread (end 0) sends 0, 1, 2, ... and starts with WINDOW messages in flight; the worker
   (end 1) checks that it receives exactly the next number and sends it back; the main
   thread checks that each echo is exactly the next number and answers it with the next
   new one (echo + WINDOW), so WINDOW messages are always queued in one direction or the
   other. Each message is 16 bytes: the number and its complement. Both threads sleep
   1 ms per message, so data sits in both directions at any moment.
   Prints "count N" each time the main thread has received N echoes, N a multiple of 100;
   prints "BAD ..." and exits 1 if a number is lost, duplicated, reordered or corrupt. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define WINDOW 8

static int sv[2];

static void bad(const char *who, uint64_t want, const uint64_t msg[2]) {
    printf("BAD %s expected %llu got %llu/%llx\n", who, (unsigned long long)want,
           (unsigned long long)msg[0], (unsigned long long)msg[1]);
    exit(1);
}

static void io_full(int write_it, int fd, void *buf, size_t len) {
    char *p = buf;
    while (len > 0) {
        ssize_t n = write_it ? write(fd, p, len) : read(fd, p, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            printf("BAD %s fd %d: %s\n", write_it ? "write" : "read", fd,
                   n == 0 ? "end of stream" : "error");
            exit(1);
        }
        p += n;
        len -= (size_t)n;
    }
}

static void send_num(int fd, uint64_t v) {
    uint64_t msg[2] = {v, ~v};
    io_full(1, fd, msg, sizeof msg);
}

/* Receive the next message and check it is `want`. */
static void expect_num(const char *who, int fd, uint64_t want) {
    uint64_t msg[2];
    io_full(0, fd, msg, sizeof msg);
    if (msg[0] != want || msg[1] != ~want) bad(who, want, msg);
}

static void nap(void) {
    struct timespec ts = {0, 1000 * 1000};
    nanosleep(&ts, NULL);
}

static void *echo(void *arg) {
    (void)arg;
    for (uint64_t next = 0;; next++) {
        expect_num("echo", sv[1], next);
        nap();
        send_num(sv[1], next);
    }
    return NULL;
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) {
        perror("socketpair");
        return 1;
    }
    pthread_t t;
    if (pthread_create(&t, NULL, echo, NULL) != 0) {
        perror("pthread_create");
        return 1;
    }
    for (uint64_t v = 0; v < WINDOW; v++) send_num(sv[0], v);
    for (uint64_t got = 0;;) {
        expect_num("main", sv[0], got);
        got++;
        if (got % 100 == 0) printf("count %llu\n", (unsigned long long)got);
        nap();
        send_num(sv[0], got - 1 + WINDOW);
    }
}
