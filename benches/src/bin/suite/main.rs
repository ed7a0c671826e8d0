//! The side-by-side allocator suite: every workload of [`benches::workloads`] on temporal-slab,
//! glibc, glibc with trimming off, mimalloc and jemalloc (and, in the `epochs` group, tcmalloc),
//! each allocator as the process's global allocator in its own child process.
//!
//! ```text
//! suite all    [--out PATH] [--reps N] [--threads LIST] [--workloads LIST] [--allocators LIST] [--no-latency]
//! suite quick  [same options]       smoke test: both groups, tiny sizes, 1 repetition (< 60 s)
//! suite epochs [--out PATH] [--reps N] [--quick] [--threads LIST] [--workloads LIST] [--allocators LIST]
//! suite one <allocator> <workload> [--threads N] [--reps N] [--quick] [--no-latency]
//! suite stats-cost --without DIR [--bare DIR] [--rounds N] [--reps N] [--out PATH] [--no-callgrind]
//! suite profile-cost --without DIR [--rounds N] [--reps N] [--out PATH] [--no-callgrind]
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
//! binaries of a `--no-default-features --features profile` build in `--without DIR` (counters
//! compiled out, the profiler kept; `--bare DIR`: also a `--no-default-features` build): the
//! instructions counted by callgrind in the measured loops of the single-thread workloads and of
//! 1M 64 B alloc+free pairs (`pairs`), and the times of a few workloads, both builds interleaved
//! over `--rounds` rounds (default 10). `profile-cost` does the same for the heap profiler:
//! sampling at its default mean and compiled in but off (`TSLAB_PROFILE_SAMPLE=0`), against a
//! `--no-default-features --features stats` build (see the `build_cost` module).
//!
//! Exit status: 0 when every child ran, 1 when one failed (the others are still reported), 2 for
//! wrong arguments.

#![forbid(unsafe_code)]

mod build_cost;
mod child;
mod cli;
mod epochs;
mod runner;
mod tables;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use benches::clock::{self, Percentiles};
use benches::procfs;
use benches::selected::{self, Choice, SelectedAllocator};
use benches::workloads::{self, phase, Options, Scale, Workload, EPOCH_WORKLOADS, WORKLOADS};
use child::*;
use cli::*;
use runner::*;
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
         suite stats-cost --without DIR [--bare DIR] [--rounds N] [--reps N] [--out PATH] [--no-callgrind]\n       \
         suite profile-cost --without DIR [--rounds N] [--reps N] [--out PATH] [--no-callgrind]\n       \
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
        "stats-cost" => build_cost::parse_cost(rest, build_cost::Feature::Stats).map(|o| build_cost::build_cost(&o)),
        "profile-cost" => {
            build_cost::parse_cost(rest, build_cost::Feature::Profile).map(|o| build_cost::build_cost(&o))
        }
        "build-info" => {
            println!("{}", json!({ "stats": cfg!(feature = "stats"), "profile": cfg!(feature = "profile") }));
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
