//! The first epoch (era 1, ACTIVE before any clock could be read) reports a real age.
//! Alone in its own binary so that nothing advances the epoch first.

use std::time::Duration;

use temporal_slab::TemporalSlab;

#[global_allocator]
static GLOBAL: TemporalSlab = TemporalSlab::new();

#[test]
fn first_epoch_has_an_age() {
    let keep: Vec<Box<[u8; 64]>> = (0..100).map(|_| Box::new([7u8; 64])).collect();
    std::thread::sleep(Duration::from_millis(50));
    let s = temporal_slab::snapshot();
    assert_eq!(s.current_era, 1, "nothing in this binary advances the epoch");
    let first = &s.epochs[0];
    assert_eq!(first.era, 1);
    assert!(first.opened_ns > 0, "era 1 must have an open time");
    assert!(first.age_sec >= 0.05, "era 1 has lived at least 50 ms, reported {} s", first.age_sec);
    assert!(first.age_sec < 3600.0, "age {} s is not this process's", first.age_sec);
    drop(keep);
}
