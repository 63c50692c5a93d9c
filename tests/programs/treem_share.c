/* Memory shared across a process tree (issue 9). `treem_share MODE`:
 * the root maps a shared area, forks two children, and all three count
 * in it, each in its own counter and in a common total:
 *  - anon:  MAP_SHARED|MAP_ANONYMOUS, atomic increments;
 *  - memfd: a memfd the root keeps open (the children inherit it too),
 *           mapped shared, atomic increments;
 *  - reopen: as memfd, and each child opens the memfd again through
 *           /proc/ROOT/fd/N (an open file description of its own: child
 *           i reads it to offset 100 * i, child 2 makes it non-blocking);
 *           when it stops, each checks that its description kept its
 *           offset and flags and still opens the root's memfd (a pwrite
 *           through it shows in the mapping);
 *  - deleted: a file of /tmp opened, unlinked and mapped shared, its
 *           descriptor kept (the dump refuses it by name);
 *  - sem:   shared anonymous counters incremented under a POSIX
 *           semaphore used as a lock (sem_open, then sem_unlink: a
 *           deleted file of /dev/shm every process maps).
 * The root prints "ready" once both children counted, then reads a line
 * from stdin. On it, it stops the counting through the shared area; each
 * child answers through it ("done", in sem mode by posting a second
 * semaphore) and exits 0. The root waits for both answers (10 s), reaps
 * the children, checks that the total is the sum of the counters and that
 * each child's last count is what the root sees, in memfd mode that the
 * descriptor and the mapping are still one object, and prints
 * "ok TOTAL" (exit 0) or "FAIL what" (exit 1). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct area {
    long count[3];
    long total;
    long last[3]; /* a child's count when it stopped, plus one */
    int phase;    /* 1: stop counting */
};

static struct area *a;
static sem_t *lock, *answered;
static int sem_mode;
static int reopened = -1; /* reopen mode: a child's own description */

static void fail(const char *what)
{
    printf("FAIL %s\n", what);
    fflush(stdout);
    exit(1);
}

static void count(int i)
{
    if (sem_mode) {
        while (sem_wait(lock) != 0)
            ;
        a->count[i]++;
        a->total++;
        sem_post(lock);
    } else {
        __atomic_add_fetch(&a->count[i], 1, __ATOMIC_SEQ_CST);
        __atomic_add_fetch(&a->total, 1, __ATOMIC_SEQ_CST);
    }
}

static void child(int i, pid_t parent)
{
    while (!__atomic_load_n(&a->phase, __ATOMIC_SEQ_CST)) {
        if (getppid() != parent)
            exit(2); /* the root is gone (a failed check) */
        count(i);
        usleep(1000);
    }
    if (reopened >= 0) {
        long mark = 1000 + i;
        int nonblock = (fcntl(reopened, F_GETFL) & O_NONBLOCK) != 0;
        if (lseek(reopened, 0, SEEK_CUR) != 100 * i)
            fail("a child's description lost its offset");
        if (nonblock != (i == 2))
            fail("a child's description lost its flags");
        if (pwrite(reopened, &mark, sizeof mark, 4096 + 8 * i) != sizeof mark ||
            *(volatile long *)((char *)a + 4096 + 8 * i) != mark)
            fail("a child's description is not the root's memfd");
    }
    __atomic_store_n(&a->last[i], a->count[i] + 1, __ATOMIC_SEQ_CST);
    if (sem_mode)
        sem_post(answered);
    exit(0);
}

static sem_t *private_sem(const char *tag, unsigned value)
{
    char name[64];
    snprintf(name, sizeof name, "/kckpt-treem-%s-%d", tag, (int)getpid());
    sem_t *s = sem_open(name, O_CREAT | O_EXCL, 0600, value);
    if (s == SEM_FAILED)
        fail("sem_open");
    sem_unlink(name);
    return s;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "anon";
    int memfd = -1;
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (strcmp(mode, "memfd") == 0 || strcmp(mode, "reopen") == 0) {
        memfd = memfd_create("treem", 0);
        if (memfd < 0 || ftruncate(memfd, 8192) != 0)
            fail("memfd");
        a = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    } else if (strcmp(mode, "deleted") == 0) {
        char name[64];
        snprintf(name, sizeof name, "/tmp/kckpt-treem-%d", (int)getpid());
        int fd = open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
        if (fd < 0 || unlink(name) != 0 || ftruncate(fd, 8192) != 0)
            fail("deleted file");
        a = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    } else {
        a = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    }
    if (a == MAP_FAILED)
        fail("mmap");
    if (strcmp(mode, "sem") == 0) {
        sem_mode = 1;
        lock = private_sem("lock", 1);
        answered = private_sem("done", 0);
    }
    pid_t kids[2];
    for (int i = 1; i <= 2; i++) {
        kids[i - 1] = fork();
        if (kids[i - 1] < 0)
            fail("fork");
        if (kids[i - 1] == 0) {
            if (strcmp(mode, "reopen") == 0) {
                char path[64];
                snprintf(path, sizeof path, "/proc/%d/fd/%d", (int)getppid(), memfd);
                char skip[200];
                reopened = open(path, O_RDWR);
                if (reopened < 0 || read(reopened, skip, 100 * i) != 100 * i)
                    fail("reopen");
                if (i == 2)
                    fcntl(reopened, F_SETFL, O_NONBLOCK);
            }
            child(i, getppid());
        }
    }
    while (__atomic_load_n(&a->count[1], __ATOMIC_SEQ_CST) == 0 ||
           __atomic_load_n(&a->count[2], __ATOMIC_SEQ_CST) == 0) {
        count(0);
        usleep(1000);
    }
    printf("ready\n");
    /* Count until the line comes (stdin non-blocking). */
    fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
    char buf[64];
    for (;;) {
        ssize_t n = read(0, buf, sizeof buf);
        if (n > 0)
            break;
        if (n == 0)
            fail("stdin closed");
        count(0);
        usleep(1000);
    }
    __atomic_store_n(&a->phase, 1, __ATOMIC_SEQ_CST);
    for (int i = 1; i <= 2; i++) {
        int ok = 0;
        for (int t = 0; t < 10000 && !ok; t++) {
            if (sem_mode) {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_nsec += 1000000;
                if (ts.tv_nsec >= 1000000000)
                    ts.tv_sec++, ts.tv_nsec -= 1000000000;
                ok = sem_timedwait(answered, &ts) == 0;
            } else {
                ok = __atomic_load_n(&a->last[i], __ATOMIC_SEQ_CST) != 0;
                if (!ok)
                    usleep(1000);
            }
        }
        if (!ok)
            fail("a child did not answer through the shared memory");
    }
    for (int i = 0; i < 2; i++) {
        int st;
        if (waitpid(kids[i], &st, 0) != kids[i] || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
            fail("a child ended badly");
    }
    long sum = a->count[0] + a->count[1] + a->count[2];
    if (sum != a->total) {
        printf("FAIL total %ld but counters sum to %ld\n", a->total, sum);
        return 1;
    }
    for (int i = 1; i <= 2; i++)
        if (a->last[i] != a->count[i] + 1)
            fail("a child's last count differs from the root's view");
    if (memfd >= 0) {
        long probe = 424242;
        if (pwrite(memfd, &probe, sizeof probe, 4096) != sizeof probe)
            fail("pwrite to the memfd");
        if (*(long *)((char *)a + 4096) != probe)
            fail("the memfd descriptor and its mapping are different objects");
    }
    if (strcmp(mode, "reopen") == 0)
        for (int i = 1; i <= 2; i++)
            if (*(long *)((char *)a + 4096 + 8 * i) != 1000 + i)
                fail("a child's mark through its own description is missing");
    printf("ok %ld\n", a->total);
    return 0;
}
