/* sysv_ipc MODE KEY: SysV semaphore sets and message queues for
   tests/tests/sysv_ipc.rs. The program checks itself before every tick
   line; anything wrong prints "BAD <what>" and exits 1. A setup failure
   prints "FAILED <what>: <error>" and exits 2. KEY is a SysV key the test
   picked at random (the objects are created with IPC_EXCL). INODE is that
   of /proc/self/ns/ipc: a restore in a new IPC namespace changes it.

   single KEY
     a semaphore set (KEY, 3 semaphores, 0640) with values 5, 0, 32767;
     a message queue (KEY, 0620) whose msg_qbytes it lowers to 4000,
     holding three messages: type 1 "alpha", type 7 with no text, type 3
     with 300 bytes of pattern; a private queue (IPC_PRIVATE, 0600)
     holding one message, type 9 "private". Prints "ready SEM MSG PRIV",
     then every 100 ms adds one to semaphore 1 (no SEM_UNDO) and prints
     "tick N ns INODE" after checking:
       - the values: 5, N, 32767 (GETALL);
       - semctl/msgctl IPC_STAT: keys, modes, owners = our uid and gid,
         3 semaphores, the queues' message counts (3, 1), byte counts
         (305, 7) and the keyed queue's msg_qbytes 4000.
     On SIGUSR1: receives every message of both queues (oldest first)
     and checks types and texts, then prints "received" and goes on
     ticking with empty queues.

   tree KEY
     a queue (KEY, 0600) and a set (KEY, 1 semaphore, 0600) shared by the
     parent and a forked child. Every 100 ms the child adds one to the
     semaphore and sends a message of type 1 whose text is its count;
     the parent receives them (blocking), checks that the counts follow
     on from one another and that the semaphore is at least the last
     count, and prints "tick N ns INODE child C". The child exits when its
     parent is gone. Prints "ready SEM MSG" first.

   big KEY
     in an IPC namespace whose msgmax and msgmnb were raised: a queue
     (KEY, 0600) with msg_qbytes 40000 holding one message of 20000
     bytes (type 2, a pattern). Prints "ready MSG", then "tick N ns
     INODE" every 100 ms after checking its IPC_STAT (1 message, 20000
     bytes, msg_qbytes 40000); on SIGUSR1 receives it, checks it, prints
     "received" and ticks on with the queue empty.

   touch KEY
     takes one from semaphore 0 of the existing set KEY and gives it back
     in one atomic semop (its value stays, its last pid is ours), prints
     "touched ID" and sleeps: a process outside the dump using the set. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/prctl.h>
#include <sys/sem.h>
#include <time.h>
#include <unistd.h>

#include "sysv_common.h"

static void nap(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

struct msg {
    long type;
    char text[512];
};

static void send(int q, long type, const void *text, size_t len)
{
    struct msg m = {.type = type};
    memcpy(m.text, text, len);
    if (msgsnd(q, &m, len, IPC_NOWAIT) != 0)
        failed("msgsnd");
}

static void check_perm(const char *what, struct ipc_perm *p, key_t key, unsigned mode)
{
    if (p->__key != key)
        bad("%s: key %#x, not %#x", what, (unsigned)p->__key, (unsigned)key);
    if ((p->mode & 0777) != mode)
        bad("%s: mode %o, not %o", what, p->mode & 0777, mode);
    if (p->uid != getuid() || p->gid != getgid())
        bad("%s: owner %u:%u, not %u:%u", what, p->uid, p->gid, getuid(), getgid());
}

static void check_queue(const char *what, int q, key_t key, unsigned mode, unsigned long qnum,
                        unsigned long cbytes, unsigned long qbytes)
{
    struct msqid_ds ds;
    if (msgctl(q, IPC_STAT, &ds) != 0)
        bad("%s: msgctl IPC_STAT: %s", what, strerror(errno));
    check_perm(what, &ds.msg_perm, key, mode);
    if (ds.msg_qnum != qnum || ds.__msg_cbytes != cbytes)
        bad("%s: %lu messages of %lu bytes, not %lu of %lu", what, (unsigned long)ds.msg_qnum,
            (unsigned long)ds.__msg_cbytes, qnum, cbytes);
    if (qbytes && ds.msg_qbytes != qbytes)
        bad("%s: msg_qbytes %lu, not %lu", what, (unsigned long)ds.msg_qbytes, qbytes);
}

static void receive(const char *what, int q, long type, const void *text, size_t len)
{
    struct msg m;
    ssize_t n = msgrcv(q, &m, sizeof m.text, 0, IPC_NOWAIT);
    if (n < 0)
        bad("%s: msgrcv: %s", what, strerror(errno));
    if (m.type != type || (size_t)n != len || memcmp(m.text, text, len))
        bad("%s: message of type %ld and %zd bytes, not type %ld and %zu", what, m.type, n,
            type, len);
}

static volatile sig_atomic_t usr1;

static void on_usr1(int sig)
{
    (void)sig;
    usr1 = 1;
}

static int single(key_t key)
{
    char pattern[300];
    for (int i = 0; i < 300; i++)
        pattern[i] = (char)(i * 7 + 1);
    int sem = semget(key, 3, IPC_CREAT | IPC_EXCL | 0640);
    if (sem < 0)
        failed("semget");
    unsigned short init[3] = {5, 0, 32767};
    if (semctl(sem, 0, SETALL, init) != 0)
        failed("SETALL");
    int q = msgget(key, IPC_CREAT | IPC_EXCL | 0620);
    if (q < 0)
        failed("msgget");
    struct msqid_ds ds;
    if (msgctl(q, IPC_STAT, &ds) != 0)
        failed("msgctl IPC_STAT");
    ds.msg_qbytes = 4000;
    if (msgctl(q, IPC_SET, &ds) != 0)
        failed("msgctl IPC_SET");
    send(q, 1, "alpha", 5);
    send(q, 7, "", 0);
    send(q, 3, pattern, sizeof pattern);
    int priv = msgget(IPC_PRIVATE, 0600);
    if (priv < 0)
        failed("msgget private");
    send(priv, 9, "private", 7);
    signal(SIGUSR1, on_usr1);
    say("ready %d %d %d", sem, q, priv);
    int received = 0;
    for (unsigned long n = 1;; n++) {
        struct sembuf op = {.sem_num = 1, .sem_op = 1, .sem_flg = 0};
        if (semop(sem, &op, 1) != 0)
            bad("semop: %s", strerror(errno));
        unsigned short v[3];
        if (semctl(sem, 0, GETALL, v) != 0)
            bad("GETALL: %s", strerror(errno));
        if (v[0] != 5 || v[1] != n || v[2] != 32767)
            bad("values %u %u %u, not 5 %lu 32767", v[0], v[1], v[2], n);
        struct semid_ds sds;
        union {
            struct semid_ds *buf;
        } arg = {&sds};
        if (semctl(sem, 0, IPC_STAT, arg) != 0)
            bad("semctl IPC_STAT: %s", strerror(errno));
        check_perm("set", &sds.sem_perm, key, 0640);
        if (sds.sem_nsems != 3)
            bad("set: %lu semaphores", (unsigned long)sds.sem_nsems);
        if (usr1 && !received) {
            receive("keyed queue 1st", q, 1, "alpha", 5);
            receive("keyed queue 2nd", q, 7, "", 0);
            receive("keyed queue 3rd", q, 3, pattern, sizeof pattern);
            receive("private queue", priv, 9, "private", 7);
            received = 1;
            say("received");
        }
        check_queue("keyed queue", q, key, 0620, received ? 0 : 3, received ? 0 : 305, 4000);
        check_queue("private queue", priv, IPC_PRIVATE, 0600, received ? 0 : 1,
                    received ? 0 : 7, 0);
        say("tick %lu ns %lu", n, ipc_ns());
        nap(100);
    }
    return 0;
}

static int tree(key_t key)
{
    int sem = semget(key, 1, IPC_CREAT | IPC_EXCL | 0600);
    if (sem < 0)
        failed("semget");
    int q = msgget(key, IPC_CREAT | IPC_EXCL | 0600);
    if (q < 0)
        failed("msgget");
    pid_t parent = getpid();
    pid_t child = fork();
    if (child < 0)
        failed("fork");
    if (child == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(0);
        for (unsigned long c = 1;; c++) {
            struct sembuf op = {.sem_num = 0, .sem_op = 1, .sem_flg = 0};
            if (semop(sem, &op, 1) != 0)
                bad("child semop: %s", strerror(errno));
            char text[32];
            int len = snprintf(text, sizeof text, "%lu", c);
            send(q, 1, text, len);
            nap(100);
        }
    }
    say("ready %d %d", sem, q);
    unsigned long last = 0;
    for (unsigned long n = 1;; n++) {
        struct msg m;
        ssize_t len;
        while ((len = msgrcv(q, &m, sizeof m.text - 1, 0, 0)) < 0 && errno == EINTR)
            ;
        if (len < 0)
            bad("msgrcv: %s", strerror(errno));
        m.text[len] = 0;
        unsigned long c = strtoul(m.text, NULL, 10);
        if (m.type != 1 || (last && c != last + 1))
            bad("message type %ld count %lu after %lu", m.type, c, last);
        last = c;
        int v = semctl(sem, 0, GETVAL);
        if (v < 0 || (unsigned long)v < c)
            bad("semaphore %d below the child's count %lu", v, c);
        say("tick %lu ns %lu child %lu", n, ipc_ns(), c);
    }
}

static int big(key_t key)
{
    static char text[20000], got[20001 + sizeof(long)];
    for (size_t i = 0; i < sizeof text; i++)
        text[i] = (char)(i * 13 + 5);
    int q = msgget(key, IPC_CREAT | IPC_EXCL | 0600);
    if (q < 0)
        failed("msgget");
    struct msqid_ds ds;
    if (msgctl(q, IPC_STAT, &ds) != 0)
        failed("msgctl IPC_STAT");
    ds.msg_qbytes = 40000;
    if (msgctl(q, IPC_SET, &ds) != 0)
        failed("msgctl IPC_SET");
    static char buf[sizeof(long) + sizeof text];
    long type = 2;
    memcpy(buf, &type, sizeof type);
    memcpy(buf + sizeof type, text, sizeof text);
    if (msgsnd(q, buf, sizeof text, IPC_NOWAIT) != 0)
        failed("msgsnd");
    signal(SIGUSR1, on_usr1);
    say("ready %d", q);
    int received = 0;
    for (unsigned long n = 1;; n++) {
        if (usr1 && !received) {
            ssize_t len = msgrcv(q, got, sizeof got - sizeof(long), 0, IPC_NOWAIT);
            if (len != (ssize_t)sizeof text || memcmp(got, &type, sizeof type) ||
                memcmp(got + sizeof type, text, sizeof text))
                bad("the big message came back as %zd bytes, or changed", len);
            received = 1;
            say("received");
        }
        check_queue("big queue", q, key, 0600, received ? 0 : 1, received ? 0 : sizeof text,
                    40000);
        say("tick %lu ns %lu", n, ipc_ns());
        nap(100);
    }
    return 0;
}

static int touch(key_t key)
{
    int sem = semget(key, 0, 0);
    if (sem < 0)
        failed("semget");
    struct sembuf ops[2] = {{.sem_num = 0, .sem_op = -1}, {.sem_num = 0, .sem_op = 1}};
    if (semop(sem, ops, 2) != 0)
        failed("semop");
    say("touched %d", sem);
    for (;;)
        pause();
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc != 3) {
        say("FAILED usage: sysv_ipc single|tree|big|touch KEY");
        return 2;
    }
    key_t key = parse_key(argv[2]);
    if (!strcmp(argv[1], "single"))
        return single(key);
    if (!strcmp(argv[1], "tree"))
        return tree(key);
    if (!strcmp(argv[1], "big"))
        return big(key);
    if (!strcmp(argv[1], "touch"))
        return touch(key);
    say("FAILED unknown mode %s", argv[1]);
    return 2;
}
