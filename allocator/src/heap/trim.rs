//! The idle trim: the free pages inside a heap's slabs go back to the OS once the heap has been
//! idle for a while, even when its thread never calls the allocator again.
//!
//! Why: a slab is purged whole when it empties, but one that keeps a few survivors keeps every
//! page its past objects touched. After a burst, each thread's bins and partly used slabs hold
//! such pages (the HTTP example: 1.7 MB resident for 0.24 MB live, 5 s after the load stopped),
//! and a thread that then waits (a tokio worker parked in `epoll_wait`) never reaches a slow
//! path that could give them back. Only a slab's owner may change its free cells, so another
//! thread (the reclaimer) has to hold the owner off while it purges, without making the owner
//! pay for that on every call.
//!
//! How: a page of a slab whose cells are all free *bitmap* cells can be purged while the owner
//! runs its fast paths, because those take cells only from the head run and the free cache,
//! whose bits are clear, and a free only sets bits (`slab.rs`). Only the slow paths take cells
//! out of the bitmap or give slabs away, so only they are held off:
//! - the owner marks each slow path (outermost only: they nest) in its heap's `seq`: odd while
//!   inside, two plain stores; then it reads `req`, after a compiler fence only;
//! - the trim stores `req`, runs `membarrier(2)` (a full fence on every running thread of the
//!   process: the heavy half of the asymmetric Dekker pair), and reads `seq`. Either the trim
//!   sees the owner inside (odd, or a `seq` that moved since it decided the heap was idle) and
//!   lets go, or the owner sees `req` at its next slow path and waits until the trim is done.
//!
//! A held heap's slabs do not change owner (only its own slow paths give a slab away or take
//! one), so one walk over all segments finds them by their `owner` word. A purged page becomes
//! a *hole* of its slab (`SlabMeta::holes`) and stops counting as resident; the owner clears the
//! bit when it hands out a cell there again. A heap is trimmed once per idle period: after
//! `TSLAB_IDLE_TRIM_MS` (default 1000; 0 turns it off) without a slow path. Where `membarrier`
//! is missing (kernels before 4.14, some seccomp filters, valgrind), nothing is trimmed.
//! (jemalloc's background threads purge their arenas under the arena locks; mimalloc's threads
//! purge their own pages when they call in. With lock-free owner paths we have neither lock nor
//! call, hence the fence pair: the asymmetric fence Linux RCU and folly's hazard pointers use.)

use core::cell::Cell;
use core::sync::atomic::{compiler_fence, AtomicU64, AtomicU8, Ordering};

use super::registry::each_heap;
use super::Heap;
use crate::os::{PageSource, OS};
use crate::segment;
use crate::size_class::SLAB_SIZE;
use crate::slab::{SlabState, MAX_HOLE_PAGES};
use crate::sync::{backoff, SpinLock};

/// `req` values.
const FREE: u8 = 0;
/// The trim wants the heap: the owner's next slow path waits.
const ASKED: u8 = 1;
/// The trim holds the heap: the owner was seen outside its slow paths after the barrier.
const HELD: u8 = 2;

/// Idle time before a heap is trimmed, unless `TSLAB_IDLE_TRIM_MS` says otherwise.
const DEFAULT_IDLE_MS: u64 = 1000;

/// Serialises trim passes (the reclaimer's and [`crate::trim`]'s); the fork handlers take it, so
/// a child never starts with a heap held by a trim that does not exist there.
pub(crate) static TRIM: SpinLock<()> = SpinLock::new(());

/// A heap's part in the trim (in [`Heap`]; all-zero bytes are a heap never trimmed).
#[repr(C)]
pub(crate) struct TrimState {
    /// Written by the owner only: odd while it is in a slow path, +2 per slow path.
    seq: AtomicU64,
    /// Owner-only: how deep the slow paths nest (only the outermost touches `seq`).
    depth: Cell<u32>,
    /// [`FREE`], [`ASKED`] or [`HELD`]: written by the trim (under [`TRIM`]).
    req: AtomicU8,
    /// The trim's own: the `seq` it last saw, since when, and the `seq` + 1 it last trimmed at.
    seen: AtomicU64,
    seen_at: AtomicU64,
    trimmed: AtomicU64,
}

/// The owner inside a slow path, until dropped ([`Heap::slow_path`]).
pub(crate) struct SlowPath<'a>(&'a Heap);

impl Heap {
    /// Marks the owner inside a slow path (one that takes cells out of the bitmap, files slabs or
    /// gives them away) until the guard is dropped; waits first while a trim holds the heap.
    #[inline(always)]
    pub(crate) fn slow_path(&self) -> SlowPath<'_> {
        let t = &self.trim;
        let d = t.depth.get();
        t.depth.set(d + 1);
        if d == 0 {
            let seq = t.seq.load(Ordering::Relaxed);
            t.seq.store(seq.wrapping_add(1), Ordering::Relaxed);
            // The light half of the fence pair: the trim's `membarrier` orders this store before
            // the load below on this CPU, wherever the thread is.
            compiler_fence(Ordering::SeqCst);
            // Acquire: pairs with the trim's Release store of FREE, so its writes (the holes)
            // are visible before the slow path reads them.
            if t.req.load(Ordering::Acquire) != FREE {
                wait_for_trim(t);
            }
        }
        SlowPath(self)
    }
}

impl Drop for SlowPath<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        let t = &self.0.trim;
        let d = t.depth.get() - 1;
        t.depth.set(d);
        if d == 0 {
            // Release: pairs with the trim's Acquire load of `seq`, so a trim that sees the
            // slow path over also sees what it did to the bitmaps and slab owners.
            t.seq.store(t.seq.load(Ordering::Relaxed).wrapping_add(1), Ordering::Release);
        }
    }
}

#[cold]
#[inline(never)]
fn wait_for_trim(t: &TrimState) {
    let mut spins = 0u32;
    while t.req.load(Ordering::Acquire) != FREE {
        backoff(&mut spins);
    }
}

/// The idle time, from `TSLAB_IDLE_TRIM_MS` once (0: off), in ns.
fn idle_ns() -> u64 {
    static IDLE: AtomicU64 = AtomicU64::new(u64::MAX);
    let v = IDLE.load(Ordering::Relaxed);
    if v != u64::MAX {
        return v;
    }
    let ms = crate::os::env_u64(c"TSLAB_IDLE_TRIM_MS").unwrap_or(DEFAULT_IDLE_MS);
    let ns = ms.saturating_mul(1_000_000).min(u64::MAX - 1);
    IDLE.store(ns, Ordering::Relaxed);
    ns
}

/// The reclaimer's pass: trims each heap that has taken no slow path for the idle time and has
/// not been trimmed since.
pub(crate) fn trim_idle(now: u64) {
    let idle = idle_ns();
    if idle == 0 {
        return;
    }
    if let Some(_g) = TRIM.try_lock() {
        pass(now, Some(idle));
    }
}

/// [`crate::trim`]'s pass: trims every heap that is not in a slow path right now.
pub(crate) fn trim_all() {
    let _g = TRIM.lock();
    pass(crate::os::monotonic_ns(), None);
}

/// One pass under [`TRIM`]: holds the heaps due (all, with `idle` None), purges their slabs'
/// free pages in one walk over the segments, lets them go; counts what it did.
fn pass(now: u64, idle: Option<u64>) {
    let page = OS.page_size();
    if SLAB_SIZE / page > MAX_HOLE_PAGES {
        return;
    }
    let mut asked = 0;
    each_heap(|heap| {
        let t = &heap.trim;
        // Acquire: pairs with the Release store that ends a slow path (`SlowPath::drop`).
        let seq = t.seq.load(Ordering::Acquire);
        if seq & 1 != 0 {
            return;
        }
        if seq != t.seen.load(Ordering::Relaxed) {
            // A slow path since the last pass: the idle clock starts now.
            t.seen.store(seq, Ordering::Relaxed);
            t.seen_at.store(now, Ordering::Relaxed);
            if idle.is_some() {
                return;
            }
        }
        if let Some(idle) = idle {
            if now.saturating_sub(t.seen_at.load(Ordering::Relaxed)) < idle
                || t.trimmed.load(Ordering::Relaxed) == seq + 1
            {
                return;
            }
        }
        t.req.store(ASKED, Ordering::Relaxed);
        asked += 1;
    });
    if asked == 0 {
        return;
    }
    // The heavy half: after it, an owner that had not yet read `req` will see ASKED, and one
    // that had is seen by the `seq` loads below (its store of the odd `seq` came first).
    let fenced = crate::os::heavy_barrier();
    let mut held = 0;
    each_heap(|heap| {
        let t = &heap.trim;
        if t.req.load(Ordering::Relaxed) != ASKED {
            return;
        }
        // Acquire: as in the first walk.
        if fenced && t.seq.load(Ordering::Acquire) == t.seen.load(Ordering::Relaxed) {
            t.req.store(HELD, Ordering::Relaxed);
            held += 1;
        } else {
            // In a slow path since (or no barrier): not this time.
            t.req.store(FREE, Ordering::Release);
        }
    });
    let mut bytes_purged = 0u64;
    if held > 0 {
        segment::for_each_slab(|slab| {
            let owner = slab.owner.load(Ordering::Relaxed).cast::<Heap>();
            // SAFETY: a slab's owner is null or a heap, and heaps are valid forever.
            let Some(heap) = (unsafe { owner.as_ref() }) else { return };
            if heap.trim.req.load(Ordering::Relaxed) != HELD || matches!(slab.state(), SlabState::Free) {
                return;
            }
            // SAFETY: the owner is held off its slow paths (HELD, after the barrier and the
            // unchanged `seq` above) until we store FREE below, and the slab is its, formatted:
            // only those slow paths could give it away or take cells out of its bitmap.
            let (bytes, calls, failed) = unsafe { slab.purge_free_pages(page) };
            // One count per call; the bytes go with the first.
            for i in 0..calls {
                segment::count_madvise(slab.class(), true, if i == 0 { bytes } else { 0 });
            }
            for _ in 0..failed {
                segment::count_madvise(slab.class(), false, 0);
            }
            bytes_purged += bytes as u64;
        });
    }
    each_heap(|heap| {
        let t = &heap.trim;
        if t.req.load(Ordering::Relaxed) == HELD {
            t.trimmed.store(t.seen.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
            // Release: pairs with the owner's Acquire load of `req` (its slow path's entry or
            // its wait), publishing the holes written above.
            t.req.store(FREE, Ordering::Release);
        }
    });
    let g = &crate::counters::GLOBAL;
    g.idle_trims.fetch_add(held, Ordering::Relaxed);
    g.idle_trim_bytes.fetch_add(bytes_purged, Ordering::Relaxed);
}
