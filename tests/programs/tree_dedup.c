/* Pages shared copy-on-write across a process tree, for the page
 * deduplication tests (format 1.6). The root fills argv[1] MiB (default
 * 64) of private anonymous memory with non-zero pseudo-random data, forks
 * 3 children that leave it alone but for one page each (child K writes
 * its own value at page K + 1), and writes a value of its own at page 0
 * after the fork. Each process records the checksum of the whole area
 * and of its own value. It prints "ready" when all children are set up.
 *
 * On "check" on stdin, the root sends SIGUSR1 to its children; each one
 * checks the area (checksum and its own value), prints "ok child K" or
 * "FAIL child K ...", and exits 0 or 1; the root checks itself, reaps them
 * and prints "ok N" (N processes fine) or "FAIL ...", exiting 0 when all
 * were fine. */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHILDREN 3
#define PAGE 4096

static uint64_t *area;
static size_t words;
static uint64_t expect;
static volatile sig_atomic_t go;

static uint64_t checksum(void)
{
    uint64_t x = 1469598103934665603ull;
    for (size_t i = 0; i < words; i++)
        x = (x ^ area[i]) * 1099511628211ull;
    return x;
}

static void on_usr1(int sig)
{
    (void)sig;
    go = 1;
}

/* Check the area and this process's value at page `page`. */
static int check(const char *who, int k, size_t page, uint64_t value)
{
    uint64_t got = checksum();
    uint64_t mine = area[page * PAGE / 8];
    if (got != expect || mine != value) {
        printf("FAIL %s %d checksum %llx expected %llx value %llx expected %llx\n", who, k,
               (unsigned long long)got, (unsigned long long)expect, (unsigned long long)mine,
               (unsigned long long)value);
        fflush(stdout);
        return 0;
    }
    return 1;
}

int main(int argc, char **argv)
{
    size_t mib = argc > 1 ? strtoul(argv[1], 0, 10) : 64;
    size_t len = mib << 20;
    setvbuf(stdout, 0, _IOLBF, 0);
    area = mmap(0, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (area == MAP_FAILED)
        return 1;
    words = len / 8;
    uint64_t s = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < words; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        area[i] = s | 1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, 0);
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    sigprocmask(SIG_BLOCK, &block, &old);
    pid_t kids[CHILDREN];
    int sync[2];
    if (pipe(sync) < 0)
        return 1;
    for (int k = 0; k < CHILDREN; k++) {
        pid_t p = fork();
        if (p < 0)
            return 1;
        if (p == 0) {
            close(sync[0]);
            uint64_t value = 0x1000 + k;
            area[(k + 1) * PAGE / 8] = value;
            expect = checksum();
            close(sync[1]);
            while (!go)
                sigsuspend(&old);
            char who[16];
            snprintf(who, sizeof who, "child");
            if (!check(who, k, k + 1, value))
                _exit(1);
            printf("ok child %d\n", k);
            _exit(0);
        }
        kids[k] = p;
    }
    close(sync[1]);
    char c;
    if (read(sync[0], &c, 1) != 0)
        return 1;
    close(sync[0]);
    uint64_t value = 0xabc;
    area[0] = value;
    expect = checksum();
    printf("ready\n");
    char line[64];
    if (!fgets(line, sizeof line, stdin) || strncmp(line, "check", 5))
        return 1;
    for (int k = 0; k < CHILDREN; k++)
        kill(kids[k], SIGUSR1);
    int ok = check("root", 0, 0, value);
    for (int k = 0; k < CHILDREN; k++) {
        int st;
        if (waitpid(kids[k], &st, 0) != kids[k] || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            printf("FAIL child %d status %d\n", k, st);
            ok = 0;
        } else {
            ok++;
        }
    }
    if (ok != CHILDREN + 1) {
        printf("FAIL %d fine\n", ok);
        return 1;
    }
    printf("ok %d\n", ok);
    return 0;
}
