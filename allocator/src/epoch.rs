//! Epochs: advancing, ending and closing the eras of the ring (`ring.rs` holds their state).
//!
//! Each small allocation goes to the epoch that is current for its thread when it is made: the
//! global current epoch, or the epoch of the innermost domain the thread is in. A thread notices
//! an advance at its next allocation (one relaxed load of `GEN` on the fast path), so an
//! allocation that races with [`advance`] on another thread may land in either epoch.
//!
//! **Domains share epochs.** A domain joins the current epoch (a time bucket) and holds a count on
//! it; no lock is taken and no heap is made to refresh. The count is sharded: each thread heap
//! keeps its own per-slot count of domains opened minus domains ended (written only by its
//! thread), so opening and ending a domain touch no shared cache line. An epoch whose time has
//! passed ([`advance`]) is ENDED: it keeps its domains' allocations and closes when the last of
//! them ends. Closing needs the counts' sum to be 0; after an epoch has ENDED its counts only
//! fall (no domain joins an ENDED epoch), so a sum read while other threads end domains can be
//! too high, never too low: the last domain to end sees 0 and closes it.
//!
//! The ordering that makes joining safe (a Dekker pair, both sides SeqCst fences): the joiner
//! raises its count, fences, and checks that the epoch is still ACTIVE; the ender marks it
//! ENDED, fences, and sums the counts. Either the ender sees the joiner's count (and leaves the
//! epoch open), or the joiner sees ENDED (and backs out, then closes the epoch itself if it was
//! the last).
//!
//! Programs that only use domains never call [`advance`]: the reclaimer thread rotates the
//! current epoch every [`BUCKET_NS`] when domains joined it, so requests made within the same
//! ~100 ms share slabs, and a bucket closes once all of its requests have ended.
//!
//! A thread's slabs are its own: closing sweeps at once what the calling thread and parked
//! (exited) threads hold; every other live thread sweeps its share at its next allocation.

use core::sync::atomic::{fence, Ordering};

use crate::countdown::STEP;
use crate::counters::GLOBAL;
use crate::os::PageSource;
use crate::ring::{count_close_sweep, slot_of, Slot, ACTIVE, CLOSING, CURRENT_ERA, ENDED, GEN, LAST_ERA, LOCK, RING};
pub use crate::ring::{current, state, EpochId, EpochState, EPOCH_SLOTS};
use crate::size_class::{SizeClass, NUM_CLASSES};

/// How long the current epoch stays current once domains have joined it, when nothing else
/// advances it: the reclaimer then advances it (so request-like domains are grouped in buckets
/// of about this length).
pub const BUCKET_NS: u64 = 100_000_000;

/// Makes the current epoch end (it closes at once unless domains are still open in it; then when
/// the last of them ends), opens the next one (the era increments, the ring index moves on) and
/// returns it. Allocations made after this call on any thread go to the new epoch. With every
/// slot of the ring still held by ended epochs with open domains, there is no slot for a new
/// era: the current epoch stays current and the overflow is counted (`ring_overflows`).
pub fn advance() -> EpochId {
    let g = LOCK.lock();
    let old = CURRENT_ERA.load(Ordering::Relaxed);
    let Some(new) = open_locked() else {
        drop(g);
        GLOBAL.ring_overflows.fetch_add(1, Ordering::Relaxed);
        return EpochId(old);
    };
    // Release: pairs with the Acquire loads of CURRENT_ERA / GEN in `current` and heap refresh,
    // so a thread that sees the new generation sees the slot states written by `open_locked`.
    CURRENT_ERA.store(new, Ordering::Release);
    GEN.fetch_add(STEP, Ordering::Release);
    drop(g);
    end(old, crate::os::monotonic_ns());
    close_ended();
    EpochId(new)
}

/// Opens the tenured side era (`tenured.rs`) unless `era` already names it: ACTIVE in a ring
/// slot of its own, labelled `label`, never current, never ended or closed. Publishes it in
/// `era` (Release) and returns it; `None` when every slot is held.
pub(crate) fn open_side(label: u8, era: &core::sync::atomic::AtomicU64) -> Option<u64> {
    let _g = LOCK.lock();
    let have = era.load(Ordering::Relaxed);
    if have != 0 {
        return Some(have);
    }
    let Some(side) = open_locked() else {
        GLOBAL.ring_overflows.fetch_add(1, Ordering::Relaxed);
        return None;
    };
    let slot = &RING[slot_of(side)];
    slot.tenured.store(true, Ordering::Relaxed);
    slot.note_label(Some(label));
    era.store(side, Ordering::Release);
    Some(side)
}

/// Opens a new era, ACTIVE, in the next ring slot that is free (never used or CLOSING). Eras
/// stay monotonic; they skip the numbers whose slot is still held. `None` when all 16 are held.
fn open_locked() -> Option<u64> {
    let last = LAST_ERA.load(Ordering::Relaxed);
    let era = (last + 1..=last + EPOCH_SLOTS as u64).find(|&e| {
        let s = RING[slot_of(e)].state.load(Ordering::Relaxed);
        s != ACTIVE && s != ENDED
    })?;
    let slot = &RING[slot_of(era)];
    slot.reset_for(era);
    slot.state.store(ACTIVE, Ordering::Relaxed);
    LAST_ERA.store(era, Ordering::Relaxed);
    Some(era)
}

/// Closes `epoch`: it takes no new allocations (if it is the current epoch, [`advance`] runs
/// first). If domains are still open in it, it stays ACTIVE for them and closes when the last of
/// them ends. Closing moves its partly used slabs to the recycling lists (their free room serves
/// later epochs) and keeps its empty slabs unpurged in the reserve for the next phase; the
/// reserve is purged when the program goes idle (about 0.5 s) or by [`crate::trim`]. Closing an
/// epoch that is already closing sweeps what is left of it again.
///
/// The calling thread's slabs and those of exited threads are swept before this returns; other
/// live threads sweep theirs at their next allocation.
pub fn close(epoch: EpochId) {
    let t0 = crate::os::monotonic_ns();
    if epoch.0 == CURRENT_ERA.load(Ordering::Relaxed) {
        advance();
        return;
    }
    match Slot::holding(epoch.0).map(|s| s.state.load(Ordering::Relaxed)) {
        Some(ACTIVE) => end(epoch.0, t0),
        Some(CLOSING) => {
            let slot = &RING[epoch.index()];
            slot.close_seq.fetch_add(1, Ordering::Relaxed);
            // Release: pairs with the Acquire load of GEN in heap refresh.
            GEN.fetch_add(STEP, Ordering::Release);
            finish_close(epoch.0, t0);
        }
        // ENDED: it closes when its last domain ends; a passed era has nothing left here.
        _ => {}
    }
}

/// [`close`], then gives the pages of the epoch's empty slabs back to the OS now instead of
/// keeping them for the next phase: deterministic release, for a phase after which the program
/// expects to stay small. What is purged shows in the close telemetry as purged, not deferred.
/// With domains still open in the epoch, the purge happens when its last domain ends and it
/// closes.
pub fn close_purge(epoch: EpochId) {
    if let Some(slot) = Slot::holding(epoch.0) {
        slot.purge_on_close.store(true, Ordering::Relaxed);
    }
    close(epoch);
}

/// Ends `era` (ACTIVE -> ENDED) and closes it if no domain is open in it.
fn end(era: u64, t0: u64) {
    let slot = &RING[slot_of(era)];
    if slot.era.load(Ordering::Relaxed) != era
        || slot.tenured.load(Ordering::Relaxed)
        || slot.state.compare_exchange(ACTIVE, ENDED, Ordering::Relaxed, Ordering::Relaxed).is_err()
    {
        return;
    }
    // SeqCst: the ender's half of the Dekker pair with `join` (see the module docs).
    fence(Ordering::SeqCst);
    try_close(era, t0);
}

/// Closes the ENDED `era` if the sum of its domain counts is 0 (once: the state CAS decides).
fn try_close(era: u64, t0: u64) {
    let slot = &RING[slot_of(era)];
    if slot.era.load(Ordering::Relaxed) != era || crate::heap::domain_sum(slot_of(era)) != 0 {
        return;
    }
    if slot.state.compare_exchange(ENDED, CLOSING, Ordering::AcqRel, Ordering::Relaxed).is_err() {
        return;
    }
    slot.close_seq.fetch_add(1, Ordering::Relaxed);
    // Release: pairs with the Acquire load of GEN in heap refresh, so a heap that sees the new
    // generation sees the CLOSING state.
    GEN.fetch_add(STEP, Ordering::Release);
    crate::segment::note_phase(slot.slabs_started.load(Ordering::Relaxed));
    finish_close(era, t0);
}

/// A domain joins `era`: true when it did (the epoch was ACTIVE and is not ending under it).
pub(crate) fn join(era: u64) -> bool {
    let slot = &RING[slot_of(era)];
    if slot.era.load(Ordering::Relaxed) != era || slot.state.load(Ordering::Relaxed) != ACTIVE {
        return false;
    }
    crate::heap::add_domain(slot_of(era), 1);
    // SeqCst: the joiner's half of the Dekker pair with `end` (see the module docs).
    fence(Ordering::SeqCst);
    if slot.era.load(Ordering::Relaxed) == era && slot.state.load(Ordering::Relaxed) == ACTIVE {
        return true;
    }
    leave(era);
    false
}

/// A domain that joined `era` ends; the last one out of an ENDED epoch closes it.
///
/// No fence here (a domain's end is on every request's path): a leaver that reads the epoch as
/// still ACTIVE, or reads another thread's count before its decrement, leaves the close to
/// someone else. The last leaver of an epoch that ended before it closes it at once (it sees
/// ENDED and its own decrement); any epoch left ENDED with no open domain is closed by the next
/// [`advance`] or reclaimer tick (`close_ended`), so the close is at most ~100 ms late.
pub(crate) fn leave(era: u64) {
    crate::heap::add_domain(slot_of(era), -1);
    let slot = &RING[slot_of(era)];
    if slot.era.load(Ordering::Relaxed) == era && slot.state.load(Ordering::Relaxed) == ENDED {
        try_close(era, crate::os::monotonic_ns());
    }
}

/// Closes every ENDED epoch whose domains have all ended (see [`leave`]).
pub(crate) fn close_ended() {
    for slot in &RING {
        if slot.state.load(Ordering::Relaxed) == ENDED {
            // SeqCst: orders this thread's earlier reads before the counts' loads, like `end`.
            fence(Ordering::SeqCst);
            try_close(slot.era.load(Ordering::Relaxed), crate::os::monotonic_ns());
        }
    }
}

/// The close sweep and its telemetry, once `era` is CLOSING (or closed again).
fn finish_close(era: u64, t0: u64) {
    let rss_on = RSS_ON_CLOSE.load(Ordering::Relaxed);
    let rss0 = if rss_on { crate::os::rss_bytes() } else { 0 };
    let slot = &RING[slot_of(era)];
    let purged0 = slot.purged_bytes.load(Ordering::Relaxed);
    let deferred0 = slot.deferred_bytes.load(Ordering::Relaxed);
    // The empty slabs the epoch gave back before it closed wait in the reserve: they are this
    // close's yield too (scanned, recycled, and deferred rather than purged).
    let mut per_class = [0u64; NUM_CLASSES];
    let mut kept = 0u64;
    let page = crate::os::OS.page_size();
    crate::segment::for_each_reserve_of(era, |slab| {
        per_class[slab.class().index()] += 1;
        kept += slab.resident_bytes(page) as u64;
    });
    for (class, n) in SizeClass::all().zip(per_class) {
        count_close_sweep(era, class, n, n);
    }
    slot.deferred_bytes.fetch_add(kept, Ordering::Relaxed);
    crate::heap::sweep_after_close();
    if slot.purge_on_close.load(Ordering::Relaxed) && slot.era.load(Ordering::Relaxed) == era {
        let purged = crate::segment::purge_reserve_of(era) as u64;
        slot.purged_bytes.fetch_add(purged, Ordering::Relaxed);
        slot.deferred_bytes.fetch_sub(purged.min(slot.deferred_bytes.load(Ordering::Relaxed)), Ordering::Relaxed);
    }
    let rss1 = if rss_on { crate::os::rss_bytes() } else { 0 };
    let dt = crate::os::monotonic_ns().saturating_sub(t0);
    let g = &GLOBAL;
    g.epoch_close_calls.fetch_add(1, Ordering::Relaxed);
    g.epoch_close_total_ns.fetch_add(dt, Ordering::Relaxed);
    if slot.era.load(Ordering::Relaxed) == era {
        let purged = slot.purged_bytes.load(Ordering::Relaxed).saturating_sub(purged0);
        let deferred = slot.deferred_bytes.load(Ordering::Relaxed).saturating_sub(deferred0);
        slot.close_calls.fetch_add(1, Ordering::Relaxed);
        slot.close_total_ns.fetch_add(dt, Ordering::Relaxed);
        slot.last_close_ns.store(dt, Ordering::Relaxed);
        slot.last_close_purged_bytes.store(purged, Ordering::Relaxed);
        slot.last_close_deferred_bytes.store(deferred, Ordering::Relaxed);
        slot.rss_before_close.store(rss0, Ordering::Relaxed);
        slot.rss_after_close.store(rss1, Ordering::Relaxed);
        g.last_close_era.store(era, Ordering::Relaxed);
        g.last_close_ns.store(dt, Ordering::Relaxed);
        g.last_close_purged_bytes.store(purged, Ordering::Relaxed);
        g.last_close_deferred_bytes.store(deferred, Ordering::Relaxed);
        g.last_close_rss_before.store(rss0, Ordering::Relaxed);
        g.last_close_rss_after.store(rss1, Ordering::Relaxed);
    }
}

/// The reclaimer's bucket rotation: advances the current epoch when domains have joined it and
/// it has been current for [`BUCKET_NS`] (so domain-only programs group their requests by time
/// and their buckets close). Leaves it alone when fewer than two ring slots are free, so that
/// long-lived domains never make the ring overflow: their neighbours then share a longer bucket.
pub(crate) fn rotate_bucket(now_ns: u64) {
    close_ended();
    let cur = CURRENT_ERA.load(Ordering::Relaxed);
    let slot = &RING[slot_of(cur)];
    if !slot.joined.load(Ordering::Relaxed) || now_ns.saturating_sub(slot.opened_ns.load(Ordering::Relaxed)) < BUCKET_NS
    {
        return;
    }
    let free = RING
        .iter()
        .filter(|s| {
            let st = s.state.load(Ordering::Relaxed);
            st != ACTIVE && st != ENDED
        })
        .count();
    if free >= 2 {
        slot.rotated.store(true, Ordering::Relaxed);
        advance();
    } else {
        GLOBAL.bucket_extensions.fetch_add(1, Ordering::Relaxed);
    }
}

static RSS_ON_CLOSE: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Turns reading RSS (from `/proc/self/statm`, about 5 us) before and after every
/// [`close`] on or off; it is off by default and is never done on the allocation path. The
/// environment variable `TSLAB_RSS_ON_CLOSE=1` turns it on at the first close.
pub fn set_rss_on_close(on: bool) {
    RSS_ON_CLOSE.store(on, Ordering::Relaxed);
}

pub(crate) fn configure_from_env() {
    if crate::os::env_is_on(c"TSLAB_RSS_ON_CLOSE") {
        RSS_ON_CLOSE.store(true, Ordering::Relaxed);
    }
}
