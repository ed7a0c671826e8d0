//! `tslab top`: size classes, epochs or domain labels ranked by any numeric field of the
//! snapshot, or by its rate per second over a window (two snapshots of a live process).
//!
//! Fields are read generically from the snapshot's JSON rows (`classes[]`, `epochs[]` or
//! `label_registry[]`), so
//! every numeric key of the schema can be ranked by, under its JSON name, and a new counter needs
//! no change here.

use std::io::Write;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::{Map, Value};
use temporal_slab::Snapshot;
use tslab_tools::fmt::bytes;

use crate::input::InputArgs;

/// Options of `tslab top`.
#[derive(clap::Args, Debug)]
#[command(after_help = "EXAMPLES:
    tslab top --pid 1234                              classes by live_bytes (the default)
    tslab top --pid 1234 --epochs --by live_bytes     which epochs (and labels) hold memory
    tslab top --pid 1234 --classes --by allocations --window 5s   allocation rate per class
    tslab top --pid 1234 --labels                     domains open and bytes allocated per label (route)
    tslab top --pid 1234 --labels --window 5s         bytes allocated per second per label
    tslab top --pid 1234 --sites                      call sites holding live memory (heap profile)
    stats_dump --pid 1234 --no-text | tslab top - --classes --by slow_path_hits --n 5

FIELDS:
    Any numeric key of a classes[], epochs[] or label_registry[] row of the snapshot (see
    schemas/snapshot.schema.json); an unknown field lists the valid ones. The default is
    live_bytes, and allocated_bytes for --labels.
    With --window, counters rank by their increase per second and gauges by their change per
    second (negative when falling).")]
pub struct TopArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Rank size classes (the default).
    #[arg(long, conflicts_with_all = ["epochs", "labels"])]
    pub classes: bool,
    /// Rank epoch ring slots.
    #[arg(long, conflicts_with = "labels")]
    pub epochs: bool,
    /// Rank domain labels (routes, jobs): domains open, domains opened, bytes allocated.
    #[arg(long)]
    pub labels: bool,
    /// Rank call sites by the live bytes of their sampled objects, with the labels and epochs
    /// they are in (from the process's heap profile; needs --pid and sampling on in the target).
    #[arg(long, conflicts_with_all = ["classes", "epochs", "labels", "by", "window"])]
    pub sites: bool,
    /// The field to rank by (default: live_bytes; allocated_bytes with --labels).
    #[arg(long, value_name = "FIELD")]
    pub by: Option<String>,
    /// How many rows to show.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub n: usize,
    /// Take two snapshots this far apart and rank by rate per second (needs --pid).
    #[arg(long, value_name = "DURATION", value_parser = crate::parse_duration)]
    pub window: Option<Duration>,
}

/// Which rows are ranked.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Group {
    /// `classes[]`, one per size class.
    Classes,
    /// `epochs[]`, one per ring slot.
    Epochs,
    /// `label_registry[]`, one per domain label.
    Labels,
}

impl Group {
    fn key(self) -> &'static str {
        match self {
            Group::Classes => "classes",
            Group::Epochs => "epochs",
            Group::Labels => "label_registry",
        }
    }

    fn flag(self) -> &'static str {
        match self {
            Group::Classes => "classes",
            Group::Epochs => "epochs",
            Group::Labels => "labels",
        }
    }
}

/// One ranked row.
#[derive(Debug, Clone)]
pub struct Ranked {
    /// The row as it is in the (later) snapshot.
    pub row: Map<String, Value>,
    /// The value ranked by: the field, or its rate per second.
    pub value: f64,
}

fn rows(s: &Snapshot, group: Group) -> Result<Vec<Map<String, Value>>> {
    let v = serde_json::to_value(s).context("encoding the snapshot")?;
    let Some(Value::Array(items)) = v.get(group.key()) else {
        bail!("the snapshot has no {} array", group.key());
    };
    Ok(items.iter().filter_map(|i| i.as_object().cloned()).collect())
}

/// The numeric fields of a row of `group`, sorted.
pub fn numeric_fields(s: &Snapshot, group: Group) -> Result<Vec<String>> {
    let rows = rows(s, group)?;
    let mut fields: Vec<String> = rows
        .first()
        .map(|r| r.iter().filter(|(_, v)| v.is_number() || v.is_null()).map(|(k, _)| k.clone()).collect())
        .unwrap_or_default();
    // Fields that are null in the first row (e.g. reclamation_yield before any close) count if
    // any row has a number there.
    fields.retain(|f| rows.iter().any(|r| r.get(f).is_some_and(Value::is_number)) || rows.len() <= 1);
    fields.sort();
    Ok(fields)
}

/// The identity of a row across two snapshots: class index, or ring index plus era.
fn identity(row: &Map<String, Value>, group: Group) -> (u64, u64) {
    let num = |k: &str| row.get(k).and_then(Value::as_u64).unwrap_or(0);
    match group {
        Group::Classes => (num("class_index"), 0),
        Group::Epochs => (num("epoch_id"), num("epoch_era")),
        Group::Labels => (num("id"), 0),
    }
}

/// Ranks the rows of `after` by `by`, or - with `before` - by the change of `by` per second
/// between the two snapshots (a row with no counterpart in `before`, such as a ring slot that
/// opened a new era, counts from zero). Rows whose value is null are left out.
pub fn rank(before: Option<&Snapshot>, after: &Snapshot, group: Group, by: &str) -> Result<Vec<Ranked>> {
    let fields = numeric_fields(after, group)?;
    if !fields.iter().any(|f| f == by) {
        bail!("unknown field {by:?} for --{}: valid fields are {}", group.flag(), fields.join(", "));
    }
    let later = rows(after, group)?;
    let mut ranked: Vec<Ranked> = match before {
        None => later
            .into_iter()
            .filter_map(|row| {
                let value = row.get(by).and_then(Value::as_f64)?;
                Some(Ranked { row, value })
            })
            .collect(),
        Some(b) => {
            let dt_ns = after.timestamp_ns.saturating_sub(b.timestamp_ns);
            if dt_ns == 0 {
                bail!(
                    "the two snapshots have the same time: the target publishes every 100 ms; use a --window of at least 200ms"
                );
            }
            let dt = dt_ns as f64 / 1e9;
            let earlier = rows(b, group)?;
            later
                .into_iter()
                .filter_map(|row| {
                    let now = row.get(by).and_then(Value::as_f64)?;
                    let id = identity(&row, group);
                    let then = earlier
                        .iter()
                        .find(|r| identity(r, group) == id)
                        .and_then(|r| r.get(by).and_then(Value::as_f64))
                        .unwrap_or(0.0);
                    Some(Ranked { row, value: (now - then) / dt })
                })
                .collect()
        }
    };
    ranked.sort_by(|a, b| b.value.total_cmp(&a.value));
    Ok(ranked)
}

/// A number for a table cell: integers as they are, fractions with three decimals.
pub fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}

fn cell(row: &Map<String, Value>, key: &str) -> String {
    match row.get(key) {
        Some(Value::Number(n)) => n.as_f64().map(number).unwrap_or_default(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "-".into(),
        Some(other) => other.to_string(),
    }
}

/// Writes the first `n` rows of `ranked` as an aligned table; `rate` says the value is per
/// second over `window`.
pub fn write_table(
    w: &mut impl Write,
    ranked: &[Ranked],
    group: Group,
    by: &str,
    n: usize,
    window: Option<Duration>,
) -> std::io::Result<()> {
    let value_head = match window {
        Some(d) => format!("{by}/s ({:.1}s)", d.as_secs_f64()),
        None => by.to_string(),
    };
    let (heads, keys): (Vec<&str>, Vec<&str>) = match group {
        Group::Classes => (
            vec!["class", "size", "live_objects", "live", "frag"],
            vec!["class_index", "object_size", "live_objects", "live_bytes", "fragmentation_ratio"],
        ),
        Group::Epochs => (
            vec!["epoch", "era", "state", "label", "refcount", "age_s", "live"],
            vec!["epoch_id", "epoch_era", "state", "label", "refcount", "age_sec", "live_bytes"],
        ),
        Group::Labels => (
            vec!["label", "open", "opened", "allocated"],
            vec!["label", "open_domains", "domains_opened", "allocated_bytes"],
        ),
    };
    let mut table: Vec<Vec<String>> = Vec::new();
    let mut head: Vec<String> = vec!["#".into(), value_head];
    head.extend(heads.iter().map(|h| h.to_string()));
    table.push(head);
    for (i, r) in ranked.iter().take(n).enumerate() {
        let mut line = vec![(i + 1).to_string(), number(r.value)];
        for k in &keys {
            line.push(match *k {
                "live_bytes" | "allocated_bytes" => {
                    r.row.get(*k).and_then(Value::as_u64).map(bytes).unwrap_or_else(|| "-".into())
                }
                "label" => match cell(&r.row, k) {
                    l if l.is_empty() => "-".into(),
                    l => l.escape_debug().to_string(),
                },
                _ => cell(&r.row, k),
            });
        }
        table.push(line);
    }
    let widths: Vec<usize> =
        (0..table[0].len()).map(|c| table.iter().map(|l| l[c].chars().count()).max().unwrap_or(0)).collect();
    for line in &table {
        let mut out = String::new();
        for (c, text) in line.iter().enumerate() {
            // Text columns left-aligned, numbers right-aligned.
            let left = matches!(text.as_str(), "-") || text.parse::<f64>().is_err();
            let pad = widths[c].saturating_sub(text.chars().count());
            if c > 0 {
                out.push_str("  ");
            }
            if left {
                out.push_str(text);
                out.push_str(&" ".repeat(pad));
            } else {
                out.push_str(&" ".repeat(pad));
                out.push_str(text);
            }
        }
        writeln!(w, "{}", out.trim_end())?;
    }
    if ranked.is_empty() {
        writeln!(w, "(no rows have a value for {by})")?;
    }
    Ok(())
}

/// `tslab top`.
pub fn run(args: &TopArgs) -> Result<()> {
    if args.sites {
        let Some(pid) = args.input.pid else {
            bail!(
                "--sites needs --pid PID: call sites come from a live process's heap profile, a snapshot file has none"
            );
        };
        return crate::top_sites::run(pid, args.n);
    }
    let group = match (args.epochs, args.labels) {
        (true, _) => Group::Epochs,
        (_, true) => Group::Labels,
        _ => Group::Classes,
    };
    let by = args.by.as_deref().unwrap_or(if group == Group::Labels { "allocated_bytes" } else { "live_bytes" });
    let (before, after) = match args.window {
        Some(window) => {
            let Some(pid) = args.input.pid else {
                bail!("--window needs --pid PID: a rate needs two snapshots of a live process, a file holds one");
            };
            let before = crate::input::from_pid(pid)?;
            std::thread::sleep(window);
            let after = crate::input::from_pid(pid)?;
            // The target publishes every 100 ms: no new snapshot in a longer window means it has
            // stopped, which no window length would fix.
            if window >= Duration::from_millis(200) && after.timestamp_ns == before.timestamp_ns {
                bail!("{}", crate::input::not_publishing(pid, window));
            }
            (Some(before), after)
        }
        None => (None, args.input.load()?),
    };
    let ranked = rank(before.as_ref(), &after, group, by)?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "pid {}: {} by {}{}",
        after.pid,
        group.flag(),
        by,
        if args.window.is_some() { " per second" } else { "" }
    )?;
    write_table(&mut out, &ranked, group, by, args.n, args.window)?;
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> Snapshot {
        let text = include_str!("../../schemas/examples/demo-in-process.json");
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn ranks_descending_by_any_numeric_field() {
        let s = example();
        for by in ["live_bytes", "allocations", "object_size", "fragmentation_ratio"] {
            let r = rank(None, &s, Group::Classes, by).unwrap();
            assert_eq!(r.len(), s.classes.len(), "{by}");
            assert!(r.windows(2).all(|w| w[0].value >= w[1].value), "{by} not descending");
        }
        let top = &rank(None, &s, Group::Classes, "allocations").unwrap()[0];
        let max = s.classes.iter().map(|c| c.allocations).max().unwrap();
        assert_eq!(top.value, max as f64);
    }

    #[test]
    fn labels_rank_by_their_figures() {
        let s = example();
        let r = rank(None, &s, Group::Labels, "allocated_bytes").unwrap();
        assert_eq!(r.len(), s.label_registry.len());
        let max = s.label_registry.iter().max_by_key(|l| l.allocated_bytes).unwrap();
        assert_eq!(r[0].row["label"], max.label.as_str());
        let mut out = Vec::new();
        write_table(&mut out, &r, Group::Labels, "allocated_bytes", 3, None).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.lines().next().unwrap().contains("open") && text.contains(&max.label), "{text}");
        assert_eq!(text.lines().count(), 4, "{text}");
    }

    #[test]
    fn unknown_field_lists_the_valid_ones() {
        let e = rank(None, &example(), Group::Epochs, "bogus").unwrap_err().to_string();
        assert!(e.contains("unknown field \"bogus\""), "{e}");
        assert!(e.contains("live_bytes") && e.contains("refcount") && e.contains("age_sec"), "{e}");
        assert!(!e.contains("label,"), "strings are not rankable: {e}");
    }

    #[test]
    fn rates_are_per_second_and_new_eras_count_from_zero() {
        let a = example();
        let mut b = a.clone();
        b.timestamp_ns = a.timestamp_ns + 2_000_000_000;
        b.classes[3].allocations += 1000;
        let r = rank(Some(&a), &b, Group::Classes, "allocations").unwrap();
        assert_eq!(r[0].row["class_index"], 3);
        assert_eq!(r[0].value, 500.0);
        assert!(r[1..].iter().all(|x| x.value == 0.0));

        // A slot that opened a new era is a different epoch: its value counts from zero.
        let mut c = a.clone();
        c.timestamp_ns = a.timestamp_ns + 1_000_000_000;
        c.epochs[5].era = a.epochs[5].era + 16;
        c.epochs[5].live_bytes = 4096;
        let r = rank(Some(&a), &c, Group::Epochs, "live_bytes").unwrap();
        assert_eq!(r[0].row["epoch_id"], 5);
        assert_eq!(r[0].value, 4096.0);
    }

    #[test]
    fn same_time_is_an_error() {
        let a = example();
        let e = rank(Some(&a), &a, Group::Classes, "allocations").unwrap_err().to_string();
        assert!(e.contains("same time"), "{e}");
    }

    #[test]
    fn table_shows_n_rows_in_order() {
        let s = example();
        let r = rank(None, &s, Group::Classes, "allocations").unwrap();
        let mut out = Vec::new();
        write_table(&mut out, &r, Group::Classes, "allocations", 3, None).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(lines[0].contains("allocations") && lines[0].contains("size"), "{text}");
        assert!(lines[1].trim_start().starts_with("1 "), "{text}");
        assert!(lines[1].contains(&number(r[0].value)), "{text}");
    }
}
