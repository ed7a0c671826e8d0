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
 *   tslab_epoch_close(e);      // advances, and gives the phase's empty slabs back to the OS
 *
 *   tslab_domain *req = tslab_domain_create("http-request", TSLAB_DOMAIN_AUTO_CLOSE);
 *   tslab_domain_enter(req);   // this thread's allocations now go to the domain's epoch
 *   ... handle the request ...
 *   tslab_domain_exit(req);    // last exit closes the epoch (auto-close)
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

/* Makes the current epoch CLOSING and opens the next one; returns the new epoch's era. */
uint64_t tslab_epoch_advance(void);

/* TSLAB_EPOCH_ACTIVE, TSLAB_EPOCH_CLOSING or TSLAB_EPOCH_NONE. */
int tslab_epoch_state(uint64_t epoch);

/* Closes the epoch (advancing first if it is the current one): it takes no new allocations, its
 * empty slabs go back to the OS now and its other slabs as soon as they empty. The calling
 * thread's and exited threads' slabs are swept now, other threads' at their next allocation.
 * Returns 0, or -1 (doing nothing) when the epoch is not in the ring. */
int tslab_epoch_close(uint64_t epoch);

/* --- domains ------------------------------------------------------------------------------ */

/* A domain: an epoch with a label, entered and exited by threads (LIFO per thread). The number of
 * threads inside is the epoch's refcount in stats_dump output, so a domain entered and never
 * exited shows up as an epoch with a refcount and a growing age. */
typedef struct tslab_domain tslab_domain;

/* Flag: close the domain's epoch when its last entry (on any thread) exits. */
#define TSLAB_DOMAIN_AUTO_CLOSE 1u

/* A domain on a new epoch of its own (global advances leave it ACTIVE), labelled `label`
 * (NULL for none; at most 31 bytes are kept, 31 distinct labels per process). NULL when memory
 * is exhausted. */
tslab_domain *tslab_domain_create(const char *label, unsigned flags);

/* A domain on an existing epoch, e.g. tslab_epoch_current(); a non-NULL label replaces the
 * epoch's label. NULL when the epoch is not in the ring or memory is exhausted. */
tslab_domain *tslab_domain_on(uint64_t epoch, const char *label, unsigned flags);

/* The domain's epoch (0 for NULL). */
uint64_t tslab_domain_epoch(const tslab_domain *domain);

/* Until the matching exit, this thread's small allocations go to the domain's epoch. Entries
 * nest (up to 32 deep). Returns 0, or -1 for NULL or when memory is exhausted. */
int tslab_domain_enter(const tslab_domain *domain);

/* Exits this thread's innermost entry of the domain's epoch. Exiting out of LIFO order works
 * and is counted as misuse in the statistics. Returns 0, or -1 when this thread has not entered
 * it. Entries still open when a thread exits are exited then. */
int tslab_domain_exit(const tslab_domain *domain);

/* Closes the domain's epoch now, whatever its refcount (see tslab_epoch_close). 0, or -1 for
 * NULL. */
int tslab_domain_close(const tslab_domain *domain);

/* Frees the handle (NULL is a no-op). Entries made from it stay entered until their exit (with
 * another handle on the same epoch) or their thread's exit. */
void tslab_domain_destroy(tslab_domain *domain);

#ifdef __cplusplus
}
#endif

#endif /* TEMPORAL_SLAB_H */
