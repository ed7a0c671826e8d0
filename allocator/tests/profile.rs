//! The sampled heap profile with TemporalSlab as this test binary's global allocator: the
//! estimates of live bytes match what the program holds, freed samples (local, remote, large,
//! moved by realloc) leave the table, and samples carry their domain's label and era.
//!
//! One test function: the profile is process-wide, so parallel tests would see each other's
//! samples.

// Without the `profile` feature nothing is sampled: there is nothing to test.
#![cfg(feature = "profile")]

use std::thread;

use temporal_slab::profile_attach::{own_profile, Profile};
use temporal_slab::{EpochDomain, TemporalSlab};

/// A small mean, so that a few MiB give hundreds of samples.
const MEAN: u64 = 32 << 10;

#[global_allocator]
static GLOBAL: TemporalSlab = TemporalSlab::new().with_profile_sample(MEAN);

fn live_bytes_of(p: &Profile, size: u64) -> f64 {
    p.live.iter().filter(|s| s.size == size).map(|s| s.bytes).sum()
}

fn profile() -> Profile {
    own_profile().expect("a profile once a few MiB are allocated")
}

#[inline(never)]
fn plant(n: usize, size: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| vec![i as u8; size]).collect()
}

#[test]
fn live_estimates_follow_what_the_program_holds() {
    if std::env::var_os("TSLAB_PROFILE_SAMPLE").is_some() {
        eprintln!("skipped: TSLAB_PROFILE_SAMPLE overrides the mean this test needs");
        return;
    }
    // Small objects: 24 MiB of 1,000-byte vectors held, then freed.
    let held = plant(24 << 10, 1000);
    let p = profile();
    assert_eq!(p.sample_bytes, MEAN);
    let est = live_bytes_of(&p, 1000);
    let truth = (held.len() * 1000) as f64;
    assert!((est / truth - 1.0).abs() < 0.25, "estimated {est:.0} live bytes of {truth}");
    let sampled: Vec<_> = p.live.iter().filter(|s| s.size == 1000).collect();
    assert!(sampled.len() > 300, "{} samples", sampled.len());
    assert!(sampled.iter().all(|s| s.site.is_some_and(|i| p.sites[i].frames.len() >= 3)));
    drop(held);
    assert_eq!(live_bytes_of(&profile(), 1000), 0.0, "freed samples leave the table");

    // Freed by another thread (the remote path).
    let held = plant(8 << 10, 1001);
    assert!(live_bytes_of(&profile(), 1001) > 0.0);
    thread::spawn(move || drop(held)).join().unwrap();
    assert_eq!(live_bytes_of(&profile(), 1001), 0.0, "remote frees remove samples");

    // Large objects: 40 of 1 MiB, each sure to be sampled at this mean.
    let big = plant(40, 1 << 20);
    let n = profile().live.iter().filter(|s| s.size == 1 << 20).count();
    assert_eq!(n, 40, "every 1 MiB object is sampled at a 32 KiB mean");
    // Grown in place or moved by mremap: either way nothing stays recorded at a stale address.
    let mut big = big;
    for v in &mut big {
        v.reserve_exact(3 << 20);
    }
    drop(big);
    let left = profile().live.iter().filter(|s| s.size == 1 << 20 || s.size == 4 << 20).count();
    assert_eq!(left, 0);

    // Inside a domain: the samples carry its label and the epoch it allocated in.
    let d = EpochDomain::new(Some("profile-test"));
    let held = {
        let _in = d.enter();
        plant(4 << 10, 1002)
    };
    let p = profile();
    let mine: Vec<_> = p.live.iter().filter(|s| s.size == 1002).collect();
    assert!(!mine.is_empty());
    let label = mine[0].label_id.expect("a label id");
    assert!(mine.iter().all(|s| s.label_id == Some(label) && s.era == mine[0].era));
    drop(held);

    // Many threads sampling at once: the tables stay consistent, and everything freed is gone.
    let handles: Vec<_> = (0..4)
        .map(|t| {
            thread::spawn(move || {
                for round in 0..20 {
                    let v = plant(500, 900 + t);
                    if round % 2 == 0 {
                        thread::spawn(move || drop(v)).join().unwrap();
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let p = profile();
    assert!(p.live.iter().all(|s| !(900..904).contains(&s.size)), "all freed");
    assert!(p.samples > 1000);

    // Sampled objects live apart from the thread's own slabs (the fallback heap's), but in the
    // epoch they were allocated in: a sample still pins a closed phase as it would unsampled.
    // Another thread first samples in an older epoch (its domain's), so the shared heap must
    // switch back for this thread's samples. 2 MiB of 1 KiB objects, about 64 sampled, all kept.
    let old = temporal_slab::epoch::advance();
    let in_old = EpochDomain::on(old, None);
    let e = temporal_slab::epoch::advance();
    let theirs = thread::scope(|s| {
        s.spawn(|| {
            let _in = in_old.enter();
            plant(1 << 10, 1024)
        })
        .join()
        .unwrap()
    });
    let n = 2 << 10;
    let mut held: Vec<Vec<u8>> = Vec::with_capacity(n);
    for i in 0..n {
        held.push(vec![i as u8; 1024]);
    }
    temporal_slab::epoch::advance();
    temporal_slab::epoch::close(e);
    let s = temporal_slab::snapshot();
    let live: u64 = s.epochs.iter().filter(|x| x.era == e.era()).map(|x| x.live_bytes).sum();
    assert!(live >= (n * 1024) as u64, "the closed epoch holds {live} live bytes of {}", n * 1024);
    assert!(profile().live.iter().filter(|s| s.size == 1024 && s.era == e.era()).count() > 10);
    drop(theirs);
    drop(held);
}
