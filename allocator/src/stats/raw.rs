//! The snapshot as fixed words: gathered from every layer's counters without allocating (the
//! reclaimer publishes it, see `publish.rs`), and copied word by word out of another process's
//! region (`attach.rs`).

use core::sync::atomic::{AtomicU64, Ordering};

use crate::counters::GLOBAL;
use crate::epoch::{self, EpochState, EPOCH_SLOTS};
use crate::heap;
use crate::labels::{LABEL_MAX, MAX_LABELS};
use crate::os::{PageSource, OS};
use crate::ring::{self, RING};
use crate::segment::{self, SEGMENT_SIZE};
use crate::size_class::NUM_CLASSES;
use crate::slab::SlabState;

/// The snapshot as fixed-size plain words: gathered without allocating (so the reclaimer thread
/// can publish it, see `publish.rs`), every field a `u64` so any bit pattern is valid and the
/// record can be copied word by word out of shared memory.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct RawSnapshot {
    pub(crate) global: RawGlobal,
    pub(crate) classes: [RawClass; NUM_CLASSES],
    pub(crate) epochs: [RawEpoch; EPOCH_SLOTS],
    pub(crate) labels: [RawLabel; MAX_LABELS],
}

#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct RawGlobal {
    pub(crate) timestamp_ns: u64,
    pub(crate) monotonic_ns: u64,
    pub(crate) pid: u64,
    pub(crate) page_size: u64,
    pub(crate) current_era: u64,
    pub(crate) rss: u64,
    pub(crate) label_count: u64,
    pub(crate) mapped_bytes: u64,
    pub(crate) resident_bytes: u64,
    pub(crate) large_objects: u64,
    pub(crate) large_bytes: u64,
    pub(crate) large_cache_bytes: u64,
    pub(crate) large_cache_hits: u64,
    pub(crate) segments: u64,
    pub(crate) pooled_slabs: u64,
    pub(crate) warm_slabs: u64,
    pub(crate) madvise_calls: u64,
    pub(crate) madvise_bytes: u64,
    pub(crate) madvise_failures: u64,
    pub(crate) epoch_close_calls: u64,
    pub(crate) epoch_close_scanned_slabs: u64,
    pub(crate) epoch_close_recycled_slabs: u64,
    pub(crate) epoch_close_total_ns: u64,
    pub(crate) last_close_era: u64,
    pub(crate) last_close_ns: u64,
    pub(crate) last_close_purged_bytes: u64,
    pub(crate) last_close_rss_before: u64,
    pub(crate) last_close_rss_after: u64,
    pub(crate) heaps: u64,
    pub(crate) auto_advances: u64,
    pub(crate) ring_overflows: u64,
    pub(crate) label_overflows: u64,
    pub(crate) profile_sample_bytes: u64,
    pub(crate) profile_samples: u64,
    pub(crate) profile_samples_dropped: u64,
    pub(crate) domain_misuse_out_of_order: u64,
    pub(crate) domain_misuse_wrong_thread: u64,
    pub(crate) domain_misuse_passed_era: u64,
    pub(crate) domain_misuse_too_deep: u64,
    pub(crate) reclaimer_ticks: u64,
    pub(crate) last_close_deferred_bytes: u64,
    pub(crate) reserve_limit_slabs: u64,
    pub(crate) bucket_extensions: u64,
    pub(crate) idle_trims: u64,
    pub(crate) idle_trim_bytes: u64,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct RawClass {
    pub(crate) allocations: u64,
    pub(crate) frees: u64,
    pub(crate) partial: u64,
    pub(crate) full: u64,
    pub(crate) warm: u64,
    pub(crate) new_slabs: u64,
    pub(crate) slow: u64,
    pub(crate) miss: u64,
    pub(crate) closed: u64,
    pub(crate) recycled: u64,
    pub(crate) overflowed: u64,
    pub(crate) resident: u64,
    pub(crate) madvise_calls: u64,
    pub(crate) madvise_bytes: u64,
    pub(crate) madvise_failures: u64,
    pub(crate) close_sweeps: u64,
    pub(crate) close_scanned: u64,
    pub(crate) close_recycled: u64,
    pub(crate) recycled_slabs: u64,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct RawEpoch {
    pub(crate) era: u64,
    /// 0 unused, 1 active, 2 closing.
    pub(crate) state: u64,
    pub(crate) opened_ns: u64,
    pub(crate) refcount: u64,
    /// Label id or NO_LABEL.
    pub(crate) label: u64,
    pub(crate) partial: u64,
    pub(crate) full: u64,
    pub(crate) reclaimable: u64,
    pub(crate) resident: u64,
    pub(crate) live_slabs: u64,
    pub(crate) live_bytes: u64,
    pub(crate) stale: u64,
    pub(crate) close_calls: u64,
    pub(crate) close_scanned: u64,
    pub(crate) close_recycled: u64,
    pub(crate) purged_bytes: u64,
    pub(crate) close_total_ns: u64,
    pub(crate) last_close_ns: u64,
    pub(crate) last_close_purged_bytes: u64,
    pub(crate) rss_before_close: u64,
    pub(crate) rss_after_close: u64,
    pub(crate) deferred_bytes: u64,
    pub(crate) last_close_deferred_bytes: u64,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct RawLabel {
    pub(crate) len: u64,
    pub(crate) bytes: [u64; LABEL_MAX.div_ceil(8)],
    pub(crate) opened: u64,
    pub(crate) ended: u64,
    pub(crate) allocated: u64,
}

impl RawSnapshot {
    /// All zeros (a valid value: every field is a plain integer).
    pub(crate) fn zeroed() -> RawSnapshot {
        // SAFETY: RawSnapshot is repr(C) and made only of u64s, for which zero is valid.
        unsafe { core::mem::zeroed() }
    }
}

/// Per class, the highest allocation and free counts a snapshot has reported: the free caches'
/// counts are read as one state of each heap, but a heap stopped halfway through a change of
/// its cache (`heap/cache.rs`) can leave them off by a cache's depth for a while. Reporting the
/// highest count seen keeps every snapshot's counters from going down (Prometheus would read a
/// reset).
#[allow(clippy::declare_interior_mutable_const)]
const SEEN_ZERO: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];
static SEEN: [[AtomicU64; 2]; NUM_CLASSES] = [SEEN_ZERO; NUM_CLASSES];

/// Adds what the free caches served to the counts, then keeps them from going down (`SEEN`).
fn add_cache_traffic(classes: &mut [RawClass; NUM_CLASSES]) {
    if !cfg!(feature = "stats") {
        return;
    }
    heap::for_each_cache_traffic(|class, allocs, frees| {
        let c = &mut classes[class.index()];
        c.allocations = c.allocations.wrapping_add(allocs);
        c.frees = c.frees.wrapping_add(frees);
    });
    for (c, seen) in classes.iter_mut().zip(&SEEN) {
        c.allocations = c.allocations.max(seen[0].fetch_max(c.allocations, Ordering::Relaxed));
        c.frees = c.frees.max(seen[1].fetch_max(c.frees, Ordering::Relaxed));
    }
}

fn sum_into(a: &[AtomicU64; NUM_CLASSES], into: &mut [RawClass; NUM_CLASSES], f: fn(&mut RawClass) -> &mut u64) {
    for (o, c) in into.iter_mut().zip(a) {
        *f(o) += c.load(Ordering::Relaxed);
    }
}

/// Reads every counter into `raw`, allocating nothing. `rss` says whether to read the process
/// RSS from /proc (a few microseconds).
pub(crate) fn gather(raw: &mut RawSnapshot, rss: bool) {
    *raw = RawSnapshot::zeroed();
    let page = OS.page_size();
    heap::for_each_heap(|s| {
        sum_into(&s.allocs, &mut raw.classes, |c| &mut c.allocations);
        sum_into(&s.frees, &mut raw.classes, |c| &mut c.frees);
        sum_into(&s.slow_path_hits, &mut raw.classes, |c| &mut c.slow);
        sum_into(&s.slow_cache_miss, &mut raw.classes, |c| &mut c.miss);
        sum_into(&s.slow_epoch_closed, &mut raw.classes, |c| &mut c.closed);
        sum_into(&s.empty_recycled, &mut raw.classes, |c| &mut c.recycled);
        sum_into(&s.empty_overflowed, &mut raw.classes, |c| &mut c.overflowed);
        for (l, i) in raw.labels.iter_mut().zip(0..MAX_LABELS) {
            l.opened = l.opened.wrapping_add(s.label_opened[i].load(Ordering::Relaxed));
            l.ended = l.ended.wrapping_add(s.label_ended[i].load(Ordering::Relaxed));
            l.allocated = l.allocated.wrapping_add(s.label_bytes[i].load(Ordering::Relaxed));
        }
    });
    for (l, i) in raw.labels.iter_mut().zip(0..MAX_LABELS) {
        l.opened = l.opened.wrapping_add(GLOBAL.label_opened_fallback[i].load(Ordering::Relaxed));
        l.ended = l.ended.wrapping_add(GLOBAL.label_ended_fallback[i].load(Ordering::Relaxed));
    }
    let g = &GLOBAL;
    sum_into(&g.orphan_frees, &mut raw.classes, |c| &mut c.frees);
    add_cache_traffic(&mut raw.classes);
    sum_into(&g.new_slabs, &mut raw.classes, |c| &mut c.new_slabs);
    sum_into(&g.class_madvise_calls, &mut raw.classes, |c| &mut c.madvise_calls);
    sum_into(&g.class_madvise_bytes, &mut raw.classes, |c| &mut c.madvise_bytes);
    sum_into(&g.class_madvise_failures, &mut raw.classes, |c| &mut c.madvise_failures);
    sum_into(&g.class_close_sweeps, &mut raw.classes, |c| &mut c.close_sweeps);
    sum_into(&g.class_close_scanned, &mut raw.classes, |c| &mut c.close_scanned);
    sum_into(&g.class_close_recycled, &mut raw.classes, |c| &mut c.close_recycled);
    sum_into(&g.class_recycled_slabs, &mut raw.classes, |c| &mut c.recycled_slabs);

    let mut slab_resident = 0u64;
    segment::for_each_slab(|slab| {
        let state = slab.state();
        if state == SlabState::Free {
            return;
        }
        let c = slab.class();
        let rc = &mut raw.classes[c.index()];
        let touched = slab.resident_bytes(page) as u64;
        rc.resident += touched;
        slab_resident += touched;
        let era = slab.era();
        let slot = ring::slot_of(era);
        let current_era = RING[slot].era.load(Ordering::Relaxed) == era;
        match state {
            SlabState::Full => rc.full += 1,
            SlabState::Empty => rc.warm += 1,
            _ => rc.partial += 1,
        }
        let re = &mut raw.epochs[slot];
        if !current_era {
            if slab.used() > 0 {
                re.stale += 1;
            }
            return;
        }
        re.resident += touched;
        match state {
            SlabState::Full => re.full += 1,
            SlabState::Empty => re.reclaimable += 1,
            _ => re.partial += 1,
        }
        let used = slab.used() as u64;
        if used > 0 {
            re.live_slabs += 1;
            re.live_bytes += used * c.object_size() as u64;
        }
    });
    // Objects in the thread heaps' free caches are dead, though their slabs count them.
    heap::for_each_cached(|era, class, n| {
        let slot = ring::slot_of(era);
        if RING[slot].era.load(Ordering::Relaxed) == era {
            let re = &mut raw.epochs[slot];
            re.live_bytes = re.live_bytes.saturating_sub(n * class.object_size() as u64);
        }
    });

    let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
    for (i, (re, r)) in raw.epochs.iter_mut().zip(&RING).enumerate() {
        re.refcount = heap::domain_sum(i).max(0) as u64;
        re.era = l(&r.era);
        re.state = match r.state() {
            Some(EpochState::Active) => 1,
            Some(EpochState::Closing) => 2,
            None => 0,
        };
        re.opened_ns = l(&r.opened_ns);
        re.label = l(&r.label);
        re.close_calls = l(&r.close_calls);
        re.close_scanned = l(&r.close_scanned_slabs);
        re.close_recycled = l(&r.close_recycled_slabs);
        re.purged_bytes = l(&r.purged_bytes);
        re.close_total_ns = l(&r.close_total_ns);
        re.last_close_ns = l(&r.last_close_ns);
        re.last_close_purged_bytes = l(&r.last_close_purged_bytes);
        re.rss_before_close = l(&r.rss_before_close);
        re.rss_after_close = l(&r.rss_after_close);
        re.deferred_bytes = l(&r.deferred_bytes);
        re.last_close_deferred_bytes = l(&r.last_close_deferred_bytes);
    }
    raw.global.label_count = crate::labels::for_each_label(|i, bytes| {
        let o = &mut raw.labels[i];
        o.len = bytes.len() as u64;
        let mut padded = [0u8; LABEL_MAX.div_ceil(8) * 8];
        padded[..bytes.len()].copy_from_slice(bytes);
        for (w, chunk) in o.bytes.iter_mut().zip(padded.chunks(8)) {
            let mut b = [0u8; 8];
            b.copy_from_slice(chunk);
            *w = u64::from_le_bytes(b);
        }
    }) as u64;

    let segments = l(&g.segments_mapped);
    let large_mapped = l(&g.large_mapped_bytes);
    let heap_bytes = l(&g.heap_bytes);
    let header_resident = segment::header_resident_bytes(page);
    let rg = &mut raw.global;
    rg.timestamp_ns = crate::os::realtime_ns();
    rg.monotonic_ns = crate::os::monotonic_ns();
    // SAFETY: getpid has no preconditions.
    rg.pid = unsafe { libc::getpid() } as u64;
    rg.page_size = page as u64;
    rg.current_era = epoch::current().era();
    rg.rss = if rss { crate::os::rss_bytes() } else { 0 };
    rg.mapped_bytes = segments * SEGMENT_SIZE as u64 + large_mapped + heap_bytes;
    rg.resident_bytes = slab_resident + header_resident + large_mapped + heap_bytes;
    rg.large_objects = l(&g.large_allocs).saturating_sub(l(&g.large_frees));
    rg.large_bytes = l(&g.large_live_bytes);
    rg.large_cache_bytes = l(&g.large_cache_bytes);
    rg.large_cache_hits = l(&g.large_cache_hits);
    rg.segments = segments;
    rg.pooled_slabs = segment::POOL_SLABS.load(Ordering::Relaxed) as u64;
    rg.warm_slabs = segment::WARM_SLABS.load(Ordering::Relaxed) as u64;
    rg.madvise_calls = l(&g.madvise_calls);
    rg.madvise_bytes = l(&g.madvise_bytes);
    rg.madvise_failures = l(&g.madvise_failures);
    rg.epoch_close_calls = l(&g.epoch_close_calls);
    rg.epoch_close_scanned_slabs = l(&g.epoch_close_scanned_slabs);
    rg.epoch_close_recycled_slabs = l(&g.epoch_close_recycled_slabs);
    rg.epoch_close_total_ns = l(&g.epoch_close_total_ns);
    rg.last_close_era = l(&g.last_close_era);
    rg.last_close_ns = l(&g.last_close_ns);
    rg.last_close_purged_bytes = l(&g.last_close_purged_bytes);
    rg.last_close_rss_before = l(&g.last_close_rss_before);
    rg.last_close_rss_after = l(&g.last_close_rss_after);
    rg.heaps = l(&g.heaps);
    rg.auto_advances = l(&g.auto_advances);
    rg.ring_overflows = l(&g.ring_overflows);
    rg.label_overflows = l(&g.label_overflows);
    rg.profile_sample_bytes = crate::profile::sample_bytes();
    (rg.profile_samples, rg.profile_samples_dropped) = crate::profile::counts();
    rg.domain_misuse_out_of_order = l(&g.domain_misuse_out_of_order);
    rg.domain_misuse_wrong_thread = l(&g.domain_misuse_wrong_thread);
    rg.domain_misuse_passed_era = l(&g.domain_misuse_passed_era);
    rg.domain_misuse_too_deep = l(&g.domain_misuse_too_deep);
    rg.reclaimer_ticks = l(&g.reclaimer_ticks);
    rg.last_close_deferred_bytes = l(&g.last_close_deferred_bytes);
    rg.reserve_limit_slabs = segment::reserve_limit() as u64;
    rg.bucket_extensions = l(&g.bucket_extensions);
    rg.idle_trims = l(&g.idle_trims);
    rg.idle_trim_bytes = l(&g.idle_trim_bytes);
}
