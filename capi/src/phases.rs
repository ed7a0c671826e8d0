//! The epoch and domain functions of `include/temporal_slab.h`, so that C programs can group
//! their allocations by phase like Rust programs do with [`temporal_slab::epoch`] and
//! [`temporal_slab::EpochDomain`].
//!
//! Epochs cross the ABI as their era (`uint64_t`, from 1). A `tslab_domain *` is a handle on a
//! Rust [`EpochDomain`] with a count of its users: the handle itself and every entry made from it.
//! Entering creates a [`DomainGuard`] kept on this thread's stack of entered domains until the
//! matching exit (or the thread's exit). So a handle may be destroyed while guards made from it
//! are still entered (the domain ends when its last user is gone), and exits follow the
//! allocator's rules: LIFO per thread, out-of-order exits are tolerated and counted as misuse in
//! the snapshot.
//!
//! These functions may allocate (the handle, one small block per enter) through the allocator,
//! never through the exported `malloc`; they return NULL / -1 instead of aborting when memory
//! is exhausted.

use core::cell::RefCell;
use core::ffi::{c_char, c_int, CStr};
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicUsize, Ordering};
use std::alloc::{alloc, Layout};

use temporal_slab::epoch::{self, EpochId, EpochState};
use temporal_slab::{DomainGuard, EpochDomain};

/// `TSLAB_DOMAIN_AUTO_CLOSE`: end the domain when its last guard exits.
pub const DOMAIN_AUTO_CLOSE: u32 = 1;

/// The `tslab_domain` handle: the domain and its users (the handle, plus one per entry).
#[derive(Debug)]
pub struct Domain {
    inner: EpochDomain,
    users: AtomicUsize,
}

/// Drops one user of `d`; the last frees it (which ends the domain).
///
/// # Safety
/// `d` is a live handle from `try_box` and the caller is one of its users, giving up its use.
unsafe fn release(d: NonNull<Domain>) {
    // SAFETY: live while the caller is a user (caller).
    // AcqRel: the last user's free sees every other user's accesses.
    if unsafe { d.as_ref() }.users.fetch_sub(1, Ordering::AcqRel) == 1 {
        // SAFETY: no user is left, so nothing refers to the block.
        unsafe { free_box(d) };
    }
}

/// Moves `v` into a fresh block of the global allocator (the same block `Box` would use), or
/// `None` when memory is exhausted (where `Box::new` would abort).
fn try_box<T>(v: T) -> Option<NonNull<T>> {
    let layout = Layout::new::<T>();
    const { assert!(core::mem::size_of::<T>() > 0) };
    // SAFETY: the layout has a non-zero size (checked at compile time above).
    let p = NonNull::new(unsafe { alloc(layout) }.cast::<T>())?;
    // SAFETY: a fresh block of T's layout, ours to initialise.
    unsafe { p.as_ptr().write(v) };
    Some(p)
}

/// Frees a block made by [`try_box`].
///
/// # Safety
/// `p` came from `try_box`, is freed once, and nothing borrows it any more.
unsafe fn free_box<T>(p: NonNull<T>) {
    // SAFETY: `try_box` allocated it with `Layout::new::<T>()` from the global allocator, which is
    // what `Box` uses; the caller guarantees it is unused.
    drop(unsafe { Box::from_raw(p.as_ptr()) });
}

/// Calls `f` with the label as UTF-8 (invalid sequences replaced), or `None` for NULL.
///
/// # Safety
/// `label` is NULL or a NUL-terminated string valid for the call (the header's contract).
unsafe fn with_label<R>(label: *const c_char, f: impl FnOnce(Option<&str>) -> R) -> R {
    if label.is_null() {
        return f(None);
    }
    // SAFETY: a NUL-terminated string (caller); the allocator copies what it keeps (at most 31
    // bytes), so nothing outlives this call.
    let s = unsafe { CStr::from_ptr(label) }.to_string_lossy();
    f(Some(&s))
}

/// An entered domain: its guard, and the handle whose domain the guard borrows (this entry is
/// one of the handle's users).
struct Entered {
    guard: Option<DomainGuard<'static>>,
    domain: NonNull<Domain>,
}

impl Drop for Entered {
    fn drop(&mut self) {
        // The guard borrows the domain: exit first, then give up this use of the handle.
        drop(self.guard.take());
        // SAFETY: the entry took a use of the handle in `tslab_domain_enter`.
        unsafe { release(self.domain) };
    }
}

/// This thread's entered domains, innermost last; at thread exit they are exited innermost
/// first, so a thread that forgets its exits releases its refcounts without misuse counts.
struct Stack(Vec<Entered>);

impl Drop for Stack {
    fn drop(&mut self) {
        while let Some(e) = self.0.pop() {
            drop(e);
        }
    }
}

thread_local! {
    static ENTERED: RefCell<Stack> = const { RefCell::new(Stack(Vec::new())) };
}

/// `tslab_version`: the library version, a static NUL-terminated string.
#[no_mangle]
pub extern "C" fn tslab_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// `tslab_epoch_current`: the era of the current epoch.
#[no_mangle]
pub extern "C" fn tslab_epoch_current() -> u64 {
    epoch::current().era()
}

/// `tslab_epoch_advance`: ends the current epoch (it closes once no domain is open in it) and
/// opens the next; returns its era.
#[no_mangle]
pub extern "C" fn tslab_epoch_advance() -> u64 {
    epoch::advance().era()
}

/// `tslab_epoch_state`: 1 ACTIVE, 2 CLOSING, 0 when `era` names no epoch in the ring (never
/// opened, or passed: its slot now holds a newer epoch).
#[no_mangle]
pub extern "C" fn tslab_epoch_state(era: u64) -> c_int {
    match epoch::state(EpochId::from_era(era)) {
        Some(EpochState::Active) => 1,
        Some(EpochState::Closing) => 2,
        None => 0,
    }
}

/// `tslab_epoch_close`: closes the epoch (advancing first if it is the current one; with domains
/// open in it, when the last of them ends): its partly used slabs are recycled and its empty ones
/// wait unpurged for the next phase (purged when the program is idle). 0, or -1 (nothing done) when `era` names no epoch in the
/// ring.
#[no_mangle]
pub extern "C" fn tslab_epoch_close(era: u64) -> c_int {
    let id = EpochId::from_era(era);
    if epoch::state(id).is_none() {
        return -1;
    }
    epoch::close(id);
    0
}

/// `tslab_domain_create`: a domain in the current epoch (shared with the other domains of the
/// same time bucket), labelled `label` (NULL: none). NULL when memory is exhausted.
///
/// # Safety
/// `label` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn tslab_domain_create(label: *const c_char, flags: u32) -> *mut Domain {
    // SAFETY: forwarded caller guarantee on `label`.
    let d = unsafe { with_label(label, EpochDomain::new) }.auto_close(flags & DOMAIN_AUTO_CLOSE != 0);
    try_box(Domain { inner: d, users: AtomicUsize::new(1) }).map_or(ptr::null_mut(), |p| p.as_ptr())
}

/// `tslab_domain_on`: a domain in an existing epoch that still takes domains (for example the
/// current one). NULL when `era` names no epoch in the ring or memory is exhausted.
///
/// # Safety
/// `label` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn tslab_domain_on(era: u64, label: *const c_char, flags: u32) -> *mut Domain {
    let id = EpochId::from_era(era);
    if epoch::state(id).is_none() {
        return ptr::null_mut();
    }
    // SAFETY: forwarded caller guarantee on `label`.
    let d = unsafe { with_label(label, |l| EpochDomain::on(id, l)) }.auto_close(flags & DOMAIN_AUTO_CLOSE != 0);
    try_box(Domain { inner: d, users: AtomicUsize::new(1) }).map_or(ptr::null_mut(), |p| p.as_ptr())
}

/// `tslab_domain_epoch`: the era of the domain's epoch (0 for NULL).
///
/// # Safety
/// `d` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn tslab_domain_epoch(d: *const Domain) -> u64 {
    // SAFETY: the caller passes NULL or a live handle.
    unsafe { d.as_ref() }.map_or(0, |d| d.inner.epoch().era())
}

/// `tslab_domain_enter`: until the matching exit, this thread's small allocations go to the
/// domain's epoch. 0, or -1 for NULL or when memory is exhausted.
///
/// # Safety
/// `d` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn tslab_domain_enter(d: *const Domain) -> c_int {
    // SAFETY: the caller passes NULL or a live handle.
    let Some(handle) = NonNull::new(d.cast_mut()) else { return -1 };
    // SAFETY: a live handle (caller); the entry becomes one of its users, so the block stays
    // allocated until `Entered::drop`, which drops the guard first: the borrow may be given the
    // guard's whole life.
    let domain: &'static Domain = unsafe {
        handle.as_ref().users.fetch_add(1, Ordering::Relaxed);
        &*handle.as_ptr()
    };
    let entered = Entered { guard: Some(domain.inner.enter()), domain: handle };
    // On any failure below, dropping `entered` exits the domain again.
    ENTERED
        .try_with(|stack| {
            let Ok(mut stack) = stack.try_borrow_mut() else { return -1 };
            if stack.0.try_reserve(1).is_err() {
                return -1;
            }
            stack.0.push(entered);
            0
        })
        .unwrap_or(-1)
}

/// `tslab_domain_exit`: exits the innermost entry of this domain's epoch on this thread. 0, or
/// -1 when this thread has not entered it.
///
/// # Safety
/// `d` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn tslab_domain_exit(d: *const Domain) -> c_int {
    // SAFETY: the caller passes NULL or a live handle.
    let Some(d) = (unsafe { d.as_ref() }) else { return -1 };
    let me = ptr::from_ref(d).cast_mut();
    let found = ENTERED
        .try_with(|stack| {
            let mut stack = stack.try_borrow_mut().ok()?;
            let pos = stack.0.iter().rposition(|e| e.domain.as_ptr() == me)?;
            Some(stack.0.remove(pos))
        })
        .ok()
        .flatten();
    // Dropped outside the borrow: the guard's exit may close the epoch (auto-close).
    match found {
        Some(entered) => {
            drop(entered);
            0
        }
        None => -1,
    }
}

/// `tslab_domain_close`: ends the domain now, whatever guards are live (its epoch closes once
/// time has moved on and its last domain has ended). 0, or -1 for NULL.
///
/// # Safety
/// `d` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn tslab_domain_close(d: *const Domain) -> c_int {
    // SAFETY: the caller passes NULL or a live handle.
    let Some(d) = (unsafe { d.as_ref() }) else { return -1 };
    d.inner.close();
    0
}

/// `tslab_domain_destroy`: gives up the handle (NULL is a no-op). Entries still entered stay
/// entered until their exit or their thread's exit; the domain ends when the last is gone.
///
/// # Safety
/// `d` is NULL or a live handle, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn tslab_domain_destroy(d: *mut Domain) {
    if let Some(d) = NonNull::new(d) {
        // SAFETY: a live handle from `try_box`; the caller gives up its use.
        unsafe { release(d) };
    }
}
