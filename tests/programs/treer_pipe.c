/* Pipes inside a process tree (issue 9).
 *
 * `treer_pipe`: the parent makes a pipe and writes 3000 bytes into it,
 * then forks a child that keeps only the read end (the parent keeps only
 * the write end); both print "NAME PID", the parent prints "ready" and
 * reads a line from stdin. On it, the parent writes 2000 more bytes,
 * closes its end and sends SIGUSR1 to the child, which reads to the end
 * of the pipe and checks it got all 5000 bytes in order: "ok child" or
 * "FAIL child ...". The parent reaps it, prints "done" and exits 0.
 *
 * `treer_pipe produce N`: writes lines "line I" for I = 1..N to stdout,
 * one every 20 ms. `treer_pipe filter`: copies stdin to stdout with each
 * line reversed and a running byte count, until the end of stdin: for a
 * pipeline `produce | filter > out`. `treer_pipe big MB`: see big();
 * `treer_pipe share PATH`: see share(). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#define BEFORE 3000
#define AFTER 2000

static unsigned char byte_at(int i)
{
    return (unsigned char)(i * 7 + i / 251);
}

static void put(const char *a, long v)
{
    char line[160];
    int n = snprintf(line, sizeof line, a, v);
    if (write(1, line, n) != n)
        exit(1);
}

static void text(const char *s)
{
    size_t n = strlen(s);
    if (write(1, s, n) != (ssize_t)n)
        exit(1);
}

static void write_range(int fd, int from, int to)
{
    unsigned char buf[BEFORE + AFTER];
    for (int i = from; i < to; i++)
        buf[i - from] = byte_at(i);
    if (write(fd, buf, to - from) != to - from)
        exit(1);
}

static int produce(int n)
{
    struct timespec ts = {0, 20 * 1000 * 1000};
    for (int i = 1; i <= n; i++) {
        char line[64];
        int len = snprintf(line, sizeof line, "line %d\n", i);
        if (write(1, line, len) != len)
            return 1;
        nanosleep(&ts, NULL);
    }
    return 0;
}

static int filter(void)
{
    char line[4096];
    long total = 0;
    while (fgets(line, sizeof line, stdin)) {
        size_t n = strcspn(line, "\n");
        total += (long)n;
        for (size_t i = 0; i < n / 2; i++) {
            char c = line[i];
            line[i] = line[n - 1 - i];
            line[n - 1 - i] = c;
        }
        line[n] = 0;
        printf("%s %ld\n", line, total);
        fflush(stdout);
    }
    return 0;
}

/* `treer_pipe big MB`: a child holding MB MiB of data it wrote; both say
 * "NAME PID", the parent "ready"; both wait for signals. */
static int big(int mb)
{
    pid_t c = fork();
    if (c < 0)
        return 1;
    if (c == 0) {
        size_t len = (size_t)mb << 20;
        unsigned char *p = malloc(len);
        if (!p)
            exit(1);
        for (size_t i = 0; i < len; i++)
            p[i] = (unsigned char)(i * 31 + (i >> 12));
        put("child %ld\n", (long)getpid());
        for (;;)
            pause();
    }
    put("parent %ld\n", (long)getpid());
    text("ready\n");
    for (;;)
        pause();
}

/* `treer_pipe share PATH`: a file opened once (no O_APPEND) and written
 * by the parent and its child through the same open file description,
 * in turns: "P0 C0" before the dump, "P1 C1 P2" after; with the offset
 * shared the file reads P0 C0 P1 C1 P2, one per line. */
static int share(const char *path)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGUSR2);
    sigprocmask(SIG_BLOCK, &set, NULL);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int sig;
    if (fd < 0 || write(fd, "P0\n", 3) != 3)
        return 1;
    pid_t parent = getpid();
    pid_t c = fork();
    if (c < 0)
        return 1;
    if (c == 0) {
        if (write(fd, "C0\n", 3) != 3)
            exit(1);
        put("child %ld\n", (long)getpid());
        kill(parent, SIGUSR2);
        while (sigwait(&set, &sig) != 0 || sig != SIGUSR1)
            ;
        exit(write(fd, "C1\n", 3) == 3 ? 0 : 1);
    }
    while (sigwait(&set, &sig) != 0 || sig != SIGUSR2)
        ;
    put("parent %ld\n", (long)getpid());
    text("ready\n");
    char line[64];
    if (read(0, line, sizeof line) <= 0 || write(fd, "P1\n", 3) != 3)
        return 1;
    kill(c, SIGUSR1);
    int st;
    if (waitpid(c, &st, 0) != c || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        put("FAIL parent child status %ld\n", st);
    if (write(fd, "P2\n", 3) != 3)
        return 1;
    text("done\n");
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "share") == 0)
        return share(argv[2]);
    if (argc == 3 && strcmp(argv[1], "big") == 0)
        return big(atoi(argv[2]));
    if (argc == 3 && strcmp(argv[1], "produce") == 0)
        return produce(atoi(argv[2]));
    if (argc == 2 && strcmp(argv[1], "filter") == 0)
        return filter();
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigprocmask(SIG_BLOCK, &set, NULL);
    int p[2];
    if (pipe(p) != 0)
        return 1;
    write_range(p[1], 0, BEFORE);
    pid_t c = fork();
    if (c < 0)
        return 1;
    if (c == 0) {
        close(p[1]);
        put("child %ld\n", (long)getpid());
        int sig;
        while (sigwait(&set, &sig) != 0)
            ;
        unsigned char buf[BEFORE + AFTER + 1];
        int got = 0;
        for (;;) {
            ssize_t n = read(p[0], buf + got, sizeof buf - got);
            if (n <= 0)
                break;
            got += (int)n;
        }
        if (got != BEFORE + AFTER) {
            put("FAIL child got %ld bytes\n", got);
            exit(1);
        }
        for (int i = 0; i < got; i++)
            if (buf[i] != byte_at(i)) {
                put("FAIL child byte %ld\n", i);
                exit(1);
            }
        text("ok child\n");
        exit(0);
    }
    close(p[0]);
    put("parent %ld\n", (long)getpid());
    text("ready\n");
    char line[64];
    if (read(0, line, sizeof line) <= 0)
        return 1;
    write_range(p[1], BEFORE, BEFORE + AFTER);
    close(p[1]);
    kill(c, SIGUSR1);
    int st;
    if (waitpid(c, &st, 0) != c || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        put("FAIL parent child status %ld\n", st);
    text("done\n");
    return 0;
}
