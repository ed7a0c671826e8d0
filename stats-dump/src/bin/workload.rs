//! `tslab-workload`: the bundled demo workload that stats_dump and tslab attach to.
//!
//! Threads run request-like phases, each in a labelled domain that closes when the request ends;
//! 1% of each request's objects outlive it in a bounded cache; with `--leak`, one domain
//! ("background-worker-3") is entered twice and exited once, the bug `stats_dump --doctor` finds.
//! Prints `ready pid=PID` on stdout once its statistics are published, then runs until
//! `--seconds` have passed (or it is killed).

#![forbid(unsafe_code)]

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use temporal_slab::{EpochDomain, TemporalSlab};

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
    /// Leak one domain guard (enter twice, exit once) so the doctor has a stuck epoch to find.
    #[arg(long)]
    leak: bool,
    /// Pause between requests, in milliseconds (keeps the demo light on CPU).
    #[arg(long, default_value_t = 2)]
    pause_ms: u64,
    /// Test hook: also publish a statistics region claiming this layout version (run with
    /// TSLAB_PUBLISH=0 so that it is the only one).
    #[arg(long, hide = true)]
    fake_region_version: Option<u64>,
}

const LABELS: [&str; 3] = ["http-request", "batch-job", "cache-refresh"];

fn request(id: u64, cache: &Mutex<VecDeque<String>>) {
    let words: Vec<String> = (0..300).map(|i| format!("w{}-{}", id % 97, i * 31 % 1000)).collect();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for w in &words {
        *counts.entry(w.as_str()).or_default() += 1;
    }
    let body = vec![id as u8; 1 + (id as usize * 131) % 20_000];
    std::hint::black_box((&counts, &body));
    // 1% of requests leave something behind in a bounded cache.
    if id % 100 == 0 {
        let mut c = cache.lock().unwrap_or_else(|e| e.into_inner());
        c.push_back(format!("session-{id}-{}", words[0]));
        if c.len() > 1000 {
            c.pop_front();
        }
    }
}

fn main() {
    let cli = Cli::parse();
    if let Some(v) = cli.fake_region_version {
        if !temporal_slab::testing::publish_fake_region(v) {
            eprintln!("tslab-workload: memfd_create failed: cannot publish the test region");
            std::process::exit(2);
        }
        println!("ready pid={}", std::process::id());
        let _ = std::io::stdout().flush();
        std::thread::sleep(Duration::from_secs_f64(cli.seconds.max(0.0)));
        return;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let cache = Arc::new(Mutex::new(VecDeque::new()));
    let mut handles = Vec::new();
    for t in 0..cli.threads {
        let (stop, cache) = (stop.clone(), cache.clone());
        let (leak, pause) = (cli.leak && t == 0, Duration::from_millis(cli.pause_ms));
        handles.push(std::thread::spawn(move || {
            let leaked = EpochDomain::new(Some("background-worker-3"));
            if leak {
                let g1 = leaked.enter();
                let g2 = leaked.enter();
                drop(g2);
                std::mem::forget(g1);
            }
            let mut id = t as u64 * 1_000_000_000;
            while !stop.load(Ordering::Relaxed) {
                let label = LABELS[(id % LABELS.len() as u64) as usize];
                let domain = EpochDomain::new(Some(label)).auto_close(true);
                {
                    let _in = domain.enter();
                    request(id, &cache);
                }
                id += 1;
                std::thread::sleep(pause);
            }
        }));
    }
    // Ready once this process's statistics can be read the way stats_dump reads them.
    let pid = std::process::id();
    let start = Instant::now();
    while temporal_slab::attach::snapshot_of(pid).is_err() && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    println!("ready pid={pid}");
    let _ = std::io::stdout().flush();
    std::thread::sleep(Duration::from_secs_f64(cli.seconds.max(0.0)));
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        let _ = h.join();
    }
}
