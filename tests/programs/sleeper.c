/* sleeper: prints "sleeping", sleeps 3 s in one nanosleep(2), prints "woke" and exits 0.
   A failed nanosleep prints "nanosleep failed: <errno>" and exits 1. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    printf("sleeping\n");
    struct timespec ts = {3, 0};
    if (nanosleep(&ts, NULL) != 0) {
        printf("nanosleep failed: %s\n", strerror(errno));
        return 1;
    }
    printf("woke\n");
    return 0;
}
