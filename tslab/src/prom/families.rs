//! The samples of every family in the catalog (`catalog.rs`, read from the schema): a family
//! with a `from` path takes its values from the snapshot's JSON by that path, so a new key needs
//! only its catalog entry; the few `derived` families are computed here, by name.

use serde_json::Value as Json;
use temporal_slab::epoch::EpochState;
use temporal_slab::stats::{ClassStats, EpochStats, LabelEntry};
use temporal_slab::Snapshot;

use super::catalog::{FamilySpec, KeyPath, Scale};
use super::encode::*;

/// The snapshot, with the entries the renderer keeps (bounded, no repeats), each beside its JSON
/// form so that key paths can be looked up.
pub(super) struct Doc<'a> {
    s: &'a Snapshot,
    json: Json,
    classes: Vec<(&'a ClassStats, Json)>,
    epochs: Vec<(&'a EpochStats, Json)>,
    registry: Vec<(&'a LabelEntry, Json)>,
}

impl<'a> Doc<'a> {
    pub(super) fn new(
        s: &'a Snapshot,
        classes: Vec<&'a ClassStats>,
        epochs: Vec<&'a EpochStats>,
        registry: Vec<&'a LabelEntry>,
    ) -> Doc<'a> {
        // Serializing plain data into a `Value` cannot fail (no maps with non-string keys); a
        // failure would only leave that part without samples.
        let json = |v: &dyn erased::Ser| v.to_json();
        Doc {
            s,
            json: json(s),
            classes: classes.into_iter().map(|c| (c, json(c))).collect(),
            epochs: epochs.into_iter().map(|e| (e, json(e))).collect(),
            registry: registry.into_iter().map(|l| (l, json(l))).collect(),
        }
    }
}

/// `serde_json::to_value` behind one object-safe call, so `Doc::new` can use one closure for the
/// four types.
mod erased {
    pub(super) trait Ser {
        fn to_json(&self) -> serde_json::Value;
    }
    impl<T: serde::Serialize> Ser for T {
        fn to_json(&self) -> serde_json::Value {
            serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
        }
    }
}

/// The samples of `f` (empty: the family is left out).
pub(super) fn samples(f: &FamilySpec, doc: &Doc<'_>) -> Vec<(Labels, Value)> {
    match f.from.as_deref().and_then(KeyPath::parse) {
        Some(path) => from_path(path, f.scale, doc),
        None => derived(f.metric.strip_prefix(super::PREFIX).unwrap_or(&f.metric), doc),
    }
}

fn from_path(path: KeyPath<'_>, scale: Option<Scale>, doc: &Doc<'_>) -> Vec<(Labels, Value)> {
    let one = |v: &Json| value(v, scale).map(|v| (Vec::new(), v)).into_iter().collect();
    match path {
        KeyPath::Top(k) => one(&doc.json[k]),
        KeyPath::Global(k) => one(&doc.json["global"][k]),
        KeyPath::FirstClass(k) => doc.classes.first().map_or_else(Vec::new, |(_, j)| one(&j[k])),
        KeyPath::PerClass(k) => {
            doc.classes.iter().filter_map(|(c, j)| Some((class_labels(c), value(&j[k], scale)?))).collect()
        }
        KeyPath::PerEpoch(k) => {
            doc.epochs.iter().filter_map(|(e, j)| Some((epoch_labels(e), value(&j[k], scale)?))).collect()
        }
        KeyPath::PerLabel(k) => {
            doc.registry.iter().filter_map(|(l, j)| Some((registry_labels(l), value(&j[k], scale)?))).collect()
        }
    }
}

/// A JSON number as a sample value; `null` (and anything else) gives no sample.
fn value(v: &Json, scale: Option<Scale>) -> Option<Value> {
    let n = v.as_number()?;
    match scale {
        Some(Scale::Nanoseconds) => n.as_u64().map(Nanos),
        None => n.as_u64().map(Int).or_else(|| n.as_f64().map(Float)),
    }
}

fn registry_labels(l: &LabelEntry) -> Labels {
    vec![("label_id", l.id.to_string()), ("label", l.label.clone())]
}

/// The families computed from several keys or from text (names without the prefix).
fn derived(name: &str, doc: &Doc<'_>) -> Vec<(Labels, Value)> {
    let s = doc.s;
    let g = &s.global;
    let live = g.small_live_bytes.saturating_add(g.large_bytes);
    let sum = |f: fn(&ClassStats) -> u64| doc.classes.iter().map(|(c, _)| f(c)).fold(0u64, u64::saturating_add);
    let labelled = |name: &'static str, value: &str, n: u64| (vec![(name, value.to_string())], Int(n));
    match name {
        "build_info" => vec![labelled("version", &s.version, 1)],
        "live_bytes" => vec![(Vec::new(), Int(live))],
        "fragmentation_ratio" => vec![(Vec::new(), Float(fragmentation(live, g.resident_bytes)))],
        "slabs" => vec![
            labelled("state", "partial", sum(|c| c.partial_slabs)),
            labelled("state", "full", sum(|c| c.full_slabs)),
            labelled("state", "warm", g.warm_slabs),
            labelled("state", "purged", g.pooled_slabs),
        ],
        "domain_misuse_total" => vec![
            labelled("kind", "out_of_order", g.domain_misuse_out_of_order),
            labelled("kind", "wrong_thread", g.domain_misuse_wrong_thread),
            labelled("kind", "passed_era", g.domain_misuse_passed_era),
            labelled("kind", "too_deep", g.domain_misuse_too_deep),
        ],
        "label_registry_entries" => vec![(Vec::new(), Int(doc.registry.len() as u64))],
        "label_registry_info" => doc.registry.iter().map(|(l, _)| (registry_labels(l), Int(1))).collect(),
        "class_slabs" => doc
            .classes
            .iter()
            .flat_map(|(c, _)| {
                [("partial", c.partial_slabs), ("full", c.full_slabs), ("warm", c.cached_empty_slabs)].map(
                    |(state, n)| {
                        let mut labels = class_labels(c);
                        labels.push(("state", state.to_string()));
                        (labels, Int(n))
                    },
                )
            })
            .collect(),
        "epoch_state" => {
            doc.epochs
                .iter()
                .flat_map(|(e, _)| {
                    [(Some(EpochState::Active), "ACTIVE"), (Some(EpochState::Closing), "CLOSING"), (None, "UNUSED")]
                        .map(|(state, name)| {
                            let mut labels = epoch_labels(e);
                            labels.push(("state", name.to_string()));
                            (labels, Int(u64::from(e.state == state)))
                        })
                })
                .collect()
        }
        "epoch_label_info" => doc
            .epochs
            .iter()
            .map(|(e, _)| {
                let mut labels = epoch_labels(e);
                labels.push(("label", e.label.clone().unwrap_or_default()));
                (labels, Int(1))
            })
            .collect(),
        // A derived family this renderer does not know: no samples (a test checks that every
        // family of the catalog renders).
        _ => Vec::new(),
    }
}
