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

/// A domain opened with a registered [`Label`] is charged and counted under the same label as
/// one opened with its text, with nested domains of another label in between: the scopes' stack
/// hands each allocation to the innermost label and back.
#[test]
fn a_registered_label_charges_the_same_label_as_its_text() {
    use std::hint::black_box;
    use temporal_slab::Label;
    let (outer_name, inner_name) = ("registered-outer", "registered-inner");
    let (outer, inner) = (Label::new(outer_name), Label::new(inner_name));
    assert_ne!(outer, inner);
    assert_eq!(Label::new(outer_name), outer, "registering again finds the same label");
    assert!(!outer.is_overflow());
    let row = |s: &temporal_slab::Snapshot, name: &str| -> (u64, u64) {
        s.label_registry
            .iter()
            .filter(|l| l.label == name)
            .map(|l| (l.allocated_bytes, l.domains_opened))
            .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
    };
    let before = snapshot();
    {
        let by_text = EpochDomain::new(Some(outer_name));
        let by_label = EpochDomain::labelled(outer);
        let nested = EpochDomain::labelled(inner);
        let _a = by_text.enter();
        drop(black_box(vec![1u8; 1000]));
        {
            let _b = nested.enter();
            drop(black_box(vec![2u8; 3000]));
            {
                let _c = by_label.enter();
                drop(black_box(vec![3u8; 2000]));
            }
            drop(black_box(vec![4u8; 500]));
        }
    }
    let after = snapshot();
    let (o0, i0) = (row(&before, outer_name), row(&before, inner_name));
    let (o1, i1) = (row(&after, outer_name), row(&after, inner_name));
    // Each Vec's buffer is one allocation of its capacity (size classes round it up).
    assert_eq!(o1.1 - o0.1, 2, "two domains opened under the outer label");
    assert_eq!(i1.1 - i0.1, 1);
    let outer_bytes = o1.0 - o0.0;
    let inner_bytes = i1.0 - i0.0;
    assert!((3000..3300).contains(&outer_bytes), "outer label charged {outer_bytes} B for 1000 + 2000");
    assert!((3500..3800).contains(&inner_bytes), "inner label charged {inner_bytes} B for 3000 + 500");
}
