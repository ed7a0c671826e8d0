//! request-server: threads serve requests, each made of ordinary std work that allocates and
//! frees about a hundred blocks of mixed sizes: the request text is built up in a `String`
//! (grown by pushes, so reallocated), parsed into a `HashMap<String, String>` of headers, a body
//! buffer of 256 B..=64 KiB (log-uniform) is filled, a few dozen tokens are formatted into
//! `String`s in a `Vec`, and a response `String` is assembled from all of it. Everything the
//! request allocated is freed when it ends, except a short summary line that goes, after the
//! request, into a per-thread cache of the last [`Params::cache`] summaries (long-lived objects
//! allocated between short-lived ones).
//!
//! With `epochs` (temporal-slab only), each request runs inside its own
//! [`temporal_slab::EpochDomain`] (label `"request"`, auto-close): the request's allocations go to
//! that domain's epoch, and the epoch closes (its pages purged) when the request's guard drops.
//! The summary is made after the guard drops, so it never pins a request's epoch. Every other
//! allocator does exactly the same work without the domain. Total requests are fixed and split
//! evenly between the threads.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::hint::black_box;

use temporal_slab::EpochDomain;

use super::{concat, on_threads, Outcome, Rng};
use crate::clock;

/// Sizes of a run.
#[derive(Clone, Copy, Debug)]
pub struct Params {
    /// Requests in all.
    pub requests: u64,
    /// Summaries each thread keeps.
    pub cache: usize,
}

/// The reported size: 40,000 requests, 1000 summaries kept per thread.
pub const FULL: Params = Params { requests: 40_000, cache: 1000 };
/// The smoke-test size.
pub const QUICK: Params = Params { requests: 400, cache: 100 };

/// Runs request-server on `threads` threads; `epochs`: a temporal-slab domain per request;
/// `latency`: time every request.
pub fn run(threads: usize, p: &Params, epochs: bool, latency: bool) -> Outcome {
    let per_thread = p.requests / threads as u64;
    let (ns, results) = on_threads(threads, |t, gate| {
        let mut rng = Rng::new(t as u64);
        let mut cache: VecDeque<String> = VecDeque::with_capacity(p.cache + 1);
        let mut ticks: Vec<u32> = Vec::with_capacity(if latency { per_thread as usize } else { 0 });
        let mut check = 0u64;
        gate.start();
        for i in 0..per_thread {
            let id = (t as u64) << 32 | i;
            let t0 = if latency { clock::now() } else { 0 };
            let (len, sum) = if epochs {
                let domain = EpochDomain::new(Some("request")).auto_close(true);
                let _inside = domain.enter();
                handle(&mut rng, id)
            } else {
                handle(&mut rng, id)
            };
            let summary = format!("request {id:x}: {len} bytes, checksum {sum:x}");
            cache.push_back(summary);
            if cache.len() > p.cache {
                cache.pop_front();
            }
            if latency {
                ticks.push(clock::span(t0, clock::now()));
            }
            check = check.wrapping_add(sum);
        }
        gate.end();
        black_box(check);
        ticks
    });
    Outcome {
        elapsed_ns: ns,
        ops: per_thread * threads as u64,
        op_ticks: concat(results),
        extra: Some(serde_json::json!({ "epochs": epochs })),
        ..Outcome::default()
    }
}

/// One request: returns the response length and a checksum of the body.
#[inline(never)]
fn handle(rng: &mut Rng, id: u64) -> (usize, u64) {
    // The request text, grown piece by piece.
    let mut raw = String::new();
    let _ = write!(raw, "GET /api/items/{id} HTTP/1.1\r\n");
    for h in 0..rng.range(8, 24) {
        let _ = write!(raw, "X-Header-{h}: ");
        for _ in 0..rng.range(8, 96) {
            raw.push((b'a' + rng.below(26) as u8) as char);
        }
        raw.push_str("\r\n");
    }
    // Parsing.
    let mut headers: HashMap<String, String> = HashMap::new();
    for line in raw.split("\r\n").skip(1) {
        if let Some((k, v)) = line.split_once(": ") {
            headers.insert(k.to_ascii_lowercase(), v.to_owned());
        }
    }
    let body = vec![(id as u8) | 1; rng.log_uniform(256, 64 << 10)];
    let tokens: Vec<String> = (0..rng.range(16, 64)).map(|_| format!("{:x}", rng.next_u64())).collect();
    // The response.
    let mut resp = String::from("HTTP/1.1 200 OK\r\n");
    let mut keys: Vec<&String> = headers.keys().collect();
    keys.sort_unstable();
    for k in keys {
        let _ = write!(resp, "{k}: {}\r\n", headers[k]);
    }
    for t in &tokens {
        resp.push_str(t);
        resp.push(',');
    }
    let sum = body.iter().step_by(64).map(|&b| u64::from(b)).sum::<u64>();
    (black_box(resp).len(), sum)
}
