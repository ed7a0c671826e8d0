//! Freeing a small object: into the free cache, the slab's bitmap (local), or the slab's remote
//! list (another thread's slab), telling the heap profile when the object is a recorded sample.

use core::sync::atomic::Ordering;

use super::{current_if_any, help_parked, Heap, PARKED};
use crate::counters::{bump_owned, GLOBAL};
use crate::slab::{SlabMeta, SlabState, ERA_BITS};

/// The free of `p` in a slab that holds recorded heap-profile samples (sample tags `c`): tells
/// the profile when `p` is one of them.
#[cold]
#[inline(never)]
fn free_in_sampled_slab(s: &SlabMeta, p: *mut u8, c: u16) {
    if SlabMeta::may_be_sample(p, c) && crate::profile::on_free(p) {
        s.forget_sample();
    }
}

/// Whether `p`, in a slab whose era word `word` is not the bare era `era`, may still go to the
/// free cache: its slab is of the current epoch and only its sample tags differ, and `p` is
/// not one of its samples. Tests no more than the word and `p`, and calls nothing, so that
/// the common free keeps its registers.
#[inline(always)]
fn cacheable_sampled(word: u64, era: u64, p: *mut u8) -> bool {
    // Rotated so that the tags are the low 16 bits and any era difference the high 48: both
    // tests then need no 64-bit constant, which the compiler would load on the common path.
    let r = (word ^ era).rotate_left(64 - ERA_BITS);
    let tags = r as u16;
    cfg!(feature = "profile") && tags != 0 && r >> 16 == 0 && !SlabMeta::may_be_sample(p, tags)
}

/// Frees a small object: locally when this thread owns its slab, else remotely.
///
/// # Safety
/// `p` must be a live small object returned by this allocator, in the slab `slab`.
#[inline(always)]
pub(crate) unsafe fn free_small(slab: *mut SlabMeta, p: *mut u8) {
    let h = current_if_any();
    // SAFETY: `slab` is the valid metadata of p's slab (caller).
    let s = unsafe { &*slab };
    if s.owner.load(Ordering::Relaxed) == h.cast() && !h.is_null() {
        // SAFETY: `h` owns the slab (the owner cannot change while p is live) and `h` is this
        // thread's heap (non-null because a live slab always has an owner).
        let heap = unsafe { &*h };
        let class = s.free_class();
        // Only objects of the heap's current epoch are cached: the cache must not place a later
        // phase's objects in an earlier phase's slab. A slab with recorded samples fails this
        // compare too (its era word carries their tags), so the common free tests nothing else.
        let word = s.era_word();
        let era = heap.era.load(Ordering::Relaxed);
        if (word == era || cacheable_sampled(word, era, p)) && heap.cache_push(class, p) {
            // Counted by the push itself (`cache.rs`).
            return;
        }
        // The tags' test as a rotation too (see `cacheable_sampled`).
        if cfg!(feature = "profile") && word.rotate_left(64 - ERA_BITS) as u16 != 0 {
            // Out of line to the end, so that the common path keeps `p` across no call.
            // SAFETY: forwarded: p is a live object of this slab, which `heap` owns.
            unsafe { free_local_sampled(heap, s, p, word) };
            return;
        }
        // SAFETY: p is a live object of this slab, which we own.
        unsafe { free_local(heap, s, p) };
    } else {
        // SAFETY: forwarded caller guarantees.
        unsafe { free_remote(s, p, h) };
    }
}

/// The rest of a local free that the cache did not take.
///
/// # Safety
/// `p` is a live object of slab `s`, which `heap` (this thread's) owns.
#[inline(always)]
unsafe fn free_local(heap: &Heap, s: &SlabMeta, p: *mut u8) {
    crate::paths::mark(crate::paths::Step::FreeSlab);
    // The frees the cache takes count themselves; the others count here.
    bump_owned(s.class().pick(&heap.stats.frees));
    // SAFETY: caller guarantees.
    let used = unsafe { s.push_local(p.cast()) };
    // A bin needs nothing; a full slab now has room; any other slab matters once empty.
    let state = s.state();
    if (used == 0 || state == SlabState::Full) && state != SlabState::Bin {
        heap.after_local_free(s, used);
    }
}

/// A local free in a slab with recorded samples (`word`: its era word, tags non-zero) that
/// `free_small` could not cache at once: tells the profile when `p` is a sample.
///
/// # Safety
/// As [`free_local`].
#[cold]
#[inline(never)]
unsafe fn free_local_sampled(heap: &Heap, s: &SlabMeta, p: *mut u8, word: u64) {
    if SlabMeta::may_be_sample(p, SlabMeta::sample_tags(word)) && crate::profile::on_free(p) {
        s.forget_sample();
    }
    // Then as any free: a sample's cell goes where it would have gone unsampled, so that
    // sampling does not change which cells the cache and the bitmap hold (it did: cells sent to
    // the bitmap instead split its runs, and the bin took the slow path for one cell at a time).
    if SlabMeta::era_of(word) == heap.era.load(Ordering::Relaxed) && heap.cache_push(s.class(), p) {
        return;
    }
    // SAFETY: caller guarantees.
    unsafe { free_local(heap, s, p) };
}

/// A free into another thread's slab: counts it, pushes `p` onto the slab's list, and tells
/// the owner when the push ended the slab's notify mode. Calls nothing on its common path (no
/// sample in the slab, a heap of our own, no announcement), so that it saves no registers.
///
/// # Safety
/// `p` must be a live object of slab `s` that the caller gives up; `h` is this thread's heap
/// or null.
#[inline(never)]
unsafe fn free_remote(s: &SlabMeta, p: *mut u8, h: *mut Heap) {
    crate::paths::mark(crate::paths::Step::FreeRemote);
    let tags = SlabMeta::sample_tags(s.era_word());
    if (cfg!(feature = "profile") && tags != 0) || h.is_null() {
        // SAFETY: forwarded.
        return unsafe { free_remote_rare(s, p, h, tags) };
    }
    // SAFETY: `h` is this thread's own heap; only we write its counters.
    bump_owned(s.free_class().pick(unsafe { &(*h).stats.frees }));
    // SAFETY: forwarded.
    unsafe { push_remote(s, p) };
}

/// [`free_remote`] for a slab with recorded samples, or a thread without a heap of its own.
///
/// # Safety
/// As [`free_remote`]; `tags` are the slab's sample tags.
#[cold]
#[inline(never)]
unsafe fn free_remote_rare(s: &SlabMeta, p: *mut u8, h: *mut Heap, tags: u16) {
    if cfg!(feature = "profile") && tags != 0 {
        free_in_sampled_slab(s, p, tags);
    }
    let c = s.free_class();
    if h.is_null() {
        c.pick(&GLOBAL.orphan_frees).fetch_add(1, Ordering::Relaxed);
    } else {
        // SAFETY: `h` is this thread's own heap; only we write its counters.
        bump_owned(c.pick(unsafe { &(*h).stats.frees }));
    }
    // SAFETY: forwarded.
    unsafe { push_remote(s, p) };
}

/// Pushes `p` onto its slab's list and tells the owner when that ended the slab's notify mode.
///
/// # Safety
/// `p` must be a live object of slab `s` that the caller gives up.
#[inline(always)]
unsafe fn push_remote(s: &SlabMeta, p: *mut u8) {
    // SAFETY: p is a live object of this slab that the caller gives up.
    if let Some(owner) = unsafe { s.remote_push(p.cast()) } {
        // SAFETY: `remote_push` returned the owner: our push queued the slab.
        unsafe { announce(s, owner) };
    }
}

/// Tells `owner` that slab `s` left notify mode.
///
/// # Safety
/// Our free just queued `s`: `SlabMeta::remote_push` returned `owner`.
#[cold]
#[inline(never)]
unsafe fn announce(s: &SlabMeta, owner: *mut crate::slab::OwnerHeap) {
    // SAFETY: heaps are valid forever; the slab's owner is a heap (slab.rs keeps it opaque).
    let owner = unsafe { &*owner.cast::<Heap>() };
    // SAFETY: the free took the slab out of notify mode and queued it; `owner` owns it.
    unsafe { owner.push_pending(s) };
    // SeqCst: see `push_pending`.
    if owner.state.load(Ordering::SeqCst) == PARKED {
        help_parked(owner);
    }
}
