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

use crate::input;

mod compare;
mod render;
#[cfg(test)]
mod tests;

use compare::{compare, Settings};
use render::render;

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
