/* `chrooted DIR`: enters DIR as its root directory (chroot, then chdir
 * "/"), prints "ready PID", then for each stdin line prints the first
 * line of its "/inside" file, or "inside: ERRNO" when it cannot open it. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 2 || chroot(argv[1]) < 0 || chdir("/") < 0) {
        perror("chroot");
        return 1;
    }
    printf("ready %d\n", getpid());
    fflush(stdout);
    char line[256];
    while (fgets(line, sizeof line, stdin)) {
        FILE *f = fopen("/inside", "r");
        if (!f) {
            printf("inside: %s\n", strerror(errno));
        } else {
            char b[256] = "";
            if (!fgets(b, sizeof b, f))
                b[0] = 0;
            fclose(f);
            b[strcspn(b, "\n")] = 0;
            printf("inside: %s\n", b);
        }
        fflush(stdout);
    }
    return 0;
}
