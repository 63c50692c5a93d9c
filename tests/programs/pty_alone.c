/* A process alone holding both ends of a pseudo-terminal pair (issue 9):
 * it leads its session and the slave is its controlling terminal; the
 * slave belongs to 1234:2345 with mode 0604, its window is 30x90, and
 * bytes are unread both ways: canonical input lines on the slave ("one",
 * "two", "three" ended by ^D, and one holding a literal ^D typed after
 * ^V) and the echo and output "out1\nout2" on the master.
 * `pty_alone tcp` also holds a bound TCP socket that does not listen, with
 * TCP_USER_TIMEOUT set (an option kckpt does not restore: a dump refuses it).
 * `pty_alone hangup` closes the master instead (the slave, hung up, was
 * its controlling terminal) and reports what a read and a write of the
 * slave return, and its session's terminal.
 *
 * Prints "ready PID", then on each stdin line "go" reports what it finds:
 * the master's unread bytes, each slave read, the slave's owner, mode,
 * window, whether it is the controlling terminal, and a line written to
 * the master after that as the slave reads it; then "end". */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

static void hex(const char *what, const char *b, ssize_t n) {
    printf("%s %zd ", what, n);
    for (ssize_t i = 0; i < n; i++)
        printf("%02x", (unsigned char)b[i]);
    printf("\n");
}

static void drain(const char *what, int fd, int each) {
    char b[4096];
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    for (int i = 0; i < 64; i++) {
        ssize_t n = read(fd, b, sizeof b);
        if (n < 0)
            break;
        hex(what, b, n);
        if (!each)
            break;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
}

int main(int argc, char **argv) {
    setsid();
    int m = open("/dev/ptmx", O_RDWR | O_NOCTTY);
    if (m < 0 || grantpt(m) < 0 || unlockpt(m) < 0) {
        perror("ptmx");
        return 1;
    }
    int s = open(ptsname(m), O_RDWR);
    if (s < 0 || fchown(s, 1234, 2345) < 0 || fchmod(s, 0604) < 0) {
        perror("slave");
        return 1;
    }
    struct winsize ws = {.ws_row = 30, .ws_col = 90};
    ioctl(m, TIOCSWINSZ, &ws);
    static const char in[] = "one\ntwo\nthree\004a\026\004b\n";
    static const char out[] = "out1\nout2";
    /* The echo reaches the master from a kernel work queue: let it come
     * before the output, so that every run has the same bytes. */
    if (write(m, in, sizeof in - 1) != sizeof in - 1)
        return 1;
    usleep(100000);
    if (write(s, out, sizeof out - 1) != sizeof out - 1)
        return 1;
    if (argc > 1 && !strcmp(argv[1], "tcp")) {
        int u = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        int ms = 1234;
        if (u < 0 || bind(u, (struct sockaddr *)&a, sizeof a) < 0 ||
            setsockopt(u, IPPROTO_TCP, TCP_USER_TIMEOUT, &ms, sizeof ms) < 0) {
            perror("tcp");
            return 1;
        }
    }
    if (argc > 1 && !strcmp(argv[1], "hangup")) {
        signal(SIGHUP, SIG_IGN);
        close(m);
        printf("ready %d\n", getpid());
        fflush(stdout);
        char line[64], b[64];
        while (fgets(line, sizeof line, stdin)) {
            errno = 0;
            ssize_t r = read(s, b, sizeof b);
            int re = errno;
            errno = 0;
            ssize_t w = write(s, "x", 1);
            int we = errno;
            int tty = open("/dev/tty", O_RDWR);
            printf("read %zd %d write %zd %d sid %d tty %d\nend\n", r, re, w, we, tcgetsid(s) == getpid(),
                   tty >= 0);
            fflush(stdout);
        }
        return 0;
    }
    printf("ready %d\n", getpid());
    fflush(stdout);
    char line[64];
    while (fgets(line, sizeof line, stdin)) {
        if (strcmp(line, "go\n"))
            continue;
        drain("master", m, 0);
        drain("line", s, 1);
        struct stat st;
        fstat(s, &st);
        struct winsize w = {0};
        ioctl(s, TIOCGWINSZ, &w);
        struct termios t;
        tcgetattr(s, &t);
        printf("owner %d %d mode %o rows %d cols %d ctty %d echo %d icanon %d\n", st.st_uid,
               st.st_gid, st.st_mode & 07777, w.ws_row, w.ws_col, tcgetsid(s) == getpid(),
               !!(t.c_lflag & ECHO), !!(t.c_lflag & ICANON));
        if (write(m, "ping\n", 5) != 5)
            perror("ping");
        char b[64];
        ssize_t n = read(s, b, sizeof b);
        hex("ping", b, n);
        printf("end\n");
        fflush(stdout);
    }
    return 0;
}
