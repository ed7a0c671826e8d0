//! Sampled heap profiling: which call sites hold the live memory, in which epoch and label.
//!
//! Sampling is by bytes, as in tcmalloc and jemalloc's `prof`: each thread heap draws the
//! distance to its next sample from an exponential distribution with mean [`sample_bytes`], and
//! the allocation that crosses it is sampled. So every allocated byte has the same chance of
//! being sampled, and a sample of `s` bytes stands for `1 / (1 - exp(-s / mean))` objects of its
//! kind (the estimate `stats_dump --profile` reports). The thread's count of allocated bytes
//! (kept anyway, for labels) counts down to the next sample point, packed with the heap's epoch
//! generation (`countdown.rs`): the allocation path's one test covers both, so sampling adds
//! no instruction to it.
//!
//! A sample records the stack (return addresses, `unwind.rs` and `walk.rs`), size, era and label
//! in the profile region (`table.rs`); freeing a sampled object removes it. Slabs that hold sampled
//! objects tag them in their era word (`SlabMeta::era_word`), which frees read anyway, and only
//! a sample's own free looks in the table. Sampled small objects are served from the shared
//! fallback heap's slabs, in the sampling thread's epoch (`Heap::alloc_sampled`), so that the
//! frees of the objects around them never see a tag (that branch, taken the other way, was a
//! misprediction in 1 free of 60).
//!
//! Default mean: [`DEFAULT_SAMPLE_BYTES`], 2 MiB (tcmalloc's default). A sample costs about
//! 1,100 instructions (the stack walk of `walk.rs` about 40 a frame, the table the rest), where
//! libgcc's unwinder took 20,000; on `suite profile-cost`'s bare alloc/free loops (about 10 GB/s
//! allocated) 2 MiB adds under 1% of instructions (BENCHMARKS.md has the current figures).
//! jemalloc's and Go's 512 KiB would cost about 4x as much. A 2 MiB mean still gives a 16 MiB
//! leak about 8 samples; investigate smaller ones with a smaller mean. Set it with
//! [`crate::TemporalSlab::with_profile_sample`] or `TSLAB_PROFILE_SAMPLE=BYTES` (which wins),
//! `0` turns sampling off.
//!
//! Nothing here allocates or takes a lock of its own: the region is created with raw system calls
//! by the first sample, tables are claimed with compare-and-swap, and an allocation made while
//! this thread is sampling (the unwinder's, on old libgcc) is served unsampled. The one lock a
//! sample takes is the dynamic loader's recursive one, for a moment (`walk.rs`, as libgcc's
//! lookup does before glibc 2.35): its holders do not wait for the allocator.

use core::cell::Cell;
use core::sync::atomic::{AtomicPtr, AtomicU64, AtomicU8, Ordering};

mod math;
pub mod table;
mod unwind;
#[cfg(target_arch = "x86_64")]
mod walk;

pub(crate) use math::weight;

use crate::countdown::Countdown;
use table::{Table, H_DROPPED, H_SAMPLES, H_SITE_OVERFLOW, NO_SITE};

/// The mean sampling interval when neither the builder nor the environment sets one.
pub const DEFAULT_SAMPLE_BYTES: u64 = 2 << 20;

/// Builder value meaning "not set": the default applies.
pub(crate) const UNSET: u64 = u64::MAX;

/// The profiler's process-wide state, on one line (a sample reads most of it, and between two
/// samples the program has evicted it).
#[repr(C, align(64))]
struct Shared {
    /// The builder's interval ([`UNSET`]: none), noted by the slow paths (every heap's first
    /// allocation takes one, before its first sample point), so that the fast path need not
    /// carry it.
    builder: AtomicU64,
    /// The mean interval in bytes; [`UNSET`] until the first sample point is reached.
    mean: AtomicU64,
    /// The profile region (null: none yet).
    region: AtomicPtr<AtomicU64>,
    /// The region's memfd (`u64::MAX`: none).
    fd: AtomicU64,
    /// 0: no region; 1: being created; 2: ready; 3: unavailable (memfd refused).
    state: AtomicU8,
    /// Whether any object was ever sampled (large frees look for samples only then).
    any: AtomicU8,
}

static SHARED: Shared = Shared {
    builder: AtomicU64::new(UNSET),
    mean: AtomicU64::new(UNSET),
    region: AtomicPtr::new(core::ptr::null_mut()),
    fd: AtomicU64::new(u64::MAX),
    state: AtomicU8::new(0),
    any: AtomicU8::new(0),
};

/// Notes the builder's sampling interval (slow paths only).
#[inline]
pub(crate) fn note_builder(bytes: u64) {
    if SHARED.builder.load(Ordering::Relaxed) != bytes {
        SHARED.builder.store(bytes, Ordering::Relaxed);
    }
}

/// A thread heap's sampling state beside its countdown to the next sample point (the heap's
/// [`Countdown`], which is also its count of allocated bytes, as in tcmalloc: the allocation
/// path pays the subtraction that counts the bytes anyway, and no branch of its own). All-zero
/// is a fresh state: the first sample point reached seeds it and draws the real one.
///
/// On a line of its own, its fields first and the walk's state after them (`walk.rs`'s
/// `Stack`: bounds, counts, then the memo), so that a sample reads and writes as few of the
/// heap's lines as it can: between two samples the program has evicted them all.
#[derive(Default)]
#[repr(C, align(64))]
pub(crate) struct Sampler {
    /// xorshift64* state (0: not seeded).
    rng: Cell<u64>,
    /// The requested size of the allocation on the slow path (see `Heap::note_slow_size`).
    size: Cell<usize>,
    /// This thread is taking a sample now.
    busy: Cell<bool>,
    /// This thread's stack bounds and walk count (`walk.rs`).
    stack: unwind::Stack,
}

/// The gap to the next sample point while sampling is off or compiled out: never reached in
/// practice (2^62 bytes), and then simply drawn again.
pub(crate) const OFF_GAP: u64 = 1 << 62;

impl Sampler {
    /// Keeps the requested size of the allocation on the slow path.
    #[inline(always)]
    #[cfg_attr(not(feature = "profile"), allow(dead_code))]
    pub(crate) fn note_size(&self, size: usize) {
        self.size.set(size);
    }

    /// A heap with this sampler was adopted by a new thread.
    pub(crate) fn new_thread(&self) {
        self.stack.new_thread();
    }

    /// The size kept by [`Sampler::note_size`].
    #[cfg_attr(not(feature = "profile"), allow(dead_code))]
    pub(crate) fn noted_size(&self) -> usize {
        self.size.get()
    }

    /// Whether [`Sampler::on_due`] would record the allocation at the sample point now (not
    /// while this thread samples, nor with sampling off, nor at a heap's first point, which
    /// only seeds it).
    #[cfg_attr(not(feature = "profile"), allow(dead_code))]
    pub(crate) fn will_record(&self) -> bool {
        !self.busy.get() && self.rng.get() != 0 && mean(SHARED.builder.load(Ordering::Relaxed)) != 0
    }

    /// Called when the countdown `cd` reached the sample point: samples object `p` of `size`
    /// bytes (allocated in `era`, with label id `label` + 1 or 0) and draws the next point. Returns whether `p` is now a recorded
    /// sample (its slab must then be tagged).
    #[cold]
    #[inline(never)]
    pub(crate) fn on_due(&self, cd: &Countdown, p: *mut u8, size: usize, era: u64, label: u8) -> bool {
        if self.busy.get() {
            // Not sampled (this thread is sampling): the next allocation reaches the point again.
            cd.set_gap(0);
            return false;
        }
        self.busy.set(true);
        let mean = mean(SHARED.builder.load(Ordering::Relaxed));
        let mut kept = false;
        if mean == 0 {
            cd.set_gap(OFF_GAP);
        } else {
            if self.rng.get() == 0 {
                // First sample point of this heap: seed, and start the real countdown (the
                // first allocation is not sampled: it was not drawn).
                let seed = (core::ptr::from_ref(self).addr() as u64) ^ crate::os::monotonic_ns().rotate_left(32);
                self.rng.set(seed | 1);
            } else {
                kept = record(p, size, era, label, mean, &self.stack);
            }
            let gap = self.draw(mean);
            cd.set_gap(gap);
        }
        self.busy.set(false);
        kept
    }

    /// An exponentially distributed gap with mean `mean`, at least 1.
    fn draw(&self, mean: u64) -> u64 {
        let mut x = self.rng.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng.set(x);
        math::exponential(x.wrapping_mul(0x2545_f491_4f6c_dd1d), mean)
    }
}

/// The mean sampling interval in bytes (0: off): the environment's `TSLAB_PROFILE_SAMPLE`, else
/// the builder's value, else the default. Settled by the first sample point; before it, this
/// tells what it will be as far as known now, without settling it (a snapshot taken before the
/// builder's value is noted must not fix the default in its place).
pub fn sample_bytes() -> u64 {
    if !cfg!(feature = "profile") {
        return 0;
    }
    match SHARED.mean.load(Ordering::Relaxed) {
        UNSET => unsettled(SHARED.builder.load(Ordering::Relaxed)),
        m => m,
    }
}

/// The mean as `mean` would settle it now.
fn unsettled(builder: u64) -> u64 {
    let m = crate::os::env_u64(c"TSLAB_PROFILE_SAMPLE").unwrap_or(if builder == UNSET {
        DEFAULT_SAMPLE_BYTES
    } else {
        builder
    });
    m.min(UNSET - 1)
}

fn mean(builder: u64) -> u64 {
    if !cfg!(feature = "profile") {
        return 0;
    }
    let m = SHARED.mean.load(Ordering::Relaxed);
    if m != UNSET {
        return m;
    }
    let m = unsettled(builder);
    // The first thread to settle it wins; all read the same environment and builder.
    match SHARED.mean.compare_exchange(UNSET, m, Ordering::Relaxed, Ordering::Relaxed) {
        Ok(_) => m,
        Err(now) => now,
    }
}

/// The profile region, created on first use; `None` while another thread creates it or when the
/// system refuses a memfd.
fn table() -> Option<Table> {
    let words = SHARED.region.load(Ordering::Acquire);
    if !words.is_null() {
        // SAFETY: a non-null region pointer is our mapping of `region_len()` bytes, never unmapped
        // except in a forked child's fork handler (before any thread of the child runs).
        return Some(unsafe { Table::new(words) });
    }
    if SHARED.state.compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed).is_err() {
        return None;
    }
    let words = create();
    if words.is_null() {
        SHARED.state.store(3, Ordering::Relaxed);
        return None;
    }
    SHARED.region.store(words, Ordering::Release);
    SHARED.state.store(2, Ordering::Relaxed);
    // SAFETY: as above: the mapping just made.
    Some(unsafe { Table::new(words) })
}

fn create() -> *mut AtomicU64 {
    let len = table::region_len();
    // SAFETY: plain system calls on a descriptor we own; every failure is checked and leaves
    // sampling without a region (no sample is kept).
    unsafe {
        let fd = libc::memfd_create(c"temporal-slab-profile".as_ptr(), libc::MFD_CLOEXEC);
        if fd < 0 {
            return core::ptr::null_mut();
        }
        if !crate::os::file_size_allowed(len) || libc::ftruncate(fd, len as libc::off_t) != 0 {
            libc::close(fd);
            return core::ptr::null_mut();
        }
        let p = libc::mmap(core::ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, fd, 0);
        // The mapping keeps the memfd alive; the descriptor stays open so that other processes
        // find the region in /proc/PID/fd.
        if p == libc::MAP_FAILED {
            libc::close(fd);
            return core::ptr::null_mut();
        }
        SHARED.fd.store(fd as u64, Ordering::Relaxed);
        let words = p.cast::<AtomicU64>();
        Table::new(words).init_header(libc::getpid() as u64, SHARED.mean.load(Ordering::Relaxed));
        crate::counters::GLOBAL.heap_bytes.fetch_add(len as u64, Ordering::Relaxed);
        words
    }
}

/// Records a sample; false when it could not be kept as live (no region, or no slot).
fn record(p: *mut u8, size: usize, era: u64, label: u8, mean: u64, stack: &unwind::Stack) -> bool {
    let Some(t) = table() else { return false };
    let pcs = unwind::capture(table::DEPTH, stack);
    t.bump(H_SAMPLES);
    let site = t.site(pcs);
    match site {
        Some(i) => {
            let (objects, bytes) = math::estimates(size as u64, mean);
            t.add_to_site(i, objects, bytes);
        }
        None => t.bump(H_SITE_OVERFLOW),
    }
    let site = site.map_or(NO_SITE, |i| i as u64);
    // Eras stay far below 2^56 (one a nanosecond would take two years).
    if !t.insert_live(p.addr() as u64, [size as u64, site, era << 8 | label as u64]) {
        t.bump(H_DROPPED);
        return false;
    }
    SHARED.any.store(1, Ordering::Relaxed);
    true
}

/// A sampled-slab object (or a large one) is being freed: forget it if it is a recorded sample.
#[cold]
pub(crate) fn on_free(p: *mut u8) -> bool {
    let words = SHARED.region.load(Ordering::Acquire);
    if words.is_null() {
        return false;
    }
    // SAFETY: as in `table`.
    unsafe { Table::new(words) }.remove_live(p.addr() as u64)
}

/// Whether any sample was ever kept (large frees call `on_free` only then).
#[inline]
pub(crate) fn any() -> bool {
    cfg!(feature = "profile") && SHARED.any.load(Ordering::Relaxed) != 0
}

/// Samples taken and samples not kept as live, for snapshots.
pub(crate) fn counts() -> (u64, u64) {
    let words = SHARED.region.load(Ordering::Acquire);
    if words.is_null() {
        return (0, 0);
    }
    // SAFETY: as in `table`.
    let t = unsafe { Table::new(words) };
    (t.word(H_SAMPLES).load(Ordering::Relaxed), t.word(H_DROPPED).load(Ordering::Relaxed))
}

/// A copy of this process's own profile region (empty when no sample was taken), for
/// in-process readers; `profile_attach` parses it.
pub fn own_region() -> Vec<u64> {
    let words = SHARED.region.load(Ordering::Acquire);
    if words.is_null() {
        return Vec::new();
    }
    // SAFETY: as in `table`.
    let t = unsafe { Table::new(words) };
    (0..table::WORDS).map(|i| t.word(i).load(Ordering::Relaxed)).collect()
}

/// In a forked child: drop the parent's region (the child must not write into it) and its
/// descriptor; the child makes its own at its next sample. Async-signal-safe.
pub(crate) fn after_fork_in_child() {
    let words = SHARED.region.swap(core::ptr::null_mut(), Ordering::Relaxed);
    if !words.is_null() {
        // SAFETY: the inherited mapping of region_len() bytes; the child no longer uses it.
        unsafe { libc::munmap(words.cast(), table::region_len()) };
    }
    let fd = SHARED.fd.swap(u64::MAX, Ordering::Relaxed);
    if fd != u64::MAX {
        // SAFETY: closing the inherited descriptor we opened.
        unsafe { libc::close(fd as i32) };
    }
    SHARED.state.store(0, Ordering::Relaxed);
    SHARED.any.store(0, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_average_the_mean() {
        let s = Sampler::default();
        s.rng.set(0x1234_5678_9abc_def1);
        let n = 20_000;
        let sum: u64 = (0..n).map(|_| s.draw(1 << 20)).sum();
        let avg = sum as f64 / n as f64;
        assert!((avg / (1 << 20) as f64 - 1.0).abs() < 0.03, "average gap {avg}");
    }
}
