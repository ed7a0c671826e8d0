//! `alloc_zeroed` after slab reuse: cells that reached their users by any path (here a scattered
//! fill of the free cache) are never handed out again as known-zero. TemporalSlab is this
//! binary's global allocator; its own test file, so that no other test's allocations change the
//! slabs it sets up.

use std::thread;

use temporal_slab::TemporalSlab;

#[global_allocator]
static GLOBAL: TemporalSlab = TemporalSlab::new();

/// A scattered fill that reaches past a bin's touched cells raises its high-water mark: those
/// cells are written by their users, so a later run of the slab that starts there must not be
/// handed out as known-zero (`alloc_zeroed` skips its memset on such cells). The bug this pins:
/// the fill took them without moving the mark, and once the emptied slab went back to the
/// reserve and came out again for its class, `alloc_zeroed` returned the old bytes.
#[test]
fn cells_a_scattered_fill_took_are_never_handed_out_as_zero() {
    use std::alloc::{alloc, alloc_zeroed, dealloc, Layout};
    let layout = Layout::from_size_align(100, 8).unwrap();
    // A fresh thread (a fresh bin): 64 cells, then 33 frees (32 into the free cache, one into
    // the bitmap), 32 allocations from the cache, and one more: its run is that single cell, so
    // the fill takes the next 16 set bits, which lie past everything touched so far.
    thread::spawn(move || {
        let mut live: Vec<*mut u8> = Vec::with_capacity(128);
        // SAFETY: a non-zero-sized layout; each pointer is freed once below.
        unsafe {
            for _ in 0..64 {
                live.push(alloc(layout));
            }
            for p in live.drain(..33) {
                dealloc(p, layout);
            }
            for _ in 0..(32 + 1 + 16) {
                live.push(alloc(layout));
            }
            for &p in &live {
                p.write_bytes(0xAB, 100);
            }
            for p in live.drain(..) {
                dealloc(p, layout);
            }
        }
    })
    .join()
    .unwrap();
    // The thread's slabs went back to the pool at its exit; zeroed objects of the class now come
    // from them again.
    thread::spawn(move || {
        let mut got: Vec<*mut u8> = Vec::new();
        for _ in 0..2000 {
            // SAFETY: as above.
            let p = unsafe { alloc_zeroed(layout) };
            assert!(!p.is_null());
            // SAFETY: 100 bytes just allocated.
            let bytes = unsafe { std::slice::from_raw_parts(p, 100) };
            if let Some(at) = bytes.iter().position(|&b| b != 0) {
                panic!("alloc_zeroed returned {p:p} holding {:#x} at byte {at}", bytes[at]);
            }
            got.push(p);
        }
        for p in got {
            // SAFETY: allocated above with `layout`.
            unsafe { dealloc(p, layout) };
        }
    })
    .join()
    .unwrap();
}
