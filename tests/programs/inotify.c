/* inotify: an inotify instance (O_NONBLOCK) watching a directory argv[1]
 * (IN_CREATE|IN_DELETE), a watch removed again (a hole in the wd numbers),
 * a file argv[1]/f (IN_MODIFY|IN_CLOSE_WRITE) and a file opened then
 * deleted (argv[1]/g, IN_CLOSE_WRITE|IN_ONESHOT, through the descriptor
 * that keeps it). With argv[2] = "unread" it leaves one event queued.
 * Prints "ready W1 W3 W4" and each fdinfo watch line ("watch wd:... mask:..."),
 * then on "go" (stdin) makes an event on every watch and prints what it
 * read: "events wd:mask ...". */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

static int ifd;

static void drain(void) {
    char buf[4096];
    while (read(ifd, buf, sizeof buf) > 0)
        ;
}

static void fdinfo(void) {
    char path[64], line[512];
    snprintf(path, sizeof path, "/proc/self/fdinfo/%d", ifd);
    FILE *f = fopen(path, "r");
    int n = 0;
    while (f && fgets(line, sizeof line, f)) {
        if (strncmp(line, "inotify wd:", 11) != 0)
            continue;
        unsigned wd, mask;
        char *m = strstr(line, "mask:");
        if (sscanf(line + 11, "%x", &wd) == 1 && m && sscanf(m + 5, "%x", &mask) == 1)
            n += printf(" %u:%x", wd, mask) > 0;
    }
    if (f)
        fclose(f);
    printf(" (%d watches)\n", n);
}

int main(int argc, char **argv) {
    char dir[4096], file[4200], gone[4200], other[4200], created[4200];
    snprintf(dir, sizeof dir, "%s", argv[1]);
    snprintf(file, sizeof file, "%s/f", dir);
    snprintf(gone, sizeof gone, "%s/g", dir);
    snprintf(other, sizeof other, "%s/other", dir);
    snprintf(created, sizeof created, "%s/new", dir);
    close(open(file, O_CREAT | O_WRONLY, 0644));
    close(open(other, O_CREAT | O_WRONLY, 0644));
    int gfd = open(gone, O_CREAT | O_RDWR, 0644);
    ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    int w1 = inotify_add_watch(ifd, dir, IN_CREATE | IN_DELETE);
    int w2 = inotify_add_watch(ifd, other, IN_OPEN);
    inotify_rm_watch(ifd, w2);
    int w3 = inotify_add_watch(ifd, file, IN_MODIFY | IN_CLOSE_WRITE);
    int w4 = inotify_add_watch(ifd, gone, IN_CLOSE_WRITE | IN_ONESHOT);
    unlink(gone);
    drain();
    if (argc > 2 && strcmp(argv[2], "unread") == 0)
        close(open(file, O_WRONLY));
    printf("ready %d %d %d\n", w1, w3, w4);
    printf("watches");
    fdinfo();
    fflush(stdout);
    char cmd[64];
    while (fgets(cmd, sizeof cmd, stdin)) {
        if (strncmp(cmd, "go", 2) != 0)
            continue;
        printf("watches");
        fdinfo();
        printf("flags %s\n", fcntl(ifd, F_GETFL) & O_NONBLOCK ? "nonblock" : "block");
        /* One event per watch. */
        close(open(created, O_CREAT | O_WRONLY, 0644)); /* w1: IN_CREATE */
        int f = open(file, O_WRONLY);
        if (write(f, "x", 1) != 1) /* w3: IN_MODIFY */
            perror("write");
        close(f); /* w3: IN_CLOSE_WRITE */
        close(gfd); /* w4: IN_CLOSE_WRITE, then IN_IGNORED (oneshot) */
        unlink(created); /* w1: IN_DELETE */
        usleep(100000);
        char buf[8192];
        ssize_t n = read(ifd, buf, sizeof buf);
        printf("events");
        for (ssize_t o = 0; o < n;) {
            struct inotify_event *e = (struct inotify_event *)(buf + o);
            printf(" %d:%x", e->wd, e->mask);
            o += sizeof *e + e->len;
        }
        printf("\n");
        fflush(stdout);
    }
    return 0;
}
