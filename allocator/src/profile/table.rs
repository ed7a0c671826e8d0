//! The profile region: the sampled call sites and the sampled objects still live, in a
//! memfd-backed shared mapping that allocating threads write directly (lock-free) and other
//! processes copy (`profile_attach.rs`).
//!
//! Layout (version [`LAYOUT_VERSION`]), all little-endian u64 words:
//! - a header of [`HEADER_WORDS`] words (`H_*`);
//! - [`SITES`] site entries of [`SITE_WORDS`] words: key (0 empty, [`BUSY`] being written, else
//!   the stack's hash), depth, estimated allocated objects x [`FIXED`], estimated allocated
//!   bytes, then [`DEPTH`] return addresses, innermost first, then 4 words reserved (0);
//! - [`LIVE`] live entries of [`LIVE_WORDS`] words: key (0 empty, [`BUSY`] being written, else
//!   the object's address), requested size, site index ([`NO_SITE`]: the site table was full),
//!   era << 8 | (label id + 1, 0: no label).
//!
//! A site's key and return addresses are written once (key last, Release); only its two sums
//! change afterwards. A live entry's values are written before its key (Release); a free clears
//! the key. Inserts look at most [`PROBES`] slots from the hash, and so does a free's lookup, so
//! the table never needs tombstones; an insert that finds no free slot is counted as dropped.
//!
//! The layout is drawn for a sample's cache misses (the program has evicted the region between
//! two samples): the header and every site entry start on a 64-byte line, so that a site's key,
//! depth, sums and innermost frames share one line, and a lookup that finds its stack there
//! reads no other (see `Table::site`); a live entry's key and values share a line.

use core::cell::Cell;
use core::sync::atomic::{AtomicU64, Ordering};

/// `"TSLABPRF"` as a little-endian word.
pub const MAGIC: u64 = u64::from_le_bytes(*b"TSLABPRF");
/// Version of the profile region layout.
pub const LAYOUT_VERSION: u64 = 2;
/// The memfd's name in `/proc/PID/fd`.
pub const MEMFD_NAME: &str = "temporal-slab-profile";
/// Words in the header.
pub const HEADER_WORDS: usize = 16;
/// Call-site slots.
pub const SITES: usize = 1024;
/// Return addresses kept per sample.
pub const DEPTH: usize = 32;
/// Words per site: key, depth, two sums, the return addresses, 4 reserved (a whole number of
/// 64-byte lines).
pub const SITE_WORDS: usize = 4 + DEPTH + 4;
/// A site's frames compared at a lookup besides its hash and depth: those on the key's line.
pub const SITE_MATCH: usize = 4;
/// Live-sample slots.
pub const LIVE: usize = 8192;
/// Words per live entry: the key and three values.
pub const LIVE_WORDS: usize = 4;
/// Slots an insert or lookup looks at, from the hash on.
pub const PROBES: usize = 16;
/// Key of a slot being written.
pub const BUSY: u64 = 1;
/// Site index of a sample whose stack found no site slot.
pub const NO_SITE: u64 = u64::MAX;
/// Fixed-point scale of the estimated object counts.
pub const FIXED: f64 = 1024.0;

/// Header word: magic.
pub const H_MAGIC: usize = 0;
/// Header word: layout version.
pub const H_VERSION: usize = 1;
/// Header word: [`SITES`].
pub const H_SITES: usize = 2;
/// Header word: [`DEPTH`].
pub const H_DEPTH: usize = 3;
/// Header word: [`LIVE`].
pub const H_LIVE: usize = 4;
/// Header word: the writing process's pid.
pub const H_PID: usize = 5;
/// Header word: the mean sampling interval in bytes.
pub const H_MEAN: usize = 6;
/// Header word: samples taken.
pub const H_SAMPLES: usize = 7;
/// Header word: samples not kept as live (the live table had no free slot near the hash).
pub const H_DROPPED: usize = 8;
/// Header word: samples whose stack found no site slot.
pub const H_SITE_OVERFLOW: usize = 9;
/// Header word: total words of the region.
pub const H_WORDS: usize = 10;
/// Header word: log2 of the live slots that inserts hash into now, from [`LIVE_SPAN_MIN`] up to
/// [`LIVE`] (0: the smallest). Readers scan all [`LIVE`] slots and need not look at it.
pub const H_LIVE_SPAN: usize = 11;
/// The live slots inserts start with (a 16 KiB prefix of the table): a program with a few
/// hundred live samples touches 4 pages of the live table instead of its 256 KiB, which
/// addresses hashed over the whole table would all touch within a few thousand samples.
pub const LIVE_SPAN_MIN: usize = 512;
const LIVE_SPAN_MIN_LOG: u64 = LIVE_SPAN_MIN.ilog2() as u64;
const _: () = assert!(LIVE.is_power_of_two() && LIVE_SPAN_MIN.is_power_of_two() && LIVE_SPAN_MIN <= LIVE);
/// Header word: log2 of the site slots that new stacks hash into now, from [`SITE_SPAN_MIN`] up
/// to [`SITES`] (0: the smallest). Readers scan all [`SITES`] slots and need not look at it.
pub const H_SITE_SPAN: usize = 12;
/// The site slots new stacks start with (a 20 KiB prefix of the table's 320 KiB): a program
/// with a hundred call sites touches about 8 pages of it, where stacks hashed over the whole
/// table touched most of its 80 (the HTTP example: 252 KiB of the region resident, idle).
pub const SITE_SPAN_MIN: usize = 64;
const SITE_SPAN_MIN_LOG: u64 = SITE_SPAN_MIN.ilog2() as u64;
const _: () = assert!(SITES.is_power_of_two() && SITE_SPAN_MIN.is_power_of_two() && SITE_SPAN_MIN <= SITES);

/// Word offset of site `i`.
pub const fn site_at(i: usize) -> usize {
    HEADER_WORDS + i * SITE_WORDS
}
/// Word offset of the live entries.
pub const LIVE_AT: usize = site_at(SITES);
/// Word offset of live entry `i` (its key; its values follow).
pub const fn live_at(i: usize) -> usize {
    LIVE_AT + i * LIVE_WORDS
}
/// Total words.
pub const WORDS: usize = live_at(LIVE);

const _: () = assert!(
    HEADER_WORDS.is_multiple_of(8) && SITE_WORDS.is_multiple_of(8) && LIVE_AT.is_multiple_of(8) && LIVE_WORDS == 4
);

/// Bytes of the region, whole pages.
pub(crate) const fn region_len() -> usize {
    (WORDS * 8).div_ceil(4096) * 4096
}

/// A mapped region of this process.
#[derive(Clone, Copy)]
pub(crate) struct Table {
    words: *const AtomicU64,
}

impl Table {
    /// # Safety
    /// `words` points to a live mapping of at least [`WORDS`] words that stays mapped while this
    /// `Table` is used.
    pub(crate) unsafe fn new(words: *const AtomicU64) -> Table {
        Table { words }
    }

    pub(crate) fn word(&self, i: usize) -> &AtomicU64 {
        debug_assert!(i < WORDS);
        // SAFETY: `new`'s contract: the mapping holds WORDS words and outlives `self`; every
        // caller passes an index below WORDS (the constants above).
        unsafe { &*self.words.add(i) }
    }

    /// Writes the header of a fresh region.
    pub(crate) fn init_header(&self, pid: u64, mean: u64) {
        for (i, v) in [
            (H_MAGIC, MAGIC),
            (H_VERSION, LAYOUT_VERSION),
            (H_SITES, SITES as u64),
            (H_DEPTH, DEPTH as u64),
            (H_LIVE, LIVE as u64),
            (H_PID, pid),
            (H_MEAN, mean),
            (H_WORDS, WORDS as u64),
        ] {
            self.word(i).store(v, Ordering::Relaxed);
        }
    }

    pub(crate) fn bump(&self, h: usize) {
        self.word(h).fetch_add(1, Ordering::Relaxed);
    }

    /// The site span now: new stacks hash into its first slots.
    fn site_span(&self) -> usize {
        let log = self.word(H_SITE_SPAN).load(Ordering::Relaxed).max(SITE_SPAN_MIN_LOG);
        1 << log.min(SITES.ilog2() as u64)
    }

    /// The site slot of stack `pcs` (found or claimed), `None` when the [`PROBES`] slots from
    /// the hash in the last half of the table all hold other stacks. A stack is looked for in
    /// every span up to the current one, smallest first (it was claimed in whichever span was
    /// current then), and claimed in the current one, which doubles when its window is full.
    pub(crate) fn site(&self, pcs: &[Cell<u64>]) -> Option<usize> {
        let hash = stack_hash(pcs);
        // The slot from the hash's high bits, mixed (its low bits are poor: bit 1 is always set).
        let start = (hash.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40) as usize;
        loop {
            let top = self.site_span();
            let mut span = SITE_SPAN_MIN;
            while span <= top {
                // Each span claims in the half it added (the first: all of it), so that a
                // wider span's stacks do not crowd into the slots the narrower ones filled.
                let (base, len) = if span == SITE_SPAN_MIN { (0, span) } else { (span / 2, span / 2) };
                for probe in 0..PROBES {
                    let i = base + start.wrapping_add(probe) % len;
                    let at = site_at(i);
                    let key = self.word(at);
                    // Acquire: a key we see published comes with its depth and return addresses.
                    let k = key.load(Ordering::Acquire);
                    if k == hash && self.same_stack(at, pcs) {
                        return Some(i);
                    }
                    if k != 0 || span < top {
                        // Another stack, or one being written (it may be ours: a second slot for
                        // the same stack is harmless, readers merge by stack); or a free slot
                        // of an older span, where only the current one claims.
                        continue;
                    }
                    if key.compare_exchange(0, BUSY, Ordering::Acquire, Ordering::Relaxed).is_err() {
                        continue;
                    }
                    self.word(at + 1).store(pcs.len() as u64, Ordering::Relaxed);
                    for (j, pc) in pcs.iter().enumerate() {
                        self.word(at + 4 + j).store(pc.get(), Ordering::Relaxed);
                    }
                    // Release: readers that see the key see the stack.
                    key.store(hash, Ordering::Release);
                    return Some(i);
                }
                span *= 2;
            }
            if top == SITES {
                return None;
            }
            // Widen it (another thread may have already: the max keeps the larger).
            self.word(H_SITE_SPAN).fetch_max(u64::from((top * 2).ilog2()), Ordering::Relaxed);
        }
    }

    /// Whether the site at word `at`, whose key is `pcs`'s hash, holds `pcs`: its depth and the
    /// [`SITE_MATCH`] innermost frames on the key's line are compared, the rest trusted to the
    /// 64-bit hash. Two stacks that agree there and in hash (about one chance in 2^64 per pair)
    /// share a site: their figures are merged under the first one's frames.
    fn same_stack(&self, at: usize, pcs: &[Cell<u64>]) -> bool {
        self.word(at + 1).load(Ordering::Relaxed) == pcs.len() as u64
            && pcs
                .iter()
                .take(SITE_MATCH)
                .enumerate()
                .all(|(j, pc)| self.word(at + 4 + j).load(Ordering::Relaxed) == pc.get())
    }

    /// Adds one sample's estimates to site `i`.
    /// `objects` in [`FIXED`] units.
    pub(crate) fn add_to_site(&self, i: usize, objects: u64, bytes: u64) {
        let at = site_at(i);
        self.word(at + 2).fetch_add(objects, Ordering::Relaxed);
        self.word(at + 3).fetch_add(bytes, Ordering::Relaxed);
    }

    /// The live span now: inserts hash into its first slots.
    fn live_span(&self) -> usize {
        let log = self.word(H_LIVE_SPAN).load(Ordering::Relaxed).max(LIVE_SPAN_MIN_LOG);
        1 << log.min(LIVE.ilog2() as u64)
    }

    /// Records live object `p` with its values (size, site, era << 8 | label); false when no
    /// slot near its hash is free. Slots are looked for in the live span, which doubles (up to
    /// [`LIVE`]) when the window at the hash is full.
    pub(crate) fn insert_live(&self, p: u64, values: [u64; LIVE_WORDS - 1]) -> bool {
        loop {
            let span = self.live_span();
            let start = ptr_hash(p);
            for probe in 0..PROBES {
                let at = live_at((start + probe) % span);
                let key = self.word(at);
                if key.load(Ordering::Relaxed) != 0
                    || key.compare_exchange(0, BUSY, Ordering::Relaxed, Ordering::Relaxed).is_err()
                {
                    continue;
                }
                for (j, &v) in values.iter().enumerate() {
                    self.word(at + 1 + j).store(v, Ordering::Relaxed);
                }
                // Release: a reader (or a free on another thread) that sees the key sees the
                // values.
                key.store(p, Ordering::Release);
                return true;
            }
            if span == LIVE {
                return false;
            }
            // Widen it (another thread may have already: the max keeps the larger).
            self.word(H_LIVE_SPAN).fetch_max(u64::from((span * 2).ilog2()), Ordering::Relaxed);
        }
    }

    /// Forgets live object `p`; false when it was not recorded. It was inserted in some span
    /// up to the current one: each is looked at, smallest first.
    pub(crate) fn remove_live(&self, p: u64) -> bool {
        let start = ptr_hash(p);
        let mut span = LIVE_SPAN_MIN;
        let top = self.live_span();
        while span <= top {
            for probe in 0..PROBES {
                let key = self.word(live_at((start + probe) % span));
                // A sampled object is freed after its insert returned (the program cannot free
                // it before it has the pointer), so a Relaxed load sees our key.
                if key.load(Ordering::Relaxed) == p {
                    key.store(0, Ordering::Relaxed);
                    return true;
                }
            }
            span *= 2;
        }
        false
    }
}

/// A stack's hash, never 0 or [`BUSY`].
pub(crate) fn stack_hash(pcs: &[Cell<u64>]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for pc in pcs {
        h = (h ^ pc.get()).wrapping_mul(0x0000_0100_0000_01b3);
        h ^= h >> 29;
    }
    h | 2
}

fn ptr_hash(p: u64) -> usize {
    ((p >> 3).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40) as usize % LIVE
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> (Vec<AtomicU64>, Table) {
        let words: Vec<AtomicU64> = (0..WORDS).map(|_| AtomicU64::new(0)).collect();
        // SAFETY: the vector holds WORDS words and is returned with the table, so it outlives it.
        let t = unsafe { Table::new(words.as_ptr()) };
        (words, t)
    }

    fn stack(pcs: &mut [u64]) -> &[Cell<u64>] {
        Cell::from_mut(pcs).as_slice_of_cells()
    }

    #[test]
    fn a_stack_gets_one_site_and_its_sums() {
        let (_w, t) = table();
        let a = t.site(stack(&mut [1, 2, 3])).unwrap();
        let b = t.site(stack(&mut [1, 2, 4])).unwrap();
        assert_ne!(a, b);
        assert_eq!(t.site(stack(&mut [1, 2, 3])), Some(a));
        t.add_to_site(a, (1.5 * FIXED) as u64, 96);
        t.add_to_site(a, FIXED as u64, 64);
        assert_eq!(t.word(site_at(a) + 2).load(Ordering::Relaxed), (2.5 * FIXED) as u64);
        assert_eq!(t.word(site_at(a) + 3).load(Ordering::Relaxed), 160);
    }

    #[test]
    fn sites_fill_the_first_span_first_and_are_found_after_widening() {
        let (_w, t) = table();
        // 40 stacks fit the first span (64 slots): the region's first 20 KiB of sites.
        let first: Vec<usize> = (0..40u64).map(|k| t.site(stack(&mut [k, 7, 9])).unwrap()).collect();
        assert!(first.iter().all(|&i| i < SITE_SPAN_MIN), "a site outside the first span: {first:?}");
        assert_eq!(t.site_span(), SITE_SPAN_MIN, "40 sites need no wider span");
        // 600 more widen the span; every stack, old and new, keeps the slot it got.
        let more: Vec<usize> = (40..640u64).map(|k| t.site(stack(&mut [k, 7, 9])).unwrap()).collect();
        assert!(t.site_span() > SITE_SPAN_MIN, "600 more sites widened the span");
        for (k, &i) in (0..40u64).zip(&first).chain((40..640u64).zip(&more)) {
            assert_eq!(t.site(stack(&mut [k, 7, 9])), Some(i), "stack {k} moved");
        }
        let mut all: Vec<usize> = first.iter().chain(&more).copied().collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 640, "two stacks share a slot");
    }

    #[test]
    fn live_entries_come_and_go_and_a_full_window_drops() {
        let (_w, t) = table();
        assert!(t.insert_live(0x1000, [48, 0, 7 << 8]));
        let at = live_at(ptr_hash(0x1000) % LIVE_SPAN_MIN);
        assert_eq!(t.word(at + 3).load(Ordering::Relaxed), 7 << 8, "values beside the key, in the first span");
        assert!(t.remove_live(0x1000));
        assert!(!t.remove_live(0x1000), "removed once");
        // The same address again and again: each full window widens the span, until the
        // window in the whole table is full and the next insert is dropped.
        let mut n = 0;
        while t.insert_live(0x2000, [8, 0, 0]) {
            n += 1;
            assert!(n <= PROBES * 5, "the window at one hash in 5 spans holds at most 5 x PROBES");
        }
        assert!(n >= 2 * PROBES, "widened at least once: {n}");
        assert_eq!(t.live_span(), LIVE);
        // Every copy is found again, in whichever span it went into.
        for _ in 0..n {
            assert!(t.remove_live(0x2000));
        }
        assert!(!t.remove_live(0x2000));
    }

    #[test]
    fn few_live_samples_stay_in_the_first_pages() {
        let (_w, t) = table();
        let ptrs: Vec<u64> = (0..200u64).map(|i| 0x7f00_0000_0000 + i * 4096 * 17).collect();
        for &p in &ptrs {
            assert!(t.insert_live(p, [64, 0, 0]));
        }
        assert_eq!(t.live_span(), LIVE_SPAN_MIN, "200 samples fit the first span");
        let used = (0..LIVE).filter(|&i| t.word(live_at(i)).load(Ordering::Relaxed) != 0).max();
        assert!(used.is_some_and(|i| i < LIVE_SPAN_MIN));
        for &p in &ptrs {
            assert!(t.remove_live(p));
        }
    }
}
