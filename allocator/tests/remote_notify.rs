//! Remote frees into full slabs (notify mode): two threads free a producer's objects while it
//! keeps allocating, then free the rest after it has exited (its heap parked). Every free is
//! seen: the class's live objects, full slabs and counts come back to where they started, and
//! no object is handed out twice. One test per binary so the counters see only it.
//! TemporalSlab is this binary's global allocator.

use std::sync::mpsc::channel;
use std::sync::{Arc, Barrier};
use std::thread;

use temporal_slab::{snapshot, TemporalSlab};

#[global_allocator]
static GLOBAL: TemporalSlab = TemporalSlab::new();

/// 256 bytes: 256 cells a 64 KiB slab, so the first batch fills a dozen slabs.
type Obj = [u64; 32];
const FIRST: usize = 3_000;
const MORE: usize = 2_000;

// Each object its own allocation: that is what is being freed.
#[allow(clippy::vec_box)]
struct Batch(Vec<Box<Obj>>);

fn class_figures() -> (u64, u64, u64, u64) {
    let s = snapshot();
    let c = s.classes.iter().find(|c| c.object_size == 256).expect("a 256-byte class");
    (c.allocations, c.frees, c.live_objects, c.full_slabs)
}

fn check(b: &Obj, tag: u64) {
    assert!(b.iter().all(|&w| w == tag), "object {tag} overwritten");
}

#[test]
fn frees_into_full_slabs_of_a_live_and_a_parked_heap_are_all_seen() {
    let before = class_figures();
    let (tx_a, rx_a) = channel::<Batch>();
    let (tx_b, rx_b) = channel::<Batch>();
    // This thread and the two freeing threads meet here once the producer has exited.
    let exited = Arc::new(Barrier::new(3));
    let consumers: Vec<_> = [rx_a, rx_b]
        .into_iter()
        .map(|rx| {
            let exited = exited.clone();
            thread::spawn(move || {
                let mut kept = Vec::new();
                let mut batches = 0;
                while let Ok(Batch(batch)) = rx.recv() {
                    batches += 1;
                    for (i, b) in batch.into_iter().enumerate() {
                        check(&b, b[1]);
                        // Half now (the producer still runs), half after it has exited.
                        if i % 2 == 0 {
                            drop(b);
                        } else {
                            kept.push(b);
                        }
                    }
                }
                assert!(batches > 0);
                exited.wait();
                for b in kept {
                    check(&b, b[1]);
                }
            })
        })
        .collect();
    let producer = thread::spawn(move || {
        let make = |tag: u64| Box::new([tag; 32]);
        // Whole slabs filled first: they leave the bin full, in notify mode.
        let first: Vec<Box<Obj>> = (0..FIRST as u64).map(make).collect();
        let (a, b): (Vec<_>, Vec<_>) = first.into_iter().enumerate().partition(|(i, _)| i % 2 == 0);
        tx_a.send(Batch(a.into_iter().map(|(_, o)| o).collect())).unwrap();
        tx_b.send(Batch(b.into_iter().map(|(_, o)| o).collect())).unwrap();
        // Allocating on while the frees come in: the heap takes the announced slabs back.
        // A cell handed out twice while live would overwrite an object: every object is
        // checked when it is freed.
        let more: Vec<Box<Obj>> = (FIRST as u64..(FIRST + MORE) as u64).map(make).collect();
        for (i, o) in more.iter().enumerate() {
            check(o, FIRST as u64 + i as u64);
        }
        let (a, b): (Vec<_>, Vec<_>) = more.into_iter().enumerate().partition(|(i, _)| i % 2 == 0);
        tx_a.send(Batch(a.into_iter().map(|(_, o)| o).collect())).unwrap();
        tx_b.send(Batch(b.into_iter().map(|(_, o)| o).collect())).unwrap();
    });
    producer.join().unwrap();
    // The producer's heap is parked now: the rest of its objects are freed into a parked heap.
    exited.wait();
    for c in consumers {
        c.join().unwrap();
    }
    let after = class_figures();
    let made = (FIRST + MORE) as u64;
    assert!(after.0 - before.0 >= made, "allocations counted: {} of {made}", after.0 - before.0);
    assert_eq!(after.0 - before.0, after.1 - before.1, "every allocation of the window freed and counted");
    assert_eq!(after.2, before.2, "live 256-byte objects back to where they were");
    assert_eq!(after.3, before.3, "no full slab left behind");
}
