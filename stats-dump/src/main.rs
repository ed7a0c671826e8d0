//! `stats_dump`: attaches to a running process that uses temporal-slab and prints its allocator
//! snapshot: JSON on stdout, a human summary on stderr, and with `--doctor` ranked findings.
//!
//! Attaching reads the statistics region the allocator publishes (a memfd found through
//! `/proc/PID/fd`, refreshed every 100 ms by its reclaimer thread); the target is never stopped
//! or signalled and needs no code beyond installing the allocator.

#![forbid(unsafe_code)]

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Parser;
use temporal_slab::{Snapshot, TemporalSlab};
use tslab_tools::symbolize::Symbolizer;
use tslab_tools::{doctor, summary};

#[global_allocator]
static GLOBAL: TemporalSlab = TemporalSlab::new();

/// Print the temporal-slab allocator snapshot of a running process.
///
/// JSON goes to stdout and a human summary to stderr (as the reference stats_dump did), so
/// `stats_dump --pid 1234 > snap.json` keeps the JSON clean.
#[derive(Parser, Debug)]
#[command(
    name = "stats_dump",
    version,
    after_help = "EXAMPLES:
    stats_dump --pid 1234                     JSON on stdout, summary on stderr
    stats_dump --pid 1234 --no-json --doctor  summary and findings only
    stats_dump --pid 1234 --no-text | jq .global
    stats_dump --demo --doctor                run a small workload here and attach to it
    stats_dump --pid 1234 --no-json --profile heap.pb.gz
                                              also write its sampled heap profile (pprof);
                                              read it with `go tool pprof -top heap.pb.gz`

ACCESS:
    Reading a process's statistics needs the same permission as inspecting it with a
    debugger: run as the same user as the target, or as root.

EXIT STATUS:
    0  the snapshot was printed
    2  it could not be read (the message names the cause), or the arguments were wrong"
)]
struct Cli {
    /// Process to attach to.
    #[arg(long, value_name = "PID", conflicts_with = "demo")]
    pid: Option<u32>,
    /// Run a built-in demo workload in this process and attach to it (works anywhere).
    #[arg(long)]
    demo: bool,
    /// Print the JSON snapshot on stdout (the default).
    #[arg(long, overrides_with = "no_json")]
    json: bool,
    /// Do not print the JSON snapshot.
    #[arg(long)]
    no_json: bool,
    /// Print the human summary on stderr (the default).
    #[arg(long, overrides_with = "no_text")]
    text: bool,
    /// Do not print the human summary.
    #[arg(long)]
    no_text: bool,
    /// Print ranked, actionable findings (stuck epochs, slow path, reclamation, fragmentation).
    #[arg(long)]
    doctor: bool,
    /// Seconds after which an epoch that has ended but is still held open by domains opened in
    /// it (never ended) counts as stuck.
    #[arg(long, value_name = "SECONDS", default_value_t = 60.0, value_parser = tslab_tools::cli::parse_seconds)]
    stuck_after: f64,
    /// Also write the process's sampled heap profile to FILE in pprof format (gzipped
    /// protobuf: inuse_space, inuse_objects, alloc_space, alloc_objects, with functions, files
    /// and lines; samples carry `label` and `epoch`). The target samples every 2 MiB on
    /// average unless TSLAB_PROFILE_SAMPLE says otherwise; file and line need debug info in
    /// the target (`debug = "line-tables-only"` or more), else functions come from symbols.
    /// With --doctor, findings about epochs name the call sites that hold them.
    #[arg(long, value_name = "FILE")]
    profile: Option<std::path::PathBuf>,
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // A closed stdout (`stats_dump ... | head`) is not an error.
            if tslab_tools::cli::is_broken_pipe(&e) {
                return ExitCode::SUCCESS;
            }
            eprintln!("stats_dump: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<()> {
    let cli = Cli::parse();
    let (snap, pid) = match (cli.pid, cli.demo) {
        (Some(pid), _) => (temporal_slab::attach::snapshot_of(pid)?, pid),
        (None, true) => (demo_snapshot()?, std::process::id()),
        (None, false) => bail!(
            "no process given: use --pid PID to attach to a process that uses temporal-slab, \
             or --demo to dump a built-in workload (see --help)"
        ),
    };
    // The profile is read when the doctor or --profile wants it; the doctor works without one.
    let profile = if cli.profile.is_some() || cli.doctor {
        match temporal_slab::profile_attach::profile_of(pid) {
            Ok(p) => Some(p),
            Err(e) if cli.profile.is_some() => return Err(e).context("reading the heap profile"),
            Err(_) => None,
        }
    } else {
        None
    };
    let mut sym = match &profile {
        Some(_) => Some(Symbolizer::for_pid(pid)?),
        None => None,
    };
    if let (Some(path), Some(p), Some(sym)) = (&cli.profile, &profile, sym.as_mut()) {
        let labels = tslab_tools::sites::label_names(&snap);
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i64);
        let pp = tslab_tools::pprof::build(p, sym, &labels, now);
        tslab_tools::pprof::write_gz(&pp, path)?;
        if !cli.no_text {
            eprintln!(
                "stats_dump: wrote {} ({} samples, {} live, mean interval {} bytes)",
                path.display(),
                p.samples,
                p.live.len(),
                p.sample_bytes
            );
        }
    }
    let mut stdout = std::io::stdout().lock();
    if !cli.no_json {
        serde_json::to_writer_pretty(&mut stdout, &snap).context("writing the JSON snapshot")?;
        writeln!(stdout)?;
        stdout.flush()?;
    }
    let mut stderr = std::io::stderr().lock();
    if !cli.no_text {
        summary::write(&mut stderr, &snap)?;
    }
    if cli.doctor {
        // With the JSON off, findings go to stdout so they can be piped.
        let mut findings = doctor::diagnose(&snap, cli.stuck_after);
        if let (Some(p), Some(sym)) = (&profile, sym.as_mut()) {
            tslab_tools::pinned::cite_sites(&mut findings, &snap, p, sym);
        }
        if cli.no_json {
            doctor::write(&mut stdout, &findings)?;
        } else {
            doctor::write(&mut stderr, &findings)?;
        }
    }
    Ok(())
}

/// The demo: runs request-like phases in labelled, auto-closing domains on background threads
/// of this process, plus one domain that is never ended (a leak the doctor reports),
/// then reads this process's statistics through the same path as `--pid` (the published region,
/// found through /proc).
fn demo_snapshot() -> Result<Snapshot> {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    tslab_tools::workload::leak_a_domain(2_000);
    let kept: Vec<String> = (0..2_000).map(|i| format!("session-{i}")).collect();
    let workers: Vec<_> = ["http-request", "batch-job"]
        .into_iter()
        .map(|label| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut round = 0u32;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let request = temporal_slab::EpochDomain::new(Some(label)).auto_close(true);
                    let _in = request.enter();
                    let body: Vec<Vec<u8>> = (0..200).map(|i| vec![round as u8; 64 + i * 7 % 900]).collect();
                    std::hint::black_box(&body);
                    round = round.wrapping_add(1);
                    std::thread::sleep(Duration::from_millis(1));
                }
            })
        })
        .collect();
    // Let a few publishes happen while the workers run.
    std::thread::sleep(Duration::from_millis(400));
    let snap = temporal_slab::attach::snapshot_of(std::process::id());
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in workers {
        let _ = w.join();
    }
    std::hint::black_box(&kept);
    Ok(snap?)
}
