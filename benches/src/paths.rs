//! Per-path latency: the timed single calls of a latency pass grouped by the allocator steps each
//! took (`temporal_slab::paths` masks, recorded in a `path-trace` build), so that a tail
//! percentile can be traced to what made those calls slow: a slab refill, a segment carve, an
//! epoch refresh, a page purge.
//!
//! For every distinct set of steps: how many calls took it, their share, their median, p99 and
//! largest time, and which share of the calls slower than the pass's overall p99 and p99.9 it
//! holds (the tail's make-up: the rows' tail shares add up to 1).

use serde_json::{json, Value};
use temporal_slab::paths;

/// One set of steps and its calls.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// The steps, as `temporal_slab::paths::describe` names them (`fast`: none).
    pub path: String,
    /// Calls that took exactly these steps.
    pub n: usize,
    /// `n` over all calls.
    pub share: f64,
    /// Median time (ns, clock included).
    pub p50_ns: f64,
    /// 99th percentile (ns).
    pub p99_ns: f64,
    /// Slowest call (ns).
    pub max_ns: f64,
    /// Share of the calls slower than the overall p99 that took these steps.
    pub of_p99_tail: f64,
    /// The same for the overall p99.9.
    pub of_p999_tail: f64,
}

/// Nearest-rank index of the `per_10k`-th quantile in `n` sorted samples.
fn rank(n: usize, per_10k: usize) -> usize {
    (n * per_10k).div_ceil(10_000).clamp(1, n) - 1
}

/// Groups `ticks` by `masks` (parallel; extra samples in the longer one are ignored). Rows are
/// ordered by their share of the p99.9 tail, then of the p99 tail, then by count. Empty when
/// there are no samples.
pub fn breakdown(ticks: &[u32], masks: &[u32], ticks_per_ns: f64) -> Vec<Row> {
    let n = ticks.len().min(masks.len());
    if n == 0 {
        return Vec::new();
    }
    let mut sorted = ticks[..n].to_vec();
    sorted.sort_unstable();
    let (t99, t999) = (sorted[rank(n, 9900)], sorted[rank(n, 9990)]);
    let above = |ts: &[u32], t: u32| ts.iter().filter(|&&x| x > t).count();
    let (tail99, tail999) = (above(&sorted, t99).max(1), above(&sorted, t999).max(1));
    let mut groups: std::collections::BTreeMap<u32, Vec<u32>> = std::collections::BTreeMap::new();
    for (&t, &m) in ticks.iter().zip(masks) {
        groups.entry(m).or_default().push(t);
    }
    let ns = |t: u32| f64::from(t) / ticks_per_ns;
    let mut rows: Vec<Row> = groups
        .into_iter()
        .map(|(mask, mut ts)| {
            ts.sort_unstable();
            let k = ts.len();
            Row {
                path: paths::describe(mask),
                n: k,
                share: k as f64 / n as f64,
                p50_ns: ns(ts[rank(k, 5000)]),
                p99_ns: ns(ts[rank(k, 9900)]),
                max_ns: ns(ts[k - 1]),
                of_p99_tail: above(&ts, t99) as f64 / tail99 as f64,
                of_p999_tail: above(&ts, t999) as f64 / tail999 as f64,
            }
        })
        .collect();
    rows.sort_by(|a, b| {
        b.of_p999_tail.total_cmp(&a.of_p999_tail).then(b.of_p99_tail.total_cmp(&a.of_p99_tail)).then(b.n.cmp(&a.n))
    });
    rows
}

/// The rows as JSON (an array of objects with the [`Row`] fields).
pub fn to_json(rows: &[Row]) -> Value {
    Value::Array(
        rows.iter()
            .map(|r| {
                json!({
                    "path": r.path, "n": r.n, "share": r.share, "p50_ns": r.p50_ns, "p99_ns": r.p99_ns,
                    "max_ns": r.max_ns, "of_p99_tail": r.of_p99_tail, "of_p999_tail": r.of_p999_tail,
                })
            })
            .collect(),
    )
}

/// A text table of the rows under `title`; at most `limit` rows, the rest summed in one line.
pub fn render(title: &str, rows: &[Row], limit: usize) -> String {
    let mut out = format!(
        "{title}\n{:<44} {:>9} {:>8} {:>8} {:>8} {:>10} {:>9} {:>9}\n",
        "steps", "calls", "share", "p50 ns", "p99 ns", "max ns", ">p99", ">p99.9"
    );
    for r in rows.iter().take(limit) {
        out += &format!(
            "{:<44} {:>9} {:>7.3}% {:>8.0} {:>8.0} {:>10.0} {:>8.1}% {:>8.1}%\n",
            r.path,
            r.n,
            r.share * 100.0,
            r.p50_ns,
            r.p99_ns,
            r.max_ns,
            r.of_p99_tail * 100.0,
            r.of_p999_tail * 100.0
        );
    }
    if rows.len() > limit {
        let rest = &rows[limit..];
        let sum = |f: fn(&Row) -> f64| rest.iter().map(f).sum::<f64>() * 100.0;
        out += &format!(
            "{:<44} {:>9} {:>7.3}% {:>8} {:>8} {:>10} {:>8.1}% {:>8.1}%\n",
            format!("({} other step sets)", rest.len()),
            rest.iter().map(|r| r.n).sum::<usize>(),
            sum(|r| r.share),
            "",
            "",
            "",
            sum(|r| r.of_p99_tail),
            sum(|r| r.of_p999_tail)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use temporal_slab::paths::Step;

    #[test]
    fn the_tail_is_traced_to_its_steps() {
        // 990 fast calls of 10 ticks, 9 slow ones of 100 (a refresh) and 1 of 1000 (a new slab).
        let mut ticks = vec![10u32; 990];
        let mut masks = vec![0u32; 990];
        ticks.extend([100; 9]);
        masks.extend([Step::Slow.bit() | Step::Refresh.bit(); 9]);
        ticks.push(1000);
        masks.push(Step::Slow.bit() | Step::NewSlab.bit());
        let rows = breakdown(&ticks, &masks, 1.0);
        assert_eq!(rows.len(), 3);
        // The p99.9 (rank 999 of 1000) is 100 ticks: only the new slab is slower. The p99
        // (rank 990) is 10: the ten slow calls are slower, nine of them refreshes.
        assert_eq!(rows[0].path, "slow+new-slab");
        assert_eq!((rows[0].of_p999_tail, rows[0].max_ns), (1.0, 1000.0));
        assert_eq!(rows[1].path, "slow+refresh");
        assert!((rows[1].of_p99_tail - 0.9).abs() < 1e-9 && rows[1].of_p999_tail == 0.0);
        assert_eq!(rows[2].path, "fast");
        assert_eq!((rows[2].n, rows[2].of_p99_tail), (990, 0.0));
        let total: f64 = rows.iter().map(|r| r.of_p99_tail).sum();
        assert!((total - 1.0).abs() < 1e-9);
        let text = render("alloc", &rows, 2);
        assert!(text.contains("slow+refresh") && text.contains("(1 other step sets)"), "{text}");
        assert_eq!(to_json(&rows)[1]["n"], 9);
    }

    #[test]
    fn no_samples_no_rows() {
        assert!(breakdown(&[], &[], 1.0).is_empty());
        assert!(breakdown(&[5, 6], &[], 1.0).is_empty());
    }
}
