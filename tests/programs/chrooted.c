/* chrooted DIR: changes its root directory to DIR (holding a file
   "inside"), prints "ready"; on a line "check" on stdin prints "ok" when
   /inside is there with its content and DIR's own path is not (it is
   still in the chroot), else "FAIL <what>". */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 2 || chroot(argv[1]) || chdir("/"))
        return 2;
    setvbuf(stdout, NULL, _IONBF, 0);
    printf("ready\n");
    char line[32];
    if (!fgets(line, sizeof line, stdin) || strcmp(line, "check\n") != 0)
        return 2;
    char buf[64] = "";
    FILE *f = fopen("/inside", "r");
    struct stat st;
    if (!f || !fgets(buf, sizeof buf, f))
        printf("FAIL no /inside\n");
    else if (strcmp(buf, "inside the chroot\n") != 0)
        printf("FAIL /inside holds %s", buf);
    else if (stat(argv[1], &st) == 0)
        printf("FAIL %s is visible: not in the chroot\n", argv[1]);
    else
        printf("ok\n");
    return 0;
}
