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
    // The era's label changes while it lives, so it is only on its info family; a registry
    // entry's text never changes for its id, so the per-label families carry it.
    for line in text.lines().filter(|l| l.contains("label=\"")) {
        assert!(
            line.starts_with("temporal_slab_epoch_label_info{") || line.starts_with("temporal_slab_label_"),
            "{line}"
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

/// The catalog (the schema's `x-prometheus` annotations) against the schema itself: every leaf
/// key of the snapshot is the source of a family, read by a derived one or not exported with the
/// reason, and every key the list names exists.
#[test]
fn every_schema_key_is_exported_or_excused_and_none_is_invented() {
    use super::catalog::{catalog, KeyPath};
    let schema: serde_json::Value = serde_json::from_str(super::catalog::SCHEMA_TEXT).unwrap();
    let mut keys = std::collections::BTreeSet::new();
    let containers = ["classes", "epochs", "global", "label_registry"];
    for k in schema["properties"].as_object().unwrap().keys().filter(|k| !containers.contains(&k.as_str())) {
        keys.insert(k.clone());
    }
    for (def, prefix) in
        [("class", "classes[]."), ("epoch", "epochs[]."), ("global", "global."), ("label_entry", "label_registry[].")]
    {
        for k in schema["$defs"][def]["properties"].as_object().unwrap().keys() {
            keys.insert(format!("{prefix}{k}"));
        }
    }
    let c = catalog();
    let mut named = Vec::new();
    for f in &c.families {
        assert!(f.metric.starts_with(PREFIX), "{}: not prefixed", f.metric);
        assert!(c.sections.contains(&f.section), "{}: unknown section {:?}", f.metric, f.section);
        assert!(!f.help.trim().is_empty() && !f.unit.is_empty(), "{}: no HELP text or unit", f.metric);
        match (&f.from, &f.derived) {
            (Some(from), None) => {
                assert!(KeyPath::parse(from).is_some(), "{}: bad path {from:?}", f.metric);
                assert!(
                    f.labels.is_empty() && f.source.is_none(),
                    "{}: labels/source are for derived families",
                    f.metric
                );
                named.push((f.metric.clone(), from.replace("classes[0].", "classes[].")));
            }
            (None, Some(derived)) => {
                assert!(
                    f.source.is_some() && f.scale.is_none(),
                    "{}: a derived family needs its source text",
                    f.metric
                );
                named.extend(derived.iter().map(|k| (f.metric.clone(), k.clone())));
            }
            _ => panic!("{}: exactly one of `from` and `derived`", f.metric),
        }
    }
    for n in &c.not_exported {
        assert!(!n.why.trim().is_empty(), "{:?}: no reason given", n.keys);
        named.extend(n.keys.iter().map(|k| ("not_exported".to_string(), k.clone())));
    }
    // A key only derived families read names them, and they list it.
    for (key, readers) in &c.read_by {
        for r in readers {
            let f = c.families.iter().find(|f| &f.metric == r);
            let lists = f.and_then(|f| f.derived.as_ref()).is_some_and(|d| d.contains(key));
            assert!(lists, "{key} says it is read by {r}, which is not a derived family listing it");
        }
        named.push(("read_by".to_string(), key.clone()));
    }
    let invented: Vec<_> = named.iter().filter(|(_, k)| !keys.contains(k)).collect();
    assert!(invented.is_empty(), "keys named in x-prometheus that the schema does not have: {invented:?}");
    let covered: HashSet<&str> = named.iter().map(|(_, k)| k.as_str()).collect();
    let missing: Vec<_> = keys.iter().filter(|k| !covered.contains(k.as_str())).collect();
    assert!(missing.is_empty(), "schema keys neither exported nor listed in x-prometheus.not_exported: {missing:?}");
    let mut metrics: Vec<&str> = c.families.iter().map(|f| f.metric.as_str()).collect();
    metrics.sort_unstable();
    let before = metrics.len();
    metrics.dedup();
    assert_eq!(before, metrics.len(), "a family is listed twice");
}

/// Every family of the catalog has samples on a snapshot where each figure exists, in catalog
/// order, and the renderer writes no family the catalog lacks (a derived family named in the
/// list but not computed would be missing here).
#[test]
fn the_renderer_writes_exactly_the_catalog_in_its_order() {
    let mut s = demo();
    s.epochs[0].reclamation_yield = Some(0.5);
    let text = render(&s);
    let written: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("# TYPE ")?.split(' ').next()).collect();
    let listed: Vec<&str> = super::catalog::catalog().families.iter().map(|f| f.metric.as_str()).collect();
    assert_eq!(written, listed);
    // And HELP is the catalog's text.
    for f in &super::catalog::catalog().families {
        assert!(text.contains(&format!("# HELP {} {}\n", f.metric, escape_help(&f.help))), "{}", f.metric);
    }
}

/// `docs/METRICS.md`'s family tables are the catalog's, as generated (`UPDATE_GOLDEN=1` rewrites
/// them).
#[test]
fn metrics_doc_tables_are_generated_from_the_catalog() {
    const BEGIN: &str = "<!-- BEGIN generated from the x-prometheus annotations";
    const END: &str = "<!-- END generated -->";
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/METRICS.md");
    let doc = std::fs::read_to_string(path).unwrap();
    let begin = doc.find(BEGIN).expect("docs/METRICS.md has the BEGIN marker");
    let begin = begin + doc[begin..].find('\n').unwrap() + 1;
    let end = doc.find(END).expect("docs/METRICS.md has the END marker");
    let want = super::catalog::metrics_tables(super::catalog::catalog());
    if std::env::var("UPDATE_GOLDEN").as_deref() == Ok("1") {
        std::fs::write(path, format!("{}{want}{}", &doc[..begin], &doc[end..])).unwrap();
        return;
    }
    assert!(
        doc[begin..end] == want,
        "docs/METRICS.md's family tables differ from the x-prometheus list of the schema: regenerate them with \
         `UPDATE_GOLDEN=1 cargo test -p tslab metrics_doc` and review `git diff docs/METRICS.md`"
    );
}

/// The annotations are checked as they are read: a property without one, or with two answers,
/// or a family without its HELP text, is an error naming the key.
#[test]
fn malformed_annotations_are_refused_with_the_key() {
    let schema: serde_json::Value = serde_json::from_str(super::catalog::SCHEMA_TEXT).unwrap();
    let mut bare = schema.clone();
    bare["$defs"]["global"]["properties"]["heaps"].as_object_mut().unwrap().remove("x-prometheus");
    let e = super::catalog::build(&bare).unwrap_err();
    assert!(e.contains("global.heaps") && e.contains("no x-prometheus"), "{e}");
    let mut both = schema.clone();
    both["$defs"]["class"]["properties"]["frees"]["x-prometheus"]["not_exported"] = "x".into();
    let e = super::catalog::build(&both).unwrap_err();
    assert!(e.contains("classes[].frees") && e.contains("exactly one"), "{e}");
    let mut no_help = schema;
    no_help["properties"]["page_size"]["x-prometheus"].as_object_mut().unwrap().remove("help");
    let e = super::catalog::build(&no_help).unwrap_err();
    assert!(e.contains("page_size") && e.contains("help"), "{e}");
}
