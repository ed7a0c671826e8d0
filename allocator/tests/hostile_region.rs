//! A target that truncates its statistics region while a reader copies it must not crash the
//! reader (it did with a mapping: SIGBUS, 54 runs in 100). The target here is this process in a
//! child run (publishing off, so its only region is the fake one it makes and then shrinks and
//! regrows from another thread while the main thread attaches to itself).

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use temporal_slab::attach::{snapshot_of, AttachError};
use temporal_slab::{testing, TemporalSlab};

#[global_allocator]
static GLOBAL: TemporalSlab = TemporalSlab::new();

const CHILD: &str = "TSLAB_HOSTILE_CHILD";

#[test]
fn a_region_truncated_during_reads_never_crashes_the_reader() {
    if std::env::var_os(CHILD).is_none() {
        let out = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "a_region_truncated_during_reads_never_crashes_the_reader", "--nocapture"])
            .env(CHILD, "1")
            .env("TSLAB_PUBLISH", "0")
            .output()
            .expect("re-running the test binary");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "the reader died ({:?}): {stderr}", out.status);
        assert!(stderr.contains("rounds=100"), "{stderr}");
        return;
    }
    assert!(testing::publish_fake_region(temporal_slab::publish::LAYOUT_VERSION), "memfd unavailable");
    let pid = std::process::id();
    let full = testing::region_len();
    let stop = AtomicBool::new(false);
    let (mut ok, mut cut) = (0, 0);
    thread::scope(|s| {
        s.spawn(|| {
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                // Cut at varying points (inside the header, inside the body, to nothing).
                let len = [0, 64, full / 3, full / 2, full - 8][i % 5];
                testing::resize_fake_region(len);
                std::hint::spin_loop();
                testing::resize_fake_region(full);
                i += 1;
            }
        });
        // Stops the resizer even if an assertion below fails (else the scope would wait forever).
        struct Stop<'a>(&'a AtomicBool);
        impl Drop for Stop<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Relaxed);
            }
        }
        let _stop = Stop(&stop);
        for _ in 0..100 {
            match snapshot_of(pid) {
                Ok(_) => ok += 1,
                // The fake body is all zeros: whole copies are rejected as implausible.
                Err(
                    AttachError::Truncated(_)
                    | AttachError::NotPublishing(_)
                    | AttachError::Busy(_)
                    | AttachError::Implausible { .. },
                ) => cut += 1,
                Err(e) => panic!("unexpected error: {e}"),
            }
        }
    });
    assert_eq!(ok + cut, 100);
    eprintln!("rounds=100 ok={ok} cut={cut}");
}
