//! The human summary of a snapshot (written to stderr by default).

use std::io::{self, Write};

use temporal_slab::epoch::EpochState;
use temporal_slab::Snapshot;

use crate::fmt::{bytes, pct, seconds};

/// Writes a summary of `s`: memory, slabs, epochs, the classes and epochs that matter.
pub fn write(w: &mut impl Write, s: &Snapshot) -> io::Result<()> {
    let g = &s.global;
    let live = g.small_live_bytes + g.large_bytes;
    writeln!(w, "temporal-slab {} snapshot of pid {} (schema {})", s.version, s.pid, s.schema_version)?;
    writeln!(
        w,
        "  memory   RSS {}, allocator resident {} (mapped {}), live {} ({} small, {} in {} large objects)",
        bytes(s.rss_bytes_current),
        bytes(g.resident_bytes),
        bytes(g.mapped_bytes),
        bytes(live),
        bytes(g.small_live_bytes),
        bytes(g.large_bytes),
        g.large_objects
    )?;
    let partial: u64 = s.classes.iter().map(|c| c.partial_slabs).sum();
    let full: u64 = s.classes.iter().map(|c| c.full_slabs).sum();
    writeln!(
        w,
        "  slabs    {} in use ({partial} partial, {full} full), {} warm, {} purged in the pool; {} slabs taken in all",
        s.net_slabs, g.warm_slabs, g.pooled_slabs, s.total_slabs_allocated
    )?;
    writeln!(
        w,
        "  purge    {} madvise calls, {} purged, {} failures; large cache {}",
        s.total_madvise_calls,
        bytes(s.total_madvise_bytes),
        s.total_madvise_failures,
        bytes(g.large_cache_bytes)
    )?;
    let yield_ = if g.epoch_close_scanned_slabs > 0 {
        pct((g.epoch_close_recycled_slabs as f64 / g.epoch_close_scanned_slabs as f64).min(1.0))
    } else {
        "n/a".to_string()
    };
    writeln!(
        w,
        "  epochs   current {} (era {}), {} active, {} closing; {} closes, yield {yield_}, slow path {} ({} cache miss, {} epoch change)",
        s.current_epoch,
        s.current_era,
        s.active_epoch_count,
        s.closing_epoch_count,
        g.epoch_close_calls,
        s.total_slow_path_hits,
        s.total_slow_cache_miss,
        s.total_slow_epoch_closed
    )?;
    let mut classes: Vec<_> = s.classes.iter().filter(|c| c.resident_bytes > 0).collect();
    classes.sort_by_key(|c| std::cmp::Reverse(c.resident_bytes));
    if !classes.is_empty() {
        writeln!(w, "  top classes by resident bytes:")?;
        for c in classes.iter().take(5) {
            writeln!(
                w,
                "    {:>6} B  resident {:>10}  live {:>10}  fragmentation {:>6}  slabs {}",
                c.object_size,
                bytes(c.resident_bytes),
                bytes(c.live_bytes),
                pct(c.fragmentation_ratio),
                c.net_slabs
            )?;
        }
    }
    let epochs: Vec<_> =
        s.epochs.iter().filter(|e| e.state.is_some() && (e.live_bytes > 0 || e.refcount > 0)).collect();
    if !epochs.is_empty() {
        writeln!(w, "  epochs holding memory or domains:")?;
        for e in epochs {
            let state = if e.state == Some(EpochState::Active) { "ACTIVE" } else { "CLOSING" };
            writeln!(
                w,
                "    #{:<2} era {:<8} {:<7} age {:>8}  refcount {:<3} live {:>10}  {}",
                e.epoch_id,
                e.era,
                state,
                seconds(e.age_sec),
                e.refcount,
                bytes(e.live_bytes),
                e.label.as_deref().map(|l| format!("{l:?}")).unwrap_or_default()
            )?;
        }
    }
    Ok(())
}
