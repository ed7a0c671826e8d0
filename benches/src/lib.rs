//! Shared helpers for the side-by-side allocator benchmarks.
//!
//! Every allocator is used as an *instance* called through [`GlobalAlloc`], never installed as
//! `#[global_allocator]`: the benchmark harness itself keeps running on the default global
//! allocator (glibc `malloc`), and all four allocators compete in one process and one run.
//!
//! * [`TEMPORAL_SLAB`], [`GLIBC`], [`MIMALLOC`], [`JEMALLOC`]: the four instances.
//! * [`pair`]: one alloc immediately followed by the dealloc of the same [`Layout`].
//! * [`run_pairs`]: a non-inlined loop of pairs, one symbol per allocator, for
//!   `valgrind --tool=callgrind --toggle-collect='*run_pairs*'`.
//! * [`batch`]: allocate a batch of objects, then free them all in allocation order.
//! * [`large_sizes`] and [`large_pair`]: the fixed pseudo-random 64 KiB..=1 MiB "large mix".
//!
//! Neither `mimalloc` nor `tikv-jemallocator` replaces the C `malloc` here (mimalloc is built
//! without its `override` feature; jemalloc's symbols are `_rjem_`-prefixed), so
//! [`std::alloc::System`] really is glibc.
//!
//! The `suite` runner works the other way round: each child process installs
//! [`selected::SelectedAllocator`] as its `#[global_allocator]`, which dispatches every call of
//! the process to one allocator chosen at start-up, so the workloads ([`workloads`]) are ordinary
//! Rust code whose every allocation goes through the allocator under test. Modules:
//!
//! * [`selected`]: the run-time selected global allocator.
//! * [`block`]: one-call blocks and plain or individually timed allocator calls.
//! * [`clock`]: the cheap clock for single calls and nearest-rank percentiles.
//! * [`procfs`]: RSS, peak RSS, page faults and machine facts from `/proc`.
//! * [`remote`]: one thread allocates, another frees (`pairs --remote`).
//! * [`churn`]: the epoch churn / lifetime-mixed cycles (binaries `churn` and `suite`).
//! * [`workloads`]: the `suite` workloads.

pub mod block;
pub mod churn;
pub mod clock;
pub mod paths;
pub mod procfs;
pub mod remote;
pub mod selected;
pub mod workloads;

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::ptr;

pub use mimalloc::MiMalloc;
pub use temporal_slab::TemporalSlab;
pub use tikv_jemallocator::Jemalloc;

/// temporal-slab, the allocator under test.
pub static TEMPORAL_SLAB: TemporalSlab = TemporalSlab::new();
/// The system allocator, glibc `malloc`/`free`.
pub static GLIBC: System = System;
/// mimalloc (the `mimalloc` crate, default features off).
pub static MIMALLOC: MiMalloc = MiMalloc;
/// jemalloc 5.3 (the `tikv-jemallocator` crate).
pub static JEMALLOC: Jemalloc = Jemalloc;

/// Alignment of every benchmarked layout.
pub const ALIGN: usize = 8;

/// Sizes of the small-object groups, in bytes.
pub const SMALL_SIZES: [usize; 5] = [16, 64, 256, 1024, 4096];

/// Objects per batch in the batch variant.
pub const BATCH: usize = 1000;

/// Page size assumed when touching large objects: one byte is written per this many bytes.
pub const PAGE: usize = 4096;

/// The names used for bench ids and on the `pairs` command line, in report order.
pub const NAMES: [&str; 4] = ["temporal-slab", "glibc", "mimalloc", "jemalloc"];

/// The layout of `size` bytes at [`ALIGN`].
///
/// # Panics
/// If `size` overflows a [`Layout`] (never for the sizes used here).
pub fn layout(size: usize) -> Layout {
    Layout::from_size_align(size, ALIGN).expect("valid layout")
}

/// Allocates `layout` from `a`, aborting the benchmark on null.
///
/// # Safety
/// `layout.size()` must be non-zero (the [`GlobalAlloc::alloc`] contract).
#[inline(always)]
unsafe fn alloc_checked<A: GlobalAlloc>(a: &A, layout: Layout) -> *mut u8 {
    // SAFETY: the caller guarantees a non-zero size.
    let p = unsafe { a.alloc(layout) };
    if p.is_null() {
        std::alloc::handle_alloc_error(layout);
    }
    p
}

/// One alloc+free pair: allocates `layout` from `a` and immediately frees it.
///
/// The pointer goes through [`black_box`] so neither the allocation nor the free can be elided
/// (LLVM removes unused `malloc`/`free` pairs otherwise). The layout goes through [`black_box`]
/// too, on every pair: a real program reaches the allocator through the non-inlined
/// `__rust_alloc` shim with a runtime size, so an allocator inlined into the benchmark loop must
/// not get its size-class lookup constant-folded or hoisted out of the loop while the C
/// allocators behind FFI cannot. This costs every allocator the same few instructions.
///
/// # Safety
/// `layout.size()` must be non-zero.
#[inline(always)]
pub unsafe fn pair<A: GlobalAlloc>(a: &A, layout: Layout) {
    let layout = black_box(layout);
    // SAFETY: the caller guarantees a non-zero size.
    let p = unsafe { alloc_checked(a, layout) };
    let p = black_box(p);
    // SAFETY: `p` was just returned by `a` for `layout` and is live.
    unsafe { a.dealloc(p, layout) };
}

/// `iterations` alloc+free pairs of `layout` through `a`; never inlined, so each allocator gets
/// its own `benches::run_pairs::<A>` symbol for callgrind's `--toggle-collect='*run_pairs*'`.
///
/// # Safety
/// `layout.size()` must be non-zero.
#[inline(never)]
pub unsafe fn run_pairs<A: GlobalAlloc>(a: &A, layout: Layout, iterations: u64) {
    for _ in 0..iterations {
        // SAFETY: the caller guarantees a non-zero size.
        unsafe { pair(a, layout) };
    }
}

/// Allocates `slots.len()` objects of `layout` from `a` into `slots`, then frees them all in
/// allocation order (same thread). As in [`pair`], the layout passes through [`black_box`] for
/// every allocation.
///
/// # Safety
/// `layout.size()` must be non-zero.
#[inline(always)]
pub unsafe fn batch<A: GlobalAlloc>(a: &A, layout: Layout, slots: &mut [*mut u8]) {
    for slot in slots.iter_mut() {
        // SAFETY: the caller guarantees a non-zero size.
        *slot = unsafe { alloc_checked(a, black_box(layout)) };
    }
    black_box(&mut *slots);
    for &p in slots.iter() {
        // SAFETY: every slot holds a live pointer just returned by `a` for `layout`, each freed
        // exactly once.
        unsafe { a.dealloc(p, layout) };
    }
}

/// A batch buffer of [`BATCH`] null pointers.
pub fn batch_slots() -> Vec<*mut u8> {
    vec![ptr::null_mut(); BATCH]
}

/// Smallest size in the large mix: 64 KiB.
pub const LARGE_MIN: usize = 64 << 10;
/// Largest size in the large mix: 1 MiB.
pub const LARGE_MAX: usize = 1 << 20;
/// Number of sizes in the large-mix sequence (one criterion iteration is one pass over it).
pub const LARGE_LEN: usize = 32;

/// The fixed pseudo-random sequence of [`LARGE_LEN`] sizes in `LARGE_MIN..=LARGE_MAX` (xorshift64
/// from a constant seed; the same for every allocator and every run).
pub fn large_sizes() -> Vec<usize> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let span = (LARGE_MAX - LARGE_MIN + 1) as u64;
    (0..LARGE_LEN)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            LARGE_MIN + (x % span) as usize
        })
        .collect()
}

/// One large pair: allocates `layout`, writes one byte in every [`PAGE`] so the pages are really
/// faulted in, and frees it.
///
/// # Safety
/// `layout.size()` must be non-zero.
#[inline(always)]
pub unsafe fn large_pair<A: GlobalAlloc>(a: &A, layout: Layout) {
    // SAFETY: the caller guarantees a non-zero size.
    let p = unsafe { alloc_checked(a, layout) };
    let mut off = 0;
    while off < layout.size() {
        // SAFETY: `off < layout.size()`, so the byte lies inside the live block `p`.
        unsafe { p.add(off).write_volatile(1) };
        off += PAGE;
    }
    let p = black_box(p);
    // SAFETY: `p` was just returned by `a` for `layout` and is live.
    unsafe { a.dealloc(p, layout) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_sizes_in_range_and_fixed() {
        let s = large_sizes();
        assert_eq!(s.len(), LARGE_LEN);
        assert!(s.iter().all(|&n| (LARGE_MIN..=LARGE_MAX).contains(&n)));
        assert_eq!(s, large_sizes());
    }

    #[test]
    fn every_allocator_round_trips() {
        let mut slots = batch_slots();
        for size in SMALL_SIZES {
            let l = layout(size);
            // SAFETY: non-zero sizes.
            unsafe {
                run_pairs(&TEMPORAL_SLAB, l, 10);
                run_pairs(&GLIBC, l, 10);
                run_pairs(&MIMALLOC, l, 10);
                run_pairs(&JEMALLOC, l, 10);
                batch(&TEMPORAL_SLAB, l, &mut slots);
                batch(&GLIBC, l, &mut slots);
                batch(&MIMALLOC, l, &mut slots);
                batch(&JEMALLOC, l, &mut slots);
            }
        }
        for size in large_sizes() {
            let l = layout(size);
            // SAFETY: non-zero sizes.
            unsafe {
                large_pair(&TEMPORAL_SLAB, l);
                large_pair(&GLIBC, l);
                large_pair(&MIMALLOC, l);
                large_pair(&JEMALLOC, l);
            }
        }
    }
}
