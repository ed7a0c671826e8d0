//! `tslab diff`: the rules, the relation of two snapshots and the rendering, on the schema's
//! example snapshot with counters set by hand.

use super::compare::*;
use super::render::*;
use super::*;
use clap::Args;
use temporal_slab::epoch::EpochState;
use temporal_slab::Snapshot;

const EXAMPLE: &str = include_str!("../../../schemas/examples/workload-attached.json");

/// A quiet snapshot: every counter low, nothing stuck, RSS known.
fn base() -> Snapshot {
    let mut s: Snapshot = serde_json::from_str(EXAMPLE).unwrap();
    for e in &mut s.epochs {
        e.refcount = 0;
    }
    s.rss_bytes_current = 1_000_000;
    s.total_madvise_failures = 0;
    s.global.madvise_failures = 0;
    s.global.epoch_close_scanned_slabs = 0;
    s.global.epoch_close_recycled_slabs = 0;
    set_alloc(&mut s, 100_000, 3_500);
    s
}

/// Sets the total allocations (all in class 0) and slow-path hits (all cache misses).
fn set_alloc(s: &mut Snapshot, allocations: u64, slow: u64) {
    for c in &mut s.classes {
        c.allocations = 0;
    }
    s.classes[0].allocations = allocations;
    s.total_slow_path_hits = slow;
    s.total_slow_cache_miss = slow;
    s.total_slow_epoch_closed = 0;
}

/// A snapshot of another process, a second later.
fn other(s: &Snapshot) -> Snapshot {
    let mut o = s.clone();
    o.pid = s.pid + 1;
    o.timestamp_ns = s.timestamp_ns + 1_000_000_000;
    o
}

fn settings() -> Settings {
    Settings { threshold: 10.0, stuck_after: 60.0 }
}

fn whats(r: &Report) -> Vec<String> {
    r.regressions.iter().map(|r| r.what.clone()).collect()
}

fn rendered(b: &Snapshot, a: &Snapshot, s: &Settings) -> String {
    let report = compare(b, a, s).unwrap();
    let mut out = Vec::new();
    render(&mut out, &["b.json", "a.json"], b, a, s, &report).unwrap();
    String::from_utf8(out).unwrap()
}

/// Makes ring slot `slot` an epoch of `era` that ended (it is not current) and is held open by
/// one domain; with no row of era + 1 in the ring, the time since it ended is taken as `age`.
fn stick(s: &mut Snapshot, slot: usize, era: u64, label: Option<&str>, age: f64) {
    assert!(era != s.current_era && s.epochs.iter().all(|n| n.era != era + 1), "era {era} is not ended long ago");
    let e = &mut s.epochs[slot];
    e.state = Some(EpochState::Active);
    e.era = era;
    e.refcount = 1;
    e.age_sec = age;
    e.label = label.map(str::to_string);
}

#[test]
fn args_are_consistent() {
    DiffArgs::augment_args(clap::Command::new("diff")).debug_assert();
}

#[test]
fn identical_snapshots_have_no_regression() {
    let b = base();
    let r = compare(&b, &other(&b), &settings()).unwrap();
    assert!(r.regressions.is_empty(), "{:?}", r.regressions);
    assert_eq!(r.relation, Relation::TwoProcesses { pid_reused: false });
}

#[test]
fn slow_path_rate_up_by_more_than_the_threshold() {
    let b = base();
    let mut a = other(&b);
    // 3.5% -> 3.85% is +10.0% exactly: not more than the threshold.
    set_alloc(&mut a, 100_000, 3_850);
    assert!(compare(&b, &a, &settings()).unwrap().regressions.is_empty());
    set_alloc(&mut a, 100_000, 3_851);
    let r = compare(&b, &a, &settings()).unwrap();
    assert_eq!(whats(&r), ["slow-path rate"]);
    assert!(r.regressions[0].numbers.contains("3.5% -> 3.9%"), "{:?}", r.regressions[0]);
    assert!(r.regressions[0].look_at.contains("cache misses"), "{:?}", r.regressions[0]);
    // A higher threshold accepts it.
    let lax = Settings { threshold: 20.0, ..settings() };
    assert!(compare(&b, &a, &lax).unwrap().regressions.is_empty());
    // Epoch changes as the cause are named as such.
    a.total_slow_cache_miss = 0;
    a.total_slow_epoch_closed = 3_851;
    let r = compare(&b, &a, &settings()).unwrap();
    assert!(r.regressions[0].look_at.contains("epoch changes"), "{:?}", r.regressions[0]);
}

#[test]
fn slow_path_rate_rise_below_a_tenth_of_a_point_is_noise() {
    let mut b = base();
    set_alloc(&mut b, 1_000_000, 1_000);
    let mut a = other(&b);
    // 0.1% -> 0.15%: +50% relative but only 0.05 percentage point.
    set_alloc(&mut a, 1_000_000, 1_500);
    assert!(compare(&b, &a, &settings()).unwrap().regressions.is_empty());
    // 0.1% -> 0.21%: +0.11 point.
    set_alloc(&mut a, 1_000_000, 2_100);
    assert_eq!(whats(&compare(&b, &a, &settings()).unwrap()), ["slow-path rate"]);
}

#[test]
fn slow_path_rate_of_one_process_is_the_intervals() {
    let b = base();
    let mut a = b.clone();
    a.timestamp_ns += 5_000_000_000;
    // Cumulative 3.5% -> 3.67% (+4.8%), but the interval's 100,000 allocations ran at 3.84%.
    set_alloc(&mut a, 200_000, 3_500 + 3_840);
    assert!(compare(&b, &a, &settings()).unwrap().regressions.is_empty());
    set_alloc(&mut a, 200_000, 3_500 + 3_900);
    let r = compare(&b, &a, &settings()).unwrap();
    assert_eq!(r.relation, Relation::SameProcess { interval_sec: 5.0 });
    assert_eq!(whats(&r), ["slow-path rate"]);
    assert!(r.regressions[0].numbers.contains("in the interval"), "{:?}", r.regressions[0]);
    // Too few allocations in the interval: not compared, and said so.
    set_alloc(&mut a, 100_000 + 9_999, 3_500 + 9_999);
    let r = compare(&b, &a, &settings()).unwrap();
    assert!(r.regressions.is_empty());
    assert!(r.notes.iter().any(|n| n.contains("9999 allocations in the interval")), "{:?}", r.notes);
}

#[test]
fn zero_allocations_are_not_compared_and_print_no_nan() {
    let mut b = base();
    set_alloc(&mut b, 0, 0);
    b.rss_bytes_current = 0;
    b.estimated_slab_rss_bytes = 0;
    let mut a = other(&b);
    set_alloc(&mut a, 0, 0);
    let r = compare(&b, &a, &settings()).unwrap();
    assert!(r.regressions.is_empty());
    assert!(r.notes.iter().any(|n| n.contains("slow-path rate not compared: 0 allocations in BEFORE")));
    assert!(r.notes.iter().any(|n| n.starts_with("RSS not compared")));
    let text = rendered(&b, &a, &settings());
    assert!(!text.contains("NaN") && !text.contains("inf"), "{text}");
    assert!(text.contains("n/a"), "{text}");
    assert!(text.ends_with("result: no regression\n"), "{text}");
}

#[test]
fn any_new_madvise_failure_is_a_regression() {
    let b = base();
    let mut a = other(&b);
    a.total_madvise_failures = 1;
    let r = compare(&b, &a, &settings()).unwrap();
    assert_eq!(whats(&r), ["madvise failures"]);
    assert_eq!(r.regressions[0].numbers, "0 -> 1");
    // As many as before (another process): not new.
    let mut b2 = b.clone();
    b2.total_madvise_failures = 1;
    assert!(compare(&b2, &a, &settings()).unwrap().regressions.is_empty());
    // Fewer than before (another process): an improvement, no underflow.
    b2.total_madvise_failures = 7;
    assert!(compare(&b2, &a, &settings()).unwrap().regressions.is_empty());
    // One process: a failure in the interval.
    let mut a1 = b2.clone();
    a1.timestamp_ns += 1;
    a1.total_madvise_failures = 8;
    let r = compare(&b2, &a1, &settings()).unwrap();
    assert_eq!(r.regressions[0].numbers, "7 -> 8, 1 new in the interval");
}

#[test]
fn rss_growth_at_the_threshold_boundary() {
    let b = base();
    let mut a = other(&b);
    a.rss_bytes_current = 1_100_000;
    assert!(compare(&b, &a, &settings()).unwrap().regressions.is_empty(), "exactly +10% is not more than 10%");
    a.rss_bytes_current = 1_100_001;
    let r = compare(&b, &a, &settings()).unwrap();
    assert_eq!(whats(&r), ["RSS"]);
    assert!(r.regressions[0].numbers.contains("+10.0%, threshold 10%"), "{:?}", r.regressions[0]);
    // Shrinking is never a regression.
    a.rss_bytes_current = 1;
    assert!(compare(&b, &a, &settings()).unwrap().regressions.is_empty());
    // Threshold 0: any growth.
    a.rss_bytes_current = 1_000_001;
    let strict = Settings { threshold: 0.0, ..settings() };
    assert_eq!(whats(&compare(&b, &a, &strict).unwrap()), ["RSS"]);
}

#[test]
fn rss_regression_says_whether_the_allocator_grew() {
    let b = base();
    let mut a = other(&b);
    a.rss_bytes_current = 2_000_000;
    a.global.resident_bytes = b.global.resident_bytes + 900_000;
    let r = compare(&b, &a, &settings()).unwrap();
    assert!(r.regressions[0].look_at.starts_with("the allocator's resident memory grew by 878.9 KiB"));
    a.global.resident_bytes = b.global.resident_bytes;
    let r = compare(&b, &a, &settings()).unwrap();
    assert!(r.regressions[0].look_at.contains("outside it"), "{:?}", r.regressions[0]);
}

#[test]
fn new_stuck_epochs_of_one_process_match_by_slot_and_era() {
    let mut b = base();
    let s = settings();
    stick(&mut b, 3, 40, Some("old-leak"), 100.0);
    let mut a = b.clone();
    a.timestamp_ns += 1;
    a.epochs[3].age_sec = 101.0;
    assert!(compare(&b, &a, &s).unwrap().regressions.is_empty(), "already stuck before");
    // Same slot, new era: a new stuck epoch.
    stick(&mut a, 3, 56, Some("old-leak"), 70.0);
    a.current_era = 60;
    b.current_era = 41;
    let r = compare(&b, &a, &s).unwrap();
    assert_eq!(whats(&r), ["new stuck epoch 3 \"old-leak\", era 56"]);
    // Open in BEFORE but younger than --stuck-after, stuck in AFTER: new.
    let mut b2 = base();
    stick(&mut b2, 5, 29, None, 59.0);
    let mut a2 = b2.clone();
    a2.timestamp_ns += 2_000_000_000;
    a2.epochs[5].age_sec = 61.0;
    let r = compare(&b2, &a2, &s).unwrap();
    assert_eq!(whats(&r), ["new stuck epoch 5, era 29"]);
    assert!(r.regressions[0].look_at.contains("unlabelled"));
    // CLOSING or without guards: not stuck.
    a2.epochs[5].refcount = 0;
    assert!(compare(&b2, &a2, &s).unwrap().regressions.is_empty());
    a2.epochs[5].refcount = 1;
    a2.epochs[5].state = Some(EpochState::Closing);
    assert!(compare(&b2, &a2, &s).unwrap().regressions.is_empty());
}

#[test]
fn new_stuck_epochs_of_two_processes_match_by_label() {
    let s = settings();
    let mut b = base();
    stick(&mut b, 1, 22, Some("worker"), 100.0);
    let mut a = other(&b);
    // The same leak, at another slot and era: not new.
    a.epochs[1].refcount = 0;
    stick(&mut a, 4, 25, Some("worker"), 90.0);
    assert!(compare(&b, &a, &s).unwrap().regressions.is_empty());
    // A second one with that label: the younger is new.
    stick(&mut a, 7, 39, Some("worker"), 65.0);
    assert_eq!(whats(&compare(&b, &a, &s).unwrap()), ["new stuck epoch 7 \"worker\", era 39"]);
}

#[test]
fn reclamation_yield_drop() {
    let mut b = base();
    b.global.epoch_close_scanned_slabs = 1_000;
    b.global.epoch_close_recycled_slabs = 900;
    let mut a = other(&b);
    a.global.epoch_close_recycled_slabs = 810;
    assert!(compare(&b, &a, &settings()).unwrap().regressions.is_empty(), "exactly -10%");
    a.global.epoch_close_recycled_slabs = 809;
    assert_eq!(whats(&compare(&b, &a, &settings()).unwrap()), ["reclamation yield"]);
    a.global.epoch_close_scanned_slabs = 99;
    a.global.epoch_close_recycled_slabs = 0;
    let r = compare(&b, &a, &settings()).unwrap();
    assert!(r.regressions.is_empty());
    assert!(r.notes.iter().any(|n| n.contains("99 slabs scanned by epoch closes in AFTER")), "{:?}", r.notes);
}

#[test]
fn swapped_snapshots_of_one_process_are_an_error() {
    let b = base();
    let mut a = b.clone();
    a.timestamp_ns += 3_000_000_000;
    set_alloc(&mut a, 200_000, 7_000);
    let e = compare(&a, &b, &settings()).unwrap_err().to_string();
    assert!(e.contains("3.0 s before BEFORE") && e.contains("swapped"), "{e}");
}

#[test]
fn counters_going_back_in_one_pid_mean_two_processes() {
    let b = base();
    let mut a = b.clone();
    a.timestamp_ns += 1;
    set_alloc(&mut a, 50_000, 100);
    a.current_era = 0;
    a.global.segments = 0;
    let r = compare(&b, &a, &settings()).unwrap();
    assert_eq!(r.relation, Relation::TwoProcesses { pid_reused: true });
    assert!(r.notes[0].contains("pid was reused"), "{:?}", r.notes);
    // AFTER older but its counters higher: not a swap of one process either.
    let mut a = b.clone();
    a.timestamp_ns -= 1;
    set_alloc(&mut a, 500_000, 100);
    let r = compare(&b, &a, &settings()).unwrap();
    assert_eq!(r.relation, Relation::TwoProcesses { pid_reused: true });
    let text = rendered(&b, &a, &settings());
    assert!(!text.contains("NaN") && !text.contains("inf"), "{text}");
}

#[test]
fn report_of_one_process() {
    let b = base();
    let mut a = b.clone();
    a.timestamp_ns += 1_500_000_000;
    set_alloc(&mut a, 150_000, 4_000);
    a.rss_bytes_current = 1_050_000;
    let text = rendered(&b, &a, &settings());
    let expected = "\
tslab diff: b.json (pid 16511, 2026-12-03T08:34:22.956Z) -> a.json (pid 16511, 2026-12-03T08:34:24.456Z): same process, 1.5 s apart
threshold 10%, stuck after 1m00s

                            before      after     change  change %
RSS                      976.6 KiB    1.0 MiB  +48.8 KiB     +5.0%
allocator resident         2.1 MiB    2.1 MiB        0 B      0.0%
allocator mapped          12.6 MiB   12.6 MiB        0 B      0.0%
slab resident              1.5 MiB    1.5 MiB        0 B      0.0%
live bytes in slabs      628.2 KiB  628.2 KiB        0 B      0.0%
live large objects       468.8 KiB  468.8 KiB        0 B      0.0%
slabs in use                   136        136          0      0.0%
fragmentation                58.9%      58.9%     0.0 pp      0.0%
allocations                 100000     150000     +50000    +50.0%
slow-path hits                3500       4000       +500    +14.3%
  cache miss (new slab)       3500       4000       +500    +14.3%
  epoch changed                  0          0          0      0.0%
slow-path rate                3.5%       2.7%    -0.8 pp    -23.8%
  in the interval             3.5%       1.0%    -2.5 pp    -71.4%
madvise calls                    0          0          0      0.0%
purged                         0 B        0 B        0 B      0.0%
madvise failures                 0          0          0      0.0%
epoch closes                    15         15          0      0.0%
reclamation yield              n/a        n/a        n/a       n/a
  in the interval              n/a        n/a        n/a       n/a
active epochs                    2          2          0      0.0%
closing epochs                  14         14          0      0.0%
stuck epochs (>= 1m00s)          0          0          0      0.0%
domain misuses                   0          0          0      0.0%

note: reclamation yield not compared: 0 slabs scanned by epoch closes in BEFORE (needs 100)
result: no regression
";
    assert_eq!(text, expected, "actual:\n{text}");
}

#[test]
fn report_of_two_processes_with_regressions() {
    let b = base();
    let mut a = other(&b);
    a.rss_bytes_current = 1_200_000;
    a.total_madvise_failures = 2;
    stick(&mut a, 2, 37, Some("background-worker-3"), 61.0);
    let text = rendered(&b, &a, &settings());
    let tail: Vec<&str> = text.lines().skip_while(|l| !l.starts_with("note:")).collect();
    assert!(text.lines().next().unwrap().ends_with("): two processes"), "{text}");
    assert_eq!(
            tail,
            [
                "note: reclamation yield not compared: 0 slabs scanned by epoch closes in BEFORE (needs 100)",
                "REGRESSION: madvise failures (0 -> 2) - memory the allocator freed stays resident: check seccomp or \
                 container policies that block madvise(MADV_DONTNEED)",
                "REGRESSION: RSS (976.6 KiB -> 1.1 MiB, +20.0%, threshold 10%) - the allocator's resident memory grew \
                 by only 0 B: most of the growth is outside it (thread stacks, other mappings, the program itself)",
                "REGRESSION: new stuck epoch 2 \"background-worker-3\", era 37 (ended 1m01s ago, refcount 1, holding 1.7 \
                 KiB in 6 slabs) - domain(s) opened in it never ended: find where the domain labelled \"background-worker-3\" \
                 is created and make sure it is closed or dropped; tslab doctor",
                "result: 3 regressions",
            ],
            "{text}"
        );
}

#[test]
fn formatting() {
    assert_eq!(utc(0), "1970-01-01T00:00:00.000Z");
    assert_eq!(utc(951_782_400_123_000_000), "2000-02-29T00:00:00.123Z");
    assert_eq!(utc(1_795_436_498_749_717_832), "2026-11-23T12:21:38.749Z");
    assert_eq!(signed_1(-0.04), "0.0");
    assert_eq!(signed_1(2.25), "+2.3");
    assert_eq!(signed_pct(None), "n/a");
    assert_eq!(rel_change(0.0, 0.0), Some(0.0));
    assert_eq!(rel_change(0.0, 1.0), None);
    assert_eq!(signed_bytes(2048, 1024), "-1.0 KiB");
    assert_eq!(signed_count(u64::MAX, 0), format!("-{}", u64::MAX));
    assert_eq!(parse_threshold("15%"), Ok(15.0));
    assert!(parse_threshold("-1").is_err() && parse_threshold("NaN").is_err());
    assert!(parse_stuck_after("inf").is_err());
}
