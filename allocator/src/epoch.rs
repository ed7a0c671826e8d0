//! Epochs: a 16-slot ring of ACTIVE / CLOSING epochs, named by a monotonic 64-bit era.
//!
//! An epoch *is* its era: eras count up from 1 and era `e` lives in ring slot `(e - 1) % 16`.
//! [`advance`] makes the current epoch CLOSING and opens the next era in the next slot;
//! [`close`] purges the empty slabs of a CLOSING epoch. Slabs remember their era, so when the
//! ring wraps onto a slot whose older-era slabs are still live, those slabs are recognised as
//! belonging to a finished epoch and are never allocated from again: they only drain.
//!
//! Each small allocation goes to the epoch that is current for its thread when it is made. A
//! thread notices an advance at its next allocation (one relaxed load of [`GEN`] on the fast
//! path), so an allocation that races with `advance` on another thread may land in either epoch.
//!
//! A thread's slabs are its own: `close` purges at once what the calling thread and parked
//! (exited) threads hold; every other live thread purges its share of the closed epoch at its
//! next allocation.

use core::sync::atomic::{AtomicU64, AtomicU8, Ordering};

use serde::Serialize;

use crate::sync::SpinLock;

/// Slots in the epoch ring.
pub const EPOCH_SLOTS: usize = 16;

/// An epoch, named by its era (monotonic from 1). Its ring slot is [`EpochId::index`].
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct EpochId(u64);

impl EpochId {
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
}

impl Slot {
    const fn new(era: u64, state: u8) -> Slot {
        Slot {
            era: AtomicU64::new(era),
            state: AtomicU8::new(state),
            opened_ns: AtomicU64::new(0),
            close_seq: AtomicU64::new(0),
        }
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
/// Bumped by every advance and close; heaps compare it on each allocation.
pub(crate) static GEN: AtomicU64 = AtomicU64::new(1);
/// Serialises advance and close.
static LOCK: SpinLock<()> = SpinLock::new(());

/// Whether `era` is the era of an ACTIVE epoch (so its slabs may take new allocations).
#[inline]
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
    let new = old + 1;
    RING[slot_of(old)].state.store(CLOSING, Ordering::Relaxed);
    let slot = &RING[slot_of(new)];
    slot.era.store(new, Ordering::Relaxed);
    slot.opened_ns.store(crate::os::monotonic_ns(), Ordering::Relaxed);
    slot.state.store(ACTIVE, Ordering::Relaxed);
    // Release: pairs with the Acquire loads of CURRENT_ERA / GEN in `current` and heap refresh,
    // so a thread that sees the new generation sees the slot states written above.
    CURRENT_ERA.store(new, Ordering::Release);
    GEN.fetch_add(1, Ordering::Release);
    EpochId(new)
}

/// Closes `epoch`: it takes no new allocations (if it is the current epoch, [`advance`] runs
/// first), its empty slabs are purged (`madvise`) and recycled, and its partly used slabs are
/// purged as soon as they empty. Closing an epoch whose ring slot has since been reused by a
/// newer era only sweeps what is left of it.
///
/// The calling thread's slabs and those of exited threads are swept before this returns; other
/// live threads sweep theirs at their next allocation.
pub fn close(epoch: EpochId) {
    {
        let _g = LOCK.lock();
        if epoch.0 == CURRENT_ERA.load(Ordering::Relaxed) {
            advance_locked();
        }
        let slot = &RING[epoch.index()];
        if slot.era.load(Ordering::Relaxed) == epoch.0 {
            slot.state.store(CLOSING, Ordering::Relaxed);
        }
        slot.close_seq.fetch_add(1, Ordering::Relaxed);
        // Release: pairs with the Acquire load of GEN in heap refresh.
        GEN.fetch_add(1, Ordering::Release);
    }
    crate::stats::GLOBAL.epoch_close_calls.fetch_add(1, Ordering::Relaxed);
    crate::heap::sweep_after_close();
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
