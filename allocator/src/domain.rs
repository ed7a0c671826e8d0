//! Epoch domains: labelled phases of a program (a request, a job) whose small allocations are
//! grouped by time, each labelled from the registry in `labels.rs`.
//!
//! ```
//! use temporal_slab::EpochDomain;
//! let request = EpochDomain::new(Some("http-request"));
//! {
//!     let _in = request.enter();          // allocations on this thread now go to its epoch
//!     let body = vec![0u8; 1000];
//! }                                        // guard dropped: the thread leaves the domain
//! request.close();                         // the domain ends (dropping it does the same)
//! ```
//!
//! A domain joins the current epoch: every domain opened in the same time bucket shares it
//! (see `epoch.rs`), so opening, entering, exiting and ending one take no lock, and 10,000 of them
//! open at once use one or two ring slots. The epoch closes when time has moved on and its last
//! domain has ended; its memory is then recycled. Per label, snapshots count the domains opened
//! and still open and the bytes allocated inside them (exact, by the threads' own counters).
//!
//! Guards nest LIFO per thread: entering B inside A sends allocations to B until B's guard
//! drops, then to A again. An epoch's `refcount` in snapshots is the number of domains open in
//! it, so a domain that never ends shows as an old, ended epoch that stays open with refcount 1
//! (and as an open domain of its label): a leak found by the allocator.
//!
//! Misuse is detected in release builds too, counted in the snapshot, and made harmless:
//! - a guard dropped out of LIFO order: it is removed from wherever it is in the stack, the
//!   thread goes on allocating in the (new) innermost domain;
//! - a guard dropped on another thread than the one that entered it (only possible through
//!   `unsafe`, the guard is `!Send`): the stacks of both threads are left alone;
//! - entering a domain that has ended, or whose epoch has closed or passed: allocations go to
//!   the current global epoch instead, never to a closed era.
//!
//! Labels (`labels.rs`): up to [`MAX_LABELS`](crate::MAX_LABELS) distinct labels of up to
//! [`LABEL_MAX`](crate::LABEL_MAX) bytes (longer ones are cut at a character boundary). Label 0
//! is the fixed label `"(overflow)"`, used (and counted) when the registry is full. Labels are
//! stored as given; printers escape them.

use core::marker::PhantomData;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use crate::counters::GLOBAL;
use crate::epoch::{self, EpochId};
use crate::heap::{self, pack, scopes, unpack, Scopes, MAX_DEPTH};
use crate::labels::{intern, Label};
use crate::ring;

/// A phase of the program (a request, a job) with an optional label. See the module docs.
///
/// Opening one joins the current epoch (shared with the other domains of the same time bucket)
/// and holds a count on it until the domain ends ([`EpochDomain::close`], drop, or the last guard
/// out with [`EpochDomain::auto_close`]). `Send + Sync`: share it by reference or in an `Arc`,
/// and enter it from any thread; each guard stays on the thread that made it.
#[derive(Debug)]
pub struct EpochDomain {
    epoch: EpochId,
    label: u8,
    auto_close: bool,
    /// Holds a count on its epoch (joined and not yet ended).
    open: AtomicBool,
    /// Live guards, on any thread (counted only with `auto_close`).
    guards: AtomicU32,
}

impl EpochDomain {
    /// A domain in the current epoch (the epoch is shared with every other domain opened in the
    /// same time bucket; see `epoch.rs`). Takes no lock and makes no thread heap refresh.
    pub fn new(label: Option<&str>) -> EpochDomain {
        EpochDomain::joined(label.map(intern))
    }

    /// A domain of the label id `label` in the current epoch.
    #[inline]
    fn joined(label: Option<u8>) -> EpochDomain {
        loop {
            let e = epoch::current();
            if epoch::join(e.era()) {
                return EpochDomain::opened(e, label, true);
            }
            // The current epoch ended between the load and the join: take the new one.
            core::hint::spin_loop();
        }
    }

    /// [`EpochDomain::new`] with a label registered beforehand: no registry lookup per domain.
    pub fn labelled(label: Label) -> EpochDomain {
        EpochDomain::joined(Some(label.id()))
    }

    /// A domain in `epoch` if it still takes new domains (it is ACTIVE and not ended: for
    /// example the current one, just returned by [`epoch::advance`]). A domain on an epoch that
    /// has ended or passed is born ended: entering it counts a passed-era misuse and allocates
    /// in the current epoch.
    pub fn on(epoch: EpochId, label: Option<&str>) -> EpochDomain {
        let label = label.map(intern);
        let open = epoch::join(epoch.era());
        EpochDomain::opened(epoch, label, open)
    }

    #[inline(always)]
    fn opened(epoch: EpochId, label: Option<u8>, open: bool) -> EpochDomain {
        if open {
            if let Some(slot) = ring::Slot::holding(epoch.era()) {
                slot.note_label(label);
            }
            heap::count_domain_label(label, true);
        }
        EpochDomain {
            epoch,
            label: label.unwrap_or(heap::NO_LABEL_ID),
            auto_close: false,
            open: AtomicBool::new(open),
            guards: AtomicU32::new(0),
        }
    }

    /// With `true`, the domain ends when its last guard (on any thread) exits.
    pub fn auto_close(mut self, yes: bool) -> EpochDomain {
        self.auto_close = yes;
        self
    }

    /// The domain's epoch.
    pub fn epoch(&self) -> EpochId {
        self.epoch
    }

    /// Whether the domain is still open (not closed, not dropped, not auto-closed).
    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::Relaxed)
    }

    /// Enters the domain on this thread: until the guard drops, this thread's small allocations
    /// go to the domain's epoch (unless a nested domain is entered). Entering a domain whose
    /// epoch is the thread's current one costs a few thread-local writes; the thread's heap
    /// switches slabs only when the domain's epoch differs (a domain older than the current
    /// time bucket).
    #[inline]
    pub fn enter(&self) -> DomainGuard<'_> {
        let era = self.epoch.era();
        // An open domain holds a count on its epoch, so the epoch is ACTIVE or ENDED in its slot
        // (it closes only once its domains have ended): only a domain that has ended (or was
        // born ended) can be entered on a passed era.
        if !self.open.load(Ordering::Relaxed) {
            GLOBAL.domain_misuse_passed_era.fetch_add(1, Ordering::Relaxed);
        }
        if self.auto_close {
            self.guards.fetch_add(1, Ordering::Relaxed);
        }
        DomainGuard { domain: self, scope: Scope::push(era, self.label), _not_send: PhantomData }
    }

    /// Ends the domain now, whatever guards are live: it no longer holds its epoch open (the
    /// epoch closes once it has ended and its last domain has ended). Idempotent; dropping the
    /// domain does the same.
    pub fn close(&self) {
        if self.open.swap(false, Ordering::AcqRel) {
            heap::count_domain_label((self.label != heap::NO_LABEL_ID).then_some(self.label), false);
            epoch::leave(self.epoch.era());
        }
    }
}

impl Drop for EpochDomain {
    fn drop(&mut self) {
        self.close();
    }
}

/// One entry of this thread's stack of scopes (a domain entered, or the tenured scope): pushed
/// on enter, removed on exit, with the misuse the module docs describe counted and made
/// harmless.
pub(crate) struct Scope {
    /// `era << 8 | label`.
    packed: u64,
    pushed: bool,
    /// The address of the pushing thread's [`Scopes`].
    thread: usize,
}

impl Scope {
    /// Sends this thread's allocations to `era` (0: the current epoch), charged to `label`, until
    /// [`Scope::pop`]. Deeper than [`MAX_DEPTH`]: counted, and nothing changes.
    #[inline(always)]
    pub(crate) fn push(era: u64, label: u8) -> Scope {
        let packed = pack(era, label);
        let s = scopes();
        let depth = s.depth();
        let pushed = depth < MAX_DEPTH;
        if pushed {
            s.set(depth, packed);
            s.set_depth(depth + 1);
            heap::set_domain(era, label);
        } else {
            GLOBAL.domain_misuse_too_deep.fetch_add(1, Ordering::Relaxed);
        }
        Scope { packed, pushed, thread: core::ptr::from_ref(s).addr() }
    }

    /// Leaves the scope: the thread allocates in the next scope out again.
    #[inline(always)]
    pub(crate) fn pop(&self) {
        let s = scopes();
        let depth = s.depth();
        // The common case: this scope is on top of this thread's stack.
        if self.pushed && self.thread == core::ptr::from_ref(s).addr() && depth > 0 && s.get(depth - 1) == self.packed {
            s.set_depth(depth - 1);
            let (era, label) = unpack(s.innermost());
            heap::set_domain(era, label);
        } else {
            self.pop_slow(s);
        }
    }

    /// The exits that are not the top of the pushing thread's stack: counted misuse, made
    /// harmless (see the module docs), and the guards of pushes that were refused.
    #[cold]
    #[inline(never)]
    fn pop_slow(&self, s: &Scopes) {
        if self.thread != core::ptr::from_ref(s).addr() {
            GLOBAL.domain_misuse_wrong_thread.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if !self.pushed {
            return;
        }
        // Removes the innermost entry of this scope (an earlier out-of-order exit below it may
        // have moved it down) and counts the misuse: it was not on top.
        let depth = s.depth();
        GLOBAL.domain_misuse_out_of_order.fetch_add(1, Ordering::Relaxed);
        if let Some(pos) = (0..depth).rev().find(|&i| s.get(i) == self.packed) {
            for i in pos..depth - 1 {
                s.set(i, s.get(i + 1));
            }
            s.set_depth(depth - 1);
            let (era, label) = unpack(s.innermost());
            heap::set_domain(era, label);
        }
    }
}

/// Keeps a domain entered on this thread; dropping it exits the domain.
#[must_use = "the domain is exited when the guard is dropped"]
pub struct DomainGuard<'a> {
    domain: &'a EpochDomain,
    scope: Scope,
    _not_send: PhantomData<*mut ()>,
}

impl Drop for DomainGuard<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        self.scope.pop();
        // AcqRel: the last guard's auto-close sees every other guard's exit. Only auto-closing
        // domains count their guards (two atomic read-modify-writes per request saved).
        if self.domain.auto_close && self.domain.guards.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.domain.close();
        }
    }
}
