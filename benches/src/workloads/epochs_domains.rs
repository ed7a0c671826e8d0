//! epochs-domains and epochs-domains-10k: a server whose requests overlap. Each thread keeps a
//! sliding window of open requests; a step opens a request, handles it (per-request scratch: the
//! request text grown in a `String`, its headers parsed into a small `HashMap<String, String>`,
//! a body buffer of 128 B-2 KiB, a few dozen formatted tokens) and keeps its response (a status
//! line, two or three header pairs and a body of 64 B-1 KiB) until the request leaves the
//! window; when the window is full, the oldest request ends and its response is dropped. The
//! request's label (its route, 8 in all: `"GET /users"`, `"POST /orders"`, ...) is drawn per
//! step.
//!
//! The window size is the total concurrency divided by the thread count (rounded up), and the
//! total number of requests is split evenly between the threads, so every thread count does the
//! same work with the same number of requests open at once: [`DOMAINS`] 96 open, 20,000 in all
//! (4 threads x 24 at 4 threads); [`DOMAINS_10K`] 10,000 open (4 x 2,500), 40,000 in all.
//!
//! With `epochs`, each request is a domain: `EpochDomain::new(Some(label))`, entered
//! (`let _g = d.enter()`) while the request is handled, so its scratch and its response go to
//! the domain's epoch; the guard drops at the end of the handling; the domain is closed
//! (`d.close()`) when the request leaves the window, and then its response is dropped. A domain
//! never leaves the thread that made it. Without, the same work and no call.
//!
//! After the timed steps, every thread adds up what it holds, thread 0 takes the end readings
//! (the windows full), then every thread ends its open requests (timed apart, as `drain_ns`).
//! Live bytes: the responses' requested sizes and the window buffers'; the peak is the sum of
//! each thread's largest.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

use temporal_slab::EpochDomain;

use super::phase::{deque_bytes, string_bytes, vec_bytes, End};
use super::{lock, on_threads, Outcome, Rng};

/// Sizes of a run.
#[derive(Clone, Copy, Debug)]
pub struct Params {
    /// Requests open at once, over all threads.
    pub concurrent: usize,
    /// Requests in all.
    pub requests: usize,
}

/// epochs-domains: 96 open at once, 20,000 in all.
pub const DOMAINS: Params = Params { concurrent: 96, requests: 20_000 };
/// epochs-domains smoke-test size.
pub const DOMAINS_QUICK: Params = Params { concurrent: 16, requests: 400 };
/// epochs-domains-10k: 10,000 open at once, 40,000 in all.
pub const DOMAINS_10K: Params = Params { concurrent: 10_000, requests: 40_000 };
/// epochs-domains-10k smoke-test size.
pub const DOMAINS_10K_QUICK: Params = Params { concurrent: 400, requests: 1_000 };

/// The routes (domain labels).
pub const LABELS: [&str; 8] = [
    "GET /users",
    "GET /users/:id",
    "POST /orders",
    "GET /orders/:id",
    "PUT /cart",
    "GET /search",
    "POST /login",
    "GET /health",
];

/// What a request keeps until it leaves the window.
#[derive(Debug)]
struct Response {
    status: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    /// Requested bytes.
    fn bytes(&self) -> usize {
        string_bytes(&self.status)
            + vec_bytes(&self.headers)
            + self.headers.iter().map(|(k, v)| string_bytes(k) + string_bytes(v)).sum::<usize>()
            + vec_bytes(&self.body)
    }
}

/// An open request: its domain (with the API) and its response.
type Open = (Option<EpochDomain>, Response);

/// What one worker returns.
#[derive(Debug, Default)]
struct Worker {
    live_peak: usize,
    drain_ns: u64,
    check: u64,
}

/// Runs the workload on `threads` threads; `epochs`: a domain per request; `idle`: take the end
/// readings.
///
/// # Errors
/// A failure reading `/proc` for the end readings.
pub fn run(threads: usize, p: &Params, epochs: bool, idle: Option<Duration>) -> Result<Outcome, String> {
    let window = p.concurrent.div_ceil(threads).max(1);
    let per_thread = p.requests / threads;
    let live_end = AtomicU64::new(0);
    let held = Barrier::new(threads);
    let read = Barrier::new(threads);
    let end: Mutex<Result<Option<End>, String>> = Mutex::new(Ok(None));
    let (ns, results) = on_threads(threads, |t, gate| {
        let mut rng = Rng::new(0xD0 + t as u64);
        let mut open: VecDeque<Open> = VecDeque::with_capacity(window + 1);
        let mut w = Worker::default();
        let mut open_bytes = 0usize;
        gate.start();
        for i in 0..per_thread {
            let label = LABELS[rng.below(LABELS.len())];
            let id = (t as u64) << 32 | i as u64;
            let (domain, resp) = if epochs {
                let d = EpochDomain::new(Some(label));
                let resp = {
                    let _in = d.enter();
                    handle(&mut rng, id, label)
                };
                (Some(d), resp)
            } else {
                (None, handle(&mut rng, id, label))
            };
            open_bytes += resp.bytes();
            open.push_back((domain, resp));
            if open.len() > window {
                if let Some((d, resp)) = open.pop_front() {
                    if let Some(d) = d {
                        d.close();
                    }
                    w.check = w.check.wrapping_add(resp.body.len() as u64);
                    open_bytes -= resp.bytes();
                }
            }
            w.live_peak = w.live_peak.max(open_bytes + deque_bytes(&open));
        }
        gate.end();
        live_end.fetch_add((open_bytes + deque_bytes(&open)) as u64, Ordering::Relaxed);
        held.wait();
        if t == 0 {
            if let Some(d) = idle {
                // Relaxed: the barrier above orders every thread's add before this load.
                let live: u64 = live_end.load(Ordering::Relaxed);
                *lock(&end) = End::read(d, 0, live).map(Some);
            }
        }
        read.wait();
        let t0 = Instant::now();
        while let Some((d, resp)) = open.pop_front() {
            if let Some(d) = d {
                d.close();
            }
            drop(resp);
        }
        w.drain_ns = u64::try_from(t0.elapsed().as_nanos()).unwrap_or(u64::MAX);
        w
    });
    let live_peak: usize = results.iter().map(|w| w.live_peak).sum();
    black_box(results.iter().map(|w| w.check).sum::<u64>());
    let end = std::mem::replace(&mut *lock(&end), Ok(None))?.map(|e| End { live_peak_bytes: live_peak as u64, ..e });
    Ok(Outcome {
        elapsed_ns: ns,
        ops: (per_thread * threads) as u64,
        end,
        extra: Some(serde_json::json!({
            "epochs": epochs,
            "window_per_thread": window,
            "concurrent": window * threads,
            "requests": per_thread * threads,
            "drain_ns": results.iter().map(|w| w.drain_ns).max().unwrap_or(0),
        })),
        ..Outcome::default()
    })
}

/// One request's work: returns the response it keeps.
#[inline(never)]
fn handle(rng: &mut Rng, id: u64, label: &str) -> Response {
    let mut raw = String::new();
    let _ = write!(raw, "{label} HTTP/1.1\r\nhost: api.example.com\r\nx-request-id: {id:x}\r\n");
    for h in 0..rng.range(6, 14) {
        let _ = write!(raw, "x-field-{h}: ");
        for _ in 0..rng.range(8, 48) {
            raw.push((b'a' + rng.below(26) as u8) as char);
        }
        raw.push_str("\r\n");
    }
    let mut headers: HashMap<String, String> = HashMap::new();
    for line in raw.split("\r\n").skip(1) {
        if let Some((k, v)) = line.split_once(": ") {
            headers.insert(k.to_owned(), v.to_owned());
        }
    }
    let body = vec![(id as u8) | 1; rng.log_uniform(128, 2048)];
    let tokens: Vec<String> = (0..rng.range(8, 24)).map(|_| format!("{:x}", rng.next_u64())).collect();
    let sum = body.iter().step_by(32).map(|&b| u64::from(b)).sum::<u64>();
    let mut out_headers = Vec::with_capacity(3);
    out_headers.push(("content-type".to_owned(), "application/json".to_owned()));
    out_headers.push(("x-request-id".to_owned(), headers.get("x-request-id").cloned().unwrap_or_default()));
    if rng.below(2) == 0 {
        out_headers.push(("etag".to_owned(), format!("\"{sum:x}\"")));
    }
    let mut out = Vec::with_capacity(rng.log_uniform(64, 1024));
    for t in &tokens {
        if out.len() + t.len() >= out.capacity() {
            break;
        }
        out.extend_from_slice(t.as_bytes());
    }
    Response { status: format!("HTTP/1.1 200 OK ({} headers)", headers.len()), headers: out_headers, body: out }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_hold_the_concurrency_at_every_thread_count() {
        for threads in [1, 2, 3] {
            for epochs in [false, true] {
                let o = run(threads, &DOMAINS_QUICK, epochs, Some(Duration::ZERO)).unwrap();
                let x = o.extra.unwrap();
                let window = DOMAINS_QUICK.concurrent.div_ceil(threads);
                assert_eq!(x["window_per_thread"], window);
                assert_eq!(o.ops, (DOMAINS_QUICK.requests / threads * threads) as u64);
                let e = o.end.unwrap();
                // Every open request keeps a response of at least its status line and body.
                assert!(e.live_end_bytes >= (window * threads * 64) as u64);
                assert!(e.live_peak_bytes >= e.live_end_bytes);
            }
        }
    }

    #[test]
    fn labels_fit_the_registry() {
        assert!(LABELS.iter().all(|l| l.len() <= temporal_slab::LABEL_MAX));
        assert!(LABELS.len() < temporal_slab::MAX_LABELS);
    }
}
