//! The parent side: the plan of children, running them one at a time, the results file and the
//! machine's description.

use super::*;

/// Runs `exe one allocator workload ...` and parses its JSON line.
pub(super) fn run_child(
    exe: &Path,
    allocator: &str,
    workload: &str,
    threads: usize,
    extra: &[&str],
) -> Result<Value, String> {
    run_child_env(exe, allocator, workload, threads, extra, &[])
}

/// [`run_child`] with extra environment variables for the child.
pub(super) fn run_child_env(
    exe: &Path,
    allocator: &str,
    workload: &str,
    threads: usize,
    extra: &[&str],
    envs: &[(&str, &str)],
) -> Result<Value, String> {
    let mut cmd = Command::new(exe);
    cmd.envs(envs.iter().copied());
    cmd.args(["one", allocator, workload, "--threads", &threads.to_string()]).args(extra);
    cmd.env(selected::ENV, choice_for(allocator).name());
    if allocator == "glibc-notrim" {
        cmd.env("GLIBC_TUNABLES", NOTRIM_TUNABLES);
    } else {
        cmd.env_remove("GLIBC_TUNABLES");
    }
    if allocator == TCMALLOC {
        cmd.env("LD_PRELOAD", TCMALLOC_LIB);
    } else {
        cmd.env_remove("LD_PRELOAD");
    }
    cmd.stdin(Stdio::null()).stderr(Stdio::inherit());
    let what = format!("{allocator} {workload} x{threads}");
    let out = cmd.output().map_err(|e| format!("{what}: cannot run {}: {e}", exe.display()))?;
    if !out.status.success() {
        return Err(format!("{what}: child failed: {}", out.status));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
    serde_json::from_str(line).map_err(|e| format!("{what}: bad JSON from child ({e}): {line:?}"))
}

/// The thread counts `w` runs at.
pub(super) fn threads_of(w: &Workload, threads: &[usize]) -> Vec<usize> {
    if w.threaded {
        threads.to_vec()
    } else {
        vec![1]
    }
}

/// The allocators `w` (of the main group) runs on.
pub(super) fn allocators_of(w: &Workload, allocators: &[String]) -> Vec<String> {
    let mut v: Vec<String> =
        allocators.iter().filter(|a| a.as_str() != TS_NOEPOCHS && a.as_str() != TCMALLOC).cloned().collect();
    let phased = PHASED.contains(&w.name);
    if phased && (allocators.iter().any(|a| a == "temporal-slab") || allocators.iter().any(|a| a == TS_NOEPOCHS)) {
        let at = v.iter().position(|a| a == "temporal-slab").map_or(0, |i| i + 1);
        v.insert(at, TS_NOEPOCHS.to_string());
    }
    v
}

/// One child to run: workload, thread count, allocator.
pub(super) type Planned = (Workload, usize, String);

/// The arguments every child of a run gets after `one <allocator> <workload> --threads T`.
pub(super) fn child_args(o: &RunOptions) -> Vec<String> {
    let mut extra = vec!["--reps".to_string(), o.reps.to_string()];
    if o.quick {
        extra.push("--quick".into());
    }
    if !o.latency {
        extra.push("--no-latency".into());
    }
    extra
}

/// Runs every planned child, one at a time, in order; returns their rows and the failures.
pub(super) fn run_plan(exe: &Path, plan: &[Planned], extra: &[String]) -> (Vec<Value>, Vec<String>) {
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for (w, t, a) in plan {
        let t0 = Instant::now();
        match run_child(exe, a, w.name, *t, &extra) {
            Ok(v) => {
                eprintln!(
                    "suite: {:<18} x{t} {:<22} median {:>10}  ({:.1} s)",
                    w.name,
                    a,
                    fmt_ns(v["median_ns"].as_f64()),
                    t0.elapsed().as_secs_f64()
                );
                rows.push(v);
            }
            Err(e) => {
                eprintln!("suite: {e}");
                failures.push(e);
            }
        }
    }
    (rows, failures)
}

/// This binary, which the runners re-execute as `suite one ...`; `None` after saying why.
pub(super) fn own_exe() -> Option<PathBuf> {
    std::env::current_exe().map_err(|e| eprintln!("suite: cannot find my own executable: {e}")).ok()
}

/// The facts of a run's start, printed and put in the results file.
pub(super) fn start_meta(mode: &str, reps: usize) -> Value {
    let mut meta = machine_meta();
    meta["mode"] = json!(mode);
    meta["reps"] = json!(reps);
    meta["load_start"] = json!(procfs::load_average());
    eprintln!(
        "suite: {} on {} ({} CPUs), load {}; commit {}",
        meta["mode"].as_str().unwrap_or(""),
        meta["cpu_model"].as_str().unwrap_or("?"),
        meta["nproc"],
        meta["load_start"].as_str().unwrap_or("?"),
        meta["git_commit"].as_str().unwrap_or("?"),
    );
    meta
}

/// Writes `doc` as pretty JSON to `out` (creating its directory).
pub(super) fn write_results(out: &Path, doc: &Value) -> Result<(), String> {
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    let s = serde_json::to_string_pretty(doc).map_err(|e| e.to_string())?;
    std::fs::write(out, s + "\n").map_err(|e| format!("writing {}: {e}", out.display()))
}

pub(super) fn run_all(o: RunOptions) -> ExitCode {
    let Some(exe) = own_exe() else { return ExitCode::FAILURE };
    let started = Instant::now();
    let mut meta = start_meta(if o.quick { "quick" } else { "all" }, o.reps);
    let mut plan: Vec<Planned> = Vec::new();
    for w in o.workloads.iter().filter(|w| !workloads::in_epochs_group(w.name)) {
        for t in threads_of(w, &o.threads) {
            for a in allocators_of(w, &o.allocators) {
                plan.push((*w, t, a));
            }
        }
    }
    let (rows, mut failures) = run_plan(&exe, &plan, &child_args(&o));
    // `quick` smoke-tests the epochs group too.
    let group = o.quick.then(|| epochs::run_group(&exe, &o));
    meta["load_end"] = json!(procfs::load_average());
    meta["wall_s"] = json!(started.elapsed().as_secs_f64());
    if !rows.is_empty() {
        tables::print_tables(&rows, &meta);
    }
    let mut doc = json!({ "meta": meta, "rows": rows, "failures": failures });
    if let Some(g) = &group {
        epochs::print_tables(g, &meta);
        failures.extend(g.failures.iter().cloned());
        doc["epochs"] = g.to_json();
    }
    match write_results(&o.out, &doc) {
        Ok(()) => eprintln!("suite: results in {} ({:.0} s)", o.out.display(), started.elapsed().as_secs_f64()),
        Err(e) => {
            eprintln!("suite: {e}");
            return ExitCode::FAILURE;
        }
    }
    if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Machine, date and source facts for the results file.
pub(super) fn machine_meta() -> Value {
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(env!("CARGO_MANIFEST_DIR"))
            .args(args)
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim_end().to_string())
    };
    let dirty: Option<Vec<String>> = git(&["status", "--short"]).map(|s| s.lines().map(str::to_string).collect());
    json!({
        "date_utc": utc_now(),
        "nproc": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "cpu_model": procfs::cpu_model(),
        "kernel": procfs::kernel_release(),
        "git_commit": git(&["rev-parse", "--short", "HEAD"]),
        "git_status_short": dirty,
        "stats_counters": cfg!(feature = "stats"),
        "tslab_env": std::env::vars().filter(|(k, _)| k.starts_with("TSLAB_")).collect::<BTreeMap<_, _>>(),
    })
}

/// Now, as `YYYY-MM-DD HH:MM:SS UTC`.
pub(super) fn utc_now() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Civil date from days since 1970-01-01, in 400-year eras of 146,097 days starting on March 1.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC", rem / 3600, rem / 60 % 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn each_mode_has_its_defaults() {
        let all = parse_run(&[], Mode::All).unwrap();
        assert!(all.workloads.iter().all(|w| !workloads::in_epochs_group(w.name)));
        assert!(!all.allocators.iter().any(|a| a == TCMALLOC));
        let quick = parse_run(&[], Mode::Quick).unwrap();
        assert_eq!((quick.reps, quick.quick), (1, true));
        assert_eq!(quick.workloads.len(), WORKLOADS.len() + EPOCH_WORKLOADS.len());
        assert!(quick.allocators.iter().any(|a| a == TCMALLOC));
        let e = parse_run(&[], Mode::Epochs).unwrap();
        assert_eq!((e.reps, e.quick, e.out.to_str()), (3, false, Some("target/bench-epochs.json")));
        assert_eq!(e.epoch_threads, epochs::THREADS);
        assert_eq!(e.workloads.len(), EPOCH_WORKLOADS.len());
    }

    #[test]
    fn options_of_the_epochs_command() {
        // --quick does not override an explicit --reps, in either order.
        for a in ["--reps 2 --quick", "--quick --reps 2"] {
            let o = parse_run(&args(a), Mode::Epochs).unwrap();
            assert_eq!((o.reps, o.quick), (2, true));
        }
        assert_eq!(parse_run(&args("--quick"), Mode::Epochs).unwrap().reps, 1);
        assert_eq!(parse_run(&args("--threads 1,3"), Mode::Epochs).unwrap().epoch_threads, [1, 3]);
        assert!(parse_run(&args("--quick"), Mode::All).is_err());
        assert!(parse_run(&args("--no-latency"), Mode::Epochs).is_err());
        assert!(parse_run(&args("--workloads epochs-mixed"), Mode::All).is_err());
        assert!(parse_run(&args("--allocators tcmalloc,glibc"), Mode::Epochs).is_ok());
        assert!(parse_run(&args("--allocators tcmalloc2"), Mode::Epochs).is_err());
    }

    #[test]
    fn tcmalloc_is_glibc_dispatch_and_stays_out_of_the_main_group() {
        assert_eq!(choice_for(TCMALLOC), Choice::Glibc);
        let w = workloads::find("request-server").unwrap();
        let v = allocators_of(&w, &["temporal-slab".into(), TCMALLOC.into(), "glibc".into()]);
        assert_eq!(v, ["temporal-slab", TS_NOEPOCHS, "glibc"]);
    }
}
