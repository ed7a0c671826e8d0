//! The demo workload: request-like phases on a few threads with TemporalSlab as the global
//! allocator. Each phase allocates in a fresh epoch, frees, and closes it; the demo prints RSS
//! and the allocator's own figures after every phase, then the final snapshot as JSON.
//!
//! `cargo run --release -p temporal-slab --example demo [PHASES]` (default 8 phases).

use std::collections::HashMap;
use std::thread;

use temporal_slab::{epoch, snapshot, TemporalSlab};

#[global_allocator]
static GLOBAL: TemporalSlab = TemporalSlab::new();

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4)
}

/// One "request": parse-like string work and a map, all dropped at the end.
fn request(id: u64) -> usize {
    let words: Vec<String> = (0..200).map(|i| format!("w{}-{}", id % 97, i * 31 % 1000)).collect();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for w in &words {
        *counts.entry(w.as_str()).or_default() += 1;
    }
    let body: Vec<u8> = vec![id as u8; 1 + (id as usize * 131) % 60_000];
    counts.len() + body.len()
}

fn main() {
    let phases: u64 = match std::env::args().nth(1).map(|a| a.parse()) {
        None => 8,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("demo: PHASES must be a positive integer, e.g. `demo 8`");
            std::process::exit(2);
        }
    };
    println!(
        "{:>5} {:>6} {:>10} {:>12} {:>12} {:>10}",
        "phase", "era", "rss_kib", "live_kib", "purged_kib", "requests"
    );
    for phase in 0..phases {
        // Each phase runs in the current epoch; closing it opens the next one.
        let e = epoch::current();
        let handles: Vec<_> = (0..4u64)
            .map(|t| {
                thread::spawn(move || (0..2_000u64).map(|i| request(phase * 10_000 + t * 2_000 + i)).sum::<usize>())
            })
            .collect();
        let requests = handles.len() * 2_000;
        let work: usize = handles.into_iter().map(|h| h.join().expect("worker panicked")).sum();
        assert!(work > 0);
        epoch::close(e);
        let s = snapshot();
        println!(
            "{:>5} {:>6} {:>10} {:>12} {:>12} {:>10}",
            phase,
            e.era(),
            rss_kib(),
            (s.global.small_live_bytes + s.global.large_bytes) / 1024,
            s.global.madvise_bytes / 1024,
            requests
        );
    }
    match serde_json::to_string_pretty(&snapshot()) {
        Ok(json) => println!("{json}"),
        Err(e) => {
            eprintln!("demo: cannot serialise the snapshot: {e}");
            std::process::exit(2);
        }
    }
}
