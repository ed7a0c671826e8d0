//! The OS layer: mapping, unmapping and purging pages, behind a small trait.
//!
//! Everything the allocator asks of the kernel goes through [`PageSource`]. The global allocator
//! uses `Os`, which is the real `mmap` implementation wrapped in a failure injector: tests turn
//! the injector on with [`crate::testing::refuse_os_memory`] to prove that a refused mapping
//! turns into a null pointer and never into a crash. The injector costs one relaxed load per
//! mapping call, never on the fast path.
//!
//! Invariants: nothing here allocates, prints or takes a lock; every call is a syscall or a
//! relaxed atomic.

use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// What the allocator needs from the operating system.
pub trait PageSource {
    /// Maps `len` bytes (a multiple of the page size) of zeroed, read-write memory whose start is
    /// aligned to `align` (a power of two, at least the page size). `None` when refused.
    fn map(&self, len: usize, align: usize) -> Option<NonNull<u8>>;
    /// Unmaps `[ptr, ptr + len)`.
    ///
    /// # Safety
    /// The range must be page-aligned, mapped by [`PageSource::map`] and no longer in use.
    unsafe fn unmap(&self, ptr: NonNull<u8>, len: usize);
    /// Gives the pages of `[ptr, ptr + len)` back to the OS; they read as zero afterwards.
    /// Returns false when the OS refused.
    ///
    /// # Safety
    /// The range must be page-aligned, mapped, and hold no live data.
    unsafe fn purge(&self, ptr: NonNull<u8>, len: usize) -> bool;
    /// The page size in bytes.
    fn page_size(&self) -> usize;
}

/// Anonymous private mappings from `mmap`, purged with `madvise(MADV_DONTNEED)`.
///
/// `MADV_DONTNEED` rather than `MADV_FREE`: the pages leave RSS at once, so the RSS an operator
/// sees agrees with the allocator's resident estimate, and a purged slab reads as zero, which lets
/// `alloc_zeroed` skip its memset on purged slabs. `MADV_FREE` is cheaper but keeps pages counted
/// in RSS until the kernel is under pressure.
pub struct Mmap;

static PAGE_SIZE: AtomicUsize = AtomicUsize::new(0);

impl PageSource for Mmap {
    fn map(&self, len: usize, align: usize) -> Option<NonNull<u8>> {
        crate::paths::mark(crate::paths::Step::Map);
        let page = self.page_size();
        debug_assert!(len.is_multiple_of(page) && align.is_power_of_two() && align >= page);
        let extra = if align > page { align } else { 0 };
        let total = len.checked_add(extra)?;
        // SAFETY: an anonymous private mapping at an address of the kernel's choosing has no
        // preconditions; failure is reported as MAP_FAILED and checked below.
        let raw = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                total,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if raw == libc::MAP_FAILED {
            return None;
        }
        let raw = raw.cast::<u8>();
        if extra == 0 {
            return NonNull::new(raw);
        }
        // Over-mapped by `align`: trim the head and the tail so only the aligned part remains.
        let head = raw.addr().wrapping_neg() & (align - 1);
        let start = raw.wrapping_add(head);
        let tail = extra - head;
        if head > 0 {
            // SAFETY: [raw, raw + head) is the unaligned head of the mapping made above.
            unsafe { libc::munmap(raw.cast(), head) };
        }
        if tail > 0 {
            // SAFETY: [start + len, start + len + tail) is the tail of the same mapping.
            unsafe { libc::munmap(start.wrapping_add(len).cast(), tail) };
        }
        NonNull::new(start)
    }

    unsafe fn unmap(&self, ptr: NonNull<u8>, len: usize) {
        crate::paths::mark(crate::paths::Step::Unmap);
        // SAFETY: the caller guarantees the range is a mapping of ours that is no longer used.
        unsafe { libc::munmap(ptr.as_ptr().cast(), len) };
    }

    unsafe fn purge(&self, ptr: NonNull<u8>, len: usize) -> bool {
        crate::paths::mark(crate::paths::Step::Purge);
        // SAFETY: the caller guarantees the range is mapped, page-aligned and holds no live data.
        unsafe { libc::madvise(ptr.as_ptr().cast(), len, libc::MADV_DONTNEED) == 0 }
    }

    fn page_size(&self) -> usize {
        let cached = PAGE_SIZE.load(Ordering::Relaxed);
        if cached != 0 {
            return cached;
        }
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        let page = if page > 0 { page as usize } else { 4096 };
        PAGE_SIZE.store(page, Ordering::Relaxed);
        page
    }
}

/// A [`PageSource`] that can be told to refuse new mappings (purge and unmap still work).
pub struct FailureInjecting<P> {
    inner: P,
    refuse: AtomicBool,
}

impl<P> FailureInjecting<P> {
    /// Wraps `inner`; refusal starts off.
    pub const fn new(inner: P) -> Self {
        FailureInjecting { inner, refuse: AtomicBool::new(false) }
    }

    /// While `on`, every [`PageSource::map`] call returns `None`.
    pub fn set_refuse(&self, on: bool) {
        self.refuse.store(on, Ordering::Relaxed);
    }
}

impl<P: PageSource> PageSource for FailureInjecting<P> {
    fn map(&self, len: usize, align: usize) -> Option<NonNull<u8>> {
        if self.refuse.load(Ordering::Relaxed) {
            return None;
        }
        self.inner.map(len, align)
    }
    unsafe fn unmap(&self, ptr: NonNull<u8>, len: usize) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.inner.unmap(ptr, len) }
    }
    unsafe fn purge(&self, ptr: NonNull<u8>, len: usize) -> bool {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.inner.purge(ptr, len) }
    }
    fn page_size(&self) -> usize {
        self.inner.page_size()
    }
}

/// The page source every part of the allocator uses.
pub(crate) static OS: FailureInjecting<Mmap> = FailureInjecting::new(Mmap);

/// Grows or moves a mapping with `mremap`. With `new_addr`, the mapping moves there (the target
/// range is replaced); without, it only grows in place. Returns false when the kernel refused.
///
/// # Safety
/// `[old, old + old_len)` must be one mapping of ours; `new_addr`, if given, must be a mapping of
/// ours of at least `new_len` bytes that holds nothing live.
pub(crate) unsafe fn remap(old: NonNull<u8>, old_len: usize, new_len: usize, new_addr: Option<NonNull<u8>>) -> bool {
    if OS.refuse.load(Ordering::Relaxed) {
        return false;
    }
    let r = match new_addr {
        // SAFETY: the caller guarantees both ranges are ours; MREMAP_FIXED replaces the target.
        Some(to) => unsafe {
            libc::mremap(
                old.as_ptr().cast(),
                old_len,
                new_len,
                libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED,
                to.as_ptr().cast::<libc::c_void>(),
            )
        },
        // SAFETY: without MREMAP_MAYMOVE the kernel grows in place or fails; nothing moves.
        None => unsafe { libc::mremap(old.as_ptr().cast(), old_len, new_len, 0) },
    };
    r != libc::MAP_FAILED
}

/// Huge-page advice for large mappings: 0 not read yet, 1 on, 2 off (`TSLAB_THP=0`).
static THP: core::sync::atomic::AtomicU8 = core::sync::atomic::AtomicU8::new(0);

/// Asks the kernel to back the whole 2 MiB pages of `[ptr, ptr + len)` with transparent huge
/// pages (`MADV_HUGEPAGE`): with THP in its "madvise" mode (Debian's default) only advised
/// ranges get them. A large object's pages then fault in 2 MiB at a time, 512 times fewer
/// faults (malloc-large: 81,000 faults a run), as mimalloc's segments do. Only whole aligned
/// 2 MiB pages inside the range can be huge, so a mapping under 2 MiB is not advised. Best
/// effort: a kernel without THP refuses, and nothing changes. `TSLAB_THP=0` turns it off.
///
/// # Safety
/// `[ptr, ptr + len)` must be a mapping of ours.
pub(crate) unsafe fn advise_huge(ptr: NonNull<u8>, len: usize) {
    const HUGE: usize = 2 << 20;
    if len < HUGE {
        return;
    }
    let mut state = THP.load(Ordering::Relaxed);
    if state == 0 {
        state = if env_is_off(c"TSLAB_THP") { 2 } else { 1 };
        THP.store(state, Ordering::Relaxed);
    }
    if state == 1 {
        // SAFETY: the caller guarantees the range is ours; the advice changes no contents.
        unsafe { libc::madvise(ptr.as_ptr().cast(), len, libc::MADV_HUGEPAGE) };
    }
}

/// Resident set size of this process in bytes, from `/proc/self/statm`, read with raw syscalls
/// into a stack buffer (no allocation). 0 when it cannot be read.
pub(crate) fn rss_bytes() -> u64 {
    let mut buf = [0u8; 128];
    // SAFETY: open/read/close on a NUL-terminated path and a stack buffer we own.
    let n = unsafe {
        let fd = libc::open(c"/proc/self/statm".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return 0;
        }
        let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
        libc::close(fd);
        n
    };
    if n <= 0 {
        return 0;
    }
    // Second field: resident pages.
    let mut fields = buf[..n as usize].split(|&b| b == b' ');
    let resident = fields.nth(1).unwrap_or(b"0");
    let pages = resident.iter().take_while(|b| b.is_ascii_digit()).fold(0u64, |v, &b| v * 10 + (b - b'0') as u64);
    pages * Mmap.page_size() as u64
}

/// Monotonic clock in nanoseconds (vDSO; no allocation, no lock).
pub(crate) fn monotonic_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC)
}

/// The same clock as [`monotonic_ns`] at the kernel tick's resolution (a few ms; never ahead of
/// it): for the reserve's emptied-slab stamps, which only decide a purge 0.5 s later. A quarter
/// of the cost (6 against 24 ns a reading on this KVM guest; every slab emptied took one).
/// Not for the large cache: with its stamps on this clock too (they also pick the entry to
/// evict), malloc-large measured 18% slower in interleaved runs, for a cause not found.
pub(crate) fn coarse_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC_COARSE)
}

/// Wall-clock time in nanoseconds since the Unix epoch.
pub(crate) fn realtime_ns() -> u64 {
    clock_ns(libc::CLOCK_REALTIME)
}

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    (ts.tv_sec as u64).wrapping_mul(1_000_000_000).wrapping_add(ts.tv_nsec as u64)
}

/// State of the process-wide memory barrier ([`heavy_barrier`]): unknown, registered, or
/// unavailable (an old kernel, a seccomp filter, valgrind).
static BARRIER: AtomicUsize = AtomicUsize::new(BARRIER_UNKNOWN);
const BARRIER_UNKNOWN: usize = 0;
const BARRIER_READY: usize = 1;
const BARRIER_NONE: usize = 2;

/// `membarrier(2)` commands (linux/membarrier.h; not in the libc crate).
const MEMBARRIER_CMD_PRIVATE_EXPEDITED: libc::c_long = 1 << 3;
const MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED: libc::c_long = 1 << 4;

/// A full memory barrier on every running thread of the process (`membarrier(2)`, private
/// expedited): the heavy half of an asymmetric fence, whose light half is a compiler fence.
/// The idle trim uses it to hold a heap's owner off its slow paths while that owner pays
/// nothing but two plain stores a slow path (`heap/trim.rs`). Returns false when the kernel
/// does not offer it; no allocation, no lock.
pub(crate) fn heavy_barrier() -> bool {
    let membarrier = |cmd: libc::c_long| {
        // SAFETY: membarrier takes integer arguments only (command, flags, CPU) and touches no
        // user memory.
        unsafe { libc::syscall(libc::SYS_membarrier, cmd, 0 as libc::c_long, 0 as libc::c_long) == 0 }
    };
    match BARRIER.load(Ordering::Relaxed) {
        BARRIER_READY => membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED),
        BARRIER_NONE => false,
        _ => {
            let ok =
                membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) && membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED);
            BARRIER.store(if ok { BARRIER_READY } else { BARRIER_NONE }, Ordering::Relaxed);
            ok
        }
    }
}

/// A forked child registers for [`heavy_barrier`] anew (its memory map is a new one).
pub(crate) fn barrier_after_fork_in_child() {
    BARRIER.store(BARRIER_UNKNOWN, Ordering::Relaxed);
}

/// Whether the process may grow a file to `len` bytes. Under a smaller `RLIMIT_FSIZE`
/// (`ulimit -f`), `ftruncate` raises SIGXFSZ, whose default action kills the whole program: the
/// allocator must never do that, so it leaves publishing off instead.
pub(crate) fn file_size_allowed(len: usize) -> bool {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes the struct we pass; failure leaves it zeroed, which we treat as
    // "not allowed".
    if unsafe { libc::getrlimit(libc::RLIMIT_FSIZE, &mut lim) } != 0 {
        return false;
    }
    lim.rlim_cur == libc::RLIM_INFINITY || lim.rlim_cur >= len as libc::rlim_t
}

/// Reads an environment variable as a u64 without allocating (`getenv` on a C string).
pub(crate) fn env_u64(name: &core::ffi::CStr) -> Option<u64> {
    // SAFETY: getenv takes a NUL-terminated string and returns null or a NUL-terminated string
    // owned by the environment; we only read it here.
    let p = unsafe { libc::getenv(name.as_ptr()) };
    if p.is_null() {
        return None;
    }
    // SAFETY: non-null result of getenv: a valid C string.
    let s = unsafe { core::ffi::CStr::from_ptr(p) }.to_bytes();
    let mut v: u64 = 0;
    if s.is_empty() {
        return None;
    }
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((b - b'0') as u64)?;
    }
    Some(v)
}

pub(crate) fn env_is_on(name: &core::ffi::CStr) -> bool {
    // SAFETY: as in `env_u64`.
    let p = unsafe { libc::getenv(name.as_ptr()) };
    if p.is_null() {
        return false;
    }
    // SAFETY: non-null result of getenv.
    matches!(unsafe { core::ffi::CStr::from_ptr(p) }.to_bytes(), b"1" | b"on" | b"true" | b"yes")
}

pub(crate) fn env_is_off(name: &core::ffi::CStr) -> bool {
    // SAFETY: as in `env_u64`.
    let p = unsafe { libc::getenv(name.as_ptr()) };
    if p.is_null() {
        return false;
    }
    // SAFETY: non-null result of getenv.
    matches!(unsafe { core::ffi::CStr::from_ptr(p) }.to_bytes(), b"0" | b"off" | b"false" | b"no")
}

/// A pointer that leads nowhere valid: a double free, a foreign pointer or memory corruption.
/// Continuing would corrupt the heap, so stop here, without allocating.
#[cold]
pub(crate) fn invalid_pointer() -> ! {
    const MSG: &[u8] =
        b"temporal-slab: free of a pointer this allocator did not return (or heap corruption); aborting\n";
    // SAFETY: writing a static buffer to stderr has no preconditions.
    unsafe { libc::write(2, MSG.as_ptr().cast(), MSG.len()) };
    std::process::abort()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_map_is_aligned_and_zeroed() {
        let align = 4 << 20;
        let p = Mmap.map(1 << 20, align).expect("map");
        assert_eq!(p.as_ptr().addr() % align, 0);
        // SAFETY: the mapping is 1 MiB long and zeroed.
        let s = unsafe { core::slice::from_raw_parts(p.as_ptr(), 1 << 20) };
        assert!(s.iter().all(|&b| b == 0));
        // SAFETY: mapped above, unused.
        unsafe { Mmap.unmap(p, 1 << 20) };
    }

    #[test]
    fn purge_zeroes() {
        let page = Mmap.page_size();
        let p = Mmap.map(page, page).expect("map");
        // SAFETY: the page is ours.
        unsafe {
            p.as_ptr().write(7);
            assert!(Mmap.purge(p, page));
            assert_eq!(p.as_ptr().read(), 0);
            Mmap.unmap(p, page);
        }
    }

    #[test]
    fn injector_refuses_then_recovers() {
        let f = FailureInjecting::new(Mmap);
        f.set_refuse(true);
        assert!(f.map(4096, 4096).is_none());
        f.set_refuse(false);
        let p = f.map(4096, 4096).expect("map after refusal ends");
        // SAFETY: mapped above.
        unsafe { f.unmap(p, 4096) };
    }
}
