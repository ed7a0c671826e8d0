//! The large-object cache reuses resident pages: a cached mapping much larger than the next
//! request is split, not trimmed, so its tail serves a later request without page faults.
//! (Regression: the cache unmapped such a tail, and malloc-large faulted ~450 pages per step.)
//! One test in its own binary: it reads process-wide gauges and this thread's fault count.

use std::alloc::{GlobalAlloc, Layout};

use temporal_slab::{snapshot, trim, TemporalSlab};

#[global_allocator]
static GLOBAL: TemporalSlab = TemporalSlab::new();

const MIB: usize = 1 << 20;
const PAGE: usize = 4096;

fn thread_minor_faults() -> i64 {
    // SAFETY: an all-zero rusage is a valid value for getrusage to overwrite.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a valid, writable rusage.
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut u) }, 0);
    u.ru_minflt
}

/// Allocates `size` bytes and writes one byte per page.
fn touched(size: usize) -> *mut u8 {
    let layout = Layout::from_size_align(size, 8).unwrap();
    // SAFETY: the layout has a non-zero size.
    let p = unsafe { GLOBAL.alloc(layout) };
    assert!(!p.is_null());
    for off in (0..size).step_by(PAGE) {
        // SAFETY: `off < size`, inside the block.
        unsafe { p.add(off).write(1) };
    }
    p
}

fn free(p: *mut u8, size: usize) {
    // SAFETY: `p` came from `touched(size)` and is freed once.
    unsafe { GLOBAL.dealloc(p, Layout::from_size_align(size, 8).unwrap()) };
}

#[test]
fn split_tail_of_a_cached_mapping_is_reused_without_faults() {
    trim();
    // A 16 MiB block, every page resident, freed into the cache (with its header page: 16 MiB + 4 KiB).
    let big = 16 * MIB;
    free(touched(big), big);
    let s0 = snapshot().global;
    assert!(s0.large_cache_bytes as usize > big, "the freed block was not cached: {}", s0.large_cache_bytes);

    // A 1 MiB request takes it: the part past the first 4 MiB boundary stays cached.
    let faults = thread_minor_faults();
    let small = MIB;
    let a = touched(small);
    let s1 = snapshot().global;
    assert!(
        s1.large_cache_bytes as usize >= 12 * MIB,
        "the 12 MiB tail was unmapped, not kept: cache holds {} bytes",
        s1.large_cache_bytes
    );

    // A 12 MiB request (minus the header page) fits that tail exactly: no new mapping, no faults.
    let mid = 12 * MIB - PAGE;
    let b = touched(mid);
    let faulted = thread_minor_faults() - faults;
    let s2 = snapshot().global;
    assert!(s2.mapped_bytes <= s0.mapped_bytes, "a new mapping was made: {} -> {}", s0.mapped_bytes, s2.mapped_bytes);
    assert!(s2.large_cache_hits >= s0.large_cache_hits + 2);
    // 3 MiB of the 16 MiB (between 1 MiB and the 4 MiB boundary) was given back; the 13 MiB
    // touched here came from resident pages. A few faults are allowed for the test's own stack.
    assert!(faulted < 64, "{faulted} page faults while reusing cached, resident pages");

    free(a, small);
    free(b, mid);
    trim();
    let s3 = snapshot().global;
    assert_eq!(s3.large_cache_bytes, 0, "trim left cached mappings");
    assert_eq!(s3.large_objects, 0);
}
