/* capi/bench/calls.c - one C allocation call pattern in a loop, each in its own function so that
 * callgrind counts exactly the loop (--toggle-collect=run_<what>); see calls.sh.
 *
 * usage: calls pairs|calloc|realloc|memalign [SIZE [N]]
 *   pairs     malloc(SIZE) + free
 *   calloc    calloc(1, SIZE) + free
 *   realloc   malloc(SIZE), realloc to 2 * SIZE, free
 *   memalign  posix_memalign(64, SIZE) + free */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

__attribute__((noinline)) void run_pairs(size_t size, long n) {
    for (long i = 0; i < n; i++) {
        void *volatile p = malloc(size);
        free(p);
    }
}
__attribute__((noinline)) void run_calloc(size_t size, long n) {
    for (long i = 0; i < n; i++) {
        void *volatile p = calloc(1, size);
        free(p);
    }
}
__attribute__((noinline)) void run_realloc(size_t size, long n) {
    for (long i = 0; i < n; i++) {
        void *p = malloc(size);
        void *volatile q = realloc(p, size * 2);
        free(q);
    }
}
__attribute__((noinline)) void run_memalign(size_t size, long n) {
    for (long i = 0; i < n; i++) {
        void *p;
        if (posix_memalign(&p, 64, size) != 0) {
            fprintf(stderr, "calls: posix_memalign failed\n");
            exit(1);
        }
        void *volatile q = p;
        free(q);
    }
}
int main(int argc, char **argv) {
    const char *what = argc > 1 ? argv[1] : "pairs";
    size_t size = argc > 2 ? strtoul(argv[2], 0, 10) : 64;
    long n = argc > 3 ? strtol(argv[3], 0, 10) : 1000000;
    // Warm up: the first allocation sets up the heap.
    free(malloc(size));
    if (!strcmp(what, "pairs")) run_pairs(size, n);
    else if (!strcmp(what, "calloc")) run_calloc(size, n);
    else if (!strcmp(what, "realloc")) run_realloc(size, n);
    else if (!strcmp(what, "memalign")) run_memalign(size, n);
    else {
        fprintf(stderr, "calls: unknown pattern %s (pairs, calloc, realloc or memalign)\n", what);
        return 2;
    }
    return 0;
}
