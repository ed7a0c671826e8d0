//! Epoch domains: nesting, refcounts, labels, auto-close, and every kind of misuse (counted and
//! harmless). Tests take turns: the epoch ring and the counters are process-wide.

#![allow(clippy::vec_box)] // each object must be its own allocation

use std::thread;
use std::time::Duration;

use temporal_slab::epoch::{self, EpochState};
use temporal_slab::{snapshot, EpochDomain, EpochId, TemporalSlab};

mod common;
use common::turn;

#[global_allocator]
static GLOBAL: TemporalSlab = TemporalSlab::new();

fn live_bytes(e: EpochId) -> u64 {
    let s = snapshot();
    let row = &s.epochs[e.index()];
    assert_eq!(row.era, e.era(), "epoch {e:?} left its slot");
    row.live_bytes
}

/// Allocates `n` boxes of 1 KiB (class 1024) and returns them.
fn boxes(n: usize) -> Vec<Box<[u8; 1024]>> {
    (0..n).map(|i| Box::new([i as u8; 1024])).collect()
}

#[test]
fn nested_domains_route_allocations_lifo() {
    let _t = turn();
    let a = EpochDomain::new(Some("outer"));
    let b = EpochDomain::on(epoch::advance(), Some("inner"));
    let (a0, b0) = (live_bytes(a.epoch()), live_bytes(b.epoch()));
    let ga = a.enter();
    let in_a = boxes(100);
    let gb = b.enter();
    let in_b = boxes(200);
    drop(gb);
    let in_a_again = boxes(50);
    drop(ga);
    assert!(live_bytes(a.epoch()) - a0 >= 150 * 1024, "A got {} bytes", live_bytes(a.epoch()) - a0);
    assert!(live_bytes(a.epoch()) - a0 < 200 * 1024, "B's objects leaked into A");
    assert!(live_bytes(b.epoch()) - b0 >= 200 * 1024);
    assert!(live_bytes(b.epoch()) - b0 < 250 * 1024);
    let s = snapshot();
    assert_eq!(s.epochs[a.epoch().index()].label.as_deref(), Some("outer"));
    assert_eq!(s.epochs[b.epoch().index()].label.as_deref(), Some("inner"));
    // refcount: domains open in the epoch (the guards have exited, the domains are open).
    assert_eq!(s.epochs[a.epoch().index()].refcount, 1);
    assert_eq!(s.epochs[b.epoch().index()].refcount, 1);
    drop((in_a, in_b, in_a_again));
    a.close();
    b.close();
    assert_eq!(epoch::state(a.epoch()), Some(EpochState::Closing));
}

#[test]
fn a_leaked_guard_shows_as_refcount_and_age() {
    let _t = turn();
    let d = EpochDomain::new(Some("worker-leak"));
    let e = d.epoch();
    // Enter twice, exit once, on a thread that then exits (the leak stays behind).
    thread::scope(|s| {
        s.spawn(|| {
            let g1 = d.enter();
            let g2 = d.enter();
            drop(g2);
            std::mem::forget(g1);
        });
    });
    let s1 = snapshot();
    let row1 = &s1.epochs[e.index()];
    assert_eq!(row1.refcount, 1, "enter twice, exit once: refcount 1");
    assert_eq!(row1.label.as_deref(), Some("worker-leak"));
    thread::sleep(Duration::from_millis(30));
    let s2 = snapshot();
    assert!(s2.epochs[e.index()].age_sec > row1.age_sec, "the leaked epoch's age does not grow");
    assert_eq!(s2.epochs[e.index()].refcount, 1);
}

#[test]
fn out_of_order_exit_is_counted_and_harmless() {
    let _t = turn();
    let a = EpochDomain::new(None);
    let b = EpochDomain::on(epoch::advance(), None);
    let before = snapshot().global.domain_misuse_out_of_order;
    let b0 = live_bytes(b.epoch());
    let ga = a.enter();
    let gb = b.enter();
    drop(ga); // out of order: B is still entered
    let in_b = boxes(100);
    assert!(live_bytes(b.epoch()) - b0 >= 100 * 1024, "after A's early exit, allocations left B");
    drop(gb);
    let s = snapshot();
    assert_eq!(s.global.domain_misuse_out_of_order, before + 1);
    assert_eq!(s.epochs[a.epoch().index()].refcount, 1, "A is still open");
    assert_eq!(s.epochs[b.epoch().index()].refcount, 1, "B is still open");
    // Back outside every domain: allocations go to the current global epoch.
    let cur = epoch::current();
    let c0 = live_bytes(cur);
    let outside = boxes(100);
    assert!(live_bytes(cur) - c0 >= 100 * 1024);
    drop((in_b, outside));
}

#[test]
fn guard_dropped_on_another_thread_is_counted() {
    let _t = turn();
    struct Smuggle<T>(T);
    // SAFETY: deliberately wrong (that is the test): the guard is !Send and we move it anyway.
    unsafe impl<T> Send for Smuggle<T> {}
    let d = EpochDomain::new(None);
    let before = snapshot().global.domain_misuse_wrong_thread;
    let g = Smuggle(d.enter());
    let open = snapshot().epochs[d.epoch().index()].refcount;
    assert!(open >= 1);
    thread::scope(|s| {
        s.spawn(move || drop(g));
    });
    let s = snapshot();
    assert_eq!(s.global.domain_misuse_wrong_thread, before + 1);
    assert_eq!(s.epochs[d.epoch().index()].refcount, open, "the domain is still open");
    // This thread still believes it is inside the domain; closing the epoch makes that
    // harmless: allocations go to the current epoch, never to a closing one.
    d.close();
    let cur = epoch::current();
    let c0 = live_bytes(cur);
    let v = boxes(100);
    assert!(live_bytes(cur) - c0 >= 100 * 1024, "allocations went to a closed epoch");
    drop(v);
}

#[test]
fn entering_a_passed_era_allocates_in_the_current_epoch() {
    let _t = turn();
    let d = EpochDomain::new(Some("stale"));
    d.close();
    // Let the ring wrap past the domain's slot more than 40 times.
    for _ in 0..16 * 41 {
        epoch::advance();
    }
    let before = snapshot().global.domain_misuse_passed_era;
    let cur = epoch::current();
    let c0 = live_bytes(cur);
    {
        let _g = d.enter();
        let v = boxes(100);
        assert!(live_bytes(cur) - c0 >= 100 * 1024, "a passed era took allocations");
        drop(v);
    }
    let s = snapshot();
    assert_eq!(s.global.domain_misuse_passed_era, before + 1);
    let slot = &s.epochs[d.epoch().index()];
    assert!(slot.era > d.epoch().era());
    assert_eq!(slot.refcount, 0, "a passed era's guard touched the new era's refcount");
}

#[test]
fn auto_close_closes_when_the_last_guard_exits() {
    let _t = turn();
    let d = EpochDomain::new(Some("batch")).auto_close(true);
    let e = d.epoch();
    let g1 = d.enter();
    let v = boxes(300);
    thread::scope(|s| {
        s.spawn(|| {
            let _g2 = d.enter();
            assert_eq!(snapshot().epochs[e.index()].refcount, 1, "one domain open, two guards");
        });
    });
    assert!(d.is_open(), "ended while a guard was still live");
    drop(g1);
    assert!(!d.is_open(), "the last guard out did not end the domain");
    assert_eq!(snapshot().epochs[e.index()].refcount, 0);
    // `e` is the current epoch: it closes once time moves on.
    assert_eq!(epoch::state(e), Some(EpochState::Active));
    epoch::advance();
    assert_eq!(epoch::state(e), Some(EpochState::Closing));
    let s = snapshot();
    assert_eq!(s.epochs[e.index()].close_calls, 1);
    drop(v);
}
