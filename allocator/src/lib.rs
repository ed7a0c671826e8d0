//! temporal-slab: a general-purpose Rust global allocator with epoch-grouped slabs and
//! always-on statistics.
//!
//! ```no_run
//! use temporal_slab::TemporalSlab;
//!
//! #[global_allocator]
//! static GLOBAL: TemporalSlab = TemporalSlab::new();
//! ```
//!
//! Small objects (up to 32 KiB) live in 64 KiB slabs of one size class, grouped by *epoch*:
//! allocations made close in time share slabs, so when a phase of the program ends
//! ([`epoch::advance`] then [`epoch::close`]) its slabs drain together and their pages go back to
//! the OS. Programs that never call the epoch API get empty slabs purged beyond a small per-thread
//! cache. Larger objects get their own mappings with a bounded cache. Counters per size class,
//! per epoch and process-wide are always on; [`stats::snapshot`] folds them.
//!
//! See [`design`] for the layout, the invariants and every memory ordering.

#![warn(missing_docs)]

pub mod attach;
mod countdown;
mod counters;
pub mod design;
mod domain;
pub mod epoch;
pub mod future;
mod heap;
mod labels;
pub mod large;
pub mod os;
pub mod paths;
pub mod plausible;
pub mod profile;
pub mod profile_attach;
pub mod publish;
pub mod reclaim;
mod ring;
mod segment;
pub mod size_class;
mod slab;
pub mod stats;
mod sync;
pub mod tenured;

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::{self, NonNull};

pub use domain::{DomainGuard, EpochDomain};
pub use epoch::EpochId;
pub use future::{FutureExt, InDomain};
pub use labels::{label_count, Label, LABEL_MAX, MAX_LABELS, OVERFLOW_LABEL};
pub use reclaim::AutoAdvance;
pub use stats::{snapshot, Snapshot};
pub use tenured::{tenured, TenuredGuard, TENURED_LABEL};

use segment::{KIND_LARGE, KIND_SMALL};
use size_class::{class_for, SizeClass};

/// The allocator. Install it with
/// `#[global_allocator] static GLOBAL: TemporalSlab = TemporalSlab::new();`.
///
/// All instances share one process-wide state, so any instance frees what another allocated.
#[derive(Debug, Clone, Copy)]
pub struct TemporalSlab {
    auto_advance: AutoAdvance,
    profile_sample: u64,
}

impl Default for TemporalSlab {
    fn default() -> Self {
        TemporalSlab::new()
    }
}

impl TemporalSlab {
    /// The allocator; `const` so it can initialise a `static`.
    pub const fn new() -> Self {
        TemporalSlab { auto_advance: AutoAdvance::Off, profile_sample: profile::UNSET }
    }

    /// Advances (and closes) epochs automatically, by time or by volume of new slabs; see
    /// [`reclaim`] for the trade-off. The environment variables `TSLAB_AUTO_ADVANCE_MS` and
    /// `TSLAB_AUTO_ADVANCE_MIB` override this. Applied at the first allocation.
    pub const fn with_auto_advance(self, auto_advance: AutoAdvance) -> Self {
        TemporalSlab { auto_advance, ..self }
    }

    /// Samples allocations for the heap profile (`stats_dump --profile`) every `bytes` bytes on
    /// average (0: off; default [`profile::DEFAULT_SAMPLE_BYTES`], 2 MiB). The environment
    /// variable `TSLAB_PROFILE_SAMPLE` overrides this. Applied at the first sample point.
    pub const fn with_profile_sample(self, bytes: u64) -> Self {
        TemporalSlab { profile_sample: if bytes == profile::UNSET { bytes - 1 } else { bytes }, ..self }
    }
}

/// Gives back to the OS now everything not in use: warm empty slabs, the large-object cache,
/// what exited threads hold, and the free pages inside every thread's partly used slabs (those
/// of threads in an allocator slow path at that moment excepted). (The reclaimer thread does
/// the same for memory idle for 0.5 s, and for the slabs of threads idle for 1 s.)
pub fn trim() {
    segment::decay_warm(0, 0);
    large::purge_cache();
    heap::help_all_parked();
    heap::trim_all();
}

/// One object of `class`: from this thread's heap, or the shared fallback heap when the thread
/// has none. Returns the object (or null) and whether its bytes are known to be zero.
#[inline(always)]
fn alloc_small(class: SizeClass, size: usize, config: &TemporalSlab) -> (*mut u8, bool) {
    let h = heap::current_if_any();
    if !h.is_null() {
        // SAFETY: `current_if_any` returns this thread's own heap, of which we are the owner.
        let heap = unsafe { &*h };
        if let Some((p, zeroed)) = heap.try_alloc_fast(class, size) {
            return (p.as_ptr(), zeroed);
        }
        return alloc_small_after_fast(heap, class, size, config);
    }
    alloc_small_without_heap(class, size, config)
}

/// What follows a fast path that gave up (and counted the bytes): the slow path.
#[inline(always)]
fn alloc_small_after_fast(heap: &heap::Heap, class: SizeClass, size: usize, config: &TemporalSlab) -> (*mut u8, bool) {
    // Kept in the heap for a sample, so that the slow path needs no register for it.
    heap.note_slow_size(size);
    alloc_small_slow(heap, class, config)
}

/// [`alloc_small`] for a thread that has no heap yet (or cannot have one now): out of line,
/// so that the common path tests the thread's heap pointer once.
#[cold]
#[inline(never)]
fn alloc_small_without_heap(class: SizeClass, size: usize, config: &TemporalSlab) -> (*mut u8, bool) {
    paths::mark(paths::Step::NoHeap);
    let h = heap::current();
    if !h.is_null() {
        // SAFETY: `current` returns this thread's own heap, of which we are the owner.
        let heap = unsafe { &*h };
        // A heap just created or adopted: the slow path serves it (and syncs its epoch).
        heap.count_bytes(size);
        heap.note_slow_size(size);
        return alloc_small_slow(heap, class, config);
    }
    // Before the fallback heap's lock (see `heap::alloc_fallback`). This is the first allocation
    // of every C program: the main thread's exit-hook registration allocates while its heap is
    // being set up.
    reclaim::ensure_started();
    heap::alloc_fallback(class).map_or((ptr::null_mut(), false), |(p, z)| (p.as_ptr(), z))
}

/// The slow path of [`alloc_small`] for a thread with a heap: out of line, so that the fast
/// path keeps nothing (size, configuration) alive across a call and saves no extra registers.
#[cold]
#[inline(never)]
fn alloc_small_slow(heap: &heap::Heap, class: SizeClass, config: &TemporalSlab) -> (*mut u8, bool) {
    paths::mark(paths::Step::Slow);
    // A sample point first, before the three settings below: each is a line of its own, cold
    // at a sample, and a sample is recorded only by a heap whose earlier slow path (its first
    // sample point, which only seeds the sampler) already applied them.
    if let Some((p, zeroed)) = heap.alloc_sampled(class) {
        reclaim::after_slow_path();
        return (p.as_ptr(), zeroed);
    }
    reclaim::configure(config.auto_advance);
    profile::note_builder(config.profile_sample);
    // Before the slow path may map memory: the reclaimer starts with the first mapping.
    reclaim::ensure_started();
    let got = heap.alloc_slow(class).map_or((ptr::null_mut(), false), |(p, z)| (p.as_ptr(), z));
    heap.sample_after_slow(got.0);
    // Last, with the heap's state consistent: this may advance and close epochs.
    reclaim::after_slow_path();
    got
}

/// A large object (out of line, like [`alloc_small_slow`]).
#[inline(never)]
fn alloc_large(layout: Layout, config: &TemporalSlab) -> (*mut u8, bool) {
    reclaim::ensure_started();
    profile::note_builder(config.profile_sample);
    let got = large::alloc(layout.size(), layout.align());
    let h = heap::current_if_any();
    if !got.0.is_null() && !h.is_null() {
        // SAFETY: this thread's own heap, of which we are the owner.
        unsafe { &*h }.maybe_sample_large(got.0, layout.size());
    }
    got
}

#[inline(always)]
fn alloc_layout(layout: Layout, config: &TemporalSlab) -> (*mut u8, bool) {
    match class_for(layout.size(), layout.align()) {
        Some(class) => alloc_small(class, layout.size(), config),
        None => alloc_large(layout, config),
    }
}

/// Frees any pointer this allocator returned.
///
/// # Safety
/// `p` must be live and returned by this allocator.
#[inline(always)]
unsafe fn free_any(p: *mut u8) {
    let h = segment::header_of(p);
    // SAFETY: every pointer we return has its (8-aligned) header at `header_of(p)`; reading its
    // first 8 bytes checks magic and kind at once (see TAG_SMALL).
    if unsafe { h.cast::<u64>().read() } == segment::TAG_SMALL {
        // SAFETY: a small-segment header; p lies in one of its slabs and is live.
        unsafe { heap::free_small(segment::slab_of(h, p), p) }
    } else {
        // SAFETY: forwarded caller guarantee.
        unsafe { free_not_small(p) }
    }
}

#[cold]
unsafe fn free_not_small(p: *mut u8) {
    // SAFETY: caller guarantees p is ours and live; `header` validates the magic.
    let h = unsafe { heap::header(p) };
    // SAFETY: validated header.
    match unsafe { (*h).kind } {
        // SAFETY: a large header of the live object p.
        KIND_LARGE => unsafe { large::free(h) },
        _ => crate::os::invalid_pointer(),
    }
}

/// Frees `p` without its layout (for the C `free`): the slab or mapping header of a block says
/// everything freeing needs.
///
/// # Safety
/// `p` must be live and returned by this allocator (through any entry point).
#[inline]
pub unsafe fn free(p: *mut u8) {
    // SAFETY: forwarded caller guarantee.
    unsafe { free_any(p) }
}

/// Resizes `p` to `new_size` bytes aligned to `align` without its old layout (for the C
/// `realloc`): the block stays where it is when its size class still fits (or, for a large
/// object, when its mapping can be resized), else its first `min(usable_size(p), new_size)`
/// bytes move to a new block and `p` is freed. Returns null, leaving `p` untouched, when memory
/// is exhausted.
///
/// # Safety
/// `p` must be live and returned by this allocator; `align` must be a power of two, and
/// `new_size` must be non-zero and not overflow `isize` when rounded up to `align` (the
/// [`Layout`] rules).
#[inline]
pub unsafe fn realloc(p: *mut u8, new_size: usize, align: usize) -> *mut u8 {
    // SAFETY: forwarded caller guarantees; `None`: copy what the header says is usable.
    unsafe { realloc_block(p, None, new_size, align, &TemporalSlab::new()) }
}

/// [`realloc`] with C's `malloc` alignment for the new size (16 from 16 bytes up, else 8), its
/// class found by one table lookup (the C ABI's `realloc`).
///
/// # Safety
/// `p` must be live and returned by this allocator; `new_size` must be non-zero and at most
/// `isize::MAX - 15`.
#[inline]
pub unsafe fn realloc_c(p: *mut u8, new_size: usize) -> *mut u8 {
    // SAFETY: forwarded caller guarantees.
    unsafe { realloc_block(p, None, new_size, C_RULES, &TemporalSlab::new()) }
}

/// The `align` that tells [`realloc_block`] to apply C's alignment rule (not a power of two, so
/// never a real alignment).
const C_RULES: usize = 0;

/// The one realloc: `old_size` is the caller's size of the block (`GlobalAlloc`), or `None` to
/// use its usable size (the C ABI, which does not know it).
///
/// # Safety
/// `p` live and ours; `align` a power of two, or [`C_RULES`]; `new_size` valid for a `Layout`
/// with `align` (C's alignment for `new_size` under `C_RULES`).
unsafe fn realloc_block(
    p: *mut u8,
    old_size: Option<usize>,
    new_size: usize,
    align: usize,
    config: &TemporalSlab,
) -> *mut u8 {
    // SAFETY: the caller guarantees p is ours and live.
    let h = unsafe { heap::header(p) };
    // SAFETY: validated header.
    let kind = unsafe { (*h).kind };
    // C's alignment rule (`realloc_c`) by its table, else the general one.
    let new_class = if align == C_RULES { size_class::class_for_c(new_size) } else { class_for(new_size, align) };
    let align = if align == C_RULES {
        if new_size >= 16 {
            16
        } else {
            8
        }
    } else {
        align
    };
    let old_usable = if kind == KIND_SMALL {
        // SAFETY: small header of a live object.
        let class = unsafe { (*segment::slab_of(h, p)).class() };
        if new_class == Some(class) {
            return p;
        }
        class.object_size()
    } else if kind == KIND_LARGE {
        if new_class.is_none() {
            // SAFETY: large header of the live object p.
            let q = unsafe { large::realloc(h, p, new_size) };
            if !q.is_null() {
                if q != p && profile::any() {
                    // A moved sample is no longer at its address: it leaves the live samples.
                    profile::on_free(p);
                }
                return q;
            }
        }
        // SAFETY: large header of the live object p (unchanged when `large::realloc` failed).
        unsafe { large::usable_size(h) }
    } else {
        crate::os::invalid_pointer()
    };
    // Move: allocate (by the class found above), copy, free.
    let q = match new_class {
        Some(class) => alloc_small(class, new_size, config).0,
        None => match Layout::from_size_align(new_size, align) {
            Ok(layout) => alloc_large(layout, config).0,
            Err(_) => return ptr::null_mut(),
        },
    };
    if !q.is_null() {
        // SAFETY: both blocks are live, distinct, and at least min(old, new) bytes long (the
        // caller's old size is at most the usable size).
        unsafe {
            ptr::copy_nonoverlapping(p, q, old_size.unwrap_or(old_usable).min(new_size));
            free_any(p);
        }
    }
    q
}

/// Bytes usable at `p` (at least the size it was allocated with).
///
/// # Safety
/// `p` must be live and returned by this allocator.
pub unsafe fn usable_size(p: *mut u8) -> usize {
    // SAFETY: caller guarantees p is ours and live.
    let h = unsafe { heap::header(p) };
    // SAFETY: validated header.
    match unsafe { (*h).kind } {
        // SAFETY: a small-segment header of a live object.
        KIND_SMALL => unsafe { (*segment::slab_of(h, p)).class().object_size() },
        // SAFETY: a large header of a live object.
        KIND_LARGE => unsafe { large::usable_size(h) },
        _ => crate::os::invalid_pointer(),
    }
}

/// Where [`TemporalSlab::alloc_c_fast`] left off: whether it already counted the allocation's
/// bytes (the slow path must not count them again).
#[derive(Clone, Copy, Debug)]
#[repr(transparent)]
pub struct CSlowPath {
    counted: bool,
}

impl TemporalSlab {
    /// The fast path of [`TemporalSlab::alloc_c`] alone (`zeroed` false): a block of `size`
    /// bytes (at most 1 KiB) from this thread's free cache or allocation slab, or the state to
    /// hand to [`TemporalSlab::alloc_c_slow`] for everything else (a larger size, no thread
    /// heap yet, an empty cache and slab, an epoch change, a sample point). It calls nothing, so
    /// a caller that sends the rest to an out-of-line function keeps its own fast path a leaf:
    /// C's `malloc` then needs no stack frame and no null test on it.
    #[inline(always)]
    pub fn alloc_c_fast(&self, size: usize) -> Result<NonNull<u8>, CSlowPath> {
        if size > 1024 {
            return Err(CSlowPath { counted: false });
        }
        let Some(class) = size_class::class_for_c(size) else { return Err(CSlowPath { counted: false }) };
        let h = heap::current_if_any();
        if h.is_null() {
            return Err(CSlowPath { counted: false });
        }
        // SAFETY: `current_if_any` returns this thread's own heap, of which we are the owner.
        match unsafe { &*h }.try_alloc_fast(class, size) {
            Some((p, _)) => Ok(p),
            // The fast path counted the bytes before it gave up.
            None => Err(CSlowPath { counted: true }),
        }
    }

    /// The rest of [`TemporalSlab::alloc_c`] (`zeroed` false) after
    /// [`TemporalSlab::alloc_c_fast`] gave `slow` for the same `size`: null when memory is
    /// exhausted or `size` is too large.
    #[inline(never)]
    pub fn alloc_c_slow(&self, size: usize, slow: CSlowPath) -> *mut u8 {
        if slow.counted {
            let h = heap::current_if_any();
            if let (false, Some(class)) = (h.is_null(), size_class::class_for_c(size)) {
                // SAFETY: this thread's own heap, as in `alloc_c_fast`.
                return alloc_small_after_fast(unsafe { &*h }, class, size, self).0;
            }
        }
        self.alloc_c(size, false)
    }

    /// A block of `size` bytes with C's `malloc` alignment (16 from 16 bytes up, else 8; size
    /// 0 as 1), zeroed if `zeroed`; null when memory is exhausted or `size` is too large. The C
    /// ABI's `malloc` and `calloc`: the same path as [`GlobalAlloc::alloc`] without building
    /// and checking a [`Layout`] (one table lookup for the class).
    #[inline(always)]
    pub fn alloc_c(&self, size: usize, zeroed: bool) -> *mut u8 {
        let (p, known_zero) = match size_class::class_for_c(size) {
            Some(class) => alloc_small(class, size, self),
            None => match Layout::from_size_align(size, 16) {
                Ok(layout) => alloc_large(layout, self),
                Err(_) => return ptr::null_mut(),
            },
        };
        if zeroed && !p.is_null() && !known_zero {
            // SAFETY: p is a fresh block of at least `size` bytes.
            unsafe { ptr::write_bytes(p, 0, size) };
        }
        p
    }
}

// SAFETY: `alloc` returns null or a block of at least `layout.size()` bytes aligned to
// `layout.align()` that no other live allocation overlaps (size classes honour alignment, see
// `size_class::class_for`; large objects are placed at `align`-aligned offsets); `dealloc`
// accepts exactly the pointers we returned; nothing here unwinds.
unsafe impl GlobalAlloc for TemporalSlab {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        alloc_layout(layout, self).0
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let (p, zeroed) = alloc_layout(layout, self);
        if !p.is_null() && !zeroed {
            // SAFETY: p is a fresh block of at least layout.size() bytes.
            unsafe { ptr::write_bytes(p, 0, layout.size()) };
        }
        p
    }

    #[inline]
    unsafe fn dealloc(&self, p: *mut u8, _layout: Layout) {
        // SAFETY: GlobalAlloc's contract: p was returned by this allocator and is live.
        unsafe { free_any(p) }
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: GlobalAlloc's contract: p is ours and live, `layout` fits it, `new_size` is
        // valid with `layout.align()`.
        unsafe { realloc_block(p, Some(layout.size()), new_size, layout.align(), self) }
    }
}

/// Hooks for tests: failure injection through the OS layer, and fork.
pub mod testing {
    /// Publishes an extra statistics region whose header claims layout `version`, to test
    /// readers against a layout they do not know. Returns false if memfd is unavailable.
    pub fn publish_fake_region(version: u64) -> bool {
        crate::publish::publish_fake_region(version)
    }

    /// Resizes the last region [`publish_fake_region`] made to `len` bytes (as a hostile target
    /// could truncate its memfd under a reader). Returns false when there is none.
    pub fn resize_fake_region(len: usize) -> bool {
        crate::publish::resize_fake_region(len)
    }

    /// Bytes of a published region (header and body, rounded up to 4 KiB).
    pub fn region_len() -> usize {
        crate::publish::region_len()
    }

    /// Forks the process: `Ok(None)` in the child, `Ok(Some(child_pid))` in the parent. The
    /// allocator's fork handlers keep its locks consistent, and the child publishes its own
    /// statistics region, never the parent's. Heaps of threads other than the caller stay
    /// unused in the child (their threads do not exist there). For tests and demos of fork
    /// safety; the usual rules for forking a multi-threaded program apply to everything else.
    pub fn fork() -> std::io::Result<Option<u32>> {
        crate::reclaim::ensure_started();
        // SAFETY: fork has no memory-safety preconditions of its own; the allocator's atfork
        // handlers (registered by `ensure_started`) take and release its locks around it.
        match unsafe { libc::fork() } {
            -1 => Err(std::io::Error::last_os_error()),
            0 => Ok(None),
            pid => Ok(Some(pid as u32)),
        }
    }

    /// While `on`, every request for new memory from the OS is refused, as if the system were out
    /// of memory; allocations that need new memory return null. Existing memory keeps working.
    pub fn refuse_os_memory(on: bool) {
        crate::os::OS.set_refuse(on);
    }
}
