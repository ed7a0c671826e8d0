//! `tslab export prometheus` end to end: the exposition text of the bundled example snapshot
//! against a checked-in golden file, `promtool check metrics` with no findings on that text and
//! on the export of a live process, escaping of hostile labels, input errors, and
//! docs/METRICS.md naming every family the renderer writes (the textfile: `textfile.rs`).
//!
//! Tests that need promtool skip with a message when it is missing, and fail instead when
//! `TSLAB_REQUIRE_TOOLS=1` (as CI sets it).

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};

use serde_json::Value;

mod export_util;
use export_util::*;

const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/demo-in-process.prom");
const METRICS_DOC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/METRICS.md");

/// promtool, or None (after saying so) when it is missing and not required.
fn promtool() -> Option<&'static str> {
    if Command::new("promtool").arg("--version").output().is_ok_and(|o| o.status.success()) {
        return Some("promtool");
    }
    if std::env::var("TSLAB_REQUIRE_TOOLS").as_deref() == Ok("1") {
        panic!("promtool is required (TSLAB_REQUIRE_TOOLS=1) but not installed: apt-get install prometheus");
    }
    eprintln!("skipped: promtool not installed (apt-get install prometheus)");
    None
}

/// `promtool check metrics` accepts `text` with no finding at all.
fn assert_promtool_clean(text: &str, what: &str) {
    let Some(tool) = promtool() else { return };
    let out = run(Command::new(tool).args(["check", "metrics"]), Some(text.as_bytes()));
    let findings = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success() && findings.is_empty(),
        "promtool check metrics on {what}: {:?}\n{findings}",
        out.status
    );
}

/// Checks the shape the renderer promises, family by family: HELP then TYPE, contiguous
/// samples, `_total` exactly on counters, no duplicate series, no timestamps, bounded class and
/// epoch labels. Returns each family's type.
fn check_exposition(text: &str) -> BTreeMap<String, String> {
    let mut types = BTreeMap::new();
    let mut help_of: Option<String> = None;
    let mut current: Option<String> = None;
    let mut with_samples = HashSet::new();
    let mut seen_series = HashSet::new();
    let (mut classes, mut epochs) = (HashSet::new(), HashSet::new());
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            assert!(!help.is_empty(), "no help text: {line}");
            assert!(!types.contains_key(name), "family {name} appears twice");
            help_of = Some(name.to_string());
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert_eq!(help_of.as_deref(), Some(name), "TYPE of {name} not right after its HELP");
            assert!(name.starts_with("temporal_slab_"), "{name}");
            assert!(kind == "counter" || kind == "gauge", "{line}");
            assert_eq!(name.ends_with("_total"), kind == "counter", "counters and only counters end in _total: {line}");
            types.insert(name.to_string(), kind.to_string());
            current = Some(name.to_string());
        } else {
            assert!(!line.starts_with('#'), "stray comment: {line}");
            let name = current.as_deref().expect("a sample before any TYPE line");
            let (series, value) = match line.rfind('}') {
                Some(i) => (&line[..=i], line[i + 1..].trim_start()),
                None => line.split_once(' ').unwrap(),
            };
            assert!(
                series == name || series.starts_with(&format!("{name}{{")),
                "sample of another family under {name}: {line}"
            );
            assert!(!value.contains(' '), "a timestamp or junk after the value: {line}");
            assert!(matches!(value, "NaN" | "+Inf" | "-Inf") || value.parse::<f64>().is_ok(), "bad value: {line}");
            assert!(seen_series.insert(series.to_string()), "duplicate series: {series}");
            with_samples.insert(name.to_string());
            if let Some(v) = label_value(series, "class") {
                classes.insert(v.to_string());
            }
            if let Some(v) = label_value(series, "epoch") {
                assert!(v.parse::<u32>().is_ok_and(|e| e < 16), "epoch label is not a ring index: {line}");
                epochs.insert(v.to_string());
            }
        }
    }
    for name in types.keys() {
        assert!(with_samples.contains(name), "family {name} has HELP and TYPE but no sample");
    }
    assert!(classes.len() <= 44 && epochs.len() <= 16, "{} classes, {} epochs", classes.len(), epochs.len());
    types
}

/// The value of label `name` in a series (plain values only: enough for class and epoch).
fn label_value<'a>(series: &'a str, name: &str) -> Option<&'a str> {
    let start = series.find(&format!("{{{name}=\"")).or_else(|| series.find(&format!(",{name}=\"")))?;
    let rest = &series[start + name.len() + 3..];
    rest.split('"').next()
}

/// Where `expected` and `actual` first differ, readable in a test failure.
fn first_difference(expected: &str, actual: &str) -> String {
    let (e, a): (Vec<_>, Vec<_>) = (expected.lines().collect(), actual.lines().collect());
    let at = e.iter().zip(&a).position(|(x, y)| x != y).unwrap_or(e.len().min(a.len()));
    let show = |lines: &[&str]| {
        lines
            .iter()
            .enumerate()
            .skip(at.saturating_sub(2))
            .take(5)
            .map(|(i, l)| format!("  {:>5} {l}\n", i + 1))
            .collect::<String>()
    };
    format!(
        "first difference at line {} (golden has {} lines, output {}):\n golden:\n{} output:\n{}",
        at + 1,
        e.len(),
        a.len(),
        show(&e),
        show(&a)
    )
}

#[test]
fn golden_text_of_the_demo_snapshot() {
    let text = stdout_text(&tslab(&["export", "prometheus", DEMO], None));
    if std::env::var("UPDATE_GOLDEN").as_deref() == Ok("1") {
        std::fs::create_dir_all(Path::new(GOLDEN).parent().unwrap()).unwrap();
        std::fs::write(GOLDEN, &text).unwrap();
        eprintln!("wrote {GOLDEN}");
        return;
    }
    let golden = std::fs::read_to_string(GOLDEN).expect("reading the golden file (create it with UPDATE_GOLDEN=1)");
    if text != golden {
        panic!(
            "the Prometheus text of {DEMO} changed.\n{}\nIf the change is intended, regenerate with \
             `UPDATE_GOLDEN=1 cargo test -p tslab --test export golden` and review `git diff tslab/tests/golden`.",
            first_difference(&golden, &text)
        );
    }
}

#[test]
fn golden_text_is_well_formed_and_promtool_finds_nothing() {
    let golden = std::fs::read_to_string(GOLDEN).expect("reading the golden file");
    let types = check_exposition(&golden);
    assert!(types.len() >= 40, "only {} families", types.len());
    assert_promtool_clean(&golden, "the golden file");
    // What alerts and dashboards rely on is there, with the reference's names.
    for name in [
        "temporal_slab_snapshot_timestamp_seconds",
        "temporal_slab_process_rss_bytes",
        "temporal_slab_fragmentation_ratio",
        "temporal_slab_epoch_age_seconds",
        "temporal_slab_epoch_refcount",
        "temporal_slab_epoch_rss_bytes",
        "temporal_slab_epoch_reclaimable_slabs",
        "temporal_slab_epoch_state",
        "temporal_slab_class_slow_path_hits_total",
        "temporal_slab_slow_cache_miss_total",
        "temporal_slab_slow_epoch_closed_total",
        "temporal_slab_madvise_bytes_total",
        "temporal_slab_madvise_failures_total",
        "temporal_slab_closing_epochs",
    ] {
        assert!(types.contains_key(name), "{name} missing");
    }
    assert!(golden.contains("temporal_slab_snapshot_timestamp_seconds 1796286863.381956342\n"));
    assert!(golden.contains("temporal_slab_class_live_bytes{class=\"8\"} 16\n"));
}

/// A started `tslab workload`, killed on drop (also when the test fails).
struct Workload {
    child: Child,
    // Kept open so the workload never writes into a closed pipe.
    stdout: Option<BufReader<ChildStdout>>,
}

impl Drop for Workload {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_workload() -> Workload {
    let mut child = Command::new(TSLAB)
        .args(["workload", "--seconds", "30s", "--threads", "2", "--leak"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().map(BufReader::new);
    // From here on the guard kills the child, whatever fails.
    let mut workload = Workload { child, stdout };
    let mut line = String::new();
    workload.stdout.as_mut().unwrap().read_line(&mut line).unwrap();
    let pid = line.trim().strip_prefix("ready pid=").unwrap_or_else(|| panic!("workload said {line:?}"));
    assert_eq!(pid.parse::<u32>().ok(), Some(workload.child.id()), "workload said {line:?}");
    workload
}

#[test]
fn export_of_a_live_process_is_well_formed_and_promtool_finds_nothing() {
    let workload = start_workload();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let text = stdout_text(&tslab(&["export", "prometheus", "--pid", &workload.child.id().to_string()], None));
    check_exposition(&text);
    assert_promtool_clean(&text, "the export of a live tslab workload");
    // The leaked domain is visible by its label, joined on the ring index.
    assert!(text.contains("label=\"background-worker-3\"} 1\n"), "{text}");
    let allocations: f64 = text
        .lines()
        .filter(|l| l.starts_with("temporal_slab_class_allocations_total{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum();
    assert!(allocations > 0.0, "the workload allocated nothing");
}

/// A snapshot document whose domain labels need every escape, as JSON (the schema allows 31
/// characters; U+FFFD is what the allocator makes of bytes that are not UTF-8).
fn hostile_snapshot() -> (Vec<u8>, &'static str, &'static str) {
    let raw = "say \"hi\" C:\\dir\\\nnext \u{fffd}\r";
    let escaped = "say \\\"hi\\\" C:\\\\dir\\\\\\nnext \u{fffd}\r";
    let mut doc: Value = serde_json::from_str(&std::fs::read_to_string(DEMO).unwrap()).unwrap();
    doc["epochs"][2]["label"] = Value::from(raw);
    doc["epochs"][0]["label"] = Value::from("}\",x=\"y");
    let registry = doc["label_registry"].as_array_mut().unwrap();
    registry.insert(0, serde_json::json!({"id": 1, "label": raw}));
    registry.insert(1, serde_json::json!({"id": 2, "label": "}\",x=\"y"}));
    (serde_json::to_vec(&doc).unwrap(), raw, escaped)
}

#[test]
fn hostile_labels_are_escaped_and_promtool_accepts_them() {
    let (doc, _, escaped) = hostile_snapshot();
    let text = stdout_text(&tslab(&["export", "prometheus", "-"], Some(&doc)));
    assert!(text.contains(&format!("temporal_slab_epoch_label_info{{epoch=\"2\",label=\"{escaped}\"}} 1\n")), "{text}");
    assert!(text.contains(&format!("temporal_slab_label_registry_info{{label_id=\"1\",label=\"{escaped}\"}} 1\n")));
    assert!(text.contains("temporal_slab_epoch_label_info{epoch=\"0\",label=\"}\\\",x=\\\"y\"} 1\n"));
    // Every sample is still one line: the newline inside the label is escaped.
    assert_eq!(text.lines().filter(|l| l.starts_with("temporal_slab_epoch_label_info{")).count(), 16);
    check_exposition(&text);
    assert_promtool_clean(&text, "a snapshot with hostile labels");
}

#[test]
fn missing_and_malformed_input_fail_with_one_line() {
    let dir = tempdir();
    let missing = dir.path().join("nope.json");
    assert_one_line_error(&tslab(&["export", "prometheus", arg(&missing)], None), "no such file");
    assert_one_line_error(&tslab(&["export", "prometheus", "-"], Some(b"{\"schema_version\": 1, ")), "truncated JSON");
    assert_one_line_error(&tslab(&["export", "prometheus", "-"], Some(b"not json at all")), "not JSON");
    assert_one_line_error(&tslab(&["export", "prometheus", "-"], Some(b"{\"a\": 1}")), "not a temporal-slab snapshot");
    assert_one_line_error(&tslab(&["export", "prometheus", "-"], Some(b"")), "empty input");
    let mut doc: Value = serde_json::from_str(&std::fs::read_to_string(DEMO).unwrap()).unwrap();
    doc["epochs"][3]["epoch_id"] = Value::from(99);
    let bad = serde_json::to_vec(&doc).unwrap();
    assert_one_line_error(&tslab(&["export", "prometheus", "-"], Some(&bad)), "not a valid temporal-slab snapshot");
    assert_one_line_error(&tslab(&["export", "prometheus"], None), "no input");
    // Bad input with --textfile writes nothing.
    let path = dir.path().join("tslab.prom");
    assert_one_line_error(
        &tslab(&["export", "prometheus", "-", "--textfile", arg(&path)], Some(b"[1,")),
        "truncated JSON",
    );
    assert!(listing(dir.path()).is_empty());
}

#[test]
fn help_shows_examples() {
    for args in [&["export", "--help"][..], &["export", "prometheus", "--help"]] {
        let out = tslab(args, None);
        let help = stdout_text(&out);
        assert!(help.contains("EXAMPLES:") && help.contains("tslab export prometheus --pid"), "{help}");
    }
    let help = stdout_text(&tslab(&["export", "prometheus", "--help"], None));
    assert!(help.contains("--textfile <PATH>") && help.contains("--pid <PID>") && help.contains("docs/METRICS.md"));
}

/// Every family the renderer writes is in the table of docs/METRICS.md with the same type, and
/// the table names nothing the renderer does not write.
#[test]
fn metrics_doc_lists_every_family_with_its_type() {
    let doc = std::fs::read_to_string(METRICS_DOC).expect("reading docs/METRICS.md");
    let mut documented = BTreeMap::new();
    for line in doc.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // Rows of the family tables: | `name` | counter or gauge | labels | unit | source | meaning |
        if cells.len() == 8 && cells[1].starts_with("`temporal_slab_") && matches!(cells[2], "counter" | "gauge") {
            let name = cells[1].trim_matches('`').to_string();
            assert!(documented.insert(name.clone(), cells[2].to_string()).is_none(), "{name} documented twice");
        }
    }
    // A snapshot where every family has samples (the yield needs a close sweep that scanned).
    let mut snap: Value = serde_json::from_str(&std::fs::read_to_string(DEMO).unwrap()).unwrap();
    snap["epochs"][0]["close_scanned_slabs"] = Value::from(4);
    snap["epochs"][0]["close_recycled_slabs"] = Value::from(3);
    snap["epochs"][0]["reclamation_yield"] = Value::from(0.75);
    let text = stdout_text(&tslab(&["export", "prometheus", "-"], Some(&serde_json::to_vec(&snap).unwrap())));
    assert!(text.contains("temporal_slab_epoch_reclamation_yield_ratio{epoch=\"0\"} 0.75\n"));
    let rendered = check_exposition(&text);
    let missing: Vec<_> = rendered.keys().filter(|k| !documented.contains_key(*k)).collect();
    let stale: Vec<_> = documented.keys().filter(|k| !rendered.contains_key(*k)).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "not in docs/METRICS.md: {missing:?}; documented but not written: {stale:?}"
    );
    for (name, kind) in &rendered {
        assert_eq!(&documented[name], kind, "type of {name} in docs/METRICS.md");
    }
}
