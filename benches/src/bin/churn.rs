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
//! * `churn`: each cycle allocates N objects of [`OBJECT_SIZE`] bytes (align 8) through the
//!   allocator's [`GlobalAlloc`], writes every byte of each, then frees them all in allocation
//!   order.
//! * `lifetime-mixed`: the same, but every 100th object of a cycle is kept alive for
//!   [`KEEP_CYCLES`] cycles: it is freed at the start of the cycle 50 cycles later, so long-lived
//!   objects are interleaved with short-lived ones in allocation order.
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

use std::alloc::{GlobalAlloc, Layout};
use std::hint::black_box;
use std::process::{Command, ExitCode, Stdio};
use std::ptr;
use std::time::Instant;

use benches::{GLIBC, JEMALLOC, MIMALLOC, TEMPORAL_SLAB};
use serde_json::{json, Value};
use temporal_slab::epoch::{self, EpochState};

/// Bytes per object.
const OBJECT_SIZE: usize = 96;
/// Cycles a kept object of `lifetime-mixed` stays alive.
const KEEP_CYCLES: usize = 50;
/// One object in this many is kept in `lifetime-mixed`.
const KEEP_EVERY: usize = 100;
/// Cycles before the "after warm-up" RSS reading (fewer when the run is short).
const WARM_UP: usize = 20;
/// RSS is also read (for the JSON `rss_trace`, outside the timed cycles) after cycle
/// [`KEEP_CYCLES`] and every this many cycles.
const TRACE_EVERY: usize = 100;

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

/// Run sizes.
#[derive(Clone, Copy)]
struct Sizes {
    cycles: usize,
    objects: usize,
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

/// What one child measured.
struct Run {
    warmup: usize,
    wall_ns: u64,
    /// Per-cycle samples after the warm-up.
    cycle_ns: Vec<u64>,
    advance_ns: Option<Vec<u64>>,
    close_ns: Option<Vec<u64>>,
    rss_warm: u64,
    rss_end: u64,
    peak_rss: u64,
    minflt: u64,
    /// Kept objects still alive at the end (`lifetime-mixed`).
    kept_live: usize,
    /// `(cycles done, RSS)` after cycle 50 and every 100th cycle.
    rss_trace: Vec<(usize, u64)>,
    /// temporal-slab figures.
    ts: Option<Value>,
}

/// Nanoseconds since `t`, saturating into u64.
fn ns_since(t: Instant) -> u64 {
    u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Allocates one object, aborting on null like `std` would.
///
/// # Safety
/// `layout.size()` must be non-zero.
#[inline(always)]
unsafe fn alloc_one<A: GlobalAlloc>(a: &A, layout: Layout) -> *mut u8 {
    // SAFETY: the caller guarantees a non-zero size.
    let p = unsafe { a.alloc(layout) };
    if p.is_null() {
        std::alloc::handle_alloc_error(layout);
    }
    p
}

/// Runs the workload on `a`. `epochs`: make the temporal-slab epoch calls (and read its
/// snapshot); `lifetime_mixed`: keep every 100th object for [`KEEP_CYCLES`] cycles.
fn drive<A: GlobalAlloc>(a: &A, epochs: bool, lifetime_mixed: bool, sizes: Sizes) -> Result<Run, String> {
    let Sizes { cycles, objects } = sizes;
    let layout = Layout::from_size_align(OBJECT_SIZE, 8).map_err(|e| e.to_string())?;
    let warmup = WARM_UP.min(cycles / 2);
    let kept_per_cycle = if lifetime_mixed { objects.div_ceil(KEEP_EVERY) } else { 0 };

    // Everything below is allocated once, up front, from the global allocator (glibc).
    let mut slots: Vec<*mut u8> = try_vec(objects)?;
    let mut kept: Vec<*mut u8> = try_vec(kept_per_cycle * KEEP_CYCLES)?;
    let measured = cycles - warmup;
    let mut cycle_ns: Vec<u64> = Vec::new();
    let mut advance_ns: Vec<u64> = Vec::new();
    let mut close_ns: Vec<u64> = Vec::new();
    for v in [&mut cycle_ns, &mut advance_ns, &mut close_ns] {
        v.try_reserve_exact(measured).map_err(|e| format!("timing samples: {e}"))?;
    }

    let mut rss_trace: Vec<(usize, u64)> = Vec::new();
    rss_trace.try_reserve_exact(cycles / TRACE_EVERY + 1).map_err(|e| format!("RSS trace: {e}"))?;

    let snap0 = epochs.then(temporal_slab::snapshot);
    let flt0 = minor_faults()?;
    let mut rss_warm = 0;
    let run_start = Instant::now();
    for c in 0..cycles {
        let t0 = Instant::now();
        let e = epochs.then(epoch::current);
        let ring = if lifetime_mixed {
            &mut kept[(c % KEEP_CYCLES) * kept_per_cycle..][..kept_per_cycle]
        } else {
            &mut [][..]
        };
        // Objects kept KEEP_CYCLES cycles ago die now.
        for p in ring.iter_mut() {
            if !p.is_null() {
                // SAFETY: a live object allocated from `a` with `layout`, freed once (then nulled).
                unsafe { a.dealloc(*p, layout) };
                *p = ptr::null_mut();
            }
        }
        let byte = c as u8;
        for slot in slots.iter_mut() {
            // SAFETY: OBJECT_SIZE is non-zero.
            let p = unsafe { alloc_one(a, black_box(layout)) };
            // SAFETY: `p` is a live block of OBJECT_SIZE bytes.
            unsafe { ptr::write_bytes(p, byte, OBJECT_SIZE) };
            *slot = p;
        }
        // The pointers (and so the written bytes) escape: the writes cannot be elided.
        black_box(&mut slots[..]);
        let mut k = 0;
        for (i, &p) in slots.iter().enumerate() {
            if lifetime_mixed && i % KEEP_EVERY == 0 {
                ring[k] = p;
                k += 1;
            } else {
                // SAFETY: `p` was allocated above from `a` with `layout` and is freed once.
                unsafe { a.dealloc(p, layout) };
            }
        }
        let (adv, cls) = match e {
            Some(e) => {
                let t = Instant::now();
                black_box(epoch::advance());
                let adv = ns_since(t);
                let t = Instant::now();
                epoch::close(e);
                (adv, ns_since(t))
            }
            None => (0, 0),
        };
        let dt = ns_since(t0);
        if c >= warmup {
            cycle_ns.push(dt);
            advance_ns.push(adv);
            close_ns.push(cls);
        }
        if c + 1 == warmup {
            rss_warm = rss_bytes()?;
        }
        if (c + 1) % TRACE_EVERY == 0 || c + 1 == KEEP_CYCLES {
            // Room was reserved up front; a full trace just stops growing.
            if rss_trace.len() < rss_trace.capacity() {
                rss_trace.push((c + 1, rss_bytes()?));
            }
        }
    }
    let wall_ns = ns_since(run_start);
    let rss_end = rss_bytes()?;
    let minflt = minor_faults()?.saturating_sub(flt0);
    let peak_rss = peak_rss_bytes()?;
    let kept_live = kept.iter().filter(|p| !p.is_null()).count();
    let ts = snap0.map(|s0| ts_figures(&s0, &temporal_slab::snapshot()));
    // Free what is still kept (after every reading).
    for p in kept.iter_mut().filter(|p| !p.is_null()) {
        // SAFETY: a live object allocated from `a` with `layout`, freed once.
        unsafe { a.dealloc(*p, layout) };
        *p = ptr::null_mut();
    }
    Ok(Run {
        warmup,
        wall_ns,
        cycle_ns,
        advance_ns: epochs.then_some(advance_ns),
        close_ns: epochs.then_some(close_ns),
        rss_warm,
        rss_end,
        peak_rss,
        minflt,
        kept_live,
        rss_trace,
        ts,
    })
}

/// A vector of `n` null pointers, or an error instead of an abort when it cannot be had.
fn try_vec(n: usize) -> Result<Vec<*mut u8>, String> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|e| format!("pointer array of {n}: {e}"))?;
    v.resize(n, ptr::null_mut());
    Ok(v)
}

/// temporal-slab figures from the snapshots before the first and after the last cycle.
fn ts_figures(s0: &temporal_slab::Snapshot, s1: &temporal_slab::Snapshot) -> Value {
    let purged = s1.global.madvise_bytes.saturating_sub(s0.global.madvise_bytes);
    let freed: u64 =
        s1.classes.iter().zip(&s0.classes).map(|(c1, c0)| c1.frees.saturating_sub(c0.frees) * c1.object_size).sum();
    let not_active = |st: &Option<EpochState>| *st != Some(EpochState::Active);
    let pinned: u64 = s1.epochs.iter().filter(|e| not_active(&e.state)).map(|e| e.live_slabs + e.stale_era_slabs).sum();
    let stale_in_active: u64 = s1.epochs.iter().filter(|e| !not_active(&e.state)).map(|e| e.stale_era_slabs).sum();
    json!({
        "madvise_bytes": purged,
        "madvise_calls": s1.global.madvise_calls.saturating_sub(s0.global.madvise_calls),
        "slab_bytes_freed": freed,
        "purged_over_freed": if freed == 0 { None } else { Some(purged as f64 / freed as f64) },
        "pinned_slabs": pinned,
        "stale_era_slabs_in_active_slots": stale_in_active,
        "slab_size": s1.slab_size,
        "resident_estimate_bytes": s1.global.resident_bytes,
        "small_live_bytes": s1.global.small_live_bytes,
        "segments": s1.global.segments,
        "ring_overflows": s1.global.ring_overflows,
        "reclaimer_ticks": s1.global.reclaimer_ticks,
        "reclaim_env": std::env::var("TSLAB_RECLAIM").ok(),
    })
}

/// p50 of an empty `Instant::now()` pair, over 100000 pairs (ns).
fn timer_overhead_p50() -> u64 {
    let mut v: Vec<u64> = (0..100_000)
        .map(|_| {
            let t0 = Instant::now();
            let t1 = Instant::now();
            u64::try_from(t1.duration_since(t0).as_nanos()).unwrap_or(u64::MAX)
        })
        .collect();
    v.sort_unstable();
    v[v.len() / 2]
}

/// Nearest-rank percentile `p` of `samples` (0 for none).
fn pct(samples: &[u64], p: usize) -> u64 {
    if samples.is_empty() {
        return 0;
    }
    let mut v = samples.to_vec();
    v.sort_unstable();
    let rank = (p * v.len()).div_ceil(100).max(1);
    v[rank - 1]
}

fn growth_pct(from: u64, to: u64) -> Option<f64> {
    (from > 0).then(|| (to as f64 - from as f64) / from as f64 * 100.0)
}

fn read_proc(path: &str) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("reading {path}: {e}"))
}

/// Resident set size: field 2 of `/proc/self/statm` times the page size.
fn rss_bytes() -> Result<u64, String> {
    let s = read_proc("/proc/self/statm")?;
    let pages: u64 = s
        .split_whitespace()
        .nth(1)
        .and_then(|f| f.parse().ok())
        .ok_or_else(|| format!("unexpected /proc/self/statm: {s:?}"))?;
    Ok(pages * page_size()?)
}

/// `VmHWM` of `/proc/self/status`, in bytes.
fn peak_rss_bytes() -> Result<u64, String> {
    let s = read_proc("/proc/self/status")?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .ok_or_else(|| "no VmHWM in /proc/self/status".to_string())
}

/// Minor page faults of this process so far (`/proc/self/stat` field 10).
fn minor_faults() -> Result<u64, String> {
    let s = read_proc("/proc/self/stat")?;
    // The command name (field 2) may hold spaces; fields after its closing parenthesis start at 3.
    s.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(10 - 3))
        .and_then(|f| f.parse().ok())
        .ok_or_else(|| format!("unexpected /proc/self/stat: {s:?}"))
}

/// The page size, from the `AT_PAGESZ` entry of `/proc/self/auxv` (native-endian word pairs).
fn page_size() -> Result<u64, String> {
    const AT_PAGESZ: u64 = 6;
    const W: usize = std::mem::size_of::<usize>();
    let auxv = std::fs::read("/proc/self/auxv").map_err(|e| format!("reading /proc/self/auxv: {e}"))?;
    let word = |c: &[u8]| {
        let mut b = [0u8; W];
        b.copy_from_slice(c);
        usize::from_ne_bytes(b) as u64
    };
    auxv.chunks_exact(2 * W)
        .map(|pair| (word(&pair[..W]), word(&pair[W..])))
        .find(|&(k, _)| k == AT_PAGESZ)
        .map(|(_, v)| v)
        .ok_or_else(|| "no AT_PAGESZ in /proc/self/auxv".to_string())
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
