//! alloc-test-like: one thread, a working set of slots; every step picks a random slot and frees
//! its object if there is one, then (always for an empty slot, three times in four otherwise)
//! allocates a new object there and writes its first and last byte. Sizes are skewed to small
//! objects: 60% 8..=64 B, 25% 65..=512 B, 12% 513 B..=4 KiB, 3% 4 KiB..=32 KiB (uniform within
//! each band), which keeps the working set around 4 MB.

use super::{on_threads, Outcome, Rng};
use crate::block::{Block, Calls};

/// Sizes of a run.
#[derive(Clone, Copy, Debug)]
pub struct Params {
    /// Slots in the working set.
    pub slots: usize,
    /// Steps.
    pub steps: u64,
}

/// The reported size: 10,000 slots, 4 M steps.
pub const FULL: Params = Params { slots: 10_000, steps: 4_000_000 };
/// The smoke-test size.
pub const QUICK: Params = Params { slots: 1_000, steps: 40_000 };

/// A size from the mix.
#[inline(always)]
pub fn size(rng: &mut Rng) -> usize {
    match rng.below(100) {
        0..60 => rng.range(8, 64),
        60..85 => rng.range(65, 512),
        85..97 => rng.range(513, 4096),
        _ => rng.range(4097, 32768),
    }
}

/// Runs alloc-test; with `latency`, every alloc and free is timed.
pub fn run(p: &Params, latency: bool) -> Outcome {
    let n = p.steps as usize;
    let (ns, mut samples) = on_threads(1, |_, gate| {
        let mut rng = Rng::new(0);
        let mut set: Vec<Option<Block>> = (0..p.slots)
            .map(|i| {
                let mut b = Block::alloc(size(&mut rng));
                b.touch_ends(i as u8);
                Some(b)
            })
            .collect();
        gate.start();
        let s = with_calls!(latency, n, n, |c| steps(c, &mut rng, &mut set, p.steps));
        gate.end();
        s
    });
    let s = samples.pop().unwrap_or_default();
    Outcome { elapsed_ns: ns, ops: p.steps, ..Outcome::with_samples(s) }
}

#[inline(never)]
fn steps<C: Calls>(calls: &mut C, rng: &mut Rng, set: &mut [Option<Block>], n: u64) {
    for i in 0..n {
        let k = rng.below(set.len());
        let refill = match set[k].take() {
            Some(old) => {
                calls.free(old);
                rng.below(4) != 0
            }
            None => true,
        };
        if refill {
            let mut b = calls.alloc(size(rng));
            b.touch_ends(i as u8);
            set[k] = Some(b);
        }
    }
}
