/* Shared by sysv_shm.c and sysv_ipc.c: one-line output, the two ways
   out (FAILED: a setup failure, exit 2; BAD: a check failed, exit 1), the
   IPC namespace's inode and the SysV key argument. Each program includes
   it once (static functions). */
#ifndef SYSV_COMMON_H
#define SYSV_COMMON_H
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <unistd.h>

/* One line on stdout with a single write (parent and child share it). */
static void say(const char *fmt, ...)
{
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        exit(3);
    if (n > (int)sizeof line - 2)
        n = sizeof line - 2;
    line[n++] = '\n';
    if (write(1, line, n) != n)
        exit(3);
}

static void failed(const char *what)
{
    say("FAILED %s: %s", what, strerror(errno));
    exit(2);
}

static void bad(const char *fmt, ...)
{
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    say("BAD %s", msg);
    exit(1);
}

static unsigned long ipc_ns(void)
{
    char link[64];
    ssize_t n = readlink("/proc/self/ns/ipc", link, sizeof link - 1);
    unsigned long ino = 0;
    if (n < 0)
        bad("readlink /proc/self/ns/ipc: %s", strerror(errno));
    link[n] = 0;
    if (sscanf(link, "ipc:[%lu]", &ino) != 1)
        bad("ipc namespace link %s", link);
    return ino;
}

static key_t parse_key(const char *s)
{
    char *end;
    errno = 0;
    long k = strtol(s, &end, 0);
    if (errno || *end || k == 0 || k != (key_t)k) {
        say("FAILED key %s: not a non-zero 32-bit number", s);
        exit(2);
    }
    return (key_t)k;
}

#endif
