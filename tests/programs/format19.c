/* format19: the tree records of format 1.9 in one small tree, for the
 * mutation run (scripts/make-images.sh): the root holds a memfd its child
 * "a" opened again on its own through /proc/ROOT/fd/N (an ADOPTED slot),
 * and its children "g" and "m" are in the process group of a child that
 * exited and was reaped (a GONE record). The root prints "ready" once
 * all are set up, then "tick N" every 100 ms with the memfd's size (a
 * write of "a" through its own description grows it by one byte per
 * tick). Exits 2 on a setup failure. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void nap(void)
{
    struct timespec ts = {0, 100 * 1000 * 1000};
    nanosleep(&ts, NULL);
}

int main(void)
{
    int up[2];
    int memfd = memfd_create("format19", 0);
    if (memfd < 0 || pipe(up)) {
        perror("setup");
        return 2;
    }
    pid_t a = fork();
    if (a == 0) {
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/fd/%d", (int)getppid(), memfd);
        int own = open(path, O_WRONLY | O_APPEND);
        if (own < 0 || write(up[1], "a", 1) != 1)
            _exit(2);
        for (;;) {
            nap();
            if (write(own, "x", 1) != 1)
                _exit(3);
        }
    }
    int go[2];
    if (pipe(go)) {
        perror("pipe");
        return 2;
    }
    pid_t leader = fork();
    if (leader == 0) {
        setpgid(0, 0);
        read(go[0], &go[1], 1); /* until its members are in its group */
        _exit(0);
    }
    setpgid(leader, leader);
    char c;
    if (read(up[0], &c, 1) != 1) {
        perror("child a");
        return 2;
    }
    for (int i = 0; i < 2; i++) {
        pid_t m = fork();
        if (m == 0) {
            setpgid(0, leader);
            for (;;)
                pause();
        }
        if (setpgid(m, leader) && getpgid(m) != leader) {
            perror("setpgid");
            return 2;
        }
    }
    if (write(go[1], "g", 1) != 1 || waitpid(leader, NULL, 0) != leader) {
        perror("leader");
        return 2;
    }
    printf("ready\n");
    fflush(stdout);
    for (long n = 1;; n++) {
        nap();
        struct stat st;
        fstat(memfd, &st);
        printf("tick %ld size %ld\n", n, (long)st.st_size);
        fflush(stdout);
    }
}
