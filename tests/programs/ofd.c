/* ofd: open file descriptions that are not dups. A pipe whose read end and
 * write end are each opened a second time through /proc/self/fd (with
 * different O_NONBLOCK flags), a dup of the read end, a memfd opened a
 * second time at another offset, and a regular file opened twice (argv[1]).
 * On "go" (stdin) it prints one line describing every descriptor (access
 * mode, O_NONBLOCK, offset) and which pairs share an open file description
 * (kcmp KCMP_FILE); on "use" it checks that the second descriptions reach
 * the same objects (bytes written through one are read through the other)
 * and prints what it found. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

enum { P_R, P_W, P_R2, P_W2, P_DUP, M, M2, F, F2, N };
static int fds[N];
static const char *names[N] = {"pr", "pw", "pr2", "pw2", "prdup", "m", "m2", "f", "f2"};

static int reopen(int fd, int flags) {
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    int r = open(path, flags);
    if (r < 0) {
        perror(path);
        exit(2);
    }
    return r;
}

static void state(void) {
    printf("state");
    for (int i = 0; i < N; i++) {
        int fl = fcntl(fds[i], F_GETFL);
        long pos = (long)lseek(fds[i], 0, SEEK_CUR);
        printf(" %s:%s%s@%ld", names[i], (fl & O_ACCMODE) == O_RDONLY ? "r" : (fl & O_ACCMODE) == O_WRONLY ? "w" : "rw",
               fl & O_NONBLOCK ? "+nb" : "", pos);
    }
    printf(" share");
    for (int i = 0; i < N; i++)
        for (int j = i + 1; j < N; j++)
            if (syscall(SYS_kcmp, getpid(), getpid(), 0 /* KCMP_FILE */, fds[i], fds[j]) == 0)
                printf(" %s=%s", names[i], names[j]);
    printf("\n");
    fflush(stdout);
}

static void use(void) {
    char buf[64] = {0};
    /* Through the second write end, out of the first read end. */
    if (write(fds[P_W2], "via-pw2", 7) != 7)
        perror("write pw2");
    ssize_t n = read(fds[P_R], buf, sizeof buf - 1);
    printf("pipe %.*s", (int)(n > 0 ? n : 0), buf);
    /* The second read end is non-blocking and empty now. */
    n = read(fds[P_R2], buf, sizeof buf);
    printf(" pr2-empty %s", n < 0 ? "EAGAIN" : "data");
    /* Through m2 at its offset, read back through m. */
    if (pwrite(fds[M2], "XY", 2, 4) != 2)
        perror("pwrite m2");
    memset(buf, 0, sizeof buf);
    n = pread(fds[M], buf, 10, 0);
    printf(" memfd %.*s", (int)(n > 0 ? n : 0), buf);
    /* The file: written through f2, read through f. */
    if (pwrite(fds[F2], "ZZ", 2, 1) != 2)
        perror("pwrite f2");
    memset(buf, 0, sizeof buf);
    n = pread(fds[F], buf, 6, 0);
    printf(" file %.*s\n", (int)(n > 0 ? n : 0), buf);
    fflush(stdout);
}

int main(int argc, char **argv) {
    int p[2];
    if (argc < 2 || pipe(p) != 0)
        return 2;
    fds[P_R] = p[0];
    fds[P_W] = p[1];
    fds[P_R2] = reopen(p[0], O_RDONLY | O_NONBLOCK);
    fds[P_W2] = reopen(p[1], O_WRONLY);
    fcntl(p[1], F_SETFL, O_NONBLOCK);
    fds[P_DUP] = dup(p[0]);
    if (write(p[1], "queued", 6) != 6)
        return 2;
    fds[M] = memfd_create("ofd-mem", 0);
    if (fds[M] < 0 || write(fds[M], "0123456789", 10) != 10)
        return 2;
    fds[M2] = reopen(fds[M], O_RDWR);
    lseek(fds[M2], 3, SEEK_SET);
    lseek(fds[M], 7, SEEK_SET);
    fds[F] = open(argv[1], O_RDWR);
    fds[F2] = open(argv[1], O_RDWR);
    if (fds[F] < 0 || fds[F2] < 0)
        return 2;
    lseek(fds[F], 2, SEEK_SET);
    lseek(fds[F2], 4, SEEK_SET);
    printf("ready\n");
    fflush(stdout);
    char cmd[32];
    while (fgets(cmd, sizeof cmd, stdin)) {
        if (strcmp(cmd, "go\n") == 0)
            state();
        else if (strcmp(cmd, "use\n") == 0)
            use();
    }
    return 0;
}
