//! The heap profile names a planted leak. `tslab-workload --pin` runs a short request (a domain
//! labelled "upload") that puts 16 MiB of 4 KiB buffers into a process-wide cache through
//! `cache_insert`, at the line marked `PLANTED-SITE` in src/workload.rs. The pprof file written by
//! `stats_dump --profile`, `tslab top --sites` and the doctor must each name that function and
//! file:line first. And the errors: a target with sampling off, an unwritable output path.

use std::path::{Path, PathBuf};
use std::process::Command;

use tslab_tools::pprof::{read, PProfile};

mod common;
use common::{start, stats_dump, STATS_DUMP};

/// `tslab` is another package's binary: it sits beside ours in the same target directory.
fn tslab() -> Option<PathBuf> {
    let p = Path::new(STATS_DUMP).with_file_name("tslab");
    p.exists().then_some(p)
}

/// `file:line` of the `PLANTED-SITE` marker in src/workload.rs.
fn planted_site() -> String {
    let src = include_str!("../src/workload.rs");
    let line = src.lines().position(|l| l.contains("// PLANTED-SITE")).expect("the marker is in workload.rs") + 1;
    format!("workload.rs:{line}")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tslab-profile-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("creating a scratch directory");
    dir.join(name)
}

/// The function and line of the innermost frame of the sample with the most `inuse_space`.
fn top_inuse_leaf(p: &PProfile) -> (String, String, i64) {
    let s = |i: i64| p.string_table[i as usize].clone();
    let col = p.sample_type.iter().position(|t| s(t.r#type) == "inuse_space").expect("an inuse_space sample type");
    let top = p.sample.iter().max_by_key(|x| x.value[col]).expect("at least one sample");
    assert!(top.value[col] > 0, "the top sample holds no live bytes");
    let loc = p.location.iter().find(|l| l.id == top.location_id[0]).expect("the leaf location");
    let line = &loc.line[0];
    let f = p.function.iter().find(|f| f.id == line.function_id).expect("the leaf function");
    (s(f.name), s(f.filename), line.line)
}

#[test]
fn a_planted_leak_is_named_first_everywhere() {
    let target = start(&["--pin", "--threads", "1", "--seconds", "60"], &[]);
    let pid = target.pid();
    let site = planted_site();
    let file = scratch("heap.pb.gz");

    let out = stats_dump(
        &["--pid", &pid, "--no-json", "--no-text", "--doctor", "--stuck-after", "0", "--profile"]
            .into_iter()
            .chain([file.to_str().unwrap()])
            .collect::<Vec<_>>(),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "stats_dump failed: {}", String::from_utf8_lossy(&out.stderr));

    // The doctor: its most urgent finding is the pinned epoch, named by label and by site.
    let first = stdout.lines().find(|l| l.trim_start().starts_with("1. ")).expect("a first finding");
    assert!(first.contains("(upload)") && first.contains("pinned"), "first finding: {first}");
    assert!(first.contains("cache_insert") && first.contains(&site), "first finding does not name {site}: {first}");
    let fix = stdout.lines().skip_while(|l| !l.trim_start().starts_with("1. ")).nth(1).unwrap_or("");
    assert!(
        fix.contains("temporal_slab::tenured") && fix.contains(&site),
        "the fix does not recommend tenured by site: {fix}"
    );

    // pprof: the sample holding the most live bytes was allocated in cache_insert, at the marker.
    let p = read(&file).expect("the profile decodes");
    let (function, filename, line) = top_inuse_leaf(&p);
    assert!(function.ends_with("workload::cache_insert"), "top inuse_space leaf is {function}");
    assert_eq!(format!("{}:{line}", Path::new(&filename).file_name().unwrap().to_string_lossy()), site);

    // tslab top --sites: its first row.
    if let Some(tslab) = tslab() {
        let out = Command::new(tslab).args(["top", "--pid", &pid, "--sites"]).output().expect("running tslab");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "tslab top --sites: {}", String::from_utf8_lossy(&out.stderr));
        let row = text.lines().find(|l| l.trim_start().starts_with("1 ")).expect("a first row");
        assert!(row.contains("cache_insert") && row.contains(&site), "first row: {row}");
    } else {
        eprintln!("skipped tslab top --sites: the tslab binary is not built beside stats_dump (cargo test --workspace builds it)");
    }

    // go tool pprof reads it and ranks the same function first.
    if Command::new("go").arg("version").output().is_ok_and(|o| o.status.success()) {
        let out = Command::new("go")
            .args(["tool", "pprof", "-top", "-sample_index=inuse_space"])
            .arg(&file)
            .env("HOME", std::env::temp_dir())
            .output()
            .expect("running go tool pprof");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "go tool pprof: {}", String::from_utf8_lossy(&out.stderr));
        let rows: Vec<&str> = text.lines().skip_while(|l| !l.trim_start().starts_with("flat")).skip(1).collect();
        assert!(rows.first().is_some_and(|r| r.contains("cache_insert")), "go tool pprof -top:\n{text}");
    } else {
        eprintln!("skipped go tool pprof: Go is not installed (apt-get install golang-go)");
    }
    let _ = std::fs::remove_file(&file);
}

#[test]
fn sampling_off_is_a_clear_error() {
    let target = start(&["--threads", "1", "--seconds", "60"], &[("TSLAB_PROFILE_SAMPLE", "0")]);
    let file = scratch("off.pb.gz");
    let out = stats_dump(&["--pid", &target.pid(), "--no-json", "--no-text", "--profile", file.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("TSLAB_PROFILE_SAMPLE"), "the error does not say how to turn sampling on: {stderr}");
    assert!(!file.exists(), "a profile file was written");
}

#[test]
fn an_unwritable_path_leaves_no_file() {
    let target = start(&["--pin", "--threads", "1", "--seconds", "60"], &[]);
    let dir = scratch("missing-dir");
    let file = dir.join("heap.pb.gz");
    let out = stats_dump(&["--pid", &target.pid(), "--no-json", "--no-text", "--profile", file.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains(file.to_str().unwrap()), "the error does not name the path: {stderr}");
    assert!(!dir.exists(), "something was created at {}", dir.display());
}

#[test]
fn the_tenured_fix_leaves_nothing_pinned() {
    let target = start(&["--pin", "--tenured", "--threads", "1", "--seconds", "60"], &[]);
    let out = stats_dump(&["--pid", &target.pid(), "--no-json", "--no-text", "--doctor", "--stuck-after", "0"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "stats_dump failed: {}", String::from_utf8_lossy(&out.stderr));
    assert!(
        !stdout.contains("pinned"),
        "with the cache in the tenured scope the doctor still finds a pinned epoch:\n{stdout}"
    );
    // The cache is there, in the tenured epoch.
    let out = stats_dump(&["--pid", &target.pid(), "--no-text"]);
    let snap: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a JSON snapshot");
    let tenured = snap["epochs"].as_array().into_iter().flatten().find(|e| e["label"] == "(tenured)");
    let live = tenured.and_then(|e| e["live_bytes"].as_u64()).unwrap_or(0);
    assert!(live >= 16 << 20, "the tenured epoch holds {live} live bytes, not the 16 MiB cache: {tenured:?}");
}
