/* memkinds DIR: memory beyond private mappings, for tests/tests/memory_kinds.rs.
   Maps, each filled with its own byte pattern:
     shared anonymous (MAP_SHARED|MAP_ANONYMOUS), 4 pages;
     shared anonymous, 2 pages, filled by a forked child only (never touched by this process);
     a memfd "kckpt-memfd" of 3 pages mapped twice (MAP_SHARED), its descriptor closed;
     a memfd "kckpt-memfd-w" of 2 pages filled with pwrite(2), mapped, never touched;
     DIR/shared.dat (4 pages) mapped MAP_SHARED read-write;
     a PROT_NONE reservation (1 MiB) and a read-write area with a PROT_NONE guard page in the middle;
     a 4 MiB MADV_HUGEPAGE area (2 MiB aligned), every page touched;
     one small area per madvise flag: DONTDUMP, NOHUGEPAGE, DONTFORK, WIPEONFORK, mlock,
     mlock2(MLOCK_ONFAULT), SEQUENTIAL, RANDOM.
   Prints "ready", then for each stdin line ("check0": the same without reading the two
   untouched areas):
     "check" -> "check ok" when every area still holds its pattern, the two memfd mappings
                share pages, a forked child's writes to the shared anonymous area and the memfd
                are seen by this process, and a write through the file mapping reaches the file;
                otherwise "check FAIL <what>". */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define PAGE 4096UL
#define HUGE (2UL << 20)

static unsigned char *shanon, *memfd_a, *memfd_b, *fmap, *guarded, *thp, *shchild, *memfd_w;
static char path[4096];

struct advised {
    const char *name;
    int advice; /* -1: mlock, -2: mlock2 ONFAULT */
    unsigned char *p;
};
static struct advised adv[] = {
    {"dontdump", MADV_DONTDUMP, 0},   {"nohugepage", MADV_NOHUGEPAGE, 0},
    {"dontfork", MADV_DONTFORK, 0},   {"wipeonfork", MADV_WIPEONFORK, 0},
    {"mlock", -1, 0},                 {"mlock-onfault", -2, 0},
    {"sequential", MADV_SEQUENTIAL, 0}, {"random", MADV_RANDOM, 0},
};
#define NADV (sizeof adv / sizeof adv[0])

static void die(const char *what) { perror(what); exit(1); }

static void fill(unsigned char *p, size_t len, unsigned char seed) {
    for (size_t i = 0; i < len; i++) p[i] = (unsigned char)(seed + i * 7 + i / PAGE);
}

static int same(const unsigned char *p, size_t len, unsigned char seed) {
    for (size_t i = 0; i < len; i++)
        if (p[i] != (unsigned char)(seed + i * 7 + i / PAGE)) return 0;
    return 1;
}

static void *map(size_t len, int prot, int flags, int fd) {
    void *p = mmap(NULL, len, prot, flags, fd, 0);
    if (p == MAP_FAILED) die("mmap");
    return p;
}

static void setup(const char *dir) {
    shanon = map(4 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1);
    fill(shanon, 4 * PAGE, 11);

    shchild = map(2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1);
    pid_t c = fork();
    if (c < 0) die("fork");
    if (c == 0) {
        fill(shchild, 2 * PAGE, 77);
        _exit(0);
    }
    if (waitpid(c, NULL, 0) != c) die("waitpid");

    int wfd = memfd_create("kckpt-memfd-w", 0);
    if (wfd < 0) die("memfd_create");
    unsigned char buf[2 * PAGE];
    fill(buf, sizeof buf, 88);
    if (pwrite(wfd, buf, sizeof buf, 0) != (ssize_t)sizeof buf) die("pwrite");
    memfd_w = map(2 * PAGE, PROT_READ, MAP_SHARED, wfd);
    close(wfd);

    int mfd = memfd_create("kckpt-memfd", 0);
    if (mfd < 0) die("memfd_create");
    if (ftruncate(mfd, 3 * PAGE) != 0) die("ftruncate");
    memfd_a = map(3 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, mfd);
    memfd_b = map(3 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, mfd);
    close(mfd);
    fill(memfd_a, 3 * PAGE, 22);

    snprintf(path, sizeof path, "%s/shared.dat", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) die("open shared.dat");
    if (ftruncate(fd, 4 * PAGE) != 0) die("ftruncate file");
    fmap = map(4 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd);
    close(fd);
    fill(fmap, 4 * PAGE, 33);

    map(256 * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1);
    guarded = map(3 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
    fill(guarded, 3 * PAGE, 44);
    if (mprotect(guarded + PAGE, PAGE, PROT_NONE) != 0) die("mprotect");

    unsigned char *raw = map(3 * HUGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
    thp = (unsigned char *)(((unsigned long)raw + HUGE - 1) & ~(HUGE - 1));
    munmap(raw, thp - raw);
    munmap(thp + 2 * HUGE, raw + 3 * HUGE - (thp + 2 * HUGE));
    if (madvise(thp, 2 * HUGE, MADV_HUGEPAGE) != 0) die("madvise hugepage");
    fill(thp, 2 * HUGE, 55);

    for (size_t i = 0; i < NADV; i++) {
        unsigned char *p = map(2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
        int r;
        if (adv[i].advice == -1)
            r = mlock(p, 2 * PAGE);
        else if (adv[i].advice == -2)
            r = mlock2(p, 2 * PAGE, MLOCK_ONFAULT);
        else
            r = madvise(p, 2 * PAGE, adv[i].advice);
        if (r != 0) die(adv[i].name);
        fill(p, 2 * PAGE, (unsigned char)(66 + i));
        adv[i].p = p;
    }
}

static const char *check(int untouched) {
    /* "check0" leaves these alone, so they stay out of this process's page tables. */
    if (untouched && !same(shchild, 2 * PAGE, 77)) return "child-filled-shared-anon";
    if (untouched && !same(memfd_w, 2 * PAGE, 88)) return "pwrite-filled-memfd";
    if (!same(shanon, 4 * PAGE, 11)) return "shared-anon-content";
    if (!same(memfd_a, 3 * PAGE, 22) || !same(memfd_b, 3 * PAGE, 22)) return "memfd-content";
    if (!same(fmap, 4 * PAGE, 33)) return "shared-file-content";
    for (size_t i = 0; i < 3 * PAGE; i++) {
        if (i / PAGE == 1) continue;
        if (guarded[i] != (unsigned char)(44 + i * 7 + i / PAGE)) return "guarded-content";
    }
    if (!same(thp, 2 * HUGE, 55)) return "thp-content";
    for (size_t i = 0; i < NADV; i++)
        if (!same(adv[i].p, 2 * PAGE, (unsigned char)(66 + i))) return adv[i].name;

    /* The two memfd mappings are one object. */
    memfd_a[5] ^= 0xff;
    int shared = memfd_b[5] == memfd_a[5];
    memfd_a[5] ^= 0xff;
    if (!shared) return "memfd-not-shared";

    /* A child's writes reach this process through the shared mappings. */
    pid_t c = fork();
    if (c < 0) return "fork";
    if (c == 0) {
        shanon[100] = 0xa5;
        memfd_b[200] = 0x5a;
        _exit(0);
    }
    int st;
    if (waitpid(c, &st, 0) != c) return "waitpid";
    int ok = shanon[100] == 0xa5 && memfd_a[200] == 0x5a;
    shanon[100] = (unsigned char)(11 + 100 * 7);
    memfd_a[200] = (unsigned char)(22 + 200 * 7);
    if (!ok) return "fork-not-shared";

    /* The file mapping is the file. */
    fmap[PAGE + 3] = 0xee;
    if (msync(fmap, 4 * PAGE, MS_SYNC) != 0) return "msync";
    int fd = open(path, O_RDONLY);
    unsigned char b = 0;
    if (fd < 0 || pread(fd, &b, 1, PAGE + 3) != 1) return "file-read";
    close(fd);
    fmap[PAGE + 3] = (unsigned char)(33 + (PAGE + 3) * 7 + 1);
    if (b != 0xee) return "file-not-shared";
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: memkinds DIR\n");
        return 2;
    }
    setup(argv[1]);
    printf("ready\n");
    fflush(stdout);
    char line[64];
    while (fgets(line, sizeof line, stdin)) {
        if (strncmp(line, "check", 5) == 0) {
            const char *bad = check(line[5] != '0');
            if (bad)
                printf("check FAIL %s\n", bad);
            else
                printf("check ok\n");
            fflush(stdout);
        }
    }
    return 0;
}
