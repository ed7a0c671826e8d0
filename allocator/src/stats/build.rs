//! The snapshot document built from raw words (this process's, or words copied out of another
//! process's region, which may hold anything: arithmetic here saturates).

use super::raw::RawSnapshot;
use super::{ClassStats, EpochStats, GlobalStats, LabelEntry, Snapshot, SCHEMA_VERSION, SHARED_LABEL_TEXT};
use crate::epoch::{EpochId, EpochState, EPOCH_SLOTS};
use crate::labels::{LABEL_MAX, MAX_LABELS};
use crate::ring::{NO_LABEL, SHARED_LABEL};
use crate::segment;
use crate::size_class::{SizeClass, SLAB_SIZE};

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
                profile_sample_bytes: rg.profile_sample_bytes,
                profile_samples: rg.profile_samples,
                profile_samples_dropped: rg.profile_samples_dropped,
                domain_misuse_out_of_order: rg.domain_misuse_out_of_order,
                domain_misuse_wrong_thread: rg.domain_misuse_wrong_thread,
                domain_misuse_passed_era: rg.domain_misuse_passed_era,
                domain_misuse_too_deep: rg.domain_misuse_too_deep,
                reclaimer_ticks: rg.reclaimer_ticks,
                last_close_deferred_bytes: rg.last_close_deferred_bytes,
                reserve_limit_slabs: rg.reserve_limit_slabs,
                bucket_extensions: rg.bucket_extensions,
                idle_trims: rg.idle_trims,
                idle_trim_bytes: rg.idle_trim_bytes,
            },
            classes,
            epochs,
        }
    }
}
