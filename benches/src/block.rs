//! [`Block`]: a block of memory owned by a workload, allocated from and freed to the process's
//! global allocator with one call each; and [`Calls`], the way workloads make those calls, plain
//! ([`Plain`]) or each one timed ([`Timed`]).
//!
//! A workload that needs to time single calls is written once, generic over [`Calls`], and run
//! with [`Plain`] for throughput and with [`Timed`] for latency, so the timed runs never slow the
//! throughput runs down.

use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::hint::black_box;
use std::ptr::NonNull;

use crate::clock;

/// Alignment of every block.
pub const BLOCK_ALIGN: usize = 8;

/// A block of at least one byte from the global allocator, freed when dropped (like a
/// `Box<[u8]>` with uninitialised contents that are never read back).
#[derive(Debug)]
pub struct Block {
    ptr: NonNull<u8>,
    size: usize,
}

// SAFETY: a Block owns its memory exclusively (nothing else points into it), and the global
// allocator accepts frees from any thread, so it may move to another thread like a Box.
unsafe impl Send for Block {}

impl Block {
    #[inline(always)]
    fn layout(size: usize) -> Layout {
        match Layout::from_size_align(size, BLOCK_ALIGN) {
            Ok(l) => l,
            Err(_) => panic!("block of {size} bytes does not fit a Layout"),
        }
    }

    /// Allocates `size` bytes (at least 1) with one call to the global allocator; the contents
    /// are left untouched. Aborts through [`handle_alloc_error`] when the allocator returns null.
    #[inline(always)]
    pub fn alloc(size: usize) -> Block {
        let size = size.max(1);
        let layout = Block::layout(size);
        // SAFETY: `size >= 1`, so the layout has a non-zero size.
        let p = unsafe { alloc(layout) };
        // The pointer escapes, so the optimiser cannot pair this call with the free and drop both.
        let p = black_box(p);
        match NonNull::new(p) {
            Some(ptr) => Block { ptr, size },
            None => handle_alloc_error(layout),
        }
    }

    /// Bytes in the block.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Writes `v` to the block's first and last byte (what the small-object workloads do with
    /// every object: cheap, but it makes the memory resident at both ends).
    #[inline(always)]
    pub fn touch_ends(&mut self, v: u8) {
        self.write(0, v);
        self.write(self.size - 1, v);
    }

    /// Writes `v` to one byte in every `page` bytes, from the first byte on, and to the last byte:
    /// every page of the block becomes resident.
    pub fn touch_pages(&mut self, v: u8, page: usize) {
        let mut off = 0;
        while off < self.size {
            self.write(off, v);
            off += page.max(1);
        }
        self.write(self.size - 1, v);
    }

    /// Volatile write of `v` at `offset % size` (the write is never elided nor merged).
    #[inline(always)]
    pub fn write(&mut self, offset: usize, v: u8) {
        let off = offset % self.size;
        // SAFETY: `off < size`, inside the live block this Block owns.
        unsafe { self.ptr.as_ptr().add(off).write_volatile(v) };
    }
}

impl Drop for Block {
    #[inline(always)]
    fn drop(&mut self) {
        // SAFETY: `ptr` was returned by the global allocator for exactly this layout and is
        // freed once, here.
        unsafe { dealloc(self.ptr.as_ptr(), Block::layout(self.size)) };
    }
}

/// How a workload makes its allocator calls.
pub trait Calls {
    /// Allocates a block of `size` bytes (one call).
    fn alloc(&mut self, size: usize) -> Block;
    /// Frees `block` (one call).
    fn free(&mut self, block: Block);
    /// The timed samples; empty for untimed calls.
    fn into_samples(self) -> Samples;
}

/// What timed calls recorded: ticks per call (clock overhead included) and, in a build with
/// temporal-slab's `path-trace` feature, the steps each call took (`temporal_slab::paths`
/// masks, one per tick sample; empty otherwise).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Samples {
    /// Ticks of single alloc calls.
    pub alloc: Vec<u32>,
    /// Ticks of single free calls.
    pub free: Vec<u32>,
    /// The steps of each alloc call (parallel to `alloc`), when traced.
    pub alloc_paths: Vec<u32>,
    /// The steps of each free call (parallel to `free`), when traced.
    pub free_paths: Vec<u32>,
}

impl Samples {
    /// The samples of several threads, one after the other.
    pub fn concat(parts: impl IntoIterator<Item = Samples>) -> Samples {
        let mut all = Samples::default();
        for p in parts {
            all.alloc.extend_from_slice(&p.alloc);
            all.free.extend_from_slice(&p.free);
            all.alloc_paths.extend_from_slice(&p.alloc_paths);
            all.free_paths.extend_from_slice(&p.free_paths);
        }
        all
    }
}

/// Untimed calls.
#[derive(Clone, Copy, Debug, Default)]
pub struct Plain;

impl Calls for Plain {
    #[inline(always)]
    fn alloc(&mut self, size: usize) -> Block {
        Block::alloc(size)
    }

    #[inline(always)]
    fn free(&mut self, block: Block) {
        drop(block);
    }

    fn into_samples(self) -> Samples {
        Samples::default()
    }
}

/// Every call timed on its own with [`clock::now`]; the samples (ticks, clock overhead
/// included) go into buffers reserved up front, and calls beyond their capacity are timed but
/// not kept, so recording never allocates. In a `path-trace` build each call's steps are
/// recorded too: the thread's mask is cleared before the first clock reading and read after the
/// second, outside the timed region.
#[derive(Debug, Default)]
pub struct Timed {
    s: Samples,
}

/// Whether this build records the steps of each timed call.
const TRACE: bool = temporal_slab::paths::ENABLED;

impl Timed {
    /// Room for `allocs` alloc samples and `frees` free samples.
    pub fn with_capacity(allocs: usize, frees: usize) -> Timed {
        let traced = |n: usize| Vec::with_capacity(if TRACE { n } else { 0 });
        Timed {
            s: Samples {
                alloc: Vec::with_capacity(allocs),
                free: Vec::with_capacity(frees),
                alloc_paths: traced(allocs),
                free_paths: traced(frees),
            },
        }
    }
}

#[inline(always)]
fn keep(samples: &mut Vec<u32>, s: u32) {
    if samples.len() < samples.capacity() {
        samples.push(s);
    }
}

impl Calls for Timed {
    #[inline(always)]
    fn alloc(&mut self, size: usize) -> Block {
        if TRACE {
            temporal_slab::paths::take();
        }
        let t0 = clock::now();
        let b = Block::alloc(size);
        let t1 = clock::now();
        keep(&mut self.s.alloc, clock::span(t0, t1));
        if TRACE {
            keep(&mut self.s.alloc_paths, temporal_slab::paths::take());
        }
        b
    }

    #[inline(always)]
    fn free(&mut self, block: Block) {
        if TRACE {
            temporal_slab::paths::take();
        }
        let t0 = clock::now();
        drop(block);
        let t1 = clock::now();
        keep(&mut self.s.free, clock::span(t0, t1));
        if TRACE {
            keep(&mut self.s.free_paths, temporal_slab::paths::take());
        }
    }

    fn into_samples(self) -> Samples {
        self.s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_round_trip_and_samples_are_bounded() {
        let mut t = Timed::with_capacity(2, 1);
        for size in [0, 1, 100, 5000, 1 << 20] {
            let mut b = t.alloc(size);
            b.touch_ends(7);
            b.touch_pages(1, 4096);
            b.write(size * 3 + 1, 2);
            assert_eq!(b.size(), size.max(1));
            t.free(b);
        }
        let s = t.into_samples();
        assert_eq!((s.alloc.len(), s.free.len()), (2, 1));
        let traced = if TRACE { (2, 1) } else { (0, 0) };
        assert_eq!((s.alloc_paths.len(), s.free_paths.len()), traced);
        let mut p = Plain;
        let b = p.alloc(10);
        p.free(b);
        assert_eq!(p.into_samples(), Samples::default());
    }
}
