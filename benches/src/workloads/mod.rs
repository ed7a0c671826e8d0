//! The workloads of the `suite` runner, written for this crate from the published descriptions
//! of the standard allocator benchmarks (no code taken from them). Each is ordinary Rust code
//! whose allocations go through the process's global allocator (in `suite`'s children, the
//! allocator under test, see [`crate::selected`]):
//!
//! * [`larson`]: server threads replacing random objects of random sizes, handing their object
//!   sets round a ring every round, so most frees are cross-thread (after Larson and Krishnan).
//! * [`xmalloc`]: producer threads allocate, consumer threads free (after xmalloc-test).
//! * [`cache_scratch`]: passive false sharing: each thread first frees a small object that the
//!   main thread allocated next to the other threads' ones, then allocates, writes and frees
//!   objects of that size (after Hoard's cache-scratch).
//! * [`alloc_test`]: one thread, random replacements in a working set with a size mix skewed to
//!   small objects (after alloc-test).
//! * [`malloc_large`]: one thread, random replacements of large blocks, 64 KiB to 16 MiB, every
//!   page written (after malloc-large).
//! * [`request_server`]: threads serve requests made of ordinary std work (strings, a hash map,
//!   a body buffer); with temporal-slab each request runs in its own
//!   [`temporal_slab::EpochDomain`], closed when the request ends.
//! * `lifetime-mixed`: the cycles of [`crate::churn`] with every 100th object kept 50 cycles.
//!
//! The `epochs` group ([`EPOCH_WORKLOADS`]: does telling temporal-slab about phases make a program
//! faster and smaller?), each run with and without the phase API, sharing [`phase`]:
//!
//! * [`epochs_mixed`] (`epochs-mixed`): cycles of 24-600 B objects of mixed kinds, 2% outliving
//!   their cycle by 30 cycles; an epoch per cycle.
//! * [`epochs_big_phase`] (`epochs-big-phase`): batches of 100 MiB, all freed at the batch end;
//!   an epoch per batch.
//! * [`epochs_domains`] (`epochs-domains`, `epochs-domains-10k`): overlapping requests, 96 or
//!   10,000 open at once over all threads; a labelled domain per request.
//! * [`domain_cycle`] (`domain-cycle`): the cost of one domain's open, enter, exit and close.
//!
//! Sizes are fixed (a [`Scale`] picks the full or the quick set) and the pseudo-random sequences
//! are seeded constants, so every allocator gets the same operations. Times come from
//! [`on_threads`]: from the moment every thread has finished its set-up to the moment every
//! thread has finished its work; set-up and teardown are not timed.

/// Evaluates `$body` with `$c` bound to `&mut` timed calls (room for `$allocs` alloc and `$frees`
/// free samples) when `$latency`, else to plain calls, and yields the [`crate::block::Samples`]
/// (empty for plain calls). Workers are generic over [`crate::block::Calls`]; a closure cannot
/// be, hence a macro.
macro_rules! with_calls {
    ($latency:expr, $allocs:expr, $frees:expr, |$c:ident| $body:expr) => {{
        if $latency {
            let mut timed = $crate::block::Timed::with_capacity($allocs, $frees);
            {
                let $c = &mut timed;
                $body;
            }
            $crate::block::Calls::into_samples(timed)
        } else {
            let $c = &mut $crate::block::Plain;
            $body;
            $crate::block::Samples::default()
        }
    }};
}

pub mod alloc_test;
pub mod cache_scratch;
pub mod domain_cycle;
pub mod epochs_big_phase;
pub mod epochs_domains;
pub mod epochs_mixed;
pub mod larson;
pub mod malloc_large;
pub mod phase;
pub mod request_server;
pub mod xmalloc;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Barrier, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Full-size runs (`suite all`) or tiny ones (`suite quick`, a smoke test).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    /// The sizes of the reported measurements.
    Full,
    /// About 1/100 of the work: checks that everything runs, measures nothing.
    Quick,
}

/// A workload's name and shape.
#[derive(Clone, Copy, Debug)]
pub struct Workload {
    /// Name on the command line and in the results.
    pub name: &'static str,
    /// Run at 1, 2, 4 and 8 threads (else at 1 only).
    pub threaded: bool,
    /// Has a latency pass timing single alloc and free calls.
    pub call_latency: bool,
    /// What one counted operation is.
    pub op: &'static str,
}

/// Every workload, in report order.
pub const WORKLOADS: [Workload; 7] = [
    Workload { name: "alloc-test", threaded: false, call_latency: true, op: "step (free and/or alloc)" },
    Workload { name: "larson", threaded: true, call_latency: true, op: "free + alloc" },
    Workload { name: "xmalloc", threaded: true, call_latency: true, op: "object (alloc + free)" },
    Workload { name: "cache-scratch", threaded: true, call_latency: false, op: "object (alloc, writes, free)" },
    Workload { name: "malloc-large", threaded: false, call_latency: true, op: "step (free + alloc)" },
    Workload { name: "request-server", threaded: true, call_latency: false, op: "request" },
    Workload { name: "lifetime-mixed", threaded: false, call_latency: false, op: "object (alloc + free)" },
];

/// The `epochs` group, in report order (see the module docs). Not part of [`WORKLOADS`]: `suite
/// epochs` runs them (and `suite quick`, at quick sizes).
pub const EPOCH_WORKLOADS: [Workload; 5] = [
    Workload { name: "epochs-mixed", threaded: false, call_latency: false, op: "object" },
    Workload { name: "epochs-big-phase", threaded: false, call_latency: false, op: "object" },
    Workload { name: "epochs-domains", threaded: true, call_latency: false, op: "request" },
    Workload { name: "epochs-domains-10k", threaded: true, call_latency: false, op: "request" },
    Workload { name: "domain-cycle", threaded: true, call_latency: false, op: "domain cycle" },
];

/// The workload named `name` (in [`WORKLOADS`] or [`EPOCH_WORKLOADS`]).
pub fn find(name: &str) -> Option<Workload> {
    WORKLOADS.iter().chain(&EPOCH_WORKLOADS).copied().find(|w| w.name == name)
}

/// Whether `name` is in the `epochs` group.
pub fn in_epochs_group(name: &str) -> bool {
    EPOCH_WORKLOADS.iter().any(|w| w.name == name)
}

/// How to run a workload.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Worker threads.
    pub threads: usize,
    /// Full or quick sizes.
    pub scale: Scale,
    /// Time single calls (the latency pass) instead of running flat out.
    pub latency: bool,
    /// Use temporal-slab's phase API where the workload has phases (a domain per request in
    /// `request-server`, an epoch per cycle in `lifetime-mixed`, and the `epochs` group's calls).
    /// Only for temporal-slab.
    pub epochs: bool,
    /// The `epochs` group: take the end readings ([`Outcome::end`]), with this idle time
    /// between the two RSS readings. Other workloads ignore it.
    pub idle: Option<Duration>,
}

/// What one run of a workload measured.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Time from all threads ready to all threads done (ns).
    pub elapsed_ns: u64,
    /// Operations done (see [`Workload::op`]).
    pub ops: u64,
    /// Latency pass: ticks of single alloc calls (clock overhead included).
    pub alloc_ticks: Vec<u32>,
    /// Latency pass: ticks of single free calls (clock overhead included).
    pub free_ticks: Vec<u32>,
    /// Latency pass in a `path-trace` build: the steps of each alloc call (parallel to
    /// `alloc_ticks`; empty otherwise).
    pub alloc_paths: Vec<u32>,
    /// The same for the free calls.
    pub free_paths: Vec<u32>,
    /// Latency pass: ticks of whole operations, where the workload times those instead
    /// (`request-server`: one request).
    pub op_ticks: Vec<u32>,
    /// Workload-specific figures.
    pub extra: Option<Value>,
    /// The `epochs` group's end readings, when [`Options::idle`] asked for them.
    pub end: Option<phase::End>,
}

impl Outcome {
    /// An outcome holding the latency pass's samples (the rest to be filled in).
    pub fn with_samples(s: crate::block::Samples) -> Outcome {
        Outcome {
            alloc_ticks: s.alloc,
            free_ticks: s.free,
            alloc_paths: s.alloc_paths,
            free_paths: s.free_paths,
            ..Outcome::default()
        }
    }
}

/// Runs the workload `name`.
///
/// # Errors
/// An unknown workload, or a failure reading `/proc` (`lifetime-mixed`, the `epochs` group's end
/// readings).
pub fn run(name: &str, o: &Options) -> Result<Outcome, String> {
    let threads = o.threads.max(1);
    let quick = o.scale == Scale::Quick;
    Ok(match name {
        "alloc-test" => alloc_test::run(if quick { &alloc_test::QUICK } else { &alloc_test::FULL }, o.latency),
        "larson" => larson::run(threads, if quick { &larson::QUICK } else { &larson::FULL }, o.latency),
        "xmalloc" => xmalloc::run(threads, if quick { &xmalloc::QUICK } else { &xmalloc::FULL }, o.latency),
        "cache-scratch" => {
            cache_scratch::run(threads, if quick { &cache_scratch::QUICK } else { &cache_scratch::FULL })
        }
        "malloc-large" => malloc_large::run(if quick { &malloc_large::QUICK } else { &malloc_large::FULL }, o.latency),
        "request-server" => request_server::run(
            threads,
            if quick { &request_server::QUICK } else { &request_server::FULL },
            o.epochs,
            o.latency,
        ),
        "lifetime-mixed" => lifetime_mixed(quick, o.epochs)?,
        "epochs-mixed" => {
            epochs_mixed::run(if quick { &epochs_mixed::QUICK } else { &epochs_mixed::FULL }, o.epochs, o.idle)?
        }
        "epochs-big-phase" => epochs_big_phase::run(
            if quick { &epochs_big_phase::QUICK } else { &epochs_big_phase::FULL },
            o.epochs,
            o.idle,
        )?,
        "epochs-domains" => epochs_domains::run(
            threads,
            if quick { &epochs_domains::DOMAINS_QUICK } else { &epochs_domains::DOMAINS },
            o.epochs,
            o.idle,
        )?,
        "epochs-domains-10k" => epochs_domains::run(
            threads,
            if quick { &epochs_domains::DOMAINS_10K_QUICK } else { &epochs_domains::DOMAINS_10K },
            o.epochs,
            o.idle,
        )?,
        "domain-cycle" => {
            domain_cycle::run(threads, if quick { &domain_cycle::QUICK } else { &domain_cycle::FULL }, o.epochs)
        }
        other => return Err(format!("unknown workload {other:?}")),
    })
}

/// `lifetime-mixed` sizes: full and quick.
pub const LIFETIME_MIXED_FULL: crate::churn::Sizes = crate::churn::Sizes { cycles: 200, objects: 100_000 };
/// See [`LIFETIME_MIXED_FULL`].
pub const LIFETIME_MIXED_QUICK: crate::churn::Sizes = crate::churn::Sizes { cycles: 10, objects: 5_000 };

fn lifetime_mixed(quick: bool, epochs: bool) -> Result<Outcome, String> {
    let sizes = if quick { LIFETIME_MIXED_QUICK } else { LIFETIME_MIXED_FULL };
    let r = crate::churn::drive(&crate::selected::SelectedAllocator, epochs, true, sizes)?;
    let p = |s: &[u64], q| crate::churn::pct(s, q);
    Ok(Outcome {
        elapsed_ns: r.wall_ns,
        ops: (sizes.cycles * sizes.objects) as u64,
        extra: Some(serde_json::json!({
            "cycles": sizes.cycles,
            "objects_per_cycle": sizes.objects,
            "object_size": crate::churn::OBJECT_SIZE,
            "cycle_p50_ns": p(&r.cycle_ns, 50),
            "cycle_p99_ns": p(&r.cycle_ns, 99),
            "close_p50_ns": r.close_ns.as_deref().map(|s| p(s, 50)),
            "close_p99_ns": r.close_ns.as_deref().map(|s| p(s, 99)),
            "rss_end_with_kept_bytes": r.rss_end,
            "kept_live_bytes": r.kept_live * crate::churn::OBJECT_SIZE,
            "minor_faults": r.minflt,
            "ts": r.ts,
        })),
        ..Outcome::default()
    })
}

/// A small, fast, seeded pseudo-random generator (xorshift64*), the same sequence for every
/// allocator.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator for stream `stream` (thread index, ...) of a fixed seed.
    pub fn new(stream: u64) -> Rng {
        // Distinct non-zero states per stream (the golden-ratio increment of splitmix64).
        let mut z = 0x2545_F491_4F6C_DD1D_u64.wrapping_add(stream.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((z ^ (z >> 31)) | 1)
    }

    /// The next 64 random bits.
    #[inline(always)]
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (`n > 0`; the multiply-shift method, bias below 2^-32 for the `n` used).
    #[inline(always)]
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64() >> 32) * n as u128) >> 32) as usize
    }

    /// Uniform in `lo..=hi`.
    #[inline(always)]
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    /// Log-uniform in `lo..=hi` (as many values per octave), `0 < lo <= hi`.
    pub fn log_uniform(&mut self, lo: usize, hi: usize) -> usize {
        let u = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let (a, b) = ((lo as f64).ln(), (hi as f64).ln());
        ((a + u * (b - a)).exp() as usize).clamp(lo, hi)
    }
}

/// The start and end lines every worker of [`on_threads`] crosses: once its set-up is done, and
/// once its work is done. The workers read the clock themselves (a waiting main thread may not get
/// a CPU back until the workers are done when there are more threads than CPUs).
#[derive(Debug)]
pub struct Gate {
    start: Barrier,
    end: Barrier,
    base: Instant,
    /// Earliest start, ns after `base`.
    first_start: AtomicU64,
    /// Latest end, ns after `base`.
    last_end: AtomicU64,
}

impl Gate {
    fn since_base(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Set-up done: waits for every worker, then starts this worker's clock.
    pub fn start(&self) {
        self.start.wait();
        self.first_start.fetch_min(self.since_base(), Ordering::Relaxed);
    }

    /// Work done: stops this worker's clock, then waits for every worker.
    pub fn end(&self) {
        self.last_end.fetch_max(self.since_base(), Ordering::Relaxed);
        self.end.wait();
    }
}

/// Runs `body(t, gate)` for `t` in `0..threads`, each on its own thread, and times the span from
/// the first worker past [`Gate::start`] to the last worker at [`Gate::end`] (each worker must
/// call both, once, in that order). Returns the nanoseconds and the workers' results.
///
/// # Panics
/// If a worker panics.
pub fn on_threads<R: Send>(threads: usize, body: impl Fn(usize, &Gate) -> R + Sync) -> (u64, Vec<R>) {
    let gate = Gate {
        start: Barrier::new(threads),
        end: Barrier::new(threads),
        base: Instant::now(),
        first_start: AtomicU64::new(u64::MAX),
        last_end: AtomicU64::new(0),
    };
    let results = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (gate, body) = (&gate, &body);
                s.spawn(move || body(t, gate))
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("a workload thread panicked")).collect()
    });
    // Relaxed: the joins above order every worker's updates before these loads.
    let ns = gate.last_end.load(Ordering::Relaxed).saturating_sub(gate.first_start.load(Ordering::Relaxed));
    (ns, results)
}

/// Locks `m`, ignoring poisoning (a panicking worker aborts the run anyway).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Concatenates per-thread samples.
pub fn concat(parts: impl IntoIterator<Item = Vec<u32>>) -> Vec<u32> {
    let mut all = Vec::new();
    for p in parts {
        all.extend_from_slice(&p);
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_ranges_and_streams() {
        let mut r = Rng::new(0);
        let mut s = Rng::new(1);
        assert_ne!(r.next_u64(), s.next_u64());
        for _ in 0..10_000 {
            assert!(r.below(7) < 7);
            assert!((8..=1000).contains(&r.range(8, 1000)));
            assert!((65536..=16 << 20).contains(&r.log_uniform(65536, 16 << 20)));
        }
        assert_eq!(Rng::new(5).next_u64(), Rng::new(5).next_u64());
    }
}
