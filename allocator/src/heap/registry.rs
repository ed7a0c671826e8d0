//! Which heap a thread uses: the thread-local pointer (`tls.rs`) and its exit guard, the list of all heaps
//! (push-only, never unmapped), adoption of parked heaps, carving new ones out of the heap
//! arena, and the help that parked heaps get from other threads (see the life cycle in the
//! module docs of `heap`).

use core::cell::Cell;
use core::ptr;
use core::sync::atomic::{AtomicPtr, Ordering};

use super::tls::{current_heap, set_current_heap};
use super::{Heap, CLAIMED, LIVE, PARKED};
use crate::counters::{HeapStats, GLOBAL};
use crate::os::{PageSource, OS};
use crate::sync::SpinLock;

/// Head of the list of all heaps, live and parked.
pub(super) static HEAPS: AtomicPtr<Heap> = AtomicPtr::new(ptr::null_mut());

thread_local! {
    /// 0: no heap yet; 1: creating it; 2: live; 3: the thread is exiting.
    static TLS_STATE: Cell<u8> = const { Cell::new(0) };
    /// Parks the heap when the thread exits.
    static GUARD: ParkOnExit = const { ParkOnExit };
}

struct ParkOnExit;

impl Drop for ParkOnExit {
    fn drop(&mut self) {
        let _ = TLS_STATE.try_with(|s| s.set(3));
        let h = current_heap();
        set_current_heap(ptr::null_mut());
        if !h.is_null() {
            // SAFETY: `h` was this thread's live heap; nobody else touches a LIVE heap's owner
            // fields, and we stop using it before parking hands it over.
            unsafe { (*h).park() };
        }
    }
}

/// This thread's heap, creating or adopting one on first use. Null when the thread has no heap
/// and cannot get one now (while it is being created, during thread exit, or out of memory).
#[inline]
pub(crate) fn current() -> *mut Heap {
    let h = current_heap();
    if !h.is_null() {
        return h;
    }
    current_slow()
}

/// This thread's heap if it already has one; never creates.
#[inline]
pub(crate) fn current_if_any() -> *mut Heap {
    current_heap()
}

#[cold]
fn current_slow() -> *mut Heap {
    if TLS_STATE.try_with(|s| s.get()).unwrap_or(3) != 0 {
        return ptr::null_mut();
    }
    let _ = TLS_STATE.try_with(|s| s.set(1));
    let h = adopt_or_create();
    if h.is_null() {
        let _ = TLS_STATE.try_with(|s| s.set(0));
        return h;
    }
    // Registering the exit guard may allocate (glibc's __cxa_thread_atexit_impl); state 1 sends
    // such nested allocations to the fallback heap.
    if GUARD.try_with(|_| ()).is_err() {
        // The thread is already exiting: hand the heap straight back.
        // SAFETY: we adopted or created `h` just now and own it.
        unsafe { (*h).park() };
        let _ = TLS_STATE.try_with(|s| s.set(3));
        return ptr::null_mut();
    }
    set_current_heap(h);
    let _ = TLS_STATE.try_with(|s| s.set(2));
    h
}

fn adopt_or_create() -> *mut Heap {
    // Acquire: pairs with the Release CAS in `push_heap`.
    let mut h = HEAPS.load(Ordering::Acquire);
    while !h.is_null() {
        // SAFETY: heaps in the list are valid forever.
        let heap = unsafe { &*h };
        // Acquire: pairs with the Release store of PARKED in `park`/`help_parked`: the
        // parker's writes to the owner fields are visible to us.
        if heap.state.load(Ordering::Relaxed) == PARKED
            && heap.state.compare_exchange(PARKED, LIVE, Ordering::Acquire, Ordering::Relaxed).is_ok()
        {
            heap.cd.force_stale();
            heap.sampler.new_thread();
            return h;
        }
        h = heap.next.load(Ordering::Acquire);
    }
    new_heap()
}

pub(crate) struct Arena {
    next: *mut u8,
    left: usize,
}
// SAFETY: the arena's pointer is only used under the lock and refers to our own mapping.
unsafe impl Send for Arena {}
pub(crate) static ARENA: SpinLock<Arena> = SpinLock::new(Arena { next: ptr::null_mut(), left: 0 });

/// Carves zeroed heaps out of mappings of 16 heaps each (a heap is never freed).
pub(super) fn new_heap() -> *mut Heap {
    let size = core::mem::size_of::<Heap>().next_multiple_of(64);
    let mut a = ARENA.lock();
    if a.left < size {
        let page = OS.page_size();
        let len = (size * 16).next_multiple_of(page);
        let Some(p) = OS.map(len, page) else { return ptr::null_mut() };
        GLOBAL.heap_bytes.fetch_add(len as u64, core::sync::atomic::Ordering::Relaxed);
        a.next = p.as_ptr();
        a.left = len;
    }
    let h = a.next.cast::<Heap>();
    a.next = a.next.wrapping_add(size);
    a.left -= size;
    drop(a);
    GLOBAL.heaps.fetch_add(1, Ordering::Relaxed);
    push_heap(h);
    h
}

fn push_heap(h: *mut Heap) {
    let mut head = HEAPS.load(Ordering::Relaxed);
    loop {
        // SAFETY: `h` is a fresh zeroed heap, not yet published; zero bytes are a valid Heap.
        unsafe { (*h).next.store(head, Ordering::Relaxed) };
        // Release: pairs with the Acquire loads in `adopt_or_create` and `for_each_heap`.
        match HEAPS.compare_exchange_weak(head, h, Ordering::Release, Ordering::Relaxed) {
            Ok(_) => return,
            Err(x) => head = x,
        }
    }
}

/// Calls `f` with every heap, live and parked. `f` may touch only a heap's shared fields (its
/// atomics), unless it claims the heap first.
pub(super) fn each_heap(mut f: impl FnMut(&Heap)) {
    // Acquire: pairs with the Release CAS in `push_heap`.
    let mut h = HEAPS.load(Ordering::Acquire);
    while !h.is_null() {
        // SAFETY: heaps are valid forever.
        let heap = unsafe { &*h };
        f(heap);
        h = heap.next.load(Ordering::Acquire);
    }
}

/// Calls `f` with the counters of every heap (snapshots): `stats` holds only atomics.
pub(crate) fn for_each_heap(mut f: impl FnMut(&HeapStats)) {
    each_heap(|heap| f(&heap.stats));
}

/// Applies the pending frees of a parked heap, if no one else is doing it. Loops until the
/// pending stack is seen empty while parked, so no free is stranded.
pub(crate) fn help_parked(heap: &Heap) {
    loop {
        // Acquire: pairs with the Release store of PARKED, so the parker's owner-field writes
        // are visible to us while we act as owner.
        if heap.state.compare_exchange(PARKED, CLAIMED, Ordering::Acquire, Ordering::Relaxed).is_err() {
            return;
        }
        heap.drain_pending();
        heap.sweep_closed();
        // SeqCst (includes Release, pairing with the Acquire CAS of the next claimer or
        // adopter); see `push_pending` for why the store and the load below are SeqCst.
        heap.state.store(PARKED, Ordering::SeqCst);
        if heap.pending.load(Ordering::SeqCst).is_null() {
            return;
        }
    }
}

/// Applies the pending frees (and closes) of every parked heap (the reclaimer's pass).
pub(crate) fn help_all_parked() {
    each_heap(|heap| {
        if heap.state.load(Ordering::Relaxed) == PARKED {
            help_parked(heap);
        }
    });
}
