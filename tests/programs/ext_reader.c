/* ext_reader: reads from descriptor 5 (a pipe the test feeds) and prints
   "got: <text>" for every chunk (text without the trailing newline), "eof"
   when the writer closes. `ext_reader tree`: a child does the reading (the
   parent closes its fd 5 and waits for it), so the pipe leads outside a
   process tree from one of its non-root processes. Prints "ready <pid>"
   once the reader is about to read. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int reader(void) {
    printf("ready %d\n", (int)getpid());
    char buf[4096];
    for (;;) {
        ssize_t n = read(5, buf, sizeof buf - 1);
        if (n == 0) { printf("eof\n"); return 0; }
        if (n < 0) {
            if (errno == EINTR) continue;
            printf("read failed: %s\n", strerror(errno));
            return 1;
        }
        buf[n] = 0;
        if (buf[n - 1] == '\n') buf[n - 1] = 0;
        printf("got: %s\n", buf);
    }
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc > 1 && strcmp(argv[1], "tree") == 0) {
        pid_t child = fork();
        if (child < 0) { perror("fork"); return 1; }
        if (child == 0) return reader();
        close(5);
        int status;
        while (waitpid(child, &status, 0) < 0 && errno == EINTR) {}
        return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
    }
    return reader();
}
