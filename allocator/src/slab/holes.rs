//! A slab's holes: the pages the idle trim (`heap/trim.rs`) purged while the slab was in use,
//! because every cell in them was a free bitmap cell, and what they change in the slab's
//! resident bytes. The owner fills a hole back when it hands out a cell there.

use core::ptr::NonNull;
use core::sync::atomic::Ordering;

use super::SlabMeta;
use crate::os::PageSource;
use crate::size_class::SLAB_SIZE;

/// Most pages of a slab the idle trim tracks as holes (bits of [`SlabMeta::holes`]): every page
/// with 4 KiB pages or larger.
pub(crate) const MAX_HOLE_PAGES: usize = 32;
const _: () = assert!(SLAB_SIZE / 4096 <= MAX_HOLE_PAGES);

impl SlabMeta {
    /// The bytes of the slab that are resident: [`SlabMeta::touched_bytes`] less the pages the
    /// idle trim purged.
    pub(crate) fn resident_bytes(&self, page: usize) -> usize {
        let holes = self.holes.load(Ordering::Relaxed).count_ones() as usize;
        self.touched_bytes(page).saturating_sub(holes * page)
    }

    /// A purge of the whole slab: no page is a hole any more (they are all purged).
    pub(crate) fn forget_holes(&self) {
        self.holes.store(0, Ordering::Relaxed);
    }

    /// Owner: cells `[start, end)` (byte offsets) are being handed out of the bitmap; the pages
    /// they lie in are resident again once they are written, so they are holes no more.
    #[inline(always)]
    pub(super) fn fill_holes(&self, start: u32, end: u32) {
        let holes = self.holes.load(Ordering::Relaxed);
        if holes != 0 {
            self.fill_holes_slow(holes, start, end);
        }
    }

    #[cold]
    fn fill_holes_slow(&self, holes: u32, start: u32, end: u32) {
        let shift = crate::os::OS.page_size().trailing_zeros();
        let (first, last) = (start >> shift, end.saturating_sub(1) >> shift);
        // `last` < 32: the trim runs only with at most 32 pages a slab (`MAX_HOLE_PAGES`).
        let mask = ((2u64 << last.min(31)) - (1u64 << first.min(31))) as u32;
        self.holes.store(holes & !mask, Ordering::Relaxed);
    }

    /// Whether every bit of cells `first..=last` is set (each of them is a free bitmap cell).
    fn bits_all_set(&self, first: usize, last: usize) -> bool {
        let mut w = first / 64;
        while w <= last / 64 {
            let lo = if w == first / 64 { first % 64 } else { 0 };
            let hi = if w == last / 64 { last % 64 } else { 63 };
            let mask = (u64::MAX >> (63 - hi)) & (u64::MAX << lo);
            // SAFETY: `last` < objects_per_slab <= MAX_CELLS (the caller's bound), so `w` <
            // BITMAP_WORDS.
            let word = unsafe { self.bitmap_word(w as u32) }.load(Ordering::Relaxed);
            if word & mask != mask {
                return false;
            }
            w += 1;
        }
        true
    }

    /// The idle trim, from any thread: purges each resident page of the slab that holds only
    /// free bitmap cells (or no cell at all: the slack past the last one) and marks it a hole.
    /// Returns the bytes purged and the `madvise` calls made (and failed).
    ///
    /// # Safety
    /// The caller must hold the slab's owner off every path that takes cells out of the bitmap
    /// or gives the slab away (its slow paths, `heap/trim.rs`), from before it reads the bitmap
    /// until it returns. The owner's fast paths may run meanwhile: they take cells only from the
    /// head run and the free cache, whose bits are clear, and a free only sets bits, so a page
    /// found free stays free. The slab must be formatted (a state other than Free).
    pub(crate) unsafe fn purge_free_pages(&self, page: usize) -> (usize, u32, u32) {
        let pages = (self.touched_bytes(page) / page).min(MAX_HOLE_PAGES);
        let holes = self.holes.load(Ordering::Relaxed);
        let size = self.class().object_size();
        let cells = self.class().objects_per_slab();
        let mut free = 0u32;
        for i in 0..pages {
            if holes & (1 << i) != 0 {
                continue;
            }
            let (first, last) = (i * page / size, ((i + 1) * page - 1) / size);
            if first >= cells || self.bits_all_set(first, last.min(cells - 1)) {
                free |= 1 << i;
            }
        }
        let (mut bytes, mut calls, mut failed) = (0, 0, 0);
        let mut purged = 0u32;
        let mut rest = free;
        while rest != 0 {
            let a = rest.trailing_zeros();
            let len = (rest >> a).trailing_ones();
            let run = if len == 32 { u32::MAX } else { ((1u32 << len) - 1) << a };
            rest &= !run;
            let at = self.start().wrapping_add(a as usize * page);
            // SAFETY: the pages lie in this slab (a..a + len < pages <= SLAB_SIZE / page) and
            // hold no live object, nor any cell the owner can hand out while the caller holds it
            // off its slow paths (above); nothing but cells lives in a slab's pages.
            if unsafe { crate::os::OS.purge(NonNull::new_unchecked(at), len as usize * page) } {
                purged |= run;
                bytes += len as usize * page;
                calls += 1;
            } else {
                failed += 1;
            }
        }
        if purged != 0 {
            self.holes.store(holes | purged, Ordering::Relaxed);
        }
        (bytes, calls, failed)
    }
}
