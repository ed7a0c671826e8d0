//! `attach_cost overhead`: what being sampled at 10 Hz costs a busy target, configurations
//! interleaved over rounds.

use super::*;

/// This thread's time on the CPU and time spent runnable but waiting for a CPU, in ns
/// (`/proc/thread-self/schedstat`; zeros if unreadable).
pub(super) fn own_schedstat() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    let mut f = s.split_whitespace().map(|v| v.parse::<u64>().unwrap_or(0));
    (f.next().unwrap_or(0), f.next().unwrap_or(0))
}

pub(super) fn run_work(o: &Options) -> Result<(), String> {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut slots: Vec<Vec<u8>> = (0..o.working_set).map(|_| object(rng.size(), 1)).collect();
    let (cpu0, wait0) = own_schedstat();
    let t = Instant::now();
    for i in 0..o.pairs {
        let k = rng.below(o.working_set);
        slots[k] = object(rng.size(), i as u8);
    }
    let ns = t.elapsed().as_nanos();
    let (cpu1, wait1) = own_schedstat();
    // The reclaimer thread's CPU time over the process's life (it is the only other thread).
    let reclaimer_ns: u64 = other_threads().iter().filter_map(|t| thread_cpu_ns(t)).sum();
    black_box(&slots);
    let published = if snapshot_of(std::process::id()).is_ok() { "yes" } else { "no" };
    println!(
        "work ns={ns} cpu_ns={} wait_ns={} reclaimer_ns={reclaimer_ns} pairs={} ticks={} published={published}",
        cpu1.saturating_sub(cpu0),
        wait1.saturating_sub(wait0),
        o.pairs,
        temporal_slab::snapshot().global.reclaimer_ticks
    );
    Ok(())
}

/// A configuration of the overhead run.
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Config {
    NoPublish,
    Publish,
    InProc,
    StatsDump,
}

impl Config {
    const ALL: [Config; 4] = [Config::NoPublish, Config::Publish, Config::InProc, Config::StatsDump];

    pub(super) fn name(self) -> &'static str {
        match self {
            Config::NoPublish => "`TSLAB_PUBLISH=0`",
            Config::Publish => "publish (default, 10 Hz)",
            Config::InProc => "publish + in-process `snapshot_of` at 10 Hz",
            Config::StatsDump => "publish + `stats_dump --pid` at 10 Hz",
        }
    }
}

/// One child run: its loop time and what the reader did.
pub(super) struct WorkRun {
    pub(super) loop_ns: u64,
    pub(super) cpu_ns: u64,
    pub(super) wait_ns: u64,
    pub(super) reclaimer_ns: u64,
    pub(super) ticks: u64,
    pub(super) published: bool,
    pub(super) reads_ok: usize,
    pub(super) reads_failed: usize,
    pub(super) read_times: Vec<Duration>,
}

pub(super) fn run_work_child(o: &Options, cfg: Config, bin: &Path) -> Result<WorkRun, String> {
    let pairs = o.pairs.to_string();
    let ws = o.working_set.to_string();
    let mut cmd = self_command(&["work", "--pairs", &pairs, "--working-set", &ws])?;
    if cfg == Config::NoPublish {
        cmd.env("TSLAB_PUBLISH", "0");
    }
    let mut child =
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).spawn().map_err(|e| format!("starting work: {e}"))?;
    let pid = child.id();
    let pid_s = pid.to_string();
    let (mut reads_ok, mut reads_failed, mut read_times) = (0, 0, Vec::new());
    let mut next = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().map_err(|e| e.to_string())? {
            break st;
        }
        match cfg {
            Config::NoPublish | Config::Publish => std::thread::sleep(Duration::from_millis(5)),
            Config::InProc | Config::StatsDump => {
                let now = Instant::now();
                if now < next {
                    std::thread::sleep((next - now).min(Duration::from_millis(5)));
                    continue;
                }
                next += PERIOD;
                let t = Instant::now();
                let ok = if cfg == Config::InProc {
                    black_box(snapshot_of(pid)).is_ok()
                } else {
                    Command::new(bin)
                        .args(["--pid", &pid_s, "--no-text"])
                        .stdin(Stdio::null())
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status()
                        .is_ok_and(|s| s.success())
                };
                if ok {
                    reads_ok += 1;
                    read_times.push(t.elapsed());
                } else {
                    reads_failed += 1;
                }
            }
        }
    };
    let mut out = String::new();
    child.stdout.take().ok_or("no work stdout")?.read_to_string(&mut out).map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("work child failed: {status}"));
    }
    let line = out.lines().find(|l| l.starts_with("work ")).ok_or("work child printed no result")?;
    let field = |key: &str| {
        line.split_whitespace().find_map(|kv| kv.strip_prefix(key).and_then(|v| v.strip_prefix('='))).unwrap_or("")
    };
    Ok(WorkRun {
        loop_ns: field("ns").parse().map_err(|_| format!("bad work line {line:?}"))?,
        cpu_ns: field("cpu_ns").parse().unwrap_or(0),
        wait_ns: field("wait_ns").parse().unwrap_or(0),
        reclaimer_ns: field("reclaimer_ns").parse().unwrap_or(0),
        ticks: field("ticks").parse().unwrap_or(0),
        published: field("published") == "yes",
        reads_ok,
        reads_failed,
        read_times,
    })
}

pub(super) fn run_overhead(o: &Options) -> Result<(), String> {
    let bin = stats_dump_path(o)?;
    let n = Config::ALL.len();
    run_work_child(o, Config::NoPublish, &bin)?; // warm-up, discarded
    let mut runs: Vec<Vec<WorkRun>> = (0..n).map(|_| Vec::new()).collect();
    for round in 0..o.runs {
        for k in 0..n {
            let c = (round + k) % n;
            let r = run_work_child(o, Config::ALL[c], &bin)?;
            eprintln!("round {round} {}: {:.1} ms", Config::ALL[c].name(), r.loop_ns as f64 / 1e6);
            runs[c].push(r);
        }
    }
    let base: Vec<f64> = runs[0].iter().map(|r| r.loop_ns as f64 / 1e6).collect();
    let base_p50 = median_f64(&base);
    println!(
        "workload: {} alloc+free pairs, sizes {MIN_SIZE}..={MAX_SIZE} B, working set {} objects, single thread; \
         {} rounds, configurations interleaved",
        o.pairs, o.working_set, o.runs
    );
    println!();
    println!(
        "| configuration | loop p50 | min | max | slowdown (p50 vs p50) | slowdown (median of per-round ratios) | \
         reclaimer ticks per run | reads ok / failed per run | reader wall p50 |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (c, rs) in Config::ALL.iter().zip(&runs) {
        let t: Vec<f64> = rs.iter().map(|r| r.loop_ns as f64 / 1e6).collect();
        let p50 = median_f64(&t);
        let ratios: Vec<f64> = t.iter().zip(&base).map(|(a, b)| (a / b - 1.0) * 100.0).collect();
        let reads: Vec<Duration> = rs.iter().flat_map(|r| r.read_times.iter().copied()).collect();
        let published = rs.iter().all(|r| r.published);
        let ticks: Vec<f64> = rs.iter().map(|r| r.ticks as f64).collect();
        let ticks =
            format!("{:.0} ticks, {}", median_f64(&ticks), if published { "published" } else { "not published" });
        let reads_col = if reads.is_empty() && rs.iter().all(|r| r.reads_failed == 0) {
            "-".to_string()
        } else {
            format!(
                "{:.0} / {:.0}",
                median_f64(&rs.iter().map(|r| r.reads_ok as f64).collect::<Vec<_>>()),
                median_f64(&rs.iter().map(|r| r.reads_failed as f64).collect::<Vec<_>>())
            )
        };
        let read_p50 = if reads.is_empty() { "-".to_string() } else { format!("{:.3} ms", summarize(&reads).p50) };
        println!(
            "| {} | {:.1} ms | {:.1} ms | {:.1} ms | {:+.2}% | {:+.2}% | {ticks} | {reads_col} | {read_p50} |",
            c.name(),
            p50,
            t.iter().copied().fold(f64::INFINITY, f64::min),
            t.iter().copied().fold(0.0, f64::max),
            (p50 / base_p50 - 1.0) * 100.0,
            median_f64(&ratios),
        );
    }
    println!();
    println!(
        "| configuration | main-thread CPU p50 | slowdown (p50 vs p50) | slowdown (median of per-round ratios) | \
         runnable-but-waiting p50 | max | reclaimer thread CPU p50 (whole run) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let base_cpu: Vec<f64> = runs[0].iter().map(|r| r.cpu_ns as f64 / 1e6).collect();
    let base_cpu_p50 = median_f64(&base_cpu);
    for (c, rs) in Config::ALL.iter().zip(&runs) {
        let cpu: Vec<f64> = rs.iter().map(|r| r.cpu_ns as f64 / 1e6).collect();
        let wait: Vec<f64> = rs.iter().map(|r| r.wait_ns as f64 / 1e6).collect();
        let ratios: Vec<f64> = cpu.iter().zip(&base_cpu).map(|(a, b)| (a / b - 1.0) * 100.0).collect();
        let p50 = median_f64(&cpu);
        println!(
            "| {} | {:.1} ms | {:+.2}% | {:+.2}% | {:.2} ms | {:.2} ms | {:.2} ms |",
            c.name(),
            p50,
            (p50 / base_cpu_p50 - 1.0) * 100.0,
            median_f64(&ratios),
            median_f64(&wait),
            wait.iter().copied().fold(0.0, f64::max),
            median_f64(&rs.iter().map(|r| r.reclaimer_ns as f64 / 1e6).collect::<Vec<_>>()),
        );
    }
    Ok(())
}
