/* kstate [loginuid]: per-process and per-thread kernel state, for tests/tests/kernel_state.rs.
   Sets: child subreaper, THP disabled, oom_score_adj 500 (raising needs no privilege), the
   membarrier registrations GLOBAL_EXPEDITED and PRIVATE_EXPEDITED, an aio context of 8 events
   whose head and tail are not 0 (3 writes to /dev/null submitted, 1 event read), a second thread
   (glibc gives every thread a robust futex list); with "loginuid", /proc/self/loginuid 4242.
   Prints "ready", then on stdin lines:
     "state" -> "state subreaper S thp T oom O loginuid L membarrier 0xM aio nr N head H tail T
                 robust main R thread R2" where R and R2 say "same" when get_robust_list gives
                 what the thread had at start (and what glibc registered: its own struct pthread)
     "aio"   -> submits one more write and reads all events: "aio ok E" (E events, the ring's tail
                moved by one) or "aio bad ..."
     "exit N" -> exit(N) */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/aio_abi.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

struct ring { unsigned id, nr, head, tail, magic, compat, incompat, header; };

static aio_context_t ctx;
static int nullfd;
static char byte;
static void *heads[2];
static size_t lens[2];
static volatile int thread_result = -1;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int ask_thread, answered;

static void die(const char *what) { perror(what); exit(1); }

static int robust_same(int i) {
    void *head = NULL;
    size_t len = 0;
    if (syscall(SYS_get_robust_list, 0, &head, &len) != 0) return 0;
    return head == heads[i] && len == lens[i] && head != NULL;
}

static void *thread_main(void *arg) {
    (void)arg;
    syscall(SYS_get_robust_list, 0, &heads[1], &lens[1]);
    pthread_mutex_lock(&mu);
    answered = 1;
    pthread_cond_broadcast(&cv);
    for (;;) {
        while (!ask_thread) pthread_cond_wait(&cv, &mu);
        thread_result = robust_same(1);
        ask_thread = 0;
        answered = 1;
        pthread_cond_broadcast(&cv);
    }
    return NULL;
}

static void submit(int n) {
    struct iocb cb;
    memset(&cb, 0, sizeof cb);
    cb.aio_fildes = nullfd;
    cb.aio_lio_opcode = IOCB_CMD_PWRITE;
    cb.aio_buf = (unsigned long)&byte;
    cb.aio_nbytes = 1;
    struct iocb *list[1] = {&cb};
    for (int i = 0; i < n; i++)
        if (syscall(SYS_io_submit, ctx, 1, list) != 1) die("io_submit");
}

static int read_proc_int(const char *path) {
    char buf[32] = {0};
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -99999;
    if (read(fd, buf, sizeof buf - 1) < 0) buf[0] = 0;
    close(fd);
    return (int)strtol(buf, NULL, 10);
}

static void write_proc(const char *path, const char *text) {
    int fd = open(path, O_WRONLY);
    if (fd < 0 || write(fd, text, strlen(text)) < 0) die(path);
    close(fd);
}

static void state(void) {
    int sub = -1;
    prctl(PR_GET_CHILD_SUBREAPER, &sub);
    struct ring *r = (struct ring *)ctx;
    pthread_mutex_lock(&mu);
    ask_thread = 1;
    answered = 0;
    pthread_cond_broadcast(&cv);
    while (!answered) pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    printf("state subreaper %d thp %d oom %d loginuid %u membarrier %#x aio nr %u head %u tail %u "
           "robust main %s thread %s\n",
           sub, prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0), read_proc_int("/proc/self/oom_score_adj"),
           (unsigned)read_proc_int("/proc/self/loginuid"),
           (int)syscall(SYS_membarrier, 1 << 9, 0, 0), r->nr, r->head, r->tail,
           robust_same(0) ? "same" : "differs", thread_result == 1 ? "same" : "differs");
}

static void aio_check(void) {
    struct ring *r = (struct ring *)ctx;
    unsigned tail = r->tail;
    submit(1);
    if (r->tail != (tail + 1) % r->nr) {
        printf("aio bad tail %u after %u\n", r->tail, tail);
        return;
    }
    struct io_event ev[16];
    struct timespec zero = {0, 0};
    long n = syscall(SYS_io_getevents, ctx, 0, 16, ev, &zero);
    if (n < 0) printf("aio bad getevents %s\n", strerror(errno));
    else printf("aio ok %ld\n", n);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) die("PR_SET_CHILD_SUBREAPER");
    if (prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) != 0) die("PR_SET_THP_DISABLE");
    write_proc("/proc/self/oom_score_adj", "500");
    if (argc > 1 && strcmp(argv[1], "loginuid") == 0) write_proc("/proc/self/loginuid", "4242");
    if (syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED, 0, 0) != 0 ||
        syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) != 0)
        die("membarrier");
    nullfd = open("/dev/null", O_WRONLY);
    if (nullfd < 0) die("/dev/null");
    if (syscall(SYS_io_setup, 8, &ctx) != 0) die("io_setup");
    submit(3);
    struct io_event ev;
    if (syscall(SYS_io_getevents, ctx, 1, 1, &ev, NULL) != 1) die("io_getevents");
    syscall(SYS_get_robust_list, 0, &heads[0], &lens[0]);
    pthread_t t;
    if (pthread_create(&t, NULL, thread_main, NULL) != 0) die("pthread_create");
    pthread_mutex_lock(&mu);
    while (!answered) pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    printf("ready\n");
    char line[64];
    while (fgets(line, sizeof line, stdin)) {
        if (strncmp(line, "state", 5) == 0) state();
        else if (strncmp(line, "aio", 3) == 0) aio_check();
        else if (strncmp(line, "exit ", 5) == 0) exit(atoi(line + 5));
    }
    return 0;
}
