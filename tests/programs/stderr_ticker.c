/* `stderr_ticker NAME N`: writes "NAME I\n" for I = 0 .. N-1 to its stderr
 * with one write(2) each, every 20 ms, then exits 0. Two of them sharing
 * one open file description of a file (not O_APPEND) write their lines
 * one after the other, none over another. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 3)
        return 2;
    int n = atoi(argv[2]);
    for (int i = 0; i < n; i++) {
        char b[64];
        int len = snprintf(b, sizeof b, "%s %d\n", argv[1], i);
        if (write(2, b, len) != len)
            return 1;
        usleep(20000);
    }
    return 0;
}
