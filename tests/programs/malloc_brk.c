/* malloc_brk: grows the heap with malloc (small blocks, served from brk) and sbrk, and re-checks
   every block it ever wrote. Every 100 ms: "round N blocks B brk 0x... ok" or "... BAD"
   (a corrupted block), "sbrk failed" / "malloc failed" when the heap cannot grow. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_BLOCKS 2048
#define BLOCK (16 * 1024)

static unsigned char *blocks[MAX_BLOCKS];
static unsigned char *raw[MAX_BLOCKS];

static unsigned char pattern(size_t block, size_t i) { return (unsigned char)(block * 31 + i * 7 + 1); }

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    for (unsigned long round = 1;; round++) {
        size_t b = (round - 1) % MAX_BLOCKS;
        if (round <= MAX_BLOCKS) {
            blocks[b] = malloc(BLOCK);
            if (!blocks[b]) { printf("malloc failed\n"); return 1; }
            for (size_t i = 0; i < BLOCK; i++) blocks[b][i] = pattern(b, i);
            void *p = sbrk(4096);
            if (p == (void *)-1) { printf("sbrk failed\n"); return 1; }
            raw[b] = p;
            memset(raw[b], (int)(b & 0xff), 4096);
        }
        size_t n = round < MAX_BLOCKS ? round : MAX_BLOCKS;
        int ok = 1;
        for (size_t k = 0; k < n && ok; k++) {
            for (size_t i = 0; i < BLOCK; i++)
                if (blocks[k][i] != pattern(k, i)) { ok = 0; break; }
            for (size_t i = 0; i < 4096; i++)
                if (raw[k][i] != (unsigned char)(k & 0xff)) { ok = 0; break; }
        }
        printf("round %lu blocks %zu brk %p %s\n", round, n, sbrk(0), ok ? "ok" : "BAD");
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}
