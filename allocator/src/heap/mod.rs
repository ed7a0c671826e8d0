//! Thread heaps: the per-thread caches of slabs, the fast paths, remote frees, parking.
//!
//! Each thread that allocates gets a [`Heap`] (adopting a parked one when it can). Per size class
//! it first hands out what its thread freed last (the free cache, `cache.rs`). A heap owns
//! its slabs: per size class one *bin* (the slab it allocates from, in the heap's current epoch),
//! partial lists per (epoch slot, class) and, per class, a recycling list of slabs of closed
//! epochs that still hold survivors and have free room. A slab whose epoch closes is never
//! pinned by its survivors: its free cells serve later allocations of its class once the
//! heap's current epoch has no partly used slab of that class left (the order is bin, the
//! epoch's own partial slabs, recycled slabs, then a slab from the pool), and it is re-stamped
//! with the epoch it now serves. Empty slabs go back to the global pool at once (kept unpurged
//! in its reserve, bounded and decaying, see `segment.rs`). Only the owning thread touches
//! these; other threads reach a heap only through its atomic `pending` stack (see `slab.rs`).
//!
//! Each heap also keeps, per ring slot, its count of domains opened minus ended (read by
//! `epoch.rs` to decide when an ended epoch can close), and per label the domains and bytes of
//! its thread (`counters.rs`).
//!
//! Life cycle: a heap is LIVE while its thread runs. When the thread exits, a thread-local guard
//! *parks* it: pending frees are applied, bins retired, empty slabs returned to the global
//! pool, and the heap waits, with its partly used slabs, to be adopted by the next new thread.
//! While parked, a thread that frees into it claims it briefly to apply the free, so the memory
//! of exited threads still drains and is purged. Heaps are never unmapped, so a pointer to one
//! stays valid forever.
//!
//! Allocation works before the thread's heap exists (during the guard's registration) and after
//! it is gone (in later thread-local destructors) through a shared fallback heap under a spin
//! lock; frees then take the remote path.

use core::cell::Cell;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicPtr, AtomicU64, AtomicU8, Ordering};

use crate::countdown::Countdown;
use crate::counters::{bump_owned, HeapStats, GLOBAL};
use crate::os::{PageSource, OS};
use crate::paths::{mark, Step};
use crate::profile::Sampler;
use crate::ring::{is_active, routes_to, slot_of, Slot, EPOCH_SLOTS, GEN};
use crate::segment::{self, header_of, slab_of, Common};
use crate::size_class::{SizeClass, NUM_CLASSES};
use crate::slab::{SlabMeta, SlabState};
use crate::sync::SpinLock;

mod cache;
mod domains;
mod epochs;
mod free;
mod registry;
mod tls;
mod trim;

pub(crate) use cache::{for_each_cache_traffic, for_each_cached};
pub(crate) use domains::{
    add_domain, count_domain_label, domain_sum, pack, scopes, set_domain, unpack, Scopes, MAX_DEPTH, NO_LABEL_ID,
};
pub(crate) use epochs::sweep_after_close;
pub(crate) use free::free_small;
pub(crate) use registry::{current, current_if_any, for_each_heap, help_all_parked, help_parked, ARENA};
use registry::{new_heap, HEAPS};
pub(crate) use trim::{trim_all, trim_idle, TRIM};

/// A bin whose next run holds fewer cells than this after a refill from its bitmap has
/// scattered free cells: they go to the free cache at once (`Heap::cache_scattered`).
const SCATTERED_RUN: u32 = 4;

const LIVE: u8 = 0;
const PARKED: u8 = 1;
const CLAIMED: u8 = 2;

type List = Cell<*mut SlabMeta>;

/// A thread's allocation state. All-zero bytes are a valid fresh heap.
#[repr(C)]
pub(crate) struct Heap {
    /// Owner-only: the slab each class allocates from (null: none yet).
    bins: [List; NUM_CLASSES],
    /// Owner-only: per class, objects freed recently into this heap's slabs (`cache.rs`).
    cache: cache::FreeCache,
    /// Owner-only: the epoch generation this heap last synchronised with, packed with its byte
    /// countdown to the next sample point (`countdown.rs`): the fast path's one test.
    cd: Countdown,
    /// Shared (written by the owner only, Relaxed store; read by snapshots for the free cache):
    /// the era new allocations go to (0: not yet chosen).
    era: AtomicU64,
    /// Owner-only: per class, slabs of closed epochs with live objects and free room.
    recycle: [List; NUM_CLASSES],
    /// Owner-only: the label of the innermost domain the thread is in, plus one (0: none), and
    /// the thread's allocated bytes when that label was last charged.
    label: Cell<u8>,
    label_mark: Cell<u64>,
    /// Owner-only: slabs with room, per epoch slot and class (notify mode).
    partial: [[List; NUM_CLASSES]; EPOCH_SLOTS],
    /// Owner-only: the `close_seq` of each ring slot last swept.
    seen_close: [Cell<u64>; EPOCH_SLOTS],
    /// Shared (written by the owner only, Relaxed load + store; summed by `domain_sum`): per ring
    /// slot, domains opened minus domains ended on this thread, as a wrapping i64.
    domains: [AtomicU64; EPOCH_SLOTS],
    /// Shared: this heap's slabs that other threads freed into while they were in notify mode,
    /// each pushed once by the free that ended that mode (`slab.rs`), linked by `pending_next`.
    pending: AtomicPtr<SlabMeta>,
    /// Shared: LIVE, PARKED or CLAIMED.
    state: AtomicU8,
    /// Shared: next heap in the list of all heaps (push-only).
    next: AtomicPtr<Heap>,
    /// Counters, written by the owner only.
    pub(crate) stats: HeapStats,
    /// Owner-only: the heap profile's sampling state (the countdown itself is `cd`).
    sampler: Sampler,
    /// Owner-only: takes its new slabs purged (`segment::acquire_cold_slab`): set for the
    /// fallback heap, whose slabs each hold a few objects.
    cold: Cell<bool>,
    /// The idle trim's handshake with the owner's slow paths (`trim.rs`).
    trim: trim::TrimState,
}

impl Heap {
    /// Counts one allocation of `class` in its per-class count. (Its requested bytes, which
    /// per-label figures are charged from, `charge_label`, and which the heap profile samples by,
    /// count down in `cd` on the way in: the fast path's test, or [`Heap::count_bytes`].)
    #[inline(always)]
    fn count_alloc(&self, class: SizeClass) {
        bump_owned(class.pick(&self.stats.allocs));
    }

    /// Counts the `size` requested bytes of an allocation that did not come through
    /// [`Heap::try_alloc_fast`] (a heap's first, served by the slow path). Owner only.
    #[inline]
    pub(crate) fn count_bytes(&self, size: usize) {
        self.cd.count(size as u64);
    }

    /// Fast path: the object of `class` freed last (the free cache), else one from the head run
    /// of the current bin. `None` means "take the slow path", with the allocation's bytes
    /// already counted: the epoch generation changed, the count reached a sample point (or the
    /// end of its chunk), or the cache and the bin's run are empty. Returns the object and
    /// whether its bytes are known to be zero. Owner only. `size` is the requested size: what
    /// the countdown counts (it is in a register already, where the class's object size was one
    /// more load from a table: about 1% of the instructions of the suite's bare loops), and what
    /// a sample's weight is computed from, so the profile's estimates are unbiased.
    #[inline(always)]
    pub(crate) fn try_alloc_fast(&self, class: SizeClass, size: usize) -> Option<(NonNull<u8>, bool)> {
        const KEY_AT: usize = core::mem::offset_of!(Heap, cd) + Countdown::KEY_OFFSET;
        let base = ptr::from_ref(self).cast::<u8>();
        if !self.cd.count_and_test::<KEY_AT>(base, size as u64, GEN.load(Ordering::Relaxed)) {
            return None;
        }
        if let Some(p) = self.cache_pop(class) {
            // Counted by the pop itself (`cache.rs`).
            // SAFETY: cached objects are objects this allocator handed out: non-null.
            return Some((unsafe { NonNull::new_unchecked(p) }, false));
        }
        // SAFETY: bins hold slabs this heap owns; their metadata is valid forever.
        let got = unsafe { class.pick(&self.bins).get().as_ref() }?.take_head()?;
        mark(Step::FastBin);
        self.count_alloc(class);
        Some(got)
    }

    /// Samples large object `p` (`size` bytes requested) for the heap profile when its bytes
    /// reach the sample point. They are not in the allocated-bytes count (that is small
    /// objects'), so they move the sample point instead. (Small objects: the fast path tests
    /// its countdown itself, the slow path with [`Heap::sample_after_slow`].) Owner only.
    #[inline(always)]
    pub(crate) fn maybe_sample_large(&self, p: *mut u8, size: usize) {
        #[cfg(feature = "profile")]
        if self.cd.advance(size as u64) {
            self.sample(p, size, false);
        }
        #[cfg(not(feature = "profile"))]
        let _ = (p, size);
    }

    /// The slow path's first half of sampling: keeps the requested size in the heap, so that
    /// the slow path needs no register for it across its calls (most slow paths sample nothing):
    /// the fast path notes it as it leaves for the slow path.
    #[inline(always)]
    pub(crate) fn note_slow_size(&self, size: usize) {
        #[cfg(feature = "profile")]
        self.sampler.note_size(size);
        #[cfg(not(feature = "profile"))]
        let _ = size;
    }

    /// The slow path's sampling, before it allocates: when this allocation (of `class`, the
    /// size noted) is the sample point and will be recorded, serves it from the shared fallback
    /// heap instead of this heap's slabs, samples it and returns it; `None`: allocate as usual
    /// ([`Heap::sample_after_slow`] then deals with the point).
    ///
    /// Sampled objects live apart, as tcmalloc gives each its own span. A slab holding a sample
    /// carries its tag in the era word, so every free in that slab fails the common free's
    /// compare: among the thread's own objects that was about 1 free in 60 (a 64 KiB slab per
    /// 2 MiB sampled), each a mispredicted branch (larson x1: +80,000 mispredictions, +2%
    /// time). In the fallback heap's slabs only the samples' own frees see a tag, and they are
    /// remote frees there anyway. The sample still records this heap's epoch and label.
    #[inline(always)]
    pub(crate) fn alloc_sampled(&self, class: SizeClass) -> Option<(NonNull<u8>, bool)> {
        #[cfg(feature = "profile")]
        if self.cd.crossed() {
            return self.alloc_sampled_apart(class);
        }
        let _ = class;
        None
    }

    #[cold]
    #[inline(never)]
    #[cfg(feature = "profile")]
    fn alloc_sampled_apart(&self, class: SizeClass) -> Option<(NonNull<u8>, bool)> {
        if !self.cd.reached() || !self.sampler.will_record() {
            return None;
        }
        // In this heap's epoch, as it would have been here: a sample is often the one object
        // that pins a phase (the leak a user looks for), and must keep pinning it.
        if self.cd.stale(GEN.load(Ordering::Relaxed)) {
            self.refresh();
        }
        let got = alloc_fallback_in(class, self.era.load(Ordering::Relaxed))?;
        self.sample(got.0.as_ptr(), self.sampler.noted_size(), true);
        Some(got)
    }

    /// The slow path's second half: when its allocation (`p`, of the size noted) crossed the
    /// end of the countdown's chunk, moves on to the next chunk, or samples `p` if that was the
    /// sample point.
    #[inline(always)]
    pub(crate) fn sample_after_slow(&self, p: *mut u8) {
        if self.cd.crossed() {
            self.after_crossing(p);
        }
    }

    #[cold]
    #[inline(never)]
    fn after_crossing(&self, p: *mut u8) {
        if !self.cd.reached() {
            return;
        }
        #[cfg(feature = "profile")]
        if p.is_null() {
            // Out of memory: the next allocation takes the point.
            self.cd.set_gap(0);
        } else {
            self.sample(p, self.sampler.noted_size(), true);
        }
        // No profiler: the countdown only counts bytes; a point as sampling-off draws it.
        #[cfg(not(feature = "profile"))]
        {
            let _ = p;
            self.cd.set_gap(crate::profile::OFF_GAP);
        }
    }

    #[cold]
    #[cfg_attr(not(feature = "profile"), allow(dead_code))]
    fn sample(&self, p: *mut u8, size: usize, small: bool) {
        mark(Step::Sample);
        let era = self.era.load(Ordering::Relaxed);
        if self.sampler.on_due(&self.cd, p, size, era, self.label.get()) && small {
            // SAFETY: p is a small object we just allocated: its segment header and slab
            // metadata are valid.
            let slab = unsafe { &*slab_of(header_of(p), p) };
            slab.note_sampled(p);
        }
    }

    /// The bin's free cells are scattered (its next run is short): moves as many as the free
    /// cache of `class` holds into it, so that the next allocations take the fast path. Cached
    /// objects must be of the heap's current epoch (see `free_small`), as the bin's are.
    #[cold]
    fn cache_scattered(&self, class: SizeClass, slab: &SlabMeta) {
        if slab.era() != self.era.load(Ordering::Relaxed) {
            return;
        }
        self.cache_fill_from(class, slab);
    }

    /// Slow path: refreshes the epoch, refills the bin. Returns the object and whether it is
    /// known to be zeroed; `None` when the OS refuses memory. Owner only.
    #[cold]
    pub(crate) fn alloc_slow(&self, class: SizeClass) -> Option<(NonNull<u8>, bool)> {
        // Held off while the idle trim holds the heap (`trim.rs`): this path takes cells out of
        // bitmaps and files and gives away slabs.
        let _slow = self.slow_path();
        let c = class.index();
        let mut epoch_changed = false;
        if self.cd.stale(GEN.load(Ordering::Relaxed)) {
            mark(Step::Refresh);
            epoch_changed = self.refresh();
        } else if let Some(p) = self.cache_pop(class) {
            // Not a slow-path event either: the fast path left for the end of a countdown chunk
            // (a sample point) with objects in the cache. The object it would have taken, so
            // that sampling changes nothing of which cells are used. (Counted by the pop.)
            // SAFETY: cached objects are objects this allocator handed out: non-null.
            return Some((unsafe { NonNull::new_unchecked(p) }, false));
        } else if let Some(slab) = NonNull::new(self.bins[c].get()) {
            // Not a slow-path event: the bin's next run or never-used cells serve the object.
            // SAFETY: bins hold slabs this heap owns.
            let slab = unsafe { slab.as_ref() };
            if let Some(got) = slab.pop() {
                mark(Step::NextRun);
                if slab.head_shorter_than(SCATTERED_RUN) {
                    mark(Step::Scattered);
                    self.cache_scattered(class, slab);
                }
                self.count_alloc(class);
                return Some(got);
            }
        }
        bump_owned(&self.stats.slow_path_hits[c]);
        if epoch_changed {
            bump_owned(&self.stats.slow_epoch_closed[c]);
        }
        let got = self.alloc_from_bin(class).or_else(|| {
            self.drain_pending();
            self.alloc_from_partial(class).or_else(|| self.alloc_from_recycle(class))
        });
        let got = match got {
            Some(x) => x,
            None => {
                bump_owned(&self.stats.slow_cache_miss[c]);
                mark(Step::NewSlab);
                let slab =
                    if self.cold.get() { segment::acquire_cold_slab(class) } else { segment::acquire_slab(class) }?;
                GLOBAL.new_slabs[c].fetch_add(1, Ordering::Relaxed);
                // SAFETY: an empty slab from the pool: nobody else refers to it.
                let slab = unsafe { slab.as_ref() };
                slab.format(class, self.era.load(Ordering::Relaxed), ptr::from_ref(self).cast_mut().cast());
                segment::note_bitmap_rows(slab);
                if let Some(slot) = Slot::holding(self.era.load(Ordering::Relaxed)) {
                    slot.slabs_started.fetch_add(1, Ordering::Relaxed);
                }
                self.bins[c].set(ptr::from_ref(slab).cast_mut());
                let got = slab.pop()?;
                self.count_alloc(class);
                GLOBAL.slab_bytes_taken.fetch_add(crate::size_class::SLAB_SIZE as u64, Ordering::Relaxed);
                return Some(got);
            }
        };
        self.count_alloc(class);
        Some(got)
    }

    /// Pops from the bin, collecting remote frees if needed; retires an exhausted bin.
    fn alloc_from_bin(&self, class: SizeClass) -> Option<(NonNull<u8>, bool)> {
        let slab = self.bins[class.index()].get();
        if slab.is_null() {
            return None;
        }
        // SAFETY: bins hold slabs this heap owns.
        let slab = unsafe { &*slab };
        if let Some(x) = slab.pop() {
            return Some(x);
        }
        if slab.collect_remote() > 0 {
            mark(Step::BinRemote);
            return slab.pop();
        }
        self.retire_bin(class);
        None
    }

    fn alloc_from_partial(&self, class: SizeClass) -> Option<(NonNull<u8>, bool)> {
        let era = self.era.load(Ordering::Relaxed);
        let head = &self.partial[slot_of(era)][class.index()];
        let slab = head.get();
        if slab.is_null() {
            return None;
        }
        // SAFETY: partial lists hold slabs this heap owns.
        let slab = unsafe { &*slab };
        debug_assert_eq!(slab.era(), era);
        mark(Step::Partial);
        self.take_as_bin(head, slab, class)
    }

    /// Unlinks `slab` (owned, on the list `head`) and makes it the bin of `class` (direct mode).
    fn take_as_bin(&self, head: &List, slab: &SlabMeta, class: SizeClass) -> Option<(NonNull<u8>, bool)> {
        unlink(head, slab);
        slab.leave_notify();
        slab.set_state(SlabState::Bin);
        self.bins[class.index()].set(ptr::from_ref(slab).cast_mut());
        let got = slab.pop();
        if got.is_none() {
            // Lists only hold slabs with room (`exhausted` is exact), but never leave a bin
            // that cannot serve in place: the caller would replace it and lose the slab.
            self.retire_bin(class);
        }
        got
    }

    /// Moves the bin of `class` out of the allocation position (notify mode). Returns whether
    /// the bin was empty and went back to the pool, or `None` when there was no bin.
    fn retire_bin(&self, class: SizeClass) -> Option<bool> {
        let slab = self.bins[class.index()].replace(ptr::null_mut());
        if slab.is_null() {
            return None;
        }
        // SAFETY: the bin was ours.
        let slab = unsafe { &*slab };
        slab.enter_notify();
        if slab.used() == 0 {
            self.slab_emptied(slab);
            return Some(true);
        }
        if slab.exhausted() {
            slab.set_state(SlabState::Full);
        } else {
            self.file_partial(slab);
        }
        Some(false)
    }

    /// Puts a non-empty slab with room on the right list: its epoch's partial list if threads
    /// still allocate in that epoch, else its class's recycling list (a closed epoch, or a time
    /// bucket the reclaimer rotated out: no allocation goes there any more, see
    /// `ring::routes_to`, so its free room serves the current epoch).
    fn file_partial(&self, slab: &SlabMeta) {
        let era = slab.era();
        if routes_to(era) {
            slab.set_state(SlabState::Partial);
            push(&self.partial[slot_of(era)][slab.class().index()], slab);
        } else {
            self.file_recycle(slab);
        }
    }

    /// Puts a slab of a closed epoch that still holds objects on its class's recycling list.
    fn file_recycle(&self, slab: &SlabMeta) {
        slab.set_state(SlabState::Recycle);
        push(&self.recycle[slab.class().index()], slab);
    }

    /// Takes a recycled slab of `class` as the bin: its free cells now serve the heap's current
    /// epoch, whose era it takes (its survivors are counted there from now on).
    fn alloc_from_recycle(&self, class: SizeClass) -> Option<(NonNull<u8>, bool)> {
        let head = &self.recycle[class.index()];
        // SAFETY: recycling lists hold slabs this heap owns.
        let slab = unsafe { head.get().as_ref() }?;
        slab.set_era(self.era.load(Ordering::Relaxed));
        mark(Step::Recycle);
        GLOBAL.class_recycled_slabs[class.index()].fetch_add(1, Ordering::Relaxed);
        self.take_as_bin(head, slab, class)
    }

    /// Owner: a local free (or an applied pending free) made `slab` empty or gave a full slab
    /// room.
    #[cold]
    pub(crate) fn after_local_free(&self, slab: &SlabMeta, used: u32) {
        let _slow = self.slow_path();
        mark(Step::SlabState);
        match slab.state() {
            SlabState::Bin => {}
            SlabState::Full => {
                if used == 0 {
                    self.slab_emptied(slab);
                } else {
                    self.file_partial(slab);
                }
            }
            SlabState::Partial => {
                if used == 0 {
                    let era = slab.era();
                    unlink(&self.partial[slot_of(era)][slab.class().index()], slab);
                    self.slab_emptied(slab);
                }
            }
            SlabState::Recycle => {
                if used == 0 {
                    unlink(&self.recycle[slab.class().index()], slab);
                    self.slab_emptied(slab);
                }
            }
            SlabState::Free | SlabState::Empty => crate::os::invalid_pointer(),
        }
    }

    /// Owner: an empty slab that is on no list goes back to the pool, unpurged in its reserve
    /// while that has room (see `segment.rs`), else purged at once. When its epoch no longer
    /// takes allocations, the bytes kept count as deferred for that epoch's close telemetry.
    fn slab_emptied(&self, slab: &SlabMeta) -> usize {
        if slab.queued() {
            // Still on our pending stack (its list was collected some other way): given back
            // when `drain_pending` takes it off, so that no one links it meanwhile. Full: on no
            // list, and what `after_local_free` files as empty then.
            slab.set_state(SlabState::Full);
            return 0;
        }
        mark(Step::SlabEmptied);
        let c = slab.class();
        let era = slab.era();
        let resident = slab.resident_bytes(OS.page_size()) as u64;
        let released = segment::release_slab(slab);
        // Recycled: kept unpurged for reuse; overflowed: purged at once.
        bump_owned(c.pick(if released.is_none() { &self.stats.empty_recycled } else { &self.stats.empty_overflowed }));
        if let Some(slot) = Slot::holding(era).filter(|_| !is_active(era)) {
            match released {
                Some(purged) => slot.purged_bytes.fetch_add(purged as u64, Ordering::Relaxed),
                None => slot.deferred_bytes.fetch_add(resident, Ordering::Relaxed),
            };
        }
        released.unwrap_or(0)
    }

    /// Owner: applies every pending remote free: takes each slab off the `pending` stack,
    /// collects its list and files it by what it has become (a full slab with room, an empty
    /// one), back in notify mode unless it is a bin.
    pub(crate) fn drain_pending(&self) {
        if self.pending.load(Ordering::Relaxed).is_null() {
            return;
        }
        let _slow = self.slow_path();
        // Acquire: pairs with the SeqCst (Release) CAS in `push_pending`, making each slab's
        // `pending_next` and list visible.
        mark(Step::Pending);
        let mut p = self.pending.swap(ptr::null_mut(), Ordering::Acquire);
        while !p.is_null() {
            // SAFETY: pending slabs were pushed by `push_pending`, each a slab this heap owns (it
            // holds the announcing free's object, so it cannot have changed owner), on the stack
            // once (`QUEUED`).
            let slab = unsafe { &*p };
            p = slab.pending_next.load(Ordering::Relaxed);
            slab.unqueue();
            if slab.state() == SlabState::Bin {
                // A bin collects its list when its cells run out.
                continue;
            }
            // Collects everything, then arms notify mode again: a later free tells us anew.
            slab.enter_notify();
            if !slab.exhausted() {
                self.after_local_free(slab, slab.used());
            }
        }
    }

    /// Owner: returns the dead object `p` to its slab and files the slab if that changed what it
    /// is (emptied, or a full slab now with room). For pending and cached frees.
    ///
    /// # Safety
    /// `p` must be a dead object of a slab this heap owns, returned once.
    pub(crate) unsafe fn give_back(&self, p: *mut u8) {
        // SAFETY: `p` is ours (caller), so its header and slab metadata are valid.
        let slab = unsafe { &*slab_of(header_of(p), p) };
        // SAFETY: forwarded caller guarantee.
        let used = unsafe { slab.push_local(p.cast()) };
        if slab.state() != SlabState::Bin {
            self.after_local_free(slab, used);
        }
    }

    /// Any thread: pushes `slab` onto this heap's pending stack.
    ///
    /// # Safety
    /// `slab` must be a slab of this heap that the caller's free has just marked [`QUEUED`]
    /// (`SlabMeta::remote_push` returned this heap), so that no one else links it.
    ///
    /// [`QUEUED`]: crate::slab::QUEUED
    pub(crate) unsafe fn push_pending(&self, slab: &SlabMeta) {
        let s = ptr::from_ref(slab).cast_mut();
        let mut head = self.pending.load(Ordering::Relaxed);
        loop {
            slab.pending_next.store(head, Ordering::Relaxed);
            // SeqCst (includes Release, pairing with the Acquire swap in `drain_pending`): with the
            // SeqCst load of `state` in `free_remote` and the SeqCst store/load pair in `park`,
            // either the freer sees PARKED and helps, or the parker sees the pending slab.
            match self.pending.compare_exchange_weak(head, s, Ordering::SeqCst, Ordering::Relaxed) {
                Ok(_) => return,
                Err(h) => head = h,
            }
        }
    }

    /// Owner: hands the heap back when its thread exits.
    fn park(&self) {
        {
            // Ended before the heap is PARKED: from then on another thread may adopt it, and
            // the slow-path marks (`trim.rs`) are its.
            let _slow = self.slow_path();
            self.flush_cache();
            self.drain_pending();
            for class in SizeClass::all() {
                self.retire_bin(class);
            }
        }
        // SeqCst (includes Release, pairing with the Acquire CAS in `adopt_or_create` /
        // `help_parked`); see `push_pending` for the store-buffer pattern this closes.
        self.state.store(PARKED, Ordering::SeqCst);
        if !self.pending.load(Ordering::SeqCst).is_null() {
            help_parked(self);
        }
    }
}

fn push(head: &List, slab: &SlabMeta) {
    let s = ptr::from_ref(slab).cast_mut();
    let old = head.get();
    slab.prev.set(ptr::null_mut());
    slab.next.set(old);
    if !old.is_null() {
        // SAFETY: list members are slabs owned by the same heap.
        unsafe { (*old).prev.set(s) };
    }
    head.set(s);
}

fn unlink(head: &List, slab: &SlabMeta) {
    let (prev, next) = (slab.prev.get(), slab.next.get());
    if prev.is_null() {
        head.set(next);
    } else {
        // SAFETY: list members are slabs owned by the same heap.
        unsafe { (*prev).next.set(next) };
    }
    if !next.is_null() {
        // SAFETY: as above.
        unsafe { (*next).prev.set(prev) };
    }
    slab.prev.set(ptr::null_mut());
    slab.next.set(ptr::null_mut());
}

/// The heap of threads that cannot have their own (see the module docs), used under its lock.
pub(crate) struct FallbackHeap(*mut Heap);
// SAFETY: the heap pointer is only dereferenced under the FALLBACK lock.
unsafe impl Send for FallbackHeap {}
pub(crate) static FALLBACK: SpinLock<FallbackHeap> = SpinLock::new(FallbackHeap(ptr::null_mut()));

/// Allocates one object of `class` without a thread heap.
#[cold]
pub(crate) fn alloc_fallback(class: SizeClass) -> Option<(NonNull<u8>, bool)> {
    alloc_fallback_in(class, 0)
}

/// [`alloc_fallback`] in epoch `era` (0: whichever the fallback heap is in): the fallback heap
/// follows the calling thread's epoch (its refresh reads the caller's domain, as the caller's
/// own heap's does), so a thread in `era` gets an object of `era`.
#[cfg_attr(not(feature = "profile"), allow(dead_code))]
pub(crate) fn alloc_fallback_in(class: SizeClass, era: u64) -> Option<(NonNull<u8>, bool)> {
    // The caller (lib.rs) has started the reclaimer before this lock: starting it creates a
    // thread, and the C library allocates for it (its TLS vector); when `malloc` is ours (the C
    // ABI), that nested call comes back here and would spin on the lock we hold.
    let mut fb = FALLBACK.lock();
    if fb.0.is_null() {
        fb.0 = new_heap();
        if fb.0.is_null() {
            return None;
        }
        // SAFETY: a heap just made, ours under the lock.
        unsafe { &*fb.0 }.cold.set(true);
    }
    // SAFETY: we hold the lock, so we are the fallback heap's only user: its owner.
    let heap = unsafe { &*fb.0 };
    if era != 0 && heap.era.load(Ordering::Relaxed) != era {
        heap.cd.force_stale();
    }
    // Lowest cells first: the fallback heap holds few objects at a time (heap-profile samples,
    // threads without a heap), every one freed remotely (no thread's own heap is this one).
    // Collecting those frees first and taking the lowest free cell keeps each of its bins to
    // the pages its live objects need; taking the next cell would touch the whole slab over a
    // run (about 1.4 MB of RSS on the suite's alloc-test, one slab a sampled class).
    if !heap.cd.stale(GEN.load(Ordering::Relaxed)) {
        // SAFETY: bins hold slabs this heap owns (we are its owner while we hold the lock).
        if let Some(bin) = unsafe { class.pick(&heap.bins).get().as_ref() } {
            // `take_lowest` takes a cell out of the bitmap: the trim's hold-off applies.
            let _slow = heap.slow_path();
            bin.collect_remote();
            if let Some(got) = bin.take_lowest() {
                heap.count_alloc(class);
                return Some(got);
            }
        }
    }
    heap.alloc_slow(class)
}

/// The heap header's kind check and slab lookup for a pointer; aborts on an invalid pointer.
///
/// # Safety
/// `p` must have been returned by this allocator and be live.
#[inline(always)]
pub(crate) unsafe fn header(p: *mut u8) -> *mut Common {
    let h = header_of(p);
    // SAFETY: every pointer we return has a valid header at `header_of(p)` (segment.rs).
    if unsafe { (*h).magic } != segment::MAGIC {
        crate::os::invalid_pointer();
    }
    h
}
