//! Always-on counters and the [`snapshot`] that folds them into plain data.
//!
//! Hot-path counters (allocations and frees per size class) are sharded per thread heap: each
//! heap's counters are written only by the thread that owns the heap, with a Relaxed load and a
//! Relaxed store (no read-modify-write, no shared cache line). Frees are counted by the freeing
//! thread's heap, so per-class `live = sum(allocations) - sum(frees)` over all heaps.
//! Slow-path and OS counters are global Relaxed atomics.
//!
//! A snapshot is **not atomic across counters**: it reads each counter once, while other threads
//! keep running, so two fields may disagree by the operations in flight during the read (for
//! example `live_objects` may briefly lag a slab's `used`). Every counter is exact once the
//! threads that touched it are quiescent.

use core::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use crate::epoch::{self, EpochId, EpochState, EPOCH_SLOTS, RING};
use crate::heap;
use crate::os::{PageSource, OS};
use crate::segment::{self, SEGMENT_SIZE};
use crate::size_class::{SizeClass, NUM_CLASSES, SLAB_SIZE};
use crate::slab::SlabState;

/// Adds one to a counter that only the calling thread writes (Relaxed load + store).
#[inline]
pub(crate) fn bump_owned(c: &AtomicU64) {
    c.store(c.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
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
}

/// Process-wide counters (Relaxed atomics, slow paths only).
pub(crate) struct GlobalCounters {
    pub(crate) segments_mapped: AtomicU64,
    pub(crate) new_slabs: [AtomicU64; NUM_CLASSES],
    pub(crate) orphan_frees: [AtomicU64; NUM_CLASSES],
    pub(crate) madvise_calls: AtomicU64,
    pub(crate) madvise_bytes: AtomicU64,
    pub(crate) madvise_failures: AtomicU64,
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

/// Counters of one size class. Counts are since process start; `live_*` and `*_slabs` are gauges
/// as of the snapshot.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct ClassStats {
    /// Index of the class, 0 = smallest.
    pub class_index: u32,
    /// Bytes per object.
    pub object_size: u64,
    /// Allocations served from this class (counter).
    pub allocations: u64,
    /// Frees into this class (counter).
    pub frees: u64,
    /// Objects allocated and not freed (gauge): `allocations - frees`.
    pub live_objects: u64,
    /// `live_objects * object_size` (gauge, bytes).
    pub live_bytes: u64,
    /// Slabs with free room, including each thread's current allocation slab (gauge).
    pub partial_slabs: u64,
    /// Slabs with no free object known to their owner (gauge).
    pub full_slabs: u64,
    /// Empty slabs kept warm in thread caches, not yet purged (gauge).
    pub cached_empty_slabs: u64,
    /// Slabs taken for this class from the global pool or a new mapping (counter).
    pub new_slabs: u64,
    /// Allocations that left the fast path (counter).
    pub slow_path_hits: u64,
    /// Slow-path allocations that needed a slab from outside the thread (counter).
    pub slow_path_cache_miss: u64,
    /// Slow-path allocations caused by the thread's epoch having changed (counter).
    pub slow_path_epoch_closed: u64,
    /// Empty slabs kept in a thread's empty cache (counter).
    pub empty_slab_recycled: u64,
    /// Empty slabs purged because the cache was full or their epoch was closing (counter).
    pub empty_slab_overflowed: u64,
    /// Bytes of this class's slabs that may be resident (gauge, estimate: touched pages).
    pub resident_bytes: u64,
}

/// One slot of the epoch ring. Close figures are for the era now in the slot (they reset when
/// the slot opens a new era).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct EpochStats {
    /// Ring index, 0..16.
    pub epoch_id: u32,
    /// Era of the epoch in this slot (0: slot never used).
    pub era: u64,
    /// `None` for a slot never used.
    pub state: Option<EpochState>,
    /// CLOCK_MONOTONIC ns when the era opened (0 for the first epoch).
    pub opened_ns: u64,
    /// Seconds since the era opened, as of the snapshot.
    pub age_sec: f64,
    /// Live domain guards on this era (gauge).
    pub refcount: u64,
    /// The era's domain label, if any.
    pub label: Option<String>,
    /// Slabs of this era that hold live objects (gauge).
    pub live_slabs: u64,
    /// Bytes of live objects in slabs of this era (gauge, object-size granularity).
    pub live_bytes: u64,
    /// Slabs of earlier eras of this slot that still hold live objects (gauge).
    pub stale_era_slabs: u64,
    /// `epoch::close` calls on this era (counter).
    pub close_calls: u64,
    /// Slabs the close sweeps looked at (counter).
    pub close_scanned_slabs: u64,
    /// Slabs the close sweeps found empty and recycled (counter).
    pub close_recycled_slabs: u64,
    /// Bytes purged from this era's slabs after it stopped being active, by close sweeps and by
    /// draining slabs that emptied later (counter).
    pub purged_bytes: u64,
    /// Total time spent in `close` for this era (counter, ns).
    pub close_total_ns: u64,
    /// Duration of the last close (ns).
    pub last_close_ns: u64,
    /// Bytes purged during the last close.
    pub last_close_purged_bytes: u64,
    /// RSS just before the last close (bytes; 0 unless `epoch::set_rss_on_close` is on).
    pub rss_before_close: u64,
    /// RSS just after the last close (bytes; 0 unless `epoch::set_rss_on_close` is on).
    pub rss_after_close: u64,
}

impl EpochStats {
    /// Reclamation yield of the close sweeps: recycled / scanned (None before any scan).
    pub fn reclamation_yield(&self) -> Option<f64> {
        (self.close_scanned_slabs > 0).then(|| self.close_recycled_slabs as f64 / self.close_scanned_slabs as f64)
    }
}

/// Process-wide figures.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct GlobalStats {
    /// Address space mapped by the allocator (gauge, bytes): segments + large mappings + heaps.
    pub mapped_bytes: u64,
    /// Estimate of the allocator's resident memory (gauge, bytes): touched slab pages, segment
    /// headers, large mappings and their cache, thread heaps.
    pub resident_bytes: u64,
    /// Live bytes in slabs (gauge).
    pub small_live_bytes: u64,
    /// Large objects allocated and not freed (gauge).
    pub large_objects: u64,
    /// Bytes requested by live large objects (gauge).
    pub large_bytes: u64,
    /// Bytes of freed large mappings kept for reuse (gauge).
    pub large_cache_bytes: u64,
    /// Large allocations served from the cache (counter).
    pub large_cache_hits: u64,
    /// Segments mapped (counter; segments are never unmapped).
    pub segments: u64,
    /// Purged slabs in the global pool (gauge).
    pub pooled_slabs: u64,
    /// `madvise` calls that purged memory (counter).
    pub madvise_calls: u64,
    /// Bytes purged (counter).
    pub madvise_bytes: u64,
    /// `madvise` calls the kernel refused (counter).
    pub madvise_failures: u64,
    /// `epoch::close` calls (counter).
    pub epoch_close_calls: u64,
    /// Slabs looked at by close sweeps (counter).
    pub epoch_close_scanned_slabs: u64,
    /// Slabs purged and recycled by close sweeps (counter).
    pub epoch_close_recycled_slabs: u64,
    /// Thread heaps ever created (live or parked).
    pub heaps: u64,
    /// Empty unpurged slabs kept for reuse in the global pool (gauge).
    pub warm_slabs: u64,
    /// Total time in `epoch::close` (counter, ns).
    pub epoch_close_total_ns: u64,
    /// Era of the last closed epoch (0: none yet).
    pub last_close_era: u64,
    /// Duration of the last close (ns).
    pub last_close_ns: u64,
    /// Bytes purged during the last close.
    pub last_close_purged_bytes: u64,
    /// RSS before the last close (bytes; 0 unless `epoch::set_rss_on_close` is on).
    pub last_close_rss_before: u64,
    /// RSS after the last close (bytes; 0 unless `epoch::set_rss_on_close` is on).
    pub last_close_rss_after: u64,
    /// Automatic epoch advances (counter).
    pub auto_advances: u64,
    /// Epochs opened while all 16 ring slots were ACTIVE, so that an active era passed (counter).
    pub ring_overflows: u64,
    /// Labels that did not fit in the registry and got the overflow label (counter).
    pub label_overflows: u64,
    /// Domain guards dropped out of LIFO order (counter).
    pub domain_misuse_out_of_order: u64,
    /// Domain guards dropped on another thread than the one that entered (counter).
    pub domain_misuse_wrong_thread: u64,
    /// Domains entered after their epoch stopped being active (counter).
    pub domain_misuse_passed_era: u64,
    /// Domain guards nested deeper than the per-thread limit (counter).
    pub domain_misuse_too_deep: u64,
    /// Reclaimer passes run (counter).
    pub reclaimer_ticks: u64,
}

/// A point-in-time view of every counter. Not atomic across counters (see the module docs).
#[derive(Clone, Debug, Serialize)]
pub struct Snapshot {
    /// CLOCK_REALTIME ns when the snapshot was taken.
    pub timestamp_ns: u64,
    /// OS page size in bytes.
    pub page_size: u64,
    /// Bytes per slab.
    pub slab_size: u64,
    /// The current epoch (its era; its ring index is `era - 1 mod 16`).
    pub current_epoch: EpochId,
    /// One entry per size class.
    pub classes: Vec<ClassStats>,
    /// One entry per ring slot.
    pub epochs: Vec<EpochStats>,
    /// Process-wide figures.
    pub global: GlobalStats,
}

fn sum(a: &[AtomicU64; NUM_CLASSES], into: &mut [u64; NUM_CLASSES]) {
    for (o, c) in into.iter_mut().zip(a) {
        *o += c.load(Ordering::Relaxed);
    }
}

/// Folds every counter into a [`Snapshot`]. Costs a walk over the thread heaps and the slab
/// metadata (64 bytes per 64 KiB slab); does not stop other threads.
pub fn snapshot() -> Snapshot {
    let page = OS.page_size();
    // Gather into fixed arrays first: the Vecs are built at the end so that this function's own
    // allocations do not move the counters it is reading.
    let mut allocs = [0u64; NUM_CLASSES];
    let mut frees = [0u64; NUM_CLASSES];
    let mut slow = [0u64; NUM_CLASSES];
    let mut miss = [0u64; NUM_CLASSES];
    let mut closed = [0u64; NUM_CLASSES];
    let mut recycled = [0u64; NUM_CLASSES];
    let mut overflowed = [0u64; NUM_CLASSES];
    heap::for_each_heap(|s| {
        sum(&s.allocs, &mut allocs);
        sum(&s.frees, &mut frees);
        sum(&s.slow_path_hits, &mut slow);
        sum(&s.slow_cache_miss, &mut miss);
        sum(&s.slow_epoch_closed, &mut closed);
        sum(&s.empty_recycled, &mut recycled);
        sum(&s.empty_overflowed, &mut overflowed);
    });
    sum(&GLOBAL.orphan_frees, &mut frees);

    let mut partial = [0u64; NUM_CLASSES];
    let mut full = [0u64; NUM_CLASSES];
    let mut empty = [0u64; NUM_CLASSES];
    let mut resident = [0u64; NUM_CLASSES];
    let mut epoch_slabs = [0u64; EPOCH_SLOTS];
    let mut epoch_bytes = [0u64; EPOCH_SLOTS];
    let mut stale = [0u64; EPOCH_SLOTS];
    let mut slab_resident = 0u64;
    segment::for_each_slab(|slab| {
        let state = slab.state();
        if state == SlabState::Free {
            return;
        }
        let c = slab.class();
        let touched = slab.touched_bytes(page) as u64;
        resident[c.index()] += touched;
        slab_resident += touched;
        match state {
            SlabState::Full => full[c.index()] += 1,
            SlabState::Empty => empty[c.index()] += 1,
            _ => partial[c.index()] += 1,
        }
        let used = slab.used() as u64;
        if used > 0 {
            let era = slab.era.load(Ordering::Relaxed);
            let slot = epoch::slot_of(era);
            if RING[slot].era.load(Ordering::Relaxed) == era {
                epoch_slabs[slot] += 1;
                epoch_bytes[slot] += used * c.object_size() as u64;
            } else {
                stale[slot] += 1;
            }
        }
    });

    let mut small_live = 0u64;
    let classes: Vec<ClassStats> = SizeClass::all()
        .map(|c| {
            let i = c.index();
            let live = allocs[i].saturating_sub(frees[i]);
            small_live += live * c.object_size() as u64;
            ClassStats {
                class_index: i as u32,
                object_size: c.object_size() as u64,
                allocations: allocs[i],
                frees: frees[i],
                live_objects: live,
                live_bytes: live * c.object_size() as u64,
                partial_slabs: partial[i],
                full_slabs: full[i],
                cached_empty_slabs: empty[i],
                new_slabs: GLOBAL.new_slabs[i].load(Ordering::Relaxed),
                slow_path_hits: slow[i],
                slow_path_cache_miss: miss[i],
                slow_path_epoch_closed: closed[i],
                empty_slab_recycled: recycled[i],
                empty_slab_overflowed: overflowed[i],
                resident_bytes: resident[i],
            }
        })
        .collect();
    let now = crate::os::monotonic_ns();
    let epochs = (0..EPOCH_SLOTS)
        .map(|i| {
            let r = &RING[i];
            let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
            let opened = l(&r.opened_ns);
            let label_id = l(&r.label);
            let label = (label_id != crate::domain::NO_LABEL).then(|| {
                let mut buf = [0u8; crate::domain::LABEL_MAX];
                let n = crate::domain::label_text(label_id as u8, &mut buf);
                String::from_utf8_lossy(&buf[..n]).into_owned()
            });
            EpochStats {
                epoch_id: i as u32,
                era: l(&r.era),
                state: r.state(),
                opened_ns: opened,
                age_sec: if opened == 0 { 0.0 } else { now.saturating_sub(opened) as f64 / 1e9 },
                refcount: l(&r.refcount),
                label,
                live_slabs: epoch_slabs[i],
                live_bytes: epoch_bytes[i],
                stale_era_slabs: stale[i],
                close_calls: l(&r.close_calls),
                close_scanned_slabs: l(&r.close_scanned_slabs),
                close_recycled_slabs: l(&r.close_recycled_slabs),
                purged_bytes: l(&r.purged_bytes),
                close_total_ns: l(&r.close_total_ns),
                last_close_ns: l(&r.last_close_ns),
                last_close_purged_bytes: l(&r.last_close_purged_bytes),
                rss_before_close: l(&r.rss_before_close),
                rss_after_close: l(&r.rss_after_close),
            }
        })
        .collect();

    let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let segments = g(&GLOBAL.segments_mapped);
    let large_mapped = g(&GLOBAL.large_mapped_bytes);
    let heap_bytes = g(&GLOBAL.heap_bytes);
    // Each segment's header: the slab metadata array spans two pages.
    let header_resident = segments * 2 * page as u64;
    let large_allocs = g(&GLOBAL.large_allocs);
    let global = GlobalStats {
        mapped_bytes: segments * SEGMENT_SIZE as u64 + large_mapped + heap_bytes,
        resident_bytes: slab_resident + header_resident + large_mapped + heap_bytes,
        small_live_bytes: small_live,
        large_objects: large_allocs.saturating_sub(g(&GLOBAL.large_frees)),
        large_bytes: g(&GLOBAL.large_live_bytes),
        large_cache_bytes: g(&GLOBAL.large_cache_bytes),
        large_cache_hits: g(&GLOBAL.large_cache_hits),
        segments,
        pooled_slabs: segment::POOL_SLABS.load(Ordering::Relaxed) as u64,
        madvise_calls: g(&GLOBAL.madvise_calls),
        madvise_bytes: g(&GLOBAL.madvise_bytes),
        madvise_failures: g(&GLOBAL.madvise_failures),
        epoch_close_calls: g(&GLOBAL.epoch_close_calls),
        epoch_close_scanned_slabs: g(&GLOBAL.epoch_close_scanned_slabs),
        epoch_close_recycled_slabs: g(&GLOBAL.epoch_close_recycled_slabs),
        heaps: g(&GLOBAL.heaps),
        warm_slabs: segment::WARM_SLABS.load(Ordering::Relaxed) as u64,
        epoch_close_total_ns: g(&GLOBAL.epoch_close_total_ns),
        last_close_era: g(&GLOBAL.last_close_era),
        last_close_ns: g(&GLOBAL.last_close_ns),
        last_close_purged_bytes: g(&GLOBAL.last_close_purged_bytes),
        last_close_rss_before: g(&GLOBAL.last_close_rss_before),
        last_close_rss_after: g(&GLOBAL.last_close_rss_after),
        auto_advances: g(&GLOBAL.auto_advances),
        ring_overflows: g(&GLOBAL.ring_overflows),
        label_overflows: g(&GLOBAL.label_overflows),
        domain_misuse_out_of_order: g(&GLOBAL.domain_misuse_out_of_order),
        domain_misuse_wrong_thread: g(&GLOBAL.domain_misuse_wrong_thread),
        domain_misuse_passed_era: g(&GLOBAL.domain_misuse_passed_era),
        domain_misuse_too_deep: g(&GLOBAL.domain_misuse_too_deep),
        reclaimer_ticks: crate::reclaim::TICKS.load(Ordering::Relaxed),
    };
    Snapshot {
        timestamp_ns: crate::os::realtime_ns(),
        page_size: page as u64,
        slab_size: SLAB_SIZE as u64,
        current_epoch: epoch::current(),
        classes,
        epochs,
        global,
    }
}
