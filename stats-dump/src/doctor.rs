//! `--doctor`: ranked, actionable findings from one snapshot.
//!
//! Each finding has a severity, what was seen (with the numbers) and what to do. Ranked critical
//! first, then by how much memory or how many events are involved.

use std::io::{self, Write};

use temporal_slab::epoch::EpochState;
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

/// Examines `s`; an ACTIVE epoch with live guards older than `stuck_after` seconds is stuck.
pub fn diagnose(s: &Snapshot, stuck_after: f64) -> Vec<Finding> {
    let mut out = Vec::new();
    let g = &s.global;
    for e in &s.epochs {
        let label = e.label.as_deref().map(|l| format!(" ({l:?})")).unwrap_or_default();
        if e.state == Some(EpochState::Active) && e.refcount > 0 && e.age_sec >= stuck_after {
            out.push(Finding {
                severity: if e.age_sec >= 5.0 * stuck_after { Severity::Critical } else { Severity::Warning },
                weight: e.live_bytes.max(1),
                what: format!(
                    "epoch {}{label}, era {}, has been open for {} with refcount {}, holding {} in {} slabs",
                    e.epoch_id,
                    e.era,
                    seconds(e.age_sec),
                    e.refcount,
                    bytes(e.live_bytes),
                    e.live_slabs
                ),
                fix: format!(
                    "a domain on this epoch was entered {} more time(s) than exited (a guard leaked or was \
                     forgotten): find where the domain{label} is entered and make every guard drop",
                    e.refcount
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
                fix: "long-lived objects made during a short phase pin its pages: allocate them outside the \
                      phase's domain (e.g. in a long-lived domain) so the phase can be reclaimed whole"
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
            (
                "new slabs (cache misses)",
                "the working set keeps growing or churns across many size classes; epochs closed too often \
                 also empty the warm pool",
            )
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
                 of a passed epoch, {} too deep",
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
