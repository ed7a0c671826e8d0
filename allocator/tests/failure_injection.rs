//! Failure injection through the OS layer: while the OS refuses memory, allocations that need
//! new memory return null (small, large, zeroed, realloc), nothing aborts, live data is intact;
//! once the OS gives memory again the allocator works normally.

use std::alloc::{GlobalAlloc, Layout};

use temporal_slab::testing::refuse_os_memory;
use temporal_slab::TemporalSlab;

#[global_allocator]
static GLOBAL: TemporalSlab = TemporalSlab::new();

#[test]
fn refused_memory_gives_null_then_recovers() {
    let small = Layout::from_size_align(1000, 8).unwrap();
    let large = Layout::from_size_align(64 << 20, 8).unwrap();
    let mut got: Vec<*mut u8> = Vec::with_capacity(100_000);
    let survivor = vec![7u8; 5000];

    refuse_os_memory(true);
    // Nothing below may allocate from the harness side: no assert, no format, until refusal ends.
    // SAFETY: valid layouts; every non-null block is freed with the same layout below.
    let (large_null, zeroed_null, first_null_at, realloc_null, realloc_kept) = unsafe {
        let large_null = GLOBAL.alloc(large).is_null();
        let zeroed_null = GLOBAL.alloc_zeroed(large).is_null();
        // Small objects come from slabs already mapped until those run out, then null.
        let mut first_null_at = None;
        for i in 0..got.capacity() {
            let p = GLOBAL.alloc(small);
            if p.is_null() {
                first_null_at = Some(i);
                break;
            }
            p.write_bytes(0x11, small.size());
            got.push(p);
        }
        // Growing a large block cannot get new pages either; the old block must stay intact.
        let l = Layout::from_size_align(1 << 20, 8).unwrap();
        refuse_os_memory(false);
        let b = GLOBAL.alloc(l);
        b.write_bytes(0x22, l.size());
        refuse_os_memory(true);
        let r = GLOBAL.realloc(b, l, 256 << 20);
        let realloc_null = r.is_null();
        let realloc_kept = std::slice::from_raw_parts(b, l.size()).iter().all(|&x| x == 0x22);
        if r.is_null() {
            GLOBAL.dealloc(b, l);
        } else {
            GLOBAL.dealloc(r, Layout::from_size_align(256 << 20, 8).unwrap());
        }
        (large_null, zeroed_null, first_null_at, realloc_null, realloc_kept)
    };
    refuse_os_memory(false);

    assert!(large_null, "a 64 MiB allocation succeeded while the OS refused memory");
    assert!(zeroed_null, "alloc_zeroed succeeded while the OS refused memory");
    let n = first_null_at.expect("100000 x 1000 B allocations never returned null while refusing");
    assert!(n < 100_000);
    assert!(realloc_null, "realloc to 256 MiB succeeded while the OS refused memory");
    assert!(realloc_kept, "a failed realloc damaged the old block");
    assert!(survivor.iter().all(|&b| b == 7));

    // Recovery: everything works again, including what failed before.
    // SAFETY: valid layouts, freed with the same layouts.
    unsafe {
        for &p in &got {
            assert!(std::slice::from_raw_parts(p, small.size()).iter().all(|&b| b == 0x11));
            GLOBAL.dealloc(p, small);
        }
        let p = GLOBAL.alloc(large);
        assert!(!p.is_null());
        p.write_bytes(1, large.size());
        GLOBAL.dealloc(p, large);
        let more: Vec<Vec<u8>> = (0..20_000).map(|i| vec![i as u8; 1000]).collect();
        assert!(more.iter().enumerate().all(|(i, v)| v[999] == i as u8));
    }
}
