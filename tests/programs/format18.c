/* format18: the per-process records of format 1.8 in one small process,
 * for the mutation run (scripts/make-images.sh): a UDP socket with a
 * classic BPF filter that is locked (NT_KCKPT_SOCK_FILTERS), and a
 * seccomp filter installed with no_new_privs (NT_KCKPT_SECCOMP) that makes
 * getppid fail with EPERM and allows everything else. Prints "ready",
 * then "tick N" every 100 ms, N counting from 1, with getppid's errno.
 * Exits 2 on a setup failure. */
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef SO_LOCK_FILTER
#define SO_LOCK_FILTER 44
#endif

int main(void)
{
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct sock_filter keep_a[] = {
        BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 8),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 'A', 0, 1),
        BPF_STMT(BPF_RET | BPF_K, 0xffffffff),
        BPF_STMT(BPF_RET | BPF_K, 0),
    };
    struct sock_fprog sp = {4, keep_a};
    int one = 1;
    if (s < 0 || setsockopt(s, SOL_SOCKET, SO_ATTACH_FILTER, &sp, sizeof sp) ||
        setsockopt(s, SOL_SOCKET, SO_LOCK_FILTER, &one, sizeof one)) {
        perror("socket filter");
        return 2;
    }
    struct sock_filter no_getppid[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_getppid, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog fp = {4, no_getppid};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) ||
        syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fp)) {
        perror("seccomp");
        return 2;
    }
    printf("ready\n");
    fflush(stdout);
    for (long n = 1;; n++) {
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
        errno = 0;
        long r = syscall(SYS_getppid);
        printf("tick %ld getppid %ld errno %d\n", n, r, errno);
        fflush(stdout);
    }
}
