/* stdio_copy: copies its standard input to its standard output slowly,
 * one numbered line at a time ("N: LINE"), with one progress line per 10
 * lines on standard error ("copied N"), so that a dump lands in the middle
 * of the copy. Writes with write(2) (no stdio buffer to lose or repeat).
 * With an argument N it writes N generated lines instead of reading.
 * At the end it reports on stderr whether fd 0 was open ("fd0 open/closed")
 * when the argument "close0" closed it first. Exits 0. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void out(int fd, const char *s, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, s, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            exit(3);
        }
        s += w;
        n -= (size_t)w;
    }
}

static void nap(void) {
    struct timespec ts = {0, 8 * 1000 * 1000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

int main(int argc, char **argv) {
    char line[4096], buf[4200];
    long n = 0, gen = 0;
    int close0 = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "close0") == 0)
            close0 = 1;
        else
            gen = atol(argv[i]);
    }
    if (close0)
        close(0);
    FILE *in = gen || close0 ? NULL : fdopen(0, "r");
    for (;;) {
        if (in) {
            if (!fgets(line, sizeof line, in))
                break;
        } else {
            if (n >= gen)
                break;
            snprintf(line, sizeof line, "generated line %ld of %ld\n", n + 1, gen);
        }
        n++;
        int len = snprintf(buf, sizeof buf, "%ld: %s", n, line);
        out(1, buf, (size_t)len);
        if (n % 10 == 0) {
            len = snprintf(buf, sizeof buf, "copied %ld\n", n);
            out(2, buf, (size_t)len);
        }
        nap();
    }
    if (close0) {
        int r = fcntl(0, F_GETFD);
        int len = snprintf(buf, sizeof buf, "fd0 %s\n", r < 0 ? "closed" : "open");
        out(2, buf, (size_t)len);
    }
    return 0;
}
