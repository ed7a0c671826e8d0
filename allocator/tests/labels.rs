//! The label registry: bounded, overflow counted under a fixed label, labels cut at 31 bytes,
//! escaped correctly in JSON. Its own binary: filling the registry is process-wide.

use temporal_slab::{snapshot, EpochDomain, TemporalSlab, LABEL_MAX, MAX_LABELS, OVERFLOW_LABEL};

#[global_allocator]
static GLOBAL: TemporalSlab = TemporalSlab::new();

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
