//! `tslab record` and `tslab plot` end to end: a live workload recorded to JSON Lines, drawn as
//! an SVG that parses as XML with a line per series and the epoch closes marked; recordings that
//! are cut off, mixed or malformed; a target that is gone.

use std::path::Path;

mod common;
use common::{arg, assert_one_line_error, run, tslab, Target};

/// A recording of a live workload: `n` lines at 200 ms.
fn record(dir: &Path, seconds: &str) -> (std::path::PathBuf, u32) {
    let target = Target::start(&[]);
    let file = dir.join("run.jsonl");
    let out = run(&[
        "record",
        "--pid",
        &target.pid.to_string(),
        "--out",
        arg(&file),
        "--interval",
        "200ms",
        "--duration",
        seconds,
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    (file, target.pid)
}

#[test]
fn a_recording_of_a_live_process_plots_as_an_svg() {
    let dir = tempfile::tempdir().unwrap();
    let (file, pid) = record(dir.path(), "1200ms");
    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() >= 4, "{} lines", lines.len());
    for l in &lines {
        let v: serde_json::Value = serde_json::from_str(l).expect("every line is a whole snapshot");
        assert_eq!(v["pid"], pid);
    }
    let out = run(&["plot", arg(&file)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let svg = std::fs::read_to_string(dir.path().join("run.svg")).unwrap();
    let doc = roxmltree::Document::parse(&svg).expect("the plot is well-formed XML");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let polylines = doc.descendants().filter(|n| n.has_tag_name("polyline")).count();
    // RSS, resident, live; at least one epoch label; the workload's domain labels.
    assert!(polylines >= 5, "{polylines} polylines");
    let texts: Vec<&str> = doc.descendants().filter_map(|n| n.text()).collect();
    assert!(texts.iter().any(|t| t.contains(&format!("pid {pid}"))), "{texts:?}");
    assert!(texts.contains(&"process RSS") && texts.contains(&"http-request"), "{texts:?}");
    // The workload closes an epoch about every 100 ms: the closes are marked.
    let dashed = doc.descendants().filter(|n| n.attribute("stroke-dasharray").is_some()).count();
    assert!(dashed > 3, "{dashed} epoch-close markers");
}

#[test]
fn a_cut_off_last_line_is_skipped_and_other_bad_lines_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (file, _) = record(dir.path(), "600ms");
    let text = std::fs::read_to_string(&file).unwrap();
    let whole = text.lines().count();
    // A recording killed mid-write: the last line stops halfway.
    let cut = dir.path().join("cut.jsonl");
    std::fs::write(&cut, format!("{text}{}", &text.lines().next().unwrap()[..100])).unwrap();
    let out = run(&["plot", arg(&cut), "--out", arg(&dir.path().join("cut.svg"))]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cut off") && stderr.contains(&format!("({whole} snapshots)")), "{stderr}");
    // A malformed line in the middle names its line.
    let bad = dir.path().join("bad.jsonl");
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    lines[1] = "{\"schema_version\": 1}".into();
    std::fs::write(&bad, lines.join("\n") + "\n").unwrap();
    assert_one_line_error(&run(&["plot", arg(&bad)]), "bad.jsonl line 2");
    assert!(!dir.path().join("bad.svg").exists(), "nothing written on error");
    // Two processes in one file.
    let mixed = dir.path().join("mixed.jsonl");
    let mut other: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    other["pid"] = serde_json::Value::from(other["pid"].as_u64().unwrap() + 1);
    std::fs::write(&mixed, format!("{text}{other}\n")).unwrap();
    assert_one_line_error(&run(&["plot", arg(&mixed)]), "record one process per file");
    // Empty and missing files.
    let empty = dir.path().join("empty.jsonl");
    std::fs::write(&empty, "").unwrap();
    assert_one_line_error(&run(&["plot", arg(&empty)]), "no snapshots");
    assert_one_line_error(&run(&["plot", arg(&dir.path().join("nope.jsonl"))]), "no such file");
    assert_one_line_error(&run(&["plot", arg(&file), "--out", arg(&file)]), "the recording itself");
}

#[test]
fn recording_a_process_that_is_gone_or_too_often_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("r.jsonl");
    assert_one_line_error(&run(&["record", "--pid", "999999999", "--out", arg(&file)]), "999999999");
    assert_one_line_error(&run(&["record", "--pid", "1", "--out", arg(&file), "--interval", "10ms"]), "100 ms");
}

#[test]
fn recording_stops_when_the_process_exits() {
    use std::io::{BufRead, BufReader};
    let mut child = tslab()
        .args(["workload", "--threads", "1", "--seconds", "1s"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let pid = line.trim().strip_prefix("ready pid=").unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("r.jsonl");
    let reaper = std::thread::spawn(move || child.wait());
    let out = run(&["record", "--pid", &pid, "--out", arg(&file), "--interval", "200ms"]);
    reaper.join().unwrap().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.contains("exited"), "{stderr}");
    let lines = std::fs::read_to_string(&file).unwrap().lines().count();
    assert!((2..=8).contains(&lines), "{lines} lines for a 1 s process");
}
