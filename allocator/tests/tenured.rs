//! The tenured scope with TemporalSlab as this test binary's global allocator: what a short
//! request keeps in a cache no longer pins the request's epoch; it lives in the tenured epoch,
//! which stays open across many advances and ring wraps and is charged to its own label.
//!
//! One test function: epochs are process-wide.

use std::hint::black_box;

use temporal_slab::epoch::{self, EpochState};
use temporal_slab::{snapshot, tenured, EpochDomain, Snapshot, TemporalSlab, TENURED_LABEL};

#[global_allocator]
static GLOBAL: TemporalSlab = TemporalSlab::new();

const OBJECTS: usize = 1024;
const SIZE: usize = 4096;

/// Live bytes of era `era` in `s` (0 when the era has no row any more).
fn live_of(s: &Snapshot, era: u64) -> u64 {
    s.epochs.iter().filter(|e| e.era == era).map(|e| e.live_bytes).sum()
}

/// Runs one short request on a fresh epoch that puts OBJECTS buffers into `cache`, in the
/// tenured scope or not, then ends and closes the request's epoch. Returns its era.
fn request(cache: &mut Vec<Vec<u8>>, in_tenured: bool) -> u64 {
    let e = epoch::advance();
    {
        let request = EpochDomain::on(e, Some("upload"));
        let _in = request.enter();
        for i in 0..OBJECTS {
            let scratch = black_box(vec![i as u8; 256]);
            let kept = if in_tenured { tenured(|| vec![i as u8; SIZE]) } else { vec![i as u8; SIZE] };
            cache.push(kept);
            drop(scratch);
        }
    }
    epoch::advance();
    epoch::close(e);
    e.era()
}

#[test]
fn cached_objects_in_the_tenured_scope_pin_no_request() {
    let kept_bytes = (OBJECTS * SIZE) as u64;

    // Without the scope, the cache pins the request's closed epoch: the failure this prevents.
    let mut pinned = Vec::new();
    let e1 = request(&mut pinned, false);
    let s = snapshot();
    assert!(live_of(&s, e1) >= kept_bytes, "control: era {e1} holds {} live bytes", live_of(&s, e1));

    // With it, the request's epoch holds nothing once it closes.
    let mut cache = Vec::new();
    let e2 = request(&mut cache, true);
    let s = snapshot();
    assert!(live_of(&s, e2) < kept_bytes / 16, "era {e2} still holds {} live bytes", live_of(&s, e2));
    let t = temporal_slab::tenured::tenured_epoch().expect("a ring slot for the tenured epoch").era();
    let row = s.epochs.iter().find(|e| e.era == t).expect("the tenured epoch has a ring row");
    assert_eq!(row.label.as_deref(), Some(TENURED_LABEL));
    assert_eq!(row.state, Some(EpochState::Active));
    assert!(row.live_bytes >= kept_bytes, "tenured epoch holds {} live bytes", row.live_bytes);
    assert_eq!(row.refcount, 0, "the tenured epoch holds no domain open");
    let label = s.label_registry.iter().find(|l| l.label == TENURED_LABEL).expect("the tenured label");
    assert!(label.allocated_bytes >= kept_bytes, "tenured label charged {} bytes", label.allocated_bytes);

    // It stays open and keeps taking allocations while the ring wraps many times.
    for _ in 0..40 {
        let e = epoch::advance();
        epoch::close(epoch::current());
        let _ = e;
    }
    epoch::close(epoch::EpochId::from_era(t)); // closing it is a no-op
    let later: Vec<Vec<u8>> = tenured(|| (0..OBJECTS).map(|i| vec![i as u8; SIZE]).collect());
    let s = snapshot();
    let row = s.epochs.iter().find(|e| e.era == t).expect("the tenured epoch is still in the ring");
    assert_eq!(row.state, Some(EpochState::Active));
    assert!(row.live_bytes >= 2 * kept_bytes, "after 40 advances the tenured epoch holds {} bytes", row.live_bytes);
    let g = &s.global;
    let misuse = g.domain_misuse_out_of_order
        + g.domain_misuse_wrong_thread
        + g.domain_misuse_passed_era
        + g.domain_misuse_too_deep;
    assert_eq!(misuse, 0, "misuse counted");
    drop((pinned, cache, later));
}
