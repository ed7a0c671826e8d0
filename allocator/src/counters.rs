//! The always-on counters: a leaf module every other module may increment; nothing here reads
//! any other module. [`crate::stats`] folds them into snapshots.
//!
//! Hot-path counters are sharded per thread heap ([`HeapStats`], written only by the owning
//! thread with a Relaxed load and store: no read-modify-write, no shared cache line). Slow-path,
//! OS and epoch counters are process-wide Relaxed atomics ([`GLOBAL`]). No ordering is implied
//! between counters: a snapshot is not atomic across them.

use core::sync::atomic::{AtomicU64, Ordering};

use crate::size_class::NUM_CLASSES;

/// Label registry size, including the fixed overflow label 0.
pub const MAX_LABELS: usize = 32;
/// Slots in the epoch ring (the ring's own constant, repeated here so this leaf needs nothing).
const SLOTS: usize = 16;

/// Adds one to a counter that only the calling thread writes (Relaxed load + store). Without
/// the `stats` feature it does nothing (the counter stays 0): that is how the cost of the
/// hot-path counters is measured.
#[inline]
pub(crate) fn bump_owned(c: &AtomicU64) {
    #[cfg(feature = "stats")]
    add_owned(c, 1);
    #[cfg(not(feature = "stats"))]
    let _ = c;
}

/// Adds `n` (wrapping) to a word that only the calling thread writes: a Relaxed load and store,
/// no read-modify-write. Not gated by the `stats` feature (domain counts depend on it).
#[inline]
pub(crate) fn add_owned(c: &AtomicU64, n: u64) {
    c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

/// Counters of one thread heap, written only by its owner.
pub(crate) struct HeapStats {
    pub(crate) allocs: [AtomicU64; NUM_CLASSES],
    pub(crate) frees: [AtomicU64; NUM_CLASSES],
    pub(crate) slow_path_hits: [AtomicU64; NUM_CLASSES],
    pub(crate) slow_cache_miss: [AtomicU64; NUM_CLASSES],
    pub(crate) slow_epoch_closed: [AtomicU64; NUM_CLASSES],
    pub(crate) empty_recycled: [AtomicU64; NUM_CLASSES],
    pub(crate) empty_overflowed: [AtomicU64; NUM_CLASSES],
    /// Per label: domains opened and ended by this thread (a domain may end on another thread,
    /// so only the sum over heaps means anything), and bytes allocated by this thread inside
    /// domains of the label (requested sizes, counted at every enter and exit).
    pub(crate) label_opened: [AtomicU64; MAX_LABELS],
    pub(crate) label_ended: [AtomicU64; MAX_LABELS],
    pub(crate) label_bytes: [AtomicU64; MAX_LABELS],
}

/// Process-wide counters (Relaxed atomics, slow paths only).
pub(crate) struct GlobalCounters {
    pub(crate) segments_mapped: AtomicU64,
    pub(crate) new_slabs: [AtomicU64; NUM_CLASSES],
    pub(crate) orphan_frees: [AtomicU64; NUM_CLASSES],
    pub(crate) madvise_calls: AtomicU64,
    pub(crate) madvise_bytes: AtomicU64,
    pub(crate) madvise_failures: AtomicU64,
    pub(crate) class_madvise_calls: [AtomicU64; NUM_CLASSES],
    pub(crate) class_madvise_bytes: [AtomicU64; NUM_CLASSES],
    pub(crate) class_madvise_failures: [AtomicU64; NUM_CLASSES],
    pub(crate) class_close_scanned: [AtomicU64; NUM_CLASSES],
    pub(crate) class_close_recycled: [AtomicU64; NUM_CLASSES],
    pub(crate) class_close_sweeps: [AtomicU64; NUM_CLASSES],
    /// Slabs of closed epochs with free room taken up again as allocation slabs (per class).
    pub(crate) class_recycled_slabs: [AtomicU64; NUM_CLASSES],
    /// Domain counts and label counters of threads that have no heap of their own.
    pub(crate) domains_fallback: [AtomicU64; SLOTS],
    pub(crate) label_opened_fallback: [AtomicU64; MAX_LABELS],
    pub(crate) label_ended_fallback: [AtomicU64; MAX_LABELS],
    /// Bucket rotations skipped because fewer than two ring slots were free (long-lived domains).
    pub(crate) bucket_extensions: AtomicU64,
    /// Bytes of slabs taken from the pool (the volume-based automatic advance reads it).
    pub(crate) slab_bytes_taken: AtomicU64,
    /// Reclaimer passes run.
    pub(crate) reclaimer_ticks: AtomicU64,
    /// Heaps the idle trim held and trimmed, and the bytes of free pages it purged in them.
    pub(crate) idle_trims: AtomicU64,
    pub(crate) idle_trim_bytes: AtomicU64,
    pub(crate) last_close_deferred_bytes: AtomicU64,
    pub(crate) large_allocs: AtomicU64,
    pub(crate) large_frees: AtomicU64,
    pub(crate) large_live_bytes: AtomicU64,
    pub(crate) large_mapped_bytes: AtomicU64,
    pub(crate) large_cache_bytes: AtomicU64,
    pub(crate) large_cache_hits: AtomicU64,
    pub(crate) epoch_close_calls: AtomicU64,
    pub(crate) epoch_close_scanned_slabs: AtomicU64,
    pub(crate) epoch_close_recycled_slabs: AtomicU64,
    pub(crate) heaps: AtomicU64,
    pub(crate) heap_bytes: AtomicU64,
    pub(crate) epoch_close_total_ns: AtomicU64,
    pub(crate) last_close_era: AtomicU64,
    pub(crate) last_close_ns: AtomicU64,
    pub(crate) last_close_purged_bytes: AtomicU64,
    pub(crate) last_close_rss_before: AtomicU64,
    pub(crate) last_close_rss_after: AtomicU64,
    pub(crate) auto_advances: AtomicU64,
    pub(crate) ring_overflows: AtomicU64,
    pub(crate) label_overflows: AtomicU64,
    pub(crate) domain_misuse_out_of_order: AtomicU64,
    pub(crate) domain_misuse_wrong_thread: AtomicU64,
    pub(crate) domain_misuse_passed_era: AtomicU64,
    pub(crate) domain_misuse_too_deep: AtomicU64,
}

#[allow(clippy::declare_interior_mutable_const)]
const ZERO: AtomicU64 = AtomicU64::new(0);

pub(crate) static GLOBAL: GlobalCounters = GlobalCounters {
    segments_mapped: ZERO,
    new_slabs: [ZERO; NUM_CLASSES],
    orphan_frees: [ZERO; NUM_CLASSES],
    madvise_calls: ZERO,
    madvise_bytes: ZERO,
    madvise_failures: ZERO,
    class_madvise_calls: [ZERO; NUM_CLASSES],
    class_madvise_bytes: [ZERO; NUM_CLASSES],
    class_madvise_failures: [ZERO; NUM_CLASSES],
    class_close_scanned: [ZERO; NUM_CLASSES],
    class_close_recycled: [ZERO; NUM_CLASSES],
    class_close_sweeps: [ZERO; NUM_CLASSES],
    class_recycled_slabs: [ZERO; NUM_CLASSES],
    domains_fallback: [ZERO; SLOTS],
    label_opened_fallback: [ZERO; MAX_LABELS],
    label_ended_fallback: [ZERO; MAX_LABELS],
    bucket_extensions: ZERO,
    slab_bytes_taken: ZERO,
    reclaimer_ticks: ZERO,
    idle_trims: ZERO,
    idle_trim_bytes: ZERO,
    last_close_deferred_bytes: ZERO,
    large_allocs: ZERO,
    large_frees: ZERO,
    large_live_bytes: ZERO,
    large_mapped_bytes: ZERO,
    large_cache_bytes: ZERO,
    large_cache_hits: ZERO,
    epoch_close_calls: ZERO,
    epoch_close_scanned_slabs: ZERO,
    epoch_close_recycled_slabs: ZERO,
    heaps: ZERO,
    heap_bytes: ZERO,
    epoch_close_total_ns: ZERO,
    last_close_era: ZERO,
    last_close_ns: ZERO,
    last_close_purged_bytes: ZERO,
    last_close_rss_before: ZERO,
    last_close_rss_after: ZERO,
    auto_advances: ZERO,
    ring_overflows: ZERO,
    label_overflows: ZERO,
    domain_misuse_out_of_order: ZERO,
    domain_misuse_wrong_thread: ZERO,
    domain_misuse_passed_era: ZERO,
    domain_misuse_too_deep: ZERO,
};
