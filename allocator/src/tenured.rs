//! The tenured epoch: where objects that outlive the phase that allocates them belong (a cache
//! entry made while serving a request, a pooled connection, a lazily built table).
//!
//! ```
//! use temporal_slab::{tenured, EpochDomain};
//! let request = EpochDomain::new(Some("upload"));
//! let _in = request.enter();
//! let scratch = vec![0u8; 4096];                    // the request's: freed when it ends
//! let cached = tenured(|| vec![1u8; 4096]);          // outlives it, without pinning its epoch
//! # drop((scratch, cached));
//! ```
//!
//! An object allocated inside a short domain and kept after it ends pins that domain's epoch:
//! its slab stays in use after the epoch closes, and the doctor reports the epoch as "closed but
//! pinned" by the object's call site. Inside [`tenured`] (or while a [`TenuredGuard`] lives)
//! the thread allocates in one long-lived side epoch instead: opened on first use in a ring slot
//! of its own, labelled [`TENURED_LABEL`], never the current epoch (no domain joins it, no
//! advance ends it) and never closed, so long-lived objects share its slabs instead of being
//! scattered over the slabs of every phase they were made in. It holds no domain open, so it
//! raises no "held open" finding or alert; it does take one of the ring's 16 slots for good.
//!
//! Entering and leaving the scope each switch the thread's bins (its allocation slabs) between
//! the tenured epoch and the current one, like entering a domain of another epoch: meant for
//! the allocations that are kept, not for every allocation of a request.

use core::marker::PhantomData;
use core::sync::atomic::{AtomicU64, AtomicU8, Ordering};

use crate::domain::Scope;
use crate::epoch::{self, EpochId};
use crate::labels;

/// The label of the tenured epoch (in snapshots, `tslab top --labels`, the doctor).
pub const TENURED_LABEL: &str = "(tenured)";

/// The tenured era; 0 until first opened.
static ERA: AtomicU64 = AtomicU64::new(0);
/// Its label id (set before `ERA` is published).
static LABEL: AtomicU8 = AtomicU8::new(0);

/// The tenured epoch, opening it on first use; `None` while every ring slot is held (then
/// [`tenured`] allocates in the current epoch, and a later call tries again).
pub fn tenured_epoch() -> Option<EpochId> {
    // Acquire: pairs with the Release store in `epoch::open_side`, so LABEL is seen too.
    let era = ERA.load(Ordering::Acquire);
    if era != 0 {
        return Some(EpochId::from_era(era));
    }
    let label = labels::intern(TENURED_LABEL);
    LABEL.store(label, Ordering::Relaxed);
    epoch::open_side(label, &ERA).map(EpochId::from_era)
}

/// Runs `f` with this thread's allocations going to the tenured epoch (see the module docs).
pub fn tenured<R>(f: impl FnOnce() -> R) -> R {
    let _in = TenuredGuard::enter();
    f()
}

/// Keeps this thread allocating in the tenured epoch until dropped; nests with domain guards
/// (LIFO, like them).
#[must_use = "the tenured scope ends when the guard is dropped"]
pub struct TenuredGuard {
    scope: Scope,
    _not_send: PhantomData<*mut ()>,
}

impl TenuredGuard {
    /// Enters the tenured scope on this thread.
    pub fn enter() -> TenuredGuard {
        let scope = match tenured_epoch() {
            Some(e) => Scope::push(e.era(), LABEL.load(Ordering::Relaxed)),
            // No slot: the current epoch, unlabelled (as outside any domain).
            None => Scope::push(0, crate::heap::NO_LABEL_ID),
        };
        TenuredGuard { scope, _not_send: PhantomData }
    }
}

impl Drop for TenuredGuard {
    fn drop(&mut self) {
        self.scope.pop();
    }
}
