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

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::counters::GLOBAL;
use crate::domain::{LABEL_MAX, MAX_LABELS};
use crate::epoch::{self, EpochId, EpochState, EPOCH_SLOTS};
use crate::heap;
use crate::os::{PageSource, OS};
use crate::ring::{self, RING};
use crate::ring::{NO_LABEL, SHARED_LABEL};
use crate::segment::{self, SEGMENT_SIZE};
use crate::size_class::{SizeClass, NUM_CLASSES, SLAB_SIZE};
use crate::slab::SlabState;

/// Version of the snapshot JSON document (the `schema_version` key); bumped on any
/// incompatible change. `schemas/snapshot.schema.json` describes it.
pub const SCHEMA_VERSION: u32 = 1;

/// Counters of one size class. Counts are since process start; `live_*` and `*_slabs` are gauges
/// as of the snapshot. Serialized with the reference stats_dump's keys where they exist.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
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
    #[serde(rename = "total_partial_slabs")]
    pub partial_slabs: u64,
    /// Slabs with no free object known to their owner (gauge).
    #[serde(rename = "total_full_slabs")]
    pub full_slabs: u64,
    /// Slabs holding objects: partial + full (gauge).
    pub net_slabs: u64,
    /// Empty slabs of this class kept warm (unpurged) in the global pool (gauge).
    #[serde(rename = "cache_size")]
    pub cached_empty_slabs: u64,
    /// Most warm slabs the pool keeps, all classes together (constant).
    pub cache_capacity: u64,
    /// Slabs taken for this class from the pool or a new mapping (counter).
    #[serde(rename = "new_slab_count")]
    pub new_slabs: u64,
    /// Allocations that left the fast path (counter).
    pub slow_path_hits: u64,
    /// Slow-path allocations that needed a slab from outside the thread (counter).
    pub slow_path_cache_miss: u64,
    /// Slow-path allocations caused by the thread's epoch having changed (counter).
    pub slow_path_epoch_closed: u64,
    /// Emptied slabs kept unpurged for reuse, warm or in the close reserve (counter).
    pub empty_slab_recycled: u64,
    /// Emptied slabs purged at once: their epoch was closing (and not a small phase) or the
    /// pool list they would wait on was full (counter).
    pub empty_slab_overflowed: u64,
    /// Slabs of closed epochs that still held survivors, taken up again as allocation slabs so
    /// their free cells serve a later epoch (counter).
    #[serde(default)]
    pub recycled_slabs: u64,
    /// `empty_slab_recycled / (recycled + overflowed)`, in percent (0 before any).
    pub recycle_rate_pct: f64,
    /// `madvise` calls that purged pages of this class's slabs (counter).
    pub madvise_calls: u64,
    /// Bytes purged from slabs of this class (counter).
    pub madvise_bytes: u64,
    /// `madvise` calls the kernel refused for this class (counter).
    pub madvise_failures: u64,
    /// Close sweeps that looked at a slab of this class (counter). Not the number of
    /// `epoch::close` calls: summing it over classes does not give that (see the top level).
    pub epoch_close_calls: u64,
    /// Slabs of this class looked at by close sweeps (counter).
    pub epoch_close_scanned_slabs: u64,
    /// Slabs of this class recycled by close sweeps (counter).
    pub epoch_close_recycled_slabs: u64,
    /// Time in close sweeps is not split by class: always 0 (the reference key is kept; see
    /// `epochs[].close_total_ns` and `global.epoch_close_total_ns`).
    pub epoch_close_total_ns: u64,
    /// Bytes of this class's slabs that may be resident (gauge, estimate: touched pages).
    #[serde(rename = "estimated_rss_bytes")]
    pub resident_bytes: u64,
    /// `1 - live_bytes / estimated_rss_bytes` (0 when nothing is resident): the share of this
    /// class's resident memory not holding live objects.
    pub fragmentation_ratio: f64,
}

/// One slot of the epoch ring. Close figures are for the era now in the slot (they reset when
/// the slot opens a new era).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct EpochStats {
    /// Ring index, 0..16.
    pub epoch_id: u32,
    /// Era of the epoch in this slot (0: slot never used).
    #[serde(rename = "epoch_era")]
    pub era: u64,
    /// `None` for a slot never used (serialized `"UNUSED"`).
    #[serde(serialize_with = "ser_state", deserialize_with = "de_state")]
    pub state: Option<EpochState>,
    /// CLOCK_MONOTONIC ns when the era opened (0 for the first epoch).
    pub opened_ns: u64,
    /// Seconds since the era opened, as of the snapshot.
    pub age_sec: f64,
    /// Domains open in this era: opened in it and not yet ended (gauge; guards are not counted).
    pub refcount: u64,
    /// The era's domain label, if any (serialized `""` when none).
    #[serde(serialize_with = "ser_label", deserialize_with = "de_label")]
    pub label: Option<String>,
    /// Slabs of this era with free room (gauge).
    pub total_partial_slabs: u64,
    /// Slabs of this era with no free room (gauge).
    pub total_full_slabs: u64,
    /// Empty slabs last used by this era, kept warm and not yet purged (gauge).
    pub total_reclaimable_slabs: u64,
    /// Bytes of this era's slabs that may be resident (gauge).
    pub estimated_rss_bytes: u64,
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
    /// `close_recycled_slabs / close_scanned_slabs` (None before any scan).
    pub reclamation_yield: Option<f64>,
    /// Bytes purged from this era's slabs after it stopped being active, by close sweeps and by
    /// draining slabs that emptied later (counter).
    pub purged_bytes: u64,
    /// Bytes of this era's empty slabs kept unpurged in the reserve after it stopped being
    /// active, for the next phase (counter; purged later by decay or `trim`, or now by
    /// `epoch::close_purge`).
    #[serde(default)]
    pub deferred_bytes: u64,
    /// Total time spent in `close` for this era (counter, ns).
    pub close_total_ns: u64,
    /// Duration of the last close (ns).
    pub last_close_ns: u64,
    /// Bytes purged during the last close.
    pub last_close_purged_bytes: u64,
    /// Bytes of empty slabs the last close kept in the reserve instead of purging them.
    #[serde(default)]
    pub last_close_deferred_bytes: u64,
    /// RSS just before the last close (bytes; 0 unless `epoch::set_rss_on_close` is on).
    #[serde(rename = "rss_before_close")]
    pub rss_before_close: u64,
    /// RSS just after the last close (bytes; 0 unless `epoch::set_rss_on_close` is on).
    #[serde(rename = "rss_after_close")]
    pub rss_after_close: u64,
}

impl EpochStats {
    /// Reclamation yield of the close sweeps: recycled / scanned (None before any scan).
    pub fn reclamation_yield(&self) -> Option<f64> {
        self.reclamation_yield
    }
}

fn ser_state<S: Serializer>(s: &Option<EpochState>, ser: S) -> Result<S::Ok, S::Error> {
    ser.serialize_str(match s {
        Some(EpochState::Active) => "ACTIVE",
        Some(EpochState::Closing) => "CLOSING",
        None => "UNUSED",
    })
}

fn ser_label<S: Serializer>(l: &Option<String>, ser: S) -> Result<S::Ok, S::Error> {
    ser.serialize_str(l.as_deref().unwrap_or(""))
}

fn de_state<'de, D: Deserializer<'de>>(de: D) -> Result<Option<EpochState>, D::Error> {
    let s = String::deserialize(de)?;
    match s.as_str() {
        "ACTIVE" => Ok(Some(EpochState::Active)),
        "CLOSING" => Ok(Some(EpochState::Closing)),
        "UNUSED" => Ok(None),
        other => Err(serde::de::Error::unknown_variant(other, &["ACTIVE", "CLOSING", "UNUSED"])),
    }
}

fn de_label<'de, D: Deserializer<'de>>(de: D) -> Result<Option<String>, D::Error> {
    let s = String::deserialize(de)?;
    Ok(if s.is_empty() { None } else { Some(s) })
}

impl Snapshot {
    /// The current epoch (from `current_era`; `current_epoch` is its ring index).
    pub fn current(&self) -> EpochId {
        EpochId::from_era(self.current_era)
    }
}

/// Process-wide figures.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
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
    /// Empty unpurged slabs kept for reuse in the global pool (gauge).
    pub warm_slabs: u64,
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
    /// Thread heaps ever created (live or parked).
    pub heaps: u64,
    /// Automatic epoch advances (counter).
    pub auto_advances: u64,
    /// `epoch::advance` calls that found every ring slot held by epochs with open domains, so the
    /// current epoch stayed current (counter).
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
    /// Bytes of empty slabs the last close kept in the reserve instead of purging them.
    #[serde(default)]
    pub last_close_deferred_bytes: u64,
    /// How many empty slabs the reserve keeps unpurged now (gauge): at least 256, more after
    /// big phases (see `design.rs`).
    #[serde(default)]
    pub reserve_limit_slabs: u64,
    /// Domain bucket rotations skipped because long-lived domains held all but one ring slot
    /// (counter): their neighbours then share a longer bucket instead of overflowing the ring.
    #[serde(default)]
    pub bucket_extensions: u64,
}

/// One entry of the label registry, with the figures of its domains.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct LabelEntry {
    /// Label id (0 is the fixed overflow label).
    pub id: u32,
    /// The label text.
    pub label: String,
    /// Domains of this label open now (gauge).
    #[serde(default)]
    pub open_domains: u64,
    /// Domains of this label opened since the process started (counter).
    #[serde(default)]
    pub domains_opened: u64,
    /// Bytes allocated (object sizes) by threads while inside a domain of this label (counter,
    /// exact up to the last enter or exit on each thread; needs the `stats` feature).
    #[serde(default)]
    pub allocated_bytes: u64,
}

/// A point-in-time view of every counter, in the shape of the stats_dump JSON document (the
/// reference's keys, with its bugs fixed: `current_epoch` is the ring index and the era is
/// separate; no counter underflows; nothing is over-counted). Not atomic across counters (see
/// the module docs).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Snapshot {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Version of the allocator crate that produced the snapshot.
    pub version: String,
    /// CLOCK_REALTIME ns when the snapshot was taken.
    pub timestamp_ns: u64,
    /// Process id of the process the snapshot describes.
    pub pid: u32,
    /// OS page size in bytes.
    pub page_size: u64,
    /// Bytes per slab.
    pub slab_size: u64,
    /// Slots in the epoch ring (16).
    pub epoch_count: u32,
    /// Ring index (`0..16`) of the current epoch; its era is `current_era` (see
    /// [`Snapshot::current`]).
    pub current_epoch: u32,
    /// Era of the current epoch.
    pub current_era: u64,
    /// Ring slots holding an ACTIVE epoch (the current one and domains').
    pub active_epoch_count: u32,
    /// Ring slots holding a CLOSING epoch.
    pub closing_epoch_count: u32,
    /// Slabs ever taken for a size class (counter): sum of `classes[].new_slab_count`.
    pub total_slabs_allocated: u64,
    /// Emptied slabs kept unpurged for reuse (warm or close reserve) (counter): sum of
    /// `classes[].empty_slab_recycled`.
    pub total_slabs_recycled: u64,
    /// Slabs holding objects now (gauge): sum of `classes[].net_slabs`.
    pub net_slabs: u64,
    /// Resident set size of the process (bytes, from /proc; 0 if unreadable).
    pub rss_bytes_current: u64,
    /// Resident bytes of all slabs (gauge): sum of `classes[].estimated_rss_bytes`.
    pub estimated_slab_rss_bytes: u64,
    /// Sum of `classes[].slow_path_hits`.
    pub total_slow_path_hits: u64,
    /// Sum of `classes[].empty_slab_overflowed`.
    pub total_cache_overflows: u64,
    /// Sum of `classes[].slow_path_cache_miss`.
    pub total_slow_cache_miss: u64,
    /// Sum of `classes[].slow_path_epoch_closed`.
    pub total_slow_epoch_closed: u64,
    /// `madvise` calls (counter).
    pub total_madvise_calls: u64,
    /// Bytes purged (counter).
    pub total_madvise_bytes: u64,
    /// `madvise` failures (counter).
    pub total_madvise_failures: u64,
    /// Registered domain labels.
    pub label_registry: Vec<LabelEntry>,
    /// One entry per size class.
    pub classes: Vec<ClassStats>,
    /// One entry per ring slot.
    pub epochs: Vec<EpochStats>,
    /// Process-wide figures.
    pub global: GlobalStats,
}

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
    pub(crate) domain_misuse_out_of_order: u64,
    pub(crate) domain_misuse_wrong_thread: u64,
    pub(crate) domain_misuse_passed_era: u64,
    pub(crate) domain_misuse_too_deep: u64,
    pub(crate) reclaimer_ticks: u64,
    pub(crate) last_close_deferred_bytes: u64,
    pub(crate) reserve_limit_slabs: u64,
    pub(crate) bucket_extensions: u64,
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
        let touched = slab.touched_bytes(page) as u64;
        rc.resident += touched;
        slab_resident += touched;
        let era = slab.era.load(Ordering::Relaxed);
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
    raw.global.label_count = crate::domain::for_each_label(|i, bytes| {
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
    rg.domain_misuse_out_of_order = l(&g.domain_misuse_out_of_order);
    rg.domain_misuse_wrong_thread = l(&g.domain_misuse_wrong_thread);
    rg.domain_misuse_passed_era = l(&g.domain_misuse_passed_era);
    rg.domain_misuse_too_deep = l(&g.domain_misuse_too_deep);
    rg.reclaimer_ticks = l(&g.reclaimer_ticks);
    rg.last_close_deferred_bytes = l(&g.last_close_deferred_bytes);
    rg.reserve_limit_slabs = segment::reserve_limit() as u64;
    rg.bucket_extensions = l(&g.bucket_extensions);
}

/// The label of an epoch that domains of several labels joined.
pub const SHARED_LABEL_TEXT: &str = "(shared)";

fn label_string(raw: &RawSnapshot, id: u64) -> Option<String> {
    if id == NO_LABEL {
        return None;
    }
    if id == SHARED_LABEL {
        return Some(SHARED_LABEL_TEXT.to_string());
    }
    let l = raw.labels.get(id as usize).unwrap_or(&raw.labels[0]);
    let mut bytes = [0u8; LABEL_MAX.div_ceil(8) * 8];
    for (chunk, w) in bytes.chunks_mut(8).zip(&l.bytes) {
        chunk.copy_from_slice(&w.to_le_bytes());
    }
    let n = (l.len as usize).min(LABEL_MAX);
    Some(String::from_utf8_lossy(&bytes[..n]).into_owned())
}

impl Snapshot {
    /// Builds the document from raw words (in-process, or copied out of another process's
    /// published region).
    pub(crate) fn from_raw(raw: &RawSnapshot) -> Snapshot {
        let rg = &raw.global;
        // Saturating arithmetic throughout: the words may come from another process, which could
        // write anything there (`plausible.rs` then rejects what cannot be true).
        let pct =
            |a: u64, b: u64| if a.saturating_add(b) == 0 { 0.0 } else { a as f64 * 100.0 / (a as f64 + b as f64) };
        let classes: Vec<ClassStats> = SizeClass::all()
            .map(|c| {
                let r = &raw.classes[c.index()];
                let size = c.object_size() as u64;
                let live = r.allocations.saturating_sub(r.frees);
                let live_bytes = live.saturating_mul(size);
                ClassStats {
                    class_index: c.index() as u32,
                    object_size: size,
                    allocations: r.allocations,
                    frees: r.frees,
                    live_objects: live,
                    live_bytes,
                    partial_slabs: r.partial,
                    full_slabs: r.full,
                    net_slabs: r.partial.saturating_add(r.full),
                    cached_empty_slabs: r.warm,
                    cache_capacity: segment::WARM_MAX as u64,
                    new_slabs: r.new_slabs,
                    slow_path_hits: r.slow,
                    slow_path_cache_miss: r.miss,
                    slow_path_epoch_closed: r.closed,
                    empty_slab_recycled: r.recycled,
                    empty_slab_overflowed: r.overflowed,
                    recycled_slabs: r.recycled_slabs,
                    recycle_rate_pct: pct(r.recycled, r.overflowed),
                    madvise_calls: r.madvise_calls,
                    madvise_bytes: r.madvise_bytes,
                    madvise_failures: r.madvise_failures,
                    epoch_close_calls: r.close_sweeps,
                    epoch_close_scanned_slabs: r.close_scanned,
                    epoch_close_recycled_slabs: r.close_recycled,
                    epoch_close_total_ns: 0,
                    resident_bytes: r.resident,
                    fragmentation_ratio: if r.resident == 0 {
                        0.0
                    } else {
                        (1.0 - live_bytes as f64 / r.resident as f64).max(0.0)
                    },
                }
            })
            .collect();
        let epochs: Vec<EpochStats> = raw
            .epochs
            .iter()
            .enumerate()
            .map(|(i, r)| EpochStats {
                epoch_id: i as u32,
                era: r.era,
                state: match r.state {
                    1 => Some(EpochState::Active),
                    2 => Some(EpochState::Closing),
                    _ => None,
                },
                opened_ns: r.opened_ns,
                age_sec: if r.opened_ns == 0 { 0.0 } else { rg.monotonic_ns.saturating_sub(r.opened_ns) as f64 / 1e9 },
                refcount: r.refcount,
                label: label_string(raw, r.label),
                total_partial_slabs: r.partial,
                total_full_slabs: r.full,
                total_reclaimable_slabs: r.reclaimable,
                estimated_rss_bytes: r.resident,
                live_slabs: r.live_slabs,
                live_bytes: r.live_bytes,
                stale_era_slabs: r.stale,
                close_calls: r.close_calls,
                close_scanned_slabs: r.close_scanned,
                close_recycled_slabs: r.close_recycled,
                // Clamped: the two counters are read apart, so `recycled` can run ahead of `scanned`.
                reclamation_yield: (r.close_scanned > 0)
                    .then(|| (r.close_recycled as f64 / r.close_scanned as f64).min(1.0)),
                purged_bytes: r.purged_bytes,
                deferred_bytes: r.deferred_bytes,
                close_total_ns: r.close_total_ns,
                last_close_ns: r.last_close_ns,
                last_close_purged_bytes: r.last_close_purged_bytes,
                last_close_deferred_bytes: r.last_close_deferred_bytes,
                rss_before_close: r.rss_before_close,
                rss_after_close: r.rss_after_close,
            })
            .collect();
        let label_registry = (1..=rg.label_count.min(MAX_LABELS as u64 - 1))
            .chain(core::iter::once(0))
            .map(|id| {
                let r = &raw.labels[id as usize];
                LabelEntry {
                    id: id as u32,
                    label: label_string(raw, id).unwrap_or_default(),
                    open_domains: r.opened.saturating_sub(r.ended),
                    domains_opened: r.opened,
                    allocated_bytes: r.allocated,
                }
            })
            .collect();
        let small_live: u64 = classes.iter().fold(0u64, |t, c| t.saturating_add(c.live_bytes));
        let sum = |f: fn(&ClassStats) -> u64| classes.iter().fold(0u64, |t, c| t.saturating_add(f(c)));
        Snapshot {
            schema_version: SCHEMA_VERSION,
            version: env!("CARGO_PKG_VERSION").to_string(),
            timestamp_ns: rg.timestamp_ns,
            pid: u32::try_from(rg.pid).unwrap_or(u32::MAX),
            page_size: rg.page_size,
            slab_size: SLAB_SIZE as u64,
            epoch_count: EPOCH_SLOTS as u32,
            current_epoch: EpochId::from_era(rg.current_era).index() as u32,
            current_era: rg.current_era,
            active_epoch_count: epochs.iter().filter(|e| e.state == Some(EpochState::Active)).count() as u32,
            closing_epoch_count: epochs.iter().filter(|e| e.state == Some(EpochState::Closing)).count() as u32,
            total_slabs_allocated: sum(|c| c.new_slabs),
            total_slabs_recycled: sum(|c| c.empty_slab_recycled),
            net_slabs: sum(|c| c.net_slabs),
            rss_bytes_current: rg.rss,
            estimated_slab_rss_bytes: sum(|c| c.resident_bytes),
            total_slow_path_hits: sum(|c| c.slow_path_hits),
            total_cache_overflows: sum(|c| c.empty_slab_overflowed),
            total_slow_cache_miss: sum(|c| c.slow_path_cache_miss),
            total_slow_epoch_closed: sum(|c| c.slow_path_epoch_closed),
            total_madvise_calls: rg.madvise_calls,
            total_madvise_bytes: rg.madvise_bytes,
            total_madvise_failures: rg.madvise_failures,
            label_registry,
            global: GlobalStats {
                mapped_bytes: rg.mapped_bytes,
                resident_bytes: rg.resident_bytes,
                small_live_bytes: small_live,
                large_objects: rg.large_objects,
                large_bytes: rg.large_bytes,
                large_cache_bytes: rg.large_cache_bytes,
                large_cache_hits: rg.large_cache_hits,
                segments: rg.segments,
                pooled_slabs: rg.pooled_slabs,
                warm_slabs: rg.warm_slabs,
                madvise_calls: rg.madvise_calls,
                madvise_bytes: rg.madvise_bytes,
                madvise_failures: rg.madvise_failures,
                epoch_close_calls: rg.epoch_close_calls,
                epoch_close_scanned_slabs: rg.epoch_close_scanned_slabs,
                epoch_close_recycled_slabs: rg.epoch_close_recycled_slabs,
                epoch_close_total_ns: rg.epoch_close_total_ns,
                last_close_era: rg.last_close_era,
                last_close_ns: rg.last_close_ns,
                last_close_purged_bytes: rg.last_close_purged_bytes,
                last_close_rss_before: rg.last_close_rss_before,
                last_close_rss_after: rg.last_close_rss_after,
                heaps: rg.heaps,
                auto_advances: rg.auto_advances,
                ring_overflows: rg.ring_overflows,
                label_overflows: rg.label_overflows,
                domain_misuse_out_of_order: rg.domain_misuse_out_of_order,
                domain_misuse_wrong_thread: rg.domain_misuse_wrong_thread,
                domain_misuse_passed_era: rg.domain_misuse_passed_era,
                domain_misuse_too_deep: rg.domain_misuse_too_deep,
                reclaimer_ticks: rg.reclaimer_ticks,
                last_close_deferred_bytes: rg.last_close_deferred_bytes,
                reserve_limit_slabs: rg.reserve_limit_slabs,
                bucket_extensions: rg.bucket_extensions,
            },
            classes,
            epochs,
        }
    }
}

/// A few process-wide figures, read without allocating, for callers that must not allocate
/// (`malloc_stats` and `mallinfo2` in the C ABI of `libtemporal_slab.so`). Same sources, units
/// and caveats as the [`Snapshot`] fields of the same names; not atomic across fields.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Address space mapped by the allocator (gauge, bytes); [`GlobalStats::mapped_bytes`].
    pub mapped_bytes: u64,
    /// Estimated resident memory of the allocator (gauge, bytes); [`GlobalStats::resident_bytes`].
    pub resident_bytes: u64,
    /// Touched pages of all slabs (gauge, bytes); [`Snapshot::estimated_slab_rss_bytes`].
    pub slab_resident_bytes: u64,
    /// Slabs holding objects (gauge); [`Snapshot::net_slabs`].
    pub slabs_in_use: u64,
    /// Empty unpurged slabs kept for reuse (gauge); [`GlobalStats::warm_slabs`].
    pub warm_slabs: u64,
    /// Live small objects (gauge): sum of [`ClassStats::live_objects`].
    pub small_live_objects: u64,
    /// Bytes of live small objects at object-size granularity (gauge);
    /// [`GlobalStats::small_live_bytes`].
    pub small_live_bytes: u64,
    /// Live large objects (gauge); [`GlobalStats::large_objects`].
    pub large_objects: u64,
    /// Bytes requested by live large objects (gauge); [`GlobalStats::large_bytes`].
    pub large_bytes: u64,
    /// Bytes of freed large mappings kept for reuse (gauge); [`GlobalStats::large_cache_bytes`].
    pub large_cache_bytes: u64,
    /// Small-object allocations since start (counter): sum of [`ClassStats::allocations`].
    pub small_allocations: u64,
    /// Small-object frees since start (counter): sum of [`ClassStats::frees`].
    pub small_frees: u64,
}

/// Reads the [`Totals`] without allocating (a walk over the thread heaps and the slab metadata,
/// like [`snapshot`], but no read of `/proc`).
pub fn totals() -> Totals {
    let mut raw = RawSnapshot::zeroed();
    gather(&mut raw, false);
    let mut t = Totals::default();
    // Saturating: this runs inside C calls, where even a debug-build overflow panic must not be.
    for (c, r) in SizeClass::all().zip(&raw.classes) {
        let live = r.allocations.saturating_sub(r.frees);
        t.small_live_objects = t.small_live_objects.saturating_add(live);
        t.small_live_bytes = t.small_live_bytes.saturating_add(live.saturating_mul(c.object_size() as u64));
        t.slab_resident_bytes = t.slab_resident_bytes.saturating_add(r.resident);
        t.slabs_in_use = t.slabs_in_use.saturating_add(r.partial.saturating_add(r.full));
        t.small_allocations = t.small_allocations.saturating_add(r.allocations);
        t.small_frees = t.small_frees.saturating_add(r.frees);
    }
    let g = &raw.global;
    t.mapped_bytes = g.mapped_bytes;
    t.resident_bytes = g.resident_bytes;
    t.warm_slabs = g.warm_slabs;
    t.large_objects = g.large_objects;
    t.large_bytes = g.large_bytes;
    t.large_cache_bytes = g.large_cache_bytes;
    t
}

/// Folds every counter into a [`Snapshot`] of this process. Costs a walk over the thread heaps
/// and the slab metadata (64 bytes per 64 KiB slab) and a read of /proc/self/statm; does not stop
/// other threads.
pub fn snapshot() -> Snapshot {
    // Gather into fixed words on the stack first: the Vecs are built afterwards, so this
    // function's own allocations do not move the counters it is reading.
    let mut raw = RawSnapshot::zeroed();
    gather(&mut raw, true);
    Snapshot::from_raw(&raw)
}
