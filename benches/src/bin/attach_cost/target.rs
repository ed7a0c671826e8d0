//! The target: a child process of this binary holding a large live set in many epochs, and the
//! parent's side of starting it and of timing `stats_dump` runs against it.

use super::*;

pub(super) fn run_target(o: &Options) -> Result<(), String> {
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
pub(super) fn stats_dump_path(o: &Options) -> Result<PathBuf, String> {
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
pub(super) fn self_command(args: &[&str]) -> Result<Command, String> {
    let exe = std::env::current_exe().map_err(|e| format!("locating this executable: {e}"))?;
    let mut c = Command::new(exe);
    c.args(args);
    for v in ENV_CLEARED {
        c.env_remove(v);
    }
    Ok(c)
}

/// Runs `stats_dump args`, stdout and stderr to /dev/null; returns its wall time (spawn to exit).
pub(super) fn time_stats_dump(bin: &Path, args: &[&str]) -> Result<Duration, String> {
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
pub(super) struct Target {
    pub(super) child: Child,
    pub(super) stdin: Option<ChildStdin>,
    pub(super) fields: Vec<(String, String)>,
}

impl Target {
    pub(super) fn field(&self, key: &str) -> &str {
        self.fields.iter().find(|(k, _)| k == key).map_or("?", |(_, v)| v.as_str())
    }

    pub(super) fn stop(mut self) {
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

pub(super) fn start_target(o: &Options) -> Result<Target, String> {
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
