//! `attach_cost snapshot`: what one attach and one snapshot cost, reader and target side.

use super::*;

pub(super) fn run_snapshot(o: &Options) -> Result<(), String> {
    let bin = stats_dump_path(o)?;
    let t_start = Instant::now();
    let target = start_target(o)?;
    let setup = t_start.elapsed();
    let result = measure_snapshot(o, &bin, &target, setup);
    target.stop();
    result
}

pub(super) fn measure_snapshot(o: &Options, bin: &Path, target: &Target, setup: Duration) -> Result<(), String> {
    let pid: u32 = target.field("pid").parse().map_err(|_| "bad pid in the ready line")?;
    let pid_s = pid.to_string();

    // (a) in process.
    let first = snapshot_of(pid).map_err(|e| e.to_string())?;
    let json = serde_json::to_vec_pretty(&first).map_err(|e| e.to_string())?;
    let mut attach = Vec::with_capacity(o.inproc_runs);
    let mut ser = Vec::with_capacity(o.inproc_runs);
    for _ in 0..o.inproc_runs {
        let t = Instant::now();
        let s = snapshot_of(pid).map_err(|e| e.to_string())?;
        attach.push(t.elapsed());
        let t = Instant::now();
        serde_json::to_writer_pretty(std::io::sink(), &s).map_err(|e| e.to_string())?;
        ser.push(t.elapsed());
        black_box(s);
    }

    // (b) the stats_dump binary, the three variants interleaved.
    let variants: [(&str, Vec<&str>); 3] = [
        ("`stats_dump --version` (process start only)", vec!["--version"]),
        ("`stats_dump --pid P --no-json --no-text` (start + attach)", vec!["--pid", &pid_s, "--no-json", "--no-text"]),
        ("`stats_dump --pid P --no-text` (start + attach + JSON)", vec!["--pid", &pid_s, "--no-text"]),
    ];
    let mut cli: Vec<Vec<Duration>> = vec![Vec::with_capacity(o.cli_runs); variants.len()];
    for (_, args) in &variants {
        time_stats_dump(bin, args)?; // warm-up (page cache, binary mapping)
    }
    for _ in 0..o.cli_runs {
        for ((_, args), samples) in variants.iter().zip(&mut cli) {
            samples.push(time_stats_dump(bin, args)?);
        }
    }

    println!(
        "target: pid {pid}, {} objects requested, {} live small objects ({:.1} MiB requested), {} active epochs, \
         {} epochs holding live bytes, {} slabs, RSS {:.1} MiB, ring overflows {}; set-up {:.1} s",
        target.field("objects"),
        target.field("live_objects"),
        target.field("live_bytes").parse::<f64>().unwrap_or(f64::NAN) / 1048576.0,
        target.field("active_epochs"),
        target.field("epochs_holding"),
        target.field("net_slabs"),
        target.field("rss_bytes").parse::<f64>().unwrap_or(f64::NAN) / 1048576.0,
        target.field("ring_overflows"),
        setup.as_secs_f64(),
    );
    println!(
        "snapshot as read: {} live objects, {} active epochs, {} epochs holding bytes; JSON {} bytes",
        live_objects(&first),
        first.active_epoch_count,
        epochs_holding(&first),
        json.len()
    );
    println!();
    println!("| measurement | n | p50 | p99 | min | max |");
    println!("|---|---:|---:|---:|---:|---:|");
    let row = |name: &str, s: &Summary| {
        println!("| {name} | {} | {:.3} ms | {:.3} ms | {:.3} ms | {:.3} ms |", s.n, s.p50, s.p99, s.min, s.max);
    };
    row("(a) `snapshot_of(pid)` in process", &summarize(&attach));
    row("(a) JSON (pretty) of that snapshot, in process", &summarize(&ser));
    let sums: Vec<Summary> = cli.iter().map(|s| summarize(s)).collect();
    for ((name, _), s) in variants.iter().zip(&sums) {
        row(&format!("(b) {name}"), s);
    }
    println!(
        "| (c) target: `temporal_slab::snapshot()` (gather + Vecs), back to back | {GATHER_RUNS} | \
         {} ms | {} ms | {} ms | |",
        target.field("gather_p50_ms"),
        target.field("gather_p99_ms"),
        target.field("gather_min_ms"),
    );
    println!(
        "| (c) target: the same, one call every 100 ms (cache cold, as the publisher runs) | {COLD_RUNS} | {} ms | {} ms \
         | {} ms | |",
        target.field("cold_p50_ms"),
        target.field("cold_p99_ms"),
        target.field("cold_min_ms"),
    );
    println!(
        "| (c) target: reclaimer thread CPU per tick ({} ticks over {} s, {} thread(s)) | | {} us | | | |",
        target.field("ticks"),
        TICK_WINDOW.as_secs(),
        target.field("reclaimer_threads"),
        target.field("tick_cpu_us"),
    );
    println!(
        "| (c) baseline: CPU per wake of a thread that only sleeps 100 ms at a time (same window) | | {} us | | | |",
        target.field("sleeper_cpu_us"),
    );
    println!();
    println!(
        "stats_dump attach cost (p50 differences): attach = {:.3} ms, attach + JSON = {:.3} ms, over a process start of \
         {:.3} ms",
        sums[1].p50 - sums[0].p50,
        sums[2].p50 - sums[0].p50,
        sums[0].p50
    );
    Ok(())
}
