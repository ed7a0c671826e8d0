//! What the tenured scope costs: inside a request's domain, N allocations of 64 B kept in a
//! cache, made plainly and inside `tenured(..)`, in turns; prints ns per allocation (median of
//! 11 rounds) and the difference, which is the scope's enter + exit (two switches of the
//! thread's bins).
//!
//! `cargo run --release -p temporal-slab --example tenured_cost`

use std::hint::black_box;
use std::time::Instant;

use temporal_slab::{tenured, EpochDomain, TemporalSlab};

#[global_allocator]
static GLOBAL: TemporalSlab = TemporalSlab::new();

const N: usize = 20_000;

/// ns per kept allocation, plainly or in the tenured scope; the cache is freed after timing.
fn round(in_tenured: bool) -> f64 {
    let request = EpochDomain::new(Some("request"));
    let _in = request.enter();
    let mut cache: Vec<Box<[u8; 64]>> = Vec::with_capacity(N);
    let t = Instant::now();
    for i in 0..N {
        let b = if in_tenured { tenured(|| Box::new([i as u8; 64])) } else { Box::new([i as u8; 64]) };
        cache.push(black_box(b));
    }
    let ns = t.elapsed().as_nanos() as f64 / N as f64;
    drop(cache);
    ns
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let (mut plain, mut scoped) = (Vec::new(), Vec::new());
    for _ in 0..11 {
        plain.push(round(false));
        scoped.push(round(true));
    }
    let (p, s) = (median(plain), median(scoped));
    println!("kept 64 B allocation: plain {p:.1} ns, in tenured(..) {s:.1} ns: the scope costs {:.1} ns", s - p);
}
