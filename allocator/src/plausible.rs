//! What every snapshot must satisfy, whoever made it: the invariants that hold in any real
//! process (however racy the counters are read), checked on every snapshot a tool reads from
//! another process or from a file. A document that fails one was forged or corrupted, and the
//! tools reject it instead of printing garbage (`pid 4294967295`, `net_slabs 2^64 - 2`, live
//! bytes 0 for 2^63 objects).
//!
//! Only invariants that concurrent updates cannot break are checked: totals built from the same
//! walk as their parts, bounds set by what the allocator can map, and consistency of values
//! derived from one another. Counters that are read apart (allocations against frees, for
//! example) may legitimately disagree a little and are left alone.

use crate::size_class::{NUM_CLASSES, SLAB_SIZE};
use crate::stats::Snapshot;

/// The most size classes a snapshot of any build has: 44 in builds with four classes per
/// doubling up to 32 KiB (before December 2026), [`NUM_CLASSES`] (41) since the classes above
/// 4 KiB tile their slabs. Snapshots saved by an older build stay readable; one attached from a
/// live process must have this build's count.
pub const MAX_SNAPSHOT_CLASSES: usize = 44;
const _: () = assert!(NUM_CLASSES <= MAX_SNAPSHOT_CLASSES);

/// Slab slots per segment that hold slabs.
const SLABS_PER_SEGMENT: u64 = (crate::size_class::SEGMENT_SIZE / SLAB_SIZE) as u64 - 1;

/// The first invariant `s` breaks, as one line, or `Ok`. `pid`: the process the snapshot must
/// come from (when attaching).
pub fn check(s: &Snapshot, pid: Option<u32>) -> Result<(), String> {
    if let Some(pid) = pid {
        if s.pid != pid {
            return Err(format!("the snapshot says pid {}, but it was read from pid {pid}", s.pid));
        }
    }
    if !s.page_size.is_power_of_two() || !(4096..=1 << 20).contains(&s.page_size) {
        return Err(format!("page_size {} is not a page size (a power of two from 4 KiB to 1 MiB)", s.page_size));
    }
    if pid.is_some() && s.classes.len() != NUM_CLASSES {
        return Err(format!("{} size classes, this build has {NUM_CLASSES}", s.classes.len()));
    }
    if s.classes.len() > MAX_SNAPSHOT_CLASSES {
        return Err(format!("{} size classes, no build has more than {MAX_SNAPSHOT_CLASSES}", s.classes.len()));
    }
    let g = &s.global;
    // Segments are 4 MiB mappings; 2^40 of them would be 4 EiB.
    if g.segments > 1 << 40 {
        return Err(format!("{} segments: more than any address space holds", g.segments));
    }
    let slab_slots = g.segments * SLABS_PER_SEGMENT;
    let mut slabs = 0u64;
    let mut resident = 0u64;
    let mut live = 0u64;
    for c in &s.classes {
        let name = format!("class {} ({} B)", c.class_index, c.object_size);
        if c.live_objects > c.allocations {
            return Err(format!("{name}: {} live objects but {} allocations", c.live_objects, c.allocations));
        }
        if c.live_objects.checked_mul(c.object_size) != Some(c.live_bytes) {
            return Err(format!("{name}: live_bytes {} is not live_objects x object_size", c.live_bytes));
        }
        if c.partial_slabs.checked_add(c.full_slabs) != Some(c.net_slabs) {
            return Err(format!("{name}: net_slabs {} is not partial + full slabs", c.net_slabs));
        }
        slabs = slabs.saturating_add(c.net_slabs).saturating_add(c.cached_empty_slabs);
        resident = resident.saturating_add(c.resident_bytes);
        live = live.saturating_add(c.live_bytes);
    }
    if slabs > slab_slots {
        return Err(format!("{slabs} slabs in use or kept, but {} segments hold only {slab_slots}", g.segments));
    }
    if live != g.small_live_bytes {
        return Err(format!("small_live_bytes {} is not the sum of the classes' {live}", g.small_live_bytes));
    }
    if resident > g.resident_bytes {
        return Err(format!("the classes' resident bytes {resident} exceed the total {}", g.resident_bytes));
    }
    if g.resident_bytes > g.mapped_bytes {
        return Err(format!("resident_bytes {} exceed mapped_bytes {}", g.resident_bytes, g.mapped_bytes));
    }
    // Live small objects lie in slabs, which lie in mapped segments (a few objects may be counted
    // twice while they move between threads, never a segment's worth).
    let slab_bytes = slab_slots.saturating_mul(SLAB_SIZE as u64);
    if g.small_live_bytes > slab_bytes.saturating_add(SLAB_SIZE as u64) {
        return Err(format!(
            "{} live bytes in small objects, but {} segments hold at most {slab_bytes}",
            g.small_live_bytes, g.segments
        ));
    }
    for e in &s.epochs {
        if e.live_slabs > slab_slots || e.total_partial_slabs.saturating_add(e.total_full_slabs) > slab_slots {
            return Err(format!("epoch {}: more slabs than {} segments hold", e.epoch_id, g.segments));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_real_snapshot_passes_and_forgeries_fail() {
        let v: Vec<Box<[u8; 100]>> = (0..1000).map(|_| Box::new([1; 100])).collect();
        let real = crate::snapshot();
        drop(v);
        assert_eq!(check(&real, Some(real.pid)), Ok(()));
        type Forge = fn(&mut Snapshot);
        let forged: [(&str, Forge); 6] = [
            ("pid", |s| s.pid = u32::MAX),
            ("net_slabs", |s| s.classes[3].net_slabs = u64::MAX - 1),
            ("live_bytes", |s| {
                s.classes[2].live_objects = 1 << 63;
                s.classes[2].allocations = 1 << 63;
                s.classes[2].live_bytes = 0;
            }),
            ("page_size", |s| s.page_size = 3),
            ("resident_bytes", |s| s.global.resident_bytes = s.global.mapped_bytes + 1),
            ("segments", |s| s.global.segments = u64::MAX),
        ];
        for (what, forge) in forged {
            let mut s = real.clone();
            forge(&mut s);
            assert!(check(&s, Some(real.pid)).is_err(), "forged {what} accepted");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]
        /// The region parser on words a hostile target could write: any mix of a real snapshot's
        /// words, forged extremes and random words builds a document (no panic, no overflow,
        /// even with debug assertions) that the checks then accept or reject.
        #[test]
        fn any_region_words_parse_without_panicking(
            edits in proptest::collection::vec((0usize..crate::publish::BODY_WORDS, proptest::prelude::any::<u64>(), 0u8..4), 0..64)
        ) {
            let mut raw = crate::stats::RawSnapshot::zeroed();
            crate::stats::gather(&mut raw, false);
            // SAFETY: RawSnapshot is repr(C) of u64s, BODY_WORDS words; any bit pattern is valid.
            let words: &mut [u64; crate::publish::BODY_WORDS] =
                unsafe { &mut *core::ptr::from_mut(&mut raw).cast::<[u64; crate::publish::BODY_WORDS]>() };
            for (i, v, kind) in edits {
                words[i] = match kind { 0 => v, 1 => u64::MAX, 2 => u64::MAX - 1, _ => 1 << 63 };
            }
            let s = Snapshot::from_raw(&raw);
            let _ = check(&s, Some(s.pid));
        }
    }
}
