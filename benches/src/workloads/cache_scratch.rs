//! cache-scratch-like: passive false sharing. The main thread allocates one small object per
//! worker, back to back (so several share a cache line), and hands one to each worker. Each
//! worker frees its object, then repeatedly allocates an object of the same size, writes it many
//! times and frees it. An allocator that gives a worker the memory it just freed, or memory next
//! to another worker's, makes the workers' writes fight over cache lines; one that keeps each
//! thread's memory apart does not. Total objects are fixed and split between the workers.

use std::sync::Mutex;

use super::{lock, on_threads, Outcome};
use crate::block::Block;

/// Sizes of a run.
#[derive(Clone, Copy, Debug)]
pub struct Params {
    /// Objects allocated, written and freed, in all.
    pub objects: u64,
    /// Byte writes per object.
    pub writes: usize,
    /// Object size (bytes).
    pub size: usize,
}

/// The reported size: 100,000 objects of 8 B, 1000 writes each.
pub const FULL: Params = Params { objects: 100_000, writes: 1000, size: 8 };
/// The smoke-test size.
pub const QUICK: Params = Params { objects: 2_000, writes: 100, size: 8 };

/// Runs cache-scratch on `threads` threads.
pub fn run(threads: usize, p: &Params) -> Outcome {
    let per_thread = p.objects / threads as u64;
    // Allocated back to back by this thread, before any worker exists.
    let first: Vec<Mutex<Option<Block>>> = (0..threads)
        .map(|i| {
            let mut b = Block::alloc(p.size);
            b.touch_ends(i as u8);
            Mutex::new(Some(b))
        })
        .collect();
    let (ns, _) = on_threads(threads, |t, gate| {
        let handed = lock(&first[t]).take();
        gate.start();
        drop(handed);
        scratch(per_thread, p);
        gate.end();
    });
    Outcome { elapsed_ns: ns, ops: per_thread * threads as u64, ..Outcome::default() }
}

#[inline(never)]
fn scratch(n: u64, p: &Params) {
    for _ in 0..n {
        let mut b = Block::alloc(p.size);
        for j in 0..p.writes {
            b.write(j, j as u8);
        }
        drop(b);
    }
}
