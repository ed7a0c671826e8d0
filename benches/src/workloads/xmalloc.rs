//! xmalloc-like: producer threads allocate objects of random sizes (first and last byte
//! written) and pass them in batches to consumer threads, which free them: every object and
//! every batch vector is freed by a thread other than the one that allocated it.
//!
//! With `threads` >= 2, `ceil(threads / 2)` producers and the rest consumers; producer `p` sends
//! to consumer `p % consumers` through a bounded channel ([`CHANNEL_BATCHES`] batches). With 1
//! thread, that thread fills a batch and frees it itself (no cross-thread frees). Total objects
//! are fixed and split evenly between the producers.

use std::mem;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Mutex;

use super::{lock, on_threads, Outcome, Rng};
use crate::block::{Block, Calls, Samples};

/// Sizes of a run.
#[derive(Clone, Copy, Debug)]
pub struct Params {
    /// Objects in all.
    pub objects: u64,
    /// Objects per batch.
    pub batch: usize,
    /// Smallest object (bytes).
    pub min_size: usize,
    /// Largest object (bytes).
    pub max_size: usize,
}

/// The reported size: 4 M objects of 16..=512 B in batches of 256.
pub const FULL: Params = Params { objects: 4_000_000, batch: 256, min_size: 16, max_size: 512 };
/// The smoke-test size.
pub const QUICK: Params = Params { objects: 40_000, batch: 256, min_size: 16, max_size: 512 };

/// Batches a channel holds before its producer blocks.
pub const CHANNEL_BATCHES: usize = 16;

type Batch = Vec<Block>;

/// Runs xmalloc on `threads` threads; with `latency`, producers time their allocs and consumers
/// their frees.
pub fn run(threads: usize, p: &Params, latency: bool) -> Outcome {
    let producers = if threads == 1 { 1 } else { threads.div_ceil(2) };
    let consumers = threads - producers;
    let per_producer = (p.objects / producers as u64) as usize;
    let (txs, rxs): (Vec<SyncSender<Batch>>, Vec<Receiver<Batch>>) =
        (0..consumers).map(|_| sync_channel(CHANNEL_BATCHES)).unzip();
    let tx_of: Vec<Mutex<Option<SyncSender<Batch>>>> =
        (0..producers).map(|i| Mutex::new(txs.get(i % consumers.max(1)).cloned())).collect();
    drop(txs);
    let rx_of: Vec<Mutex<Option<Receiver<Batch>>>> = rxs.into_iter().map(|r| Mutex::new(Some(r))).collect();
    // A consumer frees what its producers make.
    let per_consumer = per_producer * producers.div_ceil(consumers.max(1));
    let (ns, samples) = on_threads(threads, |t, gate| {
        let mut rng = Rng::new(t as u64);
        if t < producers {
            let tx = lock(&tx_of[t]).take();
            gate.start();
            let frees = if tx.is_none() { per_producer } else { 0 };
            let s = with_calls!(latency, per_producer, frees, |c| produce(c, &mut rng, tx, per_producer, p));
            gate.end();
            s
        } else {
            let rx = lock(&rx_of[t - producers]).take();
            gate.start();
            let s = with_calls!(latency, 0, per_consumer, |c| {
                if let Some(rx) = rx {
                    consume(c, rx)
                }
            });
            gate.end();
            s
        }
    });
    Outcome {
        elapsed_ns: ns,
        ops: (per_producer * producers) as u64,
        ..Outcome::with_samples(Samples::concat(samples))
    }
}

/// Makes `n` objects in batches; sends each full batch to `tx`, or frees it here without one.
#[inline(never)]
fn produce<C: Calls>(calls: &mut C, rng: &mut Rng, tx: Option<SyncSender<Batch>>, n: usize, p: &Params) {
    let mut batch: Batch = Vec::with_capacity(p.batch);
    for i in 0..n {
        let mut b = calls.alloc(rng.range(p.min_size, p.max_size));
        b.touch_ends(i as u8);
        batch.push(b);
        if batch.len() == p.batch || i + 1 == n {
            match &tx {
                Some(tx) => {
                    let full = mem::replace(&mut batch, Vec::with_capacity(p.batch));
                    if tx.send(full).is_err() {
                        return;
                    }
                }
                None => {
                    for b in batch.drain(..) {
                        calls.free(b);
                    }
                }
            }
        }
    }
}

/// Frees every object of every batch received until all producers are done.
#[inline(never)]
fn consume<C: Calls>(calls: &mut C, rx: Receiver<Batch>) {
    for batch in rx {
        for b in batch {
            calls.free(b);
        }
    }
}
