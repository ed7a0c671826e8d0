//! Epoch domains: scoped, labelled, refcounted regions of a program whose small allocations go
//! to one epoch, plus the bounded label registry.
//!
//! ```
//! use temporal_slab::EpochDomain;
//! let request = EpochDomain::new(Some("http-request"));
//! {
//!     let _in = request.enter();          // allocations on this thread now go to its epoch
//!     let body = vec![0u8; 1000];
//! }                                        // guard dropped: refcount back to 0
//! request.close();                         // the epoch's pages go back to the OS
//! ```
//!
//! Guards nest LIFO per thread: entering B inside A sends allocations to B until B's guard
//! drops, then to A again. The epoch's refcount (live guards, on any thread) is visible in
//! snapshots, so a domain entered twice and exited once shows as an epoch with refcount 1 and a
//! growing age: a leak found by the allocator.
//!
//! Misuse is detected in release builds too, counted in the snapshot, and made harmless:
//! - a guard dropped out of LIFO order: it is removed from wherever it is in the stack, the
//!   thread goes on allocating in the (new) innermost domain;
//! - a guard dropped on another thread than the one that entered it (only possible through
//!   `unsafe`, the guard is `!Send`): the refcount is still released, the stacks of both threads
//!   are left alone;
//! - entering a domain whose epoch's era has passed (closed and its ring slot reused, or closed
//!   by someone else): allocations go to the current global epoch instead, never to the passed
//!   era.
//!
//! Labels: up to [`MAX_LABELS`] distinct labels of up to [`LABEL_MAX`] bytes (longer ones are cut
//! at a character boundary). Label 0 is the fixed label `"(overflow)"`, used (and counted) when
//! the registry is full. Labels are stored as given; printers escape them.

use core::cell::Cell;
use core::marker::PhantomData;
use core::sync::atomic::Ordering;

use crate::epoch::{self, EpochId, RING};
use crate::heap;
use crate::stats::GLOBAL;
use crate::sync::SpinLock;

/// Most bytes in a label.
pub const LABEL_MAX: usize = 31;
/// Label registry size, including the fixed overflow label 0.
pub const MAX_LABELS: usize = 32;
/// The label given when the registry is full.
pub const OVERFLOW_LABEL: &str = "(overflow)";
/// Deepest nesting of domain guards per thread; deeper enters are counted as misuse and do not
/// redirect allocations.
pub const MAX_DEPTH: usize = 32;

#[derive(Copy, Clone)]
struct Label {
    len: u8,
    bytes: [u8; LABEL_MAX],
}

pub(crate) struct Registry {
    labels: [Label; MAX_LABELS],
    n: usize,
}

pub(crate) static REGISTRY: SpinLock<Registry> = SpinLock::new(Registry {
    labels: {
        let mut l = [Label { len: 0, bytes: [0; LABEL_MAX] }; MAX_LABELS];
        let o = OVERFLOW_LABEL.as_bytes();
        let mut i = 0;
        while i < o.len() {
            l[0].bytes[i] = o[i];
            i += 1;
        }
        l[0].len = o.len() as u8;
        l
    },
    n: 1,
});

/// Cuts `s` to at most LABEL_MAX bytes at a character boundary.
fn cut(s: &str) -> &str {
    if s.len() <= LABEL_MAX {
        return s;
    }
    let mut end = LABEL_MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Registers `label` (or finds it) and returns its id; 0 when the registry is full.
pub(crate) fn intern(label: &str) -> u8 {
    let label = cut(label);
    let mut r = REGISTRY.lock();
    for i in 1..r.n {
        let l = &r.labels[i];
        if &l.bytes[..l.len as usize] == label.as_bytes() {
            return i as u8;
        }
    }
    if r.n == MAX_LABELS {
        GLOBAL.label_overflows.fetch_add(1, Ordering::Relaxed);
        return 0;
    }
    let i = r.n;
    r.labels[i].bytes[..label.len()].copy_from_slice(label.as_bytes());
    r.labels[i].len = label.len() as u8;
    r.n += 1;
    i as u8
}

/// Copies every label (id 0, the overflow label, included) into `out` as little-endian words,
/// without allocating. Returns the number of registered labels (excluding the overflow label).
pub(crate) fn copy_labels(out: &mut [crate::stats::RawLabel; MAX_LABELS]) -> usize {
    let r = REGISTRY.lock();
    for (o, l) in out.iter_mut().zip(&r.labels[..r.n]) {
        o.len = l.len as u64;
        let mut padded = [0u8; LABEL_MAX.div_ceil(8) * 8];
        padded[..LABEL_MAX].copy_from_slice(&l.bytes);
        for (w, chunk) in o.bytes.iter_mut().zip(padded.chunks(8)) {
            let mut b = [0u8; 8];
            b.copy_from_slice(chunk);
            *w = u64::from_le_bytes(b);
        }
    }
    r.n - 1
}

/// Labels registered so far (excluding the overflow label).
pub fn label_count() -> usize {
    REGISTRY.lock().n - 1
}

/// Marker for "no label" in a ring slot.
pub(crate) const NO_LABEL: u64 = u64::MAX;

thread_local! {
    /// This thread's stack of entered domains (eras), innermost last.
    static STACK: Cell<[u64; MAX_DEPTH]> = const { Cell::new([0; MAX_DEPTH]) };
    static DEPTH: Cell<usize> = const { Cell::new(0) };
}

/// An epoch with a label and a refcount of live guards. See the module docs.
#[derive(Debug)]
pub struct EpochDomain {
    epoch: EpochId,
    auto_close: bool,
}

impl EpochDomain {
    /// A domain on a new epoch of its own: ACTIVE until the domain closes it (or its last guard
    /// exits, with [`EpochDomain::auto_close`]); global advances leave it alone.
    pub fn new(label: Option<&str>) -> EpochDomain {
        EpochDomain::on(epoch::open(), label)
    }

    /// A domain on an existing epoch (for example the current one, to share it between
    /// domains). A label given here replaces the epoch's label.
    pub fn on(epoch: EpochId, label: Option<&str>) -> EpochDomain {
        if let Some(l) = label {
            let id = intern(l);
            let slot = &RING[epoch.index()];
            if slot.era.load(Ordering::Relaxed) == epoch.era() {
                slot.label.store(id as u64, Ordering::Relaxed);
            }
        }
        EpochDomain { epoch, auto_close: false }
    }

    /// With `true`, the epoch is closed when the last guard (on any thread) exits, if its era
    /// is still the one in its ring slot.
    pub fn auto_close(mut self, yes: bool) -> EpochDomain {
        self.auto_close = yes;
        self
    }

    /// The domain's epoch.
    pub fn epoch(&self) -> EpochId {
        self.epoch
    }

    /// Enters the domain on this thread: until the guard drops, this thread's small allocations
    /// go to the domain's epoch (unless a nested domain is entered).
    pub fn enter(&self) -> DomainGuard<'_> {
        let era = self.epoch.era();
        let slot = &RING[self.epoch.index()];
        // The refcount belongs to the era in the slot; a passed era has none to raise.
        let counted = slot.era.load(Ordering::Relaxed) == era;
        if counted {
            slot.refcount.fetch_add(1, Ordering::Relaxed);
        }
        if !epoch::is_active(era) {
            GLOBAL.domain_misuse_passed_era.fetch_add(1, Ordering::Relaxed);
        }
        let depth = DEPTH.try_with(|d| d.get()).unwrap_or(MAX_DEPTH);
        let pushed = depth < MAX_DEPTH;
        if pushed {
            let _ = STACK.try_with(|s| {
                let mut st = s.get();
                st[depth] = era;
                s.set(st);
            });
            let _ = DEPTH.try_with(|d| d.set(depth + 1));
            heap::set_domain_era(era);
        } else {
            GLOBAL.domain_misuse_too_deep.fetch_add(1, Ordering::Relaxed);
        }
        DomainGuard { domain: self, pushed, counted, thread: thread_token(), _not_send: PhantomData }
    }

    /// Closes the domain's epoch now (see [`epoch::close`]), whatever its refcount.
    pub fn close(&self) {
        epoch::close(self.epoch);
    }
}

/// An identity for the current thread that needs no allocation: the address of a thread-local.
fn thread_token() -> usize {
    DEPTH.try_with(|d| core::ptr::from_ref(d).addr()).unwrap_or(0)
}

/// Keeps a domain entered on this thread; dropping it exits the domain.
#[must_use = "the domain is exited when the guard is dropped"]
pub struct DomainGuard<'a> {
    domain: &'a EpochDomain,
    pushed: bool,
    counted: bool,
    thread: usize,
    _not_send: PhantomData<*mut ()>,
}

impl Drop for DomainGuard<'_> {
    fn drop(&mut self) {
        let era = self.domain.epoch.era();
        if self.thread != thread_token() {
            GLOBAL.domain_misuse_wrong_thread.fetch_add(1, Ordering::Relaxed);
        } else if self.pushed {
            let depth = DEPTH.try_with(|d| d.get()).unwrap_or(0);
            let mut st = STACK.try_with(|s| s.get()).unwrap_or([0; MAX_DEPTH]);
            // Normally this guard's era is on top of the stack (wherever it was pushed: an
            // earlier out-of-order exit below it may have moved it down). Otherwise remove the
            // innermost entry of this era and count the misuse.
            let found = (0..depth).rev().find(|&i| st[i] == era);
            if found != Some(depth.wrapping_sub(1)) {
                GLOBAL.domain_misuse_out_of_order.fetch_add(1, Ordering::Relaxed);
            }
            if let Some(pos) = found {
                st.copy_within(pos + 1..depth, pos);
                let new_depth = depth - 1;
                let _ = STACK.try_with(|s| s.set(st));
                let _ = DEPTH.try_with(|d| d.set(new_depth));
                heap::set_domain_era(if new_depth == 0 { 0 } else { st[new_depth - 1] });
            }
        }
        let slot = &RING[self.domain.epoch.index()];
        // If the era passed while we were inside, the slot's refcount was reset for the new era:
        // leave it alone.
        if !self.counted || slot.era.load(Ordering::Relaxed) != era {
            return;
        }
        let before = slot.refcount.fetch_sub(1, Ordering::AcqRel);
        if before == 1 && self.domain.auto_close {
            epoch::close(self.domain.epoch);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_cut_at_a_char_boundary() {
        assert_eq!(cut("short"), "short");
        let long = "é".repeat(20); // 40 bytes
        let c = cut(&long);
        assert!(c.len() <= LABEL_MAX && c.len() == 30);
    }
}
