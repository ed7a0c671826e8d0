//! The comparison: how two snapshots relate (one process or two), the table's rows, and the
//! regression rules (see the module docs of `diff` for the rules themselves).

use anyhow::{bail, Result};
use temporal_slab::stats::EpochStats;
use temporal_slab::Snapshot;
use tslab_tools::doctor::{self, is_stuck};
use tslab_tools::fmt::{bytes, pct, seconds};

/// Fewer allocations than this (on either side) make a slow-path rate too noisy to compare.
const MIN_ALLOCATIONS: u64 = 10_000;
/// A slow-path rate must also rise by at least this much (0.1 percentage point) to count.
const MIN_RATE_RISE: f64 = 0.001;
/// Fewer slabs scanned by close sweeps than this make a reclamation yield too noisy to compare.
const MIN_SCANNED_SLABS: u64 = 100;

/// The knobs of the rules.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// Relative change, in percent, that counts as a regression.
    pub threshold: f64,
    /// Seconds after which an ended epoch still held open by its domains is stuck.
    pub stuck_after: f64,
}

/// How the two snapshots relate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Relation {
    /// One process; AFTER was taken this many seconds after BEFORE.
    SameProcess { interval_sec: f64 },
    /// Two processes; `pid_reused` when they share a pid (told apart by counters going back).
    TwoProcesses { pid_reused: bool },
}

/// One regression: `REGRESSION: <what> (<numbers>) - <look_at>`.
#[derive(Clone, Debug, PartialEq)]
pub struct Regression {
    /// What regressed.
    pub what: String,
    /// The figures that show it.
    pub numbers: String,
    /// Where to look next.
    pub look_at: String,
}

/// The outcome of a comparison.
#[derive(Debug)]
pub struct Report {
    /// How the snapshots relate.
    pub relation: Relation,
    /// The table, in display order.
    pub rows: Vec<Row>,
    /// Rules not applied and other remarks, one line each.
    pub notes: Vec<String>,
    /// Regressions found, in rule order.
    pub regressions: Vec<Regression>,
}

/// One table row: a figure before and after.
#[derive(Clone, Debug)]
pub struct Row {
    /// What the figure is.
    pub name: String,
    /// Its value in BEFORE.
    pub before: Cell,
    /// Its value in AFTER.
    pub after: Cell,
}

/// A figure, typed so that it formats and differences the right way.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Cell {
    /// A byte count.
    Bytes(u64),
    /// A plain count.
    Count(u64),
    /// A ratio 0..1, shown as a percentage; its change in percentage points.
    Ratio(f64),
    /// Not available (unknown, or a ratio over zero).
    Missing,
}

/// The counters the rules turn into ratios, for one side (a whole run or an interval).
#[derive(Clone, Copy, Debug, Default)]
struct Counts {
    allocations: u64,
    slow: u64,
    cache_miss: u64,
    epoch_changed: u64,
    scanned: u64,
    recycled: u64,
    madvise_failures: u64,
}

impl Counts {
    fn of(s: &Snapshot) -> Counts {
        Counts {
            allocations: allocations(s),
            slow: s.total_slow_path_hits,
            cache_miss: s.total_slow_cache_miss,
            epoch_changed: s.total_slow_epoch_closed,
            scanned: s.global.epoch_close_scanned_slabs,
            recycled: s.global.epoch_close_recycled_slabs,
            madvise_failures: s.total_madvise_failures,
        }
    }

    /// What `newer` added to `self` (saturating: counters of one process never go back, but a
    /// snapshot is not atomic across counters).
    fn increase_to(&self, newer: &Counts) -> Counts {
        Counts {
            allocations: newer.allocations.saturating_sub(self.allocations),
            slow: newer.slow.saturating_sub(self.slow),
            cache_miss: newer.cache_miss.saturating_sub(self.cache_miss),
            epoch_changed: newer.epoch_changed.saturating_sub(self.epoch_changed),
            scanned: newer.scanned.saturating_sub(self.scanned),
            recycled: newer.recycled.saturating_sub(self.recycled),
            madvise_failures: newer.madvise_failures.saturating_sub(self.madvise_failures),
        }
    }
}

fn allocations(s: &Snapshot) -> u64 {
    s.classes.iter().fold(0u64, |acc, c| acc.saturating_add(c.allocations))
}

/// `num / den`, absent when `den` is 0.
fn ratio(num: u64, den: u64) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

fn ratio_cell(r: Option<f64>) -> Cell {
    r.map_or(Cell::Missing, Cell::Ratio)
}

/// Whether `after` exceeds `before` by more than `pct` percent of `before`.
fn grew_more_than(before: f64, after: f64, pct: f64) -> bool {
    after * 100.0 > before * (100.0 + pct)
}

/// Whether no counter of the process went back from `older` to `newer`.
fn monotone(older: &Snapshot, newer: &Snapshot) -> bool {
    let (a, b) = (&older.global, &newer.global);
    allocations(older) <= allocations(newer)
        && older.current_era <= newer.current_era
        && older.total_slabs_allocated <= newer.total_slabs_allocated
        && older.total_slow_path_hits <= newer.total_slow_path_hits
        && older.total_madvise_calls <= newer.total_madvise_calls
        && a.segments <= b.segments
        && a.epoch_close_calls <= b.epoch_close_calls
}

/// How `before` and `after` relate; an error when they are one process's snapshots given in the
/// wrong order.
pub fn relation(before: &Snapshot, after: &Snapshot) -> Result<Relation> {
    if before.pid != after.pid {
        return Ok(Relation::TwoProcesses { pid_reused: false });
    }
    if after.timestamp_ns < before.timestamp_ns {
        if monotone(after, before) {
            bail!(
                "AFTER was taken {} before BEFORE in the same process (pid {}): the arguments look swapped; \
                 give the older snapshot first",
                seconds((before.timestamp_ns - after.timestamp_ns) as f64 / 1e9),
                before.pid
            );
        }
        return Ok(Relation::TwoProcesses { pid_reused: true });
    }
    if !monotone(before, after) {
        return Ok(Relation::TwoProcesses { pid_reused: true });
    }
    Ok(Relation::SameProcess { interval_sec: (after.timestamp_ns - before.timestamp_ns) as f64 / 1e9 })
}

/// Compares `before` with `after` under `settings`.
pub fn compare(before: &Snapshot, after: &Snapshot, settings: &Settings) -> Result<Report> {
    let relation = relation(before, after)?;
    let same = matches!(relation, Relation::SameProcess { .. });
    let b = Counts::of(before);
    // AFTER's side of every ratio rule: the interval for one process, the whole run otherwise.
    let a = if same { b.increase_to(&Counts::of(after)) } else { Counts::of(after) };
    let side = if same { "in the interval" } else { "in AFTER" };
    let t = settings.threshold;

    let mut notes = Vec::new();
    if relation == (Relation::TwoProcesses { pid_reused: true }) {
        notes.push(format!(
            "both snapshots have pid {} but counters went backwards: compared as two processes (the pid was reused)",
            before.pid
        ));
    }
    let mut regressions = Vec::new();

    // Slow-path rate.
    if b.allocations < MIN_ALLOCATIONS || a.allocations < MIN_ALLOCATIONS {
        let (n, whose) =
            if b.allocations < MIN_ALLOCATIONS { (b.allocations, "in BEFORE") } else { (a.allocations, side) };
        notes.push(format!(
            "slow-path rate not compared: {n} allocations {whose}, too few to be meaningful (needs {MIN_ALLOCATIONS})"
        ));
    } else if let (Some(rb), Some(ra)) = (ratio(b.slow, b.allocations), ratio(a.slow, a.allocations)) {
        if grew_more_than(rb, ra, t) && ra - rb >= MIN_RATE_RISE {
            regressions.push(slow_path_regression(&b, &a, rb, ra, side, t));
        }
    }

    // madvise failures.
    // One process: `a` is already the interval's increase.
    let new_failures = if same { a.madvise_failures > 0 } else { a.madvise_failures > b.madvise_failures };
    if new_failures {
        let numbers = if same {
            format!(
                "{} -> {}, {} new in the interval",
                b.madvise_failures, after.total_madvise_failures, a.madvise_failures
            )
        } else {
            format!("{} -> {}", b.madvise_failures, a.madvise_failures)
        };
        regressions.push(Regression {
            what: "madvise failures".into(),
            numbers,
            look_at: "memory the allocator freed stays resident: check seccomp or container policies that block \
                      madvise(MADV_DONTNEED)"
                .into(),
        });
    }

    // RSS.
    let (rss_b, rss_a) = (before.rss_bytes_current, after.rss_bytes_current);
    if rss_b == 0 || rss_a == 0 {
        let whose = if rss_b == 0 { "BEFORE" } else { "AFTER" };
        notes.push(format!("RSS not compared: unknown in {whose} (0: /proc was unreadable when it was taken)"));
    } else if grew_more_than(rss_b as f64, rss_a as f64, t) {
        regressions.push(rss_regression(before, after, t));
    }

    // Stuck epochs.
    for e in new_stuck_epochs(before, after, same, settings.stuck_after) {
        regressions.push(stuck_regression(after, e));
    }

    // Reclamation yield.
    if b.scanned < MIN_SCANNED_SLABS || a.scanned < MIN_SCANNED_SLABS {
        let (n, whose) = if b.scanned < MIN_SCANNED_SLABS { (b.scanned, "in BEFORE") } else { (a.scanned, side) };
        notes.push(format!(
            "reclamation yield not compared: {n} slabs scanned by epoch closes {whose} (needs {MIN_SCANNED_SLABS})"
        ));
    } else if let (Some(yb), Some(ya)) = (ratio(b.recycled, b.scanned), ratio(a.recycled, a.scanned)) {
        // Clamped like the snapshot's own yields: the two counters are read apart.
        let (yb, ya) = (yb.min(1.0), ya.min(1.0));
        if ya * 100.0 < yb * (100.0 - t) {
            regressions.push(Regression {
                what: "reclamation yield".into(),
                numbers: format!(
                    "{} -> {} {side}, {} of {} slabs scanned recycled, {}, threshold {t}%",
                    pct(yb),
                    pct(ya),
                    a.recycled,
                    a.scanned,
                    signed_pct(rel_change(yb, ya))
                ),
                look_at: "objects outlive the epoch they were allocated in, so closes find fewer empty slabs: \
                          tslab top --epochs --by live_bytes, tslab doctor"
                    .into(),
            });
        }
    }

    let rows = table(before, after, &b, &a, same, settings.stuck_after);
    Ok(Report { relation, rows, notes, regressions })
}

fn slow_path_regression(b: &Counts, a: &Counts, rb: f64, ra: f64, side: &str, t: f64) -> Regression {
    let share = |n: u64, c: &Counts| ratio(n, c.allocations).unwrap_or(0.0);
    let miss_rise = share(a.cache_miss, a) - share(b.cache_miss, b);
    let epoch_rise = share(a.epoch_changed, a) - share(b.epoch_changed, b);
    let look_at = if miss_rise >= epoch_rise {
        format!(
            "mostly new slabs (cache misses: {} -> {} of allocations): the working set grows or churns across size \
             classes, or epochs close so often that the warm pool empties; tslab top --classes --by slow_path_cache_miss",
            pct(share(b.cache_miss, b)),
            pct(share(a.cache_miss, a))
        )
    } else {
        format!(
            "mostly epoch changes ({} -> {} of allocations): epochs or domains change more often per allocation; \
             group more work per epoch, or check TSLAB_AUTO_ADVANCE_MS",
            pct(share(b.epoch_changed, b)),
            pct(share(a.epoch_changed, a))
        )
    };
    Regression {
        what: "slow-path rate".into(),
        numbers: format!(
            "{} -> {} {side}, {} of {} allocations, {}, threshold {t}%",
            pct(rb),
            pct(ra),
            a.slow,
            a.allocations,
            signed_pct(rel_change(rb, ra))
        ),
        look_at,
    }
}

fn rss_regression(before: &Snapshot, after: &Snapshot, t: f64) -> Regression {
    let (rss_b, rss_a) = (before.rss_bytes_current, after.rss_bytes_current);
    let growth = rss_a.saturating_sub(rss_b);
    let (res_b, res_a) = (before.global.resident_bytes, after.global.resident_bytes);
    let res_growth = res_a.saturating_sub(res_b);
    let live_change = signed_bytes(before.global.small_live_bytes, after.global.small_live_bytes);
    let look_at = if res_growth.saturating_mul(2) >= growth {
        format!(
            "the allocator's resident memory grew by {} (live bytes in slabs {live_change}): growing live bytes are \
             a leak, otherwise fragmentation or epochs not reclaimed; tslab top --epochs --by estimated_rss_bytes, \
             tslab doctor",
            bytes(res_growth)
        )
    } else {
        format!(
            "the allocator's resident memory grew by only {}: most of the growth is outside it (thread stacks, \
             other mappings, the program itself)",
            bytes(res_growth)
        )
    };
    Regression {
        what: "RSS".into(),
        numbers: format!(
            "{} -> {}, {}, threshold {t}%",
            bytes(rss_b),
            bytes(rss_a),
            signed_pct(rel_change(rss_b as f64, rss_a as f64))
        ),
        look_at,
    }
}

fn stuck_regression(s: &Snapshot, e: &EpochStats) -> Regression {
    let label = e.label.as_deref().map(|l| format!(" {l:?}")).unwrap_or_default();
    let unlabelled = if e.label.is_none() { " (give domains labels to find them)" } else { "" };
    Regression {
        what: format!("new stuck epoch {}{label}, era {}", e.epoch_id, e.era),
        numbers: format!(
            "ended {} ago, refcount {}, holding {} in {} slabs",
            seconds(doctor::ended_for(s, e).unwrap_or(e.age_sec)),
            e.refcount,
            bytes(e.live_bytes),
            e.live_slabs
        ),
        look_at: format!(
            "domain(s) opened in it never ended: find where {}{unlabelled} is created and make sure it is closed or \
             dropped; tslab doctor",
            doctor::suspect_domains(s, e)
        ),
    }
}

/// The stuck epochs of `after` that were not stuck in `before` (see the module docs).
fn new_stuck_epochs<'a>(before: &Snapshot, after: &'a Snapshot, same: bool, stuck_after: f64) -> Vec<&'a EpochStats> {
    let stuck_before: Vec<&EpochStats> = before.epochs.iter().filter(|e| is_stuck(before, e, stuck_after)).collect();
    let mut stuck_now: Vec<&EpochStats> = after.epochs.iter().filter(|e| is_stuck(after, e, stuck_after)).collect();
    if same {
        stuck_now.retain(|e| !stuck_before.iter().any(|o| o.epoch_id == e.epoch_id && o.era == e.era));
        return stuck_now;
    }
    // Eras of two processes are unrelated: match by label, oldest first (the youngest are new).
    stuck_now.sort_by(|x, y| y.age_sec.total_cmp(&x.age_sec));
    let mut out = Vec::new();
    let mut seen: Vec<(Option<&str>, usize)> = Vec::new();
    for e in stuck_now {
        let label = e.label.as_deref();
        let had = stuck_before.iter().filter(|o| o.label.as_deref() == label).count();
        let n = match seen.iter_mut().find(|(l, _)| *l == label) {
            Some((_, n)) => {
                *n += 1;
                *n
            }
            None => {
                seen.push((label, 1));
                1
            }
        };
        if n > had {
            out.push(e);
        }
    }
    out.sort_by_key(|e| e.epoch_id);
    out
}

fn table(before: &Snapshot, after: &Snapshot, b: &Counts, a: &Counts, same: bool, stuck_after: f64) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut row = |name: &str, f: &dyn Fn(&Snapshot) -> Cell| {
        rows.push(Row { name: name.to_string(), before: f(before), after: f(after) });
    };
    let rss = |s: &Snapshot| if s.rss_bytes_current == 0 { Cell::Missing } else { Cell::Bytes(s.rss_bytes_current) };
    row("RSS", &rss);
    row("allocator resident", &|s| Cell::Bytes(s.global.resident_bytes));
    row("allocator mapped", &|s| Cell::Bytes(s.global.mapped_bytes));
    row("slab resident", &|s| Cell::Bytes(s.estimated_slab_rss_bytes));
    row("live bytes in slabs", &|s| Cell::Bytes(s.global.small_live_bytes));
    row("live large objects", &|s| Cell::Bytes(s.global.large_bytes));
    row("slabs in use", &|s| Cell::Count(s.net_slabs));
    row("fragmentation", &|s| {
        ratio_cell(ratio(
            s.estimated_slab_rss_bytes.saturating_sub(s.global.small_live_bytes),
            s.estimated_slab_rss_bytes,
        ))
    });
    row("allocations", &|s| Cell::Count(allocations(s)));
    row("slow-path hits", &|s| Cell::Count(s.total_slow_path_hits));
    row("  cache miss (new slab)", &|s| Cell::Count(s.total_slow_cache_miss));
    row("  epoch changed", &|s| Cell::Count(s.total_slow_epoch_closed));
    row("slow-path rate", &|s| ratio_cell(ratio(s.total_slow_path_hits, allocations(s))));
    let slow_interval = ratio_cell(ratio(a.slow, a.allocations));
    row("madvise calls", &|s| Cell::Count(s.total_madvise_calls));
    row("purged", &|s| Cell::Bytes(s.total_madvise_bytes));
    row("madvise failures", &|s| Cell::Count(s.total_madvise_failures));
    row("epoch closes", &|s| Cell::Count(s.global.epoch_close_calls));
    let yield_of = |s: &Snapshot| {
        ratio(s.global.epoch_close_recycled_slabs, s.global.epoch_close_scanned_slabs).map(|y| y.min(1.0))
    };
    row("reclamation yield", &|s| ratio_cell(yield_of(s)));
    let yield_interval = ratio_cell(ratio(a.recycled, a.scanned).map(|y| y.min(1.0)));
    row("active epochs", &|s| Cell::Count(u64::from(s.active_epoch_count)));
    row("closing epochs", &|s| Cell::Count(u64::from(s.closing_epoch_count)));
    row(&format!("stuck epochs (>= {})", seconds(stuck_after)), &|s| {
        Cell::Count(s.epochs.iter().filter(|e| is_stuck(s, e, stuck_after)).count() as u64)
    });
    row("domain misuses", &|s| {
        let g = &s.global;
        Cell::Count(
            g.domain_misuse_out_of_order
                .saturating_add(g.domain_misuse_wrong_thread)
                .saturating_add(g.domain_misuse_passed_era)
                .saturating_add(g.domain_misuse_too_deep),
        )
    });
    if same {
        // The rows the rules compare for one process: BEFORE's rate so far against the interval's.
        let at = |rows: &[Row], name: &str| rows.iter().position(|r| r.name == name).map_or(rows.len(), |i| i + 1);
        let i = at(&rows, "slow-path rate");
        let before_rate = ratio_cell(ratio(b.slow, b.allocations));
        rows.insert(i, Row { name: "  in the interval".into(), before: before_rate, after: slow_interval });
        let i = at(&rows, "reclamation yield");
        let before_yield = ratio_cell(ratio(b.recycled, b.scanned).map(|y| y.min(1.0)));
        rows.insert(i, Row { name: "  in the interval".into(), before: before_yield, after: yield_interval });
    }
    rows
}

/// `after - before` in percent of `before`; 0 when equal, absent when `before` is 0 and they differ.
pub(super) fn rel_change(before: f64, after: f64) -> Option<f64> {
    if after == before {
        Some(0.0)
    } else if before == 0.0 {
        None
    } else {
        Some((after - before) / before * 100.0)
    }
}

/// `v` rounded to one decimal with its sign (`+1.5`, `-0.3`, `0.0`: never `-0.0`).
pub(super) fn signed_1(v: f64) -> String {
    let r = (v * 10.0).round() / 10.0;
    if r == 0.0 {
        "0.0".into()
    } else {
        format!("{r:+.1}")
    }
}

pub(super) fn signed_pct(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".into(), |v| format!("{}%", signed_1(v)))
}

pub(super) fn signed_bytes(before: u64, after: u64) -> String {
    match after.cmp(&before) {
        std::cmp::Ordering::Equal => "0 B".into(),
        std::cmp::Ordering::Greater => format!("+{}", bytes(after - before)),
        std::cmp::Ordering::Less => format!("-{}", bytes(before - after)),
    }
}

pub(super) fn signed_count(before: u64, after: u64) -> String {
    match after.cmp(&before) {
        std::cmp::Ordering::Equal => "0".into(),
        std::cmp::Ordering::Greater => format!("+{}", after - before),
        std::cmp::Ordering::Less => format!("-{}", before - after),
    }
}
