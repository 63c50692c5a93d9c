/* pipe_read: blocks in read(2) on standard input (a pipe held by the test).
   Prints "ready", then for every chunk read "read: <text>" (text without the trailing newline),
   "eof" when the writer closes, "read failed: <errno>" on error. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    printf("ready\n");
    char buf[4096];
    for (;;) {
        ssize_t n = read(0, buf, sizeof buf - 1);
        if (n == 0) { printf("eof\n"); return 0; }
        if (n < 0) {
            if (errno == EINTR) continue;
            printf("read failed: %s\n", strerror(errno));
            return 1;
        }
        buf[n] = 0;
        if (n > 0 && buf[n - 1] == '\n') buf[n - 1] = 0;
        printf("read: %s\n", buf);
    }
}
