//! The C allocation functions: `malloc`, `free`, `calloc`, `realloc`, `reallocarray`,
//! `posix_memalign`, `aligned_alloc`, `memalign`, `valloc`, `pvalloc`.
//!
//! Semantics (glibc's where C leaves a choice; the README lists them):
//! - every block of 16 bytes or more is 16-aligned, smaller ones 8-aligned (enough for any type
//!   that fits; glibc gives 16 always);
//! - `malloc(0)` (and every zero-size request) returns a unique, freeable 8-byte block;
//! - `free(NULL)` does nothing, and returns before touching thread-local storage (glibc's TLS
//!   code calls `free(NULL)` while it updates a thread's TLS vector);
//! - `realloc(NULL, n)` is `malloc(n)`; `realloc(p, 0)` frees `p` and returns NULL (glibc);
//! - a size that cannot be allocated (overflowing `n * size`, more than `PTRDIFF_MAX`, or
//!   memory exhausted) gives NULL with `errno = ENOMEM`, and `realloc` leaves the block as it was;
//! - `posix_memalign`: EINVAL unless the alignment is a power of two and a multiple of
//!   `sizeof(void *)`; returns the error and leaves `*memptr` and `errno` alone;
//! - `aligned_alloc`: EINVAL (NULL) unless the alignment is a power of two; any size (C17 DR 460);
//! - `memalign`: an alignment that is not a power of two is rounded up to one (glibc);
//! - `valloc` aligns to the page, `pvalloc` also rounds the size up to whole pages (at least one).
//!
//! A pointer passed to `free` / `realloc` / `malloc_usable_size` must come from this library.
//! One from another allocator (say glibc's, reached through `dlsym(RTLD_NEXT, "malloc")` or
//! `__libc_malloc`) is undefined behaviour, as with every malloc replacement: in practice the
//! process aborts with `temporal-slab: free of a pointer this allocator did not return` when the
//! 4 MiB-aligned address below it is mapped, and faults when it is not.

use core::alloc::{GlobalAlloc, Layout};
use core::ffi::{c_int, c_void};
use core::ptr;
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::GLOBAL;

/// `alignof(max_align_t)` on x86_64 and aarch64 Linux: the alignment of every block of at least
/// this many bytes.
pub(crate) const MAX_ALIGN: usize = 16;

/// The alignment C requires for a block of `size` bytes: suitable for any type that fits in it.
#[inline(always)]
fn c_align(size: usize) -> usize {
    if size >= MAX_ALIGN {
        MAX_ALIGN
    } else {
        8
    }
}

#[inline]
fn set_errno(e: c_int) {
    // SAFETY: `__errno_location` returns this thread's errno slot, valid for the thread's life.
    unsafe { *libc::__errno_location() = e };
}

#[cold]
fn enomem() -> *mut c_void {
    set_errno(libc::ENOMEM);
    ptr::null_mut()
}

/// A block of `size` bytes (at least 1) aligned to `align` (a power of two); NULL with ENOMEM
/// when the request is too large or memory is exhausted.
#[inline(always)]
fn alloc(size: usize, align: usize) -> *mut c_void {
    let p = alloc_quiet(size, align);
    if p.is_null() {
        return enomem();
    }
    p
}

/// [`alloc`] without setting `errno` to ENOMEM (`posix_memalign` reports through its return
/// value).
#[inline(always)]
fn alloc_quiet(size: usize, align: usize) -> *mut c_void {
    let Ok(layout) = Layout::from_size_align(size.max(1), align) else { return ptr::null_mut() };
    // SAFETY: the layout has a non-zero size.
    unsafe { GLOBAL.alloc(layout) }.cast()
}

/// The page size (cached; `sysconf` neither allocates nor fails for it on Linux).
pub(crate) fn page_size() -> usize {
    static PAGE: AtomicUsize = AtomicUsize::new(0);
    let p = PAGE.load(Ordering::Relaxed);
    if p != 0 {
        return p;
    }
    // SAFETY: sysconf has no preconditions.
    let p = match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
        n if n > 0 && (n as usize).is_power_of_two() => n as usize,
        _ => 4096,
    };
    PAGE.store(p, Ordering::Relaxed);
    p
}

/// `malloc(3)`: `size` bytes, 16-aligned from 16 bytes up; `malloc(0)` is a unique block.
#[no_mangle]
pub extern "C" fn malloc(size: usize) -> *mut c_void {
    // The fast path returns at once; everything else is one tail call (see `alloc_c_fast`).
    match GLOBAL.alloc_c_fast(size) {
        Ok(p) => p.as_ptr().cast(),
        Err(slow) => malloc_slow(size, slow),
    }
}

/// `malloc` past its fast path, with `errno` on failure. `extern "C"` (it cannot unwind), so
/// that `malloc` reaches it by a tail jump with no frame or unwind pad of its own.
#[cold]
#[inline(never)]
extern "C" fn malloc_slow(size: usize, slow: temporal_slab::CSlowPath) -> *mut c_void {
    let p = GLOBAL.alloc_c_slow(size, slow);
    if p.is_null() {
        return enomem();
    }
    p.cast()
}

/// `free(3)`. NULL is a no-op.
///
/// # Safety
/// `p` is NULL or a live block returned by this library (not yet freed).
#[no_mangle]
pub unsafe extern "C" fn free(p: *mut c_void) {
    if p.is_null() {
        return;
    }
    // SAFETY: the caller guarantees p is a live block of ours.
    unsafe { temporal_slab::free(p.cast()) }
}

/// `calloc(3)`: `n * size` zeroed bytes; NULL with ENOMEM when the product overflows.
#[no_mangle]
pub extern "C" fn calloc(n: usize, size: usize) -> *mut c_void {
    let Some(total) = n.checked_mul(size) else { return enomem() };
    let p = GLOBAL.alloc_c(total, true);
    if p.is_null() {
        return enomem();
    }
    p.cast()
}

/// `realloc(3)`: `realloc(NULL, n)` is `malloc(n)`; `realloc(p, 0)` frees `p` and returns NULL;
/// on failure NULL with ENOMEM and `p` untouched.
///
/// # Safety
/// `p` is NULL or a live block returned by this library.
#[no_mangle]
pub unsafe extern "C" fn realloc(p: *mut c_void, size: usize) -> *mut c_void {
    if p.is_null() {
        return malloc(size);
    }
    if size == 0 {
        // SAFETY: forwarded caller guarantee.
        unsafe { free(p) };
        return ptr::null_mut();
    }
    if Layout::from_size_align(size, c_align(size)).is_err() {
        return enomem();
    }
    // SAFETY: p is a live block of ours (caller); `size` is non-zero and valid for a Layout
    // with C's alignment (checked above).
    let q = unsafe { temporal_slab::realloc_c(p.cast(), size) };
    if q.is_null() {
        return enomem();
    }
    q.cast()
}

/// `reallocarray(3)`: `realloc(p, n * size)`, but NULL with ENOMEM (and `p` untouched) when the
/// product overflows.
///
/// # Safety
/// As [`realloc`].
#[no_mangle]
pub unsafe extern "C" fn reallocarray(p: *mut c_void, n: usize, size: usize) -> *mut c_void {
    let Some(total) = n.checked_mul(size) else { return enomem() };
    // SAFETY: forwarded caller guarantee.
    unsafe { realloc(p, total) }
}

/// `posix_memalign(3)`: 0 and `*memptr` set, EINVAL for an alignment that is not a power of two
/// multiple of `sizeof(void *)`, ENOMEM when memory is exhausted; `errno` is left alone.
///
/// # Safety
/// `memptr` must be valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn posix_memalign(memptr: *mut *mut c_void, align: usize, size: usize) -> c_int {
    if !align.is_power_of_two() || !align.is_multiple_of(core::mem::size_of::<*mut c_void>()) {
        return libc::EINVAL;
    }
    // SAFETY: `__errno_location` is this thread's errno slot; restored below so that this
    // function reports through its return value only (a failing mmap inside sets it).
    let saved = unsafe { *libc::__errno_location() };
    let p = alloc_quiet(size, align.max(c_align(size)));
    if p.is_null() {
        set_errno(saved);
        return libc::ENOMEM;
    }
    // SAFETY: the caller guarantees `memptr` is writable.
    unsafe { memptr.write(p) };
    0
}

/// `aligned_alloc(3)`: NULL with EINVAL unless `align` is a power of two; any `size` is
/// accepted (C17 DR 460).
#[no_mangle]
pub extern "C" fn aligned_alloc(align: usize, size: usize) -> *mut c_void {
    if !align.is_power_of_two() {
        set_errno(libc::EINVAL);
        return ptr::null_mut();
    }
    alloc(size, align.max(c_align(size)))
}

/// `memalign(3)` (obsolete): like `aligned_alloc`, but an alignment that is not a power of two
/// is rounded up to the next one (glibc); EINVAL when there is none.
#[no_mangle]
pub extern "C" fn memalign(align: usize, size: usize) -> *mut c_void {
    let Some(align) = align.checked_next_power_of_two() else {
        set_errno(libc::EINVAL);
        return ptr::null_mut();
    };
    alloc(size, align.max(c_align(size)))
}

/// `valloc(3)` (obsolete): page-aligned.
#[no_mangle]
pub extern "C" fn valloc(size: usize) -> *mut c_void {
    alloc(size, page_size())
}

/// `pvalloc(3)` (obsolete): page-aligned, size rounded up to whole pages (one page for 0).
#[no_mangle]
pub extern "C" fn pvalloc(size: usize) -> *mut c_void {
    let page = page_size();
    let Some(rounded) = size.max(1).checked_next_multiple_of(page) else { return enomem() };
    alloc(rounded, page)
}
