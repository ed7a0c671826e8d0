//! The epoch ring's state: 16 slots, each holding one era and its state, plus the current era
//! and the generation that heaps synchronise on. Plain shared state with no logic that reaches
//! up: heaps read it on their slow path, `epoch.rs` (above the heaps) changes it.
//!
//! An epoch *is* its era: eras count up from 1 and era `e` lives in ring slot `(e - 1) % 16`.
//! A slot's state moves ACTIVE -> ENDED -> CLOSING (-> reused for a later era):
//! - ACTIVE: takes allocations and new domains. The current epoch is always ACTIVE.
//! - ENDED: time has moved on (an advance), but domains opened in it are still open: it still
//!   takes their allocations, and no new domain joins it. It closes when its last domain ends.
//! - CLOSING: takes no allocations; its slabs are recycled or return to the pool as they empty.

use core::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};

use serde::Serialize;

use crate::countdown::STEP;
use crate::counters::GLOBAL;
use crate::size_class::SizeClass;
use crate::sync::SpinLock;

/// Slots in the epoch ring.
pub const EPOCH_SLOTS: usize = 16;

/// An epoch, named by its era (monotonic from 1). Its ring slot is [`EpochId::index`].
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct EpochId(pub(crate) u64);

impl EpochId {
    /// The epoch named by `era`, for callers that carry eras as plain integers (the C ABI of
    /// `libtemporal_slab.so`). Any value is accepted; [`crate::epoch::state`] tells whether it
    /// names an epoch still in the ring.
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
    /// Takes new allocations: the current epoch, or an ended one whose domains are still open.
    Active,
    /// Takes no new allocations; its slabs are recycled or given back as they empty.
    Closing,
}

pub(crate) const UNUSED: u8 = 0;
pub(crate) const ACTIVE: u8 = 1;
pub(crate) const CLOSING: u8 = 2;
pub(crate) const ENDED: u8 = 3;

/// `Slot::label` when no labelled domain joined the era.
pub(crate) const NO_LABEL: u64 = u64::MAX;
/// `Slot::label` when domains of more than one label joined the era.
pub(crate) const SHARED_LABEL: u64 = u64::MAX - 1;

pub(crate) struct Slot {
    pub(crate) era: AtomicU64,
    pub(crate) state: AtomicU8,
    /// A domain joined this era (the reclaimer rotates such an epoch after [`BUCKET_NS`]).
    ///
    /// [`BUCKET_NS`]: crate::epoch::BUCKET_NS
    pub(crate) joined: AtomicBool,
    /// The reclaimer ended this era as a time bucket (not the program, through `advance`): its
    /// domains' allocations then go to the current epoch (see [`routes_to`]).
    pub(crate) rotated: AtomicBool,
    /// Purge the era's empty slabs when it closes instead of keeping them (`epoch::close_purge`).
    pub(crate) purge_on_close: AtomicBool,
    /// The era is the tenured side epoch (`tenured.rs`): never current, never ended or closed.
    pub(crate) tenured: AtomicBool,
    /// CLOCK_MONOTONIC ns when the era opened.
    pub(crate) opened_ns: AtomicU64,
    /// Bumped by every close of this slot; heaps compare it with what they last swept.
    pub(crate) close_seq: AtomicU64,
    /// Label id of the domains that joined the era, [`NO_LABEL`] or [`SHARED_LABEL`].
    pub(crate) label: AtomicU64,
    /// Close telemetry of this era (counters, reset when the slot opens a new era).
    pub(crate) close_calls: AtomicU64,
    pub(crate) close_scanned_slabs: AtomicU64,
    pub(crate) close_recycled_slabs: AtomicU64,
    pub(crate) purged_bytes: AtomicU64,
    /// Bytes of this era's emptied slabs kept unpurged in the reserve after it stopped being
    /// active (their purge deferred to decay or `trim`).
    pub(crate) deferred_bytes: AtomicU64,
    pub(crate) close_total_ns: AtomicU64,
    /// The last close of this era: duration, bytes purged and deferred during it, RSS around it
    /// (0 when RSS reading is off).
    pub(crate) last_close_ns: AtomicU64,
    pub(crate) last_close_purged_bytes: AtomicU64,
    pub(crate) last_close_deferred_bytes: AtomicU64,
    pub(crate) rss_before_close: AtomicU64,
    pub(crate) rss_after_close: AtomicU64,
    /// Slabs taken from the pool for this era (counter; an empty allocation slab a thread carries
    /// over from its previous epoch is not counted): the size of its phase, which sizes the
    /// empty-slab reserve for the next one.
    pub(crate) slabs_started: AtomicU64,
}

#[allow(clippy::declare_interior_mutable_const)]
const Z: AtomicU64 = AtomicU64::new(0);

impl Slot {
    const fn new(era: u64, state: u8) -> Slot {
        Slot {
            era: AtomicU64::new(era),
            state: AtomicU8::new(state),
            joined: AtomicBool::new(false),
            purge_on_close: AtomicBool::new(false),
            tenured: AtomicBool::new(false),
            rotated: AtomicBool::new(false),
            opened_ns: Z,
            close_seq: Z,
            label: AtomicU64::new(NO_LABEL),
            close_calls: Z,
            close_scanned_slabs: Z,
            close_recycled_slabs: Z,
            purged_bytes: Z,
            deferred_bytes: Z,
            close_total_ns: Z,
            last_close_ns: Z,
            last_close_purged_bytes: Z,
            last_close_deferred_bytes: Z,
            rss_before_close: Z,
            rss_after_close: Z,
            slabs_started: Z,
        }
    }

    /// Resets what belongs to one era (under [`LOCK`], when the slot opens a new era).
    pub(crate) fn reset_for(&self, era: u64) {
        self.era.store(era, Ordering::Relaxed);
        self.opened_ns.store(crate::os::monotonic_ns(), Ordering::Relaxed);
        self.label.store(NO_LABEL, Ordering::Relaxed);
        self.joined.store(false, Ordering::Relaxed);
        self.purge_on_close.store(false, Ordering::Relaxed);
        self.tenured.store(false, Ordering::Relaxed);
        self.rotated.store(false, Ordering::Relaxed);
        for c in [
            &self.close_calls,
            &self.close_scanned_slabs,
            &self.close_recycled_slabs,
            &self.purged_bytes,
            &self.deferred_bytes,
            &self.close_total_ns,
            &self.last_close_ns,
            &self.last_close_purged_bytes,
            &self.last_close_deferred_bytes,
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

    /// The public state (ENDED reads as Active: it still takes its domains' allocations).
    pub(crate) fn state(&self) -> Option<EpochState> {
        match self.state.load(Ordering::Relaxed) {
            ACTIVE | ENDED => Some(EpochState::Active),
            CLOSING => Some(EpochState::Closing),
            _ => None,
        }
    }

    /// Notes that a domain with label `id` (or none) joined: the first label sticks, a second
    /// one makes the era's label [`SHARED_LABEL`]. Reads first, so a settled slot is not written.
    pub(crate) fn note_label(&self, id: Option<u8>) {
        if !self.joined.load(Ordering::Relaxed) {
            self.joined.store(true, Ordering::Relaxed);
        }
        let Some(id) = id.map(u64::from) else { return };
        let cur = self.label.load(Ordering::Relaxed);
        if cur == id || cur == SHARED_LABEL {
            return;
        }
        if cur == NO_LABEL && self.label.compare_exchange(NO_LABEL, id, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
            return;
        }
        if self.label.load(Ordering::Relaxed) != id {
            self.label.store(SHARED_LABEL, Ordering::Relaxed);
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
/// The highest era opened so far.
pub(crate) static LAST_ERA: AtomicU64 = AtomicU64::new(1);
/// Moved on by [`STEP`] at every advance and close (wrapping); heaps compare it on each
/// allocation, packed with their byte countdown (`countdown.rs`).
pub(crate) static GEN: AtomicU64 = AtomicU64::new(STEP);
/// Serialises opening eras (advance).
pub(crate) static LOCK: SpinLock<()> = SpinLock::new(());

/// Stamps the open time of the first epoch (era 1, ACTIVE from the start in a `static`, where no
/// clock can be read). Called once, when the allocator first maps memory.
pub(crate) fn stamp_first_epoch() {
    let _ =
        RING[slot_of(1)].opened_ns.compare_exchange(0, crate::os::monotonic_ns(), Ordering::Relaxed, Ordering::Relaxed);
}

/// Whether `era` is the era of an epoch that takes allocations (ACTIVE or ENDED).
#[inline]
pub(crate) fn is_active(era: u64) -> bool {
    let slot = &RING[slot_of(era)];
    let state = slot.state.load(Ordering::Relaxed);
    slot.era.load(Ordering::Relaxed) == era && (state == ACTIVE || state == ENDED)
}

/// Whether a thread inside a domain of `era` allocates in `era` (else in the current epoch): an
/// epoch that takes allocations and that the reclaimer has not rotated out as a time bucket. A
/// request that outlives its bucket allocates its last objects in the next bucket, so a thread
/// keeps one set of partly used slabs, not one per bucket its open requests began in (its
/// bucket still closes only when the request ends).
#[inline]
pub(crate) fn routes_to(era: u64) -> bool {
    is_active(era) && !RING[slot_of(era)].rotated.load(Ordering::Relaxed)
}

/// The current epoch.
pub fn current() -> EpochId {
    EpochId(CURRENT_ERA.load(Ordering::Acquire))
}

/// The state of the epoch's ring slot, or `None` when the slot now holds another era.
pub fn state(epoch: EpochId) -> Option<EpochState> {
    Slot::holding(epoch.0).and_then(Slot::state)
}

/// Counts what a close sweep did with the slabs of `class` from epoch `era`: `scanned` looked at,
/// `recycled` of them empty and given back. Globally, per class, and on the era's ring row while
/// the slot still holds it as CLOSING (a passed era has no row). Close path only: a handful of
/// relaxed atomic adds.
pub(crate) fn count_close_sweep(era: u64, class: SizeClass, scanned: u64, recycled: u64) {
    if scanned == 0 {
        return;
    }
    let g = &GLOBAL;
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
