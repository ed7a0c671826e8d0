//! `--doctor`: ranked, actionable findings from one snapshot.
//!
//! Each finding has a severity, what was seen (with the numbers) and what to do. Ranked critical
//! first, then by how much memory or how many events are involved.

use std::io::{self, Write};

use temporal_slab::epoch::EpochState;
use temporal_slab::stats::{EpochStats, SHARED_LABEL_TEXT};
use temporal_slab::Snapshot;

use crate::fmt::{bytes, pct, seconds};

/// How urgent a finding is.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Memory is being lost or the allocator is failing.
    Critical,
    /// Likely an application bug or a costly pattern.
    Warning,
    /// Worth knowing.
    Info,
}

/// One finding.
#[derive(Debug, Clone)]
pub struct Finding {
    /// How urgent.
    pub severity: Severity,
    /// Ranking weight within a severity (bytes or events involved).
    pub weight: u64,
    /// What was seen.
    pub what: String,
    /// What to do.
    pub fix: String,
}

/// How long ago epoch row `e` of `s` ended, if it has ended and is still held open by domains
/// opened in it: it is ACTIVE but not the current era (an epoch stays ACTIVE after it has ended
/// while domains opened in it are open; no domain joins it any more) and its refcount (the
/// domains open in it) is above 0. `None` for the current epoch, whatever domains are open in it,
/// and for closing or unused slots.
///
/// The time is exact when the next era is still in the ring: the advance that ended `e` opened
/// era `e + 1` (the age of that row is the time since). When that era has already been replaced
/// in the ring by a later one (or was skipped), `e`'s own age is used: an upper bound, taken
/// because that era has passed since.
pub fn ended_for(s: &Snapshot, e: &EpochStats) -> Option<f64> {
    if e.state != Some(EpochState::Active) || e.era == 0 || e.era == s.current_era || e.refcount == 0 {
        return None;
    }
    if let Some(next) = s.epochs.iter().find(|n| n.era == e.era + 1 && n.state.is_some()) {
        return Some(next.age_sec.min(e.age_sec));
    }
    Some(e.age_sec)
}

/// The doctor's rule for a stuck epoch: it ended at least `stuck_after` seconds ago and domains
/// opened in it are still open (see [`ended_for`]). Domains open in the current epoch are never
/// a finding: that is where every new domain goes.
pub fn is_stuck(s: &Snapshot, e: &EpochStats, stuck_after: f64) -> bool {
    ended_for(s, e).is_some_and(|t| t >= stuck_after)
}

/// Where to look for the domains that hold epoch row `e` of `s` open, for a fix text: the domain
/// labelled X; for an epoch that domains of several labels (or none) joined, the labels that
/// have domains open now, from the label registry.
pub fn suspect_domains(s: &Snapshot, e: &EpochStats) -> String {
    let which = match e.label.as_deref() {
        Some(SHARED_LABEL_TEXT) => {
            "the domains opened while this epoch was current (domains of several labels joined it)"
        }
        Some(l) => return format!("the domain labelled {l:?}"),
        None => "the unlabelled domains opened while this epoch was current",
    };
    let open: Vec<String> = s
        .label_registry
        .iter()
        .filter(|l| l.open_domains > 0)
        .map(|l| format!("{:?} ({} open)", l.label, l.open_domains))
        .collect();
    if open.is_empty() {
        which.to_string()
    } else {
        format!("{which}; labels with domains open now: {}", open.join(", "))
    }
}

/// Examines `s`; an epoch that ended at least `stuck_after` seconds ago and is still held open by
/// domains opened in it is stuck (see [`is_stuck`]).
pub fn diagnose(s: &Snapshot, stuck_after: f64) -> Vec<Finding> {
    let mut out = Vec::new();
    let g = &s.global;
    for e in &s.epochs {
        let label = e.label.as_deref().map(|l| format!(" ({l:?})")).unwrap_or_default();
        if let Some(ended) = ended_for(s, e).filter(|&t| t >= stuck_after) {
            out.push(Finding {
                severity: if ended >= 5.0 * stuck_after { Severity::Critical } else { Severity::Warning },
                weight: e.live_bytes.max(1),
                what: format!(
                    "epoch {}{label}, era {}, ended {} ago but is still held open by refcount {} (domains opened in \
                     it and never ended), holding {} in {} slabs",
                    e.epoch_id,
                    e.era,
                    seconds(ended),
                    e.refcount,
                    bytes(e.live_bytes),
                    e.live_slabs
                ),
                fix: format!(
                    "{} domain(s) opened here never ended: find where {} is created and make sure it is closed or \
                     dropped (EpochDomain::close, drop, or auto_close(true) with its guards dropped; \
                     tslab_domain_close or tslab_domain_destroy in C)",
                    e.refcount,
                    suspect_domains(s, e)
                ),
            });
        }
        if e.state == Some(EpochState::Closing) && e.live_bytes > 0 && e.age_sec >= stuck_after {
            out.push(Finding {
                severity: Severity::Info,
                weight: e.live_bytes,
                what: format!(
                    "epoch {}{label}, era {}, is closed but {} of objects allocated in it are still live after {} ({} slabs)",
                    e.epoch_id,
                    e.era,
                    bytes(e.live_bytes),
                    seconds(e.age_sec),
                    e.live_slabs
                ),
                fix: "long-lived objects made during a short phase keep its slabs (later epochs reuse their \
                      free cells, but the pages cannot go back to the OS): allocate them outside the phase's \
                      domain (e.g. in a long-lived domain) so the phase can be reclaimed whole"
                    .into(),
            });
        }
    }
    if s.total_madvise_failures > 0 {
        out.push(Finding {
            severity: Severity::Critical,
            weight: s.total_madvise_failures,
            what: format!(
                "{} madvise calls failed: memory the allocator freed stays resident",
                s.total_madvise_failures
            ),
            fix: "check seccomp or container policies that block madvise(MADV_DONTNEED)".into(),
        });
    }
    let allocations: u64 = s.classes.iter().map(|c| c.allocations).sum();
    if allocations > 10_000 && s.total_slow_path_hits * 20 > allocations {
        let (cause, fix) = if s.total_slow_cache_miss >= s.total_slow_epoch_closed {
            ("new slabs (cache misses)", "the working set keeps growing or churns across many size classes")
        } else {
            (
                "epoch changes",
                "epochs or domains change very often relative to allocations: group more work per epoch, or \
                 turn off TSLAB_AUTO_ADVANCE_MS",
            )
        };
        out.push(Finding {
            severity: Severity::Warning,
            weight: s.total_slow_path_hits,
            what: format!(
                "{} of allocations take the slow path ({} of {}), mostly for {cause}",
                pct(s.total_slow_path_hits as f64 / allocations as f64),
                s.total_slow_path_hits,
                allocations
            ),
            fix: fix.into(),
        });
    }
    if g.epoch_close_scanned_slabs >= 10 {
        let y = g.epoch_close_recycled_slabs as f64 / g.epoch_close_scanned_slabs as f64;
        if y < 0.3 {
            out.push(Finding {
                severity: Severity::Warning,
                weight: g.epoch_close_scanned_slabs - g.epoch_close_recycled_slabs,
                what: format!(
                    "epoch closes recycle only {} of the slabs they look at ({} of {})",
                    pct(y),
                    g.epoch_close_recycled_slabs,
                    g.epoch_close_scanned_slabs
                ),
                fix: "objects outlive the epoch they were allocated in: close epochs where a phase really ends, \
                      or allocate long-lived data outside short-lived domains"
                    .into(),
            });
        }
    }
    let mut frag: Vec<_> =
        s.classes.iter().filter(|c| c.resident_bytes >= 1 << 20 && c.fragmentation_ratio >= 0.5).collect();
    frag.sort_by_key(|c| std::cmp::Reverse(c.resident_bytes - c.live_bytes.min(c.resident_bytes)));
    for c in frag.into_iter().take(3) {
        out.push(Finding {
            severity: Severity::Info,
            weight: c.resident_bytes - c.live_bytes.min(c.resident_bytes),
            what: format!(
                "size class {} B: {} resident but only {} live ({} fragmentation, {} slabs)",
                c.object_size,
                bytes(c.resident_bytes),
                bytes(c.live_bytes),
                pct(c.fragmentation_ratio),
                c.net_slabs
            ),
            fix: "objects of this size are freed unevenly across slabs (a leak shows as growing live bytes \
                  instead): long-lived objects mixed with short-lived ones pin partly empty slabs"
                .into(),
        });
    }
    let misuse = g.domain_misuse_out_of_order
        + g.domain_misuse_wrong_thread
        + g.domain_misuse_passed_era
        + g.domain_misuse_too_deep;
    if misuse > 0 {
        out.push(Finding {
            severity: Severity::Warning,
            weight: misuse,
            what: format!(
                "{misuse} domain misuses: {} out-of-order exits, {} guards dropped on another thread, {} enters \
                 of an ended domain or a closed epoch, {} too deep",
                g.domain_misuse_out_of_order,
                g.domain_misuse_wrong_thread,
                g.domain_misuse_passed_era,
                g.domain_misuse_too_deep
            ),
            fix: "drop domain guards in reverse order of entering, on the thread that entered, and do not \
                  enter a domain after closing it"
                .into(),
        });
    }
    if g.label_overflows > 0 {
        out.push(Finding {
            severity: Severity::Info,
            weight: g.label_overflows,
            what: format!("{} domains got the label \"(overflow)\": the label registry is full", g.label_overflows),
            fix: "use a bounded set of labels (one per kind of work, not per request)".into(),
        });
    }
    out.sort_by(|a, b| a.severity.cmp(&b.severity).then(b.weight.cmp(&a.weight)));
    out
}

/// Writes the findings, most urgent first.
pub fn write(w: &mut impl Write, findings: &[Finding]) -> io::Result<()> {
    if findings.is_empty() {
        return writeln!(w, "doctor: no findings");
    }
    writeln!(w, "doctor: {} finding(s), most urgent first", findings.len())?;
    for (i, f) in findings.iter().enumerate() {
        let sev = match f.severity {
            Severity::Critical => "CRITICAL",
            Severity::Warning => "WARNING",
            Severity::Info => "INFO",
        };
        writeln!(w, "  {}. [{sev}] {}", i + 1, f.what)?;
        writeln!(w, "     fix: {}", f.fix)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../schemas/examples/workload-attached.json");

    /// A snapshot with every ring slot unused but the current epoch (era 100, slot 3), which has
    /// `open` domains open in it.
    fn quiet(open: u64) -> Snapshot {
        let mut s: Snapshot = serde_json::from_str(EXAMPLE).unwrap();
        for e in &mut s.epochs {
            (e.state, e.era, e.refcount, e.age_sec, e.label, e.live_bytes) = (None, 0, 0, 0.0, None, 0);
        }
        s.current_era = 100;
        s.current_epoch = 3;
        let cur = &mut s.epochs[3];
        (cur.state, cur.era, cur.refcount, cur.age_sec) = (Some(EpochState::Active), 100, open, 500.0);
        for l in &mut s.label_registry {
            l.open_domains = 0;
        }
        s.total_madvise_failures = 0;
        s.global.epoch_close_scanned_slabs = 0;
        s.global.domain_misuse_out_of_order = 0;
        s.global.domain_misuse_wrong_thread = 0;
        s.global.domain_misuse_passed_era = 0;
        s.global.domain_misuse_too_deep = 0;
        s
    }

    /// Puts era `era` in its ring slot: ACTIVE, opened `age` seconds ago, `refcount` domains open.
    fn row(s: &mut Snapshot, era: u64, age: f64, refcount: u64, label: Option<&str>) {
        let e = &mut s.epochs[((era - 1) % 16) as usize];
        (e.state, e.era, e.refcount, e.age_sec) = (Some(EpochState::Active), era, refcount, age);
        e.label = label.map(str::to_string);
        e.live_bytes = 4096;
    }

    #[test]
    fn domains_open_in_the_current_epoch_are_no_finding() {
        let s = quiet(10_000);
        assert!(ended_for(&s, &s.epochs[3]).is_none());
        assert!(diagnose(&s, 1.0).iter().all(|f| !f.what.contains("held open")), "{:?}", diagnose(&s, 1.0));
    }

    #[test]
    fn an_ended_epoch_held_open_by_a_domain_is_critical_with_its_label() {
        let mut s = quiet(3);
        // Era 90 ended when era 91 opened, 20 s ago (era 91 itself has ended and closed since).
        row(&mut s, 90, 25.0, 1, Some("background-worker-3"));
        row(&mut s, 91, 20.0, 0, None);
        s.epochs[((91 - 1) % 16) as usize].state = Some(EpochState::Closing);
        let e = &s.epochs[((90 - 1) % 16) as usize];
        assert_eq!(ended_for(&s, e), Some(20.0));
        let f = diagnose(&s, 1.0);
        let held: Vec<_> = f.iter().filter(|f| f.what.contains("held open")).collect();
        assert_eq!(held.len(), 1, "{f:?}");
        assert_eq!(held[0].severity, Severity::Critical);
        assert!(held[0].what.contains("\"background-worker-3\"") && held[0].what.contains("refcount 1"), "{f:?}");
        assert!(held[0].what.contains("ended 20"), "{f:?}");
        assert!(
            held[0].fix.contains("never ended")
                && held[0].fix.contains("the domain labelled \"background-worker-3\" is created"),
            "{f:?}"
        );
        // Ended only 2 s ago: a warning (stuck after 1 s, critical from 5 s); 0.5 s ago: nothing.
        s.epochs[((91 - 1) % 16) as usize].age_sec = 2.0;
        let f = diagnose(&s, 1.0);
        assert!(f.iter().any(|f| f.what.contains("held open") && f.severity == Severity::Warning), "{f:?}");
        s.epochs[((91 - 1) % 16) as usize].age_sec = 0.5;
        assert!(diagnose(&s, 1.0).iter().all(|f| !f.what.contains("held open")));
        // With every domain ended it is no finding either (it closes).
        s.epochs[((90 - 1) % 16) as usize].refcount = 0;
        assert!(ended_for(&s, &s.epochs[((90 - 1) % 16) as usize]).is_none());
    }

    #[test]
    fn without_the_next_era_in_the_ring_the_age_is_used_and_shared_epochs_say_so() {
        let mut s = quiet(0);
        row(&mut s, 70, 30.0, 2, Some(SHARED_LABEL_TEXT));
        let e = &s.epochs[((70 - 1) % 16) as usize];
        assert_eq!(ended_for(&s, e), Some(30.0));
        let f = diagnose(&s, 1.0);
        let held: Vec<_> = f.iter().filter(|f| f.what.contains("held open")).collect();
        assert_eq!(held.len(), 1, "{f:?}");
        assert!(held[0].fix.starts_with("2 domain(s)") && held[0].fix.contains("several labels"), "{f:?}");
        assert!(!held[0].fix.contains("open now"), "{f:?}");
        // The registry says which labels have domains open now.
        s.label_registry[1].open_domains = 2;
        let f = diagnose(&s, 1.0);
        let fix = &f.iter().find(|f| f.what.contains("held open")).unwrap().fix;
        let l = &s.label_registry[1].label;
        assert!(fix.contains(&format!("labels with domains open now: {l:?} (2 open)")), "{fix}");
    }
}
