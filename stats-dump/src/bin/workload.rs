//! `tslab-workload`: the bundled demo workload that stats_dump and tslab attach to (see
//! [`tslab_tools::workload`]). Prints `ready pid=PID` on stdout once its statistics are
//! published, then runs until `--seconds` have passed (or it is killed).

#![forbid(unsafe_code)]

use std::io::Write;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use clap::Parser;
use temporal_slab::TemporalSlab;
use tslab_tools::workload;

#[global_allocator]
static GLOBAL: TemporalSlab = TemporalSlab::new();

/// A demo workload that uses temporal-slab: labelled request phases on several threads.
#[derive(Parser, Debug)]
#[command(name = "tslab-workload", version)]
struct Cli {
    /// Run for this many seconds, then exit 0.
    #[arg(long, default_value_t = 3600.0)]
    seconds: f64,
    /// Worker threads.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    threads: u32,
    /// Leak one domain (opened on an epoch of its own, never ended) so the doctor has a stuck
    /// epoch to find.
    #[arg(long)]
    leak: bool,
    /// Plant a process-wide cache filled inside a short "upload" request, so that a closed epoch
    /// is pinned by objects of one call site (`cache_insert`), which the heap profile names.
    #[arg(long)]
    pin: bool,
    /// With --pin: fill that cache inside `temporal_slab::tenured(..)`, the doctor's fix, so that
    /// no epoch is pinned.
    #[arg(long, requires = "pin")]
    tenured: bool,
    /// Pause between requests, in milliseconds (keeps the demo light on CPU).
    #[arg(long, default_value_t = 2)]
    pause_ms: u64,
    /// Test hook: also publish a statistics region claiming this layout version (run with
    /// TSLAB_PUBLISH=0 so that it is the only one).
    #[arg(long, hide = true)]
    fake_region_version: Option<u64>,
}

fn main() {
    let cli = Cli::parse();
    let duration = Duration::from_secs_f64(cli.seconds.clamp(0.0, 1e9));
    if let Some(v) = cli.fake_region_version {
        if !temporal_slab::testing::publish_fake_region(v) {
            eprintln!("tslab-workload: memfd_create failed: cannot publish the test region");
            std::process::exit(2);
        }
        println!("ready pid={}", std::process::id());
        let _ = std::io::stdout().flush();
        std::thread::sleep(duration);
        return;
    }
    let opts = workload::Options {
        duration,
        threads: cli.threads,
        leak: cli.leak,
        pin: cli.pin,
        tenured: cli.tenured,
        pause: Duration::from_millis(cli.pause_ms),
    };
    workload::run(&opts, &AtomicBool::new(false));
}
