//! Always-on counters and the [`snapshot`] that folds them into plain data: the document's types
//! here, the fixed words gathered without allocating in `raw.rs`, the document built from those
//! words in `build.rs`.
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

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::epoch::{EpochId, EpochState};
use crate::size_class::SizeClass;

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
    /// Mean heap-profile sampling interval in bytes (0: sampling off).
    #[serde(default)]
    pub profile_sample_bytes: u64,
    /// Allocations sampled for the heap profile (counter).
    #[serde(default)]
    pub profile_samples: u64,
    /// Samples not kept as live because the profile's live table had no free slot near their
    /// address (counter; their objects are missing from inuse figures).
    #[serde(default)]
    pub profile_samples_dropped: u64,
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
    /// Heaps the idle trim held and trimmed (counter): threads idle for 1 s (or all of them, at
    /// [`crate::trim`]) whose slabs' free pages were purged around their live objects.
    #[serde(default)]
    pub idle_trims: u64,
    /// Bytes of free pages inside partly used slabs that the idle trim purged (counter).
    #[serde(default)]
    pub idle_trim_bytes: u64,
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
    /// Bytes allocated (requested sizes of small objects) by threads while inside a domain of
    /// this label (counter, exact up to the last enter or exit on each thread; needs the `stats`
    /// feature).
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

mod build;
mod raw;

pub(crate) use raw::{gather, RawSnapshot};

/// The label of an epoch that domains of several labels joined.
pub const SHARED_LABEL_TEXT: &str = "(shared)";

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
