//! The child side: one allocator, one workload, one thread count, measured and printed as one
//! JSON line.

use super::*;

/// The allocator [`SelectedAllocator`] must be using for `name`.
pub(super) fn choice_for(name: &str) -> Choice {
    match name {
        "temporal-slab" | TS_NOEPOCHS => Choice::TemporalSlab,
        "mimalloc" => Choice::Mimalloc,
        "jemalloc" => Choice::Jemalloc,
        _ => Choice::Glibc,
    }
}

pub(super) fn run_one(o: &OneOptions) -> ExitCode {
    match measure(o) {
        Ok(v) => {
            println!("{v}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("suite: {} {} x{}: {e}", o.allocator, o.workload.name, o.threads);
            ExitCode::FAILURE
        }
    }
}

pub(super) fn measure(o: &OneOptions) -> Result<Value, String> {
    let want = choice_for(&o.allocator);
    let got = selected::choice();
    if got != want {
        return Err(format!(
            "this process allocates with {} but {} was asked for: run it with {}={} (`suite all` does)",
            got.name(),
            o.allocator,
            selected::ENV,
            want.name()
        ));
    }
    let tunables = std::env::var("GLIBC_TUNABLES").unwrap_or_default();
    if o.allocator == "glibc-notrim" && !tunables.contains(NOTRIM_TUNABLES) {
        return Err(format!("glibc-notrim needs GLIBC_TUNABLES={NOTRIM_TUNABLES} (read by glibc at start-up)"));
    }
    if o.allocator == TCMALLOC {
        let maps = procfs::read_proc("/proc/self/maps")?;
        if !maps.contains("libtcmalloc") {
            return Err(format!("tcmalloc is not mapped in this process: run it with LD_PRELOAD={TCMALLOC_LIB}"));
        }
    }
    let group = workloads::in_epochs_group(o.workload.name);
    if o.workload.name == "domain-cycle" && want != Choice::TemporalSlab {
        return Err(
            "domain-cycle measures temporal-slab's domain calls: temporal-slab or temporal-slab-noepochs".into()
        );
    }
    let epochs = o.allocator == "temporal-slab" && (PHASED.contains(&o.workload.name) || group);
    let threads = if o.workload.threaded { o.threads } else { 1 };
    let scale = if o.quick { Scale::Quick } else { Scale::Full };
    let idle = if o.quick { phase::QUICK_IDLE } else { phase::IDLE };

    let tpn = clock::ticks_per_ns();
    let mut overhead = clock::overhead_samples(OVERHEAD_SAMPLES);
    let timer = Percentiles::of_ticks(&mut overhead, tpn).map(|p| {
        let mut v = p.to_json();
        // The smallest gap between two distinct region lengths (sorted above): the clock's step.
        let step = overhead.windows(2).map(|w| w[1] - w[0]).filter(|&d| d > 0).min().unwrap_or(0);
        v["resolution_ns"] = json!(f64::from(step) / tpn);
        v
    });
    drop(overhead);

    let rss_start = procfs::rss_bytes()?;
    let faults0 = procfs::minor_faults()?;
    let mut times = Vec::with_capacity(o.reps);
    let mut ops = 0;
    let mut extra = None;
    let mut end = None;
    let opts = Options { threads, scale, latency: false, epochs, idle: None };
    for rep in 0..o.reps {
        // The epochs group's end readings (with their idle time) in the last repetition only.
        let last = rep + 1 == o.reps && group;
        let out = workloads::run(o.workload.name, &Options { idle: last.then_some(idle), ..opts })?;
        times.push(out.elapsed_ns);
        ops = out.ops;
        extra = out.extra;
        end = out.end;
    }
    let peak = procfs::peak_rss_bytes()?;
    let rss_end = procfs::rss_bytes()?;
    let faults = procfs::minor_faults()?.saturating_sub(faults0);
    let ts = (want == Choice::TemporalSlab).then(ts_figures);

    let mut latency = json!(null);
    if o.latency && (o.workload.call_latency || o.workload.name == "request-server") {
        let mut out = workloads::run(o.workload.name, &Options { latency: true, ..opts })?;
        // A `path-trace` build: which steps the calls took, before the sorts below reorder the
        // ticks. The table goes to stderr (stdout is the one JSON line).
        let traced = [("alloc", &out.alloc_ticks, &out.alloc_paths), ("free", &out.free_ticks, &out.free_paths)].map(
            |(what, ticks, masks)| {
                let rows = benches::paths::breakdown(ticks, masks, tpn);
                if !rows.is_empty() {
                    let title = format!("{} {} x{threads}: {what} calls by steps taken", o.allocator, o.workload.name);
                    eprint!("{}", benches::paths::render(&title, &rows, 12));
                }
                (!rows.is_empty()).then(|| benches::paths::to_json(&rows))
            },
        );
        let p = |s: &mut Vec<u32>| Percentiles::of_ticks(s, tpn).map(|p| p.to_json());
        let [alloc_paths, free_paths] = traced;
        latency = json!({
            "alloc_paths": alloc_paths,
            "free_paths": free_paths,
            "alloc": p(&mut out.alloc_ticks),
            "free": p(&mut out.free_ticks),
            "op": p(&mut out.op_ticks),
        });
    }

    let median = median_u64(&times);
    Ok(json!({
        "allocator": o.allocator,
        "workload": o.workload.name,
        "threads": threads,
        "scale": if o.quick { "quick" } else { "full" },
        "epochs": epochs,
        "reps": o.reps,
        "times_ns": times,
        "median_ns": median,
        "ops": ops,
        "op": o.workload.op,
        "ops_per_s": if median == 0 { 0.0 } else { ops as f64 * 1e9 / median as f64 },
        "rss_start_bytes": rss_start,
        "peak_rss_bytes": peak,
        "rss_end_bytes": rss_end,
        "minor_faults": faults,
        "timer": timer,
        "ticks_per_ns": tpn,
        "latency": latency,
        "extra": extra,
        "end": end.map(|e| e.to_json()),
        "ts": ts,
        "glibc_tunables": tunables,
        "stats_counters": cfg!(feature = "stats"),
    }))
}

/// temporal-slab's own view after the repetitions (counters: totals over all of them).
pub(super) fn ts_figures() -> Value {
    let s = temporal_slab::snapshot();
    json!({
        "madvise_calls": s.global.madvise_calls,
        "total_madvise_calls": s.total_madvise_calls,
        "madvise_bytes": s.global.madvise_bytes,
        "segments": s.global.segments,
        "resident_estimate_bytes": s.global.resident_bytes,
        "epoch_close_calls": s.global.epoch_close_calls,
        "ring_overflows": s.global.ring_overflows,
        "domain_misuse_out_of_order": s.global.domain_misuse_out_of_order,
        "domain_misuse_wrong_thread": s.global.domain_misuse_wrong_thread,
        "domain_misuse_passed_era": s.global.domain_misuse_passed_era,
        "domain_misuse_too_deep": s.global.domain_misuse_too_deep,
        "slow_path_hits": s.total_slow_path_hits,
        "large_cache_hits": s.global.large_cache_hits,
    })
}

pub(super) fn median_u64(v: &[u64]) -> u64 {
    let mut s = v.to_vec();
    s.sort_unstable();
    s.get(s.len().saturating_sub(1) / 2).copied().unwrap_or(0)
}

pub(super) fn median_f64(v: &[f64]) -> Option<f64> {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s.get(s.len().saturating_sub(1) / 2).copied()
}
