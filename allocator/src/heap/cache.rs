//! A heap's cache of recently freed objects: per size class, a small stack of objects its
//! thread freed into its own slabs of its current epoch, handed out again first (LIFO: the
//! object freed last, still in the CPU cache, is the next one allocated).
//!
//! Pushing and popping touch neither the object nor its slab's metadata: a cached object still
//! counts in its slab's `used`, as if it had never been freed. That is what makes the common
//! free-then-allocate pattern cost a few instructions on hot lines only; the slab's free cells
//! (bitmap and head run, `slab.rs`) take what the cache does not hold. (tcmalloc's and
//! jemalloc's thread caches do the same job; ours holds only objects of the heap's current
//! epoch, so no object of a later phase is placed in an earlier phase's slab through it.)
//!
//! Bounds: at most [`CACHE_SLOTS`] objects and [`CACHE_BYTES`] bytes per class. The cache is
//! emptied into the slabs whenever the heap follows an epoch change (`refresh`, run by every
//! advance, close and domain switch) and when the thread exits, so an ended phase's slabs can
//! empty; until then a thread keeps at most that much freed memory (and the slabs it lies in)
//! per class.

use core::cell::Cell;
use core::ptr;
use core::sync::atomic::{AtomicU8, Ordering};

use super::{Heap, HEAPS};
use crate::size_class::{SizeClass, CLASS_SIZES, NUM_CLASSES};

/// Objects a class's cache holds at most.
pub(crate) const CACHE_SLOTS: usize = 32;
/// Bytes a class's cache holds at most (fewer slots for large classes), at least 2 objects.
pub(crate) const CACHE_BYTES: usize = 64 * 1024;

/// Slots per class: `CACHE_SLOTS`, fewer where they would exceed `CACHE_BYTES`.
const CAPACITY: [u8; NUM_CLASSES] = build_capacity();

const fn build_capacity() -> [u8; NUM_CLASSES] {
    let mut cap = [0u8; NUM_CLASSES];
    let mut i = 0;
    while i < NUM_CLASSES {
        let n = CACHE_BYTES / CLASS_SIZES[i] as usize;
        cap[i] = if n > CACHE_SLOTS {
            CACHE_SLOTS as u8
        } else if n < 2 {
            2
        } else {
            n as u8
        };
        i += 1;
    }
    cap
}

/// The per-class stacks (part of [`Heap`]; all-zero bytes are empty caches). The slots are
/// owner-only; the counts are written by the owner only (Relaxed load + store) and read by
/// snapshots.
#[repr(C)]
pub(crate) struct FreeCache {
    counts: [AtomicU8; NUM_CLASSES],
    slots: [[Cell<*mut u8>; CACHE_SLOTS]; NUM_CLASSES],
}

impl Heap {
    /// Fast path: the object of `class` freed last, if the cache has one. Owner only.
    #[inline(always)]
    pub(super) fn cache_pop(&self, class: SizeClass) -> Option<*mut u8> {
        let count = class.pick(&self.cache.counts);
        let n = count.load(Ordering::Relaxed);
        if n == 0 {
            return None;
        }
        count.store(n - 1, Ordering::Relaxed);
        // `n - 1 < CACHE_SLOTS`: counts never exceed CAPACITY <= CACHE_SLOTS.
        Some(class.pick(&self.cache.slots)[usize::from(n - 1) % CACHE_SLOTS].get())
    }

    /// Fast path: keeps `p`, an object of `class` this heap's thread frees, if the cache has
    /// room. Returns false (nothing done) when it is full. The caller has checked that the heap
    /// owns p's slab and that the slab belongs to the heap's current epoch. Owner only.
    #[inline(always)]
    pub(super) fn cache_push(&self, class: SizeClass, p: *mut u8) -> bool {
        let count = class.pick(&self.cache.counts);
        let n = count.load(Ordering::Relaxed);
        if n >= *class.pick(&CAPACITY) {
            return false;
        }
        let slots = class.pick(&self.cache.slots);
        if n > 0 && slots[usize::from(n - 1) % CACHE_SLOTS].get() == p {
            // The object freed just before is this one: a double free.
            crate::os::invalid_pointer();
        }
        slots[usize::from(n) % CACHE_SLOTS].set(p);
        count.store(n + 1, Ordering::Relaxed);
        true
    }

    /// Owner: gives every cached object back to its slab (which may empty it).
    /// Free slots in the cache of `class`.
    pub(super) fn cache_room(&self, class: SizeClass) -> u32 {
        u32::from(class.pick(&CAPACITY).saturating_sub(class.pick(&self.cache.counts).load(Ordering::Relaxed)))
    }

    pub(super) fn flush_cache(&self) {
        for class in SizeClass::all() {
            let count = class.pick(&self.cache.counts);
            let slots = class.pick(&self.cache.slots);
            for slot in &slots[..usize::from(count.load(Ordering::Relaxed)).min(CACHE_SLOTS)] {
                // SAFETY: cached objects are dead objects of slabs this heap owns (pushed by
                // `free_small` after its ownership check; a slab with a cached object counts
                // it in `used`, so it cannot have changed owner since), each cached once.
                unsafe { self.give_back(slot.replace(ptr::null_mut())) };
            }
            count.store(0, Ordering::Relaxed);
        }
    }
}

/// Calls `f(era, class, objects)` for every heap's cached objects of each class (snapshots
/// subtract them from their epoch's live figures: a cached object is dead but still counted in
/// its slab's `used`). Every object a heap caches lies in a slab of the heap's current era: the
/// cache takes only those, and is emptied before the heap's era changes. Racy by nature, like
/// every snapshot figure.
pub(crate) fn for_each_cached(mut f: impl FnMut(u64, SizeClass, u64)) {
    // Acquire: pairs with the Release CAS in `push_heap`.
    let mut h = HEAPS.load(Ordering::Acquire);
    while !h.is_null() {
        // SAFETY: heaps are valid forever; `era` and the counts are atomics, safe to read from
        // any thread.
        let heap = unsafe { &*h };
        let era = heap.era.load(Ordering::Relaxed);
        for class in SizeClass::all() {
            let n = class.pick(&heap.cache.counts).load(Ordering::Relaxed);
            if n > 0 {
                f(era, class, u64::from(n));
            }
        }
        h = heap.next.load(Ordering::Acquire);
    }
}
