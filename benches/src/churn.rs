//! The epoch churn and lifetime-mixed workloads (`churn` binary; `lifetime-mixed` in `suite`):
//! cycles that each allocate many same-size objects through one allocator, write them and free
//! them, optionally keeping every 100th for [`KEEP_CYCLES`] cycles. See `src/bin/churn.rs` for
//! the full description of what is measured.
//!
//! [`drive`] allocates its pointer arrays and timing buffers once, up front, from the process's
//! global allocator, and every object from the allocator it is given.

use std::alloc::{GlobalAlloc, Layout};
use std::hint::black_box;
use std::ptr;
use std::time::Instant;

use serde_json::{json, Value};
use temporal_slab::epoch::{self, EpochState};

use crate::procfs;

/// Bytes per object.
pub const OBJECT_SIZE: usize = 96;
/// Cycles a kept object of `lifetime-mixed` stays alive.
pub const KEEP_CYCLES: usize = 50;
/// One object in this many is kept in `lifetime-mixed`.
pub const KEEP_EVERY: usize = 100;
/// Cycles before the "after warm-up" RSS reading (fewer when the run is short).
pub const WARM_UP: usize = 20;
/// RSS is also read (for the JSON `rss_trace`, outside the timed cycles) after cycle
/// [`KEEP_CYCLES`] and every this many cycles.
pub const TRACE_EVERY: usize = 100;

/// Run sizes.
#[derive(Clone, Copy, Debug)]
pub struct Sizes {
    /// Cycles (at least 2).
    pub cycles: usize,
    /// Objects allocated per cycle (at least 1).
    pub objects: usize,
}

/// What one child measured.
pub struct Run {
    /// Cycles before the "after warm-up" reading.
    pub warmup: usize,
    /// Wall time of all cycles (ns).
    pub wall_ns: u64,
    /// Per-cycle samples after the warm-up (ns).
    pub cycle_ns: Vec<u64>,
    /// temporal-slab `epoch::advance` time per cycle after the warm-up (ns).
    pub advance_ns: Option<Vec<u64>>,
    /// temporal-slab `epoch::close` time per cycle after the warm-up (ns).
    pub close_ns: Option<Vec<u64>>,
    /// RSS after the warm-up cycles (bytes).
    pub rss_warm: u64,
    /// RSS after the last cycle, kept objects still live (bytes).
    pub rss_end: u64,
    /// Peak RSS of the process so far (`VmHWM`, bytes).
    pub peak_rss: u64,
    /// Minor page faults during the cycles.
    pub minflt: u64,
    /// Kept objects still alive at the end (`lifetime-mixed`).
    pub kept_live: usize,
    /// `(cycles done, RSS)` after cycle 50 and every 100th cycle.
    pub rss_trace: Vec<(usize, u64)>,
    /// temporal-slab figures.
    pub ts: Option<Value>,
}

/// Nanoseconds since `t`, saturating into u64.
pub fn ns_since(t: Instant) -> u64 {
    u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Allocates one object, aborting on null like `std` would.
///
/// # Safety
/// `layout.size()` must be non-zero.
#[inline(always)]
unsafe fn alloc_one<A: GlobalAlloc>(a: &A, layout: Layout) -> *mut u8 {
    // SAFETY: the caller guarantees a non-zero size.
    let p = unsafe { a.alloc(layout) };
    if p.is_null() {
        std::alloc::handle_alloc_error(layout);
    }
    p
}

/// Runs the workload on `a`. `epochs`: make the temporal-slab epoch calls (and read its
/// snapshot); `lifetime_mixed`: keep every 100th object for [`KEEP_CYCLES`] cycles.
pub fn drive<A: GlobalAlloc>(a: &A, epochs: bool, lifetime_mixed: bool, sizes: Sizes) -> Result<Run, String> {
    let Sizes { cycles, objects } = sizes;
    let layout = Layout::from_size_align(OBJECT_SIZE, 8).map_err(|e| e.to_string())?;
    let warmup = WARM_UP.min(cycles / 2);
    let kept_per_cycle = if lifetime_mixed { objects.div_ceil(KEEP_EVERY) } else { 0 };

    // Everything below is allocated once, up front, from the global allocator (glibc in the
    // `churn` binary; the allocator under test in `suite`).
    let mut slots: Vec<*mut u8> = try_vec(objects)?;
    let mut kept: Vec<*mut u8> = try_vec(kept_per_cycle * KEEP_CYCLES)?;
    let measured = cycles - warmup;
    let mut cycle_ns: Vec<u64> = Vec::new();
    let mut advance_ns: Vec<u64> = Vec::new();
    let mut close_ns: Vec<u64> = Vec::new();
    for v in [&mut cycle_ns, &mut advance_ns, &mut close_ns] {
        v.try_reserve_exact(measured).map_err(|e| format!("timing samples: {e}"))?;
    }

    let mut rss_trace: Vec<(usize, u64)> = Vec::new();
    rss_trace.try_reserve_exact(cycles / TRACE_EVERY + 1).map_err(|e| format!("RSS trace: {e}"))?;

    let snap0 = epochs.then(temporal_slab::snapshot);
    let flt0 = procfs::minor_faults()?;
    let mut rss_warm = 0;
    let run_start = Instant::now();
    for c in 0..cycles {
        let t0 = Instant::now();
        let e = epochs.then(epoch::current);
        let ring = if lifetime_mixed {
            &mut kept[(c % KEEP_CYCLES) * kept_per_cycle..][..kept_per_cycle]
        } else {
            &mut [][..]
        };
        // Objects kept KEEP_CYCLES cycles ago die now.
        for p in ring.iter_mut() {
            if !p.is_null() {
                // SAFETY: a live object allocated from `a` with `layout`, freed once (then nulled).
                unsafe { a.dealloc(*p, layout) };
                *p = ptr::null_mut();
            }
        }
        let byte = c as u8;
        for slot in slots.iter_mut() {
            // SAFETY: OBJECT_SIZE is non-zero.
            let p = unsafe { alloc_one(a, black_box(layout)) };
            // SAFETY: `p` is a live block of OBJECT_SIZE bytes.
            unsafe { ptr::write_bytes(p, byte, OBJECT_SIZE) };
            *slot = p;
        }
        // The pointers (and so the written bytes) escape: the writes cannot be elided.
        black_box(&mut slots[..]);
        let mut k = 0;
        for (i, &p) in slots.iter().enumerate() {
            if lifetime_mixed && i % KEEP_EVERY == 0 {
                ring[k] = p;
                k += 1;
            } else {
                // SAFETY: `p` was allocated above from `a` with `layout` and is freed once.
                unsafe { a.dealloc(p, layout) };
            }
        }
        let (adv, cls) = match e {
            Some(e) => {
                let t = Instant::now();
                black_box(epoch::advance());
                let adv = ns_since(t);
                let t = Instant::now();
                epoch::close(e);
                (adv, ns_since(t))
            }
            None => (0, 0),
        };
        let dt = ns_since(t0);
        if c >= warmup {
            cycle_ns.push(dt);
            advance_ns.push(adv);
            close_ns.push(cls);
        }
        if c + 1 == warmup {
            rss_warm = procfs::rss_bytes()?;
        }
        if (c + 1) % TRACE_EVERY == 0 || c + 1 == KEEP_CYCLES {
            // Room was reserved up front; a full trace just stops growing.
            if rss_trace.len() < rss_trace.capacity() {
                rss_trace.push((c + 1, procfs::rss_bytes()?));
            }
        }
    }
    let wall_ns = ns_since(run_start);
    let rss_end = procfs::rss_bytes()?;
    let minflt = procfs::minor_faults()?.saturating_sub(flt0);
    let peak_rss = procfs::peak_rss_bytes()?;
    let kept_live = kept.iter().filter(|p| !p.is_null()).count();
    let ts = snap0.map(|s0| ts_figures(&s0, &temporal_slab::snapshot()));
    // Free what is still kept (after every reading).
    for p in kept.iter_mut().filter(|p| !p.is_null()) {
        // SAFETY: a live object allocated from `a` with `layout`, freed once.
        unsafe { a.dealloc(*p, layout) };
        *p = ptr::null_mut();
    }
    Ok(Run {
        warmup,
        wall_ns,
        cycle_ns,
        advance_ns: epochs.then_some(advance_ns),
        close_ns: epochs.then_some(close_ns),
        rss_warm,
        rss_end,
        peak_rss,
        minflt,
        kept_live,
        rss_trace,
        ts,
    })
}

/// A vector of `n` null pointers, or an error instead of an abort when it cannot be had.
fn try_vec(n: usize) -> Result<Vec<*mut u8>, String> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|e| format!("pointer array of {n}: {e}"))?;
    v.resize(n, ptr::null_mut());
    Ok(v)
}

/// temporal-slab figures from the snapshots before the first and after the last cycle.
pub fn ts_figures(s0: &temporal_slab::Snapshot, s1: &temporal_slab::Snapshot) -> Value {
    let purged = s1.global.madvise_bytes.saturating_sub(s0.global.madvise_bytes);
    let freed: u64 =
        s1.classes.iter().zip(&s0.classes).map(|(c1, c0)| c1.frees.saturating_sub(c0.frees) * c1.object_size).sum();
    let not_active = |st: &Option<EpochState>| *st != Some(EpochState::Active);
    let pinned: u64 = s1.epochs.iter().filter(|e| not_active(&e.state)).map(|e| e.live_slabs + e.stale_era_slabs).sum();
    let stale_in_active: u64 = s1.epochs.iter().filter(|e| !not_active(&e.state)).map(|e| e.stale_era_slabs).sum();
    json!({
        "madvise_bytes": purged,
        "madvise_calls": s1.global.madvise_calls.saturating_sub(s0.global.madvise_calls),
        "slab_bytes_freed": freed,
        "purged_over_freed": if freed == 0 { None } else { Some(purged as f64 / freed as f64) },
        "pinned_slabs": pinned,
        "stale_era_slabs_in_active_slots": stale_in_active,
        "slab_size": s1.slab_size,
        "resident_estimate_bytes": s1.global.resident_bytes,
        "small_live_bytes": s1.global.small_live_bytes,
        "segments": s1.global.segments,
        "ring_overflows": s1.global.ring_overflows,
        "reclaimer_ticks": s1.global.reclaimer_ticks,
        "reclaim_env": std::env::var("TSLAB_RECLAIM").ok(),
    })
}

/// p50 of an empty `Instant::now()` pair, over 100000 pairs (ns).
pub fn timer_overhead_p50() -> u64 {
    let mut v: Vec<u64> = (0..100_000)
        .map(|_| {
            let t0 = Instant::now();
            let t1 = Instant::now();
            u64::try_from(t1.duration_since(t0).as_nanos()).unwrap_or(u64::MAX)
        })
        .collect();
    v.sort_unstable();
    v[v.len() / 2]
}

/// Nearest-rank percentile `p` of `samples` (0 for none).
pub fn pct(samples: &[u64], p: usize) -> u64 {
    if samples.is_empty() {
        return 0;
    }
    let mut v = samples.to_vec();
    v.sort_unstable();
    let rank = (p * v.len()).div_ceil(100).max(1);
    v[rank - 1]
}

/// Growth from `from` to `to` in percent (`None` when `from` is 0).
pub fn growth_pct(from: u64, to: u64) -> Option<f64> {
    (from > 0).then(|| (to as f64 - from as f64) / from as f64 * 100.0)
}
