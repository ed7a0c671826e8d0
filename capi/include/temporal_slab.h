/*
 * temporal_slab.h - epochs and domains of the temporal-slab allocator, for C programs.
 *
 * libtemporal_slab.so replaces malloc, free, calloc, realloc, reallocarray, posix_memalign,
 * aligned_alloc, memalign, valloc, pvalloc, malloc_usable_size, malloc_trim, malloc_stats,
 * mallinfo2 and mallinfo (declared by <stdlib.h> and <malloc.h>). This header adds the
 * functions that let a program group its small allocations by phase:
 *
 *   uint64_t e = tslab_epoch_current();
 *   ... allocate what belongs to one phase ...
 *   tslab_epoch_close(e);      // advances; the phase's slabs are recycled for later phases
 *
 *   tslab_domain *req = tslab_domain_create("http-request", TSLAB_DOMAIN_AUTO_CLOSE);
 *   tslab_domain_enter(req);   // this thread's allocations now go to the domain's epoch
 *   ... handle the request ...
 *   tslab_domain_exit(req);    // last exit ends the domain (auto-close)
 *   tslab_domain_destroy(req);
 *
 * Link with -ltemporal_slab (before -lc, which is implicit) or run under
 * LD_PRELOAD=libtemporal_slab.so; to call these functions from a program that only may run under
 * LD_PRELOAD, look them up with dlsym(RTLD_DEFAULT, "tslab_epoch_close").
 *
 * Epochs are named by their era: a number that counts up from 1 and is never reused. The
 * allocator keeps 16 epochs in a ring; an era whose slot has been reused has "passed".
 * All functions are thread-safe. None of them may be called from a signal handler.
 */
#ifndef TEMPORAL_SLAB_H
#define TEMPORAL_SLAB_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The library version, e.g. "0.1.0" (a static string). */
const char *tslab_version(void);

/* --- epochs ------------------------------------------------------------------------------- */

/* tslab_epoch_state results. */
#define TSLAB_EPOCH_NONE 0    /* not in the ring: never opened, or passed */
#define TSLAB_EPOCH_ACTIVE 1  /* takes new allocations */
#define TSLAB_EPOCH_CLOSING 2 /* takes no new allocations; its slabs drain */

/* The era of the current epoch (where allocations outside domains go). */
uint64_t tslab_epoch_current(void);

/* Ends the current epoch and opens the next one; returns the new epoch's era. The ended epoch
 * closes (CLOSING) at once if no domain is open in it, else when its last domain ends; until
 * then it stays ACTIVE for its domains' allocations. */
uint64_t tslab_epoch_advance(void);

/* TSLAB_EPOCH_ACTIVE, TSLAB_EPOCH_CLOSING or TSLAB_EPOCH_NONE. */
int tslab_epoch_state(uint64_t epoch);

/* Closes the epoch (advancing first if it is the current one): if no domain is open in it, it
 * takes no new allocations from now on (CLOSING); otherwise it has ended and closes when its
 * last domain ends. Closing does not purge: its partly used slabs are recycled (their free room
 * serves later epochs) and its empty slabs wait in a reserve for the next phase, given back to
 * the OS when the program is idle for about 0.5 s (or by malloc_trim). The calling thread's and
 * exited threads' slabs are swept now, other threads' at their next allocation.
 * Returns 0, or -1 (doing nothing) when the epoch is not in the ring. */
int tslab_epoch_close(uint64_t epoch);

/* --- domains ------------------------------------------------------------------------------ */

/* A domain: a phase of the program (a request, a job) with an optional label. It joins the
 * current epoch, a time bucket shared with every domain opened meanwhile (the reclaimer ends the
 * bucket about every 100 ms once domains joined it), and holds that epoch open until the domain
 * ends: tslab_domain_close, tslab_domain_destroy of its last use, or its last exit with
 * TSLAB_DOMAIN_AUTO_CLOSE. Entering and exiting (LIFO per thread) only route the thread's
 * allocations. The number of domains open in an epoch is its refcount in stats_dump output, so a
 * domain that never ends shows up as an old, ended epoch that stays open with a refcount. */
typedef struct tslab_domain tslab_domain;

/* Flag: end the domain when its last entry (on any thread) exits. */
#define TSLAB_DOMAIN_AUTO_CLOSE 1u

/* A domain in the current epoch (it opens no epoch of its own), labelled `label` (NULL for
 * none; at most 31 bytes are kept, 31 distinct labels per process). An epoch joined by domains
 * of different labels shows the label "(shared)". NULL when memory is exhausted. */
tslab_domain *tslab_domain_create(const char *label, unsigned flags);

/* A domain in an existing epoch that still takes domains: ACTIVE and not ended, e.g. the era
 * just returned by tslab_epoch_advance() (a fresh epoch, so its label is this domain's). On an
 * epoch that has ended, the domain is born ended: it holds nothing open and entering it
 * allocates in the current epoch. NULL when the epoch is not in the ring or memory is
 * exhausted. */
tslab_domain *tslab_domain_on(uint64_t epoch, const char *label, unsigned flags);

/* The domain's epoch (0 for NULL). */
uint64_t tslab_domain_epoch(const tslab_domain *domain);

/* Until the matching exit, this thread's small allocations go to the domain's epoch. Entries
 * nest (up to 32 deep). Returns 0, or -1 for NULL or when memory is exhausted. */
int tslab_domain_enter(const tslab_domain *domain);

/* Exits this thread's innermost entry made with this handle (another handle, even on the same
 * epoch, does not match). Exiting out of LIFO order works and is counted as misuse in the
 * statistics. Returns 0, or -1 when this thread has no entry of this handle. Entries still open
 * when a thread exits are exited then. */
int tslab_domain_exit(const tslab_domain *domain);

/* Ends the domain now, whatever entries are live (they go on routing allocations to its epoch
 * while that is still open). Its epoch closes once it has ended (tslab_epoch_advance,
 * tslab_epoch_close, or the reclaimer's bucket rotation) and its last domain has ended.
 * Idempotent. 0, or -1 for NULL. */
int tslab_domain_close(const tslab_domain *domain);

/* Gives up the handle (NULL is a no-op); the domain ends when the handle and every entry made
 * from it are gone. Entries made from it stay entered until their thread's exit (the handle can
 * no longer be named to exit them, and another handle does not match). */
void tslab_domain_destroy(tslab_domain *domain);

#ifdef __cplusplus
}
#endif

#endif /* TEMPORAL_SLAB_H */
