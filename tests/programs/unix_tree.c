/* Unix sockets between the processes of a tree, and connections a
 * listener has not accepted yet (format 1.7, tests/tests/unix_tree.rs).
 *
 * `unix_tree pair stream|dgram|seqpacket`: the parent makes a socketpair
 * and forks; each keeps one end and queues two messages for the other
 * (not read before the dump).
 * `unix_tree accept PATH`: the parent listens on PATH; its child connects
 * and sends "hello"; the parent accepts and sends "welcome"; nothing read.
 * `unix_tree pending-self ABSTRACT`: one process, a listener on
 * @ABSTRACT and two clients bound to @ABSTRACT-1 and @ABSTRACT-2 whose
 * connections are not accepted.
 * `unix_tree pending-child ABSTRACT`: the parent listens on @ABSTRACT,
 * its child connects; not accepted.
 * `unix_tree pending-data ABSTRACT`: as pending-self with one client that
 * sent 5 bytes into its connection (refused at dump).
 * `unix_tree dgram-child PATH`: the parent binds a datagram socket to PATH;
 * its child connects a datagram socket to it and sends "m1" (not read).
 * `unix_tree accept-siblings NAME` (NAME a path, or @ and an abstract
 * name): the parent forks "a", which listens on NAME and accepts the
 * connection of "b", forked next; a sends "to-b", b sends "to-a"; the
 * parent holds neither end.
 * `unix_tree siblings stream`: the parent makes a socketpair and forks
 * two children "a" and "b" in a process group of their own (led by a),
 * each keeping one end; the parent keeps none (dumped with --pgid: no
 * process of the dump is an ancestor of both; refused).
 *
 * Each process prints "NAME PID"; the parent prints "ready" and reads a
 * line from stdin. Then every process checks what it had queued, the
 * order of the waiting connections, that the connection still carries
 * data both ways; prints "ok NAME" or "FAIL NAME why"; the parent reaps
 * its child and prints "done". */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *who = "parent";
static int failed;

static void fail(const char *why)
{
    if (!failed)
        printf("FAIL %s %s (errno %d)\n", who, why, errno);
    fflush(stdout);
    failed = 1;
}

static int type_of(const char *t)
{
    if (!strcmp(t, "dgram"))
        return SOCK_DGRAM;
    if (!strcmp(t, "seqpacket"))
        return SOCK_SEQPACKET;
    return SOCK_STREAM;
}

static socklen_t addr(struct sockaddr_un *a, const char *name, int abstract)
{
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    size_t n = strlen(name);
    if (abstract) {
        memcpy(a->sun_path + 1, name, n);
        return offsetof(struct sockaddr_un, sun_path) + 1 + n;
    }
    memcpy(a->sun_path, name, n);
    return offsetof(struct sockaddr_un, sun_path) + n + 1;
}

/* Read exactly `want` (stream) or one message (others) and compare. */
static void expect(int fd, int type, const char *want)
{
    char buf[256] = {0};
    size_t n = strlen(want), got = 0;
    if (type == SOCK_STREAM) {
        while (got < n) {
            ssize_t r = read(fd, buf + got, n - got);
            if (r <= 0) {
                fail("short read");
                return;
            }
            got += (size_t)r;
        }
    } else {
        ssize_t r = recv(fd, buf, sizeof buf - 1, 0);
        if (r < 0) {
            fail("recv");
            return;
        }
        got = (size_t)r;
    }
    if (got != n || memcmp(buf, want, n)) {
        char why[400];
        snprintf(why, sizeof why, "got '%.*s' instead of '%s'", (int)got, buf, want);
        fail(why);
    }
}

static void say(int fd, const char *s)
{
    if (send(fd, s, strlen(s), 0) != (ssize_t)strlen(s))
        fail("send");
}

static void wait_go(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    int sig;
    sigwait(&set, &sig);
}

static void ready_and_wait_check(void)
{
    printf("ready\n");
    fflush(stdout);
    char line[32];
    if (!fgets(line, sizeof line, stdin) || strcmp(line, "check\n")) {
        fail("no check line");
        exit(2);
    }
}

static int finish(pid_t child)
{
    int status = 0;
    if (child > 0) {
        kill(child, SIGUSR1);
        if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status))
            fail("the child failed");
    }
    if (!failed)
        printf("ok %s\n", who);
    printf("done\n");
    fflush(stdout);
    return failed;
}

/* The peer name of accepted socket `fd` is abstract `name`. */
static void expect_peer(int fd, const char *name)
{
    struct sockaddr_un a, want;
    socklen_t len = sizeof a, wlen = addr(&want, name, 1);
    if (getpeername(fd, (struct sockaddr *)&a, &len) || len != wlen || memcmp(&a, &want, len))
        fail("accepted in the wrong order (peer name)");
}

int main(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    const char *mode = argv[1], *arg = argv[2];
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigprocmask(SIG_BLOCK, &set, NULL);
    int sync[2];
    if (pipe(sync))
        return 2;
    struct sockaddr_un a;
    char n1[120], n2[120];
    snprintf(n1, sizeof n1, "%s-1", arg);
    snprintf(n2, sizeof n2, "%s-2", arg);

    if (!strcmp(mode, "pair")) {
        int type = type_of(arg), s[2];
        if (socketpair(AF_UNIX, type, 0, s))
            return 2;
        pid_t child = fork();
        if (child == 0) {
            who = "child";
            close(s[0]);
            close(sync[0]);
            say(s[1], "c2p-1");
            say(s[1], "c2p-2");
            printf("child %d\n", getpid());
            fflush(stdout);
            if (write(sync[1], "x", 1) != 1)
                return 2;
            close(sync[1]);
            wait_go(); /* the parent's check */
            expect(s[1], type, "p2c-1");
            expect(s[1], type, "p2c-2");
            say(s[1], "c2p-after");
            expect(s[1], type, "p2c-after");
            if (!failed)
                printf("ok child\n");
            fflush(stdout);
            wait_go();
            return failed;
        }
        close(s[1]);
        close(sync[1]);
        say(s[0], "p2c-1");
        say(s[0], "p2c-2");
        char c;
        if (read(sync[0], &c, 1) != 1)
            return 2;
        close(sync[0]);
        printf("parent %d\n", getpid());
        ready_and_wait_check();
        expect(s[0], type, "c2p-1");
        expect(s[0], type, "c2p-2");
        kill(child, SIGUSR1);
        say(s[0], "p2c-after");
        expect(s[0], type, "c2p-after");
        return finish(child);
    }

    if (!strcmp(mode, "dgram-child")) {
        unlink(arg);
        int srv = socket(AF_UNIX, SOCK_DGRAM, 0);
        socklen_t len = addr(&a, arg, 0);
        if (bind(srv, (struct sockaddr *)&a, len))
            return 2;
        pid_t child = fork();
        if (child == 0) {
            who = "child";
            close(srv);
            close(sync[0]);
            int c = socket(AF_UNIX, SOCK_DGRAM, 0);
            if (connect(c, (struct sockaddr *)&a, len))
                return 2;
            say(c, "m1");
            printf("child %d\n", getpid());
            fflush(stdout);
            if (write(sync[1], "x", 1) != 1)
                return 2;
            close(sync[1]);
            wait_go();
            say(c, "m2"); /* still connected: no address given */
            if (!failed)
                printf("ok child\n");
            fflush(stdout);
            wait_go();
            return failed;
        }
        close(sync[1]);
        char c;
        if (read(sync[0], &c, 1) != 1)
            return 2;
        close(sync[0]);
        printf("parent %d\n", getpid());
        ready_and_wait_check();
        expect(srv, SOCK_DGRAM, "m1");
        kill(child, SIGUSR1);
        expect(srv, SOCK_DGRAM, "m2");
        int r = finish(child);
        unlink(arg);
        return r;
    }

    if (!strcmp(mode, "accept-siblings")) {
        int abstract = arg[0] == '@';
        socklen_t len = addr(&a, arg + abstract, abstract);
        if (!abstract)
            unlink(arg);
        int l = socket(AF_UNIX, SOCK_STREAM, 0);
        if (bind(l, (struct sockaddr *)&a, len) || listen(l, 4))
            return 2;
        pid_t kids[2];
        kids[0] = fork();
        if (kids[0] == 0) {
            who = "a";
            close(sync[0]);
            int s = accept(l, NULL, NULL);
            if (s < 0)
                return 2;
            say(s, "to-b");
            printf("a %d\n", getpid());
            fflush(stdout);
            if (write(sync[1], "x", 1) != 1)
                return 2;
            close(sync[1]);
            wait_go();
            expect(s, SOCK_STREAM, "to-a");
            say(s, "again-b");
            if (!failed)
                printf("ok a\n");
            fflush(stdout);
            return failed;
        }
        close(l);
        kids[1] = fork();
        if (kids[1] == 0) {
            who = "b";
            close(sync[0]);
            int c = socket(AF_UNIX, SOCK_STREAM, 0);
            if (connect(c, (struct sockaddr *)&a, len))
                return 2;
            say(c, "to-a");
            printf("b %d\n", getpid());
            fflush(stdout);
            if (write(sync[1], "x", 1) != 1)
                return 2;
            close(sync[1]);
            wait_go();
            expect(c, SOCK_STREAM, "to-b");
            expect(c, SOCK_STREAM, "again-b");
            if (!failed)
                printf("ok b\n");
            fflush(stdout);
            return failed;
        }
        close(sync[1]);
        char c;
        if (read(sync[0], &c, 1) != 1 || read(sync[0], &c, 1) != 1)
            return 2;
        close(sync[0]);
        printf("parent %d\n", getpid());
        ready_and_wait_check();
        for (int i = 0; i < 2; i++)
            kill(kids[i], SIGUSR1);
        for (int i = 0; i < 2; i++) {
            int status = 0;
            if (waitpid(kids[i], &status, 0) != kids[i] || !WIFEXITED(status) || WEXITSTATUS(status))
                fail("a child failed");
        }
        if (!abstract)
            unlink(arg);
        return finish(0);
    }

    if (!strcmp(mode, "siblings")) {
        int s[2];
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, s))
            return 2;
        pid_t kids[2];
        for (int i = 0; i < 2; i++) {
            kids[i] = fork();
            if (kids[i] == 0) {
                setpgid(0, i ? kids[0] : 0);
                close(s[1 - i]);
                for (;;)
                    pause();
            }
            setpgid(kids[i], kids[0]);
        }
        close(s[0]);
        close(s[1]);
        printf("a %d\nb %d\n", kids[0], kids[1]);
        printf("parent %d\n", getpid());
        ready_and_wait_check();
        kill(kids[0], SIGKILL);
        kill(kids[1], SIGKILL);
        return 0;
    }

    if (!strcmp(mode, "accept")) {
        unlink(arg);
        int l = socket(AF_UNIX, SOCK_STREAM, 0);
        socklen_t len = addr(&a, arg, 0);
        if (bind(l, (struct sockaddr *)&a, len) || listen(l, 4))
            return 2;
        pid_t child = fork();
        if (child == 0) {
            who = "child";
            close(l);
            close(sync[0]);
            int c = socket(AF_UNIX, SOCK_STREAM, 0);
            if (connect(c, (struct sockaddr *)&a, len))
                return 2;
            say(c, "hello");
            printf("child %d\n", getpid());
            fflush(stdout);
            if (write(sync[1], "x", 1) != 1)
                return 2;
            close(sync[1]);
            wait_go();
            struct sockaddr_un p;
            socklen_t plen = sizeof p;
            if (getpeername(c, (struct sockaddr *)&p, &plen) || strcmp(p.sun_path, arg))
                fail("the client's peer name");
            expect(c, SOCK_STREAM, "welcome");
            say(c, "again");
            expect(c, SOCK_STREAM, "bye");
            if (!failed)
                printf("ok child\n");
            fflush(stdout);
            wait_go();
            return failed;
        }
        close(sync[1]);
        char c;
        if (read(sync[0], &c, 1) != 1)
            return 2;
        close(sync[0]);
        int s = accept(l, NULL, NULL);
        if (s < 0)
            return 2;
        say(s, "welcome");
        printf("parent %d\n", getpid());
        ready_and_wait_check();
        struct sockaddr_un me;
        socklen_t mlen = sizeof me;
        if (getsockname(s, (struct sockaddr *)&me, &mlen) || strcmp(me.sun_path, arg))
            fail("the accepted socket's name");
        expect(s, SOCK_STREAM, "hello");
        kill(child, SIGUSR1);
        expect(s, SOCK_STREAM, "again");
        say(s, "bye");
        int r = finish(child);
        unlink(arg);
        return r;
    }

    if (!strcmp(mode, "pending-self") || !strcmp(mode, "pending-data")) {
        close(sync[0]);
        close(sync[1]);
        int l = socket(AF_UNIX, SOCK_SEQPACKET, 0);
        socklen_t len = addr(&a, arg, 1);
        if (bind(l, (struct sockaddr *)&a, len) || listen(l, 4))
            return 2;
        int c[2];
        const char *names[2] = {n1, n2};
        /* Connected in the order 2, 1: accept returns client 2 first. */
        for (int i = 1; i >= 0; i--) {
            struct sockaddr_un b;
            socklen_t blen = addr(&b, names[i], 1);
            c[i] = socket(AF_UNIX, SOCK_SEQPACKET, 0);
            if (bind(c[i], (struct sockaddr *)&b, blen) || connect(c[i], (struct sockaddr *)&a, len))
                return 2;
        }
        if (!strcmp(mode, "pending-data"))
            say(c[1], "early");
        printf("parent %d\n", getpid());
        ready_and_wait_check();
        int first = accept(l, NULL, NULL), second = accept(l, NULL, NULL);
        if (first < 0 || second < 0) {
            fail("accept");
            return finish(0);
        }
        expect_peer(first, n2);
        expect_peer(second, n1);
        say(c[0], "one");
        say(c[1], "two");
        expect(second, SOCK_SEQPACKET, "one");
        expect(first, SOCK_SEQPACKET, "two");
        say(first, "back");
        expect(c[1], SOCK_SEQPACKET, "back");
        return finish(0);
    }

    if (!strcmp(mode, "pending-child")) {
        int l = socket(AF_UNIX, SOCK_STREAM, 0);
        socklen_t len = addr(&a, arg, 1);
        if (bind(l, (struct sockaddr *)&a, len) || listen(l, 4))
            return 2;
        pid_t child = fork();
        if (child == 0) {
            who = "child";
            close(l);
            close(sync[0]);
            int c = socket(AF_UNIX, SOCK_STREAM, 0);
            if (connect(c, (struct sockaddr *)&a, len))
                return 2;
            printf("child %d\n", getpid());
            fflush(stdout);
            if (write(sync[1], "x", 1) != 1)
                return 2;
            close(sync[1]);
            wait_go();
            say(c, "knock");
            expect(c, SOCK_STREAM, "come in");
            if (!failed)
                printf("ok child\n");
            fflush(stdout);
            wait_go();
            return failed;
        }
        close(sync[1]);
        char c;
        if (read(sync[0], &c, 1) != 1)
            return 2;
        close(sync[0]);
        printf("parent %d\n", getpid());
        ready_and_wait_check();
        int s = accept(l, NULL, NULL);
        if (s < 0) {
            fail("accept");
            return finish(child);
        }
        kill(child, SIGUSR1);
        expect(s, SOCK_STREAM, "knock");
        say(s, "come in");
        return finish(child);
    }
    return 2;
}
