//! Stress: 8 threads, 2 million allocations, half of them freed by another thread
//! (producer/consumer ring), every object canary-checked on free; afterwards the per-class
//! counters account for every allocation. One test per binary so the counters see only it.

use std::sync::mpsc::{channel, Receiver, Sender, TryRecvError};
use std::thread;

use temporal_slab::size_class::{class_for, NUM_CLASSES};
use temporal_slab::{snapshot, TemporalSlab};

#[global_allocator]
static GLOBAL: TemporalSlab = TemporalSlab::new();

const THREADS: usize = 8;
const ALLOCS_PER_THREAD: usize = 250_000;

/// An object whose every byte is derived from its tag, so any overwrite is caught.
struct Obj(Box<[u8]>);

impl Obj {
    fn new(tag: u64, size: usize) -> Obj {
        let mut b = vec![0u8; size].into_boxed_slice();
        b[..8].copy_from_slice(&tag.to_le_bytes());
        b[8..].fill(tag as u8 ^ 0x5a);
        Obj(b)
    }

    fn check(&self) {
        let tag = u64::from_le_bytes(self.0[..8].try_into().unwrap());
        let fill = tag as u8 ^ 0x5a;
        assert!(self.0[8..].iter().all(|&b| b == fill), "canary overwritten in object tag {tag:#x}");
    }
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Returns per-class counts of allocations this thread made (boxes of `size` bytes).
fn worker(id: usize, tx: Sender<Vec<Obj>>, rx: Receiver<Vec<Obj>>) -> [u64; NUM_CLASSES] {
    let mut counts = [0u64; NUM_CLASSES];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (id as u64 + 1));
    let mut mine: Vec<Obj> = Vec::with_capacity(4096);
    let mut out: Vec<Obj> = Vec::with_capacity(64);
    let mut received = 0usize;
    for i in 0..ALLOCS_PER_THREAD {
        let r = rng.next();
        // Mostly small, some up to 4 KiB, a few up to 20 KiB.
        let size = match r % 100 {
            0..=79 => 16 + (r >> 8) as usize % 240,
            80..=97 => 16 + (r >> 8) as usize % 4080,
            _ => 16 + (r >> 8) as usize % 20_000,
        };
        counts[class_for(size, 1).unwrap().index()] += 1;
        let obj = Obj::new(((id as u64) << 32) | i as u64, size);
        if r & (1 << 40) != 0 {
            out.push(obj);
            if out.len() == 64 {
                // The batch Vec itself is one of our allocations too.
                counts[class_for(64 * std::mem::size_of::<Obj>(), 8).unwrap().index()] += 1;
                tx.send(std::mem::replace(&mut out, Vec::with_capacity(64))).unwrap();
            }
        } else {
            mine.push(obj);
        }
        if mine.len() > 2000 || (r >> 50).is_multiple_of(4) {
            if let Some(o) = (!mine.is_empty()).then(|| mine.swap_remove((r >> 20) as usize % mine.len())) {
                o.check();
            }
        }
        match rx.try_recv() {
            Ok(batch) => {
                for o in batch {
                    o.check();
                    received += 1;
                }
            }
            Err(TryRecvError::Empty | TryRecvError::Disconnected) => {}
        }
    }
    tx.send(out).unwrap();
    drop(tx);
    for batch in rx {
        for o in batch {
            o.check();
            received += 1;
        }
    }
    for o in mine {
        o.check();
    }
    assert!(received > ALLOCS_PER_THREAD / 4, "thread {id} received only {received} objects");
    counts
}

fn class_totals() -> (Vec<u64>, Vec<u64>) {
    let s = snapshot();
    (s.classes.iter().map(|c| c.allocations).collect(), s.classes.iter().map(|c| c.frees).collect())
}

#[test]
fn eight_threads_two_million_allocations_cross_thread() {
    let (a0, f0) = class_totals();
    let mut senders = Vec::new();
    let mut receivers = Vec::new();
    for _ in 0..THREADS {
        let (tx, rx) = channel::<Vec<Obj>>();
        senders.push(tx);
        receivers.push(Some(rx));
    }
    // Thread i sends to thread i + 1.
    let handles: Vec<_> = (0..THREADS)
        .map(|i| {
            let tx = senders[(i + 1) % THREADS].clone();
            let rx = receivers[i].take().unwrap();
            thread::spawn(move || worker(i, tx, rx))
        })
        .collect();
    drop(senders);
    let mut ours = [0u64; NUM_CLASSES];
    for h in handles {
        for (o, c) in ours.iter_mut().zip(h.join().unwrap()) {
            *o += c;
        }
    }
    let (a1, f1) = class_totals();
    let total: u64 = ours.iter().sum();
    assert!(total > (THREADS * ALLOCS_PER_THREAD) as u64, "{total} allocations counted by the threads");
    let mut live_delta: i64 = 0;
    for c in 0..NUM_CLASSES {
        let da = a1[c] - a0[c];
        let df = f1[c] - f0[c];
        // Our boxes are counted exactly; the test's own bookkeeping (channels, Vecs, thread
        // spawns) adds a little on top.
        assert!(da >= ours[c], "class {c}: counted {da} allocations, made {}", ours[c]);
        assert!(da - ours[c] <= 2_000 + ours[c] / 100, "class {c}: {da} counted vs {} made", ours[c]);
        live_delta += da as i64 - df as i64;
    }
    // Everything the threads allocated is freed: the counters agree, up to the few objects the
    // harness and the snapshots themselves keep alive.
    assert!(live_delta.abs() <= 64, "allocations - frees = {live_delta} after every object was freed");
}
