//! Standalone alloc+free pair driver for instruction counting under valgrind.
//!
//! ```text
//! pairs <temporal-slab|glibc|mimalloc|jemalloc> <size> <iterations>
//! ```
//!
//! Warms up with 1000 pairs (outside `run_pairs`), then runs `iterations` alloc+free pairs of
//! `size` bytes at align 8 through [`std::alloc::GlobalAlloc`] in
//! `benches::run_pairs::<Allocator>`, and prints one summary line. Instructions per pair:
//!
//! ```text
//! valgrind --tool=callgrind --toggle-collect='*run_pairs*' target/release/pairs mimalloc 64 100000
//! ```
//!
//! or the difference of total Ir between `iterations` = 2N and N, divided by N.

use std::alloc::GlobalAlloc;
use std::process::ExitCode;
use std::time::Instant;

use benches::{layout, pair, run_pairs, GLIBC, JEMALLOC, MIMALLOC, NAMES, TEMPORAL_SLAB};

/// Pairs run before the measured loop (thread-heap setup, first slab or span, ...).
const WARM_UP: u64 = 1000;

/// Warms up, then runs the measured loop; returns the measured loop's nanoseconds.
fn drive<A: GlobalAlloc>(a: &A, size: usize, iterations: u64) -> u128 {
    let l = layout(size);
    warm_up(a, l);
    let start = Instant::now();
    // SAFETY: `size` was checked to be non-zero.
    unsafe { run_pairs(a, l, iterations) };
    start.elapsed().as_nanos()
}

/// The warm-up pairs, in their own non-inlined function so that they stay outside
/// `--toggle-collect='*run_pairs*'`.
#[inline(never)]
fn warm_up<A: GlobalAlloc>(a: &A, l: std::alloc::Layout) {
    for _ in 0..WARM_UP {
        // SAFETY: `l` has a non-zero size (checked by the caller's caller).
        unsafe { pair(a, l) };
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let usage = || {
        eprintln!("usage: pairs <{}> <size> <iterations>", NAMES.join("|"));
        ExitCode::from(2)
    };
    let [_, name, size, iterations] = &args[..] else { return usage() };
    let (Ok(size), Ok(iterations)) = (size.parse::<usize>(), iterations.parse::<u64>()) else {
        return usage();
    };
    if size == 0 {
        return usage();
    }
    let ns = match name.as_str() {
        "temporal-slab" => drive(&TEMPORAL_SLAB, size, iterations),
        "glibc" => drive(&GLIBC, size, iterations),
        "mimalloc" => drive(&MIMALLOC, size, iterations),
        "jemalloc" => drive(&JEMALLOC, size, iterations),
        _ => return usage(),
    };
    let per = if iterations == 0 { 0.0 } else { ns as f64 / iterations as f64 };
    println!("{name} size={size} iterations={iterations} ns={ns} ns/pair={per:.2}");
    ExitCode::SUCCESS
}
