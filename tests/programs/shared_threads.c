/* shared_threads: a MAP_SHARED anonymous page shared by two threads. The
 * first bumps c[0]; the second copies c[0] into c[1] whenever it changes.
 * main prints "shared A B" every 100 ms (B follows A, never ahead of it). */
#include <stdio.h>
#include <pthread.h>
#include <sys/mman.h>
#include <time.h>
static volatile unsigned long *c;
static void nap(long ns) { struct timespec ts = {0, ns}; nanosleep(&ts, NULL); }
static void *bump(void *a) { (void)a; for (;;) { __atomic_add_fetch(&c[0], 1, __ATOMIC_SEQ_CST); nap(1000 * 1000); } return 0; }
static void *follow(void *a) {
    (void)a;
    for (;;) {
        unsigned long v = __atomic_load_n(&c[0], __ATOMIC_SEQ_CST);
        if (v != c[1]) __atomic_store_n(&c[1], v, __ATOMIC_SEQ_CST);
        nap(500 * 1000);
    }
    return 0;
}
int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    c = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (c == MAP_FAILED) return 1;
    pthread_t a, b;
    pthread_create(&a, 0, bump, 0);
    pthread_create(&b, 0, follow, 0);
    for (;;) {
        unsigned long y = __atomic_load_n(&c[1], __ATOMIC_SEQ_CST);
        unsigned long x = __atomic_load_n(&c[0], __ATOMIC_SEQ_CST);
        printf("shared %lu %lu\n", x, y);
        nap(100 * 1000 * 1000);
    }
}
