//! The doctor's findings joined with the heap profile: a closed epoch that live objects still
//! pin, and the call sites those objects came from.

use temporal_slab::epoch::EpochState;
use temporal_slab::profile_attach::Profile;
use temporal_slab::Snapshot;

use crate::doctor::{Finding, Severity};
use crate::fmt::bytes;
use crate::sites::{label_names, pinning};
use crate::symbolize::Symbolizer;

/// Whether era `era` is closed as of `s`: not the current era and not ACTIVE in the ring (an
/// era no longer in the ring closed long ago).
fn closed(s: &Snapshot, era: u64) -> bool {
    era != s.current_era && !s.epochs.iter().any(|e| e.era == era && e.state == Some(EpochState::Active))
}

/// Adds one finding per closed epoch that sampled objects still pin, naming the sites that
/// hold most of it, and ranks them with the rest.
pub fn cite_sites(findings: &mut Vec<Finding>, s: &Snapshot, p: &Profile, sym: &mut Symbolizer) {
    let labels = label_names(s);
    let mut eras: Vec<u64> = p.live.iter().map(|l| l.era).filter(|&e| closed(s, e)).collect();
    eras.sort_unstable();
    eras.dedup();
    for era in eras {
        let (by_site, total) = pinning(p, sym, era);
        let Some((top, top_bytes, _)) = by_site.first() else { continue };
        let objects: f64 = by_site.iter().map(|(_, _, o)| o).sum();
        let label = p
            .live
            .iter()
            .find(|l| l.era == era)
            .and_then(|l| l.label_id)
            .and_then(|id| labels.get(&id))
            .map(|l| format!(" ({l})"))
            .unwrap_or_default();
        let share = (100.0 * top_bytes / total.max(1.0)).round();
        let others = by_site.iter().skip(1).take(2).map(|(f, b, _)| format!("{} {}", f.describe(), bytes(*b as u64)));
        let others: Vec<String> = others.collect();
        let also = if others.is_empty() { String::new() } else { format!("; then {}", others.join(", ")) };
        findings.push(Finding {
            severity: if total >= (1 << 20) as f64 { Severity::Warning } else { Severity::Info },
            weight: total as u64,
            what: format!(
                "epoch era {era}{label} is closed but pinned by about {:.0} live objects ({}, estimated from heap \
                 samples); {share:.0}% of them from {}{also}",
                objects.round(),
                bytes(total as u64),
                top.describe()
            ),
            fix: format!(
                "objects that outlive their request keep its slabs in use: allocate what {} keeps inside \
                 `temporal_slab::tenured(|| ...)` (the tenured epoch: long-lived, never closed, pins no phase), \
                 or free it when the request ends",
                top.describe()
            ),
        });
    }
    findings.sort_by(|a, b| a.severity.cmp(&b.severity).then(b.weight.cmp(&a.weight)));
}
