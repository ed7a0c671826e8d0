//! End-to-end tests of `tslab diff` on snapshots of live `tslab workload` processes: a real
//! regression (a leaked domain guard in the candidate run), a real non-regression (one healthy
//! process a second apart), and the errors that must exit 2 with one line on stderr.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

const TSLAB: &str = env!("CARGO_BIN_EXE_tslab");

/// A running `tslab workload`, killed and reaped when dropped (also when a test panics).
struct Workload {
    child: Child,
    pid: u32,
}

impl Workload {
    /// Starts a 2-thread workload and waits for its `ready pid=N` line.
    fn start(extra: &[&str]) -> Workload {
        let child = Command::new(TSLAB)
            .args(["workload", "--seconds", "60s", "--threads", "2"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut w = Workload { child, pid: 0 };
        let mut line = String::new();
        BufReader::new(w.child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        w.pid =
            line.trim().strip_prefix("ready pid=").unwrap_or_else(|| panic!("workload said {line:?}")).parse().unwrap();
        assert_eq!(w.pid, w.child.id());
        w
    }

    /// Saves a snapshot of the workload with `tslab stats --pid N --json`.
    fn snapshot(&self, path: &Path) {
        let out = Command::new(TSLAB).args(["stats", "--pid", &self.pid.to_string(), "--json"]).output().unwrap();
        assert!(out.status.success(), "tslab stats failed: {}", String::from_utf8_lossy(&out.stderr));
        std::fs::write(path, &out.stdout).unwrap();
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn diff(args: &[&str]) -> Output {
    Command::new(TSLAB).arg("diff").args(args).stdin(Stdio::null()).output().unwrap()
}

fn diff_with_stdin(args: &[&str], stdin: &Path) -> Output {
    let file = std::fs::File::open(stdin).unwrap();
    Command::new(TSLAB).arg("diff").args(args).stdin(file).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Asserts exit code 2, nothing on stdout and one `tslab: ...` line on stderr; returns the line.
fn assert_error(out: &Output) -> String {
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert!(out.stdout.is_empty(), "stdout: {}", text(&out.stdout));
    assert_eq!(stderr.lines().count(), 1, "stderr: {stderr}");
    assert!(stderr.starts_with("tslab: "), "stderr: {stderr}");
    stderr
}

#[test]
fn a_leaked_domain_in_the_candidate_run_is_a_regression() {
    let dir = tempfile::tempdir().unwrap();
    let (baseline, candidate) = (dir.path().join("baseline.json"), dir.path().join("candidate.json"));
    {
        let healthy = Workload::start(&[]);
        let leaky = Workload::start(&["--leak"]);
        // The leaked domain is opened (on an epoch of its own, which then ends) before the
        // workload starts its threads; a second later that epoch has been ended and held open by
        // the domain for twice --stuck-after below.
        std::thread::sleep(Duration::from_secs(1));
        healthy.snapshot(&baseline);
        leaky.snapshot(&candidate);
    }
    let (b, c) = (path_str(&baseline), path_str(&candidate));

    let gate = diff(&[b, c, "--stuck-after", "0.5", "--fail-on", "regression"]);
    let report = text(&gate.stdout);
    assert_eq!(gate.status.code(), Some(1), "{report}{}", text(&gate.stderr));
    let stuck: Vec<&str> = report.lines().filter(|l| l.starts_with("REGRESSION: new stuck epoch")).collect();
    assert_eq!(stuck.len(), 1, "{report}");
    assert!(stuck[0].contains("\"background-worker-3\""), "{report}");
    assert!(stuck[0].contains("refcount 1") && stuck[0].contains("never ended"), "{report}");
    assert!(report.lines().last().unwrap().starts_with("result: "), "{report}");
    assert!(!report.contains("result: no regression"), "{report}");
    assert!(report.lines().next().unwrap().ends_with(": two processes"), "{report}");

    // Without --fail-on the report is the same and the exit status 0.
    let report_only = diff(&[b, c, "--stuck-after", "0.5"]);
    assert_eq!(report_only.status.code(), Some(0), "{}", text(&report_only.stderr));
    assert_eq!(text(&report_only.stdout), report);

    // The other way round the leak is in BEFORE: nothing new is stuck.
    let reverse = text(&diff(&[c, b, "--stuck-after", "0.5"]).stdout);
    assert!(!reverse.contains("REGRESSION: new stuck epoch"), "{reverse}");
    assert!(reverse.lines().any(|l| l.starts_with("stuck epochs (>= 500 ms)")), "{reverse}");
}

#[test]
fn two_snapshots_of_a_healthy_process_are_no_regression() {
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (dir.path().join("first.json"), dir.path().join("second.json"));
    {
        let w = Workload::start(&[]);
        // Past start-up (thread stacks, first slabs, the bounded cache filling), RSS and the
        // slow-path rate of this workload are flat: a second apart they differ by a few percent
        // at most, on a loaded machine too (fewer requests only means fewer allocations).
        std::thread::sleep(Duration::from_secs(1));
        w.snapshot(&first);
        std::thread::sleep(Duration::from_secs(1));
        w.snapshot(&second);
    }
    let (a, b) = (path_str(&first), path_str(&second));

    let out = diff(&[a, b, "--fail-on", "regression"]);
    let report = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{report}{}", text(&out.stderr));
    assert!(report.lines().next().unwrap().contains("same process, "), "{report}");
    assert!(!report.contains("REGRESSION"), "{report}");
    assert!(report.ends_with("result: no regression\n"), "{report}");
    // The interval is long enough for the slow-path rule to apply.
    assert!(!report.contains("slow-path rate not compared"), "{report}");
    assert!(report.lines().any(|l| l.starts_with("  in the interval")), "{report}");

    // AFTER from standard input gives the same report, naming stdin.
    let piped = diff_with_stdin(&[a, "-", "--fail-on", "regression"], &second);
    assert_eq!(piped.status.code(), Some(0));
    assert_eq!(text(&piped.stdout), report.replacen(b, "stdin", 1));

    // Given the wrong way round, the snapshots of one process are an error, not an improvement.
    let swapped = assert_error(&diff(&[b, a]));
    assert!(swapped.contains("swapped"), "{swapped}");
}

#[test]
fn a_missing_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing: PathBuf = dir.path().join("missing.json");
    let line = assert_error(&diff(&[path_str(&missing), path_str(&missing)]));
    assert!(line.contains("reading BEFORE") && line.contains("missing.json: no such file"), "{line}");
}

#[test]
fn both_inputs_from_stdin_is_an_error() {
    let line = assert_error(&diff(&["-", "-"]));
    assert!(line.contains("both -"), "{line}");
}

#[test]
fn malformed_json_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.json");
    std::fs::write(&good, include_str!("../../schemas/examples/workload-attached.json")).unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"schema_version\": 1, \"pid\": ").unwrap();
    let line = assert_error(&diff(&[path_str(&good), path_str(&bad)]));
    assert!(line.contains("reading AFTER") && line.contains("bad.json: truncated JSON"), "{line}");
    std::fs::write(&bad, "schema_version = 1\n").unwrap();
    let line = assert_error(&diff(&[path_str(&bad), path_str(&good)]));
    assert!(line.contains("reading BEFORE") && line.contains("not JSON"), "{line}");
}
