/*
 * abi_test.c - every function exported by libtemporal_slab.so, with its edge cases.
 *
 * Built by capi/tests/abi.rs with `cc -O1 -fno-builtin ... -ltemporal_slab -pthread` (so the
 * compiler cannot fold or drop allocator calls) and run linked, and again under LD_PRELOAD.
 * Prints one line per failed check and exits 1 if any failed; prints a summary line on success.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "temporal_slab.h"

/* The realloc tests use a block after a *failed* realloc, which C allows; GCC's heuristic
 * cannot tell a failed call from a successful one. */
#pragma GCC diagnostic ignored "-Wuse-after-free"

static atomic_int checks;
static atomic_int failures;

#define CHECK(cond, ...)                                                                     \
    do {                                                                                     \
        atomic_fetch_add(&checks, 1);                                                        \
        if (!(cond)) {                                                                       \
            atomic_fetch_add(&failures, 1);                                                  \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                  \
            fprintf(stderr, __VA_ARGS__);                                                    \
            fprintf(stderr, "\n");                                                           \
        }                                                                                    \
    } while (0)

/* Sizes come through a volatile so that the compiler sees no constant to warn about or fold. */
static volatile size_t v_size_max = SIZE_MAX;
static size_t huge(void) { return v_size_max; }

static int aligned(const void *p, size_t a) { return ((uintptr_t)p & (a - 1)) == 0; }

static void fill(unsigned char *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(seed + i * 7);
}

static int holds(const unsigned char *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != (unsigned char)(seed + i * 7)) return 0;
    return 1;
}

static int all_zero(const unsigned char *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (p[i]) return 0;
    return 1;
}

/* --- before main: the allocator must work from constructors -------------------------------- */

static void *early_block;
__attribute__((constructor(101))) static void allocate_before_main(void) {
    early_block = malloc(100);
    if (early_block) memset(early_block, 1, 100);
}

/* --- malloc / free ---------------------------------------------------------------------------- */

static void test_malloc(void) {
    void *a = malloc(0), *b = malloc(0);
    CHECK(a && b && a != b, "malloc(0) gave %p and %p", a, b);
    CHECK(malloc_usable_size(a) >= 1, "usable size of malloc(0) is %zu", malloc_usable_size(a));
    free(a);
    free(b);
    free(NULL);
    CHECK(malloc_usable_size(NULL) == 0, "malloc_usable_size(NULL) is %zu", malloc_usable_size(NULL));
    CHECK(early_block != NULL, "malloc in a constructor failed");
    free(early_block);

    static const size_t sizes[] = {1, 7, 8, 9, 15, 16, 17, 24, 31, 32, 48, 100, 255, 256, 1000, 4095, 4096,
                                   4097, 10000, 32767, 32768, 32769, 65536, 100000, 1 << 20, (1 << 22) + 3};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        unsigned char *p = malloc(n);
        CHECK(p != NULL, "malloc(%zu) failed", n);
        if (!p) continue;
        size_t want = n >= 16 ? 16 : 8;
        CHECK(aligned(p, want), "malloc(%zu) = %p is not %zu-aligned", n, (void *)p, want);
        size_t u = malloc_usable_size(p);
        CHECK(u >= n, "malloc_usable_size %zu < requested %zu", u, n);
        fill(p, u, (unsigned)n); /* every usable byte is ours to write */
        CHECK(holds(p, u, (unsigned)n), "malloc(%zu) did not keep its bytes", n);
        free(p);
    }

    errno = 0;
    CHECK(malloc(huge()) == NULL && errno == ENOMEM, "malloc(SIZE_MAX): errno %d", errno);
    errno = 0;
    CHECK(malloc(huge() / 2 + 1) == NULL && errno == ENOMEM, "malloc(PTRDIFF_MAX + 1): errno %d", errno);
    errno = 0;
    CHECK(malloc(huge() - 4095) == NULL && errno == ENOMEM, "malloc(SIZE_MAX - 4095): errno %d", errno);
}

/* --- calloc ------------------------------------------------------------------------------------ */

static void test_calloc(void) {
    errno = 0;
    CHECK(calloc(huge() / 2, 3) == NULL && errno == ENOMEM, "calloc overflow: errno %d", errno);
    errno = 0;
    CHECK(calloc(3, huge() / 2) == NULL && errno == ENOMEM, "calloc overflow: errno %d", errno);
    errno = 0;
    CHECK(calloc(huge(), huge()) == NULL && errno == ENOMEM, "calloc overflow: errno %d", errno);
    void *z = calloc(0, 0);
    CHECK(z != NULL, "calloc(0, 0) returned NULL");
    free(z);

    static const size_t sizes[] = {1, 16, 40, 128, 1000, 4096, 20000, 32768, 40000, 300000, 3 << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        /* Dirty blocks of the same size first, so calloc is likely to reuse them. */
        void *dirty[8];
        for (int k = 0; k < 8; k++) {
            dirty[k] = malloc(n);
            if (dirty[k]) memset(dirty[k], 0xAB, n);
        }
        for (int k = 0; k < 8; k++) free(dirty[k]);
        for (int k = 0; k < 8; k++) {
            unsigned char *p = calloc(1, n);
            CHECK(p != NULL && all_zero(p, n), "calloc(1, %zu) not zeroed", n);
            dirty[k] = p;
        }
        for (int k = 0; k < 8; k++) free(dirty[k]);
        unsigned char *q = calloc(n, 3);
        CHECK(q != NULL && all_zero(q, n * 3), "calloc(%zu, 3) not zeroed", n);
        free(q);
    }
}

/* --- realloc / reallocarray --------------------------------------------------------------------- */

static void test_realloc(void) {
    unsigned char *p = realloc(NULL, 100);
    CHECK(p != NULL && malloc_usable_size(p) >= 100, "realloc(NULL, 100) did not allocate");
    fill(p, 100, 1);

    /* Grow and shrink through small classes, the large path (mremap) and back. */
    static const size_t steps[] = {200, 1000, 5000, 33000, 100000, 1 << 20, 5 << 20, 70000, 3000, 50, 20000, 9 << 20, 10};
    size_t have = 100;
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        size_t n = steps[i];
        unsigned char *q = realloc(p, n);
        CHECK(q != NULL, "realloc to %zu failed", n);
        if (!q) break;
        size_t kept = have < n ? have : n;
        CHECK(holds(q, kept, 1), "realloc %zu -> %zu lost contents", have, n);
        CHECK(aligned(q, n >= 16 ? 16 : 8), "realloc to %zu: %p misaligned", n, (void *)q);
        CHECK(malloc_usable_size(q) >= n, "realloc to %zu: usable %zu", n, malloc_usable_size(q));
        fill(q, n, 1);
        p = q;
        have = n;
    }

    /* A failed realloc leaves the block alone. */
    errno = 0;
    unsigned char *r = realloc(p, huge());
    CHECK(r == NULL && errno == ENOMEM, "realloc(p, SIZE_MAX): %p errno %d", (void *)r, errno);
    CHECK(holds(p, have, 1), "failed realloc damaged the block");
    errno = 0;
    r = reallocarray(p, huge() / 2, 4);
    CHECK(r == NULL && errno == ENOMEM, "reallocarray overflow: %p errno %d", (void *)r, errno);
    CHECK(holds(p, have, 1), "failed reallocarray damaged the block");

    /* realloc(p, 0) frees p and returns NULL (glibc's behaviour): the live bytes go down. */
    unsigned char *big = malloc(2000);
    size_t before = mallinfo2().uordblks;
    CHECK(realloc(big, 0) == NULL, "realloc(p, 0) did not return NULL");
    size_t after = mallinfo2().uordblks;
    CHECK(after < before, "realloc(p, 0) did not free: in use %zu -> %zu", before, after);
    free(p);

    unsigned char *a = reallocarray(NULL, 10, 10);
    CHECK(a != NULL && malloc_usable_size(a) >= 100, "reallocarray(NULL, 10, 10) failed");
    fill(a, 100, 9);
    a = reallocarray(a, 1000, 10);
    CHECK(a != NULL && holds(a, 100, 9), "reallocarray grow lost contents");
    free(a);
}

/* --- aligned allocation ---------------------------------------------------------------------- */

static void test_alignment(void) {
    static const size_t sizes[] = {1, 24, 4000, 70000};
    for (int k = 0; k <= 20; k++) {
        size_t al = (size_t)1 << k;
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            size_t n = sizes[s];
            void *p = (void *)0x1;
            int rc = posix_memalign(&p, al, n);
            if (al < sizeof(void *)) {
                CHECK(rc == EINVAL && p == (void *)0x1, "posix_memalign(align %zu) gave %d", al, rc);
            } else {
                CHECK(rc == 0 && p && aligned(p, al), "posix_memalign(%zu, %zu): rc %d p %p", al, n, rc, p);
                if (rc == 0) {
                    CHECK(malloc_usable_size(p) >= n, "posix_memalign usable %zu < %zu", malloc_usable_size(p), n);
                    memset(p, 0x5A, n);
                    free(p);
                }
            }
            unsigned char *q = aligned_alloc(al, n);
            CHECK(q && aligned(q, al), "aligned_alloc(%zu, %zu) = %p", al, n, (void *)q);
            if (q) {
                CHECK(malloc_usable_size(q) >= n, "aligned_alloc usable < %zu", n);
                memset(q, 0x5A, n);
            }
            free(q);
            unsigned char *m = memalign(al, n);
            CHECK(m && aligned(m, al), "memalign(%zu, %zu) = %p", al, n, (void *)m);
            if (m) memset(m, 0x5A, n);
            free(m);
        }
    }

    /* posix_memalign: not a power of two, or not a multiple of sizeof(void *): EINVAL, and
     * neither *memptr nor errno changes. */
    static const size_t bad[] = {0, 1, 2, 4, 3, 24, 48, 4097};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (bad[i] >= sizeof(void *) && (bad[i] & (bad[i] - 1)) == 0) continue;
        void *p = (void *)0x1;
        errno = 1234;
        int rc = posix_memalign(&p, bad[i], 64);
        CHECK(rc == EINVAL && p == (void *)0x1 && errno == 1234, "posix_memalign(align %zu): rc %d errno %d",
              bad[i], rc, errno);
    }
    void *p = (void *)0x1;
    errno = 1234;
    int rc = posix_memalign(&p, 64, huge());
    CHECK(rc == ENOMEM && p == (void *)0x1 && errno == 1234, "posix_memalign(64, SIZE_MAX): rc %d errno %d", rc,
          errno);

    /* aligned_alloc: the alignment must be a power of two (EINVAL); any size is accepted. */
    errno = 0;
    CHECK(aligned_alloc(24, 48) == NULL && errno == EINVAL, "aligned_alloc(24, 48): errno %d", errno);
    errno = 0;
    CHECK(aligned_alloc(0, 48) == NULL && errno == EINVAL, "aligned_alloc(0, 48): errno %d", errno);
    errno = 0;
    CHECK(aligned_alloc(4096, huge()) == NULL && errno == ENOMEM, "aligned_alloc(4096, SIZE_MAX): errno %d", errno);
    void *odd = aligned_alloc(64, 100); /* size not a multiple of the alignment (C17 DR 460) */
    CHECK(odd && aligned(odd, 64), "aligned_alloc(64, 100) = %p", odd);
    free(odd);

    /* memalign rounds a non-power-of-two alignment up (glibc). */
    void *m = memalign(24, 10);
    CHECK(m && aligned(m, 32), "memalign(24, 10) = %p", m);
    free(m);
    errno = 0;
    CHECK(memalign(huge(), 10) == NULL && errno == EINVAL, "memalign(SIZE_MAX, 10): errno %d", errno);
    errno = 0;
    CHECK(memalign(64, huge()) == NULL && errno == ENOMEM, "memalign(64, SIZE_MAX): errno %d", errno);

    /* valloc / pvalloc: page-aligned; pvalloc rounds the size up to whole pages. */
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    void *v = valloc(1);
    CHECK(v && aligned(v, page), "valloc(1) = %p", v);
    free(v);
    v = valloc(3 * page + 1);
    CHECK(v && aligned(v, page) && malloc_usable_size(v) >= 3 * page + 1, "valloc(3 pages + 1) = %p", v);
    free(v);
    unsigned char *pv = pvalloc(1);
    CHECK(pv && aligned(pv, page) && malloc_usable_size(pv) >= page, "pvalloc(1) = %p", (void *)pv);
    if (pv) memset(pv, 1, page);
    free(pv);
    pv = pvalloc(0);
    CHECK(pv && aligned(pv, page) && malloc_usable_size(pv) >= page, "pvalloc(0) = %p", (void *)pv);
    free(pv);
    errno = 0;
    CHECK(valloc(huge()) == NULL && errno == ENOMEM, "valloc(SIZE_MAX): errno %d", errno);
    errno = 0;
    CHECK(pvalloc(huge() - 10) == NULL && errno == ENOMEM, "pvalloc(SIZE_MAX - 10): errno %d", errno);
}

/* --- introspection ------------------------------------------------------------------------------ */

static void test_info(void) {
    struct mallinfo2 before = mallinfo2();
    void *big = malloc(3 << 20);
    void *small[100];
    for (int i = 0; i < 100; i++) small[i] = malloc(200);
    struct mallinfo2 during = mallinfo2();
    CHECK(during.hblks >= before.hblks + 1 && during.hblkhd >= before.hblkhd + (3 << 20),
          "mallinfo2 large: hblks %zu -> %zu, hblkhd %zu -> %zu", before.hblks, during.hblks, before.hblkhd,
          during.hblkhd);
    CHECK(during.uordblks >= before.uordblks + 100 * 200, "mallinfo2 in use %zu -> %zu", before.uordblks,
          during.uordblks);
    CHECK(during.arena >= during.uordblks && during.fordblks == during.arena - during.uordblks,
          "mallinfo2 arena %zu uordblks %zu fordblks %zu", during.arena, during.uordblks, during.fordblks);
    CHECK(during.usmblks >= during.arena, "mallinfo2 mapped %zu < arena %zu", during.usmblks, during.arena);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    struct mallinfo old = mallinfo();
#pragma GCC diagnostic pop
    CHECK(old.hblks >= 1 && old.uordblks > 0, "mallinfo: hblks %d uordblks %d", old.hblks, old.uordblks);
    for (int i = 0; i < 100; i++) free(small[i]);
    free(big);
    int t = malloc_trim(0);
    CHECK(t == 0 || t == 1, "malloc_trim returned %d", t);
    struct mallinfo2 trimmed = mallinfo2();
    CHECK(trimmed.keepcost == 0, "after malloc_trim, keepcost is %zu", trimmed.keepcost);
    malloc_stats(); /* the Rust side checks what it printed */
}

/* --- epochs and domains ------------------------------------------------------------------------ */

/* Enters a domain on epoch *arg, gives up the handle while entered and exits the thread
 * without exiting the domain. */
static void *phase_thread(void *arg) {
    uint64_t e = *(const uint64_t *)arg;
    tslab_domain *d = tslab_domain_on(e, "abi-test-thread", 0);
    CHECK(d && tslab_domain_enter(d) == 0, "enter on a thread");
    void *p = malloc(64);
    tslab_domain_destroy(d); /* the entry keeps the domain open */
    tslab_epoch_advance();   /* e ends (if the reclaimer has not already ended it) */
    CHECK(tslab_epoch_state(e) == TSLAB_EPOCH_ACTIVE, "destroying an entered handle ended its domain: state %d",
          tslab_epoch_state(e));
    tslab_domain *other = tslab_domain_on(e, NULL, 0);
    CHECK(other && tslab_domain_exit(other) == -1, "exit through another handle on the same epoch must fail");
    tslab_domain_destroy(other);
    CHECK(tslab_epoch_state(e) == TSLAB_EPOCH_ACTIVE, "epoch closed while a domain is still entered");
    free(p);
    return NULL; /* the thread's exit exits the entry: the domain ends, e closes */
}

static void test_phases(void) {
    const char *v = tslab_version();
    CHECK(v && strlen(v) > 0, "tslab_version");

    uint64_t e = tslab_epoch_current();
    CHECK(e >= 1 && tslab_epoch_state(e) == TSLAB_EPOCH_ACTIVE, "current epoch %llu state %d",
          (unsigned long long)e, tslab_epoch_state(e));
    void *in_e = malloc(64);
    uint64_t n = tslab_epoch_advance();
    CHECK(n > e && tslab_epoch_current() == n, "advance: %llu -> %llu", (unsigned long long)e,
          (unsigned long long)n);
    CHECK(tslab_epoch_state(e) == TSLAB_EPOCH_CLOSING, "old epoch state %d", tslab_epoch_state(e));
    CHECK(tslab_epoch_close(e) == 0, "close of a closing epoch");
    free(in_e);
    CHECK(tslab_epoch_close(0) == -1 && tslab_epoch_state(0) == TSLAB_EPOCH_NONE, "epoch 0 is not an epoch");
    CHECK(tslab_epoch_close(n + 1000) == -1 && tslab_epoch_state(n + 1000) == TSLAB_EPOCH_NONE,
          "a future epoch is not an epoch");

    /* Closing the current epoch advances first. */
    uint64_t cur = tslab_epoch_current();
    CHECK(tslab_epoch_close(cur) == 0 && tslab_epoch_current() > cur && tslab_epoch_state(cur) == TSLAB_EPOCH_CLOSING,
          "close(current)");

    /* A domain joins the current epoch (it opens none of its own) and holds it open: an epoch
     * that has ended (advance) closes only when its last domain ends. With auto-close, the
     * domain ends when its last entry exits. */
    uint64_t before = tslab_epoch_current();
    tslab_domain *req = tslab_domain_create("abi-test-request", TSLAB_DOMAIN_AUTO_CLOSE);
    CHECK(req != NULL, "tslab_domain_create");
    uint64_t de = tslab_domain_epoch(req);
    /* The current epoch, or a later one if the reclaimer rotated the time bucket meanwhile. */
    CHECK(de >= before && de <= tslab_epoch_current() && tslab_epoch_state(de) == TSLAB_EPOCH_ACTIVE,
          "domain epoch %llu (current was %llu)", (unsigned long long)de, (unsigned long long)before);
    CHECK(tslab_domain_enter(req) == 0, "enter");
    CHECK(tslab_domain_enter(req) == 0, "enter again (nested)");
    char *s = malloc(300);
    CHECK(s != NULL, "malloc inside a domain");
    strcpy(s, "inside");
    uint64_t after = tslab_epoch_advance(); /* ends de (if the reclaimer has not already) */
    CHECK(after > de && tslab_domain_epoch(req) == de, "advance past the domain's epoch");
    CHECK(tslab_epoch_state(de) == TSLAB_EPOCH_ACTIVE, "an ended epoch closed with a domain open in it: state %d",
          tslab_epoch_state(de));
    char *s2 = malloc(300); /* still routed to de: an ended epoch takes its domains' allocations */
    CHECK(s2 != NULL, "malloc inside a domain of an ended epoch");
    CHECK(tslab_domain_exit(req) == 0, "exit (inner)");
    CHECK(tslab_epoch_state(de) == TSLAB_EPOCH_ACTIVE, "auto-close ended the domain while still entered once");
    CHECK(tslab_domain_exit(req) == 0, "exit (outer)");
    CHECK(tslab_epoch_state(de) == TSLAB_EPOCH_CLOSING, "auto-close did not end the domain: epoch state %d",
          tslab_epoch_state(de));
    CHECK(tslab_domain_exit(req) == -1, "exit without enter must fail");
    CHECK(strcmp(s, "inside") == 0, "block allocated in a closed epoch changed");
    free(s);
    free(s2);
    tslab_domain_destroy(req);

    /* tslab_domain_close ends the domain; tslab_epoch_close of an epoch with a domain open in it
     * ends the epoch, which then closes when that domain ends. */
    uint64_t fresh = tslab_epoch_advance();
    tslab_domain *held = tslab_domain_on(fresh, "abi-test-held", 0);
    CHECK(held && tslab_domain_epoch(held) == fresh, "domain_on(advance())");
    CHECK(tslab_domain_close(held) == 0 && tslab_epoch_state(fresh) == TSLAB_EPOCH_ACTIVE,
          "closing the last domain of an epoch that has not ended must not close it: state %d",
          tslab_epoch_state(fresh));
    tslab_domain_destroy(held);
    held = tslab_domain_on(fresh, "abi-test-held", 0);
    CHECK(held != NULL, "domain_on(an active epoch)");
    CHECK(tslab_epoch_close(fresh) == 0 && tslab_epoch_current() > fresh, "epoch_close(current) advances");
    CHECK(tslab_epoch_state(fresh) == TSLAB_EPOCH_ACTIVE, "closed with a domain open in it: state %d",
          tslab_epoch_state(fresh));
    CHECK(tslab_domain_close(held) == 0 && tslab_epoch_state(fresh) == TSLAB_EPOCH_CLOSING,
          "the last domain ended and the epoch did not close: state %d", tslab_epoch_state(fresh));
    CHECK(tslab_domain_close(held) == 0 && tslab_epoch_state(fresh) == TSLAB_EPOCH_CLOSING, "close is idempotent");
    tslab_domain_destroy(held);
    /* A domain on an epoch that has ended is born ended: it holds nothing open. */
    tslab_domain *late = tslab_domain_on(fresh, NULL, 0);
    CHECK(late != NULL && tslab_domain_epoch(late) == fresh, "domain_on(a closing epoch) still gives a handle");
    tslab_domain_destroy(late);

    /* Labelled domains nesting in one bucket, out-of-order exits. */
    tslab_domain *phase = tslab_domain_on(tslab_epoch_advance(), "abi-test-phase", 0);
    tslab_domain *inner = tslab_domain_create("abi-test-inner", 0);
    CHECK(phase && inner, "domain_on / create");
    uint64_t pe = tslab_domain_epoch(phase);
    CHECK(tslab_domain_enter(phase) == 0 && tslab_domain_enter(inner) == 0, "nested enters");
    void *x = malloc(128);
    CHECK(tslab_domain_exit(phase) == 0, "out-of-order exit works");
    CHECK(tslab_domain_exit(inner) == 0, "remaining exit");
    free(x);
    uint64_t ie = tslab_domain_epoch(inner);
    CHECK(tslab_domain_close(inner) == 0, "domain_close");
    tslab_epoch_advance();
    /* phase is still open (in pe, which may be ie): pe stays open; ie closes unless it is pe. */
    CHECK(tslab_epoch_state(pe) == TSLAB_EPOCH_ACTIVE, "epoch of an open domain closed: state %d",
          tslab_epoch_state(pe));
    CHECK(ie == pe || tslab_epoch_state(ie) == TSLAB_EPOCH_CLOSING, "epoch of a closed domain stayed open");
    tslab_domain_destroy(inner);
    /* Without entries, giving up the handle ends the domain: pe has ended, so it closes. */
    tslab_domain_destroy(phase);
    CHECK(tslab_epoch_state(pe) == TSLAB_EPOCH_CLOSING, "destroying the last domain's handle did not close pe: %d",
          tslab_epoch_state(pe));

    /* Destroying a handle while entered, exits through other handles, the thread's exit. */
    uint64_t te = tslab_epoch_advance();
    pthread_t t;
    CHECK(pthread_create(&t, NULL, phase_thread, &te) == 0 && pthread_join(t, NULL) == 0, "phase thread");
    CHECK(tslab_epoch_state(te) == TSLAB_EPOCH_CLOSING, "the thread's exit did not end its entered domain: state %d",
          tslab_epoch_state(te));

    CHECK(tslab_domain_on(0, "x", 0) == NULL, "domain on a non-epoch");
    CHECK(tslab_domain_enter(NULL) == -1 && tslab_domain_exit(NULL) == -1 && tslab_domain_close(NULL) == -1,
          "NULL handles");
    CHECK(tslab_domain_epoch(NULL) == 0, "epoch of NULL");
    tslab_domain_destroy(NULL);
}

/* --- dlsym: re-entry, and glibc's allocator next to ours ------------------------------------- */

static void test_dlsym(void) {
    /* A failed lookup makes glibc allocate its error state (calloc/malloc: ours) inside dlsym,
     * and free it at the next dlerror/dlsym (free: ours). */
    for (int i = 0; i < 100; i++) {
        CHECK(dlsym(RTLD_DEFAULT, "tslab_no_such_symbol") == NULL, "dlsym of a missing symbol");
        CHECK(dlerror() != NULL, "dlerror after a failed dlsym");
    }
    /* The library's own functions, as a program that may or may not run under it finds them. */
    uint64_t (*current)(void) = (uint64_t(*)(void))dlsym(RTLD_DEFAULT, "tslab_epoch_current");
    CHECK(current != NULL && current() == tslab_epoch_current(), "dlsym(tslab_epoch_current)");
    CHECK(dlsym(RTLD_DEFAULT, "malloc") == (void *)malloc, "the process's malloc is not the library's");
    /* glibc's allocator, reached past ours, still works for its own blocks: they must go back
     * to glibc's free (never to ours), which is the documented rule. */
    void *(*libc_malloc)(size_t) = (void *(*)(size_t))dlsym(RTLD_NEXT, "malloc");
    void (*libc_free)(void *) = (void (*)(void *))dlsym(RTLD_NEXT, "free");
    if (libc_malloc && libc_free && (void *)libc_malloc != (void *)malloc) {
        void *g = libc_malloc(100);
        CHECK(g != NULL, "glibc malloc through RTLD_NEXT");
        memset(g, 1, 100);
        libc_free(g);
    }
}

/* --- threads: cross-thread frees, thread-exit destructors ---------------------------------------- */

#define THREADS 4
#define PER_THREAD 20000
/* Each mailbox holds everything one thread posts, so posting never waits (no cycle of waits). */
#define RING (PER_THREAD + 1)

struct mailbox {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    void *slots[RING];
    size_t sizes[RING];
    size_t head, tail;
};
static struct mailbox boxes[THREADS];
static pthread_key_t dtor_key;

static void post(struct mailbox *b, void *p, size_t n) {
    pthread_mutex_lock(&b->lock);
    CHECK(b->tail - b->head < RING, "mailbox full");
    b->slots[b->tail % RING] = p;
    b->sizes[b->tail % RING] = n;
    b->tail++;
    pthread_cond_broadcast(&b->cond);
    pthread_mutex_unlock(&b->lock);
}

static int take(struct mailbox *b, void **p, size_t *n) {
    pthread_mutex_lock(&b->lock);
    while (b->tail == b->head) pthread_cond_wait(&b->cond, &b->lock);
    *p = b->slots[b->head % RING];
    *n = b->sizes[b->head % RING];
    b->head++;
    pthread_cond_broadcast(&b->cond);
    pthread_mutex_unlock(&b->lock);
    return *p != NULL;
}

/* Runs at thread exit, after the allocator has handed the thread's heap back. */
static void key_destructor(void *v) {
    void *p = malloc(48);
    CHECK(p != NULL, "malloc in a thread-exit destructor");
    p = realloc(p, 5000);
    CHECK(p != NULL, "realloc in a thread-exit destructor");
    free(p);
    free(v);
}

static void *producer_consumer(void *arg) {
    int me = (int)(intptr_t)arg;
    pthread_setspecific(dtor_key, malloc(64));
    struct mailbox *next = &boxes[(me + 1) % THREADS];
    struct mailbox *mine = &boxes[me];
    unsigned seed = (unsigned)me * 977u;
    size_t received = 0;
    for (int i = 0; i < PER_THREAD; i++) {
        seed = seed * 1103515245u + 12345u;
        size_t n = 1 + (seed >> 8) % (i % 97 == 0 ? 100000 : 600);
        unsigned char *p = malloc(n);
        CHECK(p != NULL, "thread %d: malloc(%zu)", me, n);
        if (!p) continue;
        fill(p, n, (unsigned)n);
        post(next, p, n); /* freed by the next thread */
        void *q;
        size_t qn;
        /* Drain what the previous thread sent, without blocking for more than we posted. */
        pthread_mutex_lock(&mine->lock);
        int have = mine->tail != mine->head;
        pthread_mutex_unlock(&mine->lock);
        if (have && take(mine, &q, &qn)) {
            CHECK(holds(q, qn, (unsigned)qn), "thread %d: block from another thread changed", me);
            free(q);
            received++;
        }
    }
    post(next, NULL, 0); /* end marker */
    void *q;
    size_t qn;
    while (take(mine, &q, &qn)) {
        CHECK(holds(q, qn, (unsigned)qn), "thread %d: block from another thread changed", me);
        free(q);
        received++;
    }
    CHECK(received == PER_THREAD, "thread %d received %zu blocks", me, received);
    return NULL;
}

static void test_threads(void) {
    pthread_key_create(&dtor_key, key_destructor);
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) {
        pthread_mutex_init(&boxes[i].lock, NULL);
        pthread_cond_init(&boxes[i].cond, NULL);
    }
    for (int i = 0; i < THREADS; i++) CHECK(pthread_create(&t[i], NULL, producer_consumer, (void *)(intptr_t)i) == 0, "pthread_create");
    for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
}

/* --- fork in a threaded program ------------------------------------------------------------------ */

static atomic_int churn_stop;

static void *churn(void *arg) {
    (void)arg;
    unsigned seed = 1;
    void *keep[64] = {0};
    while (!atomic_load(&churn_stop)) {
        seed = seed * 1103515245u + 12345u;
        int i = (int)((seed >> 16) % 64);
        free(keep[i]);
        keep[i] = malloc(1 + (seed >> 4) % 3000);
        if (seed % 1000 == 0) {
            void *big = malloc(200000);
            free(big);
        }
    }
    for (int i = 0; i < 64; i++) free(keep[i]);
    return NULL;
}

static void *child_thread(void *arg) {
    (void)arg;
    for (int i = 0; i < 10000; i++) free(malloc(1 + i % 2000));
    return (void *)1;
}

static int child_work(void) {
    int bad = 0;
    void *blocks[1000];
    for (int i = 0; i < 1000; i++) {
        blocks[i] = malloc(1 + (size_t)i * 37 % 5000);
        if (!blocks[i]) bad = 1;
        else memset(blocks[i], i & 0xff, 1 + (size_t)i * 37 % 5000);
    }
    for (int i = 0; i < 1000; i += 2) {
        blocks[i] = realloc(blocks[i], 10000);
        if (!blocks[i]) bad = 1;
    }
    for (int i = 0; i < 1000; i++) free(blocks[i]);
    unsigned char *z = calloc(1000, 100);
    if (!z || !all_zero(z, 100000)) bad = 1;
    free(z);
    void *big = malloc(5 << 20);
    if (!big) bad = 1;
    free(big);
    uint64_t e = tslab_epoch_advance();
    if (tslab_epoch_close(e - 1) != 0 && tslab_epoch_state(e - 1) != TSLAB_EPOCH_NONE) bad = 1;
    pthread_t t;
    void *ret = NULL;
    if (pthread_create(&t, NULL, child_thread, NULL) != 0 || pthread_join(t, &ret) != 0 || ret != (void *)1) bad = 1;
    return bad;
}

static void test_fork(void) {
    atomic_store(&churn_stop, 0);
    pthread_t t[3];
    for (int i = 0; i < 3; i++) pthread_create(&t[i], NULL, churn, NULL);
    for (int round = 0; round < 20; round++) {
        pid_t pid = fork();
        if (pid == 0) _exit(child_work());
        CHECK(pid > 0, "fork failed");
        if (pid < 0) break;
        int status = 0;
        waitpid(pid, &status, 0);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "fork round %d: child status %#x", round, status);
        free(malloc(100)); /* the parent keeps working too */
    }
    atomic_store(&churn_stop, 1);
    for (int i = 0; i < 3; i++) pthread_join(t[i], NULL);
}

int main(void) {
    test_malloc();
    test_calloc();
    test_realloc();
    test_alignment();
    test_info();
    test_phases();
    test_dlsym();
    test_threads();
    test_fork();
    int f = atomic_load(&failures);
    printf("abi_test: %d checks, %d failed\n", atomic_load(&checks), f);
    return f ? 1 : 0;
}
