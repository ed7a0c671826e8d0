//! Remote frees into a slab: its atomic list of objects other threads freed, the owner's bulk
//! collection of it, and the notify mode in which the first such free tells the owner (see the
//! module docs of `slab`).

use core::sync::atomic::Ordering;

use super::{FreeObj, OwnerHeap, SlabMeta, FLAGS, NOTIFY, QUEUED};

impl SlabMeta {
    /// Owner: moves every remotely freed object to the local free cells (direct mode; in
    /// notify mode the list is empty). Returns how many were collected.
    pub(crate) fn collect_remote(&self) -> u32 {
        let mut word = self.remote.load(Ordering::Relaxed);
        loop {
            if word & !FLAGS == 0 {
                return 0;
            }
            debug_assert_eq!(word & NOTIFY, 0, "a list in notify mode");
            // Acquire: pairs with the Release CAS in `remote_push`, so the links written by the
            // freeing threads are visible before we walk them. The flags stay as they are.
            match self.remote.compare_exchange_weak(word, word & FLAGS, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => break,
                Err(w) => word = w,
            }
        }
        let mut obj = (word & !FLAGS) as *mut FreeObj;
        let mut n = 0;
        while !obj.is_null() {
            // SAFETY: every object on a remote list was pushed by `remote_push`, which wrote the
            // link before publishing it; the list ends with null.
            let next = unsafe { (*obj).next };
            // SAFETY: a dead object of this slab, which we own.
            unsafe { self.link_free(obj.cast()) };
            n += 1;
            obj = next;
        }
        let Some(used) = self.used().checked_sub(n) else { crate::os::invalid_pointer() };
        self.set_used(used);
        n
    }

    /// Owner: switches to notify mode, collecting any remote frees that raced in first.
    pub(crate) fn enter_notify(&self) {
        let mut word = self.remote.load(Ordering::Relaxed);
        loop {
            if word & NOTIFY != 0 {
                return;
            }
            if word & !FLAGS != 0 {
                self.collect_remote();
                word = self.remote.load(Ordering::Relaxed);
                continue;
            }
            // Relaxed is enough on success: the list is empty, nothing is published.
            match self.remote.compare_exchange(word, word | NOTIFY, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return,
                Err(w) => word = w,
            }
        }
    }

    /// Owner: switches back to direct mode (the slab becomes a bin). The list stays: in notify
    /// mode it is empty, and in direct mode (a free already told the owner) the bin collects it.
    pub(crate) fn leave_notify(&self) {
        self.remote.fetch_and(!NOTIFY, Ordering::Relaxed);
    }

    /// Whether the slab is on its owner's `pending` stack (or being taken off it).
    pub(crate) fn queued(&self) -> bool {
        self.remote.load(Ordering::Relaxed) & QUEUED != 0
    }

    /// Owner, having taken this slab off its `pending` stack (and read `pending_next`): the next
    /// free in notify mode may push it again.
    pub(crate) fn unqueue(&self) {
        // Release: the freer that pushes the slab next (its CAS reads this store, AcqRel)
        // overwrites `pending_next` only after our read of it.
        self.remote.fetch_and(!QUEUED, Ordering::Release);
    }

    /// Any thread: frees `obj` into this slab's remote list. Returns the owner heap when this
    /// free took the slab out of notify mode and must tell it: the caller pushes the slab onto
    /// that heap's `pending` stack (and may help a parked owner). The owner cannot change while
    /// `obj` is live (a slab changes owner only when empty), so the returned heap stays the
    /// right one.
    ///
    /// # Safety
    /// `obj` must be a live object of this slab that the caller gives up.
    pub(crate) unsafe fn remote_push(&self, obj: *mut FreeObj) -> Option<*mut OwnerHeap> {
        let mut word = self.remote.load(Ordering::Relaxed);
        loop {
            // In notify mode the list is empty: `obj` becomes the whole list, in direct mode,
            // and queued (by this free, unless the slab is still queued from before).
            let new = if word & NOTIFY != 0 { obj as usize | QUEUED } else { obj as usize | (word & QUEUED) };
            // SAFETY: the object is dead to its user, so its first word may hold the link.
            unsafe { (*obj).next = (word & !FLAGS) as *mut FreeObj };
            // Release: pairs with the Acquire CAS in `collect_remote`. Acquire: pairs with
            // `unqueue`, before this free may write `pending_next`.
            match self.remote.compare_exchange_weak(word, new, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) if word & (NOTIFY | QUEUED) == NOTIFY => return Some(self.owner.load(Ordering::Relaxed)),
                Ok(_) => return None,
                Err(w) => word = w,
            }
        }
    }
}
