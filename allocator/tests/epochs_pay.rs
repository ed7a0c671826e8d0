//! Marking phases must pay for itself: shared epochs for many concurrent domains, survivors that
//! do not pin their slabs, and no purge-and-refault cliff at every close. The allocator is this
//! binary's global allocator; the tests take turns (they read process-wide counters).

use std::thread;

use temporal_slab::{epoch, snapshot, EpochDomain, Snapshot, TemporalSlab};

mod common;
use common::turn;

#[global_allocator]
static GLOBAL: TemporalSlab = TemporalSlab::new();

fn misuse(s: &Snapshot) -> u64 {
    let g = &s.global;
    g.domain_misuse_out_of_order + g.domain_misuse_wrong_thread + g.domain_misuse_passed_era + g.domain_misuse_too_deep
}

/// 4 threads x 2,500 request-like domains, all 10,000 open at the same time, each entered and
/// allocated in, then ended in another order: no ring overflow, no misuse, a handful of epochs.
/// (Each domain used to open a ring slot of its own: more than 15 at once overflowed the ring.)
#[test]
fn ten_thousand_concurrent_domains_share_epochs_without_overflow() {
    let _t = turn();
    let s0 = snapshot();
    const THREADS: usize = 4;
    const PER_THREAD: usize = 2500;
    let labels = ["GET /users", "POST /orders", "GET /health", "PUT /cart"];
    let barrier = std::sync::Barrier::new(THREADS + 1);
    let peak = thread::scope(|s| {
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let barrier = &barrier;
                s.spawn(move || {
                    let mut open: Vec<(EpochDomain, Vec<String>)> = Vec::with_capacity(PER_THREAD);
                    for i in 0..PER_THREAD {
                        let d = EpochDomain::new(Some(labels[(t + i) % labels.len()]));
                        let response = {
                            let _in = d.enter();
                            let scratch: Vec<String> = (0..8).map(|j| format!("{t}-{i}-{j}")).collect();
                            vec![scratch.concat()]
                        };
                        open.push((d, response));
                    }
                    barrier.wait(); // all 10,000 are open now
                    barrier.wait(); // the main thread has looked
                                    // End them in an order unlike their opening: odd ones first.
                    for (i, (d, _)) in open.iter().enumerate() {
                        if i % 2 == 1 {
                            d.close();
                        }
                    }
                    assert!(open.iter().all(|(_, r)| r[0].starts_with(&format!("{t}-"))));
                    drop(open);
                })
            })
            .collect();
        barrier.wait();
        let peak = snapshot();
        barrier.wait();
        for w in workers {
            w.join().unwrap();
        }
        peak
    });
    let open_at_peak: u64 = peak.epochs.iter().map(|e| e.refcount).sum();
    assert!(open_at_peak >= (THREADS * PER_THREAD) as u64, "{open_at_peak} domains open at the peak");
    let holding = peak.epochs.iter().filter(|e| e.refcount > 0).count();
    // A bucket lasts ~100 ms: a slow (debug, loaded) run spreads the opens over a few of them.
    assert!(holding <= 8, "10,000 domains held {holding} epochs");
    let s1 = snapshot();
    assert_eq!(s1.global.ring_overflows, s0.global.ring_overflows, "ring overflows");
    assert_eq!(misuse(&s1), misuse(&s0), "domain misuse");
    assert_eq!(s1.epochs.iter().map(|e| e.refcount).sum::<u64>(), 0, "domains still counted open");
    // Once time moves on, every epoch those domains held closes.
    epoch::advance();
    for e in &peak.epochs {
        if e.refcount > 0 {
            let id = temporal_slab::EpochId::from_era(e.era);
            assert_ne!(epoch::state(id), Some(epoch::EpochState::Active), "era {} outlived its domains", e.era);
        }
    }
}

/// Live bytes allocated in the current epoch's size class of 256 B objects, and its slab count.
fn class_256(s: &Snapshot) -> (u64, u64) {
    let c = s.classes.iter().find(|c| c.object_size == 256).expect("a 256 B class");
    (c.new_slabs, c.live_objects)
}

/// A closed epoch's slabs hold 2% survivors; the next epoch fills their free cells instead of
/// taking fresh slabs. (They used to be drained, never allocated from again: every cycle of a
/// mixed-lifetime program took ~220 fresh slabs and the survivors pinned thousands.)
#[test]
fn a_closed_epochs_sparse_slabs_are_reused() {
    let _t = turn();
    const N: usize = 64_000; // 256 slabs of 256 B objects
    let a = epoch::advance();
    let s0 = snapshot();
    let mut survivors = Vec::new();
    {
        let objs: Vec<Box<[u8; 256]>> = (0..N).map(|i| Box::new([i as u8; 256])).collect();
        for (i, o) in objs.into_iter().enumerate() {
            if i % 50 == 0 {
                survivors.push(o);
            }
        }
    }
    let (slabs_a, _) = class_256(&snapshot());
    let taken_by_a = slabs_a - class_256(&s0).0;
    assert!(taken_by_a >= 200, "phase A took {taken_by_a} slabs");
    epoch::close(a);
    assert_ne!(epoch::state(a), Some(epoch::EpochState::Active));
    // Phase B: as many objects again, all live at once.
    let before_b = snapshot();
    let again: Vec<Box<[u8; 256]>> = (0..N - survivors.len()).map(|i| Box::new([i as u8; 256])).collect();
    let after_b = snapshot();
    let taken_by_b = class_256(&after_b).0 - class_256(&before_b).0;
    assert!(
        taken_by_b * 4 < taken_by_a,
        "phase B took {taken_by_b} slabs from the pool for what fits in A's sparse slabs (A took {taken_by_a})"
    );
    // The survivors were never touched.
    for (k, o) in survivors.iter().enumerate() {
        assert!(o.iter().all(|&x| x == (k * 50) as u8));
    }
    for (i, o) in again.iter().enumerate() {
        assert!(o.iter().all(|&x| x == i as u8));
    }
    drop((again, survivors));
}

/// A loop of big phases (40 MiB each, all freed at the phase's end, one epoch per phase) keeps
/// its empty slabs for the next phase instead of purging them at every close and faulting them
/// back: almost no `madvise` calls after the first phases. (Each close used to purge every empty
/// slab: ~640 madvise calls and 40 MiB of page faults per phase.)
#[test]
fn a_loop_of_big_phases_does_not_purge_and_refault_every_phase() {
    let _t = turn();
    const OBJECTS: usize = 160_000; // 160k x 256 B = 40 MiB, ~640 slabs
    let phase = || {
        let e = epoch::current();
        let v: Vec<Box<[u8; 256]>> = (0..OBJECTS).map(|i| Box::new([i as u8; 256])).collect();
        assert_eq!(v[OBJECTS - 1][0], (OBJECTS - 1) as u8);
        drop(v);
        epoch::close(e);
    };
    for _ in 0..3 {
        phase();
    }
    let s0 = snapshot();
    const PHASES: u64 = 20;
    for _ in 0..PHASES {
        phase();
    }
    let s1 = snapshot();
    let madvise = s1.global.madvise_calls - s0.global.madvise_calls;
    let purged = s1.global.madvise_bytes - s0.global.madvise_bytes;
    assert!(madvise < PHASES * 10, "{PHASES} big phases made {madvise} madvise calls ({purged} B purged)");
    // The close telemetry says what it kept instead of purging.
    assert!(s1.global.epoch_close_calls >= s0.global.epoch_close_calls + PHASES);
    assert!(
        s1.global.last_close_purged_bytes < 1 << 20,
        "the last close purged {} B",
        s1.global.last_close_purged_bytes
    );
    // Deterministic release is still there: close_purge gives the kept slabs back now.
    let e = epoch::current();
    let v: Vec<Box<[u8; 256]>> = (0..OBJECTS).map(|i| Box::new([i as u8; 256])).collect();
    drop(v);
    epoch::close_purge(e);
    let s2 = snapshot();
    let row = &s2.epochs[e.index()];
    assert_eq!(row.era, e.era());
    assert!(row.last_close_purged_bytes >= 30 << 20, "close_purge purged {} B", row.last_close_purged_bytes);
}

/// A long run of phases, one epoch each, with mixed sizes and 2% of the objects surviving 30
/// phases: the slabs in use stop growing once the survivor window is full. (A slab filed as
/// having room when it had none was once replaced as the bin and lost: the slab count then grew
/// by a few every ten phases, with the live bytes flat.)
#[test]
fn slabs_in_use_stay_flat_over_many_phases_with_survivors() {
    let _t = turn();
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut window: std::collections::VecDeque<Vec<Vec<u8>>> = Default::default();
    let slabs = |s: &Snapshot| s.classes.iter().map(|c| c.partial_slabs + c.full_slabs).sum::<u64>();
    let mut at = Vec::new();
    for phase in 0..200 {
        let e = epoch::current();
        let mut work = Vec::new();
        let mut kept = Vec::new();
        for i in 0..20_000u32 {
            let v = vec![i as u8; 24 + (next() % 576) as usize];
            if i % 50 == 0 {
                kept.push(v);
            } else {
                work.push(v);
            }
        }
        drop(work);
        window.push_back(kept);
        if window.len() > 30 {
            window.pop_front();
        }
        epoch::advance();
        epoch::close(e);
        if phase == 49 || phase == 199 {
            at.push(slabs(&snapshot()));
        }
    }
    let (after_window, end) = (at[0], at[1]);
    assert!(
        end <= after_window + after_window / 20,
        "slabs in use grew from {after_window} after 50 phases to {end} after 200, with the same live set"
    );
    drop(window);
}
