//! malloc-large-like: one thread keeps a few large blocks and keeps replacing a random one by a
//! new block of a random size between 64 KiB and 16 MiB (log-uniform: as many sizes per octave),
//! writing one byte in every 4 KiB page of it, so every page is really used.

use super::{on_threads, Outcome, Rng};
use crate::block::{Block, Calls};

/// Sizes of a run.
#[derive(Clone, Copy, Debug)]
pub struct Params {
    /// Blocks kept.
    pub slots: usize,
    /// Replacements.
    pub steps: u64,
    /// Smallest block (bytes).
    pub min_size: usize,
    /// Largest block (bytes).
    pub max_size: usize,
}

/// The reported size: 16 blocks, 2000 replacements, 64 KiB..=16 MiB.
pub const FULL: Params = Params { slots: 16, steps: 2000, min_size: 64 << 10, max_size: 16 << 20 };
/// The smoke-test size.
pub const QUICK: Params = Params { slots: 4, steps: 40, min_size: 64 << 10, max_size: 16 << 20 };

/// Bytes between the bytes written in a block.
pub const PAGE: usize = 4096;

/// Runs malloc-large; with `latency`, every alloc and free is timed.
pub fn run(p: &Params, latency: bool) -> Outcome {
    let n = p.steps as usize;
    let (ns, mut samples) = on_threads(1, |_, gate| {
        let mut rng = Rng::new(0);
        let mut set: Vec<Option<Block>> = (0..p.slots)
            .map(|i| {
                let mut b = Block::alloc(rng.log_uniform(p.min_size, p.max_size));
                b.touch_pages(i as u8, PAGE);
                Some(b)
            })
            .collect();
        gate.start();
        let s = with_calls!(latency, n, n, |c| steps(c, &mut rng, &mut set, p));
        gate.end();
        s
    });
    let s = samples.pop().unwrap_or_default();
    Outcome { elapsed_ns: ns, ops: p.steps, ..Outcome::with_samples(s) }
}

#[inline(never)]
fn steps<C: Calls>(calls: &mut C, rng: &mut Rng, set: &mut [Option<Block>], p: &Params) {
    for i in 0..p.steps {
        let k = rng.below(set.len());
        if let Some(old) = set[k].take() {
            calls.free(old);
        }
        let mut b = calls.alloc(rng.log_uniform(p.min_size, p.max_size));
        b.touch_pages(i as u8, PAGE);
        set[k] = Some(b);
    }
}
