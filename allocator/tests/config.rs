//! Configuration: automatic epoch advance by volume (builder) and by time (environment, which
//! overrides the builder), the reclaimer switch, and the RSS figures around a close (kernel
//! cooperation). Environment cases run in a child process: this binary re-runs itself, since the
//! environment is read at the allocator's first allocations.

use std::process::Command;
use std::thread;
use std::time::Duration;

use temporal_slab::{epoch, reclaim, snapshot, AutoAdvance, TemporalSlab};

#[global_allocator]
static GLOBAL: TemporalSlab = TemporalSlab::new().with_auto_advance(AutoAdvance::EveryBytes(2 << 20));

const CHILD: &str = "TSLAB_CONFIG_CHILD";

/// Runs the test `name` of this binary in a child with `env` set; returns its stderr.
fn child(name: &str, env: &[(&str, &str)]) -> String {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", name, "--nocapture", "--test-threads=1"]).env(CHILD, "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("re-running the test binary");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "child {name} failed: {stderr}");
    stderr
}

fn in_child() -> bool {
    std::env::var_os(CHILD).is_some()
}

#[test]
fn builder_advances_by_volume() {
    if in_child() {
        return;
    }
    assert_eq!(reclaim::auto_advance(), AutoAdvance::EveryBytes(2 << 20));
    let before = snapshot().global.auto_advances;
    let e0 = epoch::current();
    // ~20 MiB of new slabs: about ten automatic advances.
    let v: Vec<Vec<u8>> = (0..20_000).map(|i| vec![i as u8; 1000]).collect();
    let after = snapshot().global.auto_advances;
    assert!(after >= before + 5, "auto advances {before} -> {after}");
    assert!(epoch::current().era() > e0.era());
    assert!(v.iter().enumerate().all(|(i, b)| b[999] == i as u8));
}

#[test]
fn env_advance_by_time_overrides_the_builder() {
    if !in_child() {
        let err = child("env_advance_by_time_overrides_the_builder", &[("TSLAB_AUTO_ADVANCE_MS", "50")]);
        assert!(err.contains("auto-advance ok"), "{err}");
        return;
    }
    let _warm = vec![1u8; 100_000];
    assert_eq!(reclaim::auto_advance(), AutoAdvance::EveryMillis(50));
    let before = snapshot().global.auto_advances;
    thread::sleep(Duration::from_millis(600));
    let after = snapshot().global.auto_advances;
    assert!(after >= before + 3, "auto advances {before} -> {after} in 600 ms at 50 ms");
    eprintln!("auto-advance ok: {before} -> {after}");
}

#[test]
fn reclaimer_can_be_turned_off() {
    if !in_child() {
        let on = child("reclaimer_can_be_turned_off", &[]);
        assert!(on.contains("ticks>0"), "{on}");
        let off = child("reclaimer_can_be_turned_off", &[("TSLAB_RECLAIM", "0")]);
        assert!(off.contains("ticks=0"), "{off}");
        return;
    }
    let _warm = vec![1u8; 100_000];
    thread::sleep(Duration::from_millis(350));
    let ticks = snapshot().global.reclaimer_ticks;
    eprintln!("{}", if ticks > 0 { "ticks>0".to_string() } else { format!("ticks={ticks}") });
}

#[test]
fn close_reports_rss_before_and_after() {
    if !in_child() {
        // Alone in a child, and without this binary's advance every 2 MiB: other tests'
        // allocations, and advances in the middle of the 20 MiB below, moved most of it out of
        // the domain's epoch at random (the close then had little to purge).
        child("close_reports_rss_before_and_after", &[("TSLAB_AUTO_ADVANCE_MIB", "1000000")]);
        return;
    }
    epoch::set_rss_on_close(true);
    let d = temporal_slab::EpochDomain::new(Some("coop"));
    {
        let _g = d.enter();
        let v: Vec<Box<[u8; 512]>> = (0..40_000).map(|i| Box::new([i as u8; 512])).collect();
        assert_eq!(v[39_999][0], 63);
    }
    // The domain ends; its epoch (the current time bucket) closes with a purge, so the close
    // gives the freed pages back now instead of keeping them for the next phase.
    d.close();
    epoch::close_purge(d.epoch());
    epoch::set_rss_on_close(false);
    let s = snapshot();
    let row = &s.epochs[d.epoch().index()];
    assert!(row.rss_before_close > 0 && row.rss_after_close > 0);
    // Of the ~20 MiB freed inside the domain, what the reserve kept (up to its floor, less if
    // other tests filled it) is purged at this close; RSS falls by about as much (kernel
    // cooperation).
    assert!(row.last_close_purged_bytes >= 4 << 20, "purged {} B", row.last_close_purged_bytes);
    let fell = row.rss_before_close.saturating_sub(row.rss_after_close);
    assert!(
        fell as f64 >= 0.9 * row.last_close_purged_bytes as f64,
        "RSS fell {fell} B, purged {} B",
        row.last_close_purged_bytes
    );
    assert_eq!(s.global.last_close_era, d.epoch().era());
    // At least once: the epoch is the shared current bucket, which a test running beside this
    // one may close too.
    assert!(row.close_calls >= 1 && row.last_close_ns > 0, "{row:?}");
}
