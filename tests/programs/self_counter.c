/* Checkpoints itself mid-computation with kckpt_checkpoint_self():
 * `self_counter IMAGE [N]` prints `step I sum S` for I = 1..12 (S depends
 * on the heap, the stack, a static and the FP state), checkpoints after
 * step N (default 5), and prints `saved` (first run) or `resumed` (when
 * run again from the image) before the remaining steps, then `done S`.
 * `self_counter IMAGE N thread` starts a second thread first: the
 * checkpoint must then fail with EBUSY. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kckpt.h"

static unsigned long counter_static = 7;

static volatile int thread_started;

static void *idle(void *arg) {
    (void)arg;
    __atomic_store_n(&thread_started, 1, __ATOMIC_SEQ_CST);
    for (;;)
        pause();
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: self_counter IMAGE [N]\n");
        return 2;
    }
    int at = argc > 2 ? atoi(argv[2]) : 5;
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc > 3 && strcmp(argv[3], "thread") == 0) {
        pthread_t t;
        pthread_create(&t, NULL, idle, NULL);
        while (!__atomic_load_n(&thread_started, __ATOMIC_SEQ_CST))
            sched_yield();
    }
    double *heap = malloc(4096 * sizeof(double));
    double sum = 0.5;
    for (int i = 0; i < 4096; i++)
        heap[i] = i * 0.25;
    for (int i = 1; i <= 12; i++) {
        for (int j = 0; j < 4096; j++) {
            heap[j] = heap[j] * 1.0001 + i;
            sum += heap[j] / 4096.0;
        }
        counter_static = counter_static * 31 + i;
        printf("step %d sum %.6f static %lu\n", i, sum, counter_static);
        if (i == at) {
            int r = kckpt_checkpoint_self(argv[1]);
            if (r < 0) {
                printf("failed %s (%s)\n", strerror(errno), kckpt_last_error());
                return 1;
            }
            printf("%s\n", r == 1 ? "resumed" : "saved");
        }
    }
    printf("done %.6f\n", sum);
    free(heap);
    return 0;
}
