//! The bundled demo workload that `stats_dump` and `tslab` attach to.
//!
//! Threads run request-like phases, each in a labelled domain that ends when the request ends
//! (the domains of one ~100 ms time bucket share an epoch); 1% of each request's objects outlive
//! it in a bounded cache; with `leak`, one domain ("background-worker-3") is opened on an epoch
//! of its own and never ended, and the 20,000 strings allocated in it are never freed: an ended
//! epoch held open by that domain, holding memory, which `--doctor` finds (see
//! [`leak_a_domain`]).
//! [`run`] prints `ready pid=PID` on stdout once its statistics are published, then works until
//! its time is up or `stop` is set.

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use temporal_slab::epoch::{self, EpochId};
use temporal_slab::EpochDomain;

/// How the workload runs.
#[derive(Clone, Debug)]
pub struct Options {
    /// Run this long, then return.
    pub duration: Duration,
    /// Worker threads.
    pub threads: u32,
    /// Leak one domain (never ended) so the doctor has a stuck epoch to find.
    pub leak: bool,
    /// Pause between requests (keeps the demo light on CPU).
    pub pause: Duration,
    /// Plant a pinning cache: [`plant_pinning_cache`] before the workers start.
    pub pin: bool,
    /// With `pin`: fill the cache in the tenured scope (the fix), so that nothing is pinned.
    pub tenured: bool,
}

/// The domain label of the request that [`plant_pinning_cache`] runs.
pub const PINNED_LABEL: &str = "upload";

/// What [`cache_insert`] keeps: never freed.
static PINNED: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

/// The bug a heap profile finds: a short request (a domain labelled [`PINNED_LABEL`], on an epoch
/// of its own) puts `objects` 4 KiB buffers into a process-wide cache through [`cache_insert`],
/// and the request ends. The epoch closes, but the cached buffers keep its slabs in use: the
/// doctor and `tslab top --sites` name `cache_insert` as the site that pins it.
/// With `in_tenured`, the buffers are allocated in [`temporal_slab::tenured()`] (the doctor's fix):
/// the epoch closes empty.
pub fn plant_pinning_cache(objects: usize, in_tenured: bool) -> EpochId {
    let e = epoch::advance();
    {
        let request = EpochDomain::on(e, Some(PINNED_LABEL));
        let _in = request.enter();
        for i in 0..objects {
            cache_insert(i, in_tenured);
        }
    }
    epoch::advance();
    epoch::close(e);
    e
}

/// Puts one 4 KiB buffer into the process-wide cache (the planted site), allocated in the
/// tenured scope when `in_tenured`.
#[inline(never)]
pub fn cache_insert(key: usize, in_tenured: bool) {
    let buffer = if in_tenured { temporal_slab::tenured(|| vec![key as u8; 4096]) } else { vec![key as u8; 4096] }; // PLANTED-SITE
    PINNED.lock().unwrap_or_else(|e| e.into_inner()).push(buffer);
}

/// Labels of the request-like phases.
pub const LABELS: [&str; 3] = ["http-request", "batch-job", "cache-refresh"];

/// The domain label that `leak` leaves open.
pub const LEAKED_LABEL: &str = "background-worker-3";

/// Leaks a domain on purpose, the way a program forgets to end one: a domain labelled
/// [`LEAKED_LABEL`] is opened on a fresh epoch (so that epoch carries its label alone: call this
/// before other threads open domains), `objects` strings are allocated in it and kept, and the
/// domain is never ended (`mem::forget`). The epoch is then ended (advanced past), so it stays
/// behind as an old, ended epoch held open by one open domain (refcount 1) and holding memory.
/// Returns that epoch.
pub fn leak_a_domain(objects: usize) -> EpochId {
    let e = epoch::advance();
    let leaked = EpochDomain::on(e, Some(LEAKED_LABEL));
    {
        let _in = leaked.enter();
        // What the forgotten phase allocated stays live: the epoch holds memory.
        let held: Vec<String> = (0..objects).map(|i| format!("leaked-session-{i:08}")).collect();
        std::mem::forget(held);
    }
    // The bug being demonstrated: the domain is never closed or dropped.
    std::mem::forget(leaked);
    epoch::advance();
    e
}

fn request(id: u64, cache: &Mutex<VecDeque<String>>) {
    let words: Vec<String> = (0..300).map(|i| format!("w{}-{}", id % 97, i * 31 % 1000)).collect();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for w in &words {
        *counts.entry(w.as_str()).or_default() += 1;
    }
    let body = vec![id as u8; 1 + (id as usize * 131) % 20_000];
    std::hint::black_box((&counts, &body));
    // 1% of requests leave something behind in a bounded cache.
    if id.is_multiple_of(100) {
        let mut c = cache.lock().unwrap_or_else(|e| e.into_inner());
        c.push_back(format!("session-{id}-{}", words[0]));
        if c.len() > 1000 {
            c.pop_front();
        }
    }
}

/// Runs the workload in this process (whose global allocator must be temporal-slab for the
/// tools to see it) until `opts.duration` has passed or `stop` is set (checked every 10 ms),
/// then stops and joins its threads. Prints `ready pid=PID` on stdout once this process's
/// statistics can be read the way `stats_dump` reads them (or after 5 s).
pub fn run(opts: &Options, stop: &AtomicBool) {
    let quit = Arc::new(AtomicBool::new(false));
    let cache = Arc::new(Mutex::new(VecDeque::new()));
    let set_up = Arc::new(std::sync::atomic::AtomicU32::new(0));
    // Before the workers start, so that no request domain shares the leaked domain's epoch.
    if opts.leak {
        leak_a_domain(20_000);
    }
    if opts.pin {
        plant_pinning_cache(4_096, opts.tenured);
    }
    let mut handles = Vec::new();
    for t in 0..opts.threads {
        let (quit, cache, set_up) = (quit.clone(), cache.clone(), set_up.clone());
        let pause = opts.pause;
        handles.push(std::thread::spawn(move || {
            set_up.fetch_add(1, Ordering::Release);
            let mut id = t as u64 * 1_000_000_000;
            while !quit.load(Ordering::Relaxed) {
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
    // Ready once every thread is set up (the leak made) and a snapshot taken after that has been
    // published, so the first attach already sees it.
    let pid = std::process::id();
    let start = Instant::now();
    let deadline = Duration::from_secs(5);
    while set_up.load(Ordering::Acquire) < opts.threads && start.elapsed() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let after = temporal_slab::snapshot().timestamp_ns;
    while temporal_slab::attach::snapshot_of(pid).map_or(true, |s| s.timestamp_ns <= after)
        && start.elapsed() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    println!("ready pid={pid}");
    let _ = std::io::stdout().flush();
    while start.elapsed() < opts.duration && !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(10).min(opts.duration.saturating_sub(start.elapsed())));
    }
    quit.store(true, Ordering::Relaxed);
    for h in handles {
        let _ = h.join();
    }
}
