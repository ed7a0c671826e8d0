//! The report as text: the header naming both inputs, the table, the notes, one line per
//! regression and the result line.

use std::io::Write;

use temporal_slab::Snapshot;
use tslab_tools::fmt::{bytes, pct, seconds};

use super::compare::{
    rel_change, signed_1, signed_bytes, signed_count, signed_pct, Cell, Relation, Report, Row, Settings,
};

impl Cell {
    fn text(self) -> String {
        match self {
            Cell::Bytes(n) => bytes(n),
            Cell::Count(n) => n.to_string(),
            Cell::Ratio(r) => pct(r),
            Cell::Missing => "n/a".into(),
        }
    }
}

impl Row {
    /// The change column (absolute) and the change in percent of BEFORE.
    fn change(&self) -> (String, String) {
        match (self.before, self.after) {
            (Cell::Bytes(b), Cell::Bytes(a)) => (signed_bytes(b, a), signed_pct(rel_change(b as f64, a as f64))),
            (Cell::Count(b), Cell::Count(a)) => (signed_count(b, a), signed_pct(rel_change(b as f64, a as f64))),
            (Cell::Ratio(b), Cell::Ratio(a)) => {
                (format!("{} pp", signed_1((a - b) * 100.0)), signed_pct(rel_change(b, a)))
            }
            _ => ("n/a".into(), "n/a".into()),
        }
    }
}

/// Formats CLOCK_REALTIME nanoseconds as UTC, `2026-11-23T10:00:01.123Z`.
pub(super) fn utc(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    let ms = ns % 1_000_000_000 / 1_000_000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm), in non-negative integers.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{ms:03}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Writes the report: header, settings, table, notes, regressions, verdict.
pub fn render(
    w: &mut impl Write,
    names: &[&str; 2],
    before: &Snapshot,
    after: &Snapshot,
    settings: &Settings,
    report: &Report,
) -> std::io::Result<()> {
    let relation = match report.relation {
        Relation::SameProcess { interval_sec } => format!("same process, {} apart", seconds(interval_sec)),
        Relation::TwoProcesses { .. } => "two processes".into(),
    };
    writeln!(
        w,
        "tslab diff: {} (pid {}, {}) -> {} (pid {}, {}): {relation}",
        names[0],
        before.pid,
        utc(before.timestamp_ns),
        names[1],
        after.pid,
        utc(after.timestamp_ns)
    )?;
    writeln!(w, "threshold {}%, stuck after {}", settings.threshold, seconds(settings.stuck_after))?;
    writeln!(w)?;

    let header = ["", "before", "after", "change", "change %"];
    let lines: Vec<[String; 5]> = report
        .rows
        .iter()
        .map(|r| {
            let (change, change_pct) = r.change();
            [r.name.clone(), r.before.text(), r.after.text(), change, change_pct]
        })
        .collect();
    let mut width = header.map(str::len);
    for l in &lines {
        for (w, cell) in width.iter_mut().zip(l) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 5]| {
        format!(
            "{:<w0$}  {:>w1$}  {:>w2$}  {:>w3$}  {:>w4$}",
            cells[0],
            cells[1],
            cells[2],
            cells[3],
            cells[4],
            w0 = width[0],
            w1 = width[1],
            w2 = width[2],
            w3 = width[3],
            w4 = width[4]
        )
    };
    writeln!(w, "{}", line(header).trim_end())?;
    for l in &lines {
        writeln!(w, "{}", line([&l[0], &l[1], &l[2], &l[3], &l[4]]).trim_end())?;
    }
    writeln!(w)?;
    for n in &report.notes {
        writeln!(w, "note: {n}")?;
    }
    for r in &report.regressions {
        writeln!(w, "REGRESSION: {} ({}) - {}", r.what, r.numbers, r.look_at)?;
    }
    match report.regressions.len() {
        0 => writeln!(w, "result: no regression"),
        1 => writeln!(w, "result: 1 regression"),
        n => writeln!(w, "result: {n} regressions"),
    }
}
