//! Slabs: the metadata of one 64 KiB run of same-sized objects, its free cells and its states.
//!
//! A slab's metadata ([`SlabMeta`], one cache line) lives in its segment's header, never in the
//! slab's own pages, so purging the pages (`madvise`) never re-faults them: the C reference's bug.
//!
//! Free cells are found without touching the objects' memory: a free-cell bitmap (one bit a
//! cell, in the segment header next to the metadata, see [`BITMAPS_OFFSET`]) plus a *head run*
//! of neighbouring free cells taken out of it, kept in the metadata as a pair of offsets
//! `[cur, end)`. Allocating takes the cell at `cur` and bumps it; when the head run is empty the
//! next run of set bits (up to one 64-bit word) becomes the head run. A local free that lands
//! just before or just after the head run widens it (so the cell just freed is the next one
//! handed out, still hot); any other free sets its bit. Neither path reads or writes a freed
//! cell, so a cold cell is first touched by its user's own writes, which the CPU overlaps, and
//! never by a dependent load of a free-list link, which it cannot overlap (each load waits for
//! the one before): a program whose live set outgrows the caches allocates at the speed of its
//! stores, not of memory latency. Freed cells merge by themselves (bits side by side), so runs
//! never fragment with age, which intrusive lists of runs would. (The idea is Immix's bump
//! allocation into free lines and jemalloc's slab bitmaps, at cell granularity.)
//!
//! Ownership: a slab in use belongs to one thread heap (`owner`). Only the owner touches the
//! non-atomic fields (`head`, the bitmap, `next`, `prev`, ...). Other threads free into it through
//! the atomic `remote` word, a list of freed objects plus two flags:
//! - in *direct* mode (no [`NOTIFY`]) a remote free pushes the object onto the `remote` list.
//!   A bin's owner collects the whole list with one swap when its local cells run out;
//! - in *notify* mode ([`NOTIFY`] set, only with an empty list: the slab is full, parked in a
//!   partial list or on a recycling list, where its owner does not look) the first remote free
//!   pushes the object all the same, clears [`NOTIFY`] and tells the owner, by pushing the slab
//!   once onto the owner heap's `pending` stack ([`QUEUED`] marks it there). The frees after it
//!   see direct mode and only push onto the slab's list, which the owner collects when it
//!   takes the slab off its stack, then puts the slab back in notify mode (if it is not a bin).
//!
//! So every remote free is one compare-and-swap on its slab's own line (the shared one, apart
//! from the owner's, see `free_class`), and a heap's `pending` line is written once per slab
//! and round of notifications, not once per free: producer/consumer threads do not pass one
//! line back and forth (mimalloc's thread-free lists and delayed free do the same).
//!
//! The mode changes only by CAS (the owner's from an empty list, `0` -> `NOTIFY`; a freer's from
//! `NOTIFY`), so an object is never left on the list of a slab that the owner no longer looks
//! at. An object on a list is still counted in `used`, so a slab can only be found empty, and
//! change owner, once every remote free into it has been seen by its owner; and a slab still
//! [`QUEUED`] is not given back (`Heap::slab_emptied`) until its owner has taken it off the stack.
//!
//! Fields read by snapshots from other threads (`used`, `class`, `state`, `era`) are atomics that
//! the owner updates with Relaxed load + store: no read-modify-write on the fast path.

use core::cell::Cell;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};

use crate::size_class::{SizeClass, MAX_CELLS, SLAB_SIZE};
use crate::size_class::{SEGMENT_SIZE, SLABS_PER_SEGMENT, SLAB_SHIFT};

mod holes;
mod remote;
pub(crate) use holes::MAX_HOLE_PAGES;

/// The heap that owns a slab, opaque here: heaps live above slabs (`heap/mod.rs` casts).
pub(crate) enum OwnerHeap {}

/// Offset of the slab metadata array in its segment's header (checked in `segment.rs`).
pub(crate) const SLABS_OFFSET: usize = 64;

/// Bit of [`SlabMeta::remote`]: the slab is in notify mode (its list is then empty).
pub(crate) const NOTIFY: usize = 1;
/// Bit of [`SlabMeta::remote`]: the slab is on its owner heap's `pending` stack.
pub(crate) const QUEUED: usize = 2;
/// The flag bits of [`SlabMeta::remote`]; the rest is the list (objects are 8-byte aligned).
const FLAGS: usize = NOTIFY | QUEUED;

/// A freed object on a remote list or a heap's pending stack: its first word links to the next.
#[repr(C)]
pub(crate) struct FreeObj {
    pub(crate) next: *mut FreeObj,
}

/// Offset of the free-cell bitmaps in a segment's header: after the metadata array (checked in
/// `segment.rs`). The bitmaps of the segment's 63 slabs are interleaved by word: row `w` holds
/// word `w` of every slab (slab slot `i` at column `i - 1`), so a segment whose slabs use few
/// words (every class from 128 B up uses at most 8) touches only the first rows' pages.
pub(crate) const BITMAPS_OFFSET: usize = SLABS_OFFSET + SLABS_PER_SEGMENT * core::mem::size_of::<SlabMeta>();
/// Bytes of one bitmap row: one word for each slab of a segment.
pub(crate) const BITMAP_ROW_BYTES: usize = (SLABS_PER_SEGMENT - 1) * 8;
/// Rows (words per slab): [`MAX_CELLS`] bits.
pub(crate) const BITMAP_WORDS: usize = MAX_CELLS / 64;
// The bitmaps fill the header's slab slot, no more.
const _: () = assert!(BITMAPS_OFFSET + BITMAP_WORDS * BITMAP_ROW_BYTES <= SLAB_SIZE);

/// `[cur, end)` packed into one word: `cur` in the low half, `end` in the high half.
#[inline(always)]
fn pack(cur: u32, end: u32) -> u64 {
    u64::from(cur) | (u64::from(end) << 32)
}

/// Where a slab is in its life. Stored in [`SlabMeta::state`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum SlabState {
    /// In the global pool (purged) or never carved.
    Free = 0,
    /// A heap's allocation bin for its class (direct mode).
    Bin = 1,
    /// On a heap's partial list: has free objects, not being allocated from (notify mode).
    Partial = 2,
    /// No free object known to the owner (notify mode).
    Full = 3,
    /// Empty, kept warm in a heap's bounded empty cache.
    Empty = 4,
    /// Has live objects and free room but belongs to a closed epoch: on the heap's recycling list
    /// for its class, from which later epochs take it up again (notify mode).
    Recycle = 5,
}

impl SlabState {
    pub(crate) fn from_u8(v: u8) -> SlabState {
        match v {
            1 => SlabState::Bin,
            2 => SlabState::Partial,
            3 => SlabState::Full,
            4 => SlabState::Empty,
            5 => SlabState::Recycle,
            _ => SlabState::Free,
        }
    }
}

/// Metadata of one slab: two cache lines, the shared one and the owner's (see `free_class`), so
/// remote frees into different slabs never share a line, and remote frees into one slab do not
/// share one with its owner's allocations.
#[repr(C, align(64))]
pub(crate) struct SlabMeta {
    /// Shared: the heap that owns this slab (null while Free).
    pub(crate) owner: AtomicPtr<OwnerHeap>,
    /// Shared: remote free list head, plus the [`NOTIFY`] and [`QUEUED`] bits.
    pub(crate) remote: AtomicUsize,
    /// Shared: the next slab on the owner heap's `pending` stack, while [`QUEUED`].
    pub(crate) pending_next: AtomicPtr<SlabMeta>,
    /// The epoch (era) the slab's objects were allocated in, in the low [`ERA_BITS`] bits
    /// ([`SlabMeta::era`]), and in the high 16 bits which of its objects are recorded
    /// heap-profile samples (`profile`): 0 none (the common case), a [`SlabMeta::sample_tag`] for
    /// exactly one (only its free looks in the profile table), or [`SAMPLES_COUNTED`] | n for n
    /// of them (every free looks, until they are freed). Sharing the word makes the test free
    /// where it matters: a local free compares the whole word with the heap's era before it
    /// caches the object, so a tagged slab fails that compare and takes the path that tests the
    /// tag. The allocating thread adds tags (the owner; for samples, which live in the fallback
    /// heap's slabs, the sampling thread), any freeing thread removes them (atomic
    /// read-modify-writes; the era is re-stamped the same way).
    era: AtomicU64,
    /// Size class index, for frees (a copy of `class`, on this line with the fields a free
    /// from another thread reads, so that it never reads the owner's line).
    free_class: AtomicU8,
    /// The fields above are what other threads read and write (remote frees); the ones below
    /// are the owner's, written on every allocation: a line each, so that remote frees and the
    /// owner's allocations in one slab do not pass one cache line back and forth.
    _shared_line: [u8; 64 - 33],
    /// Owner-only: links in the owner heap's lists (partial or empty cache), or the pool's list.
    pub(crate) next: Cell<*mut SlabMeta>,
    pub(crate) prev: Cell<*mut SlabMeta>,
    /// Objects handed out and not yet returned to the owner (remote frees count until seen).
    pub(crate) used: AtomicU32,
    /// Byte offset past the highest cell ever handed out (high-water mark of touched bytes).
    /// Written by the owner only (Relaxed store); read by snapshots.
    pub(crate) bump: AtomicU32,
    /// Pages of the slab (bit `i`: the page at `i * page size` from its start) that the idle trim
    /// purged while they held only bitmap cells ([`SlabMeta::purge_free_pages`]): not resident
    /// until a cell in them is handed out again, which clears the bit. Written by the trim while
    /// the owner is held off its slow paths and by the owner on those paths; read by snapshots.
    holes: AtomicU32,
    /// Owner-only: the head run of free cells, `[cur, end)` as byte offsets ([`pack`]); empty
    /// when `cur >= end`. Its cells' bits are clear.
    head: Cell<u64>,
    /// Owner-only: the first bitmap word that may have a bit set (no word before it has one).
    scan: Cell<u16>,
    /// Size class index.
    pub(crate) class: AtomicU8,
    /// [`SlabState`] as u8.
    pub(crate) state: AtomicU8,
    /// The bytes past `bump` are known to be zero (fresh or purged pages). Written by the owner
    /// only; read by snapshots.
    pub(crate) zeroed: AtomicBool,
    /// Owner-only: every cell of the head run is known to be zero (it lay past `bump` in a
    /// zeroed slab when it was taken, and no free has widened it since).
    fresh: Cell<bool>,
}

const _: () = assert!(core::mem::size_of::<SlabMeta>() == 128);
const _: () = assert!(core::mem::offset_of!(SlabMeta, next) == 64);

/// Bits of [`SlabMeta::era`]'s word that hold the era (2^48 advances: 9 years at one a
/// microsecond); the 16 above hold the sample tags.
pub(crate) const ERA_BITS: u32 = 48;
const ERA_MASK: u64 = (1 << ERA_BITS) - 1;

/// The tag bit that makes the other 15 a count of recorded samples.
pub(crate) const SAMPLES_COUNTED: u16 = 0x8000;
// Every tag (an 8-byte cell offset + 1 in a slab) is below the bit, and so is every count.
const _: () = assert!((1usize << (SLAB_SHIFT - 3)) < SAMPLES_COUNTED as usize);

impl SlabMeta {
    /// The era the slab's objects were allocated in.
    #[inline]
    pub(crate) fn era(&self) -> u64 {
        Self::era_of(self.era.load(Ordering::Relaxed))
    }

    /// The era and sample tags in one load (see [`SlabMeta::era`]'s field): equal to an era only
    /// when the slab holds no recorded sample.
    #[inline(always)]
    pub(crate) fn era_word(&self) -> u64 {
        self.era.load(Ordering::Relaxed)
    }

    /// The sample tags of an [`SlabMeta::era_word`] (0: no recorded sample in the slab).
    #[inline(always)]
    pub(crate) const fn sample_tags(word: u64) -> u16 {
        (word >> ERA_BITS) as u16
    }

    /// The era in an [`SlabMeta::era_word`].
    #[inline(always)]
    pub(crate) const fn era_of(word: u64) -> u64 {
        word & ERA_MASK
    }

    /// Owner: moves the slab's objects (and its survivors) to `era`, keeping its sample tags.
    pub(crate) fn set_era(&self, era: u64) {
        debug_assert!(era <= ERA_MASK);
        let _ = self.era.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |w| Some((w & !ERA_MASK) | era));
    }

    /// The tag of object `p` of this slab in the sample tags: its 8-byte offset + 1 (cells are
    /// at least 8 bytes, so no two objects share one). Slabs are aligned to their size (as
    /// `link_free` uses too), so the offset is the address's low bits.
    #[inline(always)]
    fn sample_tag(p: *mut u8) -> u16 {
        (((p.addr() & (SLAB_SIZE - 1)) >> 3) + 1) as u16
    }

    /// Applies `f` to the sample tags, atomically with the era's re-stamps and other tags.
    fn update_tags(&self, f: impl Fn(u16) -> u16) {
        let _ = self.era.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |w| {
            Some((w & ERA_MASK) | (u64::from(f(Self::sample_tags(w))) << ERA_BITS))
        });
    }

    /// Object `p` of this slab, not yet handed out, is now a recorded sample.
    pub(crate) fn note_sampled(&self, p: *mut u8) {
        let tag = Self::sample_tag(p);
        self.update_tags(|c| match c {
            0 => tag,
            c if c & SAMPLES_COUNTED != 0 => c + 1,
            _ => SAMPLES_COUNTED | 2,
        });
    }

    /// Whether the free of object `p` must look in the profile table, given the sample tags `c`
    /// it read (non-zero): `p` is the tagged sample, or the slab counts several. A free sees its
    /// object's tag: the owner wrote it before handing `p` out.
    #[inline(always)]
    pub(crate) fn may_be_sample(p: *mut u8, c: u16) -> bool {
        c & SAMPLES_COUNTED != 0 || c == Self::sample_tag(p)
    }

    /// A recorded sample of this slab was freed (its table entry removed): one fewer.
    pub(crate) fn forget_sample(&self) {
        self.update_tags(|c| if c & SAMPLES_COUNTED != 0 && c & !SAMPLES_COUNTED > 1 { c - 1 } else { 0 });
    }

    /// Start of the slab's data pages.
    #[inline]
    pub(crate) fn start(&self) -> *mut u8 {
        let (seg, index) = self.slot();
        seg.wrapping_add(index << SLAB_SHIFT)
    }

    /// The segment (its header) this metadata lies in, and the slab's slot index there. Slab
    /// metadata only exists in segment headers, at slots 1..SLABS_PER_SEGMENT.
    #[inline(always)]
    fn slot(&self) -> (*mut u8, usize) {
        let m = ptr::from_ref(self).cast_mut().cast::<u8>();
        let seg = m.map_addr(|a| a & !(SEGMENT_SIZE - 1));
        (seg, (m.addr() - seg.addr() - SLABS_OFFSET) / core::mem::size_of::<SlabMeta>())
    }

    /// The size class, read from the owner's line (the owner's paths).
    #[inline]
    pub(crate) fn class(&self) -> SizeClass {
        SizeClass(self.class.load(Ordering::Relaxed))
    }

    /// The size class, read from the shared line (frees, which have read that line anyway).
    #[inline]
    pub(crate) fn free_class(&self) -> SizeClass {
        SizeClass(self.free_class.load(Ordering::Relaxed))
    }

    #[inline]
    pub(crate) fn state(&self) -> SlabState {
        SlabState::from_u8(self.state.load(Ordering::Relaxed))
    }

    #[inline]
    pub(crate) fn set_state(&self, s: SlabState) {
        self.state.store(s as u8, Ordering::Relaxed);
    }

    #[inline]
    pub(crate) fn used(&self) -> u32 {
        self.used.load(Ordering::Relaxed)
    }

    /// Owner-only increment/decrement: Relaxed load + store, not a read-modify-write.
    #[inline]
    pub(crate) fn set_used(&self, v: u32) {
        self.used.store(v, Ordering::Relaxed);
    }

    #[inline]
    pub(crate) fn bump(&self) -> u32 {
        self.bump.load(Ordering::Relaxed)
    }

    #[inline]
    pub(crate) fn set_bump(&self, v: u32) {
        self.bump.store(v, Ordering::Relaxed);
    }

    #[inline]
    pub(crate) fn zeroed(&self) -> bool {
        self.zeroed.load(Ordering::Relaxed)
    }

    #[inline]
    pub(crate) fn set_zeroed(&self, v: bool) {
        self.zeroed.store(v, Ordering::Relaxed);
    }

    /// Bytes of the slab that may be resident (what a purge of the whole slab must cover): the
    /// touched high-water mark, or all of it when the slab was reused without a purge.
    pub(crate) fn touched_bytes(&self, page: usize) -> usize {
        if self.zeroed() {
            (self.bump() as usize + page - 1) & !(page - 1)
        } else {
            SLAB_SIZE
        }
    }

    /// Word `w` of this slab's free-cell bitmap, in its segment's header. An atomic, written by
    /// the owner only (Relaxed load + store, which compile to plain moves), because the idle trim
    /// (`heap/trim.rs`) reads the bitmaps of other threads' slabs.
    ///
    /// # Safety
    /// `w` must be below [`BITMAP_WORDS`].
    #[inline(always)]
    unsafe fn bitmap_word(&self, w: u32) -> &AtomicU64 {
        let (seg, index) = self.slot();
        // Slot 0 is the header itself and has no bitmap; `index` is 1.. (see `slot`), so with
        // w < BITMAP_WORDS the address lies in the header.
        let p = seg.wrapping_add(BITMAPS_OFFSET + w as usize * BITMAP_ROW_BYTES + (index - 1) * 8).cast::<u64>();
        // SAFETY: `p` lies in the segment header (above), which is mapped forever (segments are
        // never unmapped), 8-byte aligned (the header is 4 MiB-aligned, the offsets multiples of
        // 8), and every access to bitmap words goes through this atomic view.
        unsafe { AtomicU64::from_ptr(p) }
    }

    /// Bitmap words that hold this slab's cells.
    pub(crate) fn words(&self) -> u32 {
        self.class().objects_per_slab().div_ceil(64) as u32
    }

    /// Owner: makes this slab an allocation slab for `class` in epoch `era`, owned by `heap`.
    /// The slab must be empty (fresh, purged or from an empty cache).
    pub(crate) fn format(&self, class: SizeClass, era: u64, heap: *mut OwnerHeap) {
        debug_assert_eq!(self.used(), 0);
        if self.class.load(Ordering::Relaxed) != class.0 && self.bump() != 0 {
            // A different class: the pages stay dirty (unless the slab was purged, which resets
            // `bump`), and touched bytes are counted from the new class's cells on.
            self.set_zeroed(false);
            self.set_bump(0);
        }
        self.class.store(class.0, Ordering::Relaxed);
        self.free_class.store(class.0, Ordering::Relaxed);
        // Empty: every cell is free.
        let n = class.objects_per_slab();
        debug_assert!(n.div_ceil(64) <= BITMAP_WORDS);
        for w in 0..n.div_ceil(64) {
            let bits = if (w + 1) * 64 <= n { !0 } else { (1u64 << (n % 64)) - 1 };
            // SAFETY: `w` < BITMAP_WORDS (n <= MAX_CELLS); the bitmap belongs to this slab, which
            // the caller owns.
            unsafe { self.bitmap_word(w as u32).store(bits, Ordering::Relaxed) };
        }
        self.head.set(0);
        self.scan.set(0);
        self.fresh.set(false);
        self.era.store(era, Ordering::Relaxed);
        self.owner.store(heap, Ordering::Relaxed);
        self.remote.store(0, Ordering::Relaxed);
        self.next.set(ptr::null_mut());
        self.prev.set(ptr::null_mut());
        self.set_state(SlabState::Bin);
    }

    /// Forgets every free cell (the slab goes back to the pool unformatted; `format` rebuilds).
    pub(crate) fn clear_free(&self) {
        self.head.set(0);
        self.scan.set(u16::MAX);
        self.fresh.set(false);
    }

    /// Owner: no free cell: the head run is empty and no bit is set. Exact (it moves `scan` past
    /// words that have emptied since), so a slab filed as having room always has some.
    pub(crate) fn exhausted(&self) -> bool {
        let h = self.head.get();
        (h as u32) >= (h >> 32) as u32 && self.first_set_word().is_none()
    }

    /// Owner: the first bitmap word with a bit set, and its value (`None`: no bit set); moves
    /// `scan` there (or past the last word).
    fn first_set_word(&self) -> Option<(u32, u64)> {
        let words = self.words();
        let mut w = u32::from(self.scan.get());
        while w < words {
            // SAFETY: w < words <= BITMAP_WORDS; the bitmap is this slab's and we own it.
            let word = unsafe { self.bitmap_word(w).load(Ordering::Relaxed) };
            if word != 0 {
                // w < words <= BITMAP_WORDS, which fits u16.
                self.scan.set(w as u16);
                return Some((w, word));
            }
            w += 1;
        }
        self.scan.set(words as u16);
        None
    }

    /// Fast path, owner: takes the cell at the head run's `cur` (`None`: the head run is empty).
    /// Returns the object and whether its bytes are known to be zero.
    #[inline(always)]
    pub(crate) fn take_head(&self) -> Option<(NonNull<u8>, bool)> {
        let h = self.head.get();
        let cur = h as u32;
        if cur >= (h >> 32) as u32 {
            return None;
        }
        // `cur + size <= end <= SLAB_SIZE`: the low half cannot carry into the high half.
        self.head.set(h + self.class().object_size() as u64);
        // Wrapping: arithmetic on the allocation path must not panic, even in debug builds.
        self.set_used(self.used().wrapping_add(1));
        let p = self.start().wrapping_add(cur as usize);
        // SAFETY: the slab start is non-null (inside a mapping), so is any offset into it.
        Some((unsafe { NonNull::new_unchecked(p) }, self.fresh.get()))
    }

    /// Owner: takes one object, from the head run or else from the first run of set bits (which
    /// becomes the head run). Returns the object and whether its bytes are known to be zero.
    pub(crate) fn pop(&self) -> Option<(NonNull<u8>, bool)> {
        if let Some(got) = self.take_head() {
            return Some(got);
        }
        let (w, word) = self.first_set_word()?;
        let first = word.trailing_zeros();
        let len = (!(word >> first)).trailing_zeros();
        let run = if len == 64 { !0 } else { ((1u64 << len) - 1) << first };
        // SAFETY: `first_set_word` returned w < words <= BITMAP_WORDS; the bitmap is this slab's
        // and we own it.
        unsafe { self.bitmap_word(w).store(word & !run, Ordering::Relaxed) };
        let size = self.class().object_size() as u32;
        let cur = (w * 64 + first) * size;
        let end = cur + len * size;
        self.fill_holes(cur, end);
        let bump = self.bump();
        self.fresh.set(cur >= bump && self.zeroed());
        if end > bump {
            self.set_bump(end);
        }
        self.head.set(pack(cur, end));
        self.take_head()
    }

    /// Owner: takes the lowest free cell: the bitmap's first set bit when it lies below the
    /// head run (or the head run is empty), else the head run's first cell. For a slab that
    /// holds a few long-lived objects at a time (the fallback heap's heap-profile samples):
    /// freed cells are used again before the head run moves on, so the slab's touched pages
    /// stay as few as its live objects need, where [`SlabMeta::pop`] would walk the head run
    /// through the whole slab first.
    pub(crate) fn take_lowest(&self) -> Option<(NonNull<u8>, bool)> {
        let h = self.head.get();
        let (cur, end) = (h as u32, (h >> 32) as u32);
        if let Some((w, word)) = self.first_set_word() {
            let bit = word.trailing_zeros();
            let size = self.class().object_size() as u32;
            let off = (w * 64 + bit) * size;
            if cur >= end || off < cur {
                // SAFETY: `first_set_word` returned w < words <= BITMAP_WORDS; the bitmap is
                // this slab's and we own it.
                unsafe { self.bitmap_word(w).store(word & !(1u64 << bit), Ordering::Relaxed) };
                self.fill_holes(off, off + size);
                let bump = self.bump();
                let fresh = off >= bump && self.zeroed();
                if off + size > bump {
                    self.set_bump(off + size);
                }
                self.set_used(self.used().wrapping_add(1));
                let p = self.start().wrapping_add(off as usize);
                // SAFETY: the slab start is non-null (inside a mapping), so is any offset into it.
                return Some((unsafe { NonNull::new_unchecked(p) }, fresh));
            }
        }
        self.take_head()
    }

    /// Owner: whether the head run holds fewer than `n` cells (after a [`SlabMeta::pop`], a sign
    /// that the free cells are scattered).
    pub(crate) fn head_shorter_than(&self, n: u32) -> bool {
        let h = self.head.get();
        ((h >> 32) as u32).saturating_sub(h as u32) < n * self.class().object_size() as u32
    }

    /// Owner: takes up to `max` free cells from the bitmap, lowest first, counting them as used,
    /// and gives each to `each`. Returns how many were taken. For a heap whose free cells are
    /// scattered (runs of one or two cells): it moves them into its free cache in one pass, where
    /// taking them one [`SlabMeta::pop`] at a time would cost a slow path each.
    pub(crate) fn take_cells(&self, max: u32, mut each: impl FnMut(*mut u8)) -> u32 {
        let size = self.class().object_size();
        let start = self.start();
        let mut n = 0;
        let mut high = 0;
        while n < max {
            let Some((w, mut word)) = self.first_set_word() else { break };
            while word != 0 && n < max {
                let bit = word.trailing_zeros() as usize;
                word &= word - 1;
                let off = (w as usize * 64 + bit) * size;
                // Offsets within a slab fit u32.
                self.fill_holes(off as u32, (off + size) as u32);
                high = off + size;
                each(start.wrapping_add(off));
                n += 1;
            }
            // SAFETY: `first_set_word` returned w < words <= BITMAP_WORDS; the bitmap is this
            // slab's and we own it.
            unsafe { self.bitmap_word(w).store(word, Ordering::Relaxed) };
        }
        // The cells may lie past the touched mark (the bitmap's set bits include the cells
        // never handed out): their users will write them, so the mark moves past them, as
        // `pop` does for a run. Left behind, a later run from there was taken as known-zero and
        // `alloc_zeroed` returned the old bytes (`tests/scattered.rs`).
        if high as u32 > self.bump() {
            self.set_bump(high as u32);
        }
        self.set_used(self.used() + n);
        n
    }

    /// Owner: returns `obj` to the free cells. Returns the new `used` count.
    ///
    /// # Safety
    /// `obj` must be a live object of this slab, and the caller must own the slab.
    #[inline]
    pub(crate) unsafe fn push_local(&self, obj: *mut FreeObj) -> u32 {
        let used = self.used();
        if used == 0 {
            // More frees than allocations: a double free. Stop before the bitmap is corrupted.
            crate::os::invalid_pointer();
        }
        // SAFETY: forwarded caller guarantee.
        unsafe { self.link_free(obj.cast()) };
        self.set_used(used - 1);
        used - 1
    }

    /// Owner: adds the dead object `p` to the free cells without counting it: widens the head run
    /// when `p` is its neighbour, else sets its bit. Aborts when `p` is already free (a double
    /// free).
    ///
    /// # Safety
    /// `p` must be an object of this slab that nobody uses any more; the caller owns the slab.
    #[inline(always)]
    unsafe fn link_free(&self, p: *mut u8) {
        let off = (p.addr() & (SLAB_SIZE - 1)) as u32;
        let class = self.class();
        let size = class.object_size() as u32;
        let h = self.head.get();
        let (cur, end) = (h as u32, (h >> 32) as u32);
        if cur < end {
            if off.wrapping_add(size) == cur {
                self.head.set(h - u64::from(size));
                self.fresh.set(false);
                return;
            }
            if off == end {
                self.head.set(h + (u64::from(size) << 32));
                self.fresh.set(false);
                return;
            }
            if off >= cur && off < end {
                crate::os::invalid_pointer();
            }
        }
        let cell = class.cell_of(off);
        if cell as usize >= class.objects_per_slab() || cell * size != off {
            // Not the start of one of this slab's cells: not a pointer we handed out.
            crate::os::invalid_pointer();
        }
        let w = cell / 64;
        let bit = 1u64 << (cell % 64);
        // SAFETY: `cell` < objects_per_slab <= MAX_CELLS (checked above), so `w` < BITMAP_WORDS;
        // the bitmap is this slab's and the caller owns the slab.
        let word = unsafe { self.bitmap_word(w) };
        let bits = word.load(Ordering::Relaxed);
        if bits & bit != 0 {
            crate::os::invalid_pointer();
        }
        word.store(bits | bit, Ordering::Relaxed);
        if w < u32::from(self.scan.get()) {
            self.scan.set(w as u16);
        }
    }
}
