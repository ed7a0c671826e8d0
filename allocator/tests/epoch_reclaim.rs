//! Epochs return memory: fill epoch A, advance, free everything from A, close A: RSS (from
//! /proc) drops by at least 90% of A's slab bytes and the madvise counters agree. Also: a
//! CLOSING epoch takes no new allocations, and eras stay apart across ring wraps.

use temporal_slab::{epoch, snapshot, TemporalSlab};

// The epoch ring is process-wide: the tests in this binary take turns.
mod common;
use common::{rss as rss_bytes, turn};

#[global_allocator]
static GLOBAL: TemporalSlab = TemporalSlab::new();

#[test]
fn close_returns_the_epochs_pages() {
    let _turn = turn();
    // Held outside the epoch: a large buffer for the pointers.
    let mut objs: Vec<Box<[u8; 256]>> = Vec::with_capacity(300_000);
    let a = epoch::advance();
    let before = snapshot();
    for i in 0..300_000 {
        objs.push(Box::new([i as u8; 256]));
    }
    let filled = snapshot();
    let slot = a.index();
    let a_live = filled.epochs[slot].live_bytes;
    let a_slabs = filled.epochs[slot].live_slabs;
    assert_eq!(filled.epochs[slot].era, a.era());
    assert!(a_live >= 300_000 * 256, "epoch A holds {a_live} live bytes");
    let slab_bytes = a_slabs * filled.slab_size;
    let (madvise_bytes0, madvise_calls0, madvise_failures0, closes0) = (
        before.global.madvise_bytes,
        before.global.madvise_calls,
        before.global.madvise_failures,
        before.global.epoch_close_calls,
    );
    // The snapshots were allocated inside A too; free them with the rest.
    drop((before, filled));
    let rss_full = rss_bytes();

    let b = epoch::advance();
    assert_eq!(epoch::state(a), Some(epoch::EpochState::Closing));
    // New allocations go to B, never to the closing A.
    let in_b: Vec<Box<[u8; 256]>> = (0..1000).map(|i| Box::new([i as u8; 256])).collect();
    for (i, o) in objs.iter().enumerate() {
        assert!(o.iter().all(|&x| x == i as u8));
    }
    objs.clear();
    objs.shrink_to_fit();
    // Deterministic release: a plain close would keep the emptied slabs for the next phase.
    epoch::close_purge(a);
    let after = snapshot();
    let rss_after = rss_bytes();

    let dropped = rss_full.saturating_sub(rss_after);
    assert!(
        dropped * 10 >= slab_bytes * 9,
        "RSS dropped {dropped} B of epoch A's {slab_bytes} B of slabs ({a_slabs} slabs)"
    );
    let purged = after.global.madvise_bytes - madvise_bytes0;
    assert!(purged * 10 >= slab_bytes * 9, "madvise purged {purged} B of {slab_bytes} B");
    assert!(after.global.madvise_calls > madvise_calls0);
    assert_eq!(after.global.madvise_failures, madvise_failures0);
    // A was the global current epoch, so the harness's other threads may have left a few objects
    // in it; the 77 MB the test put there must be gone (less than one slab's worth remains).
    assert!(after.epochs[slot].live_bytes < 65536, "epoch A still holds {} live bytes", after.epochs[slot].live_bytes);
    assert!(after.epochs[b.index()].live_bytes >= 1000 * 256, "the objects made after advance are not in B");
    assert!(after.global.epoch_close_calls > closes0);
    drop(in_b);
}

#[test]
fn eras_stay_apart_across_ring_wraps() {
    let _turn = turn();
    // An advance, not `current()`: eras come from one counter that `EpochDomain::new` draws from
    // too, so after another test's domain the current era is not the last one opened.
    let first = epoch::advance();
    let pinned: Vec<Box<[u64; 8]>> = (0..5000).map(|i| Box::new([i; 8])).collect();
    for _ in 0..16 * 40 {
        let e = epoch::advance();
        let v: Vec<Box<[u64; 8]>> = (0..50).map(|i| Box::new([i + e.era(); 8])).collect();
        assert!(v.iter().enumerate().all(|(i, b)| b[7] == i as u64 + e.era()));
    }
    let now = epoch::current();
    assert_eq!(now.era(), first.era() + 16 * 40);
    assert_eq!(now.index(), first.index());
    // The slot of `first` now holds a newer era; the pinned objects' slabs are counted as stale.
    let s = snapshot();
    assert!(s.epochs[first.index()].era > first.era());
    assert!(s.epochs[first.index()].stale_era_slabs > 0, "old-era slabs vanished from the books");
    for (i, b) in pinned.iter().enumerate() {
        assert!(b.iter().all(|&x| x == i as u64), "an old-era object was overwritten");
    }
}

/// Regression: a close found the empty slabs of its epoch in the warm pool and purged them, but
/// counted none of them, so an epoch whose objects were all freed before its close reported 0
/// slabs scanned and recycled, and no reclamation yield.
#[test]
fn close_counts_the_empty_slabs_it_recycles() {
    let _turn = turn();
    let e = epoch::advance();
    let before = snapshot();
    // 1 KiB objects, 64 to a 64 KiB slab: at least 15 slabs, all emptied while `e` is active.
    let objs: Vec<Box<[u8; 1024]>> = (0..1000).map(|i| Box::new([i as u8; 1024])).collect();
    drop(objs);
    let (scanned0, recycled0) = (before.global.epoch_close_scanned_slabs, before.global.epoch_close_recycled_slabs);
    drop(before);
    epoch::close(e);
    let after = snapshot();
    let row = &after.epochs[e.index()];
    assert_eq!(row.era, e.era());
    assert!(row.close_recycled_slabs >= 15, "epoch row: {} slabs recycled", row.close_recycled_slabs);
    assert!(row.close_scanned_slabs >= row.close_recycled_slabs);
    assert_eq!(row.reclamation_yield(), Some(row.close_recycled_slabs as f64 / row.close_scanned_slabs as f64));
    let recycled = after.global.epoch_close_recycled_slabs - recycled0;
    assert!(recycled >= 15, "global: {recycled} slabs recycled by the close");
    assert!(after.global.epoch_close_scanned_slabs - scanned0 >= recycled);
    let class = after.classes.iter().find(|c| c.object_size == 1024).expect("a 1 KiB class");
    assert!(
        class.epoch_close_recycled_slabs >= 15,
        "1 KiB class: {} slabs recycled at closes",
        class.epoch_close_recycled_slabs
    );
}

/// Regression: a short phase's only slab is still its thread's allocation slab (bin) when the
/// phase's epoch closes; the close sweep retired it without counting it, so every request domain
/// reported 0 slabs scanned and recycled.
#[test]
fn close_counts_the_phase_slab_still_in_use_for_allocation() {
    let _turn = turn();
    let domain = temporal_slab::EpochDomain::on(epoch::advance(), Some("short-phase")).auto_close(true);
    let e = domain.epoch();
    {
        let _in = domain.enter();
        let objs: Vec<Box<[u8; 512]>> = (0..10).map(|i| Box::new([i as u8; 512])).collect();
        assert!(objs.iter().enumerate().all(|(i, o)| o[0] == i as u8));
    } // the objects are freed, then the last guard out ends the domain
    assert!(!domain.is_open());
    assert_eq!(epoch::state(e), Some(epoch::EpochState::Active), "still the current epoch");
    epoch::advance(); // time moves on: `e` has no open domain left, so it closes
    assert_eq!(epoch::state(e), Some(epoch::EpochState::Closing));
    let row = &snapshot().epochs[e.index()];
    assert_eq!(row.era, e.era());
    assert!(row.close_scanned_slabs >= 1, "{} slabs scanned", row.close_scanned_slabs);
    assert!(row.close_recycled_slabs >= 1, "{} slabs recycled", row.close_recycled_slabs);
    assert!(row.reclamation_yield().is_some_and(|y| y > 0.0));
}
