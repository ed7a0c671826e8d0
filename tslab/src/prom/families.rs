//! Every family `tslab` exports: process-wide, per size class, per epoch (`docs/METRICS.md` maps
//! each to its JSON keys).

use temporal_slab::epoch::EpochState;
use temporal_slab::stats::{ClassStats, EpochStats, LabelEntry};
use temporal_slab::Snapshot;

use super::encode::*;

/// Process-wide families: the snapshot, memory, slabs, slow path, purging, the epoch ring and
/// epoch close, domains.
pub(super) fn process_families(out: &mut Exposition, s: &Snapshot, classes: &[&ClassStats], registry: &[&LabelEntry]) {
    let g = &s.global;

    // The snapshot itself.
    out.single(
        "snapshot_timestamp_seconds",
        Gauge,
        "Wall-clock time (Unix seconds) at which the snapshot was taken; alert when it stops moving.",
        Nanos(s.timestamp_ns),
    );
    out.family(
        "build_info",
        Gauge,
        "Always 1; label version is the temporal-slab crate version of the process.",
        &[(vec![("version", s.version.clone())], Int(1))],
    );
    out.single("page_size_bytes", Gauge, "OS page size of the process.", Int(s.page_size));
    out.single("slab_size_bytes", Gauge, "Bytes per slab.", Int(s.slab_size));

    // Memory.
    out.single(
        "process_rss_bytes",
        Gauge,
        "Resident set size of the whole process, from /proc (0 if unreadable).",
        Int(s.rss_bytes_current),
    );
    out.single(
        "resident_bytes",
        Gauge,
        "Estimated resident memory of the allocator: touched slab pages, segment headers, large mappings and their cache, thread heaps.",
        Int(g.resident_bytes),
    );
    out.single(
        "mapped_bytes",
        Gauge,
        "Address space mapped by the allocator: segments, large mappings, thread heaps.",
        Int(g.mapped_bytes),
    );
    out.single(
        "slab_resident_bytes",
        Gauge,
        "Estimated resident bytes of all slabs (touched pages).",
        Int(s.estimated_slab_rss_bytes),
    );
    let live = g.small_live_bytes.saturating_add(g.large_bytes);
    out.single("live_bytes", Gauge, "Bytes of live objects: small (in slabs) plus large.", Int(live));
    out.single(
        "small_live_bytes",
        Gauge,
        "Bytes of live objects in slabs (object-size granularity).",
        Int(g.small_live_bytes),
    );
    out.single("large_live_bytes", Gauge, "Bytes requested by live large objects.", Int(g.large_bytes));
    out.single(
        "fragmentation_ratio",
        Gauge,
        "Share of the allocator's resident memory not holding live objects: 1 - live_bytes / resident_bytes (0..1).",
        Float(fragmentation(live, g.resident_bytes)),
    );
    out.single("large_objects", Gauge, "Large objects allocated and not freed.", Int(g.large_objects));
    out.single("large_cache_bytes", Gauge, "Bytes of freed large mappings kept for reuse.", Int(g.large_cache_bytes));
    out.single("large_cache_hits_total", Counter, "Large allocations served from the cache.", Int(g.large_cache_hits));
    out.single(
        "segments_mapped_total",
        Counter,
        "Segments mapped (never unmapped, so also the number mapped now).",
        Int(g.segments),
    );
    out.single("heaps_created_total", Counter, "Thread heaps created (live or parked for reuse).", Int(g.heaps));

    // Slabs.
    let sum = |f: fn(&ClassStats) -> u64| classes.iter().map(|c| f(c)).fold(0u64, u64::saturating_add);
    let by_state = |state: &str, n: u64| (vec![("state", state.to_string())], Int(n));
    out.family(
        "slabs",
        Gauge,
        "Slabs by state: partial (free room), full, warm (empty, kept resident for reuse), purged (empty, pages returned).",
        &[
            by_state("partial", sum(|c| c.partial_slabs)),
            by_state("full", sum(|c| c.full_slabs)),
            by_state("warm", g.warm_slabs),
            by_state("purged", g.pooled_slabs),
        ],
    );
    if let Some(c) = classes.first() {
        out.single("warm_slabs_limit", Gauge, "Most warm slabs the global pool keeps.", Int(c.cache_capacity));
    }
    out.single(
        "slabs_allocated_total",
        Counter,
        "Slabs taken for a size class from the pool or a new mapping.",
        Int(s.total_slabs_allocated),
    );
    out.single(
        "slabs_recycled_total",
        Counter,
        "Emptied slabs kept unpurged for reuse (warm pool or close reserve).",
        Int(s.total_slabs_recycled),
    );
    out.single(
        "cache_overflows_total",
        Counter,
        "Emptied slabs purged at once: the warm pool was full or their epoch was closing.",
        Int(s.total_cache_overflows),
    );

    // Slow path.
    out.single("slow_path_hits_total", Counter, "Allocations that left the fast path.", Int(s.total_slow_path_hits));
    out.single(
        "slow_cache_miss_total",
        Counter,
        "Slow-path allocations that needed a slab from outside the thread.",
        Int(s.total_slow_cache_miss),
    );
    out.single(
        "slow_epoch_closed_total",
        Counter,
        "Slow-path allocations caused by the thread's epoch having changed.",
        Int(s.total_slow_epoch_closed),
    );

    // Returning memory to the OS.
    out.single("madvise_calls_total", Counter, "madvise calls that purged memory.", Int(s.total_madvise_calls));
    out.single("madvise_bytes_total", Counter, "Bytes purged with madvise.", Int(s.total_madvise_bytes));
    out.single("madvise_failures_total", Counter, "madvise calls the kernel refused.", Int(s.total_madvise_failures));

    // The epoch ring and epoch close.
    out.single(
        "current_epoch",
        Gauge,
        "Ring index (0-15) of the current epoch; not the era.",
        Int(u64::from(s.current_epoch)),
    );
    out.single("current_era", Gauge, "Era of the current epoch (counts from 1, never decreases).", Int(s.current_era));
    out.single(
        "active_epochs",
        Gauge,
        "Ring slots holding an ACTIVE epoch (of 16): the current one and ended epochs still held open by their domains.",
        Int(u64::from(s.active_epoch_count)),
    );
    out.single(
        "closing_epochs",
        Gauge,
        "Ring slots holding a CLOSING epoch (of 16).",
        Int(u64::from(s.closing_epoch_count)),
    );
    out.single("close_calls_total", Counter, "epoch close calls.", Int(g.epoch_close_calls));
    out.single(
        "close_scanned_slabs_total",
        Counter,
        "Slabs looked at by close sweeps.",
        Int(g.epoch_close_scanned_slabs),
    );
    out.single(
        "close_recycled_slabs_total",
        Counter,
        "Slabs purged and recycled by close sweeps; divided by close_scanned_slabs_total it is the reclamation yield.",
        Int(g.epoch_close_recycled_slabs),
    );
    out.single("close_duration_seconds_total", Counter, "Time spent in epoch close.", Nanos(g.epoch_close_total_ns));
    out.single("last_close_era", Gauge, "Era of the last closed epoch (0: none yet).", Int(g.last_close_era));
    out.single("last_close_duration_seconds", Gauge, "Duration of the last epoch close.", Nanos(g.last_close_ns));
    out.single(
        "last_close_purged_bytes",
        Gauge,
        "Bytes purged during the last epoch close.",
        Int(g.last_close_purged_bytes),
    );
    out.single(
        "last_close_rss_before_bytes",
        Gauge,
        "Process RSS just before the last epoch close (0 unless RSS-on-close is on); compare with _after for the kernel's cooperation.",
        Int(g.last_close_rss_before),
    );
    out.single(
        "last_close_rss_after_bytes",
        Gauge,
        "Process RSS just after the last epoch close (0 unless RSS-on-close is on).",
        Int(g.last_close_rss_after),
    );
    out.single("auto_advances_total", Counter, "Automatic epoch advances.", Int(g.auto_advances));
    out.single(
        "ring_overflows_total",
        Counter,
        "Advances refused because all 16 ring slots held ACTIVE epochs (the current epoch stayed current).",
        Int(g.ring_overflows),
    );
    out.single("reclaimer_ticks_total", Counter, "Reclaimer passes run.", Int(g.reclaimer_ticks));

    // Epoch domains.
    let misuse = |kind: &str, n: u64| (vec![("kind", kind.to_string())], Int(n));
    out.family(
        "domain_misuse_total",
        Counter,
        "Domain guard misuse by kind: out_of_order (not LIFO), wrong_thread, passed_era (entered after the domain ended or its epoch closed), too_deep (nesting limit).",
        &[
            misuse("out_of_order", g.domain_misuse_out_of_order),
            misuse("wrong_thread", g.domain_misuse_wrong_thread),
            misuse("passed_era", g.domain_misuse_passed_era),
            misuse("too_deep", g.domain_misuse_too_deep),
        ],
    );
    out.single(
        "label_registry_entries",
        Gauge,
        "Entries in the domain label registry, the fixed (overflow) label included (at most 32).",
        Int(registry.len() as u64),
    );
    out.single(
        "label_overflows_total",
        Counter,
        "Domain labels that did not fit in the registry and got the (overflow) label.",
        Int(g.label_overflows),
    );
    let entries: Vec<_> =
        registry.iter().map(|l| (vec![("label_id", l.id.to_string()), ("label", l.label.clone())], Int(1))).collect();
    out.family("label_registry_info", Gauge, "Always 1, one series per registered domain label.", &entries);
}

/// One family per size-class figure, labelled `class`.
pub(super) fn class_families(out: &mut Exposition, classes: &[&ClassStats]) {
    out.per_class(classes, "class_allocations_total", Counter, "Allocations served from the size class.", |c| {
        Int(c.allocations)
    });
    out.per_class(classes, "class_frees_total", Counter, "Frees into the size class.", |c| Int(c.frees));
    out.per_class(classes, "class_live_objects", Gauge, "Objects of the size class allocated and not freed.", |c| {
        Int(c.live_objects)
    });
    out.per_class(
        classes,
        "class_live_bytes",
        Gauge,
        "Bytes of live objects of the size class.",
        |c| Int(c.live_bytes),
    );
    out.per_class(
        classes,
        "class_resident_bytes",
        Gauge,
        "Estimated resident bytes of the size class's slabs (touched pages).",
        |c| Int(c.resident_bytes),
    );
    out.per_class(
        classes,
        "class_fragmentation_ratio",
        Gauge,
        "Share of the size class's resident memory not holding live objects (0..1).",
        |c| Float(c.fragmentation_ratio),
    );
    let class_slabs: Vec<_> = classes
        .iter()
        .flat_map(|c| {
            [("partial", c.partial_slabs), ("full", c.full_slabs), ("warm", c.cached_empty_slabs)].map(|(state, n)| {
                let mut labels = class_labels(c);
                labels.push(("state", state.to_string()));
                (labels, Int(n))
            })
        })
        .collect();
    out.family(
        "class_slabs",
        Gauge,
        "Slabs of the size class by state: partial (free room), full, warm (empty, kept resident).",
        &class_slabs,
    );
    out.per_class(classes, "class_new_slabs_total", Counter, "Slabs taken for the size class.", |c| Int(c.new_slabs));
    out.per_class(
        classes,
        "class_slow_path_hits_total",
        Counter,
        "Allocations of the size class that left the fast path.",
        |c| Int(c.slow_path_hits),
    );
    out.per_class(
        classes,
        "class_slow_cache_miss_total",
        Counter,
        "Slow-path allocations of the size class that needed a slab from outside the thread.",
        |c| Int(c.slow_path_cache_miss),
    );
    out.per_class(
        classes,
        "class_slow_epoch_closed_total",
        Counter,
        "Slow-path allocations of the size class caused by the thread's epoch having changed.",
        |c| Int(c.slow_path_epoch_closed),
    );
    out.per_class(
        classes,
        "class_empty_slabs_recycled_total",
        Counter,
        "Emptied slabs of the size class kept unpurged for reuse (warm pool or close reserve).",
        |c| Int(c.empty_slab_recycled),
    );
    out.per_class(
        classes,
        "class_empty_slabs_overflowed_total",
        Counter,
        "Emptied slabs of the size class purged at once (warm pool full or epoch closing).",
        |c| Int(c.empty_slab_overflowed),
    );
    out.per_class(
        classes,
        "class_madvise_calls_total",
        Counter,
        "madvise calls that purged slabs of the size class.",
        |c| Int(c.madvise_calls),
    );
    out.per_class(classes, "class_madvise_bytes_total", Counter, "Bytes purged from slabs of the size class.", |c| {
        Int(c.madvise_bytes)
    });
    out.per_class(
        classes,
        "class_madvise_failures_total",
        Counter,
        "madvise calls the kernel refused for the size class.",
        |c| Int(c.madvise_failures),
    );
    out.per_class(
        classes,
        "class_close_sweeps_total",
        Counter,
        "Close sweeps that looked at a slab of the size class (not epoch close calls; do not sum into them).",
        |c| Int(c.epoch_close_calls),
    );
    out.per_class(
        classes,
        "class_close_scanned_slabs_total",
        Counter,
        "Slabs of the size class looked at by close sweeps.",
        |c| Int(c.epoch_close_scanned_slabs),
    );
    out.per_class(
        classes,
        "class_close_recycled_slabs_total",
        Counter,
        "Slabs of the size class recycled by close sweeps.",
        |c| Int(c.epoch_close_recycled_slabs),
    );
}

/// One family per ring-slot figure, labelled `epoch`. Per-era figures reset when the slot opens
/// a new era.
pub(super) fn epoch_families(out: &mut Exposition, epochs: &[&EpochStats]) {
    out.per_epoch(epochs, "epoch_era", Gauge, "Era of the epoch in the ring slot (0: never used).", |e| {
        Some(Int(e.era))
    });
    let states: Vec<_> = epochs
        .iter()
        .flat_map(|e| {
            [(Some(EpochState::Active), "ACTIVE"), (Some(EpochState::Closing), "CLOSING"), (None, "UNUSED")].map(
                |(state, name)| {
                    let mut labels = epoch_labels(e);
                    labels.push(("state", name.to_string()));
                    (labels, Int(u64::from(e.state == state)))
                },
            )
        })
        .collect();
    out.family(
        "epoch_state",
        Gauge,
        "1 for the state the ring slot is in (ACTIVE, CLOSING or UNUSED), 0 for the others.",
        &states,
    );
    let labels: Vec<_> = epochs
        .iter()
        .map(|e| {
            let mut labels = epoch_labels(e);
            labels.push(("label", e.label.clone().unwrap_or_default()));
            (labels, Int(1))
        })
        .collect();
    out.family(
        "epoch_label_info",
        Gauge,
        "Always 1; label is the label of the domains that joined the era in the ring slot ((shared): several labels; empty: none). Join on epoch.",
        &labels,
    );
    out.per_epoch(epochs, "epoch_age_seconds", Gauge, "Time since the era in the ring slot opened.", |e| {
        Some(Float(e.age_sec))
    });
    out.per_epoch(epochs, "epoch_refcount", Gauge, "Domains open in the era in the ring slot (not guards); above 0 on an era that is not current, domains never ended hold it open.", |e| {
        Some(Int(e.refcount))
    });
    out.per_epoch(
        epochs,
        "epoch_rss_bytes",
        Gauge,
        "Estimated resident bytes of the era's slabs (touched pages).",
        |e| Some(Int(e.estimated_rss_bytes)),
    );
    out.per_epoch(epochs, "epoch_partial_slabs", Gauge, "Slabs of the era with free room.", |e| {
        Some(Int(e.total_partial_slabs))
    });
    out.per_epoch(epochs, "epoch_full_slabs", Gauge, "Slabs of the era with no free room.", |e| {
        Some(Int(e.total_full_slabs))
    });
    out.per_epoch(
        epochs,
        "epoch_reclaimable_slabs",
        Gauge,
        "Empty slabs last used by the era, kept warm and not yet purged.",
        |e| Some(Int(e.total_reclaimable_slabs)),
    );
    out.per_epoch(epochs, "epoch_live_slabs", Gauge, "Slabs of the era that hold live objects.", |e| {
        Some(Int(e.live_slabs))
    });
    out.per_epoch(epochs, "epoch_live_bytes", Gauge, "Bytes of live objects in slabs of the era.", |e| {
        Some(Int(e.live_bytes))
    });
    out.per_epoch(
        epochs,
        "epoch_stale_era_slabs",
        Gauge,
        "Slabs of earlier eras of the ring slot that still hold live objects.",
        |e| Some(Int(e.stale_era_slabs)),
    );
    out.per_epoch(
        epochs,
        "epoch_close_calls_total",
        Counter,
        "epoch close calls on the era (resets with a new era).",
        |e| Some(Int(e.close_calls)),
    );
    out.per_epoch(
        epochs,
        "epoch_close_scanned_slabs_total",
        Counter,
        "Slabs the close sweeps of the era looked at (resets with a new era).",
        |e| Some(Int(e.close_scanned_slabs)),
    );
    out.per_epoch(
        epochs,
        "epoch_close_recycled_slabs_total",
        Counter,
        "Slabs the close sweeps of the era recycled (resets with a new era).",
        |e| Some(Int(e.close_recycled_slabs)),
    );
    out.per_epoch(
        epochs,
        "epoch_reclamation_yield_ratio",
        Gauge,
        "Recycled / scanned slabs of the era's close sweeps (0..1); no sample before any scan.",
        |e| e.reclamation_yield.map(Float),
    );
    out.per_epoch(
        epochs,
        "epoch_purged_bytes_total",
        Counter,
        "Bytes purged from the era's slabs after it stopped being active (resets with a new era).",
        |e| Some(Int(e.purged_bytes)),
    );
    out.per_epoch(
        epochs,
        "epoch_close_duration_seconds_total",
        Counter,
        "Time spent in epoch close for the era (resets with a new era).",
        |e| Some(Nanos(e.close_total_ns)),
    );
    out.per_epoch(epochs, "epoch_last_close_duration_seconds", Gauge, "Duration of the era's last close.", |e| {
        Some(Nanos(e.last_close_ns))
    });
    out.per_epoch(epochs, "epoch_last_close_purged_bytes", Gauge, "Bytes purged during the era's last close.", |e| {
        Some(Int(e.last_close_purged_bytes))
    });
    out.per_epoch(
        epochs,
        "epoch_rss_before_close_bytes",
        Gauge,
        "Process RSS just before the era's last close (0 unless RSS-on-close is on).",
        |e| Some(Int(e.rss_before_close)),
    );
    out.per_epoch(
        epochs,
        "epoch_rss_after_close_bytes",
        Gauge,
        "Process RSS just after the era's last close (0 unless RSS-on-close is on).",
        |e| Some(Int(e.rss_after_close)),
    );
}
