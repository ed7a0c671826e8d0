//! Epochs: a 16-slot ring of ACTIVE / CLOSING epochs, named by a monotonic 64-bit era.
//!
//! An epoch *is* its era: eras count up from 1 and era `e` lives in ring slot `(e - 1) % 16`.
//! Several epochs may be ACTIVE at once: the current one (where allocations outside domains go)
//! and those of epoch domains. Opening an epoch takes the next slot that is not ACTIVE (the era
//! skips ahead to it), so a global advance never takes a live domain's slot.
//! [`advance`] makes the current epoch CLOSING and opens the next one;
//! [`close`] purges the empty slabs of a CLOSING epoch. Slabs remember their era, so when the
//! ring wraps onto a slot whose older-era slabs are still live, those slabs are recognised as
//! belonging to a finished epoch and are never allocated from again: they only drain.
//!
//! Each small allocation goes to the epoch that is current for its thread when it is made. A
//! thread notices an advance at its next allocation (one relaxed load of `GEN` on the fast
//! path), so an allocation that races with `advance` on another thread may land in either epoch.
//!
//! A thread's slabs are its own: `close` purges at once what the calling thread and parked
//! (exited) threads hold; every other live thread purges its share of the closed epoch at its
//! next allocation.

use core::sync::atomic::{AtomicU64, AtomicU8, Ordering};

use serde::Serialize;

use crate::size_class::SizeClass;
use crate::sync::SpinLock;

/// Slots in the epoch ring.
pub const EPOCH_SLOTS: usize = 16;

/// An epoch, named by its era (monotonic from 1). Its ring slot is [`EpochId::index`].
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct EpochId(u64);

impl EpochId {
    /// The epoch named by `era`, for callers that carry eras as plain integers (the C ABI of
    /// `libtemporal_slab.so`). Any value is accepted; [`state`] tells whether it names an epoch
    /// still in the ring.
    pub const fn from_era(era: u64) -> EpochId {
        EpochId(era)
    }

    /// The era: how many epochs had been opened when this one opened, counting it.
    pub const fn era(self) -> u64 {
        self.0
    }

    /// The ring slot, `0..16`.
    pub const fn index(self) -> usize {
        slot_of(self.0)
    }
}

#[inline]
pub(crate) const fn slot_of(era: u64) -> usize {
    ((era.wrapping_sub(1)) % EPOCH_SLOTS as u64) as usize
}

/// The state of an epoch's ring slot.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum EpochState {
    /// Takes new allocations.
    Active,
    /// Takes no new allocations; its slabs drain and are purged when empty.
    Closing,
}

const UNUSED: u8 = 0;
const ACTIVE: u8 = 1;
const CLOSING: u8 = 2;

pub(crate) struct Slot {
    pub(crate) era: AtomicU64,
    pub(crate) state: AtomicU8,
    /// CLOCK_MONOTONIC ns when the era opened.
    pub(crate) opened_ns: AtomicU64,
    /// Bumped by every `close` of this slot; heaps compare it with what they last swept.
    pub(crate) close_seq: AtomicU64,
    /// Live domain guards on this era (gauge).
    pub(crate) refcount: AtomicU64,
    /// Label id of the era, or `domain::NO_LABEL`.
    pub(crate) label: AtomicU64,
    /// Close telemetry of this era (counters, reset when the slot opens a new era).
    pub(crate) close_calls: AtomicU64,
    pub(crate) close_scanned_slabs: AtomicU64,
    pub(crate) close_recycled_slabs: AtomicU64,
    pub(crate) purged_bytes: AtomicU64,
    pub(crate) close_total_ns: AtomicU64,
    /// The last close of this era: duration, bytes purged during it, RSS around it (0 when RSS
    /// reading is off).
    pub(crate) last_close_ns: AtomicU64,
    pub(crate) last_close_purged_bytes: AtomicU64,
    pub(crate) rss_before_close: AtomicU64,
    pub(crate) rss_after_close: AtomicU64,
    /// Slabs taken from the pool for this era (counter; an empty allocation slab a thread carries
    /// over from its previous epoch is not counted): the size of its phase, which decides whether
    /// its empty slabs may wait in the close reserve ([`small_phase`]).
    pub(crate) slabs_started: AtomicU64,
}

#[allow(clippy::declare_interior_mutable_const)]
const Z: AtomicU64 = AtomicU64::new(0);

impl Slot {
    const fn new(era: u64, state: u8) -> Slot {
        Slot {
            era: AtomicU64::new(era),
            state: AtomicU8::new(state),
            opened_ns: Z,
            close_seq: Z,
            refcount: Z,
            label: AtomicU64::new(crate::domain::NO_LABEL),
            close_calls: Z,
            close_scanned_slabs: Z,
            close_recycled_slabs: Z,
            slabs_started: Z,
            purged_bytes: Z,
            close_total_ns: Z,
            last_close_ns: Z,
            last_close_purged_bytes: Z,
            rss_before_close: Z,
            rss_after_close: Z,
        }
    }

    /// Resets what belongs to one era (under the epoch lock, when the slot opens a new era).
    fn reset_for(&self, era: u64) {
        self.era.store(era, Ordering::Relaxed);
        self.opened_ns.store(crate::os::monotonic_ns(), Ordering::Relaxed);
        self.refcount.store(0, Ordering::Relaxed);
        self.label.store(crate::domain::NO_LABEL, Ordering::Relaxed);
        for c in [
            &self.close_calls,
            &self.close_scanned_slabs,
            &self.close_recycled_slabs,
            &self.purged_bytes,
            &self.close_total_ns,
            &self.last_close_ns,
            &self.last_close_purged_bytes,
            &self.rss_before_close,
            &self.rss_after_close,
            &self.slabs_started,
        ] {
            c.store(0, Ordering::Relaxed);
        }
    }

    /// The slot, if it still holds `era`.
    pub(crate) fn holding(era: u64) -> Option<&'static Slot> {
        let slot = &RING[slot_of(era)];
        (slot.era.load(Ordering::Relaxed) == era).then_some(slot)
    }

    pub(crate) fn state(&self) -> Option<EpochState> {
        match self.state.load(Ordering::Relaxed) {
            ACTIVE => Some(EpochState::Active),
            CLOSING => Some(EpochState::Closing),
            _ => None,
        }
    }
}

pub(crate) static RING: [Slot; EPOCH_SLOTS] = {
    let mut ring = [const { Slot::new(0, UNUSED) }; EPOCH_SLOTS];
    ring[0] = Slot::new(1, ACTIVE);
    ring
};

/// The era of the current epoch.
pub(crate) static CURRENT_ERA: AtomicU64 = AtomicU64::new(1);
/// The highest era opened so far (the current one or a domain's).
static LAST_ERA: AtomicU64 = AtomicU64::new(1);
/// Bumped by every advance and close; heaps compare it on each allocation.
pub(crate) static GEN: AtomicU64 = AtomicU64::new(1);
/// Serialises advance and close.
pub(crate) static LOCK: SpinLock<()> = SpinLock::new(());

/// Whether `era` is the era of an ACTIVE epoch (so its slabs may take new allocations).
#[inline]
/// Stamps the open time of the first epoch (era 1, ACTIVE from the start in a `static`, where no
/// clock can be read). Called once, when the allocator first maps memory.
pub(crate) fn stamp_first_epoch() {
    let _ =
        RING[slot_of(1)].opened_ns.compare_exchange(0, crate::os::monotonic_ns(), Ordering::Relaxed, Ordering::Relaxed);
}

pub(crate) fn is_active(era: u64) -> bool {
    let slot = &RING[slot_of(era)];
    slot.era.load(Ordering::Relaxed) == era && slot.state.load(Ordering::Relaxed) == ACTIVE
}

/// The current epoch.
pub fn current() -> EpochId {
    EpochId(CURRENT_ERA.load(Ordering::Acquire))
}

/// Makes the current epoch CLOSING, opens the next one (the era increments, the ring index moves
/// on by one) and returns it. Allocations made after this call on any thread go to the new epoch.
pub fn advance() -> EpochId {
    let _g = LOCK.lock();
    advance_locked()
}

fn advance_locked() -> EpochId {
    let old = CURRENT_ERA.load(Ordering::Relaxed);
    RING[slot_of(old)].state.store(CLOSING, Ordering::Relaxed);
    let new = open_locked();
    // Release: pairs with the Acquire loads of CURRENT_ERA / GEN in `current` and heap refresh,
    // so a thread that sees the new generation sees the slot states written above.
    CURRENT_ERA.store(new, Ordering::Release);
    GEN.fetch_add(1, Ordering::Release);
    EpochId(new)
}

/// Opens a new era, ACTIVE, in the next ring slot that does not hold an ACTIVE epoch (the
/// global current or a domain's), so opening never takes a live domain's slot while another
/// is free. Eras stay monotonic; they skip the numbers whose slot was busy. With all 16 slots
/// ACTIVE, the slot after the last opened one is taken anyway: its era passes (counted).
fn open_locked() -> u64 {
    let last = LAST_ERA.load(Ordering::Relaxed);
    let mut era = last + 1;
    while era <= last + EPOCH_SLOTS as u64 && RING[slot_of(era)].state.load(Ordering::Relaxed) == ACTIVE {
        era += 1;
    }
    if era > last + EPOCH_SLOTS as u64 {
        era = last + 1;
        crate::stats::GLOBAL.ring_overflows.fetch_add(1, Ordering::Relaxed);
    }
    let slot = &RING[slot_of(era)];
    slot.reset_for(era);
    slot.state.store(ACTIVE, Ordering::Relaxed);
    LAST_ERA.store(era, Ordering::Relaxed);
    era
}

/// Opens a new ACTIVE epoch without changing the current one (for a domain).
pub(crate) fn open() -> EpochId {
    let _g = LOCK.lock();
    EpochId(open_locked())
}

/// Closes `epoch`: it takes no new allocations (if it is the current epoch, [`advance`] runs
/// first), its empty slabs are purged (`madvise`) and recycled, and its partly used slabs are
/// purged as soon as they empty. Closing an epoch whose ring slot has since been reused by a
/// newer era only sweeps what is left of it.
///
/// The calling thread's slabs and those of exited threads are swept before this returns; other
/// live threads sweep theirs at their next allocation.
pub fn close(epoch: EpochId) {
    let t0 = crate::os::monotonic_ns();
    let rss_on = RSS_ON_CLOSE.load(Ordering::Relaxed);
    let rss0 = if rss_on { crate::os::rss_bytes() } else { 0 };
    let slot = &RING[epoch.index()];
    let purged0 = slot.purged_bytes.load(Ordering::Relaxed);
    {
        let _g = LOCK.lock();
        if epoch.0 == CURRENT_ERA.load(Ordering::Relaxed) {
            advance_locked();
        }
        if slot.era.load(Ordering::Relaxed) == epoch.0 {
            slot.state.store(CLOSING, Ordering::Relaxed);
        }
        slot.close_seq.fetch_add(1, Ordering::Relaxed);
        // Release: pairs with the Acquire load of GEN in heap refresh.
        GEN.fetch_add(1, Ordering::Release);
    }
    crate::heap::sweep_after_close();
    // Empty slabs of this epoch kept warm in the pool go back to the OS too. They are slabs this
    // close found empty and recycled, so they count as scanned and recycled: without them the
    // yield of an epoch whose objects were all freed before its close read 0 of 0.
    let mut recycled = [0u64; crate::size_class::NUM_CLASSES];
    let warm_purged = crate::segment::purge_warm_of(epoch.0, |slab| {
        if let Some(n) = recycled.get_mut(slab.class().index()) {
            *n += 1;
        }
    });
    for (class, n) in SizeClass::all().zip(recycled) {
        count_close_sweep(epoch.0, class, n, n);
    }
    if let Some(slot) = Slot::holding(epoch.0) {
        slot.purged_bytes.fetch_add(warm_purged as u64, Ordering::Relaxed);
    }
    let rss1 = if rss_on { crate::os::rss_bytes() } else { 0 };
    let dt = crate::os::monotonic_ns().saturating_sub(t0);
    let g = &crate::stats::GLOBAL;
    g.epoch_close_calls.fetch_add(1, Ordering::Relaxed);
    g.epoch_close_total_ns.fetch_add(dt, Ordering::Relaxed);
    if slot.era.load(Ordering::Relaxed) == epoch.0 {
        let purged = slot.purged_bytes.load(Ordering::Relaxed).saturating_sub(purged0);
        slot.close_calls.fetch_add(1, Ordering::Relaxed);
        slot.close_total_ns.fetch_add(dt, Ordering::Relaxed);
        slot.last_close_ns.store(dt, Ordering::Relaxed);
        slot.last_close_purged_bytes.store(purged, Ordering::Relaxed);
        slot.rss_before_close.store(rss0, Ordering::Relaxed);
        slot.rss_after_close.store(rss1, Ordering::Relaxed);
        g.last_close_era.store(epoch.0, Ordering::Relaxed);
        g.last_close_ns.store(dt, Ordering::Relaxed);
        g.last_close_purged_bytes.store(purged, Ordering::Relaxed);
        g.last_close_rss_before.store(rss0, Ordering::Relaxed);
        g.last_close_rss_after.store(rss1, Ordering::Relaxed);
    }
}

static RSS_ON_CLOSE: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Whether `era` was a small phase: it started at most [`segment::RESERVE_SMALL_EPOCH`] slabs
/// (a request, not a batch), so its empty slabs may wait in the close reserve for the next phase
/// instead of being purged at its close. A passed era is not small.
///
/// [`segment::RESERVE_SMALL_EPOCH`]: crate::segment::RESERVE_SMALL_EPOCH
pub(crate) fn small_phase(era: u64) -> bool {
    Slot::holding(era)
        .is_some_and(|s| s.slabs_started.load(Ordering::Relaxed) <= crate::segment::RESERVE_SMALL_EPOCH as u64)
}

/// Counts what a close sweep did with the slabs of `class` from epoch `era`: `scanned` looked at,
/// `recycled` of them empty and given back. Globally, per class, and on the era's ring row while
/// the slot still holds it as CLOSING (a passed era has no row). Close path only: a handful of
/// relaxed atomic adds.
pub(crate) fn count_close_sweep(era: u64, class: SizeClass, scanned: u64, recycled: u64) {
    if scanned == 0 {
        return;
    }
    let g = &crate::stats::GLOBAL;
    class.pick(&g.class_close_sweeps).fetch_add(1, Ordering::Relaxed);
    class.pick(&g.class_close_scanned).fetch_add(scanned, Ordering::Relaxed);
    class.pick(&g.class_close_recycled).fetch_add(recycled, Ordering::Relaxed);
    g.epoch_close_scanned_slabs.fetch_add(scanned, Ordering::Relaxed);
    g.epoch_close_recycled_slabs.fetch_add(recycled, Ordering::Relaxed);
    if let Some(slot) = Slot::holding(era).filter(|s| s.state() == Some(EpochState::Closing)) {
        slot.close_scanned_slabs.fetch_add(scanned, Ordering::Relaxed);
        slot.close_recycled_slabs.fetch_add(recycled, Ordering::Relaxed);
    }
}

/// Turns reading RSS (from `/proc/self/statm`, about 5 us) before and after every
/// [`close`] on or off; it is off by default and is never done on the allocation path. The
/// environment variable `TSLAB_RSS_ON_CLOSE=1` turns it on at the first close.
pub fn set_rss_on_close(on: bool) {
    RSS_ON_CLOSE.store(on, Ordering::Relaxed);
}

pub(crate) fn configure_from_env() {
    if crate::reclaim::env_is_on(c"TSLAB_RSS_ON_CLOSE") {
        RSS_ON_CLOSE.store(true, Ordering::Relaxed);
    }
}

/// The state of the epoch's ring slot, or `None` when the slot now holds another era.
pub fn state(epoch: EpochId) -> Option<EpochState> {
    let slot = &RING[epoch.index()];
    if slot.era.load(Ordering::Relaxed) != epoch.0 {
        return None;
    }
    slot.state()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_follow_eras() {
        assert_eq!(EpochId(1).index(), 0);
        assert_eq!(EpochId(16).index(), 15);
        assert_eq!(EpochId(17).index(), 0);
        assert_eq!(EpochId(1 + 16 * 40).index(), 0);
    }
}
