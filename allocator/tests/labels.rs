//! The label registry: bounded, overflow counted under a fixed label, labels cut at 31 bytes,
//! escaped correctly in JSON. Its own binary: filling the registry is process-wide.

use temporal_slab::{snapshot, EpochDomain, TemporalSlab, LABEL_MAX, MAX_LABELS, OVERFLOW_LABEL};

// Sampling off: the byte countdown then runs in whole 16 MiB chunks (see the last test).
#[global_allocator]
static GLOBAL: TemporalSlab = TemporalSlab::new().with_profile_sample(0);

#[test]
fn label_registry_overflows_into_the_fixed_label() {
    let before = snapshot().global.label_overflows;
    // The first label registered is kept whole with its quote, backslash and newline.
    // Each domain on an epoch of its own (domains of one epoch with different labels show as
    // "(shared)").
    let first = EpochDomain::on(temporal_slab::epoch::advance(), Some("a\"b\\c\nd"));
    assert_eq!(snapshot().epochs[first.epoch().index()].label.as_deref(), Some("a\"b\\c\nd"));
    let long = EpochDomain::on(temporal_slab::epoch::advance(), Some(&"x".repeat(50)));
    assert_eq!(snapshot().epochs[long.epoch().index()].label.as_deref(), Some("x".repeat(LABEL_MAX).as_str()));
    let mut last = None;
    for i in 0..MAX_LABELS + 8 {
        let d = EpochDomain::on(temporal_slab::epoch::advance(), Some(&format!("label-{i:02}-\"quoted\"\\\n")));
        last = Some(d.epoch());
    }
    assert_eq!(temporal_slab::label_count(), MAX_LABELS - 1);
    let s = snapshot();
    assert!(s.global.label_overflows >= before + 8);
    assert_eq!(s.epochs[last.unwrap().index()].label.as_deref(), Some(OVERFLOW_LABEL));
    for e in &s.epochs {
        if let Some(l) = &e.label {
            assert!(l.len() <= LABEL_MAX, "label {l:?} longer than {LABEL_MAX} bytes");
        }
    }
    // Labels survive JSON with their quotes, backslashes and newlines escaped.
    let json = serde_json::to_string(&s).unwrap();
    let back: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(back["epochs"].as_array().unwrap().iter().any(|e| e["label"] == OVERFLOW_LABEL));
}

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
