/* sysv_shm MODE KEY [ARG]: SysV shared memory segments (shmget/shmat) for
   tests/tests/sysv_shm.rs. The program checks itself before every tick
   line; anything wrong prints "BAD <what>" and exits 1. A setup failure
   prints "FAILED <what>: <error>" and exits 2. KEY is a SysV key, decimal
   or 0x hex, that the test picked at random (the segment is created with
   IPC_EXCL). INODE is that of /proc/self/ns/ipc: a restore in a new IPC
   namespace changes it.

   single KEY [OUTSIDE]
     a keyed segment S1 (KEY, 5 pages, 0600) attached twice: A1 read-write
     and A2 SHM_RDONLY at another address; an IPC_PRIVATE segment S2
     (3 pages, 0640) attached once (A3), then IPC_RMID'd. Page i byte j of
     S1 holds (i*131 + j) & 0xff, of S2 (i*131 + j + 77) & 0xff, but for
     the first 8 bytes of each: a tick counter. Prints "ready ID1 ID2",
     then "tick N ns INODE" every 100 ms after checking:
       - the counters of S1 (read back through the read-only A2 too) and
         S2 are N-1: each tick adds exactly one (written through A1, A3);
       - the patterns of both segments (through A1, A2, A3);
       - shmctl IPC_STAT of each: size, mode & 0777, key (S1: KEY, S2:
         IPC_PRIVATE), SHM_DEST (S2 only), owner and creator = our uid and
         gid, shm_nattch (S1: 2, 1 after the detach, plus OUTSIDE; S2: 1);
       - /proc/self/maps at A1, A2, A3: the segment's length, "rw-s"
         (A1, A3) or "r--s" (A2), inode = shmid, name /SYSV<KEY in %08x>.
     OUTSIDE (default 0): so many attachments by other processes are
     expected on S1; after "ready" the program waits (up to 15 s) until
     they are there before its first tick.
     On SIGUSR1: shmdt(A2), check that S1's shm_nattch dropped by one and
     A2 is no longer mapped, print "detached"; later ticks check S1
     through A1 only.

   tree KEY
     the parent creates a keyed segment (KEY, 2 pages, 0600), attaches it
     (AP) and forks a child, which inherits AP and attaches the segment
     once more itself (AC). Offset 0 is the parent's counter, offset 64
     the child's, page 1 a pattern. Each writes its own counter (the
     parent through AP, the child through AC and reads it back through AP)
     and checks that the other's advances (50 of its own rounds without a
     change: BAD), that shm_nattch is 3 (parent) and that its attachments
     are the segment's in /proc/self/maps. The parent prints "ready ID"
     once the child counts, then "tick N ns INODE child C" every 100 ms.
     Both also hold a pipe with bytes nobody reads (the tree image then
     has pipe data as well as the segment's content).
     The child exits when its parent is gone.

   attach KEY
     attaches the existing segment KEY read-only, prints "attached ID" and
     sleeps (a process outside the dump sharing a segment). */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sysv_common.h"

static long page;

static void nap(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static unsigned char pattern(size_t off, int seed)
{
    return (unsigned char)((off / page * 131 + off % page + seed) & 0xff);
}

static void fill(unsigned char *p, size_t len, size_t from, int seed)
{
    for (size_t o = from; o < len; o++)
        p[o] = pattern(o, seed);
}

static void check_pattern(const char *what, const unsigned char *p, size_t len,
                          size_t from, int seed)
{
    for (size_t o = from; o < len; o++)
        if (p[o] != pattern(o, seed))
            bad("%s: byte %zu (page %zu) is %u, not %u", what, o, o / page, p[o],
                pattern(o, seed));
}

/* shmctl(IPC_STAT) of `id` against what it should be. */
static void check_stat(const char *what, int id, key_t key, size_t size, unsigned mode,
                       int dest, unsigned long nattch)
{
    struct shmid_ds ds;
    if (shmctl(id, IPC_STAT, &ds) != 0)
        bad("%s: shmctl(%d, IPC_STAT): %s", what, id, strerror(errno));
    if (ds.shm_segsz != size)
        bad("%s: size %zu, not %zu", what, (size_t)ds.shm_segsz, size);
    if ((ds.shm_perm.mode & 0777) != mode)
        bad("%s: mode %o, not %o", what, ds.shm_perm.mode & 0777, mode);
    if (!!(ds.shm_perm.mode & SHM_DEST) != dest)
        bad("%s: SHM_DEST is %s (mode %o)", what, dest ? "not set" : "set",
            ds.shm_perm.mode);
    if (ds.shm_perm.__key != key)
        bad("%s: key %#x, not %#x", what, (unsigned)ds.shm_perm.__key, (unsigned)key);
    if (ds.shm_perm.uid != getuid() || ds.shm_perm.cuid != getuid())
        bad("%s: owner %u creator %u, not uid %u", what, ds.shm_perm.uid,
            ds.shm_perm.cuid, getuid());
    if (ds.shm_perm.gid != getgid() || ds.shm_perm.cgid != getgid())
        bad("%s: group %u creator group %u, not gid %u", what, ds.shm_perm.gid,
            ds.shm_perm.cgid, getgid());
    if (ds.shm_nattch != nattch)
        bad("%s: shm_nattch %lu, not %lu", what, (unsigned long)ds.shm_nattch, nattch);
}

/* The /proc/self/maps line at `addr`: 1 and its fields, or 0 when nothing
   starts there. */
static int map_at(const void *addr, unsigned long *end, char perms[5],
                  unsigned long *inode, char *name, size_t name_len)
{
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f)
        bad("open /proc/self/maps: %s", strerror(errno));
    char line[512];
    int found = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned long start, e, off, ino;
        unsigned maj, min;
        int pos = 0;
        if (sscanf(line, "%lx-%lx %4s %lx %x:%x %lu %n", &start, &e, perms, &off, &maj,
                   &min, &ino, &pos) < 7)
            continue;
        if (start != (unsigned long)addr)
            continue;
        *end = e;
        *inode = ino;
        snprintf(name, name_len, "%s", line + pos);
        name[strcspn(name, "\n")] = 0;
        found = 1;
        break;
    }
    fclose(f);
    return found;
}

/* `addr` maps all of segment `id` (key `key`, `size` bytes) with `perms`. */
static void check_map(const char *what, const void *addr, int id, key_t key, size_t size,
                      const char *want)
{
    unsigned long end, inode;
    char perms[5], name[256], sysv[32];
    if (!map_at(addr, &end, perms, &inode, name, sizeof name))
        bad("%s: nothing mapped at %p", what, addr);
    if (end - (unsigned long)addr != size)
        bad("%s: mapping of %lu bytes at %p, not %zu", what, end - (unsigned long)addr,
            addr, size);
    if (strcmp(perms, want))
        bad("%s: mapping at %p is %s, not %s", what, addr, perms, want);
    if (inode != (unsigned long)id)
        bad("%s: mapping at %p has inode %lu, not the shmid %d", what, addr, inode, id);
    snprintf(sysv, sizeof sysv, "/SYSV%08x", (unsigned)key);
    if (strncmp(name, sysv, strlen(sysv)))
        bad("%s: mapping at %p is %s, not %s", what, addr, name, sysv);
}

static volatile sig_atomic_t usr1;

static void on_usr1(int sig)
{
    (void)sig;
    usr1 = 1;
}

static void *attach(int id, int flags, const char *what)
{
    void *a = shmat(id, NULL, flags);
    if (a == (void *)-1)
        failed(what);
    return a;
}

static _Noreturn void single(key_t key, unsigned long outside)
{
    size_t size1 = 5 * page, size2 = 3 * page;
    int id1 = shmget(key, size1, IPC_CREAT | IPC_EXCL | 0600);
    if (id1 < 0)
        failed("shmget KEY");
    int id2 = shmget(IPC_PRIVATE, size2, IPC_CREAT | 0640);
    if (id2 < 0)
        failed("shmget IPC_PRIVATE");
    unsigned char *a1 = attach(id1, 0, "shmat keyed");
    const unsigned char *a2 = attach(id1, SHM_RDONLY, "shmat keyed SHM_RDONLY");
    unsigned char *a3 = attach(id2, 0, "shmat private");
    if (a1 == a2)
        bad("two attaches at one address %p", (void *)a1);
    fill(a1, size1, sizeof(uint64_t), 0);
    fill(a3, size2, sizeof(uint64_t), 77);
    volatile uint64_t *c1 = (uint64_t *)a1, *c3 = (uint64_t *)a3;
    const volatile uint64_t *c2 = (const uint64_t *)a2;
    *c1 = 0;
    *c3 = 0;
    if (shmctl(id2, IPC_RMID, NULL) != 0)
        failed("shmctl IPC_RMID");

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sa.sa_flags = SA_RESTART;
    if (sigaction(SIGUSR1, &sa, NULL) != 0)
        failed("sigaction");

    say("ready %d %d", id1, id2);
    for (int i = 0; outside; i++) {
        struct shmid_ds ds;
        if (shmctl(id1, IPC_STAT, &ds) != 0)
            failed("shmctl IPC_STAT");
        if (ds.shm_nattch == 2 + outside)
            break;
        if (i == 1500)
            bad("waiting for %lu outside attachments: shm_nattch %lu", outside,
                (unsigned long)ds.shm_nattch);
        nap(10);
    }

    int detached = 0;
    for (uint64_t n = 1;; n++) {
        if (usr1 && !detached) {
            if (shmdt(a2) != 0)
                bad("shmdt of the read-only attach: %s", strerror(errno));
            detached = 1;
            check_stat("keyed after shmdt", id1, key, size1, 0600, 0, 1 + outside);
            unsigned long end, inode;
            char perms[5], name[256];
            if (map_at(a2, &end, perms, &inode, name, sizeof name))
                bad("still mapped at %p after shmdt: %s %s", (void *)a2, perms, name);
            say("detached");
        }
        if (*c1 != n - 1 || *c3 != n - 1)
            bad("counters %llu and %llu before tick %llu", (unsigned long long)*c1,
                (unsigned long long)*c3, (unsigned long long)n);
        *c1 = n;
        *c3 = n;
        if (!detached && *c2 != n)
            bad("the read-only attach reads counter %llu, not %llu",
                (unsigned long long)*c2, (unsigned long long)n);
        check_pattern("keyed", a1, size1, sizeof(uint64_t), 0);
        if (!detached)
            check_pattern("keyed read-only", a2, size1, sizeof(uint64_t), 0);
        check_pattern("private", a3, size2, sizeof(uint64_t), 77);
        check_stat("keyed", id1, key, size1, 0600, 0, (detached ? 1 : 2) + outside);
        check_stat("private", id2, IPC_PRIVATE, size2, 0640, 1, 1);
        check_map("keyed", a1, id1, key, size1, "rw-s");
        if (!detached)
            check_map("keyed read-only", a2, id1, key, size1, "r--s");
        check_map("private", a3, id2, IPC_PRIVATE, size2, "rw-s");
        say("tick %llu ns %lu", (unsigned long long)n, ipc_ns());
        nap(100);
    }
}

/* The tree's counters: parent at offset 0, child at offset 64. */
#define PARENT_AT 0
#define CHILD_AT 64
/* Own rounds without the other's counter moving before it is BAD. */
#define STALE 50

static _Noreturn void tree_child(int id, key_t key, unsigned char *ap)
{
    pid_t parent = getppid();
    unsigned char *ac = attach(id, 0, "child shmat");
    if (ac == ap)
        bad("child: its attach is at the inherited address %p", (void *)ap);
    volatile uint64_t *mine = (uint64_t *)(ac + CHILD_AT);
    const volatile uint64_t *mine_p = (const uint64_t *)(ap + CHILD_AT);
    const volatile uint64_t *theirs = (const uint64_t *)(ap + PARENT_AT);
    uint64_t seen = *theirs;
    int stale = 0;
    for (uint64_t m = 1;; m++) {
        if (getppid() != parent)
            exit(0);
        if (*mine != m - 1)
            bad("child: its counter is %llu before round %llu", (unsigned long long)*mine,
                (unsigned long long)m);
        *mine = m;
        if (*mine_p != m)
            bad("child: the inherited attach reads %llu, not %llu",
                (unsigned long long)*mine_p, (unsigned long long)m);
        uint64_t t = *theirs;
        if (t != seen) {
            seen = t;
            stale = 0;
        } else if (++stale > STALE) {
            bad("child: the parent's counter stays at %llu", (unsigned long long)t);
        }
        check_pattern("child", ac + page, page, 0, 5);
        check_map("child inherited", ap, id, key, 2 * page, "rw-s");
        check_map("child own", ac, id, key, 2 * page, "rw-s");
        nap(100);
    }
}

static _Noreturn void tree(key_t key)
{
    int id = shmget(key, 2 * page, IPC_CREAT | IPC_EXCL | 0600);
    if (id < 0)
        failed("shmget KEY");
    unsigned char *ap = attach(id, 0, "shmat");
    fill(ap + page, page, 0, 5);
    volatile uint64_t *mine = (uint64_t *)(ap + PARENT_AT);
    const volatile uint64_t *theirs = (const uint64_t *)(ap + CHILD_AT);
    int in_flight[2];
    if (pipe(in_flight) || write(in_flight[1], "in flight", 9) != 9)
        failed("pipe");
    pid_t child = fork();
    if (child < 0)
        failed("fork");
    if (child == 0)
        tree_child(id, key, ap);
    for (int i = 0; *theirs == 0; i++) {
        if (i == 1500) {
            say("FAILED the child does not count");
            kill(child, SIGKILL);
            exit(2);
        }
        nap(10);
    }
    say("ready %d", id);
    uint64_t seen = *theirs;
    int stale = 0;
    for (uint64_t n = 1;; n++) {
        int st;
        if (waitpid(child, &st, WNOHANG) == child)
            bad("the child %d ended (status %#x)", (int)child, st);
        if (*mine != n - 1)
            bad("parent: its counter is %llu before tick %llu", (unsigned long long)*mine,
                (unsigned long long)n);
        *mine = n;
        uint64_t t = *theirs;
        if (t != seen) {
            seen = t;
            stale = 0;
        } else if (++stale > STALE) {
            bad("parent: the child's counter stays at %llu", (unsigned long long)t);
        }
        check_pattern("parent", ap + page, page, 0, 5);
        check_stat("tree", id, key, 2 * page, 0600, 0, 3);
        check_map("parent", ap, id, key, 2 * page, "rw-s");
        say("tick %llu ns %lu child %llu", (unsigned long long)n, ipc_ns(),
            (unsigned long long)t);
        nap(100);
    }
}

static _Noreturn void outside(key_t key)
{
    int id = shmget(key, 0, 0);
    if (id < 0)
        failed("shmget KEY");
    attach(id, SHM_RDONLY, "shmat");
    say("attached %d", id);
    for (;;)
        pause();
}

int main(int argc, char **argv)
{
    page = sysconf(_SC_PAGESIZE);
    if (argc >= 3 && argc <= 4 && !strcmp(argv[1], "single"))
        single(parse_key(argv[2]), argc > 3 ? strtoul(argv[3], NULL, 10) : 0);
    if (argc == 3 && !strcmp(argv[1], "tree"))
        tree(parse_key(argv[2]));
    if (argc == 3 && !strcmp(argv[1], "attach"))
        outside(parse_key(argv[2]));
    say("usage: sysv_shm single KEY [OUTSIDE] | tree KEY | attach KEY");
    return 2;
}
