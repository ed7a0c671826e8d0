//! The `epochs` group: does telling temporal-slab about phases (epochs, domains) make a program
//! faster and smaller? Never slower or bigger is the product's promise; this group measures it.
//!
//! Every workload of [`benches::workloads::EPOCH_WORKLOADS`] runs on [`ALLOCATORS`]:
//! temporal-slab with the phase API, the same allocator without it (`temporal-slab-noepochs`:
//! the same work, no epoch or domain call), glibc, mimalloc, jemalloc and tcmalloc, one child
//! process each, allocators innermost (the rows compared with each other run next to each other
//! in time), at [`THREADS`] threads for the threaded workloads. `domain-cycle` is a
//! microbenchmark of temporal-slab's domain calls and runs on temporal-slab with and without
//! them, at 1 and 2 threads.
//!
//! The tables: per workload, thread count and allocator, the median time, the RSS at the child's
//! start, its peak (`VmHWM`), right after the last run's timed steps and after the idle time,
//! the bytes the workload holds (its peak and at the end readings) and RSS over them; then, for
//! temporal-slab, with the API over without it (time, RSS), its counters (epoch closes, ring
//! overflows, domain misuse, `madvise` calls: totals over the child's runs), and both
//! temporal-slab rows over the best peer of the row (the lowest of glibc, mimalloc, jemalloc,
//! tcmalloc, per figure); last, `domain-cycle`'s nanoseconds per cycle at 1 and 2 threads and
//! their ratio. Nothing is asserted.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use benches::procfs;
use benches::workloads::{self, Workload};
use serde_json::{json, Value};

use super::tables::{fmt_mib, fmt_ns, groups, ratio};
use super::{
    child_args, own_exe, run_plan, start_meta, write_results, Planned, RunOptions, TCMALLOC, TCMALLOC_LIB, TS_NOEPOCHS,
};

/// The group's allocators, in report order.
pub(super) const ALLOCATORS: [&str; 6] = ["temporal-slab", TS_NOEPOCHS, "glibc", "mimalloc", "jemalloc", TCMALLOC];
/// The peers temporal-slab is compared with.
const PEERS: [&str; 4] = ["glibc", "mimalloc", "jemalloc", TCMALLOC];
/// Default thread counts of the threaded workloads.
pub(super) const THREADS: [usize; 3] = [1, 2, 4];
/// Thread counts of `domain-cycle`.
const CYCLE_THREADS: [usize; 2] = [1, 2];
/// temporal-slab's two rows.
const TS: [&str; 2] = ["temporal-slab", TS_NOEPOCHS];

/// What a run of the group produced.
pub(super) struct GroupRun {
    rows: Vec<Value>,
    /// Children that failed (each also printed when it failed).
    pub(super) failures: Vec<String>,
    /// Rows skipped and why.
    notes: Vec<String>,
}

impl GroupRun {
    /// The results file's part for the group.
    pub(super) fn to_json(&self) -> Value {
        json!({ "rows": self.rows, "failures": self.failures, "notes": self.notes })
    }
}

/// The group's allocators present in `list` (`temporal-slab` brings `temporal-slab-noepochs`),
/// without tcmalloc when its library is missing (with a note).
fn allocators(list: &[String], notes: &mut Vec<String>) -> Vec<String> {
    let has = |a: &str| list.iter().any(|x| x == a);
    let mut v: Vec<String> = ALLOCATORS
        .iter()
        .filter(|a| has(a) || (**a == TS_NOEPOCHS && has("temporal-slab")))
        .map(|a| a.to_string())
        .collect();
    if v.iter().any(|a| a == TCMALLOC) && !Path::new(TCMALLOC_LIB).exists() {
        let note = format!(
            "tcmalloc rows skipped: {TCMALLOC_LIB} not found (Debian/Ubuntu: apt-get install libtcmalloc-minimal4)"
        );
        eprintln!("suite: {note}");
        notes.push(note);
        v.retain(|a| a != TCMALLOC);
    }
    v
}

/// Runs the group's workloads among `o.workloads`.
pub(super) fn run_group(exe: &Path, o: &RunOptions) -> GroupRun {
    let mut notes = Vec::new();
    let allocs = allocators(&o.allocators, &mut notes);
    let mut plan: Vec<Planned> = Vec::new();
    for w in o.workloads.iter().filter(|w| workloads::in_epochs_group(w.name)) {
        let threads: Vec<usize> = if w.name == "domain-cycle" {
            CYCLE_THREADS.to_vec()
        } else if w.threaded {
            o.epoch_threads.clone()
        } else {
            vec![1]
        };
        for t in threads {
            for a in allocs.iter().filter(|a| w.name != "domain-cycle" || TS.contains(&a.as_str())) {
                plan.push((*w, t, a.clone()));
            }
        }
    }
    let (rows, failures) = run_plan(exe, &plan, &child_args(o));
    GroupRun { rows, failures, notes }
}

/// `suite epochs`.
pub(super) fn run(o: RunOptions) -> ExitCode {
    let Some(exe) = own_exe() else { return ExitCode::FAILURE };
    let started = Instant::now();
    let mut meta = start_meta(if o.quick { "epochs-quick" } else { "epochs" }, o.reps);
    let g = run_group(&exe, &o);
    meta["load_end"] = json!(procfs::load_average());
    meta["wall_s"] = json!(started.elapsed().as_secs_f64());
    print_tables(&g, &meta);
    let mut doc = g.to_json();
    doc["meta"] = meta;
    match write_results(&o.out, &doc) {
        Ok(()) => eprintln!("suite: results in {} ({:.0} s)", o.out.display(), started.elapsed().as_secs_f64()),
        Err(e) => {
            eprintln!("suite: {e}");
            return ExitCode::FAILURE;
        }
    }
    if g.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The number at `path` in `v` (`None` when absent or not a number).
fn at(v: &Value, path: &[&str]) -> Option<f64> {
    path.iter().fold(v, |v, k| &v[*k]).as_f64()
}

/// `a / b` with the name of the best peer: `"1.23 (jemalloc)"`.
fn vs_best(a: Option<f64>, best: Option<(f64, &str)>) -> String {
    match (a, best) {
        (Some(a), Some((b, name))) if b > 0.0 => format!("{:.2} ({name})", a / b),
        _ => "n/a".into(),
    }
}

/// The lowest value of `path` among the peers present in `m`, and its peer.
fn best_peer<'a>(m: &BTreeMap<String, &Value>, path: &[&str]) -> Option<(f64, &'a str)> {
    PEERS.iter().filter_map(|p| m.get(*p).and_then(|r| at(r, path)).map(|v| (v, *p))).min_by(|a, b| a.0.total_cmp(&b.0))
}

/// The least live bytes for which RSS over live is shown.
const MIN_LIVE: u64 = 1 << 20;

/// `rss / live`, or `-` when `live` is below [`MIN_LIVE`].
fn per_live(rss: Option<f64>, live: Option<f64>) -> String {
    match live {
        Some(l) if l < MIN_LIVE as f64 => "-".into(),
        _ => ratio(rss, live),
    }
}

/// An integer counter of temporal-slab's snapshot in row `r`, as text.
fn counter(r: Option<&&Value>, key: &str) -> String {
    r.and_then(|r| r["ts"][key].as_u64()).map_or("n/a".into(), |n| n.to_string())
}

/// Prints the group's tables.
pub(super) fn print_tables(g: &GroupRun, meta: &Value) {
    let reps = meta["reps"].as_u64().unwrap_or(0);
    let cores = meta["nproc"].as_u64().unwrap_or(0);
    let gs: Vec<_> = groups(&g.rows).into_iter().filter(|((w, _), _)| w != "domain-cycle").collect();
    let idle = g.rows.iter().find_map(|r| r["end"]["idle_ms"].as_u64()).unwrap_or(0);
    let workload_of = |name: &str| workloads::find(name).map_or("", |w: Workload| w.op);

    println!(
        "\n### epochs group: time and memory (time: median of {reps} run(s); MiB: peak RSS is the child's VmHWM \
         over all its runs, the other RSS and live figures are read in the last run, after its timed steps; \
         live: bytes the workload itself holds, counted from its own data; idle: {idle} ms; {cores} CPUs)\n"
    );
    println!(
        "| workload | threads | allocator | time | RSS at start | peak RSS | RSS after | RSS after idle | live peak | \
         live end | peak RSS / live peak | idle RSS / live end |"
    );
    println!("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for ((w, t), m) in &gs {
        for a in ALLOCATORS {
            let Some(r) = m.get(a) else { continue };
            let f = |path: &[&str]| at(r, path);
            println!(
                "| {w} | {t} | {a} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                fmt_ns(f(&["median_ns"])),
                fmt_mib(f(&["rss_start_bytes"])),
                fmt_mib(f(&["peak_rss_bytes"])),
                fmt_mib(f(&["end", "rss_after_bytes"])),
                fmt_mib(f(&["end", "rss_idle_bytes"])),
                fmt_mib(f(&["end", "live_peak_bytes"])),
                fmt_mib(f(&["end", "live_end_bytes"])),
                per_live(f(&["peak_rss_bytes"]), f(&["end", "live_peak_bytes"])),
                per_live(f(&["end", "rss_idle_bytes"]), f(&["end", "live_end_bytes"])),
            );
        }
    }
    println!(
        "\nRSS / live: `-` where the workload holds less than {} MiB (the process's own few MiB would be most of \
         the figure); epochs-big-phase holds only its summaries at the end, so its idle RSS is the figure to read.",
        MIN_LIVE >> 20
    );

    println!(
        "\n### Does the API pay? temporal-slab with the phase API / without it (below 1: the API made it faster \
         or smaller); its counters are totals over the child's {reps} run(s)\n"
    );
    println!(
        "| workload | threads | time | peak RSS | RSS after | RSS after idle | epoch closes | ring overflows | \
         domain misuse: out of order / wrong thread / passed era / too deep | madvise calls, API / no API |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---|---|");
    for ((w, t), m) in &gs {
        let (api, no) = (m.get("temporal-slab"), m.get(TS_NOEPOCHS));
        if api.is_none() && no.is_none() {
            continue;
        }
        let r = |path: &[&str]| ratio(api.and_then(|r| at(r, path)), no.and_then(|r| at(r, path)));
        let misuse: Vec<String> = ["out_of_order", "wrong_thread", "passed_era", "too_deep"]
            .iter()
            .map(|k| counter(api, &format!("domain_misuse_{k}")))
            .collect();
        println!(
            "| {w} | {t} | {} | {} | {} | {} | {} | {} | {} | {} / {} |",
            r(&["median_ns"]),
            r(&["peak_rss_bytes"]),
            r(&["end", "rss_after_bytes"]),
            r(&["end", "rss_idle_bytes"]),
            counter(api, "epoch_close_calls"),
            counter(api, "ring_overflows"),
            misuse.join(" / "),
            counter(api, "total_madvise_calls"),
            counter(no, "total_madvise_calls"),
        );
    }

    println!(
        "\n### temporal-slab against the best peer of each row (the lowest of {}, per figure; below 1 favours \
         temporal-slab)\n",
        PEERS.join(", ")
    );
    println!("| workload | threads | allocator | time / best | peak RSS / best | RSS after idle / best |");
    println!("|---|---:|---|---:|---:|---:|");
    for ((w, t), m) in &gs {
        for a in TS {
            let Some(r) = m.get(a) else { continue };
            let cell = |path: &[&str]| vs_best(at(r, path), best_peer(m, path));
            println!(
                "| {w} | {t} | {a} | {} | {} | {} |",
                cell(&["median_ns"]),
                cell(&["peak_rss_bytes"]),
                cell(&["end", "rss_idle_bytes"])
            );
        }
    }

    let cycle = |a: &str, t: u64| {
        g.rows
            .iter()
            .find(|r| r["workload"] == "domain-cycle" && r["allocator"] == a && r["threads"].as_u64() == Some(t))
            .and_then(|r| Some(at(r, &["median_ns"])? / at(r, &["extra", "cycles_per_thread"])?))
    };
    if g.rows.iter().any(|r| r["workload"] == "domain-cycle") {
        let n = g.rows.iter().find_map(|r| r["extra"]["cycles_per_thread"].as_u64()).unwrap_or(0);
        println!(
            "\n### domain-cycle: ns per {} per thread (median of {reps} run(s) of {n} per thread)\n",
            workload_of("domain-cycle")
        );
        println!("| | 1 thread | 2 threads at once | 2 threads / 1 thread |");
        println!("|---|---:|---:|---:|");
        let diff = |t| cycle("temporal-slab", t).zip(cycle(TS_NOEPOCHS, t)).map(|(a, b)| a - b);
        let rows: [(&str, Option<f64>, Option<f64>); 3] = [
            (
                "new + enter + 32 B alloc/free + exit + close (temporal-slab)",
                cycle("temporal-slab", 1),
                cycle("temporal-slab", 2),
            ),
            ("32 B alloc/free only (temporal-slab-noepochs)", cycle(TS_NOEPOCHS, 1), cycle(TS_NOEPOCHS, 2)),
            ("the domain calls (difference)", diff(1), diff(2)),
        ];
        for (label, one, two) in rows {
            println!("| {label} | {} | {} | {} |", fmt_ns(one), fmt_ns(two), ratio(two, one));
        }
    }

    for n in &g.notes {
        println!("\nNote: {n}.");
    }
    if !g.failures.is_empty() {
        println!("\nFailed children: {}.", g.failures.join("; "));
    }
    super::tables::print_machine(meta);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocators_in_report_order() {
        let mut notes = Vec::new();
        let v = allocators(&["glibc".into(), "temporal-slab".into(), "glibc-notrim".into()], &mut notes);
        assert_eq!(v, ["temporal-slab", TS_NOEPOCHS, "glibc"]);
        let v = allocators(&[TCMALLOC.into()], &mut notes);
        if Path::new(TCMALLOC_LIB).exists() {
            assert_eq!(v, [TCMALLOC]);
            assert!(notes.is_empty());
        } else {
            assert!(v.is_empty());
            assert_eq!(notes.len(), 1);
        }
    }

    #[test]
    fn best_peer_is_the_lowest_present() {
        let rows = [
            json!({ "workload": "w", "threads": 1, "allocator": "temporal-slab", "median_ns": 300.0 }),
            json!({ "workload": "w", "threads": 1, "allocator": "glibc", "median_ns": 200.0 }),
            json!({ "workload": "w", "threads": 1, "allocator": "jemalloc", "median_ns": 150.0 }),
            json!({ "workload": "w", "threads": 1, "allocator": "glibc-notrim", "median_ns": 1.0 }),
        ];
        let gs = groups(&rows);
        let best = best_peer(&gs[0].1, &["median_ns"]);
        assert_eq!(best, Some((150.0, "jemalloc")));
        assert_eq!(vs_best(Some(300.0), best), "2.00 (jemalloc)");
        assert_eq!(vs_best(None, best), "n/a");
        assert_eq!(best_peer(&gs[0].1, &["end", "rss_idle_bytes"]), None);
    }

    #[test]
    fn rss_per_live_needs_a_mebibyte_live() {
        let mib = (1u64 << 20) as f64;
        assert_eq!(per_live(Some(10.0 * mib), Some(2.0 * mib)), "5.00");
        assert_eq!(per_live(Some(10.0 * mib), Some(1000.0)), "-");
        assert_eq!(per_live(Some(10.0 * mib), None), "n/a");
    }
}
