//! What attaching to a running process costs: `stats_dump --pid` time against a big target, and
//! the slowdown of a target that is sampled at 10 Hz. temporal-slab is this program's global
//! allocator (unlike the other benchmarks, which call allocators as instances), so the target
//! publishes its counters exactly as a real program does.
//!
//! ```text
//! attach_cost target   [--objects N] [--epochs E] [--seconds S]
//! attach_cost snapshot [--objects N] [--epochs E] [--inproc-runs N] [--cli-runs N] [--stats-dump PATH]
//! attach_cost overhead [--pairs N] [--working-set N] [--runs N] [--stats-dump PATH]
//! attach_cost work     [--pairs N] [--working-set N]
//! ```
//!
//! * `target` (defaults: 1,000,000 objects, 16 epochs): allocates `N` live objects of
//!   pseudo-random sizes 16..=512 B (one byte of each written), `N / E` of them in each of `E - 1`
//!   labelled [`EpochDomain`]s (never closed) and the rest in the current epoch, so `E` ring slots
//!   are ACTIVE and hold memory. Then, in this process: 50 back-to-back
//!   [`temporal_slab::snapshot`] calls (the publisher's gather plus building the `Vec`s of a
//!   [`Snapshot`]; an upper bound of the gather only while the slab metadata is in the cache),
//!   20 such calls 100 ms apart (cache cold, as the publisher gathers), and the reclaimer
//!   thread's CPU time per tick over 3 s (`/proc/self/task/TID/schedstat` delta /
//!   `reclaimer_ticks` delta: the whole tick, i.e. gather + region write + decay + the wake-up),
//!   next to the CPU time per wake-up of a thread that only sleeps 100 ms at a time, measured
//!   over the same window (what the kernel charges for the wake-up alone).
//!   It prints one line `ready pid=PID key=value...` once [`snapshot_of`] of its own pid returns
//!   a published snapshot holding all `N` objects, then waits until its stdin is closed (or for
//!   `--seconds`).
//! * `snapshot`: runs `target` as a child and measures, against it:
//!   (a) [`snapshot_of`] in this process (`--inproc-runs`, default 50), and the serialisation of
//!   that snapshot to pretty JSON (into a sink);
//!   (b) the wall time (spawn to exit) of the `stats_dump` binary (`--cli-runs`, default 20,
//!   interleaved): `--version` (process start, no attach), `--pid PID --no-json --no-text`
//!   (start + attach) and `--pid PID --no-text` (start + attach + JSON to `/dev/null`);
//!   (c) the target's own figures, from its `ready` line.
//! * `overhead`: runs `work` as a child, `--runs` (default 5) rounds of four configurations,
//!   interleaved (the order rotates every round), after one discarded warm-up run:
//!   `TSLAB_PUBLISH=0` (the reclaimer runs, nothing is published), `publish` (the default: a
//!   publish every 100 ms), `publish + inproc 10 Hz` (this process calls [`snapshot_of`] on the
//!   child every 100 ms) and `publish + stats_dump 10 Hz` (this process runs `stats_dump --pid
//!   CHILD --no-text` every 100 ms, stdout to `/dev/null`, for the child's whole life).
//!   Reported: the median of the child's own timing of its loop (wall), the slowdown of that
//!   median against `TSLAB_PUBLISH=0`, and the median of the per-round ratios; the same for the
//!   loop thread's CPU time, and the time the loop thread spent runnable but waiting for a CPU
//!   (both from `/proc/thread-self/schedstat`: the CPU contention the readers cause), and the
//!   CPU time of the child's reclaimer thread over its whole life (what publishing costs).
//! * `work` (defaults: 20,000,000 pairs, 100,000 objects): single-threaded; fills a working set
//!   of objects of 16..=512 B, then (timed) 20M times replaces a pseudo-random slot by a new
//!   object of a pseudo-random size (one allocation, one free, one byte written). Prints
//!   `work ns=... cpu_ns=... wait_ns=... reclaimer_ns=... pairs=... ticks=... published=yes|no`.
//!
//! `stats_dump` is looked up next to this executable (`cargo build --release -p stats-dump`
//! into the same target directory) unless `--stats-dump PATH` is given. Percentiles are
//! nearest-rank. The children get `TSLAB_RECLAIM`, `TSLAB_PUBLISH` and the auto-advance variables
//! removed (except where a configuration sets one). Wrong arguments print the usage and exit 2;
//! a failed measurement exits 1.

use std::hint::black_box;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use temporal_slab::attach::snapshot_of;
use temporal_slab::{EpochDomain, Snapshot, TemporalSlab};

#[global_allocator]
static GLOBAL: TemporalSlab = TemporalSlab::new();

/// Smallest object size, bytes.
const MIN_SIZE: usize = 16;
/// Largest object size, bytes.
const MAX_SIZE: usize = 512;
/// Epoch ring slots (the most epochs that can hold memory at once).
const MAX_EPOCHS: usize = 16;
/// Sampling period of the 10 Hz readers.
const PERIOD: Duration = Duration::from_millis(100);
/// In-process `snapshot()` calls timed by the target.
const GATHER_RUNS: usize = 50;
/// In-process `snapshot()` calls timed by the target 100 ms apart.
const COLD_RUNS: usize = 20;
/// Window over which the target measures its reclaimer thread's CPU time.
const TICK_WINDOW: Duration = Duration::from_secs(3);
/// How long `snapshot` waits for the target's `ready` line.
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// Environment variables that would change the children's allocator behaviour.
const ENV_CLEARED: [&str; 4] = ["TSLAB_RECLAIM", "TSLAB_PUBLISH", "TSLAB_AUTO_ADVANCE_MS", "TSLAB_AUTO_ADVANCE_MIB"];

fn usage() -> ExitCode {
    eprintln!(
        "usage: attach_cost target   [--objects N] [--epochs E] [--seconds S]\n       \
         attach_cost snapshot [--objects N] [--epochs E] [--inproc-runs N] [--cli-runs N] [--stats-dump PATH]\n       \
         attach_cost overhead [--pairs N] [--working-set N] [--runs N] [--stats-dump PATH]\n       \
         attach_cost work     [--pairs N] [--working-set N]\n\
         defaults: 1000000 objects, 16 epochs (1..=16), 50 in-process and 20 stats_dump runs;\n\
         20000000 pairs, 100000 objects in the working set, 5 runs; stats_dump next to this binary"
    );
    ExitCode::from(2)
}

/// Command-line options of every mode (each mode accepts only its own).
struct Options {
    objects: usize,
    epochs: usize,
    seconds: Option<u64>,
    inproc_runs: usize,
    cli_runs: usize,
    pairs: usize,
    working_set: usize,
    runs: usize,
    stats_dump: Option<PathBuf>,
}

fn parse_options(mode: &str, args: &[String]) -> Result<Options, String> {
    let allowed: &[&str] = match mode {
        "target" => &["--objects", "--epochs", "--seconds"],
        "snapshot" => &["--objects", "--epochs", "--inproc-runs", "--cli-runs", "--stats-dump"],
        "overhead" => &["--pairs", "--working-set", "--runs", "--stats-dump"],
        "work" => &["--pairs", "--working-set"],
        _ => return Err(format!("unknown mode {mode:?}")),
    };
    let mut o = Options {
        objects: 1_000_000,
        epochs: MAX_EPOCHS,
        seconds: None,
        inproc_runs: 50,
        cli_runs: 20,
        pairs: 20_000_000,
        working_set: 100_000,
        runs: 5,
        stats_dump: None,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        if !allowed.contains(&flag.as_str()) {
            return Err(format!("unknown option {flag:?} for {mode}"));
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        if flag == "--stats-dump" {
            o.stats_dump = Some(PathBuf::from(value));
            continue;
        }
        let n: usize = value.parse().map_err(|_| format!("{flag}: not a number: {value:?}"))?;
        if n == 0 {
            return Err(format!("{flag} must be at least 1"));
        }
        match flag.as_str() {
            "--objects" => o.objects = n,
            "--epochs" if n > MAX_EPOCHS => return Err(format!("--epochs must be 1..={MAX_EPOCHS}")),
            "--epochs" => o.epochs = n,
            "--seconds" => o.seconds = Some(n as u64),
            "--inproc-runs" => o.inproc_runs = n,
            "--cli-runs" => o.cli_runs = n,
            "--pairs" => o.pairs = n,
            "--working-set" => o.working_set = n,
            "--runs" => o.runs = n,
            _ => unreachable!("flag checked against the allowed list"),
        }
    }
    Ok(o)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let Some(mode) = args.get(1) else { return usage() };
    let opts = match parse_options(mode, &args[2..]) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("attach_cost: {e}");
            return usage();
        }
    };
    let result = match mode.as_str() {
        "target" => run_target(&opts),
        "snapshot" => run_snapshot(&opts),
        "overhead" => run_overhead(&opts),
        "work" => run_work(&opts),
        _ => return usage(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("attach_cost {mode}: {e}");
            ExitCode::from(1)
        }
    }
}

/// xorshift64*: a fixed, cheap pseudo-random sequence.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform-ish in `0..n` (n > 0).
    fn below(&mut self, n: usize) -> usize {
        (((self.next() >> 32) * n as u64) >> 32) as usize
    }

    fn size(&mut self) -> usize {
        MIN_SIZE + self.below(MAX_SIZE - MIN_SIZE + 1)
    }
}

/// A live object of `size` bytes (exactly `size` bytes of capacity) with one byte written.
fn object(size: usize, byte: u8) -> Vec<u8> {
    let mut v = Vec::with_capacity(size);
    v.push(byte);
    v
}

/// Nearest-rank percentile of sorted `v` (`p` in 0..=100).
fn pct<T: Copy>(sorted: &[T], p: f64) -> T {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Median, p99, min and max of durations, in ms.
struct Summary {
    n: usize,
    p50: f64,
    p99: f64,
    min: f64,
    max: f64,
}

fn summarize(samples: &[Duration]) -> Summary {
    let mut s = samples.to_vec();
    s.sort();
    Summary { n: s.len(), p50: ms(pct(&s, 50.0)), p99: ms(pct(&s, 99.0)), min: ms(s[0]), max: ms(s[s.len() - 1]) }
}

fn median_f64(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    pct(&s, 50.0)
}

/// Objects held by small-size classes, summed.
fn live_objects(s: &Snapshot) -> u64 {
    s.classes.iter().map(|c| c.live_objects).sum()
}

/// Epoch slots whose slabs hold live bytes.
fn epochs_holding(s: &Snapshot) -> usize {
    s.epochs.iter().filter(|e| e.live_bytes > 0).count()
}

/// CPU time (ns on CPU) of thread `tid` of this process.
fn thread_cpu_ns(tid: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat")).ok()?;
    s.split_whitespace().next()?.parse().ok()
}

/// Threads of this process other than the main thread (the reclaimer, in the target).
fn other_threads() -> Vec<String> {
    let me = std::process::id().to_string();
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else { return Vec::new() };
    dir.filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned())).filter(|t| *t != me).collect()
}

fn run_target(o: &Options) -> Result<(), String> {
    let domains: Vec<EpochDomain> =
        (0..o.epochs - 1).map(|i| EpochDomain::new(Some(&format!("attach-cost-{i:02}")))).collect();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut objects: Vec<Vec<u8>> = Vec::with_capacity(o.objects);
    let per_epoch = o.objects / o.epochs;
    for (i, d) in domains.iter().enumerate() {
        let _in = d.enter();
        objects.extend((0..per_epoch).map(|_| object(rng.size(), i as u8)));
    }
    // The rest go to the current epoch.
    while objects.len() < o.objects {
        objects.push(object(rng.size(), 0xff));
    }
    let live_bytes: usize = objects.iter().map(|v| v.capacity()).sum();

    // Wait until a published snapshot holds every object.
    let t0 = Instant::now();
    let published = loop {
        match snapshot_of(std::process::id()) {
            Ok(s) if live_objects(&s) >= o.objects as u64 => break s,
            Ok(_) => {}
            Err(e) if t0.elapsed() > Duration::from_secs(10) => return Err(format!("no published snapshot: {e}")),
            Err(_) => {}
        }
        std::thread::sleep(Duration::from_millis(20));
    };

    // (c) The gather, as `snapshot()` does it in process (gather + Vec building).
    let mut gather = Vec::with_capacity(GATHER_RUNS);
    for _ in 0..GATHER_RUNS {
        let t = Instant::now();
        black_box(temporal_slab::snapshot());
        gather.push(t.elapsed());
    }
    let gather = summarize(&gather);
    // The same call every 100 ms, as the publisher makes it: the slab metadata is no longer in
    // the cache.
    let mut cold = Vec::with_capacity(COLD_RUNS);
    for _ in 0..COLD_RUNS {
        std::thread::sleep(PERIOD);
        let t = Instant::now();
        black_box(temporal_slab::snapshot());
        cold.push(t.elapsed());
    }
    let cold = summarize(&cold);

    // The reclaimer thread's CPU time per tick.
    let threads = other_threads();
    let cpu = |ts: &[String]| ts.iter().filter_map(|t| thread_cpu_ns(t)).sum::<u64>();
    // Baseline over the same window: a thread that only sleeps 100 ms at a time (the CPU time
    // the kernel accounts to a thread per wake-up, which the reclaimer pays too).
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    let sleeper = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let tid = std::fs::read_link("/proc/thread-self")
                .ok()
                .and_then(|p| p.file_name().map(|f| f.to_string_lossy().into_owned()));
            let _ = tx.send(tid);
            let mut wakes = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(PERIOD);
                wakes += 1;
            }
            wakes
        })
    };
    let sleeper_tid = rx.recv().ok().flatten();
    let sleeper_cpu = || sleeper_tid.as_deref().and_then(thread_cpu_ns).unwrap_or(0);
    std::thread::sleep(Duration::from_millis(50));
    let (cpu0, ticks0, s0) = (cpu(&threads), temporal_slab::snapshot().global.reclaimer_ticks, sleeper_cpu());
    std::thread::sleep(TICK_WINDOW);
    let (cpu1, ticks1, s1) = (cpu(&threads), temporal_slab::snapshot().global.reclaimer_ticks, sleeper_cpu());
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let wakes = sleeper.join().unwrap_or(0);
    let ticks = ticks1.saturating_sub(ticks0);
    let tick_us = if ticks == 0 { f64::NAN } else { (cpu1.saturating_sub(cpu0)) as f64 / ticks as f64 / 1e3 };
    // The sleeper woke about once per PERIOD during the window.
    let window_wakes = (TICK_WINDOW.as_nanos() / PERIOD.as_nanos()) as f64;
    let sleep_us =
        if sleeper_tid.is_none() || wakes == 0 { f64::NAN } else { s1.saturating_sub(s0) as f64 / window_wakes / 1e3 };

    println!(
        "ready pid={} objects={} live_objects={} live_bytes={} active_epochs={} epochs_holding={} \
         net_slabs={} rss_bytes={} ring_overflows={} gather_p50_ms={:.4} gather_p99_ms={:.4} \
         gather_min_ms={:.4} cold_p50_ms={:.4} cold_p99_ms={:.4} cold_min_ms={:.4} reclaimer_threads={} ticks={} tick_cpu_us={:.1} sleeper_cpu_us={:.1}",
        std::process::id(),
        o.objects,
        live_objects(&published),
        live_bytes,
        published.active_epoch_count,
        epochs_holding(&published),
        published.net_slabs,
        published.rss_bytes_current,
        published.global.ring_overflows,
        gather.p50,
        gather.p99,
        gather.min,
        cold.p50,
        cold.p99,
        cold.min,
        threads.len(),
        ticks,
        tick_us,
        sleep_us,
    );
    std::io::stdout().flush().map_err(|e| e.to_string())?;

    match o.seconds {
        Some(s) => std::thread::sleep(Duration::from_secs(s)),
        None => {
            let mut sink = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut sink);
        }
    }
    black_box(&objects);
    black_box(&domains);
    Ok(())
}

/// The `stats_dump` binary: `--stats-dump`, or next to this executable.
fn stats_dump_path(o: &Options) -> Result<PathBuf, String> {
    let path = match &o.stats_dump {
        Some(p) => p.clone(),
        None => {
            std::env::current_exe().map_err(|e| format!("locating this executable: {e}"))?.with_file_name("stats_dump")
        }
    };
    if !path.is_file() {
        return Err(format!(
            "no stats_dump at {}: build it into the same target directory (cargo build --release -p stats-dump) \
             or pass --stats-dump PATH",
            path.display()
        ));
    }
    Ok(path)
}

/// This executable, with the allocator's environment variables cleared.
fn self_command(args: &[&str]) -> Result<Command, String> {
    let exe = std::env::current_exe().map_err(|e| format!("locating this executable: {e}"))?;
    let mut c = Command::new(exe);
    c.args(args);
    for v in ENV_CLEARED {
        c.env_remove(v);
    }
    Ok(c)
}

/// Runs `stats_dump args`, stdout and stderr to /dev/null; returns its wall time (spawn to exit).
fn time_stats_dump(bin: &Path, args: &[&str]) -> Result<Duration, String> {
    let t = Instant::now();
    let status = Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| format!("running {}: {e}", bin.display()))?;
    let d = t.elapsed();
    if !status.success() {
        return Err(format!("{} {} failed: {status}", bin.display(), args.join(" ")));
    }
    Ok(d)
}

/// The running target: its stdin (closing it ends the target) and the `ready` fields.
struct Target {
    child: Child,
    stdin: Option<ChildStdin>,
    fields: Vec<(String, String)>,
}

impl Target {
    fn field(&self, key: &str) -> &str {
        self.fields.iter().find(|(k, _)| k == key).map_or("?", |(_, v)| v.as_str())
    }

    fn stop(mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_target(o: &Options) -> Result<Target, String> {
    let objects = o.objects.to_string();
    let epochs = o.epochs.to_string();
    let mut child = self_command(&["target", "--objects", &objects, "--epochs", &epochs])?
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting the target: {e}"))?;
    let stdin = child.stdin.take();
    let stdout = child.stdout.take().ok_or("no target stdout")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.starts_with("ready ") {
                let _ = tx.send(line);
                break;
            }
        }
    });
    match rx.recv_timeout(READY_TIMEOUT) {
        Ok(line) => {
            let fields = line
                .split_whitespace()
                .skip(1)
                .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
                .collect();
            Ok(Target { child, stdin, fields })
        }
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            Err("the target did not become ready".into())
        }
    }
}

fn run_snapshot(o: &Options) -> Result<(), String> {
    let bin = stats_dump_path(o)?;
    let t_start = Instant::now();
    let target = start_target(o)?;
    let setup = t_start.elapsed();
    let result = measure_snapshot(o, &bin, &target, setup);
    target.stop();
    result
}

fn measure_snapshot(o: &Options, bin: &Path, target: &Target, setup: Duration) -> Result<(), String> {
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

/// This thread's time on the CPU and time spent runnable but waiting for a CPU, in ns
/// (`/proc/thread-self/schedstat`; zeros if unreadable).
fn own_schedstat() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    let mut f = s.split_whitespace().map(|v| v.parse::<u64>().unwrap_or(0));
    (f.next().unwrap_or(0), f.next().unwrap_or(0))
}

fn run_work(o: &Options) -> Result<(), String> {
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
enum Config {
    NoPublish,
    Publish,
    InProc,
    StatsDump,
}

impl Config {
    const ALL: [Config; 4] = [Config::NoPublish, Config::Publish, Config::InProc, Config::StatsDump];

    fn name(self) -> &'static str {
        match self {
            Config::NoPublish => "`TSLAB_PUBLISH=0`",
            Config::Publish => "publish (default, 10 Hz)",
            Config::InProc => "publish + in-process `snapshot_of` at 10 Hz",
            Config::StatsDump => "publish + `stats_dump --pid` at 10 Hz",
        }
    }
}

/// One child run: its loop time and what the reader did.
struct WorkRun {
    loop_ns: u64,
    cpu_ns: u64,
    wait_ns: u64,
    reclaimer_ns: u64,
    ticks: u64,
    published: bool,
    reads_ok: usize,
    reads_failed: usize,
    read_times: Vec<Duration>,
}

fn run_work_child(o: &Options, cfg: Config, bin: &Path) -> Result<WorkRun, String> {
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

fn run_overhead(o: &Options) -> Result<(), String> {
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
