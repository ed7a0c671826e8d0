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
//!
//! ```text
//! pairs <allocator> <size> <objects> --remote
//! ```
//!
//! Remote frees instead ([`benches::remote`]): a producer thread allocates `objects` objects in
//! batches of 256 and a consumer thread frees them; prints the time of one free (and of one
//! allocation) in the timed loops alone. Instructions of the frees alone:
//! `--toggle-collect='*free_batch*'`. tcmalloc (or any malloc) is measured as `glibc` under
//! `LD_PRELOAD`.

use std::alloc::GlobalAlloc;
use std::process::ExitCode;
use std::time::Instant;

use benches::remote::{run_remote, RemoteRun, REMOTE_BATCH};
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

/// Runs the remote-free benchmark of `objects` objects (rounded up to whole batches).
fn remote<A: GlobalAlloc + Sync>(a: &'static A, size: usize, objects: u64) -> RemoteRun {
    run_remote(a, size, objects.div_ceil(REMOTE_BATCH as u64))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let usage = || {
        eprintln!("usage: pairs <{}> <size> <iterations> [--remote]", NAMES.join("|"));
        ExitCode::from(2)
    };
    let (args, is_remote) = match &args[..] {
        [rest @ .., flag] if flag == "--remote" => (rest, true),
        all => (all, false),
    };
    let [_, name, size, iterations] = args else { return usage() };
    let (Ok(size), Ok(iterations)) = (size.parse::<usize>(), iterations.parse::<u64>()) else {
        return usage();
    };
    if size == 0 {
        return usage();
    }
    // One generic call per allocator instance (each a different static type), or the usage.
    macro_rules! on_allocator {
        ($f:ident) => {
            match name.as_str() {
                "temporal-slab" => $f(&TEMPORAL_SLAB, size, iterations),
                "glibc" => $f(&GLIBC, size, iterations),
                "mimalloc" => $f(&MIMALLOC, size, iterations),
                "jemalloc" => $f(&JEMALLOC, size, iterations),
                _ => return usage(),
            }
        };
    }
    if is_remote {
        let run = on_allocator!(remote);
        println!(
            "{name} size={size} objects={} remote ns/free={:.2} ns/alloc={:.2}",
            run.objects,
            run.ns_per_free(),
            run.ns_per_alloc()
        );
        return ExitCode::SUCCESS;
    }
    let ns = on_allocator!(drive);
    let per = if iterations == 0 { 0.0 } else { ns as f64 / iterations as f64 };
    println!("{name} size={size} iterations={iterations} ns={ns} ns/pair={per:.2}");
    ExitCode::SUCCESS
}
