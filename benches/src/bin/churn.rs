//! Epoch-style churn, side by side: temporal-slab, glibc, glibc with trimming off, mimalloc and
//! jemalloc, each in its own child process (RSS is process-wide).
//!
//! ```text
//! churn all [--cycles N] [--objects N] [--quick] [--json]
//! churn one <allocator> <workload> [--cycles N] [--objects N] [--quick]
//!
//! allocator: temporal-slab | glibc | glibc-notrim | mimalloc | jemalloc
//! workload:  churn | lifetime-mixed
//! ```
//!
//! `churn all` re-executes itself as `churn one <allocator> <workload>` for every allocator and
//! workload (one child at a time), reads the one JSON line each child prints on stdout and prints
//! a markdown table (with `--json`, the raw lines first). `glibc-notrim` is the same
//! [`std::alloc::System`] allocator as `glibc`, run with
//! `GLIBC_TUNABLES=glibc.malloc.trim_threshold=4294967295` (so glibc never gives the top of its
//! heap back); `churn all` sets that variable for that child and removes `GLIBC_TUNABLES` for
//! every other child.
//!
//! Workloads (defaults: 1000 cycles of 100000 objects; `--quick`: 50 cycles of 20000 objects;
//! explicit `--cycles` / `--objects` win over `--quick`):
//!
//! * `churn`: each cycle allocates N objects of `OBJECT_SIZE` (96) bytes (align 8) through the
//!   allocator's [`GlobalAlloc`](std::alloc::GlobalAlloc), writes every byte of each, then frees
//!   them all in allocation order.
//! * `lifetime-mixed`: the same, but every 100th object of a cycle is kept alive for
//!   `KEEP_CYCLES` (50) cycles: it is freed at the start of the cycle 50 cycles later, so
//!   long-lived objects are interleaved with short-lived ones in allocation order. The code of
//!   both is [`benches::churn`].
//!
//! The pointer arrays (this cycle's objects, the ring of kept objects, the timing samples) are
//! allocated once, up front, from the process's global allocator (glibc), never from the
//! allocator under test.
//!
//! temporal-slab runs every cycle as one *phase* of the global epoch API (the closer analogue of
//! "a phase of a single-threaded program" than an [`temporal_slab::EpochDomain`], which models
//! concurrent, overlapping requests): `let e = epoch::current()` before the cycle; after the
//! frees, `epoch::advance()` (timed alone: "advance"), then `epoch::close(e)` (timed alone:
//! "close"; `e` is no longer current, so this close does not advance again). The peers make no
//! call there; their advance/close columns are "n/a".
//!
//! Measured per child:
//!
//! * wall time of all cycles;
//! * per-cycle time p50/p99 (the whole cycle: kept-object frees, allocations, writes, frees and,
//!   for temporal-slab, advance + close), over the cycles after the warm-up;
//! * temporal-slab advance and close latency p50/p99, same cycles;
//! * RSS (`/proc/self/statm` resident pages x page size) after the warm-up cycles (20, or
//!   `cycles / 2` when fewer than 40 cycles) and after the last cycle, the growth between them,
//!   and the peak RSS (`VmHWM` in `/proc/self/status`); in the JSON only, `rss_trace`: RSS after
//!   cycle 50 and every 100th cycle (read between cycles, outside the timed region);
//! * minor page faults during the cycles (`/proc/self/stat`);
//! * the clock overhead: p50 of an empty `Instant::now()` pair;
//! * temporal-slab only, from [`temporal_slab::snapshot`] before the first and after the last
//!   cycle: bytes purged (`global.madvise_bytes` delta) against bytes freed into slabs (per-class
//!   `frees` delta x object size), and the slabs pinned at the end (over the ring slots that are
//!   not ACTIVE: `live_slabs + stale_era_slabs`; also, separately, stale-era slabs sitting in
//!   ACTIVE slots, which the first figure does not count).
//!
//! Percentiles are nearest-rank. The background reclaimer of temporal-slab runs as configured by
//! the environment (`TSLAB_RECLAIM=0` turns it off); the JSON line says which.

use std::process::{Command, ExitCode, Stdio};

use benches::churn::{drive, growth_pct, pct, timer_overhead_p50, Sizes, OBJECT_SIZE};
use benches::{GLIBC, JEMALLOC, MIMALLOC, TEMPORAL_SLAB};
use serde_json::{json, Value};

/// Default and `--quick` sizes.
const DEFAULT_CYCLES: usize = 1000;
const DEFAULT_OBJECTS: usize = 100_000;
const QUICK_CYCLES: usize = 50;
const QUICK_OBJECTS: usize = 20_000;
/// Upper bounds on the arguments (so a typo cannot ask for terabytes of pointer arrays).
const MAX_CYCLES: usize = 10_000_000;
const MAX_OBJECTS: usize = 100_000_000;

/// Allocators, in report order.
const ALLOCATORS: [&str; 5] = ["temporal-slab", "glibc", "glibc-notrim", "mimalloc", "jemalloc"];
/// Workloads, in report order.
const WORKLOADS: [&str; 2] = ["churn", "lifetime-mixed"];
/// The tunable that makes `glibc-notrim`.
const NOTRIM_TUNABLES: &str = "glibc.malloc.trim_threshold=4294967295";

fn usage() -> ExitCode {
    eprintln!(
        "usage: churn all [--cycles N] [--objects N] [--quick] [--json]\n       \
         churn one <allocator> <workload> [--cycles N] [--objects N] [--quick]\n\
         allocator: {}\nworkload:  {}",
        ALLOCATORS.join(" | "),
        WORKLOADS.join(" | ")
    );
    ExitCode::from(2)
}

/// Parsed options.
struct Options {
    sizes: Sizes,
    json: bool,
}

/// Parses `--cycles N`, `--objects N`, `--quick` and (if `allow_json`) `--json`.
fn parse_options(args: &[String], allow_json: bool) -> Result<Options, String> {
    let (mut cycles, mut objects, mut quick, mut json) = (None, None, false, false);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => quick = true,
            "--json" if allow_json => json = true,
            "--cycles" | "--objects" => {
                let v = it.next().ok_or_else(|| format!("{a} needs a value"))?;
                let n: usize = v.parse().map_err(|_| format!("{a}: not a non-negative integer: {v:?}"))?;
                if a == "--cycles" {
                    if !(2..=MAX_CYCLES).contains(&n) {
                        return Err(format!("--cycles must be in 2..={MAX_CYCLES}, got {n}"));
                    }
                    cycles = Some(n);
                } else {
                    if !(1..=MAX_OBJECTS).contains(&n) {
                        return Err(format!("--objects must be in 1..={MAX_OBJECTS}, got {n}"));
                    }
                    objects = Some(n);
                }
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let (dc, dob) = if quick { (QUICK_CYCLES, QUICK_OBJECTS) } else { (DEFAULT_CYCLES, DEFAULT_OBJECTS) };
    Ok(Options { sizes: Sizes { cycles: cycles.unwrap_or(dc), objects: objects.unwrap_or(dob) }, json })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("all") => match parse_options(&args[2..], true) {
            Ok(o) => run_all(o),
            Err(e) => {
                eprintln!("churn: {e}");
                usage()
            }
        },
        Some("one") => {
            let (Some(alloc), Some(workload)) = (args.get(2), args.get(3)) else { return usage() };
            if !ALLOCATORS.contains(&alloc.as_str()) {
                eprintln!("churn: unknown allocator {alloc:?}");
                return usage();
            }
            if !WORKLOADS.contains(&workload.as_str()) {
                eprintln!("churn: unknown workload {workload:?}");
                return usage();
            }
            let o = match parse_options(&args[4..], false) {
                Ok(o) => o,
                Err(e) => {
                    eprintln!("churn: {e}");
                    return usage();
                }
            };
            run_one(alloc, workload, o.sizes)
        }
        _ => usage(),
    }
}

// ---------------------------------------------------------------------------------------------
// Child: one allocator, one workload.
// ---------------------------------------------------------------------------------------------

fn run_one(alloc: &str, workload: &str, sizes: Sizes) -> ExitCode {
    let tunables = std::env::var("GLIBC_TUNABLES").unwrap_or_default();
    if alloc == "glibc-notrim" && !tunables.contains(NOTRIM_TUNABLES) {
        eprintln!(
            "churn: glibc-notrim is glibc run with GLIBC_TUNABLES={NOTRIM_TUNABLES} (glibc reads it at \
             start-up); set it, or use `churn all`, which does"
        );
        return ExitCode::from(2);
    }
    if alloc != "glibc-notrim" && !tunables.is_empty() {
        eprintln!("churn: warning: GLIBC_TUNABLES={tunables:?} is set for {alloc}");
    }
    let lifetime_mixed = workload == "lifetime-mixed";
    let timer_p50_ns = timer_overhead_p50();
    let r = match alloc {
        "temporal-slab" => drive(&TEMPORAL_SLAB, true, lifetime_mixed, sizes),
        "glibc" | "glibc-notrim" => drive(&GLIBC, false, lifetime_mixed, sizes),
        "mimalloc" => drive(&MIMALLOC, false, lifetime_mixed, sizes),
        "jemalloc" => drive(&JEMALLOC, false, lifetime_mixed, sizes),
        _ => unreachable!("allocator names are checked in main"),
    };
    let r = match r {
        Ok(r) => r,
        Err(e) => {
            eprintln!("churn: {alloc} {workload}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut v = json!({
        "allocator": alloc,
        "workload": workload,
        "cycles": sizes.cycles,
        "objects": sizes.objects,
        "object_size": OBJECT_SIZE,
        "warmup_cycles": r.warmup,
        "wall_s": r.wall_ns as f64 / 1e9,
        "cycle_p50_ns": pct(&r.cycle_ns, 50),
        "cycle_p99_ns": pct(&r.cycle_ns, 99),
        "advance_p50_ns": r.advance_ns.as_deref().map(|s| pct(s, 50)),
        "advance_p99_ns": r.advance_ns.as_deref().map(|s| pct(s, 99)),
        "close_p50_ns": r.close_ns.as_deref().map(|s| pct(s, 50)),
        "close_p99_ns": r.close_ns.as_deref().map(|s| pct(s, 99)),
        "timer_p50_ns": timer_p50_ns,
        "rss_warm_bytes": r.rss_warm,
        "rss_end_bytes": r.rss_end,
        "rss_growth_pct": growth_pct(r.rss_warm, r.rss_end),
        "peak_rss_bytes": r.peak_rss,
        "minor_faults": r.minflt,
        "kept_live_bytes_end": r.kept_live * OBJECT_SIZE,
        "rss_trace": r.rss_trace,
        "glibc_tunables": tunables,
    });
    if let (Some(ts), Some(obj)) = (r.ts, v.as_object_mut()) {
        obj.insert("ts".into(), ts);
    }
    println!("{v}");
    ExitCode::SUCCESS
}

// ---------------------------------------------------------------------------------------------
// Parent: every allocator x workload, then the table.
// ---------------------------------------------------------------------------------------------

fn run_all(o: Options) -> ExitCode {
    let exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("churn: cannot find my own executable: {e}");
            return ExitCode::FAILURE;
        }
    };
    let Sizes { cycles, objects } = o.sizes;
    let mut rows: Vec<Result<Value, String>> = Vec::new();
    for workload in WORKLOADS {
        for alloc in ALLOCATORS {
            eprintln!("churn: {alloc} {workload} ({cycles} cycles x {objects} objects) ...");
            let mut cmd = Command::new(&exe);
            cmd.args(["one", alloc, workload, "--cycles", &cycles.to_string(), "--objects", &objects.to_string()]);
            if alloc == "glibc-notrim" {
                cmd.env("GLIBC_TUNABLES", NOTRIM_TUNABLES);
            } else {
                cmd.env_remove("GLIBC_TUNABLES");
            }
            cmd.stdin(Stdio::null()).stderr(Stdio::inherit());
            let row = match cmd.output() {
                Err(e) => Err(format!("{alloc} {workload}: cannot run child: {e}")),
                Ok(out) if !out.status.success() => Err(format!("{alloc} {workload}: child failed: {}", out.status)),
                Ok(out) => {
                    let text = String::from_utf8_lossy(&out.stdout);
                    let line = text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
                    serde_json::from_str::<Value>(line)
                        .map_err(|e| format!("{alloc} {workload}: bad JSON from child ({e}): {line:?}"))
                }
            };
            if let Err(e) = &row {
                eprintln!("churn: {e}");
            }
            rows.push(row);
        }
    }
    if o.json {
        for v in rows.iter().flatten() {
            println!("{v}");
        }
        println!();
    }
    print_table(&rows);
    if rows.iter().all(Result::is_ok) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `v[key]` as a number, if present.
fn num(v: &Value, key: &str) -> Option<f64> {
    v.get(key).and_then(Value::as_f64)
}

fn ns(x: Option<f64>) -> String {
    match x {
        None => "n/a".into(),
        Some(n) if n >= 1e6 => format!("{:.2} ms", n / 1e6),
        Some(n) if n >= 1e3 => format!("{:.1} µs", n / 1e3),
        Some(n) => format!("{n:.0} ns"),
    }
}

fn mib(x: Option<f64>) -> String {
    x.map_or("n/a".into(), |b| format!("{:.1} MiB", b / (1024.0 * 1024.0)))
}

fn print_table(rows: &[Result<Value, String>]) {
    println!(
        "| allocator | workload | wall | cycle p50 | cycle p99 | advance p50 / p99 | close p50 / p99 | \
         RSS after warm-up | RSS end | growth | peak RSS | minor faults | purged / freed | pinned slabs |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut timers = Vec::new();
    for r in rows {
        let v = match r {
            Ok(v) => v,
            Err(e) => {
                println!("| (failed) | {e} |||||||||||||");
                continue;
            }
        };
        if let Some(t) = num(v, "timer_p50_ns") {
            timers.push(t);
        }
        let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("?").to_string();
        let pair = |a: &str, b: &str| match (num(v, a), num(v, b)) {
            (None, None) => "n/a".to_string(),
            (x, y) => format!("{} / {}", ns(x), ns(y)),
        };
        let ts = v.get("ts");
        let purged = ts.map_or("n/a".to_string(), |t| {
            format!(
                "{} / {} ({:.2})",
                mib(num(t, "madvise_bytes")),
                mib(num(t, "slab_bytes_freed")),
                num(t, "purged_over_freed").unwrap_or(0.0)
            )
        });
        let pinned = ts.map_or("n/a".to_string(), |t| {
            format!(
                "{} (+{} stale in ACTIVE slots)",
                num(t, "pinned_slabs").unwrap_or(0.0),
                num(t, "stale_era_slabs_in_active_slots").unwrap_or(0.0)
            )
        });
        println!(
            "| {} | {} | {:.2} s | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            s("allocator"),
            s("workload"),
            num(v, "wall_s").unwrap_or(0.0),
            ns(num(v, "cycle_p50_ns")),
            ns(num(v, "cycle_p99_ns")),
            pair("advance_p50_ns", "advance_p99_ns"),
            pair("close_p50_ns", "close_p99_ns"),
            mib(num(v, "rss_warm_bytes")),
            mib(num(v, "rss_end_bytes")),
            num(v, "rss_growth_pct").map_or("n/a".into(), |g| format!("{g:+.1}%")),
            mib(num(v, "peak_rss_bytes")),
            num(v, "minor_faults").map_or("n/a".into(), |f| format!("{f:.0}")),
            purged,
            pinned,
        );
    }
    if let (Some(lo), Some(hi)) = (timers.iter().copied().reduce(f64::min), timers.iter().copied().reduce(f64::max)) {
        println!();
        println!("Timer overhead (p50 of an empty `Instant::now()` pair, per child): {lo:.0}..{hi:.0} ns.");
    }
    if let Some(Ok(v)) = rows.first() {
        println!(
            "{} cycles x {} objects of {} B; warm-up {} cycles (percentiles over the cycles after it).",
            num(v, "cycles").unwrap_or(0.0),
            num(v, "objects").unwrap_or(0.0),
            num(v, "object_size").unwrap_or(0.0),
            num(v, "warmup_cycles").unwrap_or(0.0),
        );
    }
}
