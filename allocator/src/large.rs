//! Large objects (over 32 KiB, or aligned beyond 32 KiB): one mapping each, plus a bounded,
//! decaying cache of freed mappings.
//!
//! Layout: the mapping's header (`LargeHeader`) sits at a `SEGMENT_SIZE`-aligned address `H`
//! and the object at `H + offset` with `0 < offset <= SEGMENT_SIZE`, so `header_of` finds it like
//! any other pointer. For alignments below `SEGMENT_SIZE` the mapping starts at `H` and
//! `offset = max(page, align)`; for larger alignments the object starts at an `align`-aligned
//! address and the header sits `SEGMENT_SIZE` below it, inside the same mapping.
//!
//! The cache: freed mappings (alignment below `SEGMENT_SIZE`, at most [`CACHE_MAX_ENTRY`] bytes)
//! are kept, resident, up to [`CACHE_MAX_BYTES`] in all and `CACHE_SLOTS` (128) entries; when a
//! free would exceed either, the oldest entries are unmapped first. A request takes the smallest
//! cached mapping that fits and uses it whole if that is at most twice the request (or at most
//! `TRIM_SLACK`, 1 MiB, more): the spare room stays with the object, where `realloc` can grow
//! into it. A larger one is split at the first `SEGMENT_SIZE` boundary past the request and its
//! tail goes back into the cache as an entry of its own (aligned, so it can hold a header); only
//! what would still exceed the 2x bound is unmapped. When nothing fits, the largest entry is grown
//! with `mremap`: its pages move without a copy and only the growth faults (mapping afresh would
//! fault all of it). So a live object holds at most `max(2 * size, size + 1 MiB)` bytes (plus a
//! page for the header), and repeated large alloc/free of varied sizes reuses resident pages
//! instead of unmapping and faulting them again.
//!
//! New mappings of 2 MiB and more (and mappings grown past that) are advised for transparent
//! huge pages (`os::advise_huge`): only the whole 2 MiB pages inside a mapping can be huge, and
//! those lie inside the object, so an object the program touches whole costs no more RSS; one
//! it touches sparsely is resident in 2 MiB steps. malloc-large: 81,000 -> 31,000 faults a run.
//!
//! Entries unused for [`CACHE_DECAY_NS`] (a split-off tail keeps its parent's age) are unmapped
//! by the reclaimer or at the next large operation, so a burst of large frees costs at most
//! 128 MiB of RSS for about a second (64 MiB was too little for malloc-large's working set of 16
//! blocks of 64 KiB-16 MiB: it refaulted 139,000 pages a run, 272 ms against 39 ms at 128 MiB).
//! Cached pages stay counted in `large_mapped_bytes` and the resident estimate, and
//! `large_cache_bytes` is exactly the sum of the entries: nothing is `MADV_FREE`d, so RSS and the
//! estimate agree.

use core::ptr::{self, NonNull};
use core::sync::atomic::Ordering;

use crate::counters::GLOBAL;
use crate::os::{self, PageSource, OS};
use crate::segment::{Common, KIND_LARGE, MAGIC, SEGMENT_SIZE};
use crate::sync::SpinLock;

/// Most bytes the cache keeps in all.
pub const CACHE_MAX_BYTES: usize = 128 << 20;
/// Largest mapping the cache keeps.
pub const CACHE_MAX_ENTRY: usize = 32 << 20;
/// Age after which a cached mapping is unmapped.
pub const CACHE_DECAY_NS: u64 = 500_000_000;
/// Room for split-off tails besides one freed mapping per live large object of a working set:
/// malloc-large keeps 16; mimalloc's test-stress has 8 threads each freeing objects just above
/// 32 KiB, and with 32 slots it mapped and unmapped one 4 MiB-aligned range per allocation
/// (18,500 `munmap`s at `8 50 50`; 2,100 with 128). The searches are linear: 128 is still a few
/// hundred instructions, against a system call.
const CACHE_SLOTS: usize = 128;
/// A cached mapping reused for a smaller request keeps up to this much (or the request's size,
/// if larger) of spare room before its tail is unmapped.
const TRIM_SLACK: usize = 1 << 20;
/// A split-off tail smaller than this is not worth a cache slot; it stays with the object (or is
/// trimmed with it).
const CACHE_MIN_TAIL: usize = 256 << 10;

/// Header of a large mapping.
#[repr(C)]
pub(crate) struct LargeHeader {
    common: Common,
    /// Start and length of the whole mapping.
    map_start: *mut u8,
    map_len: usize,
    /// Bytes from the mapping's start to the object.
    offset: usize,
    /// Bytes requested (for the live-bytes gauge).
    size: usize,
}

#[derive(Copy, Clone)]
struct Entry {
    start: *mut u8,
    len: usize,
    freed_ns: u64,
}

pub(crate) struct Cache {
    entries: [Entry; CACHE_SLOTS],
    n: usize,
    bytes: usize,
}

// SAFETY: cached mappings are owned by the cache and only touched under its lock.
unsafe impl Send for Cache {}

pub(crate) static CACHE: SpinLock<Cache> = SpinLock::new(Cache {
    entries: [Entry { start: ptr::null_mut(), len: 0, freed_ns: 0 }; CACHE_SLOTS],
    n: 0,
    bytes: 0,
});

impl Cache {
    /// Adds `e` if a slot and the byte budget allow; returns whether it did.
    fn try_insert(&mut self, e: Entry) -> bool {
        if self.n == CACHE_SLOTS || self.bytes + e.len > CACHE_MAX_BYTES {
            return false;
        }
        self.entries[self.n] = e;
        self.n += 1;
        self.bytes += e.len;
        GLOBAL.large_cache_bytes.fetch_add(e.len as u64, Ordering::Relaxed);
        true
    }

    fn remove(&mut self, i: usize) -> Entry {
        let e = self.entries[i];
        self.n -= 1;
        self.entries[i] = self.entries[self.n];
        self.bytes -= e.len;
        GLOBAL.large_cache_bytes.fetch_sub(e.len as u64, Ordering::Relaxed);
        e
    }

    /// Removes expired entries into `out`; returns how many.
    fn expire(&mut self, now: u64, out: &mut [Entry; CACHE_SLOTS]) -> usize {
        let mut k = 0;
        let mut i = 0;
        while i < self.n {
            if now.saturating_sub(self.entries[i].freed_ns) > CACHE_DECAY_NS {
                out[k] = self.remove(i);
                k += 1;
            } else {
                i += 1;
            }
        }
        k
    }
}

fn unmap_all(entries: &[Entry]) {
    for e in entries {
        // SAFETY: a cached mapping is ours and unused.
        unsafe { OS.unmap(NonNull::new_unchecked(e.start), e.len) };
        GLOBAL.large_mapped_bytes.fetch_sub(e.len as u64, Ordering::Relaxed);
    }
}

/// Takes a cached mapping and fits it to `len` bytes, so its resident pages serve the new object
/// without faults:
///
/// - the smallest one that is large enough. The object keeps it whole when that is at most
///   twice `len` (or [`TRIM_SLACK`] more than `len`); otherwise the mapping is split at the first
///   `SEGMENT_SIZE` boundary `b` at or past `len`: the tail past `b` goes back into the cache as an
///   entry of its own (it starts `SEGMENT_SIZE`-aligned, so it can hold a header), and the part
///   from `len` to `b` stays with the object if that keeps it within the same bound, else it is
///   unmapped;
/// - else the largest one, grown with `mremap` (its pages move without a copy; only the growth
///   faults).
fn cache_take(len: usize) -> Option<Entry> {
    let mut expired = [Entry { start: ptr::null_mut(), len: 0, freed_ns: 0 }; CACHE_SLOTS];
    let now = os::monotonic_ns();
    let (found, k) = {
        let mut c = CACHE.lock();
        let k = c.expire(now, &mut expired);
        let fits = (0..c.n).filter(|&i| c.entries[i].len >= len).min_by_key(|&i| c.entries[i].len);
        let pick = fits.or_else(|| (0..c.n).max_by_key(|&i| c.entries[i].len));
        let found = pick.map(|i| {
            let mut e = c.remove(i);
            if e.len >= len && !within_slack(e.len, len) {
                let b = len.next_multiple_of(SEGMENT_SIZE);
                if e.len > b && e.len - b >= CACHE_MIN_TAIL {
                    // Always fits: `e`'s slot and bytes were just freed and the tail is smaller.
                    let tail = Entry { start: e.start.wrapping_add(b), len: e.len - b, freed_ns: e.freed_ns };
                    if c.try_insert(tail) {
                        e.len = b;
                    }
                }
            }
            e
        });
        (found, k)
    };
    unmap_all(&expired[..k]);
    let mut e = found?;
    if e.len >= len {
        // Trim only what the split left beyond the bound: re-trimming and re-growing on every
        // reuse would fault the pages back in, which is the cost this cache exists to avoid.
        if !within_slack(e.len, len) {
            // SAFETY: the tail of a cached mapping is ours and unused.
            unsafe { OS.unmap(NonNull::new_unchecked(e.start.wrapping_add(len)), e.len - len) };
            GLOBAL.large_mapped_bytes.fetch_sub((e.len - len) as u64, Ordering::Relaxed);
            e.len = len;
        }
    } else {
        // SAFETY: the cached mapping is ours and holds nothing live.
        match unsafe { grow_mapping(e.start, e.len, len) } {
            Some(start) => {
                e.start = start;
                e.len = len;
            }
            None => {
                unmap_all(&[e]);
                return None;
            }
        }
    }
    Some(e)
}

/// Whether a mapping of `have` bytes may serve a request of `len` bytes whole: the spare room is
/// at most `len` (the object gets at most twice what it asked for) or at most [`TRIM_SLACK`].
fn within_slack(have: usize, len: usize) -> bool {
    have - len <= len.max(TRIM_SLACK)
}

/// Grows the mapping `[start, start + old_len)` to `new_len` bytes, in place if the address
/// space after it is free, else by moving its pages (no copy) to a fresh `SEGMENT_SIZE`-aligned
/// range. Returns the (possibly new) start; `None` leaves the old mapping as it was.
///
/// # Safety
/// The range must be one mapping of ours, starting at a `SEGMENT_SIZE`-aligned address.
unsafe fn grow_mapping(start: *mut u8, old_len: usize, new_len: usize) -> Option<*mut u8> {
    // SAFETY: the caller guarantees the mapping is ours; growing in place moves nothing.
    if unsafe { os::remap(NonNull::new_unchecked(start), old_len, new_len, None) } {
        GLOBAL.large_mapped_bytes.fetch_add((new_len - old_len) as u64, Ordering::Relaxed);
        // SAFETY: the grown mapping is ours (a mapping that grew past 2 MiB gets the advice).
        unsafe { os::advise_huge(NonNull::new_unchecked(start), new_len) };
        return Some(start);
    }
    // Reserve an aligned range, then move the pages onto it.
    let to = OS.map(new_len, SEGMENT_SIZE)?;
    // SAFETY: `to` is our fresh mapping of `new_len` bytes, holding nothing; the old one is ours.
    if unsafe { os::remap(NonNull::new_unchecked(start), old_len, new_len, Some(to)) } {
        GLOBAL.large_mapped_bytes.fetch_add((new_len - old_len) as u64, Ordering::Relaxed);
        // SAFETY: the moved mapping is ours.
        unsafe { os::advise_huge(to, new_len) };
        return Some(to.as_ptr());
    }
    // SAFETY: the reservation is ours and unused.
    unsafe { OS.unmap(to, new_len) };
    None
}

/// Keeps a freed mapping in the cache, or unmaps it.
fn cache_put(start: *mut u8, len: usize) {
    let mut expired = [Entry { start: ptr::null_mut(), len: 0, freed_ns: 0 }; CACHE_SLOTS];
    let now = os::monotonic_ns();
    let (kept, k) = {
        let mut c = CACHE.lock();
        let mut k = c.expire(now, &mut expired);
        let mut kept = false;
        if len <= CACHE_MAX_ENTRY {
            // Make room: evict the oldest entries until it fits.
            while c.n > 0 && (c.n == CACHE_SLOTS || c.bytes + len > CACHE_MAX_BYTES) && k < CACHE_SLOTS {
                let oldest = (0..c.n).min_by_key(|&i| c.entries[i].freed_ns).unwrap_or(0);
                expired[k] = c.remove(oldest);
                k += 1;
            }
            kept = c.try_insert(Entry { start, len, freed_ns: now });
        }
        (kept, k)
    };
    unmap_all(&expired[..k]);
    if !kept {
        unmap_all(&[Entry { start, len, freed_ns: now }]);
    }
}

/// Unmaps cached mappings older than [`CACHE_DECAY_NS`] (the reclaimer's pass).
pub(crate) fn decay(now: u64) {
    let mut expired = [Entry { start: ptr::null_mut(), len: 0, freed_ns: 0 }; CACHE_SLOTS];
    let k = CACHE.lock().expire(now, &mut expired);
    unmap_all(&expired[..k]);
}

/// Unmaps every cached mapping (for `trim`-like calls and tests).
pub fn purge_cache() {
    let mut all = [Entry { start: ptr::null_mut(), len: 0, freed_ns: 0 }; CACHE_SLOTS];
    let k = {
        let mut c = CACHE.lock();
        let mut k = 0;
        while c.n > 0 {
            all[k] = c.remove(0);
            k += 1;
        }
        k
    };
    unmap_all(&all[..k]);
}

/// Where the object goes within a mapping, for an alignment below `SEGMENT_SIZE`.
fn offset_for(align: usize) -> usize {
    align.max(OS.page_size())
}

/// Allocates a large object. Returns null when the size overflows or the OS refuses.
/// The bool says whether the bytes are known to be zero.
pub(crate) fn alloc(size: usize, align: usize) -> (*mut u8, bool) {
    let page = OS.page_size();
    let Some(body) = size.max(1).checked_next_multiple_of(page) else { return (ptr::null_mut(), false) };
    let (offset, map_align) = if align < SEGMENT_SIZE { (offset_for(align), SEGMENT_SIZE) } else { (align, align) };
    let Some(len) = body.checked_add(offset) else { return (ptr::null_mut(), false) };
    if len > isize::MAX as usize {
        return (ptr::null_mut(), false);
    }
    let (start, len, zeroed) = match (align < SEGMENT_SIZE).then(|| cache_take(len)).flatten() {
        Some(e) => {
            crate::paths::mark(crate::paths::Step::LargeCache);
            GLOBAL.large_cache_hits.fetch_add(1, Ordering::Relaxed);
            (e.start, e.len, false)
        }
        None => {
            let Some(p) = OS.map(len, map_align) else { return (ptr::null_mut(), false) };
            GLOBAL.large_mapped_bytes.fetch_add(len as u64, Ordering::Relaxed);
            // SAFETY: our fresh mapping of `len` bytes.
            unsafe { os::advise_huge(p, len) };
            (p.as_ptr(), len, true)
        }
    };
    let user = start.wrapping_add(offset);
    let header = user.wrapping_sub(1).map_addr(|a| a & !(SEGMENT_SIZE - 1)).cast::<LargeHeader>();
    // SAFETY: `header` is SEGMENT_SIZE-aligned inside our fresh (or cached, unused) mapping and at
    // least a page before `user`, so it does not overlap the object.
    unsafe {
        header.write(LargeHeader {
            common: Common { magic: MAGIC, kind: KIND_LARGE },
            map_start: start,
            map_len: len,
            offset,
            size,
        })
    };
    crate::paths::mark(crate::paths::Step::Large);
    GLOBAL.large_allocs.fetch_add(1, Ordering::Relaxed);
    GLOBAL.large_live_bytes.fetch_add(size as u64, Ordering::Relaxed);
    (user, zeroed)
}

/// Frees a large object.
///
/// # Safety
/// `header` must be the valid large header of the live object `p`.
pub(crate) unsafe fn free(header: *mut Common) {
    // SAFETY: the caller guarantees a valid large header.
    let h = unsafe { &*header.cast::<LargeHeader>() };
    let (start, len, size, offset) = (h.map_start, h.map_len, h.size, h.offset);
    crate::paths::mark(crate::paths::Step::FreeLarge);
    GLOBAL.large_frees.fetch_add(1, Ordering::Relaxed);
    GLOBAL.large_live_bytes.fetch_sub(size as u64, Ordering::Relaxed);
    if crate::profile::any() {
        crate::profile::on_free(start.wrapping_add(offset));
    }
    if offset < SEGMENT_SIZE && start == header.cast() {
        cache_put(start, len);
    } else {
        unmap_all(&[Entry { start, len, freed_ns: 0 }]);
    }
}

/// Bytes usable at `p` without moving it.
///
/// # Safety
/// `header` must be the valid large header of the live object.
pub(crate) unsafe fn usable_size(header: *mut Common) -> usize {
    // SAFETY: the caller guarantees a valid large header.
    let h = unsafe { &*header.cast::<LargeHeader>() };
    h.map_len - h.offset
}

/// Resizes a large object in place, or moves its pages with `mremap` (no copy). Returns the new
/// pointer, or null when neither worked (the caller then copies).
///
/// # Safety
/// `header` must be the valid large header of the live object `p`.
pub(crate) unsafe fn realloc(header: *mut Common, p: *mut u8, new_size: usize) -> *mut u8 {
    let page = OS.page_size();
    let hp = header.cast::<LargeHeader>();
    // SAFETY: the caller guarantees a valid large header; we are the object's only user.
    let h = unsafe { &mut *hp };
    let Some(need) = new_size.max(1).checked_next_multiple_of(page).and_then(|b| b.checked_add(h.offset)) else {
        return ptr::null_mut();
    };
    let in_mapping = h.map_start == header.cast::<u8>();
    let old_size = h.size;
    let resized = |h: &mut LargeHeader| {
        h.size = new_size;
        if new_size >= old_size {
            GLOBAL.large_live_bytes.fetch_add((new_size - old_size) as u64, Ordering::Relaxed);
        } else {
            GLOBAL.large_live_bytes.fetch_sub((old_size - new_size) as u64, Ordering::Relaxed);
        }
    };
    if !in_mapping {
        // Over-aligned: only in-place shrink or growth within the mapping.
        if need <= h.map_len {
            resized(h);
            return p;
        }
        return ptr::null_mut();
    }
    if need <= h.map_len {
        // Shrink: give back a tail of at least a quarter of the mapping.
        let spare = h.map_len - need;
        if spare >= page && spare * 4 >= h.map_len {
            // SAFETY: the tail [start + need, start + map_len) is ours and past the object.
            unsafe { OS.unmap(NonNull::new_unchecked(h.map_start.wrapping_add(need)), spare) };
            GLOBAL.large_mapped_bytes.fetch_sub(spare as u64, Ordering::Relaxed);
            h.map_len = need;
        }
        resized(h);
        return p;
    }
    if need > isize::MAX as usize {
        return ptr::null_mut();
    }
    let old_len = h.map_len;
    // SAFETY: the mapping is ours, starts at the SEGMENT_SIZE-aligned header, and the object in
    // it is ours to move; the header moves with the pages.
    let Some(start) = (unsafe { grow_mapping(h.map_start, old_len, need) }) else { return ptr::null_mut() };
    // SAFETY: the header sits at the start of the (possibly moved) mapping.
    let nh = unsafe { &mut *start.cast::<LargeHeader>() };
    nh.map_start = start;
    nh.map_len = need;
    resized(nh);
    start.wrapping_add(nh.offset)
}
