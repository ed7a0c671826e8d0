//! `suite stats-cost`: this build (temporal-slab's counters on) against the `suite` and `pairs`
//! binaries of a `--no-default-features` build (counters compiled out): instructions counted by
//! callgrind in the measured loops, and the times of a few workloads, both builds interleaved.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use benches::{procfs, selected};
use serde_json::{json, Value};

use super::{fmt_ns, machine_meta, median_f64, number, run_child, value, TS_NOEPOCHS};

/// Options of `stats-cost`.
pub(super) struct CostOptions {
    without: PathBuf,
    rounds: usize,
    reps: usize,
    out: PathBuf,
    callgrind: bool,
}

pub(super) fn parse_cost(args: &[String]) -> Result<CostOptions, String> {
    let mut o = CostOptions {
        without: PathBuf::new(),
        rounds: 10,
        reps: 3,
        out: PathBuf::from("target/stats-cost.json"),
        callgrind: true,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--without" => o.without = PathBuf::from(value(a, &mut it)?),
            "--rounds" => o.rounds = number(a, value(a, &mut it)?, 1..=100)?,
            "--reps" => o.reps = number(a, value(a, &mut it)?, 1..=100)?,
            "--out" => o.out = PathBuf::from(value(a, &mut it)?),
            "--no-callgrind" => o.callgrind = false,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if o.without.as_os_str().is_empty() {
        return Err("stats-cost needs --without DIR (the release directory of a --no-default-features build)".into());
    }
    Ok(o)
}

/// The workloads timed by `stats-cost`: (workload, threads).
const COST_TIMED: [(&str, usize); 5] =
    [("alloc-test", 1), ("larson", 1), ("larson", 2), ("xmalloc", 2), ("request-server", 1)];
/// Alloc+free pairs counted by callgrind in `pairs`.
const COST_PAIRS: u64 = 1_000_000;

pub(super) fn stats_cost(o: &CostOptions) -> ExitCode {
    let Ok(exe) = std::env::current_exe() else {
        eprintln!("suite: cannot find my own executable");
        return ExitCode::FAILURE;
    };
    let here = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    let builds = [("counters on", here.clone()), ("counters off", o.without.clone())];
    for (name, dir) in &builds {
        match build_info(&dir.join("suite")) {
            Ok(stats) if stats == (*name == "counters on") => {}
            Ok(stats) => {
                eprintln!("suite: {}/suite reports stats={stats}; expected the {name} build", dir.display());
                return ExitCode::from(2);
            }
            Err(e) => {
                eprintln!("suite: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let mut meta = machine_meta();
    meta["load_start"] = json!(procfs::load_average());
    let started = Instant::now();

    // Instructions (deterministic: the same seeds and sizes; only the measured loop is counted).
    let mut instr = Vec::new();
    if o.callgrind {
        let one = |alloc: &str, w: &str| -> Vec<String> {
            ["suite", "one", alloc, w, "--threads", "1", "--reps", "1", "--no-latency"].map(String::from).to_vec()
        };
        let cases: [(&str, &str, Vec<String>); 5] = [
            ("alloc-test x1 (4 M steps)", "*alloc_test*steps*", one("temporal-slab", "alloc-test")),
            ("larson x1 (4 M replacements)", "*larson*replace*", one("temporal-slab", "larson")),
            ("xmalloc x1 (4 M objects)", "*xmalloc*produce*", one("temporal-slab", "xmalloc")),
            (
                "request-server x1 (40,000 requests, no domains)",
                "*request_server*handle*",
                one(TS_NOEPOCHS, "request-server"),
            ),
            (
                "pairs, 64 B (1 M alloc+free)",
                "*run_pairs*",
                vec!["pairs".into(), "temporal-slab".into(), "64".into(), COST_PAIRS.to_string()],
            ),
        ];
        for (label, toggle, argv) in &cases {
            let mut counts = Vec::new();
            for (_, dir) in &builds {
                counts.push(callgrind(&dir.join(&argv[0]), &argv[1..], toggle));
            }
            match (&counts[0], &counts[1]) {
                (Ok(on), Ok(off)) => {
                    eprintln!("suite: callgrind {label}: on {on} off {off}");
                    instr.push(json!({ "case": label, "on": on, "off": off }));
                }
                (a, b) => {
                    for e in [a, b].into_iter().filter_map(|r| r.as_ref().err()) {
                        eprintln!("suite: callgrind {label}: {e}");
                    }
                }
            }
        }
    }

    // Time: both builds interleaved, the order alternating every round.
    let reps = o.reps.to_string();
    let mut times: BTreeMap<(usize, usize), Vec<f64>> = BTreeMap::new();
    for round in 0..o.rounds {
        for (ci, (w, t)) in COST_TIMED.iter().enumerate() {
            for k in 0..2 {
                let bi = (k + round) % 2;
                let exe = builds[bi].1.join("suite");
                let allocator = if *w == "request-server" { TS_NOEPOCHS } else { "temporal-slab" };
                match run_child(&exe, allocator, w, *t, &["--reps", &reps, "--no-latency"]) {
                    Ok(v) => times.entry((ci, bi)).or_default().push(v["median_ns"].as_f64().unwrap_or(0.0)),
                    Err(e) => eprintln!("suite: {e}"),
                }
            }
        }
        eprintln!("suite: stats-cost round {}/{} done ({:.0} s)", round + 1, o.rounds, started.elapsed().as_secs_f64());
    }

    println!("\n### Cost of the hot-path counters (temporal-slab, counters on vs compiled out)\n");
    if !instr.is_empty() {
        println!("| instructions (callgrind, Ir) | counters on | counters off | on / off - 1 |");
        println!("|---|---:|---:|---:|");
        for i in &instr {
            let (on, off) = (i["on"].as_f64().unwrap_or(0.0), i["off"].as_f64().unwrap_or(1.0));
            println!(
                "| {} | {on:.0} | {off:.0} | {:+.2}% |",
                i["case"].as_str().unwrap_or(""),
                (on / off - 1.0) * 100.0
            );
        }
        println!();
    }
    println!(
        "| time ({} rounds, each the median of {} runs) | median on | median off | on / off - 1 | \
         median of per-round ratios - 1 | min on | min off | min / min - 1 |",
        o.rounds, o.reps
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    let mut timed = Vec::new();
    for (ci, (w, t)) in COST_TIMED.iter().enumerate() {
        let (on, off) =
            (times.get(&(ci, 0)).cloned().unwrap_or_default(), times.get(&(ci, 1)).cloned().unwrap_or_default());
        let per_round: Vec<f64> = on.iter().zip(&off).map(|(a, b)| a / b).collect();
        let (mon, moff, mr) = (median_f64(&on), median_f64(&off), median_f64(&per_round));
        let pct = |x: Option<f64>| x.map_or("n/a".into(), |r| format!("{:+.2}%", (r - 1.0) * 100.0));
        let min = |v: &[f64]| v.iter().copied().reduce(f64::min);
        let (lon, loff) = (min(&on), min(&off));
        println!(
            "| {w} x{t} | {} | {} | {} | {} | {} | {} | {} |",
            fmt_ns(mon),
            fmt_ns(moff),
            pct(mon.zip(moff).map(|(a, b)| a / b)),
            pct(mr),
            fmt_ns(lon),
            fmt_ns(loff),
            pct(lon.zip(loff).map(|(a, b)| a / b))
        );
        timed.push(json!({ "workload": w, "threads": t, "on_ns": on, "off_ns": off }));
    }
    meta["load_end"] = json!(procfs::load_average());
    meta["wall_s"] = json!(started.elapsed().as_secs_f64());
    println!(
        "\n{} CPUs ({}); {}; load {} -> {}; {:.0} s.",
        meta["nproc"],
        meta["cpu_model"].as_str().unwrap_or("?"),
        meta["date_utc"].as_str().unwrap_or("?"),
        meta["load_start"].as_str().unwrap_or("?"),
        meta["load_end"].as_str().unwrap_or("?"),
        meta["wall_s"].as_f64().unwrap_or(0.0)
    );
    let doc = json!({ "meta": meta, "instructions": instr, "time": timed });
    match serde_json::to_string_pretty(&doc) {
        Ok(s) => {
            if let Err(e) = std::fs::write(&o.out, s + "\n") {
                eprintln!("suite: writing {}: {e}", o.out.display());
                return ExitCode::FAILURE;
            }
            eprintln!("suite: results in {}", o.out.display());
        }
        Err(e) => eprintln!("suite: {e}"),
    }
    ExitCode::SUCCESS
}

/// Whether the `suite` binary at `exe` was built with temporal-slab's counters.
fn build_info(exe: &Path) -> Result<bool, String> {
    let out = Command::new(exe).arg("build-info").output().map_err(|e| format!("running {}: {e}", exe.display()))?;
    let v: Value = serde_json::from_slice(&out.stdout).map_err(|e| format!("{} build-info: {e}", exe.display()))?;
    v["stats"].as_bool().ok_or_else(|| format!("{} build-info: no \"stats\"", exe.display()))
}

/// Instructions counted by callgrind inside functions matching `toggle`, for `exe args`
/// (temporal-slab selected, its background reclaimer off so that nothing else runs).
fn callgrind(exe: &Path, args: &[String], toggle: &str) -> Result<u64, String> {
    let out = Command::new("valgrind")
        .args(["--tool=callgrind", "--callgrind-out-file=/dev/null"])
        .arg(format!("--toggle-collect={toggle}"))
        .arg(exe)
        .args(args)
        .env(selected::ENV, "temporal-slab")
        .env("TSLAB_RECLAIM", "0")
        .env_remove("GLIBC_TUNABLES")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running valgrind: {e}"))?;
    if !out.status.success() {
        return Err(format!("valgrind {}: {}", exe.display(), out.status));
    }
    let err = String::from_utf8_lossy(&out.stderr);
    err.lines()
        .find_map(|l| l.split_once("Collected :").map(|(_, n)| n.trim().replace(',', "")))
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("no \"Collected :\" line from valgrind for {}", exe.display()))
}
