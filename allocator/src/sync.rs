//! A spin lock for the allocator's rare shared paths (segment carving, the large cache, the epoch
//! ring, the fallback heap).
//!
//! Why by hand: `std::sync::Mutex` may allocate on some platforms and `parking_lot` parks threads
//! through a global table that allocates; inside a global allocator either could re-enter it.
//! This lock never allocates and never calls back into the allocator: it spins, then yields the
//! CPU with `sched_yield`. It is never held across a call that allocates.

use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicBool, Ordering};

/// One wait of a spin loop (`spins` counts them): a pause for the first 64, then the CPU given up
/// with `sched_yield`, so a waiter for a preempted holder does not burn its time slice.
#[inline]
pub(crate) fn backoff(spins: &mut u32) {
    *spins += 1;
    if *spins < 64 {
        core::hint::spin_loop();
    } else {
        // SAFETY: sched_yield has no preconditions and does not allocate.
        unsafe { libc::sched_yield() };
    }
}

/// A minimal test-and-test-and-set spin lock.
pub(crate) struct SpinLock<T> {
    locked: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: the lock hands out `&mut T` to one holder at a time (Acquire on lock pairs with the
// Release on unlock), so sharing the lock between threads is sound whenever T may be sent.
unsafe impl<T: Send> Sync for SpinLock<T> {}

impl<T> SpinLock<T> {
    pub(crate) const fn new(value: T) -> Self {
        SpinLock { locked: AtomicBool::new(false), value: UnsafeCell::new(value) }
    }

    pub(crate) fn lock(&self) -> SpinGuard<'_, T> {
        let mut spins = 0u32;
        loop {
            // Acquire: pairs with the Release store in `SpinGuard::drop`.
            if !self.locked.swap(true, Ordering::Acquire) {
                return SpinGuard { lock: self };
            }
            while self.locked.load(Ordering::Relaxed) {
                backoff(&mut spins);
            }
        }
    }

    /// Takes the lock without a guard (for the fork handlers, which lock in one function and
    /// unlock in another).
    pub(crate) fn raw_lock(&self) {
        core::mem::forget(self.lock());
    }

    /// Releases a lock taken with [`SpinLock::raw_lock`].
    ///
    /// # Safety
    /// The caller must hold the lock through `raw_lock` (in this process image).
    pub(crate) unsafe fn raw_unlock(&self) {
        // Release: pairs with the Acquire swap in `lock`/`try_lock`.
        self.locked.store(false, Ordering::Release);
    }

    pub(crate) fn try_lock(&self) -> Option<SpinGuard<'_, T>> {
        // Acquire: pairs with the Release store in `SpinGuard::drop`.
        (!self.locked.swap(true, Ordering::Acquire)).then_some(SpinGuard { lock: self })
    }
}

pub(crate) struct SpinGuard<'a, T> {
    lock: &'a SpinLock<T>,
}

impl<T> Deref for SpinGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: holding the guard means holding the lock: no other reference exists.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for SpinGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: holding the guard means holding the lock: no other reference exists.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for SpinGuard<'_, T> {
    fn drop(&mut self) {
        // Release: pairs with the Acquire swap in `lock`/`try_lock`.
        self.lock.locked.store(false, Ordering::Release);
    }
}
