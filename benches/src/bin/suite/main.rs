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

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use benches::clock::{self, Percentiles};
use benches::procfs;
use benches::selected::{self, Choice, SelectedAllocator};
use benches::workloads::{self, phase, Options, Scale, Workload, EPOCH_WORKLOADS, WORKLOADS};
use serde_json::{json, Value};

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

fn usage() -> ExitCode {
    eprintln!(
        "usage: suite all|quick [--out PATH] [--reps N] [--threads LIST] [--workloads LIST] [--allocators LIST] \
         [--no-latency]\n       \
         suite epochs [--out PATH] [--reps N] [--quick] [--threads LIST] [--workloads LIST] [--allocators LIST]\n       \
         suite one <allocator> <workload> [--threads N] [--reps N] [--quick] [--no-latency]\n       \
         suite stats-cost --without DIR [--rounds N] [--reps N] [--out PATH] [--no-callgrind]\n       \
         suite build-info\n\
         all: the main group; epochs: the epochs group (with and without the phase API, tcmalloc \
         included; default threads 1,2,4); quick: both, tiny sizes\n\
         allocator: {} | {TCMALLOC} | {TS_NOEPOCHS}\n\
         workload:  {}\n           \
         epochs group: {}",
        ALLOCATORS.join(" | "),
        WORKLOADS.iter().map(|w| w.name).collect::<Vec<_>>().join(" | "),
        EPOCH_WORKLOADS.iter().map(|w| w.name).collect::<Vec<_>>().join(" | ")
    );
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
        "stats-cost" => parse_cost(rest).map(|o| stats_cost(&o)),
        "build-info" => {
            println!("{}", json!({ "stats": cfg!(feature = "stats") }));
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

/// Options of `stats-cost`.
struct CostOptions {
    without: PathBuf,
    rounds: usize,
    reps: usize,
    out: PathBuf,
    callgrind: bool,
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

fn parse_cost(args: &[String]) -> Result<CostOptions, String> {
    let mut o = CostOptions {
        without: PathBuf::new(),
        rounds: 10,
        reps: 3,
        out: PathBuf::from("target/stats-cost.json"),
        callgrind: true,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--without" => o.without = PathBuf::from(value(a, &mut it)?),
            "--rounds" => o.rounds = number(a, value(a, &mut it)?, 1..=100)?,
            "--reps" => o.reps = number(a, value(a, &mut it)?, 1..=100)?,
            "--out" => o.out = PathBuf::from(value(a, &mut it)?),
            "--no-callgrind" => o.callgrind = false,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if o.without.as_os_str().is_empty() {
        return Err("stats-cost needs --without DIR (the release directory of a --no-default-features build)".into());
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
        print_tables(&rows, &meta);
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

// ---------------------------------------------------------------------------------------------
// Tables
// ---------------------------------------------------------------------------------------------

fn fmt_ns(x: Option<f64>) -> String {
    match x {
        None => "n/a".into(),
        Some(n) if n >= 1e9 => format!("{:.2} s", n / 1e9),
        Some(n) if n >= 1e6 => format!("{:.1} ms", n / 1e6),
        Some(n) if n >= 1e3 => format!("{:.1} µs", n / 1e3),
        Some(n) => format!("{n:.0} ns"),
    }
}

fn fmt_mib(x: Option<f64>) -> String {
    x.map_or("n/a".into(), |b| format!("{:.1}", b / (1024.0 * 1024.0)))
}

fn fmt_rate(x: Option<f64>) -> String {
    match x {
        None => "n/a".into(),
        Some(r) if r >= 1e6 => format!("{:.2} M", r / 1e6),
        Some(r) => format!("{:.1} k", r / 1e3),
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
        _ => "n/a".into(),
    }
}

/// The rows of one (workload, threads), by allocator.
type Group<'a> = ((String, u64), BTreeMap<String, &'a Value>);

/// Rows grouped by (workload, threads) in run order.
fn groups(rows: &[Value]) -> Vec<Group<'_>> {
    let mut out: Vec<Group<'_>> = Vec::new();
    for r in rows {
        let key = (r["workload"].as_str().unwrap_or("?").to_string(), r["threads"].as_u64().unwrap_or(0));
        let a = r["allocator"].as_str().unwrap_or("?").to_string();
        match out.iter_mut().find(|(k, _)| *k == key) {
            Some((_, m)) => {
                m.insert(a, r);
            }
            None => out.push((key, BTreeMap::from([(a, r)]))),
        }
    }
    out
}

fn print_tables(rows: &[Value], meta: &Value) {
    let peers = ["glibc", "glibc-notrim", "mimalloc", "jemalloc"];
    let gs = groups(rows);
    let get = |m: &BTreeMap<String, &Value>, a: &str, k: &str| m.get(a).and_then(|r| r[k].as_f64());
    let cores = meta["nproc"].as_u64().unwrap_or(0);
    println!(
        "\n### Time (median of {} run(s); ratio = temporal-slab / peer, below 1 favours temporal-slab; \
         this machine has {cores} CPUs, so 4 and 8 threads are oversubscribed)\n",
        meta["reps"]
    );
    println!(
        "| workload | threads | temporal-slab | glibc | glibc-notrim | mimalloc | jemalloc | ts / mimalloc | ts / glibc | \
         ts / jemalloc | ts / glibc-notrim |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for ((w, t), m) in &gs {
        for ts in ["temporal-slab", TS_NOEPOCHS] {
            if !m.contains_key(ts) {
                continue;
            }
            let label = if ts == TS_NOEPOCHS { format!("{w} (ts without epochs)") } else { w.clone() };
            let tsv = get(m, ts, "median_ns");
            let cells: Vec<String> = peers.iter().map(|p| fmt_ns(get(m, p, "median_ns"))).collect();
            let ratios: Vec<String> = ["mimalloc", "glibc", "jemalloc", "glibc-notrim"]
                .iter()
                .map(|p| ratio(tsv, get(m, p, "median_ns")))
                .collect();
            println!("| {label} | {t} | {} | {} | {} |", fmt_ns(tsv), cells.join(" | "), ratios.join(" | "));
        }
    }

    println!("\n### Throughput (operations per second at the median time)\n");
    println!("| workload | threads | operation | temporal-slab | glibc | glibc-notrim | mimalloc | jemalloc |");
    println!("|---|---:|---|---:|---:|---:|---:|---:|");
    for ((w, t), m) in &gs {
        for ts in ["temporal-slab", TS_NOEPOCHS] {
            if !m.contains_key(ts) {
                continue;
            }
            let label = if ts == TS_NOEPOCHS { format!("{w} (ts without epochs)") } else { w.clone() };
            let op = m.values().next().and_then(|r| r["op"].as_str()).unwrap_or("");
            let cells: Vec<String> =
                std::iter::once(ts).chain(peers).map(|a| fmt_rate(get(m, a, "ops_per_s"))).collect();
            println!("| {label} | {t} | {op} | {} |", cells.join(" | "));
        }
    }

    println!("\n### RSS, MiB: peak (VmHWM of the child) / right after the last repetition\n");
    println!("| workload | threads | temporal-slab | glibc | glibc-notrim | mimalloc | jemalloc | ts / glibc peak | ts / mimalloc peak |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for ((w, t), m) in &gs {
        for ts in ["temporal-slab", TS_NOEPOCHS] {
            if !m.contains_key(ts) {
                continue;
            }
            let label = if ts == TS_NOEPOCHS { format!("{w} (ts without epochs)") } else { w.clone() };
            let cells: Vec<String> = std::iter::once(ts)
                .chain(peers)
                .map(|a| format!("{} / {}", fmt_mib(get(m, a, "peak_rss_bytes")), fmt_mib(get(m, a, "rss_end_bytes"))))
                .collect();
            let peak = get(m, ts, "peak_rss_bytes");
            println!(
                "| {label} | {t} | {} | {} | {} |",
                cells.join(" | "),
                ratio(peak, get(m, "glibc", "peak_rss_bytes")),
                ratio(peak, get(m, "mimalloc", "peak_rss_bytes"))
            );
        }
    }

    let timers: Vec<f64> = rows.iter().filter_map(|r| r["timer"]["p50_ns"].as_f64()).collect();
    let timer99: Vec<f64> = rows.iter().filter_map(|r| r["timer"]["p99_ns"].as_f64()).collect();
    let span = |v: &[f64]| {
        let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = v.iter().copied().fold(0.0, f64::max);
        if v.is_empty() {
            "n/a".to_string()
        } else {
            format!("{lo:.0}-{hi:.0} ns")
        }
    };
    println!(
        "\n### Latency of single calls, ns (clock overhead included: empty timed region p50 {}, p99 {} over all children)\n",
        span(&timers),
        span(&timer99)
    );
    println!("| workload | threads | allocator | alloc p50 | p99 | p99.9 | p99.99 | free p50 | p99 | p99.9 | p99.99 |");
    println!("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let pcs = |v: &Value| -> String {
        if v.is_null() {
            return "n/a | n/a | n/a | n/a".into();
        }
        ["p50_ns", "p99_ns", "p999_ns", "p9999_ns"]
            .iter()
            .map(|k| fmt_ns(v[*k].as_f64()))
            .collect::<Vec<_>>()
            .join(" | ")
    };
    for ((w, t), m) in &gs {
        for a in std::iter::once("temporal-slab").chain(peers) {
            let Some(r) = m.get(a) else { continue };
            let l = &r["latency"];
            if l.is_null() || l["alloc"].is_null() {
                continue;
            }
            println!("| {w} | {t} | {a} | {} | {} |", pcs(&l["alloc"]), pcs(&l["free"]));
        }
    }
    let mut first = true;
    for ((w, t), m) in &gs {
        for a in ["temporal-slab", TS_NOEPOCHS].into_iter().chain(peers) {
            let Some(r) = m.get(a) else { continue };
            let l = &r["latency"]["op"];
            if l.is_null() {
                continue;
            }
            if first {
                println!("\n### Latency of whole operations (request-server: one request)\n");
                println!("| workload | threads | allocator | p50 | p99 | p99.9 | p99.99 |");
                println!("|---|---:|---|---:|---:|---:|---:|");
                first = false;
            }
            println!("| {w} | {t} | {a} | {} |", pcs(l));
        }
    }
    print_targets(&gs);
    println!(
        "\nMachine: {} CPUs ({}), kernel {}; {} UTC; commit {}; load {} -> {}; wall {:.0} s.",
        meta["nproc"],
        meta["cpu_model"].as_str().unwrap_or("?"),
        meta["kernel"].as_str().unwrap_or("?"),
        meta["date_utc"].as_str().unwrap_or("?").trim_end_matches(" UTC"),
        meta["git_commit"].as_str().unwrap_or("?"),
        meta["load_start"].as_str().unwrap_or("?"),
        meta["load_end"].as_str().unwrap_or("?"),
        meta["wall_s"].as_f64().unwrap_or(0.0),
    );
}

/// The issue's targets, checked against this run's medians (reported, never asserted).
fn print_targets(gs: &[Group<'_>]) {
    let find = |w: &str, t: u64| gs.iter().find(|((gw, gt), _)| gw == w && *gt == t).map(|(_, m)| m);
    let val = |w: &str, t: u64, a: &str, k: &str| find(w, t).and_then(|m| m.get(a)).and_then(|r| r[k].as_f64());
    let single = [("alloc-test", 1), ("larson", 1), ("xmalloc", 1)];
    let cross = [("larson", 2), ("larson", 4), ("larson", 8), ("xmalloc", 2), ("xmalloc", 4), ("xmalloc", 8)];
    // (target, workloads, numerator allocator, key, denominator allocator or None for an absolute
    // value, limit)
    type Check<'a> = (&'a str, &'a [(&'a str, u64)], &'a str, &'a str, Option<&'a str>, f64);
    let checks: [Check<'_>; 7] = [
        ("single-thread time <= 1.10 x mimalloc", &single, "temporal-slab", "median_ns", Some("mimalloc"), 1.10),
        ("single-thread time <= 1.00 x glibc", &single, "temporal-slab", "median_ns", Some("glibc"), 1.0),
        ("cross-thread time <= 1.25 x mimalloc", &cross, "temporal-slab", "median_ns", Some("mimalloc"), 1.25),
        ("cross-thread time <= 1.00 x jemalloc", &cross, "temporal-slab", "median_ns", Some("jemalloc"), 1.0),
        ("malloc-large time <= 1.5 x glibc", &[("malloc-large", 1)], "temporal-slab", "median_ns", Some("glibc"), 1.5),
        ("single-thread peak RSS <= 1.2 x glibc", &single, "temporal-slab", "peak_rss_bytes", Some("glibc"), 1.2),
        ("alloc p99 <= 100 ns (clock included)", &single, "temporal-slab", "alloc_p99", None, 100.0),
    ];
    println!("\n### Targets (from the issue; reported, not asserted)\n");
    println!("| target | run | value | met |");
    println!("|---|---|---:|---|");
    for (name, runs, a, key, den, limit) in checks {
        for &(w, t) in runs {
            let num = if key == "alloc_p99" {
                find(w, t).and_then(|m| m.get(a)).and_then(|r| r["latency"]["alloc"]["p99_ns"].as_f64())
            } else {
                val(w, t, a, key)
            };
            let v = match den {
                Some(d) => num.zip(val(w, t, d, key)).map(|(n, d)| n / d),
                None => num,
            };
            let shown = match (v, den) {
                (None, _) => "n/a".to_string(),
                (Some(x), Some(_)) => format!("{x:.2}"),
                (Some(x), None) => format!("{x:.0} ns"),
            };
            let met = v.map_or("n/a", |x| if x <= limit { "yes" } else { "no" });
            println!("| {name} | {w} x{t} | {shown} | {met} |");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// stats-cost: counters on (this build) against counters compiled out (another build).
// ---------------------------------------------------------------------------------------------

/// The workloads timed by `stats-cost`: (workload, threads).
const COST_TIMED: [(&str, usize); 5] =
    [("alloc-test", 1), ("larson", 1), ("larson", 2), ("xmalloc", 2), ("request-server", 1)];
/// Alloc+free pairs counted by callgrind in `pairs`.
const COST_PAIRS: u64 = 1_000_000;

fn stats_cost(o: &CostOptions) -> ExitCode {
    let Ok(exe) = std::env::current_exe() else {
        eprintln!("suite: cannot find my own executable");
        return ExitCode::FAILURE;
    };
    let here = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    let builds = [("counters on", here.clone()), ("counters off", o.without.clone())];
    for (name, dir) in &builds {
        match build_info(&dir.join("suite")) {
            Ok(stats) if stats == (*name == "counters on") => {}
            Ok(stats) => {
                eprintln!("suite: {}/suite reports stats={stats}; expected the {name} build", dir.display());
                return ExitCode::from(2);
            }
            Err(e) => {
                eprintln!("suite: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let mut meta = machine_meta();
    meta["load_start"] = json!(procfs::load_average());
    let started = Instant::now();

    // Instructions (deterministic: the same seeds and sizes; only the measured loop is counted).
    let mut instr = Vec::new();
    if o.callgrind {
        let one = |alloc: &str, w: &str| -> Vec<String> {
            ["suite", "one", alloc, w, "--threads", "1", "--reps", "1", "--no-latency"].map(String::from).to_vec()
        };
        let cases: [(&str, &str, Vec<String>); 5] = [
            ("alloc-test x1 (4 M steps)", "*alloc_test*steps*", one("temporal-slab", "alloc-test")),
            ("larson x1 (4 M replacements)", "*larson*replace*", one("temporal-slab", "larson")),
            ("xmalloc x1 (4 M objects)", "*xmalloc*produce*", one("temporal-slab", "xmalloc")),
            (
                "request-server x1 (40,000 requests, no domains)",
                "*request_server*handle*",
                one(TS_NOEPOCHS, "request-server"),
            ),
            (
                "pairs, 64 B (1 M alloc+free)",
                "*run_pairs*",
                vec!["pairs".into(), "temporal-slab".into(), "64".into(), COST_PAIRS.to_string()],
            ),
        ];
        for (label, toggle, argv) in &cases {
            let mut counts = Vec::new();
            for (_, dir) in &builds {
                counts.push(callgrind(&dir.join(&argv[0]), &argv[1..], toggle));
            }
            match (&counts[0], &counts[1]) {
                (Ok(on), Ok(off)) => {
                    eprintln!("suite: callgrind {label}: on {on} off {off}");
                    instr.push(json!({ "case": label, "on": on, "off": off }));
                }
                (a, b) => {
                    for e in [a, b].into_iter().filter_map(|r| r.as_ref().err()) {
                        eprintln!("suite: callgrind {label}: {e}");
                    }
                }
            }
        }
    }

    // Time: both builds interleaved, the order alternating every round.
    let reps = o.reps.to_string();
    let mut times: BTreeMap<(usize, usize), Vec<f64>> = BTreeMap::new();
    for round in 0..o.rounds {
        for (ci, (w, t)) in COST_TIMED.iter().enumerate() {
            for k in 0..2 {
                let bi = (k + round) % 2;
                let exe = builds[bi].1.join("suite");
                let allocator = if *w == "request-server" { TS_NOEPOCHS } else { "temporal-slab" };
                match run_child(&exe, allocator, w, *t, &["--reps", &reps, "--no-latency"]) {
                    Ok(v) => times.entry((ci, bi)).or_default().push(v["median_ns"].as_f64().unwrap_or(0.0)),
                    Err(e) => eprintln!("suite: {e}"),
                }
            }
        }
        eprintln!("suite: stats-cost round {}/{} done ({:.0} s)", round + 1, o.rounds, started.elapsed().as_secs_f64());
    }

    println!("\n### Cost of the hot-path counters (temporal-slab, counters on vs compiled out)\n");
    if !instr.is_empty() {
        println!("| instructions (callgrind, Ir) | counters on | counters off | on / off - 1 |");
        println!("|---|---:|---:|---:|");
        for i in &instr {
            let (on, off) = (i["on"].as_f64().unwrap_or(0.0), i["off"].as_f64().unwrap_or(1.0));
            println!(
                "| {} | {on:.0} | {off:.0} | {:+.2}% |",
                i["case"].as_str().unwrap_or(""),
                (on / off - 1.0) * 100.0
            );
        }
        println!();
    }
    println!(
        "| time ({} rounds, each the median of {} runs) | median on | median off | on / off - 1 | \
         median of per-round ratios - 1 | min on | min off | min / min - 1 |",
        o.rounds, o.reps
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    let mut timed = Vec::new();
    for (ci, (w, t)) in COST_TIMED.iter().enumerate() {
        let (on, off) =
            (times.get(&(ci, 0)).cloned().unwrap_or_default(), times.get(&(ci, 1)).cloned().unwrap_or_default());
        let per_round: Vec<f64> = on.iter().zip(&off).map(|(a, b)| a / b).collect();
        let (mon, moff, mr) = (median_f64(&on), median_f64(&off), median_f64(&per_round));
        let pct = |x: Option<f64>| x.map_or("n/a".into(), |r| format!("{:+.2}%", (r - 1.0) * 100.0));
        let min = |v: &[f64]| v.iter().copied().reduce(f64::min);
        let (lon, loff) = (min(&on), min(&off));
        println!(
            "| {w} x{t} | {} | {} | {} | {} | {} | {} | {} |",
            fmt_ns(mon),
            fmt_ns(moff),
            pct(mon.zip(moff).map(|(a, b)| a / b)),
            pct(mr),
            fmt_ns(lon),
            fmt_ns(loff),
            pct(lon.zip(loff).map(|(a, b)| a / b))
        );
        timed.push(json!({ "workload": w, "threads": t, "on_ns": on, "off_ns": off }));
    }
    meta["load_end"] = json!(procfs::load_average());
    meta["wall_s"] = json!(started.elapsed().as_secs_f64());
    println!(
        "\n{} CPUs ({}); {}; load {} -> {}; {:.0} s.",
        meta["nproc"],
        meta["cpu_model"].as_str().unwrap_or("?"),
        meta["date_utc"].as_str().unwrap_or("?"),
        meta["load_start"].as_str().unwrap_or("?"),
        meta["load_end"].as_str().unwrap_or("?"),
        meta["wall_s"].as_f64().unwrap_or(0.0)
    );
    let doc = json!({ "meta": meta, "instructions": instr, "time": timed });
    match serde_json::to_string_pretty(&doc) {
        Ok(s) => {
            if let Err(e) = std::fs::write(&o.out, s + "\n") {
                eprintln!("suite: writing {}: {e}", o.out.display());
                return ExitCode::FAILURE;
            }
            eprintln!("suite: results in {}", o.out.display());
        }
        Err(e) => eprintln!("suite: {e}"),
    }
    ExitCode::SUCCESS
}

/// Whether the `suite` binary at `exe` was built with temporal-slab's counters.
fn build_info(exe: &Path) -> Result<bool, String> {
    let out = Command::new(exe).arg("build-info").output().map_err(|e| format!("running {}: {e}", exe.display()))?;
    let v: Value = serde_json::from_slice(&out.stdout).map_err(|e| format!("{} build-info: {e}", exe.display()))?;
    v["stats"].as_bool().ok_or_else(|| format!("{} build-info: no \"stats\"", exe.display()))
}

/// Instructions counted by callgrind inside functions matching `toggle`, for `exe args`
/// (temporal-slab selected, its background reclaimer off so that nothing else runs).
fn callgrind(exe: &Path, args: &[String], toggle: &str) -> Result<u64, String> {
    let out = Command::new("valgrind")
        .args(["--tool=callgrind", "--callgrind-out-file=/dev/null"])
        .arg(format!("--toggle-collect={toggle}"))
        .arg(exe)
        .args(args)
        .env(selected::ENV, "temporal-slab")
        .env("TSLAB_RECLAIM", "0")
        .env_remove("GLIBC_TUNABLES")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running valgrind: {e}"))?;
    if !out.status.success() {
        return Err(format!("valgrind {}: {}", exe.display(), out.status));
    }
    let err = String::from_utf8_lossy(&out.stderr);
    err.lines()
        .find_map(|l| l.split_once("Collected :").map(|(_, n)| n.trim().replace(',', "")))
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("no \"Collected :\" line from valgrind for {}", exe.display()))
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
