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
//!
//! Counting for free: each class keeps one word, `pops << 8 | depth`. A pop adds
//! `(1 << 8) - 1` (one more pop, one object fewer), a push adds 1; the word is the stack's
//! depth and also the number of allocations the cache served, so the allocation and free
//! counters of the common free-then-allocate pattern cost no instruction of their own (the
//! per-class counts of `counters.rs` take only what the cache does not serve). The frees the
//! cache took are `pops + depth + flushed - filled`: pushes are user frees, except the cells
//! `Heap::cache_scattered` moves in from a slab (filled), and every pushed object leaves by a
//! pop, a flush or stays (depth). `flushed - filled` is the class's `adjust` word, changed on
//! slow paths only, inside a seqlock (`changes`) so that a snapshot reads each class's word and
//! `adjust` as one state: between the two stores a snapshot would see the frees off by up to
//! a cache's depth. `pops` has 56 bits: at a billion pops a second, 2 years before it wraps.

use core::cell::Cell;
use core::ptr;
use core::sync::atomic::{fence, AtomicU64, Ordering};

use super::{Heap, HEAPS};
use crate::size_class::{SizeClass, CLASS_SIZES, NUM_CLASSES};

/// Objects a class's cache holds at most.
pub(crate) const CACHE_SLOTS: usize = 32;
/// Bytes a class's cache holds at most (fewer slots for large classes), at least 2 objects.
pub(crate) const CACHE_BYTES: usize = 64 * 1024;

/// Most cells one [`Heap::cache_fill_from`] moves into the cache: half a full cache, so that
/// the slow call that does it stays short (the cells it leaves are the next fill's).
const SCATTERED_FILL: u8 = 16;

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
/// owner-only; the words are written by the owner only (Relaxed load + store) and read by
/// snapshots.
#[repr(C)]
pub(crate) struct FreeCache {
    /// Per class `pops << DEPTH_BITS | depth` (see the module docs).
    words: [AtomicU64; NUM_CLASSES],
    /// Per class, wrapping: objects flushed to their slabs minus cells filled in from a slab.
    adjust: [AtomicU64; NUM_CLASSES],
    /// Seqlock over `adjust` and the words' fills and flushes: odd while the owner changes them.
    changes: AtomicU64,
    slots: [[Cell<*mut u8>; CACHE_SLOTS]; NUM_CLASSES],
}

/// Low bits of a class's word that hold the stack's depth (at most `CACHE_SLOTS`).
const DEPTH_BITS: u32 = 8;
/// What a pop adds to a class's word: one pop more, one object fewer.
const POP: u64 = (1 << DEPTH_BITS) - 1;

/// The depth in a class's word.
#[inline(always)]
fn depth(word: u64) -> u8 {
    word as u8
}

impl Heap {
    /// Fast path: the object of `class` freed last, if the cache has one. Owner only.
    #[inline(always)]
    pub(super) fn cache_pop(&self, class: SizeClass) -> Option<*mut u8> {
        let word = class.pick(&self.cache.words);
        let w = word.load(Ordering::Relaxed);
        let n = depth(w);
        if n == 0 {
            return None;
        }
        // Counts the allocation too (the module docs): `n > 0`, so the depth does not borrow.
        word.store(w.wrapping_add(POP), Ordering::Relaxed);
        // `n - 1 < CACHE_SLOTS`: depths never exceed CAPACITY <= CACHE_SLOTS.
        Some(class.pick(&self.cache.slots)[usize::from(n - 1) % CACHE_SLOTS].get())
    }

    /// Fast path: keeps `p`, an object of `class` this heap's thread frees, if the cache has
    /// room. Returns false (nothing done) when it is full. The caller has checked that the heap
    /// owns p's slab and that the slab belongs to the heap's current epoch. Owner only.
    #[inline(always)]
    pub(super) fn cache_push(&self, class: SizeClass, p: *mut u8) -> bool {
        let word = class.pick(&self.cache.words);
        let w = word.load(Ordering::Relaxed);
        let n = depth(w);
        if n >= *class.pick(&CAPACITY) {
            return false;
        }
        let slots = class.pick(&self.cache.slots);
        if n > 0 && slots[usize::from(n - 1) % CACHE_SLOTS].get() == p {
            // The object freed just before is this one: a double free.
            crate::os::invalid_pointer();
        }
        slots[usize::from(n) % CACHE_SLOTS].set(p);
        // `n < CAPACITY <= CACHE_SLOTS < 256`: the depth does not carry into the pops.
        word.store(w.wrapping_add(1), Ordering::Relaxed);
        true
    }

    /// Owner: moves up to [`SCATTERED_FILL`] free cells of `slab` (one of this heap's, of its
    /// current epoch: `Heap::cache_scattered`) into the cache of `class`, within its capacity;
    /// they do not count as frees. The cells are written straight into the slots and the
    /// class's word is updated once for all of them. (A [`Heap::cache_push`] a cell, 32 cells a
    /// fill, made this a 120 ns slow call by median, the largest share of alloc-test's p99.9
    /// tail after the heap profile's samples; 16 cells written in bulk take 90 ns: `suite one
    /// temporal-slab alloc-test` in a `path-trace` build, BENCHMARKS.md.) Cells from the bitmap
    /// are free by construction, so the double-free test of a push has nothing to find.
    pub(super) fn cache_fill_from(&self, class: SizeClass, slab: &crate::slab::SlabMeta) {
        let word = class.pick(&self.cache.words);
        let w = word.load(Ordering::Relaxed);
        let have = depth(w);
        let room = class.pick(&CAPACITY).saturating_sub(have).min(SCATTERED_FILL);
        if room == 0 {
            return;
        }
        let slots = class.pick(&self.cache.slots);
        self.begin_change();
        let mut at = usize::from(have);
        let n = slab.take_cells(u32::from(room), |p| {
            // `at < have + room <= CAPACITY <= CACHE_SLOTS`: take_cells hands out at most `room`.
            slots[at % CACHE_SLOTS].set(p);
            at += 1;
        });
        // `have + n <= CAPACITY < 256`: the depth does not carry into the pops.
        word.store(w + u64::from(n), Ordering::Relaxed);
        self.add_adjust(class, u64::from(n).wrapping_neg());
        self.end_change();
    }

    fn add_adjust(&self, class: SizeClass, n: u64) {
        let adjust = class.pick(&self.cache.adjust);
        adjust.store(adjust.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    }

    /// Owner: opens a change of `adjust` (see the module docs).
    fn begin_change(&self) {
        let seq = &self.cache.changes;
        seq.store(seq.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
        // Release: a snapshot that sees any store of the change also sees the odd sequence.
        fence(Ordering::Release);
    }

    /// Owner: closes the change [`Heap::begin_change`] opened.
    fn end_change(&self) {
        let seq = &self.cache.changes;
        // Release: a snapshot that sees the even sequence sees every store of the change.
        seq.store(seq.load(Ordering::Relaxed).wrapping_add(1), Ordering::Release);
    }

    /// Owner: gives every cached object back to its slab (which may empty it).
    pub(super) fn flush_cache(&self) {
        let _slow = self.slow_path();
        crate::paths::mark(crate::paths::Step::CacheFlush);
        self.begin_change();
        for class in SizeClass::all() {
            let word = class.pick(&self.cache.words);
            let w = word.load(Ordering::Relaxed);
            let n = depth(w);
            if n == 0 {
                continue;
            }
            let slots = class.pick(&self.cache.slots);
            for slot in &slots[..usize::from(n).min(CACHE_SLOTS)] {
                // SAFETY: cached objects are dead objects of slabs this heap owns (pushed by
                // `free_small` after its ownership check; a slab with a cached object counts
                // it in `used`, so it cannot have changed owner since), each cached once.
                unsafe { self.give_back(slot.replace(ptr::null_mut())) };
            }
            word.store(w - u64::from(n), Ordering::Relaxed);
            self.add_adjust(class, u64::from(n));
        }
        self.end_change();
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
            let n = depth(class.pick(&heap.cache.words).load(Ordering::Relaxed));
            if n > 0 {
                f(era, class, u64::from(n));
            }
        }
        h = heap.next.load(Ordering::Acquire);
    }
}

/// Calls `f(class, allocations, frees)` for every heap and class with what its free cache served:
/// the allocations it handed out and the frees it took (see the module docs). Like every
/// snapshot figure racy, but each heap's pair is read as one state of it: the read is retried
/// while the owner fills or flushes its cache, a few times at most (an owner stopped in the
/// middle, say by a debugger, must not stop the snapshot), after which a count may be off by
/// the cache's depth (`stats::raw` keeps the reported counts from going down).
pub(crate) fn for_each_cache_traffic(mut f: impl FnMut(SizeClass, u64, u64)) {
    const TRIES: usize = 64;
    let mut pairs = [(0u64, 0u64); NUM_CLASSES];
    // Acquire: pairs with the Release CAS in `push_heap`.
    let mut h = HEAPS.load(Ordering::Acquire);
    while !h.is_null() {
        // SAFETY: heaps are valid forever; the words are atomics, safe to read from any thread.
        let heap = unsafe { &*h };
        let seq = &heap.cache.changes;
        for _ in 0..TRIES {
            // Acquire: pairs with `end_change`'s Release store.
            let before = seq.load(Ordering::Acquire);
            for (class, pair) in SizeClass::all().zip(&mut pairs) {
                let w = class.pick(&heap.cache.words).load(Ordering::Relaxed);
                let adjust = class.pick(&heap.cache.adjust).load(Ordering::Relaxed);
                let pops = w >> DEPTH_BITS;
                *pair = (pops, pops.wrapping_add(u64::from(depth(w))).wrapping_add(adjust));
            }
            // Acquire: pairs with `begin_change`'s Release fence (the reads above come first).
            fence(Ordering::Acquire);
            if before % 2 == 0 && seq.load(Ordering::Relaxed) == before {
                break;
            }
            core::hint::spin_loop();
        }
        for (class, &(allocs, frees)) in SizeClass::all().zip(&pairs) {
            if allocs != 0 || frees != 0 {
                f(class, allocs, frees);
            }
        }
        h = heap.next.load(Ordering::Acquire);
    }
}
