//! Prometheus text exposition format 0.0.4 of a [`Snapshot`]: the one renderer behind
//! `tslab export prometheus` and `tslab serve`.
//!
//! Written with std only, on purpose: `prometheus-client` writes OpenMetrics, which
//! node_exporter's textfile collector rejects or mis-types, and the `prometheus` crate wants a
//! registry of live collectors rather than a one-shot rendering of plain data. The 0.0.4 text
//! format is small enough to write by hand, and doing so keeps every byte under our control.
//!
//! What the output guarantees (tests in this file and in `tests/export.rs` check each point):
//! - every family has `# HELP` and `# TYPE` lines, and its samples follow them contiguously; a
//!   family with no sample at all is left out whole (no dangling HELP/TYPE);
//! - names start with `temporal_slab_`; counters end in `_total`; units are base units in the
//!   name (`_bytes`, `_seconds`); ratios are 0..1 and end in `_ratio`;
//! - no timestamps (node_exporter skips a textfile that has any); the snapshot time is the gauge
//!   `temporal_slab_snapshot_timestamp_seconds`;
//! - every label value goes through [`encode::escape_label_value`], every HELP text through
//!   [`encode::escape_help`];
//! - bounded cardinality: at most 44 size classes (label `class`, the object size in bytes; 41
//!   in builds since the class change),
//!   16 epochs (label `epoch`, the ring index, never the era) and 32 registry labels. Repeated
//!   classes, epochs or label ids in a hand-made snapshot are skipped, because a duplicate series
//!   makes node_exporter drop the whole family;
//! - labels whose value changes during a series' life (an epoch's `state`, its domain `label`)
//!   never sit on value metrics: they have their own families (`temporal_slab_epoch_state`,
//!   `temporal_slab_epoch_label_info`) to join on `epoch`;
//! - deterministic order: families in the order of [`render`], classes and epochs in snapshot
//!   order, fixed label orders; the same snapshot always gives the same bytes.
//!
//! Which families there are, their types, HELP texts and the JSON keys they come from is one
//! list: the `x-prometheus` annotations of `schemas/snapshot.schema.json` (one on every
//! property), from which `docs/METRICS.md`'s family tables are generated too (tests check both,
//! and that every schema key is exported, read by a derived family, or not exported with the
//! reason).
//!
//! Files: `catalog.rs` reads that list, `encode.rs` writes families and samples (types,
//! escaping, values), `families.rs` gives each family its samples.

use temporal_slab::stats::{EpochStats, LabelEntry};
use temporal_slab::Snapshot;

mod catalog;
mod encode;
mod families;
#[cfg(test)]
mod tests;

use encode::{unique_by, Exposition};
use families::{samples, Doc};

const PREFIX: &str = "temporal_slab_";
/// Most series per class family and per epoch family (the allocator's fixed table sizes; for
/// classes, the most any build has had, so that older saved snapshots render whole).
const MAX_CLASSES: usize = temporal_slab::plausible::MAX_SNAPSHOT_CLASSES;
const MAX_EPOCHS: usize = temporal_slab::epoch::EPOCH_SLOTS;
const MAX_LABELS: usize = temporal_slab::MAX_LABELS;

/// Renders `s` as Prometheus text exposition format 0.0.4. See the module docs for the
/// guarantees and `docs/METRICS.md` for the meaning of every family.
pub fn render(s: &Snapshot) -> String {
    let classes = unique_by(&s.classes, MAX_CLASSES, |c| c.object_size);
    let epochs: Vec<&EpochStats> = unique_by(&s.epochs, MAX_EPOCHS, |e| e.epoch_id)
        .into_iter()
        .filter(|e| (e.epoch_id as usize) < MAX_EPOCHS)
        .collect();
    let registry: Vec<&LabelEntry> = unique_by(&s.label_registry, MAX_LABELS, |l| l.id);
    let doc = Doc::new(s, classes, epochs, registry);
    let mut out = Exposition { text: String::with_capacity(96 * 1024) };
    for f in &catalog::catalog().families {
        let name = f.metric.strip_prefix(PREFIX).unwrap_or(&f.metric);
        out.family(name, f.kind, &f.help, &samples(f, &doc));
    }
    out.text
}
