/* creds [plain]: per-thread credentials, for tests/tests/credentials.rs.
   Started as root, it sets (raw system calls: each changes only the calling thread):
     both threads: supplementary groups 27 100 4242, CAP_SYS_BOOT dropped from the bounding set;
     a second thread: gids 2001/2002/2003 fs 2004, uids 1001/1002/1003 fs 1004 (keeping its
       capabilities: SECBIT_KEEP_CAPS), then effective CAP_NET_BIND_SERVICE, permitted
       CAP_NET_BIND_SERVICE + CAP_NET_RAW, inheritable CAP_NET_BIND_SERVICE, and
       CAP_NET_BIND_SERVICE ambient;
     the main thread: securebits SECBIT_NOROOT, then gids 3000, uids 4000 (capabilities gone).
   With "plain" it changes nothing (any user).
   Prints "ready", then on "state" one line per thread (main first):
     "cred T uid R E S F gid R E S F groups G... inh X prm X eff X bnd X amb X secure N"
   from /proc/thread-self/status ("-" for no groups) and PR_GET_SECUREBITS; "exit N" exits
   with N. */
#define _GNU_SOURCE
#include <linux/capability.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int ask, done, plain;

static void die(const char *what) { perror(what); exit(1); }

static void field(FILE *out, const char *status, const char *key, const char *label) {
    const char *p = strstr(status, key);
    if (!p) { fprintf(out, " %s ?", label); return; }
    p += strlen(key);
    const char *end = strchr(p, '\n');
    char v[256];
    size_t n = end ? (size_t)(end - p) : strlen(p);
    if (n >= sizeof v) n = sizeof v - 1;
    memcpy(v, p, n);
    v[n] = 0;
    for (char *c = v; *c; c++) if (*c == '\t') *c = ' ';
    char *s = v;
    while (*s == ' ') s++;
    while (n > 0 && v[n - 1] == ' ') v[--n] = 0;
    fprintf(out, " %s %s", label, *s ? s : "-");
}

static void report(const char *who) {
    char status[4096] = {0};
    FILE *f = fopen("/proc/thread-self/status", "r");
    if (!f) die("status");
    size_t n = fread(status, 1, sizeof status - 1, f);
    status[n] = 0;
    fclose(f);
    char line[1024];
    FILE *out = fmemopen(line, sizeof line, "w");
    fprintf(out, "cred %s", who);
    field(out, status, "\nUid:", "uid");
    field(out, status, "\nGid:", "gid");
    field(out, status, "\nGroups:", "groups");
    field(out, status, "\nCapInh:", "inh");
    field(out, status, "\nCapPrm:", "prm");
    field(out, status, "\nCapEff:", "eff");
    field(out, status, "\nCapBnd:", "bnd");
    field(out, status, "\nCapAmb:", "amb");
    fprintf(out, " secure %d", prctl(PR_GET_SECUREBITS));
    fclose(out);
    printf("%s\n", line);
    fflush(stdout);
}

static void capset3(unsigned long long eff, unsigned long long prm, unsigned long long inh) {
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2] = {
        {(unsigned)eff, (unsigned)prm, (unsigned)inh},
        {(unsigned)(eff >> 32), (unsigned)(prm >> 32), (unsigned)(inh >> 32)},
    };
    if (syscall(SYS_capset, &h, d) != 0) die("capset");
}

static void *thread_main(void *arg) {
    (void)arg;
    if (!plain) {
        unsigned long long bind = 1ULL << CAP_NET_BIND_SERVICE, raw = 1ULL << CAP_NET_RAW;
        if (syscall(SYS_setresgid, 2001, 2002, 2003) || syscall(SYS_setfsgid, 2004) < 0) die("gid");
        if (prctl(PR_SET_KEEPCAPS, 1) != 0) die("keepcaps");
        if (syscall(SYS_setresuid, 1001, 1002, 1003)) die("uid");
        /* The change of uid cleared the effective set: CAP_SETUID back for setfsuid. */
        unsigned long long setuid_cap = 1ULL << CAP_SETUID;
        capset3(setuid_cap | bind | raw, setuid_cap | bind | raw, bind);
        syscall(SYS_setfsuid, 1004);
        if (syscall(SYS_setfsuid, -1) != 1004) die("fsuid");
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_NET_BIND_SERVICE, 0, 0)) die("ambient");
        capset3(bind, bind | raw, bind);
    }
    pthread_mutex_lock(&mu);
    done = 1;
    pthread_cond_broadcast(&cv);
    for (;;) {
        while (!ask) pthread_cond_wait(&cv, &mu);
        report("thread");
        ask = 0;
        done = 1;
        pthread_cond_broadcast(&cv);
    }
    return NULL;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    plain = argc > 1 && strcmp(argv[1], "plain") == 0;
    if (!plain) {
        unsigned groups[3] = {27, 100, 4242};
        if (syscall(SYS_setgroups, 3, groups) != 0) die("setgroups");
        if (prctl(PR_CAPBSET_DROP, CAP_SYS_BOOT) != 0) die("bounding set");
    }
    pthread_t t;
    if (pthread_create(&t, NULL, thread_main, NULL) != 0) die("pthread_create");
    pthread_mutex_lock(&mu);
    while (!done) pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    if (!plain) {
        if (prctl(PR_SET_SECUREBITS, 1) != 0) die("securebits");
        if (syscall(SYS_setresgid, 3000, 3000, 3000) || syscall(SYS_setresuid, 4000, 4000, 4000))
            die("main ids");
    }
    printf("ready\n");
    char line[64];
    while (fgets(line, sizeof line, stdin)) {
        if (strncmp(line, "state", 5) == 0) {
            report("main");
            pthread_mutex_lock(&mu);
            ask = 1;
            done = 0;
            pthread_cond_broadcast(&cv);
            while (!done) pthread_cond_wait(&cv, &mu);
            pthread_mutex_unlock(&mu);
        } else if (strncmp(line, "exit ", 5) == 0) {
            exit(atoi(line + 5));
        }
    }
    return 0;
}
