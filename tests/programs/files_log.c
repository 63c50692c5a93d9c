/* files_log DIR: chdir(DIR), umask(027), then every 50 ms append "line N" to log.txt through an
   O_WRONLY|O_APPEND descriptor and read it back through a separate O_RDONLY descriptor (its own
   offset), write to /dev/null, read /dev/zero and /dev/urandom. Prints
   "n N cwd CWD umask UMASK pos POS ok" or "BAD <what>" when anything is off. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc < 2 || chdir(argv[1]) != 0) { printf("BAD chdir\n"); return 1; }
    umask(027);
    int w = open("log.txt", O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    int r = open("log.txt", O_RDONLY);
    int null = open("/dev/null", O_WRONLY);
    int zero = open("/dev/zero", O_RDONLY | O_CLOEXEC);
    int urnd = open("/dev/urandom", O_RDONLY);
    if (w < 0 || r < 0 || null < 0 || zero < 0 || urnd < 0) { printf("BAD open\n"); return 1; }
    long expect_pos = 0;
    for (long n = 1;; n++) {
        char line[64], back[64];
        int len = snprintf(line, sizeof line, "line %ld\n", n);
        /* Another writer (the test, or a seek) must not matter: O_APPEND. */
        lseek(w, 0, SEEK_SET);
        if (write(w, line, len) != len) { printf("BAD write %s\n", strerror(errno)); return 1; }
        ssize_t got = read(r, back, len);
        if (got != len || memcmp(line, back, len) != 0) {
            printf("BAD read %zd at n %ld\n", got, n);
            return 1;
        }
        expect_pos += len;
        off_t pos = lseek(r, 0, SEEK_CUR);
        if (pos != expect_pos) { printf("BAD pos %ld != %ld\n", (long)pos, expect_pos); return 1; }
        int fl = fcntl(w, F_GETFL), fdfl = fcntl(w, F_GETFD), rfdfl = fcntl(r, F_GETFD);
        if (!(fl & O_APPEND) || (fl & O_ACCMODE) != O_WRONLY || !(fdfl & FD_CLOEXEC) || (rfdfl & FD_CLOEXEC)) {
            printf("BAD flags %x %x %x\n", fl, fdfl, rfdfl);
            return 1;
        }
        char z[16], u[16];
        memset(z, 1, sizeof z);
        if (write(null, line, len) != len || read(zero, z, sizeof z) != sizeof z || read(urnd, u, sizeof u) != sizeof u) {
            printf("BAD devices\n");
            return 1;
        }
        for (int i = 0; i < 16; i++) if (z[i]) { printf("BAD zero\n"); return 1; }
        mode_t m = umask(027);
        char cwd[4096];
        if (!getcwd(cwd, sizeof cwd)) strcpy(cwd, "?");
        printf("n %ld cwd %s umask %03o pos %ld ok\n", n, cwd, (unsigned)m, (long)pos);
        usleep(50000);
    }
}
