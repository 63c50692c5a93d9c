/* Seccomp test program (tests/tests/seccomp.rs). Modes:

   filters   no_new_privs; the main thread installs filter A (getppid ->
             EPERM, everything else allowed) and then starts a thread,
             which inherits A and adds filter B with
             SECCOMP_FILTER_FLAG_LOG (getsid -> EACCES). Prints "ready";
             each "check" line on stdin is answered with
             "main getppid E getsid E filters N thread getppid E getsid E
             filters N" (E: errno of the call, 0 if it worked; N:
             Seccomp_filters of /proc/thread-self/status). "tsync": the
             thread adds filter C (getpgid -> EPERM) with
             SECCOMP_FILTER_FLAG_TSYNC, which needs every thread's filters
             to be ancestors of its own (A shared, not a copy), and the
             answer is "tsync R main filters N" (R: what seccomp returned).
   nonnp     like filters, without no_new_privs (installing the filters
             needs CAP_SYS_ADMIN then).
   nomunmap  like filters, and filter A also makes munmap fail with EPERM
             (the restore tracer's munmap would fail).
   tree      no_new_privs, filter A, then a child that adds filter B (with
             SECCOMP_FILTER_FLAG_LOG); prints "ready"; each "check" is
             answered "parent getppid E getsid E filters N child getppid
             E getsid E filters N" (the child answers through a pipe).
   strict    prints "ready", enters strict mode, then with raw read and
             write only: each line read from stdin is answered "got
             LINE"; "quit" ends it with a raw exit(0).

   A setup failure prints "FAILED <what>: <error>" and exits 2. */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#if defined(__x86_64__)
#define ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define ARCH AUDIT_ARCH_AARCH64
#endif

static void fail(const char *what) {
    printf("FAILED %s: %s\n", what, strerror(errno));
    exit(2);
}

#define LOAD_NR BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr))
#define DENY(nr, err)                                      \
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 1),       \
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (err))

static void install(struct sock_filter *f, unsigned short n, unsigned flags) {
    struct sock_fprog prog = {.len = n, .filter = f};
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog) != 0) fail("seccomp");
}

static void filter_a(int no_munmap) {
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ARCH, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
        LOAD_NR,
        DENY(SYS_getppid, EPERM),
        DENY(no_munmap ? SYS_munmap : SYS_getppid, EPERM),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    install(f, sizeof f / sizeof f[0], 0);
}

static void filter_b(void) {
    struct sock_filter f[] = {
        LOAD_NR,
        DENY(SYS_getsid, EACCES),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    install(f, sizeof f / sizeof f[0], SECCOMP_FILTER_FLAG_LOG);
}

static int err_of(long r) { return r < 0 ? errno : 0; }

static int filters_count(void) {
    char buf[4096];
    FILE *f = fopen("/proc/thread-self/status", "r");
    int n = -1;
    if (!f) return -1;
    while (fgets(buf, sizeof buf, f))
        if (sscanf(buf, "Seccomp_filters: %d", &n) == 1) break;
    fclose(f);
    return n;
}

static void report(char *out, size_t len, const char *who) {
    errno = 0;
    int e1 = err_of(syscall(SYS_getppid));
    errno = 0;
    int e2 = err_of(syscall(SYS_getsid, 0));
    snprintf(out, len, "%s getppid %d getsid %d filters %d", who, e1, e2, filters_count());
}

static volatile int request, answered, tsync;
static char thread_line[256];

static void *thread_main(void *arg) {
    (void)arg;
    filter_b();
    for (;;) {
        if (request != answered) {
            if (tsync) {
                struct sock_filter f[] = {
                    LOAD_NR,
                    DENY(SYS_getpgid, EPERM),
                    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
                };
                struct sock_fprog prog = {.len = sizeof f / sizeof f[0], .filter = f};
                long r = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
                                 SECCOMP_FILTER_FLAG_TSYNC, &prog);
                snprintf(thread_line, sizeof thread_line, "tsync %ld", r);
            } else {
                report(thread_line, sizeof thread_line, "thread");
            }
            __atomic_store_n(&answered, request, __ATOMIC_SEQ_CST);
        }
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

static void strict_mode(void) {
    printf("ready\n");
    fflush(stdout);
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_STRICT) != 0) fail("PR_SET_SECCOMP");
    char line[256];
    for (;;) {
        size_t n = 0;
        for (;;) {
            char c;
            long r = syscall(SYS_read, 0, &c, 1);
            if (r <= 0) syscall(SYS_exit, 3);
            if (c == '\n') break;
            if (n < sizeof line - 1) line[n++] = c;
        }
        if (n == 4 && !memcmp(line, "quit", 4)) syscall(SYS_exit, 0);
        char out[300];
        memcpy(out, "got ", 4);
        memcpy(out + 4, line, n);
        out[4 + n] = '\n';
        syscall(SYS_write, 1, out, n + 5);
    }
}

static void tree_mode(void) {
    int down[2], up[2];
    char *line = NULL;
    size_t cap = 0;
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) fail("PR_SET_NO_NEW_PRIVS");
    if (pipe(down) || pipe(up)) fail("pipe");
    filter_a(0);
    pid_t child = fork();
    if (child < 0) fail("fork");
    if (child == 0) {
        /* Only the parent writes down: EOF here when it is gone. */
        close(down[1]);
        close(up[0]);
        filter_b();
        char c, out[256];
        while (read(down[0], &c, 1) == 1) {
            report(out, sizeof out, "child");
            if (write(up[1], out, strlen(out) + 1) < 0) _exit(1);
        }
        _exit(0);
    }
    close(down[0]);
    close(up[1]);
    printf("ready\n");
    while (getline(&line, &cap, stdin) > 0) {
        if (strncmp(line, "check", 5)) continue;
        char mine[256], theirs[256];
        size_t n = 0;
        report(mine, sizeof mine, "parent");
        if (write(down[1], "c", 1) != 1) fail("write");
        while (n < sizeof theirs - 1 && read(up[0], theirs + n, 1) == 1 && theirs[n]) n++;
        theirs[n] = 0;
        printf("%s %s\n", mine, theirs);
    }
    exit(0);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc < 2) {
        fprintf(stderr, "usage: seccomp_prog filters|nonnp|nomunmap|tree|strict\n");
        return 2;
    }
    if (!strcmp(argv[1], "strict")) strict_mode();
    if (!strcmp(argv[1], "tree")) tree_mode();
    int no_munmap = !strcmp(argv[1], "nomunmap");
    if (strcmp(argv[1], "nonnp") && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        fail("PR_SET_NO_NEW_PRIVS");
    /* Everything that may allocate or map before the filters. */
    char *line = NULL;
    size_t cap = 0;
    pthread_t t;
    filter_a(no_munmap);
    if (pthread_create(&t, NULL, thread_main, NULL) != 0) fail("pthread_create");
    /* The thread has its filter once it answered a first request. */
    __atomic_add_fetch(&request, 1, __ATOMIC_SEQ_CST);
    while (__atomic_load_n(&answered, __ATOMIC_SEQ_CST) != request) usleep(1000);
    printf("ready\n");
    while (getline(&line, &cap, stdin) > 0) {
        if (!strncmp(line, "tsync", 5)) {
            tsync = 1;
            int want = __atomic_add_fetch(&request, 1, __ATOMIC_SEQ_CST);
            while (__atomic_load_n(&answered, __ATOMIC_SEQ_CST) != want) usleep(1000);
            tsync = 0;
            printf("%s main filters %d\n", thread_line, filters_count());
            continue;
        }
        if (strncmp(line, "check", 5)) continue;
        char main_line[256];
        report(main_line, sizeof main_line, "main");
        int want = __atomic_add_fetch(&request, 1, __ATOMIC_SEQ_CST);
        while (__atomic_load_n(&answered, __ATOMIC_SEQ_CST) != want) usleep(1000);
        printf("%s %s\n", main_line, thread_line);
    }
    return 0;
}
