//! The main group's markdown tables (time with temporal-slab's ratios to each peer, throughput,
//! RSS, call and operation latencies, the targets) and the number formatting every table
//! of the suite shares.

use std::collections::BTreeMap;

use serde_json::Value;

use super::TS_NOEPOCHS;

pub(super) fn fmt_ns(x: Option<f64>) -> String {
    match x {
        None => "n/a".into(),
        Some(n) if n >= 1e9 => format!("{:.2} s", n / 1e9),
        Some(n) if n >= 1e6 => format!("{:.1} ms", n / 1e6),
        Some(n) if n >= 1e3 => format!("{:.1} µs", n / 1e3),
        Some(n) => format!("{n:.0} ns"),
    }
}

pub(super) fn fmt_mib(x: Option<f64>) -> String {
    x.map_or("n/a".into(), |b| format!("{:.1}", b / (1024.0 * 1024.0)))
}

fn fmt_rate(x: Option<f64>) -> String {
    match x {
        None => "n/a".into(),
        Some(r) if r >= 1e6 => format!("{:.2} M", r / 1e6),
        Some(r) => format!("{:.1} k", r / 1e3),
    }
}

pub(super) fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
        _ => "n/a".into(),
    }
}

/// The rows of one (workload, threads), by allocator.
pub(super) type Group<'a> = ((String, u64), BTreeMap<String, &'a Value>);

/// Rows grouped by (workload, threads) in run order.
pub(super) fn groups(rows: &[Value]) -> Vec<Group<'_>> {
    let mut out: Vec<Group<'_>> = Vec::new();
    for r in rows {
        let key = (r["workload"].as_str().unwrap_or("?").to_string(), r["threads"].as_u64().unwrap_or(0));
        let a = r["allocator"].as_str().unwrap_or("?").to_string();
        match out.iter_mut().find(|(k, _)| *k == key) {
            Some((_, m)) => {
                m.insert(a, r);
            }
            None => out.push((key, BTreeMap::from([(a, r)]))),
        }
    }
    out
}

pub(super) fn print_tables(rows: &[Value], meta: &Value) {
    let peers = ["glibc", "glibc-notrim", "mimalloc", "jemalloc"];
    let gs = groups(rows);
    let get = |m: &BTreeMap<String, &Value>, a: &str, k: &str| m.get(a).and_then(|r| r[k].as_f64());
    let cores = meta["nproc"].as_u64().unwrap_or(0);
    println!(
        "\n### Time (median of {} run(s); ratio = temporal-slab / peer, below 1 favours temporal-slab; \
         this machine has {cores} CPUs, so 4 and 8 threads are oversubscribed)\n",
        meta["reps"]
    );
    println!(
        "| workload | threads | temporal-slab | glibc | glibc-notrim | mimalloc | jemalloc | ts / mimalloc | ts / glibc | \
         ts / jemalloc | ts / glibc-notrim |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for ((w, t), m) in &gs {
        for ts in ["temporal-slab", TS_NOEPOCHS] {
            if !m.contains_key(ts) {
                continue;
            }
            let label = if ts == TS_NOEPOCHS { format!("{w} (ts without epochs)") } else { w.clone() };
            let tsv = get(m, ts, "median_ns");
            let cells: Vec<String> = peers.iter().map(|p| fmt_ns(get(m, p, "median_ns"))).collect();
            let ratios: Vec<String> = ["mimalloc", "glibc", "jemalloc", "glibc-notrim"]
                .iter()
                .map(|p| ratio(tsv, get(m, p, "median_ns")))
                .collect();
            println!("| {label} | {t} | {} | {} | {} |", fmt_ns(tsv), cells.join(" | "), ratios.join(" | "));
        }
    }

    println!("\n### Throughput (operations per second at the median time)\n");
    println!("| workload | threads | operation | temporal-slab | glibc | glibc-notrim | mimalloc | jemalloc |");
    println!("|---|---:|---|---:|---:|---:|---:|---:|");
    for ((w, t), m) in &gs {
        for ts in ["temporal-slab", TS_NOEPOCHS] {
            if !m.contains_key(ts) {
                continue;
            }
            let label = if ts == TS_NOEPOCHS { format!("{w} (ts without epochs)") } else { w.clone() };
            let op = m.values().next().and_then(|r| r["op"].as_str()).unwrap_or("");
            let cells: Vec<String> =
                std::iter::once(ts).chain(peers).map(|a| fmt_rate(get(m, a, "ops_per_s"))).collect();
            println!("| {label} | {t} | {op} | {} |", cells.join(" | "));
        }
    }

    println!("\n### RSS, MiB: peak (VmHWM of the child) / right after the last repetition\n");
    println!("| workload | threads | temporal-slab | glibc | glibc-notrim | mimalloc | jemalloc | ts / glibc peak | ts / mimalloc peak |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for ((w, t), m) in &gs {
        for ts in ["temporal-slab", TS_NOEPOCHS] {
            if !m.contains_key(ts) {
                continue;
            }
            let label = if ts == TS_NOEPOCHS { format!("{w} (ts without epochs)") } else { w.clone() };
            let cells: Vec<String> = std::iter::once(ts)
                .chain(peers)
                .map(|a| format!("{} / {}", fmt_mib(get(m, a, "peak_rss_bytes")), fmt_mib(get(m, a, "rss_end_bytes"))))
                .collect();
            let peak = get(m, ts, "peak_rss_bytes");
            println!(
                "| {label} | {t} | {} | {} | {} |",
                cells.join(" | "),
                ratio(peak, get(m, "glibc", "peak_rss_bytes")),
                ratio(peak, get(m, "mimalloc", "peak_rss_bytes"))
            );
        }
    }

    let timers: Vec<f64> = rows.iter().filter_map(|r| r["timer"]["p50_ns"].as_f64()).collect();
    let timer99: Vec<f64> = rows.iter().filter_map(|r| r["timer"]["p99_ns"].as_f64()).collect();
    let span = |v: &[f64]| {
        let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = v.iter().copied().fold(0.0, f64::max);
        if v.is_empty() {
            "n/a".to_string()
        } else {
            format!("{lo:.0}-{hi:.0} ns")
        }
    };
    println!(
        "\n### Latency of single calls, ns (clock overhead included: empty timed region p50 {}, p99 {} over all children)\n",
        span(&timers),
        span(&timer99)
    );
    println!("| workload | threads | allocator | alloc p50 | p99 | p99.9 | p99.99 | free p50 | p99 | p99.9 | p99.99 |");
    println!("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let pcs = |v: &Value| -> String {
        if v.is_null() {
            return "n/a | n/a | n/a | n/a".into();
        }
        ["p50_ns", "p99_ns", "p999_ns", "p9999_ns"]
            .iter()
            .map(|k| fmt_ns(v[*k].as_f64()))
            .collect::<Vec<_>>()
            .join(" | ")
    };
    for ((w, t), m) in &gs {
        for a in std::iter::once("temporal-slab").chain(peers) {
            let Some(r) = m.get(a) else { continue };
            let l = &r["latency"];
            if l.is_null() || l["alloc"].is_null() {
                continue;
            }
            println!("| {w} | {t} | {a} | {} | {} |", pcs(&l["alloc"]), pcs(&l["free"]));
        }
    }
    let mut first = true;
    for ((w, t), m) in &gs {
        for a in ["temporal-slab", TS_NOEPOCHS].into_iter().chain(peers) {
            let Some(r) = m.get(a) else { continue };
            let l = &r["latency"]["op"];
            if l.is_null() {
                continue;
            }
            if first {
                println!("\n### Latency of whole operations (request-server: one request)\n");
                println!("| workload | threads | allocator | p50 | p99 | p99.9 | p99.99 |");
                println!("|---|---:|---|---:|---:|---:|---:|");
                first = false;
            }
            println!("| {w} | {t} | {a} | {} |", pcs(l));
        }
    }
    print_targets(&gs);
    print_machine(meta);
}

/// The targets, checked against this run's medians (reported, never asserted).
fn print_targets(gs: &[Group<'_>]) {
    let find = |w: &str, t: u64| gs.iter().find(|((gw, gt), _)| gw == w && *gt == t).map(|(_, m)| m);
    let val = |w: &str, t: u64, a: &str, k: &str| find(w, t).and_then(|m| m.get(a)).and_then(|r| r[k].as_f64());
    let single = [("alloc-test", 1), ("larson", 1), ("xmalloc", 1)];
    let cross = [("larson", 2), ("larson", 4), ("larson", 8), ("xmalloc", 2), ("xmalloc", 4), ("xmalloc", 8)];
    // (target, workloads, numerator allocator, key, denominator allocator or None for an absolute
    // value, limit)
    type Check<'a> = (&'a str, &'a [(&'a str, u64)], &'a str, &'a str, Option<&'a str>, f64);
    let checks: [Check<'_>; 7] = [
        ("single-thread time <= 1.10 x mimalloc", &single, "temporal-slab", "median_ns", Some("mimalloc"), 1.10),
        ("single-thread time <= 1.00 x glibc", &single, "temporal-slab", "median_ns", Some("glibc"), 1.0),
        ("cross-thread time <= 1.25 x mimalloc", &cross, "temporal-slab", "median_ns", Some("mimalloc"), 1.25),
        ("cross-thread time <= 1.00 x jemalloc", &cross, "temporal-slab", "median_ns", Some("jemalloc"), 1.0),
        ("malloc-large time <= 1.5 x glibc", &[("malloc-large", 1)], "temporal-slab", "median_ns", Some("glibc"), 1.5),
        ("single-thread peak RSS <= 1.2 x glibc", &single, "temporal-slab", "peak_rss_bytes", Some("glibc"), 1.2),
        ("alloc p99 <= 100 ns (clock included)", &single, "temporal-slab", "alloc_p99", None, 100.0),
    ];
    println!("\n### Targets (from the issue; reported, not asserted)\n");
    println!("| target | run | value | met |");
    println!("|---|---|---:|---|");
    for (name, runs, a, key, den, limit) in checks {
        for &(w, t) in runs {
            let num = if key == "alloc_p99" {
                find(w, t).and_then(|m| m.get(a)).and_then(|r| r["latency"]["alloc"]["p99_ns"].as_f64())
            } else {
                val(w, t, a, key)
            };
            let v = match den {
                Some(d) => num.zip(val(w, t, d, key)).map(|(n, d)| n / d),
                None => num,
            };
            let shown = match (v, den) {
                (None, _) => "n/a".to_string(),
                (Some(x), Some(_)) => format!("{x:.2}"),
                (Some(x), None) => format!("{x:.0} ns"),
            };
            let met = v.map_or("n/a", |x| if x <= limit { "yes" } else { "no" });
            println!("| {name} | {w} x{t} | {shown} | {met} |");
        }
    }
}

/// The last line of every table set: the machine, the date, the commit, the load and the wall
/// time of the run.
pub(super) fn print_machine(meta: &Value) {
    println!(
        "\nMachine: {} CPUs ({}), kernel {}; {} UTC; commit {}; load {} -> {}; wall {:.0} s.",
        meta["nproc"],
        meta["cpu_model"].as_str().unwrap_or("?"),
        meta["kernel"].as_str().unwrap_or("?"),
        meta["date_utc"].as_str().unwrap_or("?").trim_end_matches(" UTC"),
        meta["git_commit"].as_str().unwrap_or("?"),
        meta["load_start"].as_str().unwrap_or("?"),
        meta["load_end"].as_str().unwrap_or("?"),
        meta["wall_s"].as_f64().unwrap_or(0.0),
    );
}
