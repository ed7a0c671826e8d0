//! A bin whose free cells are scattered (every other cell freed) serves them through the free
//! cache in bulk (`Heap::cache_scattered`): every object handed out is distinct from the live
//! ones and from each other, and nothing live is overwritten; and the class's allocation and
//! free counts stay exact, though the cells the cache takes in bulk are no frees and most
//! objects pass through the cache, which counts them itself. TemporalSlab is this binary's
//! global allocator.

use std::collections::HashSet;
use std::thread;

use temporal_slab::{epoch, snapshot, TemporalSlab};

#[global_allocator]
static GLOBAL: TemporalSlab = TemporalSlab::new();

const N: usize = 4000;
type Obj = [u64; 6]; // 48 bytes: one size class, 1,365 cells a 64 KiB slab

fn fill(b: &mut Obj, v: u64) {
    b.iter_mut().for_each(|w| *w = v);
}

#[test]
fn scattered_cells_are_served_once_each_and_live_objects_stay_intact() {
    thread::spawn(|| {
        let class = |s: &temporal_slab::Snapshot| {
            let c = s.classes.iter().find(|c| c.object_size == 48).expect("a 48-byte class");
            (c.allocations, c.frees)
        };
        // Whatever an advance and a snapshot set up the first time (the reclaimer thread, say)
        // happens before the counted window.
        epoch::advance();
        let before = class(&snapshot());
        for round in 0..3u64 {
            let mut all: Vec<Box<Obj>> = (0..N as u64).map(|i| Box::new([i; 6])).collect();
            // Free every other object, in address order of allocation: the bitmap gets runs of
            // one cell, the pattern that used to cost one slow path per allocation.
            let mut kept = Vec::with_capacity(N / 2);
            for (i, b) in all.drain(..).enumerate() {
                if i % 2 == 0 {
                    kept.push((i as u64, b));
                }
            }
            let live: HashSet<usize> = kept.iter().map(|(_, b)| std::ptr::from_ref::<Obj>(b).addr()).collect();
            let mut fresh: Vec<Box<Obj>> = Vec::with_capacity(N / 2);
            // Sized up front: a growing table passes through small sizes, one of them 48 bytes
            // on some targets (the class counted below).
            let mut seen = HashSet::with_capacity(N);
            for j in 0..(N / 2) as u64 {
                let mut b = Box::new([0u64; 6]);
                let a = std::ptr::from_ref::<Obj>(&b).addr();
                assert!(!live.contains(&a), "round {round}: handed out a live object's cell");
                assert!(seen.insert(a), "round {round}: the same cell twice");
                fill(&mut b, u64::MAX - j);
                fresh.push(b);
            }
            for (i, b) in &kept {
                assert!(b.iter().all(|w| w == i), "round {round}: live object {i} overwritten");
            }
            for (j, b) in fresh.iter().enumerate() {
                assert!(b.iter().all(|&w| w == u64::MAX - j as u64), "round {round}: new object {j} overwritten");
            }
        }
        // A new epoch empties the thread's free cache into the slabs (a flush).
        epoch::advance();
        drop(std::hint::black_box(Box::new([0u64; 6])));
        let after = class(&snapshot());
        let made = 3 * (N + N / 2) as u64 + 1;
        assert_eq!(after.0 - before.0, made, "48-byte allocations counted");
        assert_eq!(after.1 - before.1, made, "48-byte frees counted");
    })
    .join()
    .unwrap();
}
