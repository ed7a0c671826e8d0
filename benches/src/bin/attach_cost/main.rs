//! What attaching to a running process costs: `stats_dump --pid` time against a big target, and
//! the slowdown of a target that is sampled at 10 Hz. temporal-slab is this program's global
//! allocator (unlike the other benchmarks, which call allocators as instances), so the target
//! publishes its counters exactly as a real program does.
//!
//! ```text
//! attach_cost target   [--objects N] [--epochs E] [--seconds S]
//! attach_cost snapshot [--objects N] [--epochs E] [--inproc-runs N] [--cli-runs N] [--stats-dump PATH]
//! attach_cost overhead [--pairs N] [--working-set N] [--runs N] [--stats-dump PATH]
//! attach_cost work     [--pairs N] [--working-set N]
//! ```
//!
//! * `target` (defaults: 1,000,000 objects, 16 epochs): allocates `N` live objects of
//!   pseudo-random sizes 16..=512 B (one byte of each written), `N / E` of them in each of `E - 1`
//!   labelled [`EpochDomain`]s (never closed) and the rest in the current epoch, so `E` ring slots
//!   are ACTIVE and hold memory. Then, in this process: 50 back-to-back
//!   [`temporal_slab::snapshot`] calls (the publisher's gather plus building the `Vec`s of a
//!   [`Snapshot`]; an upper bound of the gather only while the slab metadata is in the cache),
//!   20 such calls 100 ms apart (cache cold, as the publisher gathers), and the reclaimer
//!   thread's CPU time per tick over 3 s (`/proc/self/task/TID/schedstat` delta /
//!   `reclaimer_ticks` delta: the whole tick, i.e. gather + region write + decay + the wake-up),
//!   next to the CPU time per wake-up of a thread that only sleeps 100 ms at a time, measured
//!   over the same window (what the kernel charges for the wake-up alone).
//!   It prints one line `ready pid=PID key=value...` once [`snapshot_of`] of its own pid returns
//!   a published snapshot holding all `N` objects, then waits until its stdin is closed (or for
//!   `--seconds`).
//! * `snapshot`: runs `target` as a child and measures, against it:
//!   (a) [`snapshot_of`] in this process (`--inproc-runs`, default 50), and the serialisation of
//!   that snapshot to pretty JSON (into a sink);
//!   (b) the wall time (spawn to exit) of the `stats_dump` binary (`--cli-runs`, default 20,
//!   interleaved): `--version` (process start, no attach), `--pid PID --no-json --no-text`
//!   (start + attach) and `--pid PID --no-text` (start + attach + JSON to `/dev/null`);
//!   (c) the target's own figures, from its `ready` line.
//! * `overhead`: runs `work` as a child, `--runs` (default 5) rounds of four configurations,
//!   interleaved (the order rotates every round), after one discarded warm-up run:
//!   `TSLAB_PUBLISH=0` (the reclaimer runs, nothing is published), `publish` (the default: a
//!   publish every 100 ms), `publish + inproc 10 Hz` (this process calls [`snapshot_of`] on the
//!   child every 100 ms) and `publish + stats_dump 10 Hz` (this process runs `stats_dump --pid
//!   CHILD --no-text` every 100 ms, stdout to `/dev/null`, for the child's whole life).
//!   Reported: the median of the child's own timing of its loop (wall), the slowdown of that
//!   median against `TSLAB_PUBLISH=0`, and the median of the per-round ratios; the same for the
//!   loop thread's CPU time, and the time the loop thread spent runnable but waiting for a CPU
//!   (both from `/proc/thread-self/schedstat`: the CPU contention the readers cause), and the
//!   CPU time of the child's reclaimer thread over its whole life (what publishing costs).
//! * `work` (defaults: 20,000,000 pairs, 100,000 objects): single-threaded; fills a working set
//!   of objects of 16..=512 B, then (timed) 20M times replaces a pseudo-random slot by a new
//!   object of a pseudo-random size (one allocation, one free, one byte written). Prints
//!   `work ns=... cpu_ns=... wait_ns=... reclaimer_ns=... pairs=... ticks=... published=yes|no`.
//!
//! `stats_dump` is looked up next to this executable (`cargo build --release -p stats-dump`
//! into the same target directory) unless `--stats-dump PATH` is given. Percentiles are
//! nearest-rank. The children get `TSLAB_RECLAIM`, `TSLAB_PUBLISH` and the auto-advance variables
//! removed (except where a configuration sets one). Wrong arguments print the usage and exit 2;
//! a failed measurement exits 1.

mod measure;
mod overhead;
mod snapshot;
mod target;

use std::hint::black_box;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use temporal_slab::attach::snapshot_of;
use temporal_slab::{EpochDomain, Snapshot, TemporalSlab};

use measure::*;
use overhead::*;
use snapshot::*;
use target::*;

#[global_allocator]
static GLOBAL: TemporalSlab = TemporalSlab::new();

/// Smallest object size, bytes.
const MIN_SIZE: usize = 16;
/// Largest object size, bytes.
const MAX_SIZE: usize = 512;
/// Epoch ring slots (the most epochs that can hold memory at once).
const MAX_EPOCHS: usize = 16;
/// Sampling period of the 10 Hz readers.
const PERIOD: Duration = Duration::from_millis(100);
/// In-process `snapshot()` calls timed by the target.
const GATHER_RUNS: usize = 50;
/// In-process `snapshot()` calls timed by the target 100 ms apart.
const COLD_RUNS: usize = 20;
/// Window over which the target measures its reclaimer thread's CPU time.
const TICK_WINDOW: Duration = Duration::from_secs(3);
/// How long `snapshot` waits for the target's `ready` line.
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// Environment variables that would change the children's allocator behaviour.
const ENV_CLEARED: [&str; 4] = ["TSLAB_RECLAIM", "TSLAB_PUBLISH", "TSLAB_AUTO_ADVANCE_MS", "TSLAB_AUTO_ADVANCE_MIB"];

fn usage() -> ExitCode {
    eprintln!(
        "usage: attach_cost target   [--objects N] [--epochs E] [--seconds S]\n       \
         attach_cost snapshot [--objects N] [--epochs E] [--inproc-runs N] [--cli-runs N] [--stats-dump PATH]\n       \
         attach_cost overhead [--pairs N] [--working-set N] [--runs N] [--stats-dump PATH]\n       \
         attach_cost work     [--pairs N] [--working-set N]\n\
         defaults: 1000000 objects, 16 epochs (1..=16), 50 in-process and 20 stats_dump runs;\n\
         20000000 pairs, 100000 objects in the working set, 5 runs; stats_dump next to this binary"
    );
    ExitCode::from(2)
}

/// Command-line options of every mode (each mode accepts only its own).
struct Options {
    objects: usize,
    epochs: usize,
    seconds: Option<u64>,
    inproc_runs: usize,
    cli_runs: usize,
    pairs: usize,
    working_set: usize,
    runs: usize,
    stats_dump: Option<PathBuf>,
}

fn parse_options(mode: &str, args: &[String]) -> Result<Options, String> {
    let allowed: &[&str] = match mode {
        "target" => &["--objects", "--epochs", "--seconds"],
        "snapshot" => &["--objects", "--epochs", "--inproc-runs", "--cli-runs", "--stats-dump"],
        "overhead" => &["--pairs", "--working-set", "--runs", "--stats-dump"],
        "work" => &["--pairs", "--working-set"],
        _ => return Err(format!("unknown mode {mode:?}")),
    };
    let mut o = Options {
        objects: 1_000_000,
        epochs: MAX_EPOCHS,
        seconds: None,
        inproc_runs: 50,
        cli_runs: 20,
        pairs: 20_000_000,
        working_set: 100_000,
        runs: 5,
        stats_dump: None,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        if !allowed.contains(&flag.as_str()) {
            return Err(format!("unknown option {flag:?} for {mode}"));
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        if flag == "--stats-dump" {
            o.stats_dump = Some(PathBuf::from(value));
            continue;
        }
        let n: usize = value.parse().map_err(|_| format!("{flag}: not a number: {value:?}"))?;
        if n == 0 {
            return Err(format!("{flag} must be at least 1"));
        }
        match flag.as_str() {
            "--objects" => o.objects = n,
            "--epochs" if n > MAX_EPOCHS => return Err(format!("--epochs must be 1..={MAX_EPOCHS}")),
            "--epochs" => o.epochs = n,
            "--seconds" => o.seconds = Some(n as u64),
            "--inproc-runs" => o.inproc_runs = n,
            "--cli-runs" => o.cli_runs = n,
            "--pairs" => o.pairs = n,
            "--working-set" => o.working_set = n,
            "--runs" => o.runs = n,
            _ => unreachable!("flag checked against the allowed list"),
        }
    }
    Ok(o)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let Some(mode) = args.get(1) else { return usage() };
    let opts = match parse_options(mode, &args[2..]) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("attach_cost: {e}");
            return usage();
        }
    };
    let result = match mode.as_str() {
        "target" => run_target(&opts),
        "snapshot" => run_snapshot(&opts),
        "overhead" => run_overhead(&opts),
        "work" => run_work(&opts),
        _ => return usage(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("attach_cost {mode}: {e}");
            ExitCode::from(1)
        }
    }
}
