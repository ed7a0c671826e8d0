//! Path tracing, for finding what makes a slow call slow (feature `path-trace`, off by default).
//!
//! Every step of the allocator other than its fast paths marks itself here: the slow path, an
//! epoch refresh, a slab taken from the partial list or the pool, a segment mapped, a page range
//! purged, a remote free, and so on ([`Step`]). With the feature, a mark sets the step's bit in a
//! thread-local mask and [`take`] returns the mask and clears it, so a benchmark that calls
//! `take()` before and after each timed call learns exactly which steps that call took (the
//! `--paths` option of `suite one` builds its per-path latency table this way). Without the
//! feature every mark compiles to nothing and `take` returns 0: the allocation path of a normal
//! build does not change. A step that runs on another thread (the reclaimer) marks that thread.
//!
//! Built on nothing but a `Cell` in a `const`-initialised thread-local, which needs no
//! allocation and no destructor, so marking from inside the allocator cannot re-enter it.

/// The steps that are marked (bit positions in the mask [`take`] returns).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Step {
    /// The small-object slow path was entered (the fast path did not serve the call).
    Slow,
    /// The thread heap moved to another epoch (an advance or close was seen).
    Refresh,
    /// The bin's slab served the object from its next run of free cells (a bitmap scan).
    NextRun,
    /// Free cells of the bin's slab were moved into the free cache.
    Scattered,
    /// The bin's slab served the object after collecting its remote frees.
    BinRemote,
    /// Slabs announced by remote frees were drained.
    Pending,
    /// A slab came from the heap's partial list.
    Partial,
    /// A slab came from the recycling lists (partly used slabs of closed epochs).
    Recycle,
    /// A slab came from the pool (warm, purged or carved).
    NewSlab,
    /// The pool carved a never-used slab out of a segment.
    Carve,
    /// Memory was mapped (`mmap`).
    Map,
    /// Memory was unmapped (`munmap`).
    Unmap,
    /// Pages were given back (`madvise`).
    Purge,
    /// The heap profiler's sample point was reached: the sampler ran (it records the object
    /// unless sampling is off or the thread is already inside it) and drew the next point.
    Sample,
    /// The reclaim hook at the end of the slow path advanced or closed an epoch.
    Reclaim,
    /// The thread had no heap yet (made or adopted now, or the shared fallback heap served it).
    NoHeap,
    /// A large object was allocated.
    Large,
    /// A large object came from the large cache.
    LargeCache,
    /// A free the cache did not take: the cell went back to its slab's bitmap.
    FreeSlab,
    /// A local free changed the slab's list (it was full, or is now empty).
    SlabState,
    /// A slab emptied and went to the reserve or back to the OS.
    SlabEmptied,
    /// A free of another thread's object (onto its slab's remote list).
    FreeRemote,
    /// A large object was freed.
    FreeLarge,
    /// The free cache was flushed back to the slabs.
    CacheFlush,
    /// The fast path took the object from the bin's head run (not from the free cache).
    FastBin,
}

impl Step {
    /// Every step, in bit order.
    pub const ALL: [Step; 25] = [
        Step::Slow,
        Step::Refresh,
        Step::NextRun,
        Step::Scattered,
        Step::BinRemote,
        Step::Pending,
        Step::Partial,
        Step::Recycle,
        Step::NewSlab,
        Step::Carve,
        Step::Map,
        Step::Unmap,
        Step::Purge,
        Step::Sample,
        Step::Reclaim,
        Step::NoHeap,
        Step::Large,
        Step::LargeCache,
        Step::FreeSlab,
        Step::SlabState,
        Step::SlabEmptied,
        Step::FreeRemote,
        Step::FreeLarge,
        Step::CacheFlush,
        Step::FastBin,
    ];

    /// The step's bit in a mask.
    pub const fn bit(self) -> u32 {
        1 << self as u8
    }

    /// A short name (for tables).
    pub const fn name(self) -> &'static str {
        match self {
            Step::Slow => "slow",
            Step::Refresh => "refresh",
            Step::NextRun => "next-run",
            Step::Scattered => "scattered",
            Step::BinRemote => "bin-remote",
            Step::Pending => "pending",
            Step::Partial => "partial",
            Step::Recycle => "recycle",
            Step::NewSlab => "new-slab",
            Step::Carve => "carve",
            Step::Map => "mmap",
            Step::Unmap => "munmap",
            Step::Purge => "madvise",
            Step::Sample => "sample",
            Step::Reclaim => "reclaim",
            Step::NoHeap => "no-heap",
            Step::Large => "large",
            Step::LargeCache => "large-cache",
            Step::FreeSlab => "free-slab",
            Step::SlabState => "slab-state",
            Step::SlabEmptied => "slab-emptied",
            Step::FreeRemote => "free-remote",
            Step::FreeLarge => "free-large",
            Step::CacheFlush => "cache-flush",
            Step::FastBin => "fast-bin",
        }
    }
}

/// Whether this build marks steps (the `path-trace` feature).
pub const ENABLED: bool = cfg!(feature = "path-trace");

#[cfg(feature = "path-trace")]
thread_local! {
    static MASK: core::cell::Cell<u32> = const { core::cell::Cell::new(0) };
}

/// Marks `step` on this thread (nothing without the feature).
#[inline(always)]
pub(crate) fn mark(step: Step) {
    #[cfg(feature = "path-trace")]
    {
        let _ = MASK.try_with(|m| m.set(m.get() | step.bit()));
    }
    #[cfg(not(feature = "path-trace"))]
    let _ = step;
}

/// The steps this thread marked since its last call, as a mask of [`Step::bit`]s; clears them.
/// Always 0 without the `path-trace` feature.
#[inline]
pub fn take() -> u32 {
    #[cfg(feature = "path-trace")]
    {
        MASK.try_with(|m| m.replace(0)).unwrap_or(0)
    }
    #[cfg(not(feature = "path-trace"))]
    0
}

/// The names of the steps in `mask`, joined by `+` (`"fast"` for none).
pub fn describe(mask: u32) -> String {
    if mask == 0 {
        return "fast".to_owned();
    }
    Step::ALL.iter().filter(|s| mask & s.bit() != 0).map(|s| s.name()).collect::<Vec<_>>().join("+")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_are_distinct_and_in_order() {
        for (i, s) in Step::ALL.iter().enumerate() {
            assert_eq!(s.bit(), 1 << i, "{s:?}");
        }
        assert_eq!(describe(0), "fast");
        assert_eq!(describe(Step::Slow.bit() | Step::NewSlab.bit()), "slow+new-slab");
    }

    #[test]
    fn take_clears() {
        mark(Step::Partial);
        let first = take();
        assert_eq!(first, if ENABLED { Step::Partial.bit() } else { 0 });
        assert_eq!(take(), 0);
    }
}
