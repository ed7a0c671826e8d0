//! `tslab`: the operator's tool for processes that use temporal-slab. It reads snapshots from a
//! live process (`--pid`, through the statistics region the allocator publishes), from a file,
//! or from standard input (`-`), and turns them into a summary, rankings, a live view,
//! Prometheus text, an HTTP `/metrics` endpoint, a regression verdict, or the doctor's findings.

#![forbid(unsafe_code)]

mod chart;
mod demo;
mod diff;
mod export;
mod flame;
mod http;
mod input;
mod plot;
mod prom;
mod record;
mod serve;
mod top;
mod top_sites;
mod watch;
mod whole_file;

use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use temporal_slab::TemporalSlab;
use tslab_tools::{doctor, summary, workload};

use crate::input::InputArgs;

#[global_allocator]
static GLOBAL: TemporalSlab = TemporalSlab::new();

/// Inspect the temporal-slab allocator of a running process, or snapshots of it.
///
/// Input is `--pid PID` (attach to a live process), a snapshot file (JSON from
/// `stats_dump --no-text`), or `-` for standard input.
#[derive(Parser, Debug)]
#[command(
    name = "tslab",
    version,
    after_help = "EXAMPLES:
    tslab demo                                   the whole pipeline on a bundled workload
    tslab stats --pid 1234                       human summary of a live process
    stats_dump --pid 1234 --no-text | tslab top - --classes --by live_bytes
    tslab top --pid 1234 --epochs --by live_bytes --window 5s
    tslab watch --pid 1234 --interval 1s
    tslab export prometheus --pid 1234 --textfile /var/lib/node_exporter/textfile/tslab.prom
    tslab serve --pid 1234 --listen 127.0.0.1:9877
    tslab diff before.json after.json --fail-on regression
    tslab doctor --pid 1234
    tslab flame --pid 1234 --out heap.svg        flame graph of the sampled live heap

ACCESS:
    Attaching to a process needs the permission a debugger needs: the same user, or root.

EXIT STATUS:
    0  success
    1  tslab diff found a regression (with --fail-on regression)
    2  an error (the message names the cause and the fix), or wrong arguments"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// The largest snapshot document read from a file or standard input, in MiB (a snapshot is
    /// tens of KiB; larger input is refused before it is parsed, so no input can exhaust memory).
    #[arg(long, global = true, value_name = "MIB", default_value_t = input::DEFAULT_MAX_INPUT_MIB)]
    max_input_mib: u64,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the human summary of a snapshot (or the snapshot itself with --json).
    #[command(after_help = "EXAMPLES:
    tslab stats --pid 1234
    tslab stats snapshot.json
    stats_dump --pid 1234 --no-text | tslab stats -
    tslab stats --pid 1234 --json > snapshot.json")]
    Stats {
        #[command(flatten)]
        input: InputArgs,
        /// Print the snapshot as JSON on stdout instead of the summary.
        #[arg(long)]
        json: bool,
    },
    /// Rank size classes or epochs by any numeric field, or by its rate over a window.
    Top(top::TopArgs),
    /// A refreshing view of a live process with rates per second.
    Watch(watch::WatchArgs),
    /// Export a snapshot in another format (Prometheus text).
    Export(export::ExportArgs),
    /// Serve Prometheus /metrics over HTTP, a fresh snapshot per scrape.
    Serve(serve::ServeArgs),
    /// Compare two snapshots; with --fail-on regression, exit 1 on a regression (for CI).
    Diff(diff::DiffArgs),
    /// Append a live process's snapshots to a file at an interval (JSON Lines), for `plot`.
    Record(record::RecordArgs),
    /// Draw a recording as an SVG: memory, live bytes by label, allocation rate by label, epoch closes.
    Plot(plot::PlotArgs),
    /// Draw a heap profile (live process or pprof file) as a flame graph SVG: memory by call stack.
    Flame(flame::FlameArgs),
    /// Ranked, actionable findings: stuck epochs, slow path, reclamation, fragmentation.
    #[command(after_help = "EXAMPLES:
    tslab doctor --pid 1234
    tslab doctor snapshot.json --stuck-after 300")]
    Doctor {
        #[command(flatten)]
        input: InputArgs,
        /// Seconds after which an epoch that has ended but is still held open by domains opened
        /// in it (never ended) counts as stuck.
        #[arg(long, value_name = "SECONDS", default_value_t = 60.0, value_parser = tslab_tools::cli::parse_seconds)]
        stuck_after: f64,
    },
    /// Run the bundled demo workload, attach to it, show top, write a textfile, then stop it.
    #[command(after_help = "EXAMPLES:
    tslab demo
    tslab demo --intervals 5 --interval 500ms")]
    Demo(DemoArgs),
    /// Run the bundled demo workload in this process (a target for the other subcommands).
    #[command(after_help = "EXAMPLES:
    tslab workload --leak &          then: tslab top --pid $! --epochs --by live_bytes
    tslab workload --seconds 10 --threads 2")]
    Workload {
        /// Run for this long, then exit 0 (e.g. 30s, 5m).
        #[arg(long, default_value = "1h", value_parser = parse_duration)]
        seconds: Duration,
        /// Worker threads.
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
        threads: u32,
        /// Leak one domain (opened on an epoch of its own, never ended) so the doctor has a stuck
        /// epoch to find.
        #[arg(long)]
        leak: bool,
        /// Pause between requests (keeps the workload light on CPU).
        #[arg(long, default_value = "2ms", value_parser = parse_duration)]
        pause: Duration,
        /// Stop cleanly when standard input reaches end of file (how `tslab demo` stops it).
        #[arg(long)]
        stop_on_eof: bool,
    },
}

/// Options of `tslab demo`.
#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// How many `top` views to show.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub intervals: u32,
    /// Time between views.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub interval: Duration,
    /// Directory for the Prometheus textfile (default: a new directory under the system's
    /// temporary directory, e.g. /tmp/tslab-demo-PID).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<std::path::PathBuf>,
}

/// Parses `500ms`, `2s`, `1.5s`, `5m`, `1h`, or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (num, unit) = match t.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => t.split_at(i),
        None => (t, "s"),
    };
    let scale = match unit {
        "ms" => 1e-3,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return Err(format!("unknown unit {unit:?} in {text:?}: use ms, s, m or h (e.g. 500ms, 2s)")),
    };
    let v: f64 = num.parse().map_err(|_| format!("{text:?} is not a duration: use e.g. 500ms, 2s, 1.5m"))?;
    let secs = v * scale;
    if !secs.is_finite() || !(0.0..=1e9).contains(&secs) {
        return Err(format!("{text:?} is out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    input::set_max_input_mib(cli.max_input_mib);
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            // A closed stdout (`tslab ... | head`) is not an error.
            if tslab_tools::cli::is_broken_pipe(&e) {
                return ExitCode::SUCCESS;
            }
            let msg = format!("{e:#}").replace('\n', " ");
            eprintln!("tslab: {msg}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Stats { input, json } => {
            let snap = input.load()?;
            let mut out = std::io::stdout().lock();
            if json {
                serde_json::to_writer_pretty(&mut out, &snap).context("writing the JSON snapshot")?;
                writeln!(out)?;
            } else {
                summary::write(&mut out, &snap)?;
            }
            out.flush()?;
        }
        Command::Top(args) => top::run(&args)?,
        Command::Watch(args) => watch::run(&args)?,
        Command::Export(args) => export::run(&args)?,
        Command::Serve(args) => serve::run(&args)?,
        Command::Diff(args) => return diff::run(&args),
        Command::Record(args) => record::run(&args)?,
        Command::Plot(args) => plot::run(&args)?,
        Command::Flame(args) => flame::run(&args)?,
        Command::Doctor { input, stuck_after } => {
            let snap = input.load()?;
            let mut out = std::io::stdout().lock();
            doctor::write(&mut out, &doctor::diagnose(&snap, stuck_after))?;
            out.flush()?;
        }
        Command::Demo(args) => demo::run(&args)?,
        Command::Workload { seconds, threads, leak, pause, stop_on_eof } => {
            static STOP: AtomicBool = AtomicBool::new(false);
            if stop_on_eof {
                std::thread::spawn(|| {
                    let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
                    STOP.store(true, std::sync::atomic::Ordering::Relaxed);
                });
            }
            workload::run(
                &workload::Options { duration: seconds, threads, leak, pause, pin: false, tenured: false },
                &STOP,
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
