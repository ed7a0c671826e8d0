//! `tslab plot`: a recording (`tslab record`, one snapshot per line) drawn as an SVG: memory
//! (process RSS, the allocator's resident memory, live bytes), live bytes by epoch label, and
//! the allocation rate of each domain label, over time, with every epoch close marked.
//!
//! Per-label *live* bytes are what the epochs hold, grouped by the label of the domains that
//! joined them (`(shared)` when domains of several labels share a time bucket); objects are not
//! labelled one by one, so that is the closest the snapshot has.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Result};
use temporal_slab::Snapshot;

use crate::chart::{render, Line, Panel};

/// Options of `tslab plot`.
#[derive(clap::Args, Debug)]
#[command(after_help = "EXAMPLES:
    tslab record --pid 1234 --out run.jsonl --duration 5m
    tslab plot run.jsonl                       writes run.svg
    tslab plot run.jsonl --out /tmp/memory.svg")]
pub struct PlotArgs {
    /// A recording from `tslab record` (JSON Lines, one snapshot per line).
    #[arg(value_name = "FILE")]
    pub input: PathBuf,
    /// Where to write the SVG (default: FILE with the extension .svg).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Lines per label panel: the labels with the most bytes.
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=32))]
    pub labels: u32,
}

const MIB: f64 = 1024.0 * 1024.0;

/// The snapshots of a recording, in order; a cut-off last line (a recording killed mid-write) is
/// skipped with a note.
pub fn read_recording(path: &Path) -> Result<Vec<Snapshot>> {
    let text = std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            anyhow!("{}: no such file: give a recording made with `tslab record --out FILE`", path.display())
        }
        std::io::ErrorKind::PermissionDenied => {
            anyhow!("{}: permission denied: make the file readable for this user", path.display())
        }
        _ => anyhow!("{}: cannot read: {e}", path.display()),
    })?;
    let lines: Vec<&[u8]> = text.split(|b| *b == b'\n').filter(|l| !l.iter().all(u8::is_ascii_whitespace)).collect();
    let mut out: Vec<Snapshot> = Vec::with_capacity(lines.len());
    let cut_last = !text.ends_with(b"\n");
    for (i, line) in lines.iter().enumerate() {
        let origin = format!("{} line {}", path.display(), i + 1);
        match crate::input::parse(line, &origin) {
            Ok(s) => {
                if let Some(first) = out.first() {
                    if s.pid != first.pid {
                        bail!("{origin}: pid {} but line 1 is pid {}: record one process per file", s.pid, first.pid);
                    }
                }
                if out.last().is_some_and(|p| s.timestamp_ns < p.timestamp_ns) {
                    bail!("{origin}: taken before the line above it: the lines must be in the order recorded");
                }
                out.push(s);
            }
            Err(_) if cut_last && i + 1 == lines.len() && !out.is_empty() => {
                eprintln!("tslab plot: {origin}: cut off (the recording stopped mid-line); skipped");
            }
            Err(e) => return Err(e),
        }
    }
    if out.is_empty() {
        bail!("{}: no snapshots in it: record some with `tslab record --pid PID --out FILE`", path.display());
    }
    Ok(out)
}

/// The three panels and the epoch-close markers of `snaps`, x in seconds since the first.
pub fn panels(snaps: &[Snapshot], max_labels: usize) -> (Vec<Panel>, Vec<f64>, f64) {
    let t0 = snaps[0].timestamp_ns;
    let x = |s: &Snapshot| s.timestamp_ns.saturating_sub(t0) as f64 / 1e9;
    let series = |f: &dyn Fn(&Snapshot) -> u64| snaps.iter().map(|s| (x(s), f(s) as f64 / MIB)).collect();
    let memory = Panel {
        title: "Memory".into(),
        unit: "MiB".into(),
        lines: vec![
            Line { name: "process RSS".into(), points: series(&|s| s.rss_bytes_current) },
            Line { name: "allocator resident".into(), points: series(&|s| s.global.resident_bytes) },
            Line {
                name: "live bytes".into(),
                points: series(&|s| s.global.small_live_bytes.saturating_add(s.global.large_bytes)),
            },
        ],
    };
    // Live bytes by epoch label.
    let mut by_label: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for (i, s) in snaps.iter().enumerate() {
        let mut here: BTreeMap<String, u64> = BTreeMap::new();
        for e in s.epochs.iter().filter(|e| e.state.is_some()) {
            let label = e.label.clone().unwrap_or_else(|| "(no label)".into());
            *here.entry(label).or_default() += e.live_bytes;
        }
        for (label, bytes) in here {
            let v = by_label.entry(label).or_insert_with(|| (0..i).map(|j| (x(&snaps[j]), 0.0)).collect());
            v.push((x(s), bytes as f64 / MIB));
        }
        for v in by_label.values_mut() {
            if v.len() < i + 1 {
                v.push((x(s), 0.0));
            }
        }
    }
    let live =
        Panel { title: "Live bytes by epoch label".into(), unit: "MiB".into(), lines: top(by_label, max_labels) };
    // Allocation rate per domain label, between consecutive snapshots.
    let mut rate: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for w in snaps.windows(2) {
        let dt = (w[1].timestamp_ns.saturating_sub(w[0].timestamp_ns) as f64 / 1e9).max(1e-9);
        for l in &w[1].label_registry {
            let before = w[0].label_registry.iter().find(|o| o.id == l.id).map_or(0, |o| o.allocated_bytes);
            rate.entry(l.label.clone())
                .or_default()
                .push((x(&w[1]), l.allocated_bytes.saturating_sub(before) as f64 / MIB / dt));
        }
    }
    let alloc =
        Panel { title: "Allocation rate by domain label".into(), unit: "MiB/s".into(), lines: top(rate, max_labels) };
    let closes = snaps
        .windows(2)
        .filter(|w| w[1].global.epoch_close_calls > w[0].global.epoch_close_calls)
        .map(|w| x(&w[1]))
        .collect();
    (vec![memory, live, alloc], closes, x(&snaps[snaps.len() - 1]))
}

/// The `n` series with the largest peaks, largest first.
fn top(series: BTreeMap<String, Vec<(f64, f64)>>, n: usize) -> Vec<Line> {
    let mut lines: Vec<Line> = series.into_iter().map(|(name, points)| Line { name, points }).collect();
    let peak = |l: &Line| l.points.iter().map(|p| p.1).fold(0.0, f64::max);
    lines.retain(|l| peak(l) > 0.0);
    lines.sort_by(|a, b| peak(b).total_cmp(&peak(a)));
    lines.truncate(n);
    lines
}

/// `tslab plot`.
pub fn run(args: &PlotArgs) -> Result<()> {
    let snaps = read_recording(&args.input)?;
    let out = args.out.clone().unwrap_or_else(|| args.input.with_extension("svg"));
    if out == args.input {
        bail!("--out {} is the recording itself: give another file", out.display());
    }
    let (panels, closes, end) = panels(&snaps, args.labels as usize);
    let title = format!(
        "temporal-slab: pid {}, {} snapshots over {:.1} s, {} epoch close(s)",
        snaps[0].pid,
        snaps.len(),
        end,
        snaps[snaps.len() - 1].global.epoch_close_calls.saturating_sub(snaps[0].global.epoch_close_calls)
    );
    let svg = render(&title, "seconds since the first snapshot", (0.0, end), &closes, "epoch close", &panels);
    crate::whole_file::write(&out, svg.as_bytes())?;
    eprintln!("tslab plot: {} ({} snapshots) -> {}", args.input.display(), snaps.len(), out.display());
    Ok(())
}
