/* pipe_alone: holds a pipe read end whose writer (a child, reaped) is gone,
   with bytes still unread in it, and a pipe write end whose reader it
   closed. Prints "ready"; on a line "check" on stdin checks both ends:
   "ok read" when the read end yields exactly the bytes then end of file,
   "ok write" when a write fails with EPIPE; then "done". Otherwise
   "FAIL <what>". */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const char MSG[] = "left behind by a child that exited\n";

int main(void)
{
    int a[2], b[2];
    setvbuf(stdout, NULL, _IONBF, 0);
    signal(SIGPIPE, SIG_IGN);
    if (pipe(a) || pipe(b))
        return 2;
    pid_t pid = fork();
    if (pid == 0) {
        close(a[0]);
        _exit(write(a[1], MSG, strlen(MSG)) == (ssize_t)strlen(MSG) ? 0 : 1);
    }
    int status;
    close(a[1]);
    if (pid < 0 || waitpid(pid, &status, 0) != pid || status != 0)
        return 2;
    close(b[0]);
    printf("ready\n");
    char line[32];
    if (!fgets(line, sizeof line, stdin) || strcmp(line, "check\n") != 0)
        return 2;
    char buf[256];
    size_t got = 0;
    for (;;) {
        ssize_t n = read(a[0], buf + got, sizeof buf - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += n;
    }
    if (got == strlen(MSG) && memcmp(buf, MSG, got) == 0)
        printf("ok read\n");
    else
        printf("FAIL read: %zu bytes\n", got);
    if (write(b[1], "x", 1) < 0 && errno == EPIPE)
        printf("ok write\n");
    else
        printf("FAIL write: %s\n", strerror(errno));
    printf("done\n");
    return 0;
}
