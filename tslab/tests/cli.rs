//! `tslab` end to end: every subcommand on the schema's example snapshots and on a live workload
//! process, and every kind of bad input (one clear line on stderr, exit 2, no panic).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

#[global_allocator]
static GLOBAL: temporal_slab::TemporalSlab = temporal_slab::TemporalSlab::new();

mod common;
use common::{tslab, Target};

fn examples() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../schemas/examples");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    v.sort();
    assert!(v.len() >= 2, "examples missing in {}", dir.display());
    v
}

fn run(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut cmd = tslab();
    cmd.args(args).stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    if let Some(input) = stdin {
        let mut w = child.stdin.take().unwrap();
        // The child may exit before reading everything (an error); that is its answer.
        let _ = w.write_all(input);
    }
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Asserts exit 0 and returns stdout.
fn ok(args: &[&str], stdin: Option<&[u8]>) -> String {
    let out = run(args, stdin);
    assert!(out.status.success(), "tslab {args:?} failed: {}\n{}", out.status, text(&out.stderr));
    text(&out.stdout)
}

/// Asserts the one-line error contract: exit 2, no panic, one line on stderr containing
/// `needle`, nothing on stdout.
fn fails(args: &[&str], stdin: Option<&[u8]>, needle: &str) {
    let out = run(args, stdin);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "tslab {args:?}: {}\n{err}", out.status);
    assert!(!err.contains("panicked"), "tslab {args:?} panicked: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "tslab {args:?}: not one line:\n{err}");
    assert!(err.starts_with("tslab: "), "tslab {args:?}: {err}");
    assert!(err.contains(needle), "tslab {args:?}: {err:?} does not mention {needle:?}");
    assert!(out.stdout.is_empty(), "tslab {args:?} wrote to stdout: {}", text(&out.stdout));
}

#[test]
fn subcommands_work_on_the_example_snapshots() {
    for path in examples() {
        let p = path.to_str().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let original: serde_json::Value = serde_json::from_slice(&bytes).unwrap();

        let summary = ok(&["stats", p], None);
        assert!(summary.contains(&format!("snapshot of pid {}", original["pid"])), "{p}: {summary}");
        // --json passes the snapshot through unchanged, from a file or from stdin.
        for (args, input) in [(vec!["stats", p, "--json"], None), (vec!["stats", "-", "--json"], Some(&bytes[..]))] {
            let again: serde_json::Value = serde_json::from_str(&ok(&args, input)).unwrap();
            assert_eq!(again, original, "{p}: stats --json changed the snapshot");
        }

        let top = ok(&["top", p, "--classes", "--by", "allocations", "--n", "3"], None);
        let rows: Vec<&str> = top.lines().skip(2).collect();
        assert_eq!(rows.len(), 3, "{p}: {top}");
        let max = original["classes"].as_array().unwrap().iter().map(|c| c["allocations"].as_u64().unwrap()).max();
        assert!(rows[0].split_whitespace().nth(1) == Some(&max.unwrap().to_string()), "{p}: {top}");
        let epochs = ok(&["top", "-", "--epochs", "--by", "refcount"], Some(&bytes));
        assert!(epochs.contains("refcount") && epochs.lines().count() == 2 + 10, "{p}: {epochs}");

        let doctor = ok(&["doctor", p], None);
        assert!(doctor.starts_with("doctor: "), "{p}: {doctor}");
    }
}

#[test]
fn subcommands_work_on_a_live_process() {
    let t = Target::start(&["--leak"]);
    let pid = t.pid.to_string();
    let summary = ok(&["stats", "--pid", &pid], None);
    assert!(summary.contains(&format!("snapshot of pid {pid}")), "{summary}");

    // The leaked domain holds memory: it tops the epochs by live bytes.
    let top = ok(&["top", "--pid", &pid, "--epochs", "--by", "live_bytes", "--n", "3"], None);
    assert!(top.contains("background-worker-3"), "{top}");
    // Rates over a window: the workload allocates, so the top class has a positive rate.
    let rate = ok(&["top", "--pid", &pid, "--classes", "--by", "allocations", "--window", "500ms", "--n", "1"], None);
    let first = rate.lines().nth(2).unwrap_or_default();
    let value: f64 = first.split_whitespace().nth(1).unwrap_or("0").parse().unwrap();
    assert!(value > 0.0, "no allocation rate: {rate}");

    let doctor = ok(&["doctor", "--pid", &pid, "--stuck-after", "0.1"], None);
    assert!(doctor.contains("background-worker-3") && doctor.contains("refcount 1"), "{doctor}");
    assert!(doctor.contains("domain(s) opened here never ended"), "{doctor}");

    // watch into a pipe: plain key=value lines, as many as asked.
    let watch = ok(&["watch", "--pid", &pid, "--interval", "200ms", "--count", "3"], None);
    let lines: Vec<&str> = watch.lines().collect();
    assert_eq!(lines.len(), 3, "{watch}");
    for l in &lines {
        assert!(l.contains(&format!("pid={pid} ")) && l.contains("allocs_per_s="), "{l}");
    }
    assert!(lines.iter().any(|l| !l.contains("allocs_per_s=0 ")), "the workload allocates: {watch}");
}

/// A GET over a plain TCP connection; returns (status line, body).
fn http_get(addr: &str, path: &str) -> (String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    (head.lines().next().unwrap_or_default().to_string(), body.to_string())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn serve_answers_scrapes_with_fresh_snapshots() {
    let t = Target::start(&[]);
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut server =
        tslab().args(["serve", "--pid", &t.pid.to_string(), "--listen", &addr]).stderr(Stdio::null()).spawn().unwrap();
    let start = Instant::now();
    while TcpStream::connect(&addr).is_err() {
        assert!(start.elapsed() < Duration::from_secs(20), "serve did not listen on {addr}");
        assert!(server.try_wait().unwrap().is_none(), "serve exited early");
        std::thread::sleep(Duration::from_millis(50));
    }
    let timestamp = |body: &str| {
        body.lines()
            .find(|l| l.starts_with("temporal_slab_snapshot_timestamp_seconds"))
            .and_then(|l| l.split_whitespace().last())
            .map(|v| v.parse::<f64>().unwrap())
    };
    let (status, first) = http_get(&addr, "/metrics");
    assert!(status.contains("200"), "{status}");
    assert!(first.contains("temporal_slab_exporter_up 1"), "{first}");
    assert!(first.contains("# TYPE temporal_slab_exporter_scrape_errors_total counter"), "{first}");
    std::thread::sleep(Duration::from_millis(400));
    let (_, second) = http_get(&addr, "/metrics");
    let (a, b) = (timestamp(&first), timestamp(&second));
    assert!(a.is_some() && b > a, "each scrape reads a fresh snapshot: {a:?} then {b:?}");
    let (status, _) = http_get(&addr, "/nope");
    assert!(status.contains("404"), "{status}");

    // The target goes away: the endpoint keeps answering, with up 0 and a counted error.
    drop(t);
    std::thread::sleep(Duration::from_millis(200));
    let (status, body) = http_get(&addr, "/metrics");
    assert!(status.contains("200"), "{status}");
    assert!(body.contains("temporal_slab_exporter_up 0"), "{body}");
    assert!(body.contains("temporal_slab_exporter_scrape_errors_total 1"), "{body}");
    let _ = server.kill();
    let _ = server.wait();
}

#[test]
fn serve_on_a_port_in_use_fails_clearly() {
    let t = Target::start(&[]);
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = held.local_addr().unwrap().to_string();
    fails(&["serve", "--pid", &t.pid.to_string(), "--listen", &addr], None, "cannot listen on");
}

#[test]
fn bad_input_gives_one_line_and_exit_2() {
    let example = std::fs::read(&examples()[0]).unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&example).unwrap();
    let mut future = doc.clone();
    future["schema_version"] = serde_json::json!(99);
    let future = serde_json::to_vec(&future).unwrap();
    let mut wrong_type = doc.clone();
    wrong_type["classes"][0]["live_bytes"] = serde_json::json!("many");
    let wrong_type = serde_json::to_vec(&wrong_type).unwrap();

    fails(&["stats", "-"], Some(b""), "empty input");
    fails(&["stats", "-"], Some(b"  \n"), "empty input");
    fails(&["stats", "-"], Some(&example[..example.len() / 2]), "truncated JSON");
    fails(&["top", "-"], Some(br#"{"name":"left-pad","version":"1.3.0"}"#), "not a temporal-slab snapshot");
    fails(&["stats", "-"], Some(b"[1, 2, 3]"), "not a temporal-slab snapshot");
    fails(&["stats", "-"], Some(b"PID   RSS\n1 200\n"), "not JSON");
    fails(&["doctor", "-"], Some(&future), "newer than this tslab understands");
    fails(&["stats", "-"], Some(&wrong_type), "at /classes/0/live_bytes");
    fails(&["top", "-", "--by", "nonsense"], Some(&example), "unknown field \"nonsense\"");
    fails(&["top", "-", "--epochs", "--by", "label"], Some(&example), "valid fields are");
    fails(&["stats", "/nonexistent/snapshot.json"], None, "no such file");
    fails(&["stats"], None, "no input");
    fails(&["top", "-", "--window", "1s"], Some(&example), "--window needs --pid");
    fails(&["stats", "--pid", "999999999"], None, "999999999");
    fails(&["watch", "--pid", "999999999", "--count", "1"], None, "999999999");
}

#[test]
fn help_has_examples_for_every_subcommand() {
    for sub in ["stats", "top", "watch", "export", "serve", "diff", "doctor", "demo", "workload"] {
        let help = ok(&[sub, "--help"], None);
        assert!(help.contains("EXAMPLES:"), "tslab {sub} --help has no examples:\n{help}");
    }
}

#[test]
fn demo_runs_the_whole_pipeline_and_stops_its_workload() {
    let dir = tempfile::tempdir().unwrap();
    let out = ok(&["demo", "--intervals", "2", "--interval", "300ms", "--dir", dir.path().to_str().unwrap()], None);
    let prom = dir.path().join("temporal_slab.prom");
    let body =
        std::fs::read_to_string(&prom).unwrap_or_else(|e| panic!("no textfile at {}: {e}\n{out}", prom.display()));
    assert!(body.contains("# TYPE temporal_slab_"), "{body}");
    assert!(out.contains(&prom.display().to_string()), "the demo must say where the textfile is:\n{out}");
    assert!(out.contains("$ tslab top --pid") && out.contains("[2/2]"), "{out}");
    assert!(out.contains("background-worker-3"), "the doctor finds the leaking domain:\n{out}");
    let pid: u32 = out
        .lines()
        .find_map(|l| l.strip_prefix("  workload pid ").and_then(|r| r.split(':').next()).and_then(|p| p.parse().ok()))
        .unwrap_or_else(|| panic!("no workload pid in:\n{out}"));
    assert!(out.contains(&format!("workload pid {pid} stopped cleanly")), "{out}");
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "the workload {pid} still runs");
}
