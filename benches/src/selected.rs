//! A global allocator chosen at run time, so that one benchmark binary can run every workload on
//! every allocator with that allocator as the process's `#[global_allocator]`: all of the
//! workload's allocations (its `Vec`s, `String`s, `HashMap`s, thread stacks' bookkeeping, the
//! harness's own buffers) go through the allocator under test, as in a real program.
//!
//! The choice is read once, at the process's first allocation, from the environment variable
//! [`ENV`] (`temporal-slab`, `glibc`, `mimalloc` or `jemalloc`; unset or unknown: glibc), with
//! `getenv`, which does not allocate. It never changes afterwards, so every block is freed by the
//! allocator that returned it. The runners start one child process per allocator with [`ENV`]
//! set, and the child checks [`choice`] against the allocator it was asked to measure.
//!
//! Every call pays the same dispatch (one relaxed load and a predictable branch) whichever
//! allocator is chosen.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU8, Ordering};

use crate::{GLIBC, JEMALLOC, MIMALLOC, TEMPORAL_SLAB};

/// The environment variable that selects the allocator.
pub const ENV: &str = "BENCH_ALLOCATOR";

/// The allocators [`SelectedAllocator`] can dispatch to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Choice {
    /// [`temporal_slab::TemporalSlab`].
    TemporalSlab = 1,
    /// [`System`]: glibc `malloc`.
    Glibc = 2,
    /// [`mimalloc::MiMalloc`].
    Mimalloc = 3,
    /// [`tikv_jemallocator::Jemalloc`].
    Jemalloc = 4,
}

impl Choice {
    /// The name used in [`ENV`] and on command lines.
    pub fn name(self) -> &'static str {
        match self {
            Choice::TemporalSlab => "temporal-slab",
            Choice::Glibc => "glibc",
            Choice::Mimalloc => "mimalloc",
            Choice::Jemalloc => "jemalloc",
        }
    }

    /// The choice named `name` (as bytes, so it can be matched without allocating).
    pub fn from_name(name: &[u8]) -> Option<Choice> {
        match name {
            b"temporal-slab" => Some(Choice::TemporalSlab),
            b"glibc" => Some(Choice::Glibc),
            b"mimalloc" => Some(Choice::Mimalloc),
            b"jemalloc" => Some(Choice::Jemalloc),
            _ => None,
        }
    }

    fn from_u8(v: u8) -> Choice {
        match v {
            1 => Choice::TemporalSlab,
            3 => Choice::Mimalloc,
            4 => Choice::Jemalloc,
            _ => Choice::Glibc,
        }
    }
}

/// 0 until the first allocation reads [`ENV`], then a [`Choice`] as `u8`.
static CHOICE: AtomicU8 = AtomicU8::new(0);

/// The allocator this process dispatches to (reads [`ENV`] on first use).
#[inline(always)]
pub fn choice() -> Choice {
    match CHOICE.load(Ordering::Relaxed) {
        0 => choose(),
        v => Choice::from_u8(v),
    }
}

#[cold]
#[inline(never)]
fn choose() -> Choice {
    // SAFETY: `getenv` reads the environment block; the name is a valid C string. The first
    // allocation happens before `main` can start threads or change the environment, so nothing
    // writes the environment concurrently.
    let value = unsafe { libc::getenv(c"BENCH_ALLOCATOR".as_ptr()) };
    let chosen = if value.is_null() {
        Choice::Glibc
    } else {
        // SAFETY: a non-null `getenv` result is a NUL-terminated string that lives as long as the
        // environment is not modified (see above).
        let bytes = unsafe { core::ffi::CStr::from_ptr(value) }.to_bytes();
        Choice::from_name(bytes).unwrap_or(Choice::Glibc)
    };
    // Relaxed: every thread computes the same value from the same environment; the first store
    // wins and later loads see either 0 (and recompute the same) or that value.
    match CHOICE.compare_exchange(0, chosen as u8, Ordering::Relaxed, Ordering::Relaxed) {
        Ok(_) => chosen,
        Err(v) => Choice::from_u8(v),
    }
}

/// The run-time selected allocator; install it with
/// `#[global_allocator] static GLOBAL: SelectedAllocator = SelectedAllocator;`.
#[derive(Clone, Copy, Debug, Default)]
pub struct SelectedAllocator;

// SAFETY: every method forwards to the same underlying allocator for the whole life of the
// process (`choice` never changes once set, and is set before the first block is returned), so
// each block is freed, resized or zero-allocated by the allocator that owns it, under that
// allocator's own `GlobalAlloc` contract.
unsafe impl GlobalAlloc for SelectedAllocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded caller guarantees (non-zero size).
        unsafe {
            match choice() {
                Choice::TemporalSlab => TEMPORAL_SLAB.alloc(layout),
                Choice::Glibc => GLIBC.alloc(layout),
                Choice::Mimalloc => MIMALLOC.alloc(layout),
                Choice::Jemalloc => JEMALLOC.alloc(layout),
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded caller guarantees (non-zero size).
        unsafe {
            match choice() {
                Choice::TemporalSlab => TEMPORAL_SLAB.alloc_zeroed(layout),
                Choice::Glibc => System.alloc_zeroed(layout),
                Choice::Mimalloc => MIMALLOC.alloc_zeroed(layout),
                Choice::Jemalloc => JEMALLOC.alloc_zeroed(layout),
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        // SAFETY: forwarded caller guarantees; `p` came from this same allocator (see the impl's
        // SAFETY comment).
        unsafe {
            match choice() {
                Choice::TemporalSlab => TEMPORAL_SLAB.dealloc(p, layout),
                Choice::Glibc => GLIBC.dealloc(p, layout),
                Choice::Mimalloc => MIMALLOC.dealloc(p, layout),
                Choice::Jemalloc => JEMALLOC.dealloc(p, layout),
            }
        }
    }

    #[inline]
    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded caller guarantees; `p` came from this same allocator.
        unsafe {
            match choice() {
                Choice::TemporalSlab => TEMPORAL_SLAB.realloc(p, layout, new_size),
                Choice::Glibc => GLIBC.realloc(p, layout, new_size),
                Choice::Mimalloc => MIMALLOC.realloc(p, layout, new_size),
                Choice::Jemalloc => JEMALLOC.realloc(p, layout, new_size),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for c in [Choice::TemporalSlab, Choice::Glibc, Choice::Mimalloc, Choice::Jemalloc] {
            assert_eq!(Choice::from_name(c.name().as_bytes()), Some(c));
            assert_eq!(Choice::from_u8(c as u8), c);
        }
        assert_eq!(Choice::from_name(b"tcmalloc"), None);
    }

    #[test]
    fn forwards_as_an_instance() {
        let l = Layout::from_size_align(100, 8).unwrap();
        // SAFETY: non-zero size; the block is freed once with its layout.
        unsafe {
            let p = SelectedAllocator.alloc(l);
            assert!(!p.is_null());
            let q = SelectedAllocator.realloc(p, l, 200);
            assert!(!q.is_null());
            SelectedAllocator.dealloc(q, Layout::from_size_align(200, 8).unwrap());
        }
    }
}
