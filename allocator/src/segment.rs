//! Segments: 4 MiB aligned mappings that hold 63 slabs and, in their first 64 KiB, the header
//! with every slab's metadata and free-cell bitmap. Also the global slab pool and the pointer -> header lookup.
//!
//! Every pointer the allocator hands out lies in `(H, H + SEGMENT_SIZE]` for a header `H` that is
//! `SEGMENT_SIZE`-aligned, so `header_of(p) = (p - 1) & !(SEGMENT_SIZE - 1)` finds it with no
//! per-object header. Small-object segments ([`KIND_SMALL`]) keep slab metadata there; large
//! objects ([`KIND_LARGE`], see `large.rs`) keep their mapping's size there. The header's magic
//! word validates the lookup; a pointer that does not lead to a valid header is a caller bug and
//! aborts (never silent corruption).
//!
//! Segments are never unmapped: their slabs are purged instead, so a segment's cost when idle is
//! its header pages (8 KiB of metadata, plus the bitmap rows its slabs' classes used: 8 KiB more
//! for classes of 128 B and up, 64 KiB for the smallest, per 4 MiB of address space).

use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};

use crate::counters::GLOBAL;
use crate::os::{PageSource, OS};
use crate::size_class::{SizeClass, NUM_CLASSES, SLAB_SHIFT};
use crate::slab::{SlabMeta, SlabState};
use crate::sync::SpinLock;

pub(crate) use crate::size_class::{SEGMENT_SIZE, SLABS_PER_SEGMENT};

// The slab metadata array sits where `slab::slab_start` expects it, and the free-cell bitmaps
// (`slab.rs`) right after it.
const _: () = assert!(core::mem::offset_of!(SegmentHeader, slabs) == crate::slab::SLABS_OFFSET);
const _: () = assert!(core::mem::size_of::<SegmentHeader>() <= crate::slab::BITMAPS_OFFSET);

pub(crate) const MAGIC: u32 = 0x7e5b_a11c;
pub(crate) const KIND_SMALL: u32 = 1;
pub(crate) const KIND_LARGE: u32 = 2;

/// `magic` and `kind` of a small-segment header read as one little-endian u64: free checks
/// both with a single compare.
pub(crate) const TAG_SMALL: u64 = ((KIND_SMALL as u64) << 32) | MAGIC as u64;

/// The first words of every header, small or large.
#[repr(C)]
pub(crate) struct Common {
    pub(crate) magic: u32,
    pub(crate) kind: u32,
}

/// Header of a small-object segment.
#[repr(C)]
pub(crate) struct SegmentHeader {
    pub(crate) common: Common,
    /// Next segment in the list of all segments (push-only, read by snapshots).
    pub(crate) next: AtomicPtr<SegmentHeader>,
    /// The most bitmap rows a slab of this segment has used (see `note_bitmap_rows`).
    bitmap_rows: AtomicU64,
    _pad: [u64; 5],
    pub(crate) slabs: [SlabMeta; SLABS_PER_SEGMENT],
}

/// Finds the header of any pointer the allocator returned.
#[inline]
pub(crate) fn header_of(p: *mut u8) -> *mut Common {
    p.wrapping_sub(1).map_addr(|a| a & !(SEGMENT_SIZE - 1)).cast()
}

/// The metadata of the slab holding `p`, a pointer into a small-object segment.
///
/// # Safety
/// `header` must be the valid [`KIND_SMALL`] header of `p`.
#[inline]
pub(crate) unsafe fn slab_of(header: *mut Common, p: *mut u8) -> *mut SlabMeta {
    let index = (p.addr() - header.addr()) >> SLAB_SHIFT;
    let seg = header.cast::<SegmentHeader>();
    // SAFETY: the caller guarantees `seg` is a live segment header; index < SLABS_PER_SEGMENT
    // because p lies within the segment.
    unsafe { ptr::addr_of_mut!((*seg).slabs).cast::<SlabMeta>().add(index) }
}

/// Head of the list of all small-object segments.
pub(crate) static SEGMENTS: AtomicPtr<SegmentHeader> = AtomicPtr::new(ptr::null_mut());
/// Number of purged slabs in the global pool.
pub(crate) static POOL_SLABS: AtomicUsize = AtomicUsize::new(0);
/// Number of empty, unpurged ("warm") slabs in the global pool.
pub(crate) static WARM_SLABS: AtomicUsize = AtomicUsize::new(0);
/// Number of slabs ever carved from segments.
pub(crate) static CARVED_SLABS: AtomicU64 = AtomicU64::new(0);

/// The floor of the empty-slab reserve (1024 x 64 KiB = 64 MiB): what a program that never marks
/// a phase keeps unpurged (resident only where touched, purged after 0.5 s unused). Large enough
/// that threads which repeatedly fill and free some tens of MiB reuse warm pages instead of
/// faulting them back in (a cache of 4 slabs cost 8-14x on such batches; 256 slabs refaulted
/// mimalloc's test-stress 153,000 pages a run at `8 50 50`, 1024 slabs 43,000).
pub const WARM_MAX: usize = 1024;
/// The most the reserve ever keeps (8192 x 64 KiB = 512 MiB of address space, resident only
/// where touched), however big the phases.
pub const RESERVE_CAP: usize = 8192;
/// An empty slab unused for this long is purged by the next decay pass (the reclaimer thread
/// runs one every 100 ms, and every slab acquisition runs one too), so an idle program's reserve
/// drains within about 0.6 s, oldest slabs first.
pub const WARM_DECAY_NS: u64 = 500_000_000;

/// Recent phase size in slabs: the largest number of slabs a closed epoch took from the pool,
/// decayed by a quarter at each close, so that a run of smaller phases shrinks it.
static PHASE_PEAK: AtomicUsize = AtomicUsize::new(0);

/// Records the size of a phase that just closed (slabs it took from the pool).
pub(crate) fn note_phase(slabs: u64) {
    let peak = PHASE_PEAK.load(Ordering::Relaxed);
    let slabs = slabs.min(RESERVE_CAP as u64) as usize;
    // Racy read-modify-write on purpose: two closes at once may lose one update; the figure is a
    // sizing hint, and the next close corrects it.
    PHASE_PEAK.store(slabs.max(peak - peak / 4), Ordering::Relaxed);
}

/// How many empty slabs the reserve keeps unpurged now: the floor, or the recent phase size
/// (plus the floor), so that the next phase of the same size faults nothing back in.
pub(crate) fn reserve_limit() -> usize {
    (WARM_MAX + PHASE_PEAK.load(Ordering::Relaxed)).min(RESERVE_CAP)
}

pub(crate) struct Pool {
    /// Purged empty slabs, linked through `next`.
    free: *mut SlabMeta,
    /// The reserve: empty unpurged slabs, a stack per size class they were last used for (newest
    /// first, linked through `next`); each keeps its class, the era it was used in (`era`) and its
    /// emptied time (ns, `os::coarse_ns`) in the address of `prev`, which no list uses while the
    /// slab is here. By class, so that a slab goes back to a class with the same pattern of
    /// touched pages: a slab of a class that filled it, reused by one that holds a few objects,
    /// keeps 64 KiB resident for them, and the other way round faults in pages that a slab of
    /// the class had resident (together 1.8 MB, 10% of peak RSS, on the suite's alloc-test).
    warm: [*mut SlabMeta; NUM_CLASSES],
    warm_count: usize,
    /// The segment being carved and its next uncarved slot.
    carving: *mut SegmentHeader,
    next_slot: usize,
}

// SAFETY: the raw pointers refer to segment headers, which live forever and are shared by
// design; the pool is only touched under its lock.
unsafe impl Send for Pool {}

impl Pool {
    /// Puts the empty slab (unlinked, owned by the caller) in the reserve, stamped with the time,
    /// if the reserve has room. Returns false, leaving the slab to the caller, when it is full.
    fn keep(&mut self, slab: &SlabMeta) -> bool {
        if self.warm_count >= reserve_limit() {
            return false;
        }
        slab.set_state(SlabState::Empty);
        slab.prev.set(ptr::without_provenance_mut(crate::os::coarse_ns() as usize));
        let head = slab.class().pick_mut(&mut self.warm);
        slab.next.set(*head);
        *head = ptr::from_ref(slab).cast_mut();
        self.warm_count += 1;
        WARM_SLABS.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// Takes a reserve slab, of `class` if there is one, else of the nearest class that has one
    /// (neighbouring classes touch their slabs alike).
    fn take_warm(&mut self, class: SizeClass) -> Option<NonNull<SlabMeta>> {
        if self.warm_count == 0 {
            return None;
        }
        let c = class.index();
        let mut nearest = (0..NUM_CLASSES).flat_map(|d| [c.checked_add(d), c.checked_sub(d + 1)]).flatten();
        // `get`: no index past the table (and no panic branch under the pool lock).
        let k = nearest.find(|&k| self.warm.get(k).is_some_and(|p| !p.is_null()))?;
        let slot = SizeClass(k as u8).pick_mut(&mut self.warm);
        let s = NonNull::new(*slot)?;
        // SAFETY: slabs in the reserve are valid metadata, touched only under this lock.
        *slot = unsafe { s.as_ref() }.next.get();
        self.warm_count -= 1;
        Some(s)
    }
}

pub(crate) static POOL: SpinLock<Pool> = SpinLock::new(Pool {
    free: ptr::null_mut(),
    warm: [ptr::null_mut(); NUM_CLASSES],
    warm_count: 0,
    carving: ptr::null_mut(),
    next_slot: SLABS_PER_SEGMENT,
});

/// Takes an empty slab for `class`: a warm one (pages resident, reused without faults; last used
/// by `class` where the reserve has one), else a purged one, else one carved from a segment
/// (mapping a new segment when needed). `None` when the OS refuses memory. The slab's `zeroed`
/// flag says whether its unused bytes read as zero.
pub(crate) fn acquire_slab(class: SizeClass) -> Option<NonNull<SlabMeta>> {
    let mut pool = POOL.lock();
    if let Some(s) = pool.take_warm(class) {
        // SAFETY: slabs in the reserve are valid metadata, touched only under this lock; `prev`
        // held the emptied time, not a link.
        unsafe { s.as_ref() }.prev.set(ptr::null_mut());
        WARM_SLABS.fetch_sub(1, Ordering::Relaxed);
        return Some(s);
    }
    if let Some(s) = NonNull::new(pool.free) {
        // SAFETY: as above.
        pool.free = unsafe { s.as_ref() }.next.get();
        POOL_SLABS.fetch_sub(1, Ordering::Relaxed);
        return Some(s);
    }
    if pool.next_slot == SLABS_PER_SEGMENT {
        let seg = OS.map(SEGMENT_SIZE, SEGMENT_SIZE)?.cast::<SegmentHeader>().as_ptr();
        // SAFETY: a fresh zeroed mapping of SEGMENT_SIZE bytes; the header fits in slot 0 and all
        // zero bytes are a valid SegmentHeader (null pointers, zero atomics, Free slabs).
        unsafe {
            (*seg).common.magic = MAGIC;
            (*seg).common.kind = KIND_SMALL;
            for slab in &(*seg).slabs {
                slab.set_zeroed(true);
            }
        }
        push_segment(seg);
        GLOBAL.segments_mapped.fetch_add(1, Ordering::Relaxed);
        pool.carving = seg;
        pool.next_slot = 1;
    }
    let slot = pool.next_slot;
    pool.next_slot += 1;
    crate::paths::mark(crate::paths::Step::Carve);
    CARVED_SLABS.fetch_add(1, Ordering::Relaxed);
    // SAFETY: `carving` is a live segment header and slot < SLABS_PER_SEGMENT.
    Some(unsafe { NonNull::from(&(*pool.carving).slabs[slot]) })
}

/// [`acquire_slab`] for a heap that keeps few objects a slab (the fallback heap's heap-profile
/// samples): a slab whose pages a previous user left resident is purged first, so that the
/// slab costs only the pages its new objects touch. (A warm slab reused as it is would keep a
/// whole slab resident for one sample: about 1 MB over the suite's alloc-test.)
pub(crate) fn acquire_cold_slab(class: SizeClass) -> Option<NonNull<SlabMeta>> {
    let s = acquire_slab(class)?;
    // SAFETY: an empty slab from the pool: nobody else refers to it.
    let slab = unsafe { s.as_ref() };
    if !slab.zeroed() || slab.bump() != 0 {
        purge(slab);
    }
    Some(s)
}

/// Notes that `slab` (just formatted) uses its class's bitmap rows: the header pages up to the
/// highest row any slab of the segment ever used may be resident.
pub(crate) fn note_bitmap_rows(slab: &SlabMeta) {
    let seg = header_of(slab.start()).cast::<SegmentHeader>();
    // SAFETY: a slab's metadata lies in its segment's live header (slots 1.. only, so
    // `header_of(start)` is that header).
    let rows = unsafe { &(*seg).bitmap_rows };
    let w = u64::from(slab.words());
    if rows.load(Ordering::Relaxed) < w {
        rows.fetch_max(w, Ordering::Relaxed);
    }
}

/// Bytes of segment headers that may be resident: each header's metadata array, plus its bitmap
/// rows up to the highest a slab of it used (header pages are never purged).
pub(crate) fn header_resident_bytes(page: usize) -> u64 {
    let mut total = 0u64;
    // Acquire: pairs with the Release CAS in `push_segment`.
    let mut seg = SEGMENTS.load(Ordering::Acquire);
    while !seg.is_null() {
        // SAFETY: published segments are valid forever.
        let s = unsafe { &*seg };
        let rows = s.bitmap_rows.load(Ordering::Relaxed) as usize;
        let end = crate::slab::BITMAPS_OFFSET + rows.min(crate::slab::BITMAP_WORDS) * crate::slab::BITMAP_ROW_BYTES;
        total += end.next_multiple_of(page).min(crate::size_class::SLAB_SIZE.max(page)) as u64;
        seg = s.next.load(Ordering::Acquire);
    }
    total
}

fn push_segment(seg: *mut SegmentHeader) {
    let mut head = SEGMENTS.load(Ordering::Relaxed);
    loop {
        // SAFETY: `seg` is ours and not yet published.
        unsafe { (*seg).next.store(head, Ordering::Relaxed) };
        // Release: pairs with the Acquire load in `for_each_slab`, so readers see the header.
        match SEGMENTS.compare_exchange_weak(head, seg, Ordering::Release, Ordering::Relaxed) {
            Ok(_) => return,
            Err(h) => head = h,
        }
    }
}

/// Returns an empty slab to the pool: kept unpurged in the reserve while it has room
/// ([`reserve_limit`]), otherwise purged first. Returns `None` when it was kept, else the bytes
/// purged. The caller owns the slab and has removed it from every heap list.
pub(crate) fn release_slab(slab: &SlabMeta) -> Option<usize> {
    debug_assert_eq!(slab.used(), 0);
    debug_assert!(!slab.queued(), "a slab released while on its owner's pending stack");
    slab.owner.store(ptr::null_mut(), Ordering::Relaxed);
    slab.remote.store(0, Ordering::Relaxed);
    slab.next.set(ptr::null_mut());
    slab.prev.set(ptr::null_mut());
    if POOL.lock().keep(slab) {
        return None;
    }
    let purged = purge(slab);
    let mut pool = POOL.lock();
    slab.next.set(pool.free);
    pool.free = ptr::from_ref(slab).cast_mut();
    POOL_SLABS.fetch_add(1, Ordering::Relaxed);
    Some(purged)
}

/// Purges an empty slab's touched pages; resets it to an unformatted, zeroed slab (state Free).
fn purge(slab: &SlabMeta) -> usize {
    let page = OS.page_size();
    let len = slab.touched_bytes(page);
    let resident = slab.resident_bytes(page);
    slab.forget_holes();
    if len > 0 {
        // SAFETY: the slab's pages belong to a segment of ours and hold no live object.
        let ok = unsafe { OS.purge(NonNull::new_unchecked(slab.start()), len) };
        count_madvise(slab.class(), ok, resident);
        slab.set_zeroed(ok);
    }
    slab.clear_free();
    slab.set_bump(0);
    slab.set_state(SlabState::Free);
    if len > 0 && slab.zeroed() {
        resident
    } else {
        0
    }
}

/// Counts one `madvise` of `bytes` for a slab of `class`, globally and per class.
pub(crate) fn count_madvise(class: crate::size_class::SizeClass, ok: bool, bytes: usize) {
    if ok {
        GLOBAL.madvise_calls.fetch_add(1, Ordering::Relaxed);
        GLOBAL.madvise_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        class.pick(&GLOBAL.class_madvise_calls).fetch_add(1, Ordering::Relaxed);
        class.pick(&GLOBAL.class_madvise_bytes).fetch_add(bytes as u64, Ordering::Relaxed);
    } else {
        GLOBAL.madvise_failures.fetch_add(1, Ordering::Relaxed);
        class.pick(&GLOBAL.class_madvise_failures).fetch_add(1, Ordering::Relaxed);
    }
}

/// Purges reserve slabs unused for `max_age_ns` or more (all of them with 0). Returns the bytes
/// purged.
pub(crate) fn decay_warm(now_ns: u64, max_age_ns: u64) -> usize {
    purge_where(|slab| now_ns.saturating_sub(slab.prev.get().addr() as u64) >= max_age_ns)
}

/// Calls `f` with each reserve slab last used in epoch `era` (its class and touched bytes), under
/// the pool lock: the close telemetry of the slabs an epoch emptied before it closed.
pub(crate) fn for_each_reserve_of(era: u64, mut f: impl FnMut(&SlabMeta)) {
    let pool = POOL.lock();
    for &head in &pool.warm {
        let mut p = head;
        while !p.is_null() {
            // SAFETY: reserve slabs are valid metadata, touched only under this lock.
            let slab = unsafe { &*p };
            if slab.era() == era {
                f(slab);
            }
            p = slab.next.get();
        }
    }
}

/// Purges the reserve slabs last used in epoch `era` (an explicit close-and-purge). Returns the
/// bytes purged.
pub(crate) fn purge_reserve_of(era: u64) -> usize {
    purge_where(|slab| slab.era() == era)
}

/// Purges the reserve slabs for which `old` is true and moves them to the purged list.
fn purge_where(old: impl Fn(&SlabMeta) -> bool) -> usize {
    let mut total = 0;
    loop {
        // At most 32 per lock hold; the purges run outside the lock.
        let mut batch: [*mut SlabMeta; 32] = [ptr::null_mut(); 32];
        let mut n = 0;
        {
            let mut pool = POOL.lock();
            for c in 0..NUM_CLASSES {
                let mut prev: *mut SlabMeta = ptr::null_mut();
                let mut p = pool.warm[c];
                while !p.is_null() && n < batch.len() {
                    // SAFETY: reserve slabs are valid metadata, touched only under this lock.
                    let slab = unsafe { &*p };
                    let next = slab.next.get();
                    if old(slab) {
                        if prev.is_null() {
                            pool.warm[c] = next;
                        } else {
                            // SAFETY: as above.
                            unsafe { (*prev).next.set(next) };
                        }
                        pool.warm_count -= 1;
                        WARM_SLABS.fetch_sub(1, Ordering::Relaxed);
                        batch[n] = p;
                        n += 1;
                    } else {
                        prev = p;
                    }
                    p = next;
                }
            }
        }
        if n == 0 {
            return total;
        }
        for &p in &batch[..n] {
            // SAFETY: unlinked from the reserve above: we own it now.
            let slab = unsafe { &*p };
            slab.prev.set(ptr::null_mut());
            slab.next.set(ptr::null_mut());
            total += purge(slab);
            let mut pool = POOL.lock();
            slab.next.set(pool.free);
            pool.free = p;
            POOL_SLABS.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Calls `f` on every carved slab of every segment (snapshots). Reads only atomics.
pub(crate) fn for_each_slab(mut f: impl FnMut(&SlabMeta)) {
    // Acquire: pairs with the Release CAS in `push_segment`.
    let mut seg = SEGMENTS.load(Ordering::Acquire);
    while !seg.is_null() {
        // SAFETY: published segments are valid forever.
        let s = unsafe { &*seg };
        for slab in &s.slabs[1..] {
            f(slab);
        }
        seg = s.next.load(Ordering::Acquire);
    }
}
