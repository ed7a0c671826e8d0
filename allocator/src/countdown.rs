//! The allocation path's one test: a thread heap's epoch generation and its byte countdown to the
//! next heap-profile sample point, packed in one word so that a single compare covers both.
//!
//! The fast path must notice two events: the epoch generation (`ring::GEN`) changed, so the heap
//! has to follow an advance or close; and the thread's allocated bytes reached the next sample
//! point. Tested apart, they cost a compare and a branch each. Here `GEN` moves in steps of
//! [`STEP`] (2^24), and the heap keeps `key = gen + left`: `gen` the generation it last
//! synchronised with, `left` the bytes to the end of the current chunk of its countdown, in
//! `[0, STEP)`. The fast path subtracts the object's size from `key` and takes the slow path when
//! `key - GEN`, as a signed number, is negative: either `GEN` moved on (by `STEP` or more, which
//! outweighs any `left`) or the subtraction borrowed out of `left`. The slow path tells the two
//! apart with `gen` itself. jemalloc folds its thread events into one counter the same way; the
//! epoch generation is ours to fold in because it only ever grows by whole steps.
//!
//! A sample gap longer than a chunk is kept in `rest` and moved into `left` a chunk at a time: a
//! slow-path visit per 16 MiB allocated, which is also all that sampling turned off costs.
//! With both `stats` and `profile` compiled out there is no countdown: `left` stays 0 and the
//! test is the generation's alone.
//!
//! Wrapping: `GEN` wraps after 2^40 changes. The signed difference is right while a heap lags by
//! fewer than 2^39 of them (a thread idle through 2^39 epoch changes: 6 days at a million a
//! second); past that its fast path could miss one change until its next slow path of any kind
//! (a bin refill, or at most 16 MiB later the end of a chunk), which compares the full `gen`.

use core::cell::Cell;

/// How far each change of `ring::GEN` moves it, and the length of a countdown chunk. Larger
/// than any small object (32 KiB), so one subtraction borrows out of `left` at most once.
pub(crate) const STEP: u64 = 1 << 24;

/// A heap's packed generation and countdown (owner-only). All-zero is a fresh one: its `key`
/// lags any `GEN` (which starts at [`STEP`]), so the first allocation takes the slow path.
#[derive(Default)]
pub(crate) struct Countdown {
    /// `gen + left` (wrapping).
    key: Cell<u64>,
    /// The generation last synchronised with (a multiple of [`STEP`], wrapping).
    gen: Cell<u64>,
    /// The part of the gap to the next sample point beyond the current chunk.
    rest: Cell<u64>,
    /// The allocated-bytes count at the next sample point: `allocated = mark - (left + rest)`.
    mark: Cell<u64>,
}

impl Countdown {
    /// Where `key` lies in a `Countdown` (for [`Countdown::count_and_test`]'s `KEY_AT`).
    pub(crate) const KEY_OFFSET: usize = core::mem::offset_of!(Countdown, key);

    /// The fast path's test: counts `bytes` allocated (with `stats` or `profile`) and tells whether the
    /// allocation may stay on the fast path against the global generation `global`. When it may
    /// not, the bytes are counted all the same: the slow path serves the same allocation.
    ///
    /// `base` is the address of the struct that holds this countdown, at `KEY_AT` bytes below
    /// its `key` (the heap, whose address the fast path has in a register anyway): so the key is
    /// addressed from it with no instruction of its own.
    #[inline(always)]
    pub(crate) fn count_and_test<const KEY_AT: usize>(&self, base: *const u8, bytes: u64, global: u64) -> bool {
        debug_assert_eq!(base.wrapping_add(KEY_AT), self.key.as_ptr().cast_const().cast::<u8>());
        // On x86_64 in assembly: a subtract into memory, a compare from memory and the branch, as
        // many instructions as the generation's test and the byte count took apart before the
        // sample point shared them. From Rust the compiler keeps the new key in a register (a
        // load, subtract, store and compare: two more), and it does not fold an atomic or
        // volatile reload into the compare. (A `label` operand, asm goto: Rust 1.87, the
        // workspace's rust-version.)
        #[cfg(all(any(feature = "stats", feature = "profile"), target_arch = "x86_64", not(miri)))]
        {
            // SAFETY: `base + KEY_AT` is this countdown's `key` (the caller's contract, checked
            // in debug builds), valid for reads and writes, and only its owner thread (this one)
            // touches it; the assembly reads and writes that word alone, uses no stack and
            // changes only the flags (which asm! assumes clobbered).
            unsafe {
                core::arch::asm!(
                    "sub qword ptr [{base} + {at}], {bytes}",
                    "cmp qword ptr [{base} + {at}], {global}",
                    "js {slow}",
                    base = in(reg) base,
                    at = const KEY_AT,
                    bytes = in(reg) bytes,
                    global = in(reg) global,
                    slow = label { return false; },
                    options(nostack),
                );
            }
            true
        }
        #[cfg(not(all(any(feature = "stats", feature = "profile"), target_arch = "x86_64", not(miri))))]
        {
            let _ = base;
            self.count(bytes);
            self.key.get().wrapping_sub(global) as i64 >= 0
        }
    }

    /// Counts `bytes` allocated, for an allocation that did not go through
    /// [`Countdown::count_and_test`] (a heap's first, served by the slow path).
    #[inline(always)]
    pub(crate) fn count(&self, bytes: u64) {
        if cfg!(any(feature = "stats", feature = "profile")) {
            self.key.set(self.key.get().wrapping_sub(bytes));
        }
    }

    /// Whether `global` is a generation this heap has not synchronised with.
    #[inline(always)]
    pub(crate) fn stale(&self, global: u64) -> bool {
        self.gen.get() != global
    }

    /// The heap has synchronised with generation `global`; the countdown keeps its place.
    pub(crate) fn sync(&self, global: u64) {
        let left = self.left();
        self.gen.set(global);
        self.set_left(left);
    }

    /// Makes the next allocation take the slow path and refresh, whatever `GEN` is (a domain
    /// changed the epoch the thread should allocate in; a parked heap was adopted).
    pub(crate) fn force_stale(&self) {
        let left = self.left();
        self.gen.set(self.gen.get().wrapping_sub(STEP));
        self.set_left(left);
    }

    /// Bytes to the end of the current chunk; negative just after an allocation crossed it.
    #[inline]
    fn left(&self) -> i64 {
        self.key.get().wrapping_sub(self.gen.get()) as i64
    }

    fn set_left(&self, left: i64) {
        self.key.set(self.gen.get().wrapping_add(left as u64));
    }

    /// Whether the last allocation counted crossed the end of the current chunk: the slow path
    /// must then call [`Countdown::reached`].
    #[inline(always)]
    pub(crate) fn crossed(&self) -> bool {
        self.left() < 0
    }

    /// After a chunk's end was crossed: moves the next chunk of the gap into `left` and returns
    /// false, or returns true when the whole gap is used up (the allocation just counted
    /// reached the sample point: the caller samples it, or not, and draws the next gap).
    pub(crate) fn reached(&self) -> bool {
        let remaining = self.remaining();
        if remaining < 0 {
            return true;
        }
        self.set_chunked(remaining as u64);
        false
    }

    /// Moves the sample point `bytes` closer without counting them as allocated (large objects
    /// take their share of the interval this way). Returns whether it was reached.
    #[cfg_attr(not(feature = "profile"), allow(dead_code))]
    pub(crate) fn advance(&self, bytes: u64) -> bool {
        let now = self.allocated();
        let remaining = self.remaining().wrapping_sub(bytes as i64);
        if remaining < 0 {
            // Crossed (by one byte, as far as `left` shows) until the caller draws the next gap;
            // `mark` keeps `allocated` where it was.
            self.rest.set(0);
            self.set_left(-1);
            self.mark.set(now.wrapping_sub(1));
            return true;
        }
        self.mark.set(now.wrapping_add(remaining as u64));
        self.set_chunked(remaining as u64);
        false
    }

    /// The thread's allocated bytes (small objects) so far, wrapping.
    pub(crate) fn allocated(&self) -> u64 {
        self.mark.get().wrapping_sub(self.remaining() as u64)
    }

    /// Bytes to the sample point: the current chunk's and the rest of the gap.
    fn remaining(&self) -> i64 {
        self.left().wrapping_add(self.rest.get() as i64)
    }

    /// The next sample point lies `gap` bytes ahead.
    pub(crate) fn set_gap(&self, gap: u64) {
        let now = self.allocated();
        self.mark.set(now.wrapping_add(gap));
        self.set_chunked(gap);
    }

    fn set_chunked(&self, remaining: u64) {
        let chunk = remaining.min(STEP - 1);
        self.rest.set(remaining - chunk);
        self.set_left(chunk as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(c: &Countdown, bytes: u64, global: u64) -> bool {
        c.count_and_test::<{ Countdown::KEY_OFFSET }>(core::ptr::from_ref(c).cast(), bytes, global)
    }

    #[test]
    fn fresh_takes_the_slow_path_then_stays_fast() {
        let c = Countdown::default();
        assert!(!t(&c, 64, STEP), "a fresh heap lags the first generation");
        c.sync(STEP);
        c.set_gap(1000);
        assert!(t(&c, 64, STEP));
        assert_eq!(c.allocated(), 128);
    }

    #[test]
    fn a_generation_change_fails_the_test_and_sync_keeps_the_count() {
        let c = Countdown::default();
        c.sync(STEP);
        c.set_gap(STEP - 1);
        assert!(t(&c, 32, STEP));
        assert!(!t(&c, 32, 2 * STEP), "the test must see GEN move by one step");
        assert!(c.stale(2 * STEP) && !c.crossed());
        c.sync(2 * STEP);
        assert!(!c.stale(2 * STEP));
        assert_eq!(c.allocated(), 64);
        assert!(t(&c, 32, 2 * STEP));
    }

    #[test]
    fn the_allocation_that_crosses_the_sample_point_fails_the_test() {
        let c = Countdown::default();
        c.sync(STEP);
        c.set_gap(100);
        assert!(t(&c, 64, STEP));
        assert!(!t(&c, 64, STEP), "128 bytes pass a point 100 bytes ahead");
        assert!(!c.stale(STEP) && c.crossed() && c.reached());
        c.set_gap(1000);
        assert!(!c.crossed());
        assert!(t(&c, 64, STEP));
        assert_eq!(c.allocated(), 192);
    }

    #[test]
    fn a_long_gap_goes_a_chunk_at_a_time() {
        let c = Countdown::default();
        c.sync(STEP);
        let gap = 3 * STEP + 5;
        c.set_gap(gap);
        let mut crossings = 0;
        let mut total = 0u64;
        loop {
            total += 32 << 10;
            if !t(&c, 32 << 10, STEP) {
                assert!(c.crossed());
                if c.reached() {
                    break;
                }
                crossings += 1;
            }
        }
        assert_eq!(crossings, 3, "one visit per chunk");
        assert!(total > gap && total - gap <= 32 << 10, "reached within one object of the point");
        assert_eq!(c.allocated(), total);
    }

    #[test]
    fn force_stale_and_wrapping() {
        let c = Countdown::default();
        let near_wrap = 0u64.wrapping_sub(STEP);
        c.sync(near_wrap);
        c.set_gap(500);
        assert!(t(&c, 100, near_wrap));
        // GEN wraps past zero: still a change.
        assert!(!t(&c, 100, 0));
        c.sync(0);
        assert!(t(&c, 100, 0));
        c.force_stale();
        assert!(c.stale(0) && !t(&c, 100, 0));
        c.sync(0);
        assert_eq!(c.allocated(), 400);
        assert!(!c.crossed());
        assert!(t(&c, 100, 0), "500 bytes only reach a point 500 ahead");
        assert!(!t(&c, 8, 0) && c.crossed() && c.reached());
    }

    #[test]
    fn large_objects_move_the_point_without_counting() {
        let c = Countdown::default();
        c.sync(STEP);
        c.set_gap(10 * STEP);
        assert!(!c.advance(4 * STEP));
        assert_eq!(c.allocated(), 0);
        assert!(c.advance(7 * STEP), "11 chunks pass a point 10 ahead");
        assert!(c.crossed() && c.reached());
        c.set_gap(STEP);
        assert!(!c.crossed());
        assert_eq!(c.allocated(), 0);
    }
}
