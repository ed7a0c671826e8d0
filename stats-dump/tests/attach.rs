//! stats_dump against real processes: a live workload read several times (every snapshot valid
//! against the schema, counters monotonic and consistent, the doctor finds the leaked domain),
//! and every error: no such pid, a process that does not use the allocator, an unknown region
//! layout, permission denied, a target that exits during the reads. Each error is one line on
//! stderr, exit status 2, no panic.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::{start, stats_dump, STATS_DUMP};

fn schema() -> (boon::Schemas, boon::SchemaIndex) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../schemas/snapshot.schema.json");
    let text = std::fs::read_to_string(path).expect("reading schemas/snapshot.schema.json");
    let json: Value = serde_json::from_str(&text).expect("the schema is JSON");
    let mut schemas = boon::Schemas::new();
    let mut compiler = boon::Compiler::new();
    let url = "https://temporal-slab.invalid/snapshot.schema.json";
    compiler.add_resource(url, json).expect("adding the schema");
    let index = compiler.compile(url, &mut schemas).expect("the schema compiles");
    (schemas, index)
}

/// Asserts the failure shape every error must have: exit 2, one line on stderr naming it.
fn assert_one_line_error(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "status {:?}, stderr {stderr}", out.status);
    assert_eq!(stderr.lines().count(), 1, "more than one line: {stderr}");
    assert!(stderr.starts_with("stats_dump: ") && stderr.contains(needle), "{stderr}");
    assert!(out.stdout.is_empty(), "stdout not empty on error");
}

#[test]
fn live_workload_snapshots_are_valid_and_consistent() {
    let target = start(&["--seconds", "30", "--leak", "--threads", "3"], &[]);
    let pid = target.0.id().to_string();
    let (schemas, index) = schema();
    let mut previous: Option<Value> = None;
    for round in 0..5 {
        std::thread::sleep(Duration::from_millis(150));
        let out = stats_dump(&["--pid", &pid, "--no-text"]);
        assert!(out.status.success(), "round {round}: {}", String::from_utf8_lossy(&out.stderr));
        let snap: Value = serde_json::from_slice(&out.stdout).expect("stats_dump printed JSON");
        if let Err(e) = schemas.validate(&snap, index) {
            panic!("round {round}: snapshot does not match the schema: {e:#}");
        }
        assert_eq!(snap["pid"].as_u64(), Some(target.0.id() as u64));
        // Objects counted per class and objects found in slabs agree (the two are read from
        // different places; allow for the operations in flight while the target runs).
        let class_live: u64 =
            snap["classes"].as_array().unwrap().iter().map(|c| c["live_bytes"].as_u64().unwrap()).sum();
        let epoch_live: u64 =
            snap["epochs"].as_array().unwrap().iter().map(|e| e["live_bytes"].as_u64().unwrap()).sum();
        let stale: u64 =
            snap["epochs"].as_array().unwrap().iter().map(|e| e["stale_era_slabs"].as_u64().unwrap()).sum();
        if stale == 0 {
            assert!(
                class_live.abs_diff(epoch_live) <= 256 * 1024,
                "classes say {class_live} B live, slabs {epoch_live} B"
            );
        }
        if let Some(prev) = &previous {
            for key in ["total_slabs_allocated", "total_madvise_calls", "total_madvise_bytes", "total_slow_path_hits"] {
                assert!(snap[key].as_u64() >= prev[key].as_u64(), "{key} went back");
            }
            for (a, b) in prev["classes"].as_array().unwrap().iter().zip(snap["classes"].as_array().unwrap()) {
                for key in ["allocations", "frees", "new_slab_count", "slow_path_hits", "madvise_bytes"] {
                    assert!(b[key].as_u64() >= a[key].as_u64(), "class {} {key} went back", a["class_index"]);
                }
            }
            assert!(snap["timestamp_ns"].as_u64() >= prev["timestamp_ns"].as_u64());
        }
        previous = Some(snap);
    }
    let last = previous.unwrap();
    let allocs: u64 = last["classes"].as_array().unwrap().iter().map(|c| c["allocations"].as_u64().unwrap()).sum();
    assert!(allocs > 1000, "the workload allocated only {allocs} objects");

    // The doctor names the leaked domain (never ended, on an epoch of its own that has ended
    // since) with its label and refcount, as critical: it has been held open for well over 5 x
    // --stuck-after.
    let out = stats_dump(&["--pid", &pid, "--no-json", "--no-text", "--doctor", "--stuck-after", "0.1"]);
    assert!(out.status.success());
    let doctor = String::from_utf8_lossy(&out.stdout);
    let finding = doctor.lines().find(|l| l.contains("\"background-worker-3\"")).unwrap_or_default();
    assert!(finding.contains("[CRITICAL]") && finding.contains("ended") && finding.contains("refcount 1"), "{doctor}");
    assert!(
        doctor.contains("never ended: find where the domain labelled \"background-worker-3\" is created"),
        "{doctor}"
    );

    // Default output: JSON on stdout, summary on stderr.
    let out = stats_dump(&["--pid", &pid]);
    assert!(out.status.success());
    assert!(serde_json::from_slice::<Value>(&out.stdout).is_ok());
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("snapshot of pid {pid}")));
}

#[test]
fn no_such_pid() {
    let out = stats_dump(&["--pid", "4194000"]);
    assert_one_line_error(&out, "no process with pid 4194000");
}

#[test]
fn a_process_that_does_not_use_the_allocator() {
    let mut sleep = Command::new("sleep").arg("10").spawn().unwrap();
    let out = stats_dump(&["--pid", &sleep.id().to_string()]);
    let _ = sleep.kill();
    let _ = sleep.wait();
    assert_one_line_error(&out, "publishes no temporal-slab statistics");
}

#[test]
fn a_region_with_an_unknown_layout_version() {
    let target = start(&["--seconds", "30", "--fake-region-version", "99"], &[("TSLAB_PUBLISH", "0")]);
    let out = stats_dump(&["--pid", &target.0.id().to_string()]);
    assert_one_line_error(&out, "layout version 99");
}

#[test]
fn permission_denied_for_another_users_process() {
    // SAFETY-free check of our uid through /proc: only root can drop to another user here.
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let root = status.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"));
    let setpriv = Command::new("setpriv").arg("--version").output().is_ok_and(|o| o.status.success());
    if !root || !setpriv {
        eprintln!("skipped: needs root and setpriv to run stats_dump as another user");
        return;
    }
    let target = start(&["--seconds", "30"], &[]);
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", STATS_DUMP, "--pid", &target.0.id().to_string()])
        .output()
        .unwrap();
    if String::from_utf8_lossy(&out.stderr).contains("Permission denied") && out.status.code() != Some(2) {
        eprintln!("skipped: the stats_dump binary is not executable by uid 65534 here");
        return;
    }
    assert_one_line_error(&out, "permission denied inspecting pid");
}

#[test]
fn a_target_that_exits_during_the_reads() {
    let target = start(&["--seconds", "0.3", "--threads", "2"], &[]);
    let pid = target.0.id().to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    let (mut ok, mut failed) = (0, 0);
    // Read until the process is gone (and reaped by the Drop of `target` at the end, so its pid
    // stays a zombie meanwhile: reads then fail cleanly too).
    while Instant::now() < deadline && failed < 5 {
        let out = stats_dump(&["--pid", &pid, "--no-text"]);
        match out.status.code() {
            Some(0) => {
                ok += 1;
                assert!(serde_json::from_slice::<Value>(&out.stdout).is_ok());
            }
            Some(2) => {
                failed += 1;
                let stderr = String::from_utf8_lossy(&out.stderr);
                assert_eq!(stderr.lines().count(), 1, "{stderr}");
                assert!(stderr.starts_with("stats_dump: "), "{stderr}");
            }
            other => panic!("stats_dump exited with {other:?}: {}", String::from_utf8_lossy(&out.stderr)),
        }
    }
    assert!(ok > 0 && failed > 0, "{ok} reads succeeded, {failed} failed");
}

#[test]
fn usage_without_a_pid() {
    let out = stats_dump(&[]);
    assert_one_line_error(&out, "no process given");
    let out = stats_dump(&["--pid", "not-a-number"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn demo_mode_works_anywhere() {
    let out = stats_dump(&["--demo", "--no-text"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (schemas, index) = schema();
    let snap: Value = serde_json::from_slice(&out.stdout).unwrap();
    if let Err(e) = schemas.validate(&snap, index) {
        panic!("demo snapshot does not match the schema: {e:#}");
    }
}

#[test]
fn a_closed_stdout_is_not_an_error() {
    let t = start(&["--seconds", "60", "--threads", "1"], &[]);
    let pid = t.0.id().to_string();
    // Hang up before it writes (a reader that has had enough, as `| head` is): every write then
    // fails with EPIPE, whatever the pipe buffer's size.
    let mut child =
        Command::new(STATS_DUMP).args(["--pid", &pid]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "stats_dump | head: {:?} {}", out.status, String::from_utf8_lossy(&out.stderr));
}
