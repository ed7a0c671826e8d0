//! Slabs: the metadata of one 64 KiB run of same-sized objects, its free lists and its states.
//!
//! A slab's metadata ([`SlabMeta`], one cache line) lives in its segment's header, never in the
//! slab's own pages, so purging the pages (`madvise`) never re-faults them: the C reference's bug.
//!
//! Ownership: a slab in use belongs to one thread heap (`owner`). Only the owner touches the
//! non-atomic fields (`free`, `bump`, `next`, `prev`, ...). Other threads free into it through
//! the atomic `remote` word:
//! - in *direct* mode (`remote & NOTIFY == 0`, the slab is the heap's allocation bin for its
//!   class) a remote free pushes the object onto the `remote` list; the owner collects the whole
//!   list with one swap when its local list runs dry;
//! - in *notify* mode (`NOTIFY` set, the slab is full, parked in a partial list or on a
//!   recycling list) a remote free pushes the object onto the owner heap's `pending` stack instead,
//!   so the owner learns that the slab has room or has emptied without scanning its slabs.
//!
//! The mode changes only by CAS from an empty list (`0` <-> `NOTIFY`), so an object is never left
//! on the `remote` list of a slab that the owner no longer looks at. An object on either list is
//! still counted in `used`, so a slab can only be found empty, and change owner, once every
//! remote free into it has been seen by its owner.
//!
//! Fields read by snapshots from other threads (`used`, `class`, `state`, `era`) are atomics that
//! the owner updates with Relaxed load + store: no read-modify-write on the fast path.

use core::cell::Cell;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};

use crate::size_class::{SizeClass, SLAB_SIZE};
use crate::size_class::{SEGMENT_SIZE, SLAB_SHIFT};

/// The heap that owns a slab, opaque here: heaps live above slabs (`heap/mod.rs` casts).
pub(crate) enum OwnerHeap {}

/// Offset of the slab metadata array in its segment's header (checked in `segment.rs`).
pub(crate) const SLABS_OFFSET: usize = 64;

/// Low bit of [`SlabMeta::remote`]: the slab is in notify mode.
pub(crate) const NOTIFY: usize = 1;

/// A free object: its first word links to the next free object.
#[repr(C)]
pub(crate) struct FreeObj {
    pub(crate) next: *mut FreeObj,
}

/// Where a slab is in its life. Stored in [`SlabMeta::state`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum SlabState {
    /// In the global pool (purged) or never carved.
    Free = 0,
    /// A heap's allocation bin for its class (direct mode).
    Bin = 1,
    /// On a heap's partial list: has free objects, not being allocated from (notify mode).
    Partial = 2,
    /// No free object known to the owner (notify mode).
    Full = 3,
    /// Empty, kept warm in a heap's bounded empty cache.
    Empty = 4,
    /// Has live objects and free room but belongs to a closed epoch: on the heap's recycling list
    /// for its class, from which later epochs take it up again (notify mode).
    Recycle = 5,
}

impl SlabState {
    pub(crate) fn from_u8(v: u8) -> SlabState {
        match v {
            1 => SlabState::Bin,
            2 => SlabState::Partial,
            3 => SlabState::Full,
            4 => SlabState::Empty,
            5 => SlabState::Recycle,
            _ => SlabState::Free,
        }
    }
}

/// Metadata of one slab. Exactly one cache line, so remote frees into different slabs never
/// share a line.
#[repr(C, align(64))]
pub(crate) struct SlabMeta {
    /// Owner-only: head of the local free list.
    pub(crate) free: Cell<*mut FreeObj>,
    /// Shared: the heap that owns this slab (null while Free).
    pub(crate) owner: AtomicPtr<OwnerHeap>,
    /// Shared: remote free list head, plus the [`NOTIFY`] bit.
    pub(crate) remote: AtomicUsize,
    /// The epoch (era) the slab's objects were allocated in.
    pub(crate) era: AtomicU64,
    /// Owner-only: links in the owner heap's lists (partial or empty cache), or the pool's list.
    pub(crate) next: Cell<*mut SlabMeta>,
    pub(crate) prev: Cell<*mut SlabMeta>,
    /// Objects handed out and not yet returned to the owner (remote frees count until seen).
    pub(crate) used: AtomicU32,
    /// Byte offset of the first never-used object (high-water mark of touched bytes). Written by
    /// the owner only (Relaxed store); read by snapshots.
    pub(crate) bump: AtomicU32,
    /// Owner-only: byte offset where bump allocation ends (objects_per_slab * object_size).
    pub(crate) end: Cell<u32>,
    /// Size class index.
    pub(crate) class: AtomicU8,
    /// [`SlabState`] as u8.
    pub(crate) state: AtomicU8,
    /// The bytes past `bump` are known to be zero (fresh or purged pages). Written by the owner
    /// only; read by snapshots.
    pub(crate) zeroed: AtomicBool,
}

const _: () = assert!(core::mem::size_of::<SlabMeta>() == 64);

impl SlabMeta {
    /// Start of the slab's data pages.
    #[inline]
    pub(crate) fn start(&self) -> *mut u8 {
        let m = ptr::from_ref(self).cast_mut().cast::<u8>();
        let seg = m.map_addr(|a| a & !(SEGMENT_SIZE - 1));
        let index = (m.addr() - seg.addr() - SLABS_OFFSET) / core::mem::size_of::<SlabMeta>();
        seg.wrapping_add(index << SLAB_SHIFT)
    }

    #[inline]
    pub(crate) fn class(&self) -> SizeClass {
        SizeClass(self.class.load(Ordering::Relaxed))
    }

    #[inline]
    pub(crate) fn state(&self) -> SlabState {
        SlabState::from_u8(self.state.load(Ordering::Relaxed))
    }

    #[inline]
    pub(crate) fn set_state(&self, s: SlabState) {
        self.state.store(s as u8, Ordering::Relaxed);
    }

    #[inline]
    pub(crate) fn used(&self) -> u32 {
        self.used.load(Ordering::Relaxed)
    }

    /// Owner-only increment/decrement: Relaxed load + store, not a read-modify-write.
    #[inline]
    pub(crate) fn set_used(&self, v: u32) {
        self.used.store(v, Ordering::Relaxed);
    }

    #[inline]
    pub(crate) fn bump(&self) -> u32 {
        self.bump.load(Ordering::Relaxed)
    }

    #[inline]
    pub(crate) fn set_bump(&self, v: u32) {
        self.bump.store(v, Ordering::Relaxed);
    }

    #[inline]
    pub(crate) fn zeroed(&self) -> bool {
        self.zeroed.load(Ordering::Relaxed)
    }

    #[inline]
    pub(crate) fn set_zeroed(&self, v: bool) {
        self.zeroed.store(v, Ordering::Relaxed);
    }

    /// Bytes of the slab that may be resident (what a purge of the whole slab must cover): the
    /// touched high-water mark, or all of it when the slab was reused without a purge.
    pub(crate) fn touched_bytes(&self, page: usize) -> usize {
        if self.zeroed() {
            (self.bump() as usize + page - 1) & !(page - 1)
        } else {
            SLAB_SIZE
        }
    }

    /// Owner: makes this slab an allocation slab for `class` in epoch `era`, owned by `heap`.
    /// The slab must be empty (fresh, purged or from an empty cache).
    pub(crate) fn format(&self, class: SizeClass, era: u64, heap: *mut OwnerHeap) {
        debug_assert_eq!(self.used(), 0);
        let n = class.objects_per_slab() * class.object_size();
        if self.class.load(Ordering::Relaxed) != class.0 || self.free.get().is_null() {
            // A different class cannot reuse the old free list; the bump region restarts. The
            // pages stay dirty unless the slab was purged.
            self.free.set(ptr::null_mut());
            if self.bump() != 0 {
                self.set_zeroed(false);
            }
            self.set_bump(0);
        }
        self.end.set(n as u32);
        self.class.store(class.0, Ordering::Relaxed);
        self.era.store(era, Ordering::Relaxed);
        self.owner.store(heap, Ordering::Relaxed);
        self.remote.store(0, Ordering::Relaxed);
        self.next.set(ptr::null_mut());
        self.prev.set(ptr::null_mut());
        self.set_state(SlabState::Bin);
    }

    /// Owner: takes one object from the local free list or the bump region.
    /// Returns the object and whether its bytes are known to be zero.
    #[inline]
    pub(crate) fn pop(&self) -> Option<(NonNull<u8>, bool)> {
        let head = self.free.get();
        if let Some(obj) = NonNull::new(head) {
            // SAFETY: objects on the local free list are free objects of this slab whose first
            // word was written by `push_local` (or `collect_remote`) as the link.
            self.free.set(unsafe { (*head).next });
            // Wrapping: arithmetic on the allocation path must not panic, even in debug builds.
            self.set_used(self.used().wrapping_add(1));
            return Some((obj.cast(), false));
        }
        let bump = self.bump();
        if bump < self.end.get() {
            self.set_bump(bump + self.class().object_size() as u32);
            self.set_used(self.used().wrapping_add(1));
            let p = self.start().wrapping_add(bump as usize);
            // SAFETY: the slab start is non-null (inside a mapping), so is any offset into it.
            return Some((unsafe { NonNull::new_unchecked(p) }, self.zeroed()));
        }
        None
    }

    /// Owner: returns `obj` to the local free list. Returns the new `used` count and whether the
    /// local list was empty before (the slab may have been full).
    ///
    /// # Safety
    /// `obj` must be a live object of this slab, and the caller must own the slab.
    #[inline]
    pub(crate) unsafe fn push_local(&self, obj: *mut FreeObj) -> (u32, bool) {
        let used = self.used();
        let head = self.free.get();
        if used == 0 || head == obj {
            // More frees than allocations, or the object is already the free list's head: a
            // double free. Stop before the free list is corrupted.
            crate::os::invalid_pointer();
        }
        // SAFETY: the object is ours and no longer live, so its first word may hold the link.
        unsafe { (*obj).next = head };
        self.free.set(obj);
        self.set_used(used - 1);
        (used - 1, head.is_null())
    }

    /// Owner, direct mode: moves every remotely freed object to the local free list.
    /// Returns how many were collected.
    pub(crate) fn collect_remote(&self) -> u32 {
        if self.remote.load(Ordering::Relaxed) & !NOTIFY == 0 {
            return 0;
        }
        // Acquire: pairs with the Release CAS in `remote_push`, so the links written by the
        // freeing threads are visible before we walk them.
        let word = self.remote.swap(0, Ordering::Acquire);
        debug_assert_eq!(word & NOTIFY, 0, "collect_remote on a slab in notify mode");
        self.splice(word as *mut FreeObj)
    }

    /// Owner: appends a list of this slab's freed objects to the local free list and lowers
    /// `used` by their number.
    fn splice(&self, list: *mut FreeObj) -> u32 {
        if list.is_null() {
            return 0;
        }
        let mut n = 1;
        let mut tail = list;
        // SAFETY: every object on a remote list was pushed by `remote_push`, which wrote the link
        // before publishing it; the list ends with null.
        unsafe {
            while !(*tail).next.is_null() {
                tail = (*tail).next;
                n += 1;
            }
            (*tail).next = self.free.get();
        }
        self.free.set(list);
        let Some(used) = self.used().checked_sub(n) else { crate::os::invalid_pointer() };
        self.set_used(used);
        n
    }

    /// Owner: switches to notify mode, collecting any remote frees that raced in first.
    pub(crate) fn enter_notify(&self) {
        loop {
            // Relaxed is enough on success: the list is empty, nothing is published.
            match self.remote.compare_exchange(0, NOTIFY, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return,
                Err(w) if w & NOTIFY != 0 => return,
                Err(_) => {
                    self.collect_remote();
                }
            }
        }
    }

    /// Owner: switches back to direct mode (the slab becomes a bin). In notify mode the list is
    /// always empty, so a plain store is enough.
    pub(crate) fn leave_notify(&self) {
        self.remote.store(0, Ordering::Relaxed);
    }

    /// Any thread: frees `obj` into this slab's remote list. In notify mode nothing is pushed
    /// here and the owner heap is returned: the caller must push `obj` onto that heap's pending
    /// stack (and may help a parked owner). The owner cannot change while `obj` is live (a slab
    /// changes owner only when empty), so the returned heap stays the right one.
    ///
    /// # Safety
    /// `obj` must be a live object of this slab that the caller gives up.
    pub(crate) unsafe fn remote_push(&self, obj: *mut FreeObj) -> Option<*mut OwnerHeap> {
        let mut word = self.remote.load(Ordering::Relaxed);
        loop {
            if word & NOTIFY != 0 {
                return Some(self.owner.load(Ordering::Relaxed));
            }
            // SAFETY: the object is dead to its user, so its first word may hold the link.
            unsafe { (*obj).next = word as *mut FreeObj };
            // Release: pairs with the Acquire swap in `collect_remote`.
            match self.remote.compare_exchange_weak(word, obj as usize, Ordering::Release, Ordering::Relaxed) {
                Ok(_) => return None,
                Err(w) => word = w,
            }
        }
    }
}
