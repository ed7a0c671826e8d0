//! This thread's heap pointer: the one thread-local that every allocation and free reads.
//!
//! On x86_64 Linux it is a TLS slot of the initial-exec model, defined and read in assembly: two
//! instructions (`mov` of its offset, a `%fs`-relative load) in an executable and in a shared
//! library alike. `thread_local!` gives that in an executable, but in a shared library (the C
//! ABI's `libtemporal_slab.so`) rustc uses the general-dynamic model, a call to `__tls_get_addr`
//! on every access: 22 of the 155 instructions of a `malloc` + `free` pair under `LD_PRELOAD`.
//! Choosing the model is unstable in Rust (`-Z tls-model`), hence the assembly; jemalloc and
//! mimalloc make the same choice for the same reason. The cost: a library with initial-exec TLS
//! takes 8 bytes of the static TLS block, which glibc reserves room for when such a library is
//! `dlopen`ed rather than preloaded or linked.
//!
//! Elsewhere (other targets, Miri) it is a plain `thread_local!`.

use super::Heap;

#[cfg(all(target_arch = "x86_64", target_os = "linux", not(miri)))]
mod imp {
    use super::Heap;

    // One 8-byte, 8-aligned, zero-initialised TLS slot. Global (the accesses may sit in other
    // codegen units than this definition) but hidden, and named with the crate's version so that
    // two versions linked into one program do not collide.
    core::arch::global_asm!(
        ".pushsection .tbss,\"awT\",@nobits",
        ".p2align 3",
        ".globl __temporal_slab_0_1_current_heap",
        ".hidden __temporal_slab_0_1_current_heap",
        ".type __temporal_slab_0_1_current_heap, @object",
        ".size __temporal_slab_0_1_current_heap, 8",
        "__temporal_slab_0_1_current_heap:",
        ".zero 8",
        ".popsection",
    );

    #[inline(always)]
    pub(crate) fn get() -> *mut Heap {
        let p: usize;
        // SAFETY: reads this thread's slot: the GOT entry holds its offset from the thread
        // pointer (%fs), fixed at load time; the slot exists for the thread's whole life.
        unsafe {
            core::arch::asm!(
                "mov {p}, qword ptr [rip + __temporal_slab_0_1_current_heap@GOTTPOFF]",
                "mov {p}, qword ptr fs:[{p}]",
                p = out(reg) p,
                options(nostack, readonly, preserves_flags)
            );
        }
        p as *mut Heap
    }

    #[inline(always)]
    pub(crate) fn set(h: *mut Heap) {
        // SAFETY: as in `get`; writes this thread's own slot only.
        unsafe {
            core::arch::asm!(
                "mov {t}, qword ptr [rip + __temporal_slab_0_1_current_heap@GOTTPOFF]",
                "mov qword ptr fs:[{t}], {h}",
                t = out(reg) _,
                h = in(reg) h,
                options(nostack, preserves_flags)
            );
        }
    }
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux", not(miri))))]
mod imp {
    use core::cell::Cell;
    use core::ptr;

    use super::Heap;

    thread_local! {
        static CURRENT: Cell<*mut Heap> = const { Cell::new(ptr::null_mut()) };
    }

    #[inline(always)]
    pub(crate) fn get() -> *mut Heap {
        // A const-initialised Cell without a destructor: never "destroyed", always readable.
        CURRENT.try_with(Cell::get).unwrap_or(ptr::null_mut())
    }

    #[inline(always)]
    pub(crate) fn set(h: *mut Heap) {
        let _ = CURRENT.try_with(|c| c.set(h));
    }
}

/// This thread's heap, or null before it exists and after it is parked.
#[inline(always)]
pub(super) fn current_heap() -> *mut Heap {
    imp::get()
}

/// Sets this thread's heap (null: none).
#[inline(always)]
pub(super) fn set_current_heap(h: *mut Heap) {
    imp::set(h);
}

#[cfg(test)]
mod tests {
    #[test]
    fn each_thread_has_its_own_slot() {
        let mine = super::current_heap();
        std::thread::spawn(move || {
            let fake = core::ptr::dangling_mut::<super::Heap>();
            let before = super::current_heap();
            super::set_current_heap(fake);
            assert_eq!(super::current_heap(), fake);
            super::set_current_heap(before);
        })
        .join()
        .unwrap();
        assert_eq!(super::current_heap(), mine, "another thread's write did not reach this slot");
    }
}
