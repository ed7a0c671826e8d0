//! larson-like: a server whose threads each hold a set of objects of random sizes and keep
//! replacing random ones (free the old, allocate a new one of a new random size, write it).
//!
//! After every round the sets move one thread along a ring (thread `t` works on set
//! `(t + round) % threads`), so from the second round on a thread mostly frees objects another
//! thread allocated: cross-thread frees at every thread count above 1. (The original benchmark
//! hands a thread's objects to a new thread that replaces it; moving the sets between live
//! threads gives the same cross-thread frees without timing thread creation.) Each new object
//! gets its first and last byte written. Total work is fixed: more threads means less work each.

use std::sync::{Barrier, Mutex};

use super::{lock, on_threads, Outcome, Rng};
use crate::block::{Block, Calls, Samples};

/// Sizes of a run.
#[derive(Clone, Copy, Debug)]
pub struct Params {
    /// Objects per thread's set.
    pub slots_per_thread: usize,
    /// Replacements in all, over all threads and rounds.
    pub ops: u64,
    /// Rounds (hand-offs of the sets).
    pub rounds: usize,
    /// Smallest object (bytes).
    pub min_size: usize,
    /// Largest object (bytes).
    pub max_size: usize,
}

/// The reported size: 4 M replacements of 8..=1000 B objects, 1000 objects per thread, 20 rounds.
pub const FULL: Params = Params { slots_per_thread: 1000, ops: 4_000_000, rounds: 20, min_size: 8, max_size: 1000 };
/// The smoke-test size.
pub const QUICK: Params = Params { slots_per_thread: 200, ops: 40_000, rounds: 4, min_size: 8, max_size: 1000 };

/// Runs larson on `threads` threads; with `latency`, every replacement's free and alloc are
/// timed.
pub fn run(threads: usize, p: &Params, latency: bool) -> Outcome {
    let rounds = p.rounds.max(1);
    let per_round = (p.ops / (threads * rounds) as u64).max(1);
    let per_thread = (per_round * rounds as u64) as usize;
    let sets: Vec<Mutex<Vec<Option<Block>>>> = (0..threads).map(|_| Mutex::new(Vec::new())).collect();
    let round_end = Barrier::new(threads);
    let (ns, samples) = on_threads(threads, |t, gate| {
        let mut rng = Rng::new(t as u64);
        {
            let mut own = lock(&sets[t]);
            own.reserve_exact(p.slots_per_thread);
            for i in 0..p.slots_per_thread {
                let mut b = Block::alloc(rng.range(p.min_size, p.max_size));
                b.touch_ends(i as u8);
                own.push(Some(b));
            }
        }
        gate.start();
        let s = with_calls!(latency, per_thread, per_thread, |c| {
            for r in 0..rounds {
                replace(c, &mut rng, &mut lock(&sets[(t + r) % threads]), per_round, p);
                round_end.wait();
            }
        });
        gate.end();
        s
    });
    drop(sets);
    Outcome {
        elapsed_ns: ns,
        ops: per_round * (rounds * threads) as u64,
        ..Outcome::with_samples(Samples::concat(samples))
    }
}

/// `n` replacements of random slots of `set`.
#[inline(never)]
fn replace<C: Calls>(calls: &mut C, rng: &mut Rng, set: &mut [Option<Block>], n: u64, p: &Params) {
    for i in 0..n {
        let k = rng.below(set.len());
        if let Some(old) = set[k].take() {
            calls.free(old);
        }
        let mut b = calls.alloc(rng.range(p.min_size, p.max_size));
        b.touch_ends(i as u8);
        set[k] = Some(b);
    }
}
