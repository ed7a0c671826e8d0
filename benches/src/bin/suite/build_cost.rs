//! `suite stats-cost` and `suite profile-cost`: what a compile-time feature of temporal-slab costs,
//! this build against the `suite` and `pairs` binaries of another build (`--without DIR`), each
//! variant possibly with its own environment: instructions counted by callgrind in the measured
//! loops, and the times of a few workloads, all variants interleaved.
//!
//! - `stats-cost`: counters on (this build, sampling off by `TSLAB_PROFILE_SAMPLE=0`) against a
//!   `--no-default-features --features profile` build (counters compiled out, the heap profiler
//!   and its byte countdown kept: that countdown is the profiler's sample trigger, which the
//!   counters' byte count shares), and with `--bare DIR` also a `--no-default-features` build
//!   (neither: no countdown at all).
//! - `profile-cost`: sampling at the default mean and compiled in but off (this build, with
//!   `TSLAB_PROFILE_SAMPLE=0`), against a `--no-default-features --features stats` build (the
//!   profiler compiled out, counters on in all three).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use benches::{procfs, selected};
use serde_json::{json, Value};

use super::runner::run_child_env;
use super::{fmt_ns, machine_meta, median_f64, number, value, TS_NOEPOCHS};

/// Which feature is costed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Feature {
    Stats,
    Profile,
}

/// Options of `stats-cost` / `profile-cost`.
pub(super) struct CostOptions {
    feature: Feature,
    without: PathBuf,
    /// `stats-cost` only: a build with neither counters nor profiler, compared too.
    bare: Option<PathBuf>,
    rounds: usize,
    reps: usize,
    out: PathBuf,
    callgrind: bool,
}

pub(super) fn parse_cost(args: &[String], feature: Feature) -> Result<CostOptions, String> {
    let mut o = CostOptions {
        feature,
        without: PathBuf::new(),
        bare: None,
        rounds: 10,
        reps: 3,
        out: PathBuf::from(match feature {
            Feature::Stats => "target/stats-cost.json",
            Feature::Profile => "target/profile-cost.json",
        }),
        callgrind: true,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--without" => o.without = PathBuf::from(value(a, &mut it)?),
            "--bare" if feature == Feature::Stats => o.bare = Some(PathBuf::from(value(a, &mut it)?)),
            "--rounds" => o.rounds = number(a, value(a, &mut it)?, 1..=100)?,
            "--reps" => o.reps = number(a, value(a, &mut it)?, 1..=100)?,
            "--out" => o.out = PathBuf::from(value(a, &mut it)?),
            "--no-callgrind" => o.callgrind = false,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if o.without.as_os_str().is_empty() {
        return Err(match feature {
            Feature::Stats => {
                "stats-cost needs --without DIR (the release directory of a --no-default-features --features profile build)"
            }
            Feature::Profile => {
                "profile-cost needs --without DIR (the release directory of a --no-default-features --features stats build)"
            }
        }
        .into());
    }
    Ok(o)
}

/// One build and environment compared; the last variant of a list is the baseline.
struct Variant {
    name: &'static str,
    dir: PathBuf,
    env: &'static [(&'static str, &'static str)],
    /// What `suite build-info` must report: (stats, profile).
    expect: (bool, bool),
}

/// Sampling off at run time.
const SAMPLING_OFF: &[(&str, &str)] = &[("TSLAB_PROFILE_SAMPLE", "0")];

fn variants(o: &CostOptions, here: PathBuf) -> Vec<Variant> {
    let v = |name, dir, env, expect| Variant { name, dir, env, expect };
    match o.feature {
        Feature::Stats => {
            let mut list = vec![v("counters on", here, SAMPLING_OFF, (true, true))];
            if let Some(bare) = &o.bare {
                list.push(v("neither", bare.clone(), &[], (false, false)));
            }
            list.push(v("counters off", o.without.clone(), SAMPLING_OFF, (false, true)));
            list
        }
        Feature::Profile => vec![
            v("sampling on", here.clone(), &[], (true, true)),
            v("compiled in, off", here, SAMPLING_OFF, (true, true)),
            v("compiled out", o.without.clone(), &[], (true, false)),
        ],
    }
}

/// The workloads timed: (workload, threads).
const COST_TIMED: [(&str, usize); 5] =
    [("alloc-test", 1), ("larson", 1), ("larson", 2), ("xmalloc", 2), ("request-server", 1)];
/// Alloc+free pairs counted by callgrind in `pairs`.
const COST_PAIRS: u64 = 1_000_000;

pub(super) fn build_cost(o: &CostOptions) -> ExitCode {
    let Ok(exe) = std::env::current_exe() else {
        eprintln!("suite: cannot find my own executable");
        return ExitCode::FAILURE;
    };
    let here = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    let builds = variants(o, here);
    for b in &builds {
        match build_info(&b.dir.join("suite")) {
            Ok(got) if got == b.expect => {}
            Ok((stats, profile)) => {
                eprintln!(
                    "suite: {}/suite reports stats={stats} profile={profile}; expected the {} build \
                     (stats={} profile={})",
                    b.dir.display(),
                    b.name,
                    b.expect.0,
                    b.expect.1
                );
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
    let instr = if o.callgrind { count_instructions(&builds) } else { Vec::new() };
    let times = time_rounds(o, &builds, started);

    let base = builds.len() - 1;
    let title = match o.feature {
        Feature::Stats => "the hot-path counters (temporal-slab, counters on vs compiled out)",
        Feature::Profile => "the heap profiler (temporal-slab: sampling on, compiled in but off, compiled out)",
    };
    println!("\n### Cost of {title}\n");
    let names: Vec<&str> = builds.iter().map(|b| b.name).collect();
    let vs: Vec<String> = builds[..base].iter().map(|b| format!("{} / {} - 1", b.name, builds[base].name)).collect();
    if !instr.is_empty() {
        println!("| instructions (callgrind, Ir) | {} | {} |", names.join(" | "), vs.join(" | "));
        println!("|---|{}", "---:|".repeat(names.len() + vs.len()));
        for (case, counts) in &instr {
            let cells: Vec<String> = counts.iter().map(|c| c.to_string()).collect();
            let pct: Vec<String> = counts[..base]
                .iter()
                .map(|c| format!("{:+.2}%", (*c as f64 / counts[base] as f64 - 1.0) * 100.0))
                .collect();
            println!("| {case} | {} | {} |", cells.join(" | "), pct.join(" | "));
        }
        println!();
    }
    let per_round: Vec<String> = vs.iter().map(|v| format!("{v}, median of per-round ratios")).collect();
    let min_min: Vec<String> = vs.iter().map(|v| format!("{v}, min / min")).collect();
    println!(
        "| time ({} rounds, each the median of {} runs): median | {} | {} | {} |",
        o.rounds,
        o.reps,
        names.join(" | "),
        per_round.join(" | "),
        min_min.join(" | ")
    );
    println!("|---|{}", "---:|".repeat(names.len() + 2 * vs.len()));
    let pct = |x: Option<f64>| x.map_or("n/a".into(), |r| format!("{:+.2}%", (r - 1.0) * 100.0));
    let min = |v: &[f64]| v.iter().copied().reduce(f64::min);
    let mut timed = Vec::new();
    for (ci, (w, t)) in COST_TIMED.iter().enumerate() {
        let of = |bi: usize| times.get(&(ci, bi)).cloned().unwrap_or_default();
        let medians: Vec<String> = (0..builds.len()).map(|bi| fmt_ns(median_f64(&of(bi)))).collect();
        let (mut ratio, mut mins) = (Vec::new(), Vec::new());
        for bi in 0..base {
            let per_round: Vec<f64> = of(bi).iter().zip(&of(base)).map(|(a, b)| a / b).collect();
            ratio.push(pct(median_f64(&per_round)));
            mins.push(pct(min(&of(bi)).zip(min(&of(base))).map(|(a, b)| a / b)));
        }
        println!("| {w} x{t} | {} | {} | {} |", medians.join(" | "), ratio.join(" | "), mins.join(" | "));
        let runs: serde_json::Map<String, Value> =
            builds.iter().enumerate().map(|(bi, b)| (b.name.to_string(), json!(of(bi)))).collect();
        timed.push(json!({ "workload": w, "threads": t, "ns": runs }));
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
    let instr_json: Vec<Value> = instr
        .iter()
        .map(|(case, counts)| {
            let m: serde_json::Map<String, Value> =
                builds.iter().zip(counts).map(|(b, c)| (b.name.to_string(), json!(c))).collect();
            json!({ "case": case, "ir": m })
        })
        .collect();
    let doc = json!({ "meta": meta, "variants": names, "instructions": instr_json, "time": timed });
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

/// Instructions in the measured loops (deterministic: the same seeds and sizes), per case and
/// variant; cases where a variant failed are left out with a message.
fn count_instructions(builds: &[Variant]) -> Vec<(&'static str, Vec<u64>)> {
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
    let mut out = Vec::new();
    'case: for (label, toggle, argv) in cases {
        let mut counts = Vec::new();
        for b in builds {
            match callgrind(&b.dir.join(&argv[0]), &argv[1..], toggle, b.env) {
                Ok(n) => counts.push(n),
                Err(e) => {
                    eprintln!("suite: callgrind {label} ({}): {e}", b.name);
                    continue 'case;
                }
            }
        }
        eprintln!("suite: callgrind {label}: {counts:?}");
        out.push((label, counts));
    }
    out
}

/// Times of [`COST_TIMED`]: (case, variant) -> the median of each round; the variants' order
/// rotates every round.
fn time_rounds(o: &CostOptions, builds: &[Variant], started: Instant) -> BTreeMap<(usize, usize), Vec<f64>> {
    let reps = o.reps.to_string();
    let mut times: BTreeMap<(usize, usize), Vec<f64>> = BTreeMap::new();
    for round in 0..o.rounds {
        for (ci, (w, t)) in COST_TIMED.iter().enumerate() {
            for k in 0..builds.len() {
                let bi = (k + round) % builds.len();
                let b = &builds[bi];
                let allocator = if *w == "request-server" { TS_NOEPOCHS } else { "temporal-slab" };
                match run_child_env(&b.dir.join("suite"), allocator, w, *t, &["--reps", &reps, "--no-latency"], b.env) {
                    Ok(v) => times.entry((ci, bi)).or_default().push(v["median_ns"].as_f64().unwrap_or(0.0)),
                    Err(e) => eprintln!("suite: {e}"),
                }
            }
        }
        eprintln!("suite: cost round {}/{} done ({:.0} s)", round + 1, o.rounds, started.elapsed().as_secs_f64());
    }
    times
}

/// What the `suite` binary at `exe` was built with: (counters, profiler).
fn build_info(exe: &Path) -> Result<(bool, bool), String> {
    let out = Command::new(exe).arg("build-info").output().map_err(|e| format!("running {}: {e}", exe.display()))?;
    let v: Value = serde_json::from_slice(&out.stdout).map_err(|e| format!("{} build-info: {e}", exe.display()))?;
    let stats = v["stats"].as_bool().ok_or_else(|| format!("{} build-info: no \"stats\"", exe.display()))?;
    // Builds from before the profiler existed report no "profile": they have none.
    Ok((stats, v["profile"].as_bool().unwrap_or(false)))
}

/// Instructions counted by callgrind inside functions matching `toggle`, for `exe args`
/// (temporal-slab selected, its background reclaimer off so that nothing else runs).
fn callgrind(exe: &Path, args: &[String], toggle: &str, env: &[(&str, &str)]) -> Result<u64, String> {
    let out = Command::new("valgrind")
        .args(["--tool=callgrind", "--callgrind-out-file=/dev/null"])
        .arg(format!("--toggle-collect={toggle}"))
        .arg(exe)
        .args(args)
        .env(selected::ENV, "temporal-slab")
        .env("TSLAB_RECLAIM", "0")
        .envs(env.iter().copied())
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
