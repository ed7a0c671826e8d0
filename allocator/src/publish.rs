//! Publishing the counters where another process can read them: a memfd-backed shared mapping
//! that the reclaimer thread rewrites every tick (100 ms) under a seqlock, the way `jstat`
//! reads the JVM's memory-mapped performance counters.
//!
//! Layout (version [`LAYOUT_VERSION`]), all little-endian u64 words:
//! - a header of [`HEADER_WORDS`] words: magic `"TSLABSTA"`, layout version, header bytes, body
//!   bytes, number of size classes, epoch slots, label slots, the publishing pid, the seqlock
//!   sequence, the number of publishes, the publish interval in ns;
//! - the body: the raw snapshot (`stats::RawSnapshot`), every field a u64.
//!
//! A reader refuses a region whose magic, version or sizes it does not know (see `attach.rs`).
//! The seqlock: the writer makes the sequence odd, writes the body, makes it even again; a reader
//! copies the body between two equal, even reads of the sequence.
//!
//! Access control is the kernel's: the region is reachable only through `/proc/PID/fd`, which
//! requires the ptrace access check (same uid, or root). Nothing is written to the file system
//! and nothing is left when the process exits. `MFD_CLOEXEC` keeps it out of exec'd programs;
//! after `fork`, the child drops the parent's mapping and descriptor and publishes its own.
//! `TSLAB_PUBLISH=0` turns publishing off; if memfd is unavailable (a sandbox), the allocator
//! works as usual and in-process snapshots still work.

use core::sync::atomic::{fence, AtomicI32, AtomicPtr, AtomicU64, AtomicU8, AtomicUsize, Ordering};

use crate::stats::{gather, RawSnapshot};

/// `"TSLABSTA"` as a little-endian word.
pub const MAGIC: u64 = u64::from_le_bytes(*b"TSLABSTA");
/// Version of the region layout this build writes and reads.
pub const LAYOUT_VERSION: u64 = 4;
/// Words in the header.
pub const HEADER_WORDS: usize = 16;
/// The memfd's name, as it appears in `/proc/PID/fd` (`/memfd:temporal-slab-stats (deleted)`).
pub const MEMFD_NAME: &str = "temporal-slab-stats";
/// How often the region is rewritten (the reclaimer thread's tick, `reclaim::TICK_NS`).
pub const PUBLISH_INTERVAL_NS: u64 = 100_000_000;

pub(crate) const H_MAGIC: usize = 0;
pub(crate) const H_VERSION: usize = 1;
pub(crate) const H_HEADER_BYTES: usize = 2;
pub(crate) const H_BODY_BYTES: usize = 3;
pub(crate) const H_CLASSES: usize = 4;
pub(crate) const H_EPOCHS: usize = 5;
pub(crate) const H_LABELS: usize = 6;
pub(crate) const H_PID: usize = 7;
pub(crate) const H_SEQ: usize = 8;
pub(crate) const H_PUBLISHES: usize = 9;
pub(crate) const H_INTERVAL: usize = 10;

pub(crate) const BODY_WORDS: usize = core::mem::size_of::<RawSnapshot>() / 8;
const _: () = assert!(core::mem::size_of::<RawSnapshot>().is_multiple_of(8));

static REGION: AtomicPtr<AtomicU64> = AtomicPtr::new(core::ptr::null_mut());
static REGION_LEN: AtomicUsize = AtomicUsize::new(0);
static REGION_FD: AtomicI32 = AtomicI32::new(-1);
/// 0: not tried; 1: publishing; 2: off (disabled or memfd unavailable).
static STATE: AtomicU8 = AtomicU8::new(0);

/// Total bytes of the region (header + body, rounded up to a page).
pub(crate) fn region_len() -> usize {
    let page = 4096;
    ((HEADER_WORDS + BODY_WORDS) * 8).div_ceil(page) * page
}

/// The header of a region of this process: (word index, value).
fn header_words() -> [(usize, u64); 9] {
    [
        (H_MAGIC, MAGIC),
        (H_VERSION, LAYOUT_VERSION),
        (H_HEADER_BYTES, (HEADER_WORDS * 8) as u64),
        (H_BODY_BYTES, (BODY_WORDS * 8) as u64),
        (H_CLASSES, crate::size_class::NUM_CLASSES as u64),
        (H_EPOCHS, crate::epoch::EPOCH_SLOTS as u64),
        (H_LABELS, crate::counters::MAX_LABELS as u64),
        // SAFETY: getpid has no preconditions.
        (H_PID, unsafe { libc::getpid() } as u64),
        (H_INTERVAL, PUBLISH_INTERVAL_NS),
    ]
}

fn create() -> *mut AtomicU64 {
    if crate::os::env_is_off(c"TSLAB_PUBLISH") {
        STATE.store(2, Ordering::Relaxed);
        return core::ptr::null_mut();
    }
    let len = region_len();
    // SAFETY: plain syscalls on a fresh descriptor we own; every failure is checked and leaves
    // publishing off.
    unsafe {
        let fd = libc::memfd_create(c"temporal-slab-stats".as_ptr(), libc::MFD_CLOEXEC);
        if fd < 0 {
            STATE.store(2, Ordering::Relaxed);
            return core::ptr::null_mut();
        }
        if !crate::os::file_size_allowed(len) || libc::ftruncate(fd, len as libc::off_t) != 0 {
            libc::close(fd);
            STATE.store(2, Ordering::Relaxed);
            return core::ptr::null_mut();
        }
        let p = libc::mmap(core::ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, fd, 0);
        if p == libc::MAP_FAILED {
            libc::close(fd);
            STATE.store(2, Ordering::Relaxed);
            return core::ptr::null_mut();
        }
        let words = p.cast::<AtomicU64>();
        for (i, v) in header_words() {
            (*words.add(i)).store(v, Ordering::Relaxed);
        }
        REGION_FD.store(fd, Ordering::Relaxed);
        REGION_LEN.store(len, Ordering::Relaxed);
        crate::counters::GLOBAL.heap_bytes.fetch_add(len as u64, Ordering::Relaxed);
        REGION.store(words, Ordering::Release);
        STATE.store(1, Ordering::Relaxed);
        words
    }
}

/// Writes a fresh snapshot into the region (creating it on first use). Called by the reclaimer
/// thread only, so there is a single writer.
pub(crate) fn publish() {
    let mut words = REGION.load(Ordering::Acquire);
    if words.is_null() {
        if STATE.load(Ordering::Relaxed) != 0 {
            return;
        }
        words = create();
        if words.is_null() {
            return;
        }
    }
    let mut raw = RawSnapshot::zeroed();
    gather(&mut raw, true);
    // SAFETY: RawSnapshot is repr(C), made only of u64s, BODY_WORDS words long.
    let body: &[u64; BODY_WORDS] = unsafe { &*core::ptr::from_ref(&raw).cast::<[u64; BODY_WORDS]>() };
    // SAFETY: `words` is our live mapping of region_len() bytes: HEADER_WORDS + BODY_WORDS words
    // fit; atomics make the concurrent reads of other processes well defined.
    unsafe {
        let seq = &*words.add(H_SEQ);
        let s = seq.load(Ordering::Relaxed);
        seq.store(s.wrapping_add(1), Ordering::Relaxed);
        // Release fence: the odd sequence is visible before any body word changes (pairs with
        // the reader's Acquire fence before its second sequence read).
        fence(Ordering::Release);
        for (i, &w) in body.iter().enumerate() {
            (*words.add(HEADER_WORDS + i)).store(w, Ordering::Relaxed);
        }
        // Release: the body words are visible before the even sequence (pairs with the reader's
        // Acquire load of the sequence).
        seq.store(s.wrapping_add(2), Ordering::Release);
        (*words.add(H_PUBLISHES)).fetch_add(1, Ordering::Relaxed);
    }
}

/// In a forked child: forget the parent's region (never write into it) and close its
/// descriptor, so that `/proc/CHILD/fd` shows only the child's own region once it publishes.
/// Async-signal-safe (munmap, close, atomics).
pub(crate) fn after_fork_in_child() {
    let words = REGION.swap(core::ptr::null_mut(), Ordering::Relaxed);
    if !words.is_null() {
        // SAFETY: the mapping was ours (inherited); the child no longer uses it.
        unsafe { libc::munmap(words.cast(), REGION_LEN.load(Ordering::Relaxed)) };
    }
    let fd = REGION_FD.swap(-1, Ordering::Relaxed);
    if fd >= 0 {
        // SAFETY: closing the inherited descriptor we opened.
        unsafe { libc::close(fd) };
    }
    if STATE.load(Ordering::Relaxed) == 1 {
        STATE.store(0, Ordering::Relaxed);
    }
}

/// Test hook: publishes a region whose header claims layout `version` (so a reader can be
/// tested against a layout it does not know). The descriptor stays open for the life of the
/// process. Returns false if memfd is unavailable.
pub(crate) fn publish_fake_region(version: u64) -> bool {
    let len = region_len();
    // SAFETY: plain syscalls on a fresh descriptor we own; failures are checked. The mapping is
    // leaked on purpose (the region must stay visible).
    unsafe {
        let fd = libc::memfd_create(c"temporal-slab-stats".as_ptr(), libc::MFD_CLOEXEC);
        if fd < 0 || !crate::os::file_size_allowed(len) || libc::ftruncate(fd, len as libc::off_t) != 0 {
            return false;
        }
        let p = libc::mmap(core::ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, fd, 0);
        if p == libc::MAP_FAILED {
            return false;
        }
        let words = p.cast::<AtomicU64>();
        for (i, v) in header_words() {
            (*words.add(i)).store(v, Ordering::Relaxed);
        }
        (*words.add(H_VERSION)).store(version, Ordering::Relaxed);
        // One (empty, all-zero) snapshot "published": a reader copies the body.
        (*words.add(H_PUBLISHES)).store(1, Ordering::Relaxed);
        FAKE_FD.store(fd, Ordering::Relaxed);
        true
    }
}

/// The descriptor of the last region `publish_fake_region` made (-1: none).
static FAKE_FD: core::sync::atomic::AtomicI32 = core::sync::atomic::AtomicI32::new(-1);

/// Test hook: resizes the last fake region to `len` bytes, as a hostile target could do to its
/// memfd while a reader copies it. Nothing of ours writes the fake region after it is made, so
/// this hurts only readers. Returns false when there is no fake region or the resize failed.
pub(crate) fn resize_fake_region(len: usize) -> bool {
    let fd = FAKE_FD.load(Ordering::Relaxed);
    // SAFETY: ftruncate on our own descriptor (or -1, which fails cleanly).
    fd >= 0 && crate::os::file_size_allowed(len) && unsafe { libc::ftruncate(fd, len as libc::off_t) } == 0
}
