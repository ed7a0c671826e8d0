//! The published statistics region, read back through /proc the way another process would:
//! the snapshot agrees with the in-process one; a forked child publishes its own region and
//! leaves the parent's alone; errors name their cause.

use std::time::Duration;

use temporal_slab::attach::{snapshot_of, AttachError};
use temporal_slab::{snapshot, TemporalSlab};

#[global_allocator]
static GLOBAL: TemporalSlab = TemporalSlab::new();

fn wait_for_publish(pid: u32) -> temporal_slab::Snapshot {
    for _ in 0..50 {
        if let Ok(s) = snapshot_of(pid) {
            return s;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    snapshot_of(pid).expect("the region was never published")
}

#[test]
fn attached_snapshot_matches_the_in_process_one() {
    let keep: Vec<Box<[u8; 200]>> = (0..50_000).map(|i| Box::new([i as u8; 200])).collect();
    let me = std::process::id();
    let first = wait_for_publish(me);
    // Wait for a publish that happened after all of `keep` was allocated.
    std::thread::sleep(Duration::from_millis(250));
    let attached = snapshot_of(me).unwrap();
    let local = snapshot();
    assert_eq!(attached.pid, me);
    assert_eq!(attached.schema_version, local.schema_version);
    assert!(attached.timestamp_ns >= first.timestamp_ns);
    let class = temporal_slab::size_class::class_for(200, 8).unwrap().index();
    let (a, l) = (&attached.classes[class], &local.classes[class]);
    assert!(a.live_objects >= 50_000 && l.live_objects >= 50_000);
    // Published at most 100 ms before the local one, while the test thread was asleep.
    assert!(a.live_objects.abs_diff(l.live_objects) < 100, "{} vs {}", a.live_objects, l.live_objects);
    assert!(attached.rss_bytes_current > 10_000_000);
    drop(keep);
}

#[test]
fn errors_name_the_cause() {
    assert_eq!(snapshot_of(0x3fff_fff0).unwrap_err(), AttachError::NoSuchProcess(0x3fff_fff0));
    // A process that does not use the allocator: `sleep` from coreutils.
    let mut child = std::process::Command::new("sleep").arg("5").spawn().unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let err = snapshot_of(child.id()).unwrap_err();
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(err, AttachError::NotPublishing(child.id()));
    assert!(err.to_string().contains("does not use TemporalSlab"), "{err}");
}

#[test]
fn a_forked_child_publishes_its_own_region() {
    let me = std::process::id();
    wait_for_publish(me);
    let before = wait_for_publish(me);
    let class = temporal_slab::size_class::class_for(3000, 8).unwrap().index();
    match temporal_slab::testing::fork().unwrap() {
        None => {
            // Child: allocate a lot of 3000 B objects, publish, wait to be read, exit.
            let v: Vec<Vec<u8>> = (0..20_000).map(|i| vec![i as u8; 3000]).collect();
            std::thread::sleep(Duration::from_millis(1500));
            std::process::exit(if v.len() == 20_000 { 0 } else { 1 });
        }
        Some(child) => {
            let mut child_snap = None;
            for _ in 0..100 {
                std::thread::sleep(Duration::from_millis(20));
                if let Ok(s) = snapshot_of(child) {
                    if s.classes[class].live_objects >= 20_000 {
                        child_snap = Some(s);
                        break;
                    }
                }
            }
            let parent = snapshot_of(me).unwrap();
            let mut status = 0;
            // SAFETY: waiting for our own child.
            unsafe { libc::waitpid(child as i32, &mut status, 0) };
            let child_snap = child_snap.expect("the child never published its own region");
            assert_eq!(child_snap.pid, child);
            assert!(child_snap.classes[class].live_objects >= 20_000);
            // The parent's counters did not see the child's 20 000 allocations.
            assert!(
                parent.classes[class].allocations < before.classes[class].allocations + 1000,
                "parent's class counters moved by the child: {} -> {}",
                before.classes[class].allocations,
                parent.classes[class].allocations
            );
            assert_eq!(parent.pid, me);
        }
    }
}
