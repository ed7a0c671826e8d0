//! Criterion benchmark: single-thread alloc+free pairs, temporal-slab against glibc, mimalloc
//! and jemalloc, all four in one run.
//!
//! Every allocator is an instance called through [`GlobalAlloc`] (none is installed as
//! `#[global_allocator]`; the harness itself runs on glibc). Groups, each with bench ids
//! `temporal-slab`, `glibc`, `mimalloc`, `jemalloc`:
//!
//! * `pair/<size>` for 16, 64, 256, 1024, 4096 B (align 8): one alloc immediately followed by the
//!   dealloc of the same layout; time per pair. This only exercises the hottest path.
//! * `batch/<size>`: allocate 1000 objects, then free them all in allocation order (same
//!   thread); reported per pair (criterion's iteration count is the number of pairs; a sample's
//!   leftover below 1000 runs as one shorter batch).
//! * `large-mix`: one pass over a fixed pseudo-random sequence of 32 sizes in 64 KiB..=1 MiB
//!   (the same for every allocator), each allocated, touched with one byte per 4 KiB page and
//!   freed; reported per pass of 32 pairs (throughput in pairs).
//!
//! Pointers and layouts go through [`black_box`] (see [`benches::pair`]). This is
//! `std::hint::black_box`, which criterion 0.5 recommends over its own `criterion::black_box`:
//! without the `real_blackbox` feature the latter is a volatile-read fallback that its own docs
//! say "may fail to prevent code from being eliminated".
//!
//! Run: `cargo bench -p benches --bench alloc_pairs` (about 2.5 minutes on 2 vCPUs).

use std::alloc::GlobalAlloc;
use std::hint::black_box;
use std::time::{Duration, Instant};

use benches::{
    batch, batch_slots, large_pair, large_sizes, layout, pair, BATCH, GLIBC, JEMALLOC, LARGE_LEN, MIMALLOC,
    SMALL_SIZES, TEMPORAL_SLAB,
};
use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};

/// Calls `$f(group, id, &allocator)` for each of the four allocators, in report order.
macro_rules! for_each_allocator {
    ($g:expr, $f:ident $(, $arg:expr)*) => {
        $f($g, "temporal-slab", &TEMPORAL_SLAB $(, $arg)*);
        $f($g, "glibc", &GLIBC $(, $arg)*);
        $f($g, "mimalloc", &MIMALLOC $(, $arg)*);
        $f($g, "jemalloc", &JEMALLOC $(, $arg)*);
    };
}

/// `pair/<size>`: one alloc+free pair per iteration.
fn bench_pair<A: GlobalAlloc>(g: &mut BenchmarkGroup<'_, WallTime>, id: &str, a: &A, size: usize) {
    let l = layout(size);
    g.bench_function(id, |b| {
        b.iter(|| {
            // SAFETY: `l` has a non-zero size.
            unsafe { pair(a, l) }
        })
    });
}

/// `batch/<size>`: 1000 allocs then 1000 frees; one criterion iteration is one pair.
fn bench_batch<A: GlobalAlloc>(g: &mut BenchmarkGroup<'_, WallTime>, id: &str, a: &A, size: usize) {
    let l = layout(size);
    let mut slots = batch_slots();
    g.bench_function(id, |b| {
        b.iter_custom(|pairs| {
            let full = pairs / BATCH as u64;
            let rest = (pairs % BATCH as u64) as usize;
            let start = Instant::now();
            for _ in 0..full {
                // SAFETY: `l` has a non-zero size.
                unsafe { batch(a, l, &mut slots) };
            }
            // SAFETY: `l` has a non-zero size.
            unsafe { batch(a, l, &mut slots[..rest]) };
            start.elapsed()
        })
    });
}

/// `large-mix`: one pass over the fixed sequence of large sizes per iteration.
fn bench_large<A: GlobalAlloc>(g: &mut BenchmarkGroup<'_, WallTime>, id: &str, a: &A, sizes: &[usize]) {
    let layouts: Vec<_> = sizes.iter().map(|&s| layout(s)).collect();
    g.bench_function(id, |b| {
        b.iter(|| {
            for &l in black_box(&layouts[..]) {
                // SAFETY: every large layout has a non-zero size.
                unsafe { large_pair(a, l) };
            }
        })
    });
}

fn pairs(c: &mut Criterion) {
    for size in SMALL_SIZES {
        let mut g = c.benchmark_group(format!("pair/{size}"));
        g.throughput(Throughput::Elements(1));
        for_each_allocator!(&mut g, bench_pair, size);
        g.finish();
    }
}

fn batches(c: &mut Criterion) {
    for size in SMALL_SIZES {
        let mut g = c.benchmark_group(format!("batch/{size}"));
        g.throughput(Throughput::Elements(1));
        for_each_allocator!(&mut g, bench_batch, size);
        g.finish();
    }
}

fn large(c: &mut Criterion) {
    let sizes = large_sizes();
    let mut g = c.benchmark_group("large-mix");
    g.throughput(Throughput::Elements(LARGE_LEN as u64));
    for_each_allocator!(&mut g, bench_large, &sizes);
    g.finish();
}

fn config() -> Criterion {
    Criterion::default().measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_secs(1)).sample_size(30)
}

criterion_group! {
    name = alloc_pairs;
    config = config();
    targets = pairs, batches, large
}
criterion_main!(alloc_pairs);
