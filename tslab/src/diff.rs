//! `tslab diff`: compares two snapshots and says what regressed, for a CI log or a person.
//!
//! The two snapshots are typically a baseline run and a candidate run of the same workload, or
//! two snapshots of one process some time apart. The report is a header line naming both inputs
//! (pid, time, and the interval when they come from one process), a table of the key figures
//! (before, after, change absolute and in percent), notes on the rules that could not be applied,
//! one `REGRESSION: <what> (<numbers>) - <what to look at>` line per regression, and a final
//! `result: ...` line.
//!
//! # One process or two
//!
//! Both snapshots come from *one process* when they have the same pid, AFTER is not older than
//! BEFORE and no counter went backwards. Then the ratios the rules compare for AFTER are taken
//! over the interval (counter increases between the two snapshots), so a change is not diluted by
//! the process's whole history. Otherwise they are *two processes* and each side's ratios are over
//! its whole run. Same pid with AFTER older and BEFORE's counters at least AFTER's is an error:
//! the arguments look swapped. Same pid with counters that went backwards is two processes (the
//! pid was reused), said in a note. Counters are compared with saturating arithmetic, ratios in
//! `f64`, and a ratio with a zero denominator is absent (printed `n/a`), never NaN or infinite.
//!
//! # Regression rules (PCT is `--threshold`, default 10)
//!
//! - **Slow-path rate** (slow-path hits per allocation): AFTER's rate is above BEFORE's by more
//!   than PCT percent of BEFORE's rate *and* by at least 0.1 percentage point. Not applied (a
//!   note says so) when either side has fewer than 10,000 allocations.
//! - **madvise failures**: AFTER has more failed `madvise` calls than BEFORE (one process: any
//!   failure in the interval).
//! - **RSS**: AFTER's process RSS is more than PCT percent above BEFORE's. Not applied when either
//!   RSS is unknown (0: /proc was unreadable).
//! - **Stuck epochs**: an epoch is stuck when it has ended (it is not the current era) at least
//!   `--stuck-after` seconds ago but is still ACTIVE, held open by domains opened in it that never
//!   ended (refcount > 0: the domains open in it); the doctor's rule, `doctor::is_stuck`. Domains
//!   open in the current epoch are never stuck. A stuck epoch of AFTER is new
//!   when BEFORE has no stuck epoch with the same ring index and era (one process), or, for two
//!   processes (whose eras are unrelated), when BEFORE has fewer stuck epochs with the same label.
//! - **Reclamation yield** (slabs recycled per slab scanned by epoch-close sweeps): AFTER's yield is
//!   below BEFORE's by more than PCT percent of BEFORE's. Not applied when either side scanned
//!   fewer than 100 slabs.
//!
//! Fragmentation is in the table but is no rule: at the sizes a CI workload reaches it is
//! dominated by each thread's current slab and the warm pool, and it swings with them; what it
//! costs shows up as RSS, which is a rule.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use temporal_slab::stats::EpochStats;
use temporal_slab::Snapshot;
use tslab_tools::doctor::{self, is_stuck};
use tslab_tools::fmt::{bytes, pct, seconds};

use crate::input;

/// Fewer allocations than this (on either side) make a slow-path rate too noisy to compare.
const MIN_ALLOCATIONS: u64 = 10_000;
/// A slow-path rate must also rise by at least this much (0.1 percentage point) to count.
const MIN_RATE_RISE: f64 = 0.001;
/// Fewer slabs scanned by close sweeps than this make a reclamation yield too noisy to compare.
const MIN_SCANNED_SLABS: u64 = 100;

/// Options of `tslab diff`.
#[derive(clap::Args, Debug)]
#[command(after_help = "EXAMPLES:
    tslab stats --pid 1234 --json > before.json; sleep 60; tslab stats --pid 1234 --json > after.json
    tslab diff before.json after.json
    tslab diff baseline.json candidate.json --fail-on regression --threshold 15
    stats_dump --pid 1234 --no-text | tslab diff baseline.json - --stuck-after 30

RULES (PCT is --threshold):
    slow-path rate     slow-path hits per allocation rose by more than PCT% of BEFORE's rate and
                       by at least 0.1 percentage point; skipped when either side has fewer than
                       10000 allocations
    madvise failures   AFTER has more failed madvise calls than BEFORE (any new failure)
    RSS                process RSS grew by more than PCT%; skipped when an RSS is unknown (0)
    stuck epochs       an epoch stuck in AFTER (ended >= --stuck-after ago, still held open by
                       domains opened in it: refcount > 0) that was not stuck in BEFORE: same
                       ring index and era for one process; for two processes, more stuck epochs
                       with its label than BEFORE had
    reclamation yield  slabs recycled per slab scanned by epoch closes fell by more than PCT% of
                       BEFORE's; skipped when either side scanned fewer than 100 slabs
    Fragmentation and the other rows of the table are reported, never a regression.

    Two snapshots are of one process when the pid is the same, AFTER is not older and no counter
    went backwards; AFTER's rates are then those of the interval between them. Same pid with AFTER
    older than BEFORE and counters that agree is an error (swapped arguments).

EXIT STATUS:
    0  compared (regressions are reported but do not fail without --fail-on regression)
    1  at least one regression, with --fail-on regression
    2  an error: unreadable or invalid input, both inputs -, or swapped snapshots of one process")]
pub struct DiffArgs {
    /// The baseline snapshot: a file (from `tslab stats --json` or `stats_dump --no-text`), or `-`
    /// for standard input.
    #[arg(value_name = "BEFORE")]
    pub before: String,
    /// The snapshot to judge: a later snapshot of the same process or a candidate run; a file or `-`.
    #[arg(value_name = "AFTER")]
    pub after: String,
    /// Exit 1 when there is at least one regression (for CI); without it the exit status is 0.
    #[arg(long, value_enum, value_name = "WHAT")]
    pub fail_on: Option<FailOn>,
    /// Relative change, in percent, that counts as a regression of the slow-path rate, RSS and
    /// reclamation yield.
    #[arg(long, value_name = "PCT", default_value_t = 10.0, value_parser = parse_threshold)]
    pub threshold: f64,
    /// Seconds after which an epoch that has ended but is still held open by domains opened in
    /// it (never ended) counts as stuck.
    #[arg(long, value_name = "SECONDS", default_value_t = 60.0, value_parser = parse_stuck_after)]
    pub stuck_after: f64,
}

/// What `--fail-on` can fail on.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailOn {
    /// At least one regression.
    Regression,
}

fn parse_threshold(text: &str) -> Result<f64, String> {
    match text.trim().trim_end_matches('%').parse::<f64>() {
        Ok(v) if v.is_finite() && (0.0..=1e6).contains(&v) => Ok(v),
        _ => Err(format!("{text:?} is not a percentage: give a number from 0 to 1000000, e.g. 10")),
    }
}

fn parse_stuck_after(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && (0.0..=1e9).contains(&v) => Ok(v),
        _ => Err(format!("{text:?} is not a number of seconds: give e.g. 60 or 0.5")),
    }
}

/// Reads both snapshots, prints the report on stdout, and returns the exit status.
pub fn run(args: &DiffArgs) -> Result<ExitCode> {
    if args.before == "-" && args.after == "-" {
        bail!("BEFORE and AFTER are both - (standard input holds one snapshot): save one of them to a file");
    }
    let before = input::from_path(&args.before).context("reading BEFORE")?;
    let after = input::from_path(&args.after).context("reading AFTER")?;
    let settings = Settings { threshold: args.threshold, stuck_after: args.stuck_after };
    let report = compare(&before, &after, &settings)?;
    let mut out = std::io::stdout().lock();
    let names = [display_name(&args.before), display_name(&args.after)];
    render(&mut out, &names, &before, &after, &settings, &report).context("writing the report")?;
    out.flush().context("writing the report")?;
    let fail = args.fail_on == Some(FailOn::Regression) && !report.regressions.is_empty();
    Ok(if fail { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

fn display_name(path: &str) -> &str {
    if path == "-" {
        "stdin"
    } else {
        path
    }
}

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
fn rel_change(before: f64, after: f64) -> Option<f64> {
    if after == before {
        Some(0.0)
    } else if before == 0.0 {
        None
    } else {
        Some((after - before) / before * 100.0)
    }
}

/// `v` rounded to one decimal with its sign (`+1.5`, `-0.3`, `0.0`: never `-0.0`).
fn signed_1(v: f64) -> String {
    let r = (v * 10.0).round() / 10.0;
    if r == 0.0 {
        "0.0".into()
    } else {
        format!("{r:+.1}")
    }
}

fn signed_pct(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".into(), |v| format!("{}%", signed_1(v)))
}

fn signed_bytes(before: u64, after: u64) -> String {
    match after.cmp(&before) {
        std::cmp::Ordering::Equal => "0 B".into(),
        std::cmp::Ordering::Greater => format!("+{}", bytes(after - before)),
        std::cmp::Ordering::Less => format!("-{}", bytes(before - after)),
    }
}

fn signed_count(before: u64, after: u64) -> String {
    match after.cmp(&before) {
        std::cmp::Ordering::Equal => "0".into(),
        std::cmp::Ordering::Greater => format!("+{}", after - before),
        std::cmp::Ordering::Less => format!("-{}", before - after),
    }
}

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
fn utc(ns: u64) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Args;
    use temporal_slab::epoch::EpochState;

    const EXAMPLE: &str = include_str!("../../schemas/examples/workload-attached.json");

    /// A quiet snapshot: every counter low, nothing stuck, RSS known.
    fn base() -> Snapshot {
        let mut s: Snapshot = serde_json::from_str(EXAMPLE).unwrap();
        for e in &mut s.epochs {
            e.refcount = 0;
        }
        s.rss_bytes_current = 1_000_000;
        s.total_madvise_failures = 0;
        s.global.madvise_failures = 0;
        s.global.epoch_close_scanned_slabs = 0;
        s.global.epoch_close_recycled_slabs = 0;
        set_alloc(&mut s, 100_000, 3_500);
        s
    }

    /// Sets the total allocations (all in class 0) and slow-path hits (all cache misses).
    fn set_alloc(s: &mut Snapshot, allocations: u64, slow: u64) {
        for c in &mut s.classes {
            c.allocations = 0;
        }
        s.classes[0].allocations = allocations;
        s.total_slow_path_hits = slow;
        s.total_slow_cache_miss = slow;
        s.total_slow_epoch_closed = 0;
    }

    /// A snapshot of another process, a second later.
    fn other(s: &Snapshot) -> Snapshot {
        let mut o = s.clone();
        o.pid = s.pid + 1;
        o.timestamp_ns = s.timestamp_ns + 1_000_000_000;
        o
    }

    fn settings() -> Settings {
        Settings { threshold: 10.0, stuck_after: 60.0 }
    }

    fn whats(r: &Report) -> Vec<String> {
        r.regressions.iter().map(|r| r.what.clone()).collect()
    }

    fn rendered(b: &Snapshot, a: &Snapshot, s: &Settings) -> String {
        let report = compare(b, a, s).unwrap();
        let mut out = Vec::new();
        render(&mut out, &["b.json", "a.json"], b, a, s, &report).unwrap();
        String::from_utf8(out).unwrap()
    }

    /// Makes ring slot `slot` an epoch of `era` that ended (it is not current) and is held open by
    /// one domain; with no row of era + 1 in the ring, the time since it ended is taken as `age`.
    fn stick(s: &mut Snapshot, slot: usize, era: u64, label: Option<&str>, age: f64) {
        assert!(era != s.current_era && s.epochs.iter().all(|n| n.era != era + 1), "era {era} is not ended long ago");
        let e = &mut s.epochs[slot];
        e.state = Some(EpochState::Active);
        e.era = era;
        e.refcount = 1;
        e.age_sec = age;
        e.label = label.map(str::to_string);
    }

    #[test]
    fn args_are_consistent() {
        DiffArgs::augment_args(clap::Command::new("diff")).debug_assert();
    }

    #[test]
    fn identical_snapshots_have_no_regression() {
        let b = base();
        let r = compare(&b, &other(&b), &settings()).unwrap();
        assert!(r.regressions.is_empty(), "{:?}", r.regressions);
        assert_eq!(r.relation, Relation::TwoProcesses { pid_reused: false });
    }

    #[test]
    fn slow_path_rate_up_by_more_than_the_threshold() {
        let b = base();
        let mut a = other(&b);
        // 3.5% -> 3.85% is +10.0% exactly: not more than the threshold.
        set_alloc(&mut a, 100_000, 3_850);
        assert!(compare(&b, &a, &settings()).unwrap().regressions.is_empty());
        set_alloc(&mut a, 100_000, 3_851);
        let r = compare(&b, &a, &settings()).unwrap();
        assert_eq!(whats(&r), ["slow-path rate"]);
        assert!(r.regressions[0].numbers.contains("3.5% -> 3.9%"), "{:?}", r.regressions[0]);
        assert!(r.regressions[0].look_at.contains("cache misses"), "{:?}", r.regressions[0]);
        // A higher threshold accepts it.
        let lax = Settings { threshold: 20.0, ..settings() };
        assert!(compare(&b, &a, &lax).unwrap().regressions.is_empty());
        // Epoch changes as the cause are named as such.
        a.total_slow_cache_miss = 0;
        a.total_slow_epoch_closed = 3_851;
        let r = compare(&b, &a, &settings()).unwrap();
        assert!(r.regressions[0].look_at.contains("epoch changes"), "{:?}", r.regressions[0]);
    }

    #[test]
    fn slow_path_rate_rise_below_a_tenth_of_a_point_is_noise() {
        let mut b = base();
        set_alloc(&mut b, 1_000_000, 1_000);
        let mut a = other(&b);
        // 0.1% -> 0.15%: +50% relative but only 0.05 percentage point.
        set_alloc(&mut a, 1_000_000, 1_500);
        assert!(compare(&b, &a, &settings()).unwrap().regressions.is_empty());
        // 0.1% -> 0.21%: +0.11 point.
        set_alloc(&mut a, 1_000_000, 2_100);
        assert_eq!(whats(&compare(&b, &a, &settings()).unwrap()), ["slow-path rate"]);
    }

    #[test]
    fn slow_path_rate_of_one_process_is_the_intervals() {
        let b = base();
        let mut a = b.clone();
        a.timestamp_ns += 5_000_000_000;
        // Cumulative 3.5% -> 3.67% (+4.8%), but the interval's 100,000 allocations ran at 3.84%.
        set_alloc(&mut a, 200_000, 3_500 + 3_840);
        assert!(compare(&b, &a, &settings()).unwrap().regressions.is_empty());
        set_alloc(&mut a, 200_000, 3_500 + 3_900);
        let r = compare(&b, &a, &settings()).unwrap();
        assert_eq!(r.relation, Relation::SameProcess { interval_sec: 5.0 });
        assert_eq!(whats(&r), ["slow-path rate"]);
        assert!(r.regressions[0].numbers.contains("in the interval"), "{:?}", r.regressions[0]);
        // Too few allocations in the interval: not compared, and said so.
        set_alloc(&mut a, 100_000 + 9_999, 3_500 + 9_999);
        let r = compare(&b, &a, &settings()).unwrap();
        assert!(r.regressions.is_empty());
        assert!(r.notes.iter().any(|n| n.contains("9999 allocations in the interval")), "{:?}", r.notes);
    }

    #[test]
    fn zero_allocations_are_not_compared_and_print_no_nan() {
        let mut b = base();
        set_alloc(&mut b, 0, 0);
        b.rss_bytes_current = 0;
        b.estimated_slab_rss_bytes = 0;
        let mut a = other(&b);
        set_alloc(&mut a, 0, 0);
        let r = compare(&b, &a, &settings()).unwrap();
        assert!(r.regressions.is_empty());
        assert!(r.notes.iter().any(|n| n.contains("slow-path rate not compared: 0 allocations in BEFORE")));
        assert!(r.notes.iter().any(|n| n.starts_with("RSS not compared")));
        let text = rendered(&b, &a, &settings());
        assert!(!text.contains("NaN") && !text.contains("inf"), "{text}");
        assert!(text.contains("n/a"), "{text}");
        assert!(text.ends_with("result: no regression\n"), "{text}");
    }

    #[test]
    fn any_new_madvise_failure_is_a_regression() {
        let b = base();
        let mut a = other(&b);
        a.total_madvise_failures = 1;
        let r = compare(&b, &a, &settings()).unwrap();
        assert_eq!(whats(&r), ["madvise failures"]);
        assert_eq!(r.regressions[0].numbers, "0 -> 1");
        // As many as before (another process): not new.
        let mut b2 = b.clone();
        b2.total_madvise_failures = 1;
        assert!(compare(&b2, &a, &settings()).unwrap().regressions.is_empty());
        // Fewer than before (another process): an improvement, no underflow.
        b2.total_madvise_failures = 7;
        assert!(compare(&b2, &a, &settings()).unwrap().regressions.is_empty());
        // One process: a failure in the interval.
        let mut a1 = b2.clone();
        a1.timestamp_ns += 1;
        a1.total_madvise_failures = 8;
        let r = compare(&b2, &a1, &settings()).unwrap();
        assert_eq!(r.regressions[0].numbers, "7 -> 8, 1 new in the interval");
    }

    #[test]
    fn rss_growth_at_the_threshold_boundary() {
        let b = base();
        let mut a = other(&b);
        a.rss_bytes_current = 1_100_000;
        assert!(compare(&b, &a, &settings()).unwrap().regressions.is_empty(), "exactly +10% is not more than 10%");
        a.rss_bytes_current = 1_100_001;
        let r = compare(&b, &a, &settings()).unwrap();
        assert_eq!(whats(&r), ["RSS"]);
        assert!(r.regressions[0].numbers.contains("+10.0%, threshold 10%"), "{:?}", r.regressions[0]);
        // Shrinking is never a regression.
        a.rss_bytes_current = 1;
        assert!(compare(&b, &a, &settings()).unwrap().regressions.is_empty());
        // Threshold 0: any growth.
        a.rss_bytes_current = 1_000_001;
        let strict = Settings { threshold: 0.0, ..settings() };
        assert_eq!(whats(&compare(&b, &a, &strict).unwrap()), ["RSS"]);
    }

    #[test]
    fn rss_regression_says_whether_the_allocator_grew() {
        let b = base();
        let mut a = other(&b);
        a.rss_bytes_current = 2_000_000;
        a.global.resident_bytes = b.global.resident_bytes + 900_000;
        let r = compare(&b, &a, &settings()).unwrap();
        assert!(r.regressions[0].look_at.starts_with("the allocator's resident memory grew by 878.9 KiB"));
        a.global.resident_bytes = b.global.resident_bytes;
        let r = compare(&b, &a, &settings()).unwrap();
        assert!(r.regressions[0].look_at.contains("outside it"), "{:?}", r.regressions[0]);
    }

    #[test]
    fn new_stuck_epochs_of_one_process_match_by_slot_and_era() {
        let mut b = base();
        let s = settings();
        stick(&mut b, 3, 40, Some("old-leak"), 100.0);
        let mut a = b.clone();
        a.timestamp_ns += 1;
        a.epochs[3].age_sec = 101.0;
        assert!(compare(&b, &a, &s).unwrap().regressions.is_empty(), "already stuck before");
        // Same slot, new era: a new stuck epoch.
        stick(&mut a, 3, 56, Some("old-leak"), 70.0);
        a.current_era = 60;
        b.current_era = 41;
        let r = compare(&b, &a, &s).unwrap();
        assert_eq!(whats(&r), ["new stuck epoch 3 \"old-leak\", era 56"]);
        // Open in BEFORE but younger than --stuck-after, stuck in AFTER: new.
        let mut b2 = base();
        stick(&mut b2, 5, 29, None, 59.0);
        let mut a2 = b2.clone();
        a2.timestamp_ns += 2_000_000_000;
        a2.epochs[5].age_sec = 61.0;
        let r = compare(&b2, &a2, &s).unwrap();
        assert_eq!(whats(&r), ["new stuck epoch 5, era 29"]);
        assert!(r.regressions[0].look_at.contains("unlabelled"));
        // CLOSING or without guards: not stuck.
        a2.epochs[5].refcount = 0;
        assert!(compare(&b2, &a2, &s).unwrap().regressions.is_empty());
        a2.epochs[5].refcount = 1;
        a2.epochs[5].state = Some(EpochState::Closing);
        assert!(compare(&b2, &a2, &s).unwrap().regressions.is_empty());
    }

    #[test]
    fn new_stuck_epochs_of_two_processes_match_by_label() {
        let s = settings();
        let mut b = base();
        stick(&mut b, 1, 22, Some("worker"), 100.0);
        let mut a = other(&b);
        // The same leak, at another slot and era: not new.
        a.epochs[1].refcount = 0;
        stick(&mut a, 4, 25, Some("worker"), 90.0);
        assert!(compare(&b, &a, &s).unwrap().regressions.is_empty());
        // A second one with that label: the younger is new.
        stick(&mut a, 7, 39, Some("worker"), 65.0);
        assert_eq!(whats(&compare(&b, &a, &s).unwrap()), ["new stuck epoch 7 \"worker\", era 39"]);
    }

    #[test]
    fn reclamation_yield_drop() {
        let mut b = base();
        b.global.epoch_close_scanned_slabs = 1_000;
        b.global.epoch_close_recycled_slabs = 900;
        let mut a = other(&b);
        a.global.epoch_close_recycled_slabs = 810;
        assert!(compare(&b, &a, &settings()).unwrap().regressions.is_empty(), "exactly -10%");
        a.global.epoch_close_recycled_slabs = 809;
        assert_eq!(whats(&compare(&b, &a, &settings()).unwrap()), ["reclamation yield"]);
        a.global.epoch_close_scanned_slabs = 99;
        a.global.epoch_close_recycled_slabs = 0;
        let r = compare(&b, &a, &settings()).unwrap();
        assert!(r.regressions.is_empty());
        assert!(r.notes.iter().any(|n| n.contains("99 slabs scanned by epoch closes in AFTER")), "{:?}", r.notes);
    }

    #[test]
    fn swapped_snapshots_of_one_process_are_an_error() {
        let b = base();
        let mut a = b.clone();
        a.timestamp_ns += 3_000_000_000;
        set_alloc(&mut a, 200_000, 7_000);
        let e = compare(&a, &b, &settings()).unwrap_err().to_string();
        assert!(e.contains("3.0 s before BEFORE") && e.contains("swapped"), "{e}");
    }

    #[test]
    fn counters_going_back_in_one_pid_mean_two_processes() {
        let b = base();
        let mut a = b.clone();
        a.timestamp_ns += 1;
        set_alloc(&mut a, 50_000, 100);
        a.current_era = 0;
        a.global.segments = 0;
        let r = compare(&b, &a, &settings()).unwrap();
        assert_eq!(r.relation, Relation::TwoProcesses { pid_reused: true });
        assert!(r.notes[0].contains("pid was reused"), "{:?}", r.notes);
        // AFTER older but its counters higher: not a swap of one process either.
        let mut a = b.clone();
        a.timestamp_ns -= 1;
        set_alloc(&mut a, 500_000, 100);
        let r = compare(&b, &a, &settings()).unwrap();
        assert_eq!(r.relation, Relation::TwoProcesses { pid_reused: true });
        let text = rendered(&b, &a, &settings());
        assert!(!text.contains("NaN") && !text.contains("inf"), "{text}");
    }

    #[test]
    fn report_of_one_process() {
        let b = base();
        let mut a = b.clone();
        a.timestamp_ns += 1_500_000_000;
        set_alloc(&mut a, 150_000, 4_000);
        a.rss_bytes_current = 1_050_000;
        let text = rendered(&b, &a, &settings());
        let expected = "\
tslab diff: b.json (pid 16511, 2026-12-03T08:34:22.956Z) -> a.json (pid 16511, 2026-12-03T08:34:24.456Z): same process, 1.5 s apart
threshold 10%, stuck after 1m00s

                            before      after     change  change %
RSS                      976.6 KiB    1.0 MiB  +48.8 KiB     +5.0%
allocator resident         2.1 MiB    2.1 MiB        0 B      0.0%
allocator mapped          12.6 MiB   12.6 MiB        0 B      0.0%
slab resident              1.5 MiB    1.5 MiB        0 B      0.0%
live bytes in slabs      628.2 KiB  628.2 KiB        0 B      0.0%
live large objects       468.8 KiB  468.8 KiB        0 B      0.0%
slabs in use                   136        136          0      0.0%
fragmentation                58.9%      58.9%     0.0 pp      0.0%
allocations                 100000     150000     +50000    +50.0%
slow-path hits                3500       4000       +500    +14.3%
  cache miss (new slab)       3500       4000       +500    +14.3%
  epoch changed                  0          0          0      0.0%
slow-path rate                3.5%       2.7%    -0.8 pp    -23.8%
  in the interval             3.5%       1.0%    -2.5 pp    -71.4%
madvise calls                    0          0          0      0.0%
purged                         0 B        0 B        0 B      0.0%
madvise failures                 0          0          0      0.0%
epoch closes                    15         15          0      0.0%
reclamation yield              n/a        n/a        n/a       n/a
  in the interval              n/a        n/a        n/a       n/a
active epochs                    2          2          0      0.0%
closing epochs                  14         14          0      0.0%
stuck epochs (>= 1m00s)          0          0          0      0.0%
domain misuses                   0          0          0      0.0%

note: reclamation yield not compared: 0 slabs scanned by epoch closes in BEFORE (needs 100)
result: no regression
";
        assert_eq!(text, expected, "actual:\n{text}");
    }

    #[test]
    fn report_of_two_processes_with_regressions() {
        let b = base();
        let mut a = other(&b);
        a.rss_bytes_current = 1_200_000;
        a.total_madvise_failures = 2;
        stick(&mut a, 2, 37, Some("background-worker-3"), 61.0);
        let text = rendered(&b, &a, &settings());
        let tail: Vec<&str> = text.lines().skip_while(|l| !l.starts_with("note:")).collect();
        assert!(text.lines().next().unwrap().ends_with("): two processes"), "{text}");
        assert_eq!(
            tail,
            [
                "note: reclamation yield not compared: 0 slabs scanned by epoch closes in BEFORE (needs 100)",
                "REGRESSION: madvise failures (0 -> 2) - memory the allocator freed stays resident: check seccomp or \
                 container policies that block madvise(MADV_DONTNEED)",
                "REGRESSION: RSS (976.6 KiB -> 1.1 MiB, +20.0%, threshold 10%) - the allocator's resident memory grew \
                 by only 0 B: most of the growth is outside it (thread stacks, other mappings, the program itself)",
                "REGRESSION: new stuck epoch 2 \"background-worker-3\", era 37 (ended 1m01s ago, refcount 1, holding 1.7 \
                 KiB in 6 slabs) - domain(s) opened in it never ended: find where the domain labelled \"background-worker-3\" \
                 is created and make sure it is closed or dropped; tslab doctor",
                "result: 3 regressions",
            ],
            "{text}"
        );
    }

    #[test]
    fn formatting() {
        assert_eq!(utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(utc(951_782_400_123_000_000), "2000-02-29T00:00:00.123Z");
        assert_eq!(utc(1_795_436_498_749_717_832), "2026-11-23T12:21:38.749Z");
        assert_eq!(signed_1(-0.04), "0.0");
        assert_eq!(signed_1(2.25), "+2.3");
        assert_eq!(signed_pct(None), "n/a");
        assert_eq!(rel_change(0.0, 0.0), Some(0.0));
        assert_eq!(rel_change(0.0, 1.0), None);
        assert_eq!(signed_bytes(2048, 1024), "-1.0 KiB");
        assert_eq!(signed_count(u64::MAX, 0), format!("-{}", u64::MAX));
        assert_eq!(parse_threshold("15%"), Ok(15.0));
        assert!(parse_threshold("-1").is_err() && parse_threshold("NaN").is_err());
        assert!(parse_stuck_after("inf").is_err());
    }
}
