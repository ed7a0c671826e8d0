//! Remote frees: one thread allocates, another frees, the `pairs --remote` benchmark.
//!
//! A producer thread allocates batches of [`REMOTE_BATCH`] objects and hands each batch to a
//! consumer thread, which frees every object of it: each free is of an object whose slab (or
//! span, or page) another thread owns, the producer/consumer pattern of a pipeline or a work
//! queue. Only the consumer's free loop is timed (the handing over is not), so the result is
//! the time of one remote free; the producer's allocation loop is timed the same way.
//!
//! Batches travel through bounded `std::sync::mpsc` channels in boxes that go back and forth,
//! allocated once before the run (by the harness's own allocator, glibc), so the measured
//! allocator serves nothing but the benchmark's objects. `QUEUED` batches may be in flight at
//! once: the producer is never far ahead, so the objects are freed while their slabs are still
//! in use by it (the hard case: the owner and the freer touch the same slabs).

use std::alloc::{GlobalAlloc, Layout};
use std::sync::mpsc::sync_channel;
use std::thread;
use std::time::{Duration, Instant};

use crate::layout;

/// Objects per batch handed from the producer to the consumer.
pub const REMOTE_BATCH: usize = 256;
/// Batches in flight at most.
const QUEUED: usize = 4;

/// Pointers of one batch (as addresses, so the box can cross threads).
type Batch = Box<[usize; REMOTE_BATCH]>;

/// What one run measured.
#[derive(Clone, Copy, Debug)]
pub struct RemoteRun {
    /// Objects allocated by the producer and freed by the consumer.
    pub objects: u64,
    /// Time in the consumer's free loops.
    pub free_time: Duration,
    /// Time in the producer's allocation loops.
    pub alloc_time: Duration,
}

impl RemoteRun {
    /// Nanoseconds per remote free.
    pub fn ns_per_free(&self) -> f64 {
        self.free_time.as_nanos() as f64 / self.objects.max(1) as f64
    }

    /// Nanoseconds per allocation (of objects that will be freed remotely).
    pub fn ns_per_alloc(&self) -> f64 {
        self.alloc_time.as_nanos() as f64 / self.objects.max(1) as f64
    }
}

/// Runs `batches` batches of `size`-byte objects from a producer to a consumer through `a`.
pub fn run_remote<A: GlobalAlloc + Sync>(a: &'static A, size: usize, batches: u64) -> RemoteRun {
    let l = layout(size);
    let (full_tx, full_rx) = sync_channel::<Batch>(QUEUED);
    let (empty_tx, empty_rx) = sync_channel::<Batch>(QUEUED);
    for _ in 0..QUEUED {
        empty_tx.send(Box::new([0; REMOTE_BATCH])).expect("the channel is open");
    }
    let consumer = thread::spawn(move || {
        // Like any thread of a program, the consumer has allocated before: the allocators that
        // keep per-thread state have set it up before the timed frees.
        // SAFETY: `l` has a non-zero size; the object is freed at once with its own layout.
        unsafe { crate::pair(a, l) };
        let mut free_time = Duration::ZERO;
        while let Ok(batch) = full_rx.recv() {
            let start = Instant::now();
            // SAFETY: every address is a live object of layout `l` allocated by `a` (the
            // producer), handed over whole and freed once.
            unsafe { free_batch(a, l, &batch) };
            free_time += start.elapsed();
            // The producer may have stopped taking boxes back: nothing to do then.
            let _ = empty_tx.send(batch);
        }
        free_time
    });
    let mut alloc_time = Duration::ZERO;
    for _ in 0..batches {
        let mut batch = empty_rx.recv().expect("the consumer hands every box back");
        let start = Instant::now();
        // SAFETY: `l` has a non-zero size (`layout` of a positive size, checked by the caller).
        unsafe { alloc_batch(a, l, &mut batch) };
        alloc_time += start.elapsed();
        full_tx.send(batch).expect("the consumer runs until the channel closes");
    }
    drop(full_tx);
    let free_time = consumer.join().expect("the consumer does not panic");
    RemoteRun { objects: batches * REMOTE_BATCH as u64, free_time, alloc_time }
}

/// Fills `batch` with new objects. Not inlined: `--toggle-collect='*alloc_batch*'`.
///
/// # Safety
/// `l.size()` must be non-zero.
#[inline(never)]
pub unsafe fn alloc_batch<A: GlobalAlloc>(a: &A, l: Layout, batch: &mut [usize; REMOTE_BATCH]) {
    for slot in batch.iter_mut() {
        // SAFETY: the caller guarantees a non-zero size.
        let p = unsafe { a.alloc(l) };
        if p.is_null() {
            std::alloc::handle_alloc_error(l);
        }
        *slot = p as usize;
    }
}

/// Frees every object of `batch`. Not inlined: `--toggle-collect='*free_batch*'` counts the
/// remote frees alone.
///
/// # Safety
/// Every address in `batch` must be a live object of layout `l` allocated by `a`.
#[inline(never)]
pub unsafe fn free_batch<A: GlobalAlloc>(a: &A, l: Layout, batch: &[usize; REMOTE_BATCH]) {
    for &p in batch {
        // SAFETY: the caller guarantees it.
        unsafe { a.dealloc(p as *mut u8, l) };
    }
}
