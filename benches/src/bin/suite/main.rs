//! The side-by-side allocator suite: every workload of [`benches::workloads`] on temporal-slab,
//! glibc, glibc with trimming off, mimalloc and jemalloc (and, in the `epochs` group, tcmalloc),
//! each allocator as the process's global allocator in its own child process.
//!
//! ```text
//! suite all    [--out PATH] [--reps N] [--threads LIST] [--workloads LIST] [--allocators LIST] [--no-latency]
//! suite quick  [same options]       smoke test: both groups, tiny sizes, 1 repetition (< 60 s)
//! suite epochs [--out PATH] [--reps N] [--quick] [--threads LIST] [--workloads LIST] [--allocators LIST]
//! suite one <allocator> <workload> [--threads N] [--reps N] [--quick] [--no-latency]
//! suite stats-cost --without DIR [--rounds N] [--reps N] [--out PATH] [--no-callgrind]
//! suite build-info
//!
//! allocator: temporal-slab | glibc | glibc-notrim | mimalloc | jemalloc | tcmalloc
//!            | temporal-slab-noepochs (the workloads with phases only: no domains / epochs)
//! workload:  alloc-test | larson | xmalloc | cache-scratch | malloc-large | request-server
//!            | lifetime-mixed
//!            | epochs-mixed | epochs-big-phase | epochs-domains | epochs-domains-10k | domain-cycle
//! ```
//!
//! `all` runs the main group (the first seven workloads, without tcmalloc); `epochs` runs the
//! epochs group (the last five; see the `epochs` module): does telling temporal-slab about
//! phases make a program faster and smaller? Each of its workloads runs on temporal-slab with the
//! phase API, `temporal-slab-noepochs`, glibc, mimalloc, jemalloc and tcmalloc, at 1, 2 and 4
//! threads for the threaded ones (`domain-cycle`: temporal-slab with and without the domain
//! calls, at 1 and 2 threads); results go to `target/bench-epochs.json` by default. `quick` runs
//! both groups at quick sizes (the epochs group's results under `"epochs"` in the same file).
//!
//! `tcmalloc` is glibc's dispatch with `LD_PRELOAD` set to [`TCMALLOC_LIB`] (Debian's
//! `libtcmalloc-minimal4`), so that libc `malloc` is tcmalloc; the child checks that the library
//! is mapped. Where the library is missing, its rows are skipped with a note.
//!
//! `all` (and `quick`) re-executes this binary as `suite one <allocator> <workload> --threads T`
//! for every workload, thread count (1, 2, 4, 8 for the threaded workloads, 1 for the others)
//! and allocator, one child at a time, allocators innermost (so the rows compared with each other
//! run next to each other in time). The child's global allocator is
//! [`benches::selected::SelectedAllocator`], told which allocator to use by the environment
//! variable `BENCH_ALLOCATOR`; `glibc-notrim` is glibc with
//! `GLIBC_TUNABLES=glibc.malloc.trim_threshold=4294967295` (glibc never gives its heap top back);
//! every other child runs with `GLIBC_TUNABLES` removed. temporal-slab runs with its defaults
//! (background reclaimer on), and, in `request-server` and `lifetime-mixed`, with its phase API:
//! a domain per request, an epoch per cycle; `temporal-slab-noepochs` is the same allocator
//! without those calls.
//!
//! Each child: measures its clock's overhead (percentiles of an empty timed region), runs the
//! workload `--reps` times (default 3; `quick`: 1) and reports every time and their median, the
//! throughput at the median, the RSS before, the peak RSS (`VmHWM`) and the RSS right after the
//! last repetition, and the minor faults of the repetitions; then, for the workloads that have
//! one, a latency pass (the same workload once more, every alloc and free call timed on its own;
//! `request-server`: every request) whose percentiles p50, p99, p99.9, p99.99 and max include the
//! clock overhead. The latency pass runs after the RSS readings, so its sample buffers are not in
//! them. It prints one JSON line.
//!
//! The epochs group's workloads also take end readings while still holding their long-lived
//! data, in the last repetition: the RSS right after the timed steps, the RSS after 1.5 s idle
//! (quick: 50 ms) and the bytes the workload holds, counted from its own data structures (see
//! `benches::workloads::phase`).
//!
//! The parent prints markdown tables (times with the ratios of temporal-slab to each peer,
//! throughput, RSS, latencies) and writes every child's line, plus the machine, date, commit and
//! load, as JSON to `--out` (default `target/bench-results.json`; `quick`:
//! `target/bench-quick.json`). Nothing is asserted: this is never a pass/fail gate.
//!
//! `stats-cost` compares this build (temporal-slab's counters on) with the `suite` and `pairs`
//! binaries of a `--no-default-features` build in `--without DIR` (counters compiled out): the
//! instructions counted by callgrind in the measured loops of the single-thread workloads and of
//! 1M 64 B alloc+free pairs (`pairs`), and the times of a few workloads, both builds interleaved
//! over `--rounds` rounds (default 10).
//!
//! Exit status: 0 when every child ran, 1 when one failed (the others are still reported), 2 for
//! wrong arguments.

#![forbid(unsafe_code)]

mod epochs;
mod stats_cost;
mod tables;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use benches::clock::{self, Percentiles};
use benches::procfs;
use benches::selected::{self, Choice, SelectedAllocator};
use benches::workloads::{self, phase, Options, Scale, Workload, EPOCH_WORKLOADS, WORKLOADS};
use serde_json::{json, Value};
use tables::fmt_ns;

#[global_allocator]
static GLOBAL: SelectedAllocator = SelectedAllocator;

/// Allocators of a full run, in report order (`temporal-slab-noepochs` is added where it
/// applies).
const ALLOCATORS: [&str; 5] = ["temporal-slab", "glibc", "glibc-notrim", "mimalloc", "jemalloc"];
/// temporal-slab without its phase API, for the workloads that use it.
const TS_NOEPOCHS: &str = "temporal-slab-noepochs";
/// Workloads of the main group that use temporal-slab's phase API (and so get a
/// `temporal-slab-noepochs` row; every workload of the epochs group has one too).
const PHASED: [&str; 2] = ["request-server", "lifetime-mixed"];
/// tcmalloc: glibc's dispatch with this library preloaded (Debian's `libtcmalloc-minimal4`).
const TCMALLOC: &str = "tcmalloc";
/// The library `tcmalloc` children preload.
pub const TCMALLOC_LIB: &str = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4";
/// The tunable that makes `glibc-notrim`.
const NOTRIM_TUNABLES: &str = "glibc.malloc.trim_threshold=4294967295";
/// Thread counts of the threaded workloads.
const THREADS: [usize; 4] = [1, 2, 4, 8];
/// Samples of the empty timed region.
const OVERHEAD_SAMPLES: usize = 200_000;

/// The usage text (`suite --help` prints it on stdout; wrong arguments, on stderr).
fn usage_text() -> String {
    format!(
        "usage: suite all|quick [--out PATH] [--reps N] [--threads LIST] [--workloads LIST] [--allocators LIST] \
         [--no-latency]\n       \
         suite epochs [--out PATH] [--reps N] [--quick] [--threads LIST] [--workloads LIST] [--allocators LIST]\n       \
         suite one <allocator> <workload> [--threads N] [--reps N] [--quick] [--no-latency]\n       \
         suite stats-cost --without DIR [--rounds N] [--reps N] [--out PATH] [--no-callgrind]\n       \
         suite build-info\n\
         \n\
         all:    the main group (default threads 1,2,4,8; results in target/bench-results.json)\n\
         epochs: the epochs group, each workload with and without temporal-slab's phase API and on \
         glibc, mimalloc, jemalloc, tcmalloc\n        \
         (default threads 1,2,4; results in target/bench-epochs.json; --quick: quick sizes, 1 run)\n\
         quick:  both groups at quick sizes, 1 run (a smoke test; results in target/bench-quick.json)\n\
         \n\
         allocator: {} | {TCMALLOC} | {TS_NOEPOCHS}\n\
         workload:  {}\n           \
         epochs group: {}\n\
         \n\
         exit status: 0 every child ran, 1 a child failed (the others are still reported), 2 wrong arguments",
        ALLOCATORS.join(" | "),
        WORKLOADS.iter().map(|w| w.name).collect::<Vec<_>>().join(" | "),
        EPOCH_WORKLOADS.iter().map(|w| w.name).collect::<Vec<_>>().join(" | ")
    )
}

fn usage() -> ExitCode {
    eprintln!("{}", usage_text());
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first() else { return usage() };
    let rest = &args[1..];
    let result = match cmd.as_str() {
        "all" => parse_run(rest, Mode::All).map(run_all),
        "quick" => parse_run(rest, Mode::Quick).map(run_all),
        "epochs" => parse_run(rest, Mode::Epochs).map(epochs::run),
        "one" => parse_one(rest).map(|o| run_one(&o)),
        "stats-cost" => stats_cost::parse_cost(rest).map(|o| stats_cost::stats_cost(&o)),
        "build-info" => {
            println!("{}", json!({ "stats": cfg!(feature = "stats") }));
            Ok(ExitCode::SUCCESS)
        }
        "help" | "--help" | "-h" => {
            println!("{}", usage_text());
            Ok(ExitCode::SUCCESS)
        }
        _ => Err(format!("unknown command {cmd:?}")),
    };
    result.unwrap_or_else(|e| {
        eprintln!("suite: {e}");
        usage()
    })
}

// ---------------------------------------------------------------------------------------------
// Arguments
// ---------------------------------------------------------------------------------------------

/// Which command [`RunOptions`] are for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    All,
    Quick,
    Epochs,
}

/// Options of `all` / `quick` / `epochs`.
struct RunOptions {
    quick: bool,
    out: PathBuf,
    reps: usize,
    /// Thread counts of the main group's threaded workloads.
    threads: Vec<usize>,
    /// Thread counts of the epochs group's threaded workloads (`domain-cycle`: always 1 and 2).
    epoch_threads: Vec<usize>,
    workloads: Vec<Workload>,
    allocators: Vec<String>,
    latency: bool,
}

/// Options of `one`.
struct OneOptions {
    allocator: String,
    workload: Workload,
    threads: usize,
    reps: usize,
    quick: bool,
    latency: bool,
}

/// Pulls the value of option `name` from `it`.
fn value<'a>(name: &str, it: &mut impl Iterator<Item = &'a String>) -> Result<&'a String, String> {
    it.next().ok_or_else(|| format!("{name} needs a value"))
}

fn number(name: &str, v: &str, range: std::ops::RangeInclusive<usize>) -> Result<usize, String> {
    let n: usize = v.parse().map_err(|_| format!("{name}: not a non-negative integer: {v:?}"))?;
    if !range.contains(&n) {
        return Err(format!("{name} must be in {}..={}, got {n}", range.start(), range.end()));
    }
    Ok(n)
}

fn list(v: &str) -> Vec<String> {
    v.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect()
}

fn known_allocator(a: &str) -> bool {
    ALLOCATORS.contains(&a) || a == TS_NOEPOCHS || a == TCMALLOC
}

fn parse_run(args: &[String], mode: Mode) -> Result<RunOptions, String> {
    let quick = mode == Mode::Quick;
    let mut allocators: Vec<String> = ALLOCATORS.iter().map(|s| s.to_string()).collect();
    let mut workloads = WORKLOADS.to_vec();
    match mode {
        Mode::All => {}
        Mode::Quick => {
            allocators.push(TCMALLOC.into());
            workloads.extend(EPOCH_WORKLOADS);
        }
        Mode::Epochs => {
            allocators = epochs::ALLOCATORS.iter().map(|s| s.to_string()).collect();
            workloads = EPOCH_WORKLOADS.to_vec();
        }
    }
    let mut o = RunOptions {
        quick,
        out: PathBuf::from(match mode {
            Mode::All => "target/bench-results.json",
            Mode::Quick => "target/bench-quick.json",
            Mode::Epochs => "target/bench-epochs.json",
        }),
        reps: 0,
        threads: THREADS.to_vec(),
        epoch_threads: epochs::THREADS.to_vec(),
        workloads,
        allocators,
        latency: true,
    };
    let mut reps = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--out" => o.out = PathBuf::from(value(a, &mut it)?),
            "--reps" => reps = Some(number(a, value(a, &mut it)?, 1..=100)?),
            "--no-latency" if mode != Mode::Epochs => o.latency = false,
            "--quick" if mode == Mode::Epochs => o.quick = true,
            "--threads" => {
                o.threads = list(value(a, &mut it)?)
                    .iter()
                    .map(|t| number("--threads", t, 1..=256))
                    .collect::<Result<_, _>>()?;
                o.epoch_threads.clone_from(&o.threads);
            }
            "--workloads" => {
                o.workloads = list(value(a, &mut it)?)
                    .iter()
                    .map(|w| workloads::find(w).ok_or_else(|| format!("unknown workload {w:?}")))
                    .collect::<Result<_, _>>()?;
            }
            "--allocators" => {
                o.allocators = list(value(a, &mut it)?);
                if let Some(bad) = o.allocators.iter().find(|a| !known_allocator(a)) {
                    return Err(format!("unknown allocator {bad:?}"));
                }
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    o.reps = reps.unwrap_or(if o.quick { 1 } else { 3 });
    if o.threads.is_empty() || o.workloads.is_empty() || o.allocators.is_empty() {
        return Err("--threads, --workloads and --allocators need at least one entry".into());
    }
    if mode == Mode::All {
        if let Some(w) = o.workloads.iter().find(|w| workloads::in_epochs_group(w.name)) {
            return Err(format!("{} is in the epochs group: run it with `suite epochs`", w.name));
        }
    }
    Ok(o)
}

fn parse_one(args: &[String]) -> Result<OneOptions, String> {
    let (Some(allocator), Some(workload)) = (args.first(), args.get(1)) else {
        return Err("one needs <allocator> <workload>".into());
    };
    if !known_allocator(allocator) {
        return Err(format!("unknown allocator {allocator:?}"));
    }
    let workload = workloads::find(workload).ok_or_else(|| format!("unknown workload {workload:?}"))?;
    let mut o = OneOptions { allocator: allocator.clone(), workload, threads: 1, reps: 3, quick: false, latency: true };
    let mut it = args[2..].iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--threads" => o.threads = number(a, value(a, &mut it)?, 1..=256)?,
            "--reps" => o.reps = number(a, value(a, &mut it)?, 1..=100)?,
            "--quick" => o.quick = true,
            "--no-latency" => o.latency = false,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(o)
}

// ---------------------------------------------------------------------------------------------
// Child: one allocator, one workload, one thread count.
// ---------------------------------------------------------------------------------------------

/// The allocator [`SelectedAllocator`] must be using for `name`.
fn choice_for(name: &str) -> Choice {
    match name {
        "temporal-slab" | TS_NOEPOCHS => Choice::TemporalSlab,
        "mimalloc" => Choice::Mimalloc,
        "jemalloc" => Choice::Jemalloc,
        _ => Choice::Glibc,
    }
}

fn run_one(o: &OneOptions) -> ExitCode {
    match measure(o) {
        Ok(v) => {
            println!("{v}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("suite: {} {} x{}: {e}", o.allocator, o.workload.name, o.threads);
            ExitCode::FAILURE
        }
    }
}

fn measure(o: &OneOptions) -> Result<Value, String> {
    let want = choice_for(&o.allocator);
    let got = selected::choice();
    if got != want {
        return Err(format!(
            "this process allocates with {} but {} was asked for: run it with {}={} (`suite all` does)",
            got.name(),
            o.allocator,
            selected::ENV,
            want.name()
        ));
    }
    let tunables = std::env::var("GLIBC_TUNABLES").unwrap_or_default();
    if o.allocator == "glibc-notrim" && !tunables.contains(NOTRIM_TUNABLES) {
        return Err(format!("glibc-notrim needs GLIBC_TUNABLES={NOTRIM_TUNABLES} (read by glibc at start-up)"));
    }
    if o.allocator == TCMALLOC {
        let maps = procfs::read_proc("/proc/self/maps")?;
        if !maps.contains("libtcmalloc") {
            return Err(format!("tcmalloc is not mapped in this process: run it with LD_PRELOAD={TCMALLOC_LIB}"));
        }
    }
    let group = workloads::in_epochs_group(o.workload.name);
    if o.workload.name == "domain-cycle" && want != Choice::TemporalSlab {
        return Err(
            "domain-cycle measures temporal-slab's domain calls: temporal-slab or temporal-slab-noepochs".into()
        );
    }
    let epochs = o.allocator == "temporal-slab" && (PHASED.contains(&o.workload.name) || group);
    let threads = if o.workload.threaded { o.threads } else { 1 };
    let scale = if o.quick { Scale::Quick } else { Scale::Full };
    let idle = if o.quick { phase::QUICK_IDLE } else { phase::IDLE };

    let tpn = clock::ticks_per_ns();
    let mut overhead = clock::overhead_samples(OVERHEAD_SAMPLES);
    let timer = Percentiles::of_ticks(&mut overhead, tpn).map(|p| {
        let mut v = p.to_json();
        // The smallest gap between two distinct region lengths (sorted above): the clock's step.
        let step = overhead.windows(2).map(|w| w[1] - w[0]).filter(|&d| d > 0).min().unwrap_or(0);
        v["resolution_ns"] = json!(f64::from(step) / tpn);
        v
    });
    drop(overhead);

    let rss_start = procfs::rss_bytes()?;
    let faults0 = procfs::minor_faults()?;
    let mut times = Vec::with_capacity(o.reps);
    let mut ops = 0;
    let mut extra = None;
    let mut end = None;
    let opts = Options { threads, scale, latency: false, epochs, idle: None };
    for rep in 0..o.reps {
        // The epochs group's end readings (with their idle time) in the last repetition only.
        let last = rep + 1 == o.reps && group;
        let out = workloads::run(o.workload.name, &Options { idle: last.then_some(idle), ..opts })?;
        times.push(out.elapsed_ns);
        ops = out.ops;
        extra = out.extra;
        end = out.end;
    }
    let peak = procfs::peak_rss_bytes()?;
    let rss_end = procfs::rss_bytes()?;
    let faults = procfs::minor_faults()?.saturating_sub(faults0);
    let ts = (want == Choice::TemporalSlab).then(ts_figures);

    let mut latency = json!(null);
    if o.latency && (o.workload.call_latency || o.workload.name == "request-server") {
        let mut out = workloads::run(o.workload.name, &Options { latency: true, ..opts })?;
        let p = |s: &mut Vec<u32>| Percentiles::of_ticks(s, tpn).map(|p| p.to_json());
        latency = json!({
            "alloc": p(&mut out.alloc_ticks),
            "free": p(&mut out.free_ticks),
            "op": p(&mut out.op_ticks),
        });
    }

    let median = median_u64(&times);
    Ok(json!({
        "allocator": o.allocator,
        "workload": o.workload.name,
        "threads": threads,
        "scale": if o.quick { "quick" } else { "full" },
        "epochs": epochs,
        "reps": o.reps,
        "times_ns": times,
        "median_ns": median,
        "ops": ops,
        "op": o.workload.op,
        "ops_per_s": if median == 0 { 0.0 } else { ops as f64 * 1e9 / median as f64 },
        "rss_start_bytes": rss_start,
        "peak_rss_bytes": peak,
        "rss_end_bytes": rss_end,
        "minor_faults": faults,
        "timer": timer,
        "ticks_per_ns": tpn,
        "latency": latency,
        "extra": extra,
        "end": end.map(|e| e.to_json()),
        "ts": ts,
        "glibc_tunables": tunables,
        "stats_counters": cfg!(feature = "stats"),
    }))
}

/// temporal-slab's own view after the repetitions (counters: totals over all of them).
fn ts_figures() -> Value {
    let s = temporal_slab::snapshot();
    json!({
        "madvise_calls": s.global.madvise_calls,
        "total_madvise_calls": s.total_madvise_calls,
        "madvise_bytes": s.global.madvise_bytes,
        "segments": s.global.segments,
        "resident_estimate_bytes": s.global.resident_bytes,
        "epoch_close_calls": s.global.epoch_close_calls,
        "ring_overflows": s.global.ring_overflows,
        "domain_misuse_out_of_order": s.global.domain_misuse_out_of_order,
        "domain_misuse_wrong_thread": s.global.domain_misuse_wrong_thread,
        "domain_misuse_passed_era": s.global.domain_misuse_passed_era,
        "domain_misuse_too_deep": s.global.domain_misuse_too_deep,
        "slow_path_hits": s.total_slow_path_hits,
        "large_cache_hits": s.global.large_cache_hits,
    })
}

fn median_u64(v: &[u64]) -> u64 {
    let mut s = v.to_vec();
    s.sort_unstable();
    s.get(s.len().saturating_sub(1) / 2).copied().unwrap_or(0)
}

fn median_f64(v: &[f64]) -> Option<f64> {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s.get(s.len().saturating_sub(1) / 2).copied()
}

// ---------------------------------------------------------------------------------------------
// Parent: the whole table.
// ---------------------------------------------------------------------------------------------

/// Runs `exe one allocator workload ...` and parses its JSON line.
fn run_child(exe: &Path, allocator: &str, workload: &str, threads: usize, extra: &[&str]) -> Result<Value, String> {
    let mut cmd = Command::new(exe);
    cmd.args(["one", allocator, workload, "--threads", &threads.to_string()]).args(extra);
    cmd.env(selected::ENV, choice_for(allocator).name());
    if allocator == "glibc-notrim" {
        cmd.env("GLIBC_TUNABLES", NOTRIM_TUNABLES);
    } else {
        cmd.env_remove("GLIBC_TUNABLES");
    }
    if allocator == TCMALLOC {
        cmd.env("LD_PRELOAD", TCMALLOC_LIB);
    } else {
        cmd.env_remove("LD_PRELOAD");
    }
    cmd.stdin(Stdio::null()).stderr(Stdio::inherit());
    let what = format!("{allocator} {workload} x{threads}");
    let out = cmd.output().map_err(|e| format!("{what}: cannot run {}: {e}", exe.display()))?;
    if !out.status.success() {
        return Err(format!("{what}: child failed: {}", out.status));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
    serde_json::from_str(line).map_err(|e| format!("{what}: bad JSON from child ({e}): {line:?}"))
}

/// The thread counts `w` runs at.
fn threads_of(w: &Workload, threads: &[usize]) -> Vec<usize> {
    if w.threaded {
        threads.to_vec()
    } else {
        vec![1]
    }
}

/// The allocators `w` (of the main group) runs on.
fn allocators_of(w: &Workload, allocators: &[String]) -> Vec<String> {
    let mut v: Vec<String> =
        allocators.iter().filter(|a| a.as_str() != TS_NOEPOCHS && a.as_str() != TCMALLOC).cloned().collect();
    let phased = PHASED.contains(&w.name);
    if phased && (allocators.iter().any(|a| a == "temporal-slab") || allocators.iter().any(|a| a == TS_NOEPOCHS)) {
        let at = v.iter().position(|a| a == "temporal-slab").map_or(0, |i| i + 1);
        v.insert(at, TS_NOEPOCHS.to_string());
    }
    v
}

/// One child to run: workload, thread count, allocator.
type Planned = (Workload, usize, String);

/// The arguments every child of a run gets after `one <allocator> <workload> --threads T`.
fn child_args(o: &RunOptions) -> Vec<String> {
    let mut extra = vec!["--reps".to_string(), o.reps.to_string()];
    if o.quick {
        extra.push("--quick".into());
    }
    if !o.latency {
        extra.push("--no-latency".into());
    }
    extra
}

/// Runs every planned child, one at a time, in order; returns their rows and the failures.
fn run_plan(exe: &Path, plan: &[Planned], extra: &[String]) -> (Vec<Value>, Vec<String>) {
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for (w, t, a) in plan {
        let t0 = Instant::now();
        match run_child(exe, a, w.name, *t, &extra) {
            Ok(v) => {
                eprintln!(
                    "suite: {:<18} x{t} {:<22} median {:>10}  ({:.1} s)",
                    w.name,
                    a,
                    fmt_ns(v["median_ns"].as_f64()),
                    t0.elapsed().as_secs_f64()
                );
                rows.push(v);
            }
            Err(e) => {
                eprintln!("suite: {e}");
                failures.push(e);
            }
        }
    }
    (rows, failures)
}

/// This binary, which the runners re-execute as `suite one ...`.
fn own_exe() -> Result<PathBuf, String> {
    std::env::current_exe().map_err(|e| format!("cannot find my own executable: {e}"))
}

/// The facts of a run's start, printed and put in the results file.
fn start_meta(mode: &str, reps: usize) -> Value {
    let mut meta = machine_meta();
    meta["mode"] = json!(mode);
    meta["reps"] = json!(reps);
    meta["load_start"] = json!(procfs::load_average());
    eprintln!(
        "suite: {} on {} ({} CPUs), load {}; commit {}",
        meta["mode"].as_str().unwrap_or(""),
        meta["cpu_model"].as_str().unwrap_or("?"),
        meta["nproc"],
        meta["load_start"].as_str().unwrap_or("?"),
        meta["git_commit"].as_str().unwrap_or("?"),
    );
    meta
}

/// Writes `doc` as pretty JSON to `out` (creating its directory).
fn write_results(out: &Path, doc: &Value) -> Result<(), String> {
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    let s = serde_json::to_string_pretty(doc).map_err(|e| e.to_string())?;
    std::fs::write(out, s + "\n").map_err(|e| format!("writing {}: {e}", out.display()))
}

fn run_all(o: RunOptions) -> ExitCode {
    let exe = match own_exe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("suite: {e}");
            return ExitCode::FAILURE;
        }
    };
    let started = Instant::now();
    let mut meta = start_meta(if o.quick { "quick" } else { "all" }, o.reps);
    let mut plan: Vec<Planned> = Vec::new();
    for w in o.workloads.iter().filter(|w| !workloads::in_epochs_group(w.name)) {
        for t in threads_of(w, &o.threads) {
            for a in allocators_of(w, &o.allocators) {
                plan.push((*w, t, a));
            }
        }
    }
    let (rows, mut failures) = run_plan(&exe, &plan, &child_args(&o));
    // `quick` smoke-tests the epochs group too.
    let group = o.quick.then(|| epochs::run_group(&exe, &o));
    meta["load_end"] = json!(procfs::load_average());
    meta["wall_s"] = json!(started.elapsed().as_secs_f64());
    if !rows.is_empty() {
        tables::print_tables(&rows, &meta);
    }
    let mut doc = json!({ "meta": meta, "rows": rows, "failures": failures });
    if let Some(g) = &group {
        epochs::print_tables(g, &meta);
        failures.extend(g.failures.iter().cloned());
        doc["epochs"] = g.to_json();
    }
    match write_results(&o.out, &doc) {
        Ok(()) => eprintln!("suite: results in {} ({:.0} s)", o.out.display(), started.elapsed().as_secs_f64()),
        Err(e) => {
            eprintln!("suite: {e}");
            return ExitCode::FAILURE;
        }
    }
    if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Machine, date and source facts for the results file.
fn machine_meta() -> Value {
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(env!("CARGO_MANIFEST_DIR"))
            .args(args)
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim_end().to_string())
    };
    let dirty: Option<Vec<String>> = git(&["status", "--short"]).map(|s| s.lines().map(str::to_string).collect());
    json!({
        "date_utc": utc_now(),
        "nproc": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "cpu_model": procfs::cpu_model(),
        "kernel": procfs::kernel_release(),
        "git_commit": git(&["rev-parse", "--short", "HEAD"]),
        "git_status_short": dirty,
        "stats_counters": cfg!(feature = "stats"),
        "tslab_env": std::env::vars().filter(|(k, _)| k.starts_with("TSLAB_")).collect::<BTreeMap<_, _>>(),
    })
}

/// Now, as `YYYY-MM-DD HH:MM:SS UTC`.
fn utc_now() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Civil date from days since 1970-01-01, in 400-year eras of 146,097 days starting on March 1.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC", rem / 3600, rem / 60 % 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn each_mode_has_its_defaults() {
        let all = parse_run(&[], Mode::All).unwrap();
        assert!(all.workloads.iter().all(|w| !workloads::in_epochs_group(w.name)));
        assert!(!all.allocators.iter().any(|a| a == TCMALLOC));
        let quick = parse_run(&[], Mode::Quick).unwrap();
        assert_eq!((quick.reps, quick.quick), (1, true));
        assert_eq!(quick.workloads.len(), WORKLOADS.len() + EPOCH_WORKLOADS.len());
        assert!(quick.allocators.iter().any(|a| a == TCMALLOC));
        let e = parse_run(&[], Mode::Epochs).unwrap();
        assert_eq!((e.reps, e.quick, e.out.to_str()), (3, false, Some("target/bench-epochs.json")));
        assert_eq!(e.epoch_threads, epochs::THREADS);
        assert_eq!(e.workloads.len(), EPOCH_WORKLOADS.len());
    }

    #[test]
    fn options_of_the_epochs_command() {
        // --quick does not override an explicit --reps, in either order.
        for a in ["--reps 2 --quick", "--quick --reps 2"] {
            let o = parse_run(&args(a), Mode::Epochs).unwrap();
            assert_eq!((o.reps, o.quick), (2, true));
        }
        assert_eq!(parse_run(&args("--quick"), Mode::Epochs).unwrap().reps, 1);
        assert_eq!(parse_run(&args("--threads 1,3"), Mode::Epochs).unwrap().epoch_threads, [1, 3]);
        assert!(parse_run(&args("--quick"), Mode::All).is_err());
        assert!(parse_run(&args("--no-latency"), Mode::Epochs).is_err());
        assert!(parse_run(&args("--workloads epochs-mixed"), Mode::All).is_err());
        assert!(parse_run(&args("--allocators tcmalloc,glibc"), Mode::Epochs).is_ok());
        assert!(parse_run(&args("--allocators tcmalloc2"), Mode::Epochs).is_err());
    }

    #[test]
    fn tcmalloc_is_glibc_dispatch_and_stays_out_of_the_main_group() {
        assert_eq!(choice_for(TCMALLOC), Choice::Glibc);
        let w = workloads::find("request-server").unwrap();
        let v = allocators_of(&w, &["temporal-slab".into(), TCMALLOC.into(), "glibc".into()]);
        assert_eq!(v, ["temporal-slab", TS_NOEPOCHS, "glibc"]);
    }
}
