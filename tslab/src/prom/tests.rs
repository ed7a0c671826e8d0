//! The exposition's guarantees (module docs of `prom`), checked on the example snapshots.

use std::collections::HashSet;
use std::io::Write;
use std::process::{Command, Stdio};

use super::encode::*;
use super::*;

const DEMO: &str = include_str!("../../../schemas/examples/demo-in-process.json");

fn demo() -> Snapshot {
    serde_json::from_str(DEMO).unwrap()
}

/// A registry entry with only its id and text (the per-label figures at their defaults).
fn label_entry(id: u32, label: &str) -> LabelEntry {
    serde_json::from_value(serde_json::json!({ "id": id, "label": label })).unwrap()
}

/// The series (name and labels) of every sample line.
fn series(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| match l.rfind('}') {
            Some(i) => &l[..=i],
            None => l.split(' ').next().unwrap(),
        })
        .collect()
}

#[test]
fn label_values_escape_backslash_quote_and_newline() {
    assert_eq!(escape_label_value(b"plain-label_1"), "plain-label_1");
    assert_eq!(escape_label_value(br#"say "hi""#), r#"say \"hi\""#);
    assert_eq!(escape_label_value(br"C:\dir\"), r"C:\\dir\\");
    assert_eq!(escape_label_value(b"two\nlines\n"), r"two\nlines\n");
    // Backslash-n in the input is two characters, escaped as three, not as a newline.
    assert_eq!(escape_label_value(br"\n"), r"\\n");
    // Other characters, control characters included, have no escape in the format.
    assert_eq!(escape_label_value("tab\there\r é ✓".as_bytes()), "tab\there\r é ✓");
    assert_eq!(escape_label_value(b""), "");
}

#[test]
fn label_values_replace_bytes_that_are_not_utf8() {
    assert_eq!(escape_label_value(b"\xff"), "\u{fffd}");
    assert_eq!(escape_label_value(b"ok\xfe\xffok"), "ok\u{fffd}\u{fffd}ok");
    // A character cut off at the end (as a 31-byte label limit could cut one).
    assert_eq!(escape_label_value(b"caf\xc3"), "caf\u{fffd}");
    assert_eq!(escape_label_value(b"\"\xc0\\\n"), "\\\"\u{fffd}\\\\\\n");
}

#[test]
fn help_text_escapes_backslash_and_newline_only() {
    assert_eq!(escape_help("a\\b\nc \"q\""), "a\\\\b\\nc \"q\"");
}

#[test]
fn values_read_back_as_prometheus_numbers() {
    let show = |v| {
        let mut s = String::new();
        push_value(&mut s, v);
        s
    };
    assert_eq!(show(Value::Int(0)), "0");
    assert_eq!(show(Value::Int(u64::MAX)), "18446744073709551615");
    assert_eq!(show(Value::Float(0.5)), "0.5");
    assert_eq!(show(Value::Float(1e-7)), "0.0000001");
    assert_eq!(show(Value::Float(f64::NAN)), "NaN");
    assert_eq!(show(Value::Float(f64::INFINITY)), "+Inf");
    assert_eq!(show(Value::Float(f64::NEG_INFINITY)), "-Inf");
    assert_eq!(show(Value::Nanos(0)), "0");
    assert_eq!(show(Value::Nanos(1)), "0.000000001");
    assert_eq!(show(Value::Nanos(1_500_000_000)), "1.5");
    assert_eq!(show(Value::Nanos(1_795_436_175_538_369_416)), "1795436175.538369416");
    assert_eq!(show(Value::Nanos(u64::MAX)), "18446744073.709551615");
}

#[test]
fn every_family_has_help_and_type_and_counters_end_in_total() {
    let text = render(&demo());
    let mut last_type: Option<(&str, &str)> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(name.starts_with(PREFIX), "{name}");
            assert_eq!(name.ends_with("_total"), kind == "counter", "{line}");
            last_type = Some((name, kind));
        } else if let Some(rest) = line.strip_prefix("# HELP ") {
            assert!(rest.split_once(' ').is_some_and(|(_, help)| !help.is_empty()), "{line}");
        } else {
            let (name, _) = last_type.unwrap();
            assert!(line.starts_with(name) && line[name.len()..].starts_with(['{', ' ']), "{line} outside {name}");
        }
    }
    let unique: HashSet<_> = series(&text).into_iter().collect();
    assert_eq!(unique.len(), series(&text).len(), "duplicate series");
    assert!(!text.contains("class=\"0\"") && text.contains("class=\"8\"") && text.contains("class=\"32768\""));
}

#[test]
fn rendering_is_deterministic() {
    assert_eq!(render(&demo()), render(&demo()));
}

#[test]
fn cardinality_is_bounded_and_repeats_are_skipped() {
    let mut s = demo();
    let extra_classes = s.classes.to_vec();
    s.classes.extend(extra_classes); // 88 entries, every size twice
    let mut big = s.classes[43].clone();
    big.object_size = 65536;
    s.classes.push(big); // a 45th distinct size
    let mut stray = s.epochs[3].clone();
    stray.epoch_id = 16;
    s.epochs.push(stray);
    s.epochs.push(s.epochs[5].clone());
    s.label_registry = (0..40).map(|id| label_entry(id % 35, &format!("l{id}"))).collect();
    let text = render(&s);
    let unique: HashSet<_> = series(&text).into_iter().collect();
    assert_eq!(unique.len(), series(&text).len(), "duplicate series");
    let count = |name: &str| text.lines().filter(|l| l.starts_with(&format!("{PREFIX}{name}{{"))).count();
    assert_eq!(count("class_allocations_total"), 44);
    assert_eq!(count("class_slabs"), 44 * 3);
    assert_eq!(count("epoch_age_seconds"), 16);
    assert_eq!(count("epoch_state"), 16 * 3);
    assert_eq!(count("label_registry_info"), 32);
    assert!(!text.contains("class=\"65536\"") && !text.contains("epoch=\"16\""));
}

#[test]
fn epoch_state_is_one_hot_and_label_only_on_its_info_family() {
    let text = render(&demo());
    // The example: the current epoch (era 6) in slot 5, a closed one in slot 0, slot 9 unused.
    assert!(text.contains("temporal_slab_epoch_state{epoch=\"5\",state=\"ACTIVE\"} 1\n"));
    assert!(text.contains("temporal_slab_epoch_state{epoch=\"5\",state=\"CLOSING\"} 0\n"));
    assert!(text.contains("temporal_slab_epoch_state{epoch=\"0\",state=\"CLOSING\"} 1\n"));
    assert!(text.contains("temporal_slab_epoch_state{epoch=\"9\",state=\"UNUSED\"} 1\n"));
    assert!(text.contains("temporal_slab_epoch_era{epoch=\"5\"} 6\n"));
    // An epoch that domains of several labels joined.
    assert!(text.contains("temporal_slab_epoch_label_info{epoch=\"2\",label=\"(shared)\"} 1\n"));
    for line in text.lines().filter(|l| l.contains("label=\"")) {
        assert!(
            line.starts_with("temporal_slab_epoch_label_info{")
                || line.starts_with("temporal_slab_label_registry_info{")
        );
    }
    // No yield before any scan: no sample, and no empty family either.
    let mut unscanned = demo();
    for e in &mut unscanned.epochs {
        e.reclamation_yield = None;
    }
    assert!(!render(&unscanned).contains("reclamation_yield"));
}

/// Labels as the allocator makes them from raw bytes (lossy UTF-8), with every character
/// that needs escaping, render to text that promtool accepts.
#[test]
fn labels_from_arbitrary_bytes_render_to_text_promtool_accepts() {
    let nasty = String::from_utf8_lossy(b"q\"b\\s\nn\xff\xc3").into_owned();
    let mut s = demo();
    s.epochs[2].label = Some(nasty.clone());
    s.label_registry.insert(0, label_entry(1, &nasty));
    let text = render(&s);
    let escaped = "q\\\"b\\\\s\\nn\u{fffd}\u{fffd}";
    assert!(text.contains(&format!("temporal_slab_epoch_label_info{{epoch=\"2\",label=\"{escaped}\"}} 1\n")), "{text}");
    assert!(text.contains(&format!("temporal_slab_label_registry_info{{label_id=\"1\",label=\"{escaped}\"}} 1\n")));

    let found = Command::new("promtool").arg("--version").output().is_ok_and(|o| o.status.success());
    if !found {
        assert!(std::env::var("TSLAB_REQUIRE_TOOLS").as_deref() != Ok("1"), "promtool is required but missing");
        eprintln!("skipped the promtool check: promtool not installed (apt-get install prometheus)");
        return;
    }
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(text.as_bytes()));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    let findings = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && findings.is_empty(), "promtool: {findings}");
}
