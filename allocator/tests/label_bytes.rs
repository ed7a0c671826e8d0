//! Per-label allocated bytes over the byte countdown's chunk ends. Its own binary: the label
//! registry is process-wide, and `labels.rs` fills it (a label registered after that would be
//! charged under the overflow label).

use temporal_slab::{snapshot, EpochDomain, TemporalSlab};

// Sampling off: the byte countdown then runs in whole 16 MiB chunks.
#[global_allocator]
static GLOBAL: TemporalSlab = TemporalSlab::new().with_profile_sample(0);

/// Label bytes come from the heap's byte countdown, which runs in chunks of 16 MiB (it shares the
/// allocation path's one test with the epoch generation, `countdown.rs`) and is also the heap
/// profile's sample clock (off in this binary, so the gap is one long run of chunks; the profile
/// tests cover sample points). Two threads each allocate 47 MiB in one labelled domain, through
/// two chunk ends each: the label must be charged every byte, exactly, and large objects must
/// not be charged.
#[test]
fn label_bytes_stay_exact_across_countdown_chunks() {
    use std::alloc::{alloc, dealloc, Layout};
    const N: usize = 12_000;
    let small = Layout::from_size_align(4096, 8).unwrap();
    let large = Layout::from_size_align(1 << 20, 8).unwrap();
    let label = "countdown-chunks";
    let domain = EpochDomain::new(Some(label));
    let charged = |s: &temporal_slab::Snapshot| -> u64 {
        s.label_registry.iter().filter(|l| l.label == label).map(|l| l.allocated_bytes).sum()
    };
    let before = charged(&snapshot());
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                // Made before the domain is entered: nothing but the loop allocates inside it.
                let mut kept: Vec<*mut u8> = Vec::with_capacity(N);
                {
                    let _in = domain.enter();
                    for i in 0..N {
                        // SAFETY: a non-zero-size layout; the pointer is freed below with it.
                        let p = unsafe { alloc(small) };
                        assert!(!p.is_null());
                        if i % 3 == 0 {
                            // SAFETY: allocated just above with `small`.
                            unsafe { dealloc(p, small) };
                        } else {
                            kept.push(p);
                        }
                        if i % 4000 == 0 {
                            // SAFETY: as above, with `large`.
                            unsafe {
                                let q = alloc(large);
                                assert!(!q.is_null());
                                dealloc(q, large);
                            }
                        }
                    }
                }
                for p in kept {
                    // SAFETY: each was allocated above with `small`.
                    unsafe { dealloc(p, small) };
                }
            });
        }
    });
    assert_eq!(charged(&snapshot()) - before, 2 * N as u64 * 4096, "label bytes off the objects' sizes");
}
