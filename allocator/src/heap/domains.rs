//! The heap's share of domain bookkeeping: the thread's stack of scopes (domains and tenured
//! scopes entered, the innermost decides where it allocates), its
//! per-slot counts of open domains (summed by `epoch.rs` to decide a close) and its per-label
//! counters. Every write is owner-only (Relaxed load + store); threads without a heap of their
//! own use shared atomics in `counters.rs`.

use core::cell::Cell;
use core::sync::atomic::Ordering;

use super::{current, Heap, HEAPS};
use crate::counters::{add_owned, GLOBAL, MAX_LABELS};
use crate::ring::{routes_to, CURRENT_ERA};

/// A domain's label id when it has none.
pub(crate) const NO_LABEL_ID: u8 = u8::MAX;

/// Deepest nesting of scopes per thread; deeper enters are counted as misuse (`domain.rs`) and do
/// not redirect allocations.
pub(crate) const MAX_DEPTH: usize = 32;
// `Scopes::get` and `set` keep indices in the stack with `% MAX_DEPTH`: a mask only for a power of two.
const _: () = assert!(MAX_DEPTH.is_power_of_two());

/// Outside every scope: the current epoch, no label.
const NONE: u64 = NO_LABEL_ID as u64;

/// A thread's scopes: the domains (and tenured scopes) it has entered, innermost last, each packed
/// by [`pack`]. `domain.rs` pushes and pops them (and handles misuse); [`Heap::refresh`] reads the
/// innermost era. One thread-local, const-initialised with no destructor: every access is an
/// offset from the thread pointer that cannot fail, even during thread exit.
pub(crate) struct Scopes {
    depth: Cell<usize>,
    stack: [Cell<u64>; MAX_DEPTH],
}

thread_local! {
    static SCOPES: Scopes = const { Scopes { depth: Cell::new(0), stack: [const { Cell::new(0) }; MAX_DEPTH] } };
}

/// This thread's scopes. Their address identifies the thread (unique among live threads).
#[inline(always)]
pub(crate) fn scopes<'a>() -> &'a Scopes {
    let s: *const Scopes = SCOPES.with(core::ptr::from_ref);
    // SAFETY: a thread-local lives as long as its thread and `SCOPES` has no destructor, so it
    // stays valid for a guard dropped during thread exit. `Scopes` is `!Sync` (cells): the
    // reference cannot reach another thread, and callers keep no more than its address.
    unsafe { &*s }
}

/// `(era, label)` in one word (eras stay far below 2^56).
#[inline(always)]
pub(crate) fn pack(era: u64, label: u8) -> u64 {
    era << 8 | u64::from(label)
}

/// The era and label of a packed scope.
#[inline(always)]
pub(crate) fn unpack(packed: u64) -> (u64, u8) {
    (packed >> 8, packed as u8)
}

impl Scopes {
    #[inline(always)]
    pub(crate) fn depth(&self) -> usize {
        self.depth.get()
    }

    /// `depth` at most [`MAX_DEPTH`].
    #[inline(always)]
    pub(crate) fn set_depth(&self, depth: usize) {
        self.depth.set(depth);
    }

    /// Entry `i` (below [`MAX_DEPTH`]; the mask keeps any index in the array, so no bounds
    /// check or panic branch is compiled in).
    #[inline(always)]
    pub(crate) fn get(&self, i: usize) -> u64 {
        self.stack[i % MAX_DEPTH].get()
    }

    #[inline(always)]
    pub(crate) fn set(&self, i: usize, packed: u64) {
        self.stack[i % MAX_DEPTH].set(packed);
    }

    /// The innermost scope, packed ([`NONE`] outside every scope).
    #[inline(always)]
    pub(crate) fn innermost(&self) -> u64 {
        match self.depth() {
            0 => NONE,
            d => self.get(d - 1),
        }
    }
}

/// The era this thread's innermost scope allocates in (0: none, the current epoch).
#[inline]
pub(crate) fn innermost_era() -> u64 {
    unpack(scopes().innermost()).0
}

/// Sends this thread's allocations to `era` (0: back to the global current epoch) and charges
/// its allocations from now on to `label` ([`NO_LABEL_ID`]: none). The heap switches slabs at its
/// next allocation only when the epoch it should allocate in changes: entering a domain of the
/// thread's current epoch costs no refresh.
///
/// Inlined into its two callers (a domain's enter and its guard's exit, once each per poll of an
/// `in_domain` future): a call here cost a third of the pair in saving and restoring registers.
#[inline(always)]
pub(crate) fn set_domain(era: u64, label: u8) {
    // Made now if the thread has none yet: a thread whose first allocation comes inside a
    // domain (a worker polling its first task) must know the label before that allocation.
    let h = current();
    if h.is_null() {
        return;
    }
    // SAFETY: our own live heap; `gen`, `era` and the label fields are owner-only.
    let heap = unsafe { &*h };
    heap.charge_label(label);
    let have = heap.era.load(Ordering::Relaxed);
    // Already allocating in the domain's epoch (the common case: a domain of the current time
    // bucket): nothing to decide. If that epoch has since stopped taking allocations, its close
    // or rotation changed `GEN`, and the next allocation refreshes from the innermost scope anyway.
    if era != 0 && era == have {
        return;
    }
    let want = if era != 0 && routes_to(era) { era } else { CURRENT_ERA.load(Ordering::Relaxed) };
    if have != want {
        heap.cd.force_stale();
    }
}

/// Adds `delta` to this thread's count of open domains in ring slot `slot` (a thread without a
/// heap of its own uses a shared atomic).
pub(crate) fn add_domain(slot: usize, delta: i64) {
    let h = current();
    if h.is_null() {
        GLOBAL.domains_fallback[slot].fetch_add(delta as u64, Ordering::Relaxed);
        return;
    }
    // SAFETY: our own live heap; only its owner writes `domains`.
    add_owned(unsafe { &(*h).domains[slot] }, delta as u64);
}

/// Domains open in ring slot `slot`: the sum of every heap's count (see `epoch.rs` for why a sum
/// read while domains end is never too low once the epoch has ended).
pub(crate) fn domain_sum(slot: usize) -> i64 {
    let mut sum = GLOBAL.domains_fallback[slot].load(Ordering::Relaxed);
    // Acquire: pairs with the Release CAS in `push_heap`.
    let mut h = HEAPS.load(Ordering::Acquire);
    while !h.is_null() {
        // SAFETY: heaps are valid forever; `domains` holds only atomics.
        let heap = unsafe { &*h };
        sum = sum.wrapping_add(heap.domains[slot].load(Ordering::Relaxed));
        h = heap.next.load(Ordering::Acquire);
    }
    sum as i64
}

/// Counts a domain of `label` opened (`true`) or ended on this thread.
pub(crate) fn count_domain_label(label: Option<u8>, opened: bool) {
    let Some(i) = label.map(usize::from).filter(|&i| i < MAX_LABELS) else { return };
    let h = current();
    if h.is_null() {
        let g = if opened { &GLOBAL.label_opened_fallback } else { &GLOBAL.label_ended_fallback };
        g[i].fetch_add(1, Ordering::Relaxed);
        return;
    }
    // SAFETY: our own live heap; only its owner writes its counters.
    let s = unsafe { &(*h).stats };
    add_owned(if opened { &s.label_opened[i] } else { &s.label_ended[i] }, 1);
}

impl Heap {
    /// Owner: charges the bytes this thread allocated since the last charge to the current
    /// label (if any), then makes `label` current. Free when neither is labelled.
    #[inline(always)]
    fn charge_label(&self, label: u8) {
        let new = if (label as usize) < MAX_LABELS { label + 1 } else { 0 };
        let cur = self.label.get();
        if cur == 0 && new == 0 {
            return;
        }
        #[cfg(feature = "stats")]
        {
            let total = self.cd.allocated();
            if let Some(bytes) = self.stats.label_bytes.get(usize::from(cur).wrapping_sub(1)) {
                add_owned(bytes, total.wrapping_sub(self.label_mark.get()));
            }
            self.label_mark.set(total);
        }
        self.label.set(new);
    }
}
