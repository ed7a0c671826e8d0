//! How a heap follows the epochs: catching up with advances and closes at its next slow path
//! (`refresh`), retiring or carrying over its bins, moving a closed (or rotated-out) epoch's
//! partly used slabs to the recycling lists, and the sweep `epoch::close` runs at once.

use core::sync::atomic::Ordering;

use super::domains::innermost_era;
use super::{current_if_any, help_all_parked, unlink, Heap, FALLBACK};
use crate::ring::{count_close_sweep, is_active, routes_to, slot_of, CURRENT_ERA, GEN, RING};
use crate::size_class::SizeClass;

impl Heap {
    /// Owner: catches up with advances and closes. Returns true when the heap's epoch changed.
    pub(super) fn refresh(&self) -> bool {
        let _slow = self.slow_path();
        // Acquire: pairs with the Release increments of GEN in `epoch`.
        self.cd.sync(GEN.load(Ordering::Acquire));
        // Cached frees go back to their slabs first, so that a closing epoch's slabs can empty.
        self.flush_cache();
        let mut want = innermost_era();
        if want == 0 || !routes_to(want) {
            want = CURRENT_ERA.load(Ordering::Acquire);
        }
        let old = self.era.load(Ordering::Relaxed);
        let changed = want != old;
        if changed {
            // The bins of a closed epoch are part of its close sweep: the thread's last slab of
            // a short phase is usually still its bin when the phase's epoch closes.
            let closed = !is_active(old);
            for class in SizeClass::all() {
                let bin = self.bins[class.index()].get();
                // SAFETY: bins hold slabs this heap owns.
                let reuse = unsafe { bin.as_ref() }
                    .filter(|s| s.used() == 0 && self.partial[slot_of(want)][class.index()].get().is_null());
                // `Some(emptied)` for a bin that left `old`: empty (recycled) or not.
                let left = if let Some(slab) = reuse {
                    // An empty bin holds no object of `old` (nor a pending remote free: those
                    // count as used), so it serves the new epoch as it is: re-stamped, not sent
                    // through the pool and back. Each phase of a request-like program would
                    // otherwise take a pool round trip per size class it uses. Not when the new
                    // epoch has a partly used slab of the class: that one is filled first (else
                    // every phase would leave one more sparse slab behind).
                    slab.set_era(want);
                    Some(true)
                } else {
                    self.retire_bin(class)
                };
                if let (true, Some(emptied)) = (closed, left) {
                    count_close_sweep(old, class, 1, u64::from(emptied));
                }
            }
            self.era.store(want, Ordering::Relaxed);
            self.evict_stale(slot_of(want), want);
            if !closed && !routes_to(old) && slot_of(old) != slot_of(want) {
                // A rotated-out time bucket: its domains now allocate in the current epoch, so
                // its partly used slabs would sit unused until it closes. Recycle them now.
                self.evict_stale(slot_of(old), 0);
            }
        }
        self.sweep_closed();
        changed
    }

    /// Moves slabs of other eras than `era` off the partial lists of `slot` to the recycling
    /// lists (the ring wrapped onto it; with `era` 0, all of them).
    fn evict_stale(&self, slot: usize, era: u64) {
        for head in &self.partial[slot] {
            let mut p = head.get();
            while !p.is_null() {
                // SAFETY: list links point at slabs this heap owns.
                let slab = unsafe { &*p };
                p = slab.next.get();
                if slab.era() != era {
                    unlink(head, slab);
                    self.file_recycle(slab);
                }
            }
        }
    }

    /// Owner: for every ring slot closed since the last sweep, moves its partial slabs to the
    /// recycling lists (their room serves later epochs) and returns the empty ones to the pool.
    pub(super) fn sweep_closed(&self) {
        let _slow = self.slow_path();
        for (slot, ring) in RING.iter().enumerate() {
            let seq = ring.close_seq.load(Ordering::Relaxed);
            if seq == self.seen_close[slot].get() {
                continue;
            }
            self.seen_close[slot].set(seq);
            self.drain_pending();
            let era = ring.era.load(Ordering::Relaxed);
            for (class, head) in SizeClass::all().zip(&self.partial[slot]) {
                let (mut scanned, mut recycled) = (0u64, 0u64);
                let mut p = head.get();
                while !p.is_null() {
                    // SAFETY: list links point at slabs this heap owns.
                    let slab = unsafe { &*p };
                    p = slab.next.get();
                    if is_active(slab.era()) {
                        continue;
                    }
                    scanned += 1;
                    unlink(head, slab);
                    if slab.used() == 0 {
                        recycled += 1;
                        self.slab_emptied(slab);
                    } else {
                        self.file_recycle(slab);
                    }
                }
                count_close_sweep(era, class, scanned, recycled);
            }
        }
    }
}

/// After `epoch::close`: sweep this thread's heap and every parked heap now; live heaps of other
/// threads sweep at their next allocation (GEN changed).
pub(crate) fn sweep_after_close() {
    let me = current_if_any();
    if !me.is_null() {
        // SAFETY: our own live heap.
        unsafe { (*me).refresh() };
    }
    help_all_parked();
    if let Some(fb) = FALLBACK.try_lock() {
        if !fb.0.is_null() {
            // SAFETY: the fallback heap is only used under its lock, which we hold.
            unsafe { (*fb.0).refresh() };
        }
    }
}
