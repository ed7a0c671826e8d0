//! domain-cycle: the cost of one domain's whole life, the smallest unit of the domain API: open
//! (`EpochDomain::new(Some("bench"))`), enter, one 32 B allocation and its free inside, exit (the
//! guard drops), close. Each thread does [`Params::cycles`] of them back to back; run at 1 and 2
//! threads, the ratio says how much two threads doing it at once slow each other down (1.0:
//! not at all, 2.0: fully serialised).
//!
//! Without `epochs` (`temporal-slab-noepochs`) only the allocation and the free are made: the
//! floor the domain calls add to.

use std::hint::black_box;

use temporal_slab::EpochDomain;

use super::{on_threads, Outcome};

/// Sizes of a run.
#[derive(Clone, Copy, Debug)]
pub struct Params {
    /// Cycles per thread.
    pub cycles: u64,
}

/// The reported size.
pub const FULL: Params = Params { cycles: 200_000 };
/// The smoke-test size.
pub const QUICK: Params = Params { cycles: 500 };

/// Runs domain-cycle on `threads` threads; `epochs`: make the domain calls.
pub fn run(threads: usize, p: &Params, epochs: bool) -> Outcome {
    let (ns, _) = on_threads(threads, |t, gate| {
        gate.start();
        for i in 0..p.cycles {
            if epochs {
                let d = EpochDomain::new(Some("bench"));
                {
                    let _in = d.enter();
                    drop(black_box(Box::new([i ^ t as u64; 4])));
                }
                d.close();
            } else {
                drop(black_box(Box::new([i ^ t as u64; 4])));
            }
        }
        gate.end();
    });
    Outcome {
        elapsed_ns: ns,
        ops: p.cycles * threads as u64,
        extra: Some(serde_json::json!({
            "epochs": epochs,
            "cycles_per_thread": p.cycles,
            "ns_per_cycle": ns as f64 / p.cycles as f64,
        })),
        ..Outcome::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_cycles_per_thread() {
        for epochs in [false, true] {
            let o = run(2, &Params { cycles: 100 }, epochs);
            assert_eq!(o.ops, 200);
            assert_eq!(o.extra.unwrap()["cycles_per_thread"], 100);
        }
    }
}
