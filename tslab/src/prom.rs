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
//! - every label value goes through [`escape_label_value`], every HELP text through
//!   [`escape_help`];
//! - bounded cardinality: at most 44 size classes (label `class`, the object size in bytes),
//!   16 epochs (label `epoch`, the ring index, never the era) and 32 registry labels. Repeated
//!   classes, epochs or label ids in a hand-made snapshot are skipped, because a duplicate series
//!   makes node_exporter drop the whole family;
//! - labels whose value changes during a series' life (an epoch's `state`, its domain `label`)
//!   never sit on value metrics: they have their own families (`temporal_slab_epoch_state`,
//!   `temporal_slab_epoch_label_info`) to join on `epoch`;
//! - deterministic order: families in the order of [`render`], classes and epochs in snapshot
//!   order, fixed label orders; the same snapshot always gives the same bytes.
//!
//! `docs/METRICS.md` maps every family to the JSON keys it comes from; a test keeps the two in
//! step.

use std::fmt::Write as _;

use temporal_slab::epoch::EpochState;
use temporal_slab::stats::{ClassStats, EpochStats, LabelEntry};
use temporal_slab::Snapshot;

const PREFIX: &str = "temporal_slab_";
/// Most series per class family and per epoch family (the allocator's fixed table sizes).
const MAX_CLASSES: usize = temporal_slab::size_class::NUM_CLASSES;
const MAX_EPOCHS: usize = temporal_slab::epoch::EPOCH_SLOTS;
const MAX_LABELS: usize = temporal_slab::MAX_LABELS;

/// The metric type written on the `# TYPE` line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
}

/// A sample value, formatted by [`push_value`].
#[derive(Clone, Copy, Debug)]
enum Value {
    Int(u64),
    Float(f64),
    /// Nanoseconds, written as an exact decimal number of seconds.
    Nanos(u64),
}

use Kind::{Counter, Gauge};
use Value::{Float, Int, Nanos};

/// Label names and raw (unescaped) values of one sample, in output order.
type Labels = Vec<(&'static str, String)>;

/// The text being built, one family at a time.
struct Exposition {
    text: String,
}

impl Exposition {
    /// Writes one family: HELP, TYPE, then every sample. Nothing when `samples` is empty.
    fn family(&mut self, name: &str, kind: Kind, help: &str, samples: &[(Labels, Value)]) {
        if samples.is_empty() {
            return;
        }
        debug_assert_eq!(
            name.ends_with("_total"),
            kind == Kind::Counter,
            "{name}: counters and only counters end in _total"
        );
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        // Writing into a String cannot fail.
        let _ = writeln!(self.text, "# HELP {PREFIX}{name} {}", escape_help(help));
        let _ = writeln!(self.text, "# TYPE {PREFIX}{name} {kind}");
        for (labels, value) in samples {
            self.text.push_str(PREFIX);
            self.text.push_str(name);
            if !labels.is_empty() {
                self.text.push('{');
                for (i, (label, raw)) in labels.iter().enumerate() {
                    if i > 0 {
                        self.text.push(',');
                    }
                    let _ = write!(self.text, "{label}=\"{}\"", escape_label_value(raw.as_bytes()));
                }
                self.text.push('}');
            }
            self.text.push(' ');
            push_value(&mut self.text, *value);
            self.text.push('\n');
        }
    }

    /// A family with one unlabelled sample.
    fn single(&mut self, name: &str, kind: Kind, help: &str, value: Value) {
        self.family(name, kind, help, &[(Vec::new(), value)]);
    }

    /// A family with one sample per size class, labelled `class` (object size in bytes).
    fn per_class(
        &mut self,
        classes: &[&ClassStats],
        name: &str,
        kind: Kind,
        help: &str,
        f: impl Fn(&ClassStats) -> Value,
    ) {
        let samples: Vec<_> = classes.iter().map(|c| (class_labels(c), f(c))).collect();
        self.family(name, kind, help, &samples);
    }

    /// A family with one sample per ring slot, labelled `epoch` (ring index); slots where `f`
    /// gives `None` have no sample.
    fn per_epoch(
        &mut self,
        epochs: &[&EpochStats],
        name: &str,
        kind: Kind,
        help: &str,
        f: impl Fn(&EpochStats) -> Option<Value>,
    ) {
        let samples: Vec<_> = epochs.iter().filter_map(|e| Some((epoch_labels(e), f(e)?))).collect();
        self.family(name, kind, help, &samples);
    }
}

fn class_labels(c: &ClassStats) -> Labels {
    vec![("class", c.object_size.to_string())]
}

fn epoch_labels(e: &EpochStats) -> Labels {
    vec![("epoch", e.epoch_id.to_string())]
}

/// Escapes a label value for the text format: backslash as `\\`, double quote as `\"`, line
/// feed as `\n`; bytes that are not UTF-8 become U+FFFD. Every other character is kept as is
/// (the format has no other escapes).
pub fn escape_label_value(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let mut out = String::with_capacity(text.len() + 2);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes HELP text for the text format: backslash as `\\`, line feed as `\n`.
pub fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

/// Writes a sample value as the Prometheus text parser reads it.
fn push_value(out: &mut String, value: Value) {
    match value {
        Value::Int(n) => {
            let _ = write!(out, "{n}");
        }
        Value::Float(f) if f.is_nan() => out.push_str("NaN"),
        Value::Float(f) if f.is_infinite() => out.push_str(if f > 0.0 { "+Inf" } else { "-Inf" }),
        // Rust prints the shortest text that reads back as the same f64, never in exponent form.
        Value::Float(f) => {
            let _ = write!(out, "{f}");
        }
        Value::Nanos(ns) => out.push_str(&seconds_from_nanos(ns)),
    }
}

/// `ns` as an exact decimal number of seconds, without trailing zeros (`1500000000` -> `1.5`).
fn seconds_from_nanos(ns: u64) -> String {
    let (secs, frac) = (ns / 1_000_000_000, ns % 1_000_000_000);
    if frac == 0 {
        return secs.to_string();
    }
    let digits = format!("{frac:09}");
    format!("{secs}.{}", digits.trim_end_matches('0'))
}

/// The first `max` entries of `items` whose `key` was not seen before.
fn unique_by<T, K: PartialEq>(items: &[T], max: usize, key: impl Fn(&T) -> K) -> Vec<&T> {
    let mut seen: Vec<K> = Vec::new();
    let mut out = Vec::new();
    for item in items {
        if out.len() == max {
            break;
        }
        let k = key(item);
        if !seen.contains(&k) {
            seen.push(k);
            out.push(item);
        }
    }
    out
}

/// `1 - live / resident`, clamped to 0..1; 0 when nothing is resident.
fn fragmentation(live: u64, resident: u64) -> f64 {
    if resident == 0 {
        0.0
    } else {
        (1.0 - live as f64 / resident as f64).clamp(0.0, 1.0)
    }
}

/// Renders `s` as Prometheus text exposition format 0.0.4. See the module docs for the
/// guarantees and `docs/METRICS.md` for the meaning of every family.
pub fn render(s: &Snapshot) -> String {
    let classes = unique_by(&s.classes, MAX_CLASSES, |c| c.object_size);
    let epochs: Vec<&EpochStats> = unique_by(&s.epochs, MAX_EPOCHS, |e| e.epoch_id)
        .into_iter()
        .filter(|e| (e.epoch_id as usize) < MAX_EPOCHS)
        .collect();
    let registry: Vec<&LabelEntry> = unique_by(&s.label_registry, MAX_LABELS, |l| l.id);
    let mut out = Exposition { text: String::with_capacity(96 * 1024) };
    process_families(&mut out, s, &classes, &registry);
    class_families(&mut out, &classes);
    epoch_families(&mut out, &epochs);
    out.text
}

/// Process-wide families: the snapshot, memory, slabs, slow path, purging, the epoch ring and
/// epoch close, domains.
fn process_families(out: &mut Exposition, s: &Snapshot, classes: &[&ClassStats], registry: &[&LabelEntry]) {
    let g = &s.global;

    // The snapshot itself.
    out.single(
        "snapshot_timestamp_seconds",
        Gauge,
        "Wall-clock time (Unix seconds) at which the snapshot was taken; alert when it stops moving.",
        Nanos(s.timestamp_ns),
    );
    out.family(
        "build_info",
        Gauge,
        "Always 1; label version is the temporal-slab crate version of the process.",
        &[(vec![("version", s.version.clone())], Int(1))],
    );
    out.single("page_size_bytes", Gauge, "OS page size of the process.", Int(s.page_size));
    out.single("slab_size_bytes", Gauge, "Bytes per slab.", Int(s.slab_size));

    // Memory.
    out.single(
        "process_rss_bytes",
        Gauge,
        "Resident set size of the whole process, from /proc (0 if unreadable).",
        Int(s.rss_bytes_current),
    );
    out.single(
        "resident_bytes",
        Gauge,
        "Estimated resident memory of the allocator: touched slab pages, segment headers, large mappings and their cache, thread heaps.",
        Int(g.resident_bytes),
    );
    out.single(
        "mapped_bytes",
        Gauge,
        "Address space mapped by the allocator: segments, large mappings, thread heaps.",
        Int(g.mapped_bytes),
    );
    out.single(
        "slab_resident_bytes",
        Gauge,
        "Estimated resident bytes of all slabs (touched pages).",
        Int(s.estimated_slab_rss_bytes),
    );
    let live = g.small_live_bytes.saturating_add(g.large_bytes);
    out.single("live_bytes", Gauge, "Bytes of live objects: small (in slabs) plus large.", Int(live));
    out.single(
        "small_live_bytes",
        Gauge,
        "Bytes of live objects in slabs (object-size granularity).",
        Int(g.small_live_bytes),
    );
    out.single("large_live_bytes", Gauge, "Bytes requested by live large objects.", Int(g.large_bytes));
    out.single(
        "fragmentation_ratio",
        Gauge,
        "Share of the allocator's resident memory not holding live objects: 1 - live_bytes / resident_bytes (0..1).",
        Float(fragmentation(live, g.resident_bytes)),
    );
    out.single("large_objects", Gauge, "Large objects allocated and not freed.", Int(g.large_objects));
    out.single("large_cache_bytes", Gauge, "Bytes of freed large mappings kept for reuse.", Int(g.large_cache_bytes));
    out.single("large_cache_hits_total", Counter, "Large allocations served from the cache.", Int(g.large_cache_hits));
    out.single(
        "segments_mapped_total",
        Counter,
        "Segments mapped (never unmapped, so also the number mapped now).",
        Int(g.segments),
    );
    out.single("heaps_created_total", Counter, "Thread heaps created (live or parked for reuse).", Int(g.heaps));

    // Slabs.
    let sum = |f: fn(&ClassStats) -> u64| classes.iter().map(|c| f(c)).fold(0u64, u64::saturating_add);
    let by_state = |state: &str, n: u64| (vec![("state", state.to_string())], Int(n));
    out.family(
        "slabs",
        Gauge,
        "Slabs by state: partial (free room), full, warm (empty, kept resident for reuse), purged (empty, pages returned).",
        &[
            by_state("partial", sum(|c| c.partial_slabs)),
            by_state("full", sum(|c| c.full_slabs)),
            by_state("warm", g.warm_slabs),
            by_state("purged", g.pooled_slabs),
        ],
    );
    if let Some(c) = classes.first() {
        out.single("warm_slabs_limit", Gauge, "Most warm slabs the global pool keeps.", Int(c.cache_capacity));
    }
    out.single(
        "slabs_allocated_total",
        Counter,
        "Slabs taken for a size class from the pool or a new mapping.",
        Int(s.total_slabs_allocated),
    );
    out.single(
        "slabs_recycled_total",
        Counter,
        "Emptied slabs kept unpurged for reuse (warm pool or close reserve).",
        Int(s.total_slabs_recycled),
    );
    out.single(
        "cache_overflows_total",
        Counter,
        "Emptied slabs purged at once: the warm pool was full or their epoch was closing.",
        Int(s.total_cache_overflows),
    );

    // Slow path.
    out.single("slow_path_hits_total", Counter, "Allocations that left the fast path.", Int(s.total_slow_path_hits));
    out.single(
        "slow_cache_miss_total",
        Counter,
        "Slow-path allocations that needed a slab from outside the thread.",
        Int(s.total_slow_cache_miss),
    );
    out.single(
        "slow_epoch_closed_total",
        Counter,
        "Slow-path allocations caused by the thread's epoch having changed.",
        Int(s.total_slow_epoch_closed),
    );

    // Returning memory to the OS.
    out.single("madvise_calls_total", Counter, "madvise calls that purged memory.", Int(s.total_madvise_calls));
    out.single("madvise_bytes_total", Counter, "Bytes purged with madvise.", Int(s.total_madvise_bytes));
    out.single("madvise_failures_total", Counter, "madvise calls the kernel refused.", Int(s.total_madvise_failures));

    // The epoch ring and epoch close.
    out.single(
        "current_epoch",
        Gauge,
        "Ring index (0-15) of the current epoch; not the era.",
        Int(u64::from(s.current_epoch)),
    );
    out.single("current_era", Gauge, "Era of the current epoch (counts from 1, never decreases).", Int(s.current_era));
    out.single(
        "active_epochs",
        Gauge,
        "Ring slots holding an ACTIVE epoch (of 16): the current one and ended epochs still held open by their domains.",
        Int(u64::from(s.active_epoch_count)),
    );
    out.single(
        "closing_epochs",
        Gauge,
        "Ring slots holding a CLOSING epoch (of 16).",
        Int(u64::from(s.closing_epoch_count)),
    );
    out.single("close_calls_total", Counter, "epoch close calls.", Int(g.epoch_close_calls));
    out.single(
        "close_scanned_slabs_total",
        Counter,
        "Slabs looked at by close sweeps.",
        Int(g.epoch_close_scanned_slabs),
    );
    out.single(
        "close_recycled_slabs_total",
        Counter,
        "Slabs purged and recycled by close sweeps; divided by close_scanned_slabs_total it is the reclamation yield.",
        Int(g.epoch_close_recycled_slabs),
    );
    out.single("close_duration_seconds_total", Counter, "Time spent in epoch close.", Nanos(g.epoch_close_total_ns));
    out.single("last_close_era", Gauge, "Era of the last closed epoch (0: none yet).", Int(g.last_close_era));
    out.single("last_close_duration_seconds", Gauge, "Duration of the last epoch close.", Nanos(g.last_close_ns));
    out.single(
        "last_close_purged_bytes",
        Gauge,
        "Bytes purged during the last epoch close.",
        Int(g.last_close_purged_bytes),
    );
    out.single(
        "last_close_rss_before_bytes",
        Gauge,
        "Process RSS just before the last epoch close (0 unless RSS-on-close is on); compare with _after for the kernel's cooperation.",
        Int(g.last_close_rss_before),
    );
    out.single(
        "last_close_rss_after_bytes",
        Gauge,
        "Process RSS just after the last epoch close (0 unless RSS-on-close is on).",
        Int(g.last_close_rss_after),
    );
    out.single("auto_advances_total", Counter, "Automatic epoch advances.", Int(g.auto_advances));
    out.single(
        "ring_overflows_total",
        Counter,
        "Advances refused because all 16 ring slots held ACTIVE epochs (the current epoch stayed current).",
        Int(g.ring_overflows),
    );
    out.single("reclaimer_ticks_total", Counter, "Reclaimer passes run.", Int(g.reclaimer_ticks));

    // Epoch domains.
    let misuse = |kind: &str, n: u64| (vec![("kind", kind.to_string())], Int(n));
    out.family(
        "domain_misuse_total",
        Counter,
        "Domain guard misuse by kind: out_of_order (not LIFO), wrong_thread, passed_era (entered after the domain ended or its epoch closed), too_deep (nesting limit).",
        &[
            misuse("out_of_order", g.domain_misuse_out_of_order),
            misuse("wrong_thread", g.domain_misuse_wrong_thread),
            misuse("passed_era", g.domain_misuse_passed_era),
            misuse("too_deep", g.domain_misuse_too_deep),
        ],
    );
    out.single(
        "label_registry_entries",
        Gauge,
        "Entries in the domain label registry, the fixed (overflow) label included (at most 32).",
        Int(registry.len() as u64),
    );
    out.single(
        "label_overflows_total",
        Counter,
        "Domain labels that did not fit in the registry and got the (overflow) label.",
        Int(g.label_overflows),
    );
    let entries: Vec<_> =
        registry.iter().map(|l| (vec![("label_id", l.id.to_string()), ("label", l.label.clone())], Int(1))).collect();
    out.family("label_registry_info", Gauge, "Always 1, one series per registered domain label.", &entries);
}

/// One family per size-class figure, labelled `class`.
fn class_families(out: &mut Exposition, classes: &[&ClassStats]) {
    out.per_class(classes, "class_allocations_total", Counter, "Allocations served from the size class.", |c| {
        Int(c.allocations)
    });
    out.per_class(classes, "class_frees_total", Counter, "Frees into the size class.", |c| Int(c.frees));
    out.per_class(classes, "class_live_objects", Gauge, "Objects of the size class allocated and not freed.", |c| {
        Int(c.live_objects)
    });
    out.per_class(
        classes,
        "class_live_bytes",
        Gauge,
        "Bytes of live objects of the size class.",
        |c| Int(c.live_bytes),
    );
    out.per_class(
        classes,
        "class_resident_bytes",
        Gauge,
        "Estimated resident bytes of the size class's slabs (touched pages).",
        |c| Int(c.resident_bytes),
    );
    out.per_class(
        classes,
        "class_fragmentation_ratio",
        Gauge,
        "Share of the size class's resident memory not holding live objects (0..1).",
        |c| Float(c.fragmentation_ratio),
    );
    let class_slabs: Vec<_> = classes
        .iter()
        .flat_map(|c| {
            [("partial", c.partial_slabs), ("full", c.full_slabs), ("warm", c.cached_empty_slabs)].map(|(state, n)| {
                let mut labels = class_labels(c);
                labels.push(("state", state.to_string()));
                (labels, Int(n))
            })
        })
        .collect();
    out.family(
        "class_slabs",
        Gauge,
        "Slabs of the size class by state: partial (free room), full, warm (empty, kept resident).",
        &class_slabs,
    );
    out.per_class(classes, "class_new_slabs_total", Counter, "Slabs taken for the size class.", |c| Int(c.new_slabs));
    out.per_class(
        classes,
        "class_slow_path_hits_total",
        Counter,
        "Allocations of the size class that left the fast path.",
        |c| Int(c.slow_path_hits),
    );
    out.per_class(
        classes,
        "class_slow_cache_miss_total",
        Counter,
        "Slow-path allocations of the size class that needed a slab from outside the thread.",
        |c| Int(c.slow_path_cache_miss),
    );
    out.per_class(
        classes,
        "class_slow_epoch_closed_total",
        Counter,
        "Slow-path allocations of the size class caused by the thread's epoch having changed.",
        |c| Int(c.slow_path_epoch_closed),
    );
    out.per_class(
        classes,
        "class_empty_slabs_recycled_total",
        Counter,
        "Emptied slabs of the size class kept unpurged for reuse (warm pool or close reserve).",
        |c| Int(c.empty_slab_recycled),
    );
    out.per_class(
        classes,
        "class_empty_slabs_overflowed_total",
        Counter,
        "Emptied slabs of the size class purged at once (warm pool full or epoch closing).",
        |c| Int(c.empty_slab_overflowed),
    );
    out.per_class(
        classes,
        "class_madvise_calls_total",
        Counter,
        "madvise calls that purged slabs of the size class.",
        |c| Int(c.madvise_calls),
    );
    out.per_class(classes, "class_madvise_bytes_total", Counter, "Bytes purged from slabs of the size class.", |c| {
        Int(c.madvise_bytes)
    });
    out.per_class(
        classes,
        "class_madvise_failures_total",
        Counter,
        "madvise calls the kernel refused for the size class.",
        |c| Int(c.madvise_failures),
    );
    out.per_class(
        classes,
        "class_close_sweeps_total",
        Counter,
        "Close sweeps that looked at a slab of the size class (not epoch close calls; do not sum into them).",
        |c| Int(c.epoch_close_calls),
    );
    out.per_class(
        classes,
        "class_close_scanned_slabs_total",
        Counter,
        "Slabs of the size class looked at by close sweeps.",
        |c| Int(c.epoch_close_scanned_slabs),
    );
    out.per_class(
        classes,
        "class_close_recycled_slabs_total",
        Counter,
        "Slabs of the size class recycled by close sweeps.",
        |c| Int(c.epoch_close_recycled_slabs),
    );
}

/// One family per ring-slot figure, labelled `epoch`. Per-era figures reset when the slot opens
/// a new era.
fn epoch_families(out: &mut Exposition, epochs: &[&EpochStats]) {
    out.per_epoch(epochs, "epoch_era", Gauge, "Era of the epoch in the ring slot (0: never used).", |e| {
        Some(Int(e.era))
    });
    let states: Vec<_> = epochs
        .iter()
        .flat_map(|e| {
            [(Some(EpochState::Active), "ACTIVE"), (Some(EpochState::Closing), "CLOSING"), (None, "UNUSED")].map(
                |(state, name)| {
                    let mut labels = epoch_labels(e);
                    labels.push(("state", name.to_string()));
                    (labels, Int(u64::from(e.state == state)))
                },
            )
        })
        .collect();
    out.family(
        "epoch_state",
        Gauge,
        "1 for the state the ring slot is in (ACTIVE, CLOSING or UNUSED), 0 for the others.",
        &states,
    );
    let labels: Vec<_> = epochs
        .iter()
        .map(|e| {
            let mut labels = epoch_labels(e);
            labels.push(("label", e.label.clone().unwrap_or_default()));
            (labels, Int(1))
        })
        .collect();
    out.family(
        "epoch_label_info",
        Gauge,
        "Always 1; label is the label of the domains that joined the era in the ring slot ((shared): several labels; empty: none). Join on epoch.",
        &labels,
    );
    out.per_epoch(epochs, "epoch_age_seconds", Gauge, "Time since the era in the ring slot opened.", |e| {
        Some(Float(e.age_sec))
    });
    out.per_epoch(epochs, "epoch_refcount", Gauge, "Domains open in the era in the ring slot (not guards); above 0 on an era that is not current, domains never ended hold it open.", |e| {
        Some(Int(e.refcount))
    });
    out.per_epoch(
        epochs,
        "epoch_rss_bytes",
        Gauge,
        "Estimated resident bytes of the era's slabs (touched pages).",
        |e| Some(Int(e.estimated_rss_bytes)),
    );
    out.per_epoch(epochs, "epoch_partial_slabs", Gauge, "Slabs of the era with free room.", |e| {
        Some(Int(e.total_partial_slabs))
    });
    out.per_epoch(epochs, "epoch_full_slabs", Gauge, "Slabs of the era with no free room.", |e| {
        Some(Int(e.total_full_slabs))
    });
    out.per_epoch(
        epochs,
        "epoch_reclaimable_slabs",
        Gauge,
        "Empty slabs last used by the era, kept warm and not yet purged.",
        |e| Some(Int(e.total_reclaimable_slabs)),
    );
    out.per_epoch(epochs, "epoch_live_slabs", Gauge, "Slabs of the era that hold live objects.", |e| {
        Some(Int(e.live_slabs))
    });
    out.per_epoch(epochs, "epoch_live_bytes", Gauge, "Bytes of live objects in slabs of the era.", |e| {
        Some(Int(e.live_bytes))
    });
    out.per_epoch(
        epochs,
        "epoch_stale_era_slabs",
        Gauge,
        "Slabs of earlier eras of the ring slot that still hold live objects.",
        |e| Some(Int(e.stale_era_slabs)),
    );
    out.per_epoch(
        epochs,
        "epoch_close_calls_total",
        Counter,
        "epoch close calls on the era (resets with a new era).",
        |e| Some(Int(e.close_calls)),
    );
    out.per_epoch(
        epochs,
        "epoch_close_scanned_slabs_total",
        Counter,
        "Slabs the close sweeps of the era looked at (resets with a new era).",
        |e| Some(Int(e.close_scanned_slabs)),
    );
    out.per_epoch(
        epochs,
        "epoch_close_recycled_slabs_total",
        Counter,
        "Slabs the close sweeps of the era recycled (resets with a new era).",
        |e| Some(Int(e.close_recycled_slabs)),
    );
    out.per_epoch(
        epochs,
        "epoch_reclamation_yield_ratio",
        Gauge,
        "Recycled / scanned slabs of the era's close sweeps (0..1); no sample before any scan.",
        |e| e.reclamation_yield.map(Float),
    );
    out.per_epoch(
        epochs,
        "epoch_purged_bytes_total",
        Counter,
        "Bytes purged from the era's slabs after it stopped being active (resets with a new era).",
        |e| Some(Int(e.purged_bytes)),
    );
    out.per_epoch(
        epochs,
        "epoch_close_duration_seconds_total",
        Counter,
        "Time spent in epoch close for the era (resets with a new era).",
        |e| Some(Nanos(e.close_total_ns)),
    );
    out.per_epoch(epochs, "epoch_last_close_duration_seconds", Gauge, "Duration of the era's last close.", |e| {
        Some(Nanos(e.last_close_ns))
    });
    out.per_epoch(epochs, "epoch_last_close_purged_bytes", Gauge, "Bytes purged during the era's last close.", |e| {
        Some(Int(e.last_close_purged_bytes))
    });
    out.per_epoch(
        epochs,
        "epoch_rss_before_close_bytes",
        Gauge,
        "Process RSS just before the era's last close (0 unless RSS-on-close is on).",
        |e| Some(Int(e.rss_before_close)),
    );
    out.per_epoch(
        epochs,
        "epoch_rss_after_close_bytes",
        Gauge,
        "Process RSS just after the era's last close (0 unless RSS-on-close is on).",
        |e| Some(Int(e.rss_after_close)),
    );
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::io::Write;
    use std::process::{Command, Stdio};

    use super::*;

    const DEMO: &str = include_str!("../../schemas/examples/demo-in-process.json");

    fn demo() -> Snapshot {
        serde_json::from_str(DEMO).unwrap()
    }

    /// A registry entry with only its id and text (the per-label figures at their defaults).
    fn label_entry(id: u32, label: &str) -> LabelEntry {
        serde_json::from_value(serde_json::json!({ "id": id, "label": label })).unwrap()
    }

    /// The series (name and labels) of every sample line.
    fn series(text: &str) -> Vec<&str> {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| match l.rfind('}') {
                Some(i) => &l[..=i],
                None => l.split(' ').next().unwrap(),
            })
            .collect()
    }

    #[test]
    fn label_values_escape_backslash_quote_and_newline() {
        assert_eq!(escape_label_value(b"plain-label_1"), "plain-label_1");
        assert_eq!(escape_label_value(br#"say "hi""#), r#"say \"hi\""#);
        assert_eq!(escape_label_value(br"C:\dir\"), r"C:\\dir\\");
        assert_eq!(escape_label_value(b"two\nlines\n"), r"two\nlines\n");
        // Backslash-n in the input is two characters, escaped as three, not as a newline.
        assert_eq!(escape_label_value(br"\n"), r"\\n");
        // Other characters, control characters included, have no escape in the format.
        assert_eq!(escape_label_value("tab\there\r é ✓".as_bytes()), "tab\there\r é ✓");
        assert_eq!(escape_label_value(b""), "");
    }

    #[test]
    fn label_values_replace_bytes_that_are_not_utf8() {
        assert_eq!(escape_label_value(b"\xff"), "\u{fffd}");
        assert_eq!(escape_label_value(b"ok\xfe\xffok"), "ok\u{fffd}\u{fffd}ok");
        // A character cut off at the end (as a 31-byte label limit could cut one).
        assert_eq!(escape_label_value(b"caf\xc3"), "caf\u{fffd}");
        assert_eq!(escape_label_value(b"\"\xc0\\\n"), "\\\"\u{fffd}\\\\\\n");
    }

    #[test]
    fn help_text_escapes_backslash_and_newline_only() {
        assert_eq!(escape_help("a\\b\nc \"q\""), "a\\\\b\\nc \"q\"");
    }

    #[test]
    fn values_read_back_as_prometheus_numbers() {
        let show = |v| {
            let mut s = String::new();
            push_value(&mut s, v);
            s
        };
        assert_eq!(show(Value::Int(0)), "0");
        assert_eq!(show(Value::Int(u64::MAX)), "18446744073709551615");
        assert_eq!(show(Value::Float(0.5)), "0.5");
        assert_eq!(show(Value::Float(1e-7)), "0.0000001");
        assert_eq!(show(Value::Float(f64::NAN)), "NaN");
        assert_eq!(show(Value::Float(f64::INFINITY)), "+Inf");
        assert_eq!(show(Value::Float(f64::NEG_INFINITY)), "-Inf");
        assert_eq!(show(Value::Nanos(0)), "0");
        assert_eq!(show(Value::Nanos(1)), "0.000000001");
        assert_eq!(show(Value::Nanos(1_500_000_000)), "1.5");
        assert_eq!(show(Value::Nanos(1_795_436_175_538_369_416)), "1795436175.538369416");
        assert_eq!(show(Value::Nanos(u64::MAX)), "18446744073.709551615");
    }

    #[test]
    fn every_family_has_help_and_type_and_counters_end_in_total() {
        let text = render(&demo());
        let mut last_type: Option<(&str, &str)> = None;
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert!(name.starts_with(PREFIX), "{name}");
                assert_eq!(name.ends_with("_total"), kind == "counter", "{line}");
                last_type = Some((name, kind));
            } else if let Some(rest) = line.strip_prefix("# HELP ") {
                assert!(rest.split_once(' ').is_some_and(|(_, help)| !help.is_empty()), "{line}");
            } else {
                let (name, _) = last_type.unwrap();
                assert!(line.starts_with(name) && line[name.len()..].starts_with(['{', ' ']), "{line} outside {name}");
            }
        }
        let unique: HashSet<_> = series(&text).into_iter().collect();
        assert_eq!(unique.len(), series(&text).len(), "duplicate series");
        assert!(!text.contains("class=\"0\"") && text.contains("class=\"8\"") && text.contains("class=\"32768\""));
    }

    #[test]
    fn rendering_is_deterministic() {
        assert_eq!(render(&demo()), render(&demo()));
    }

    #[test]
    fn cardinality_is_bounded_and_repeats_are_skipped() {
        let mut s = demo();
        let extra_classes = s.classes.to_vec();
        s.classes.extend(extra_classes); // 88 entries, every size twice
        let mut big = s.classes[43].clone();
        big.object_size = 65536;
        s.classes.push(big); // a 45th distinct size
        let mut stray = s.epochs[3].clone();
        stray.epoch_id = 16;
        s.epochs.push(stray);
        s.epochs.push(s.epochs[5].clone());
        s.label_registry = (0..40).map(|id| label_entry(id % 35, &format!("l{id}"))).collect();
        let text = render(&s);
        let unique: HashSet<_> = series(&text).into_iter().collect();
        assert_eq!(unique.len(), series(&text).len(), "duplicate series");
        let count = |name: &str| text.lines().filter(|l| l.starts_with(&format!("{PREFIX}{name}{{"))).count();
        assert_eq!(count("class_allocations_total"), 44);
        assert_eq!(count("class_slabs"), 44 * 3);
        assert_eq!(count("epoch_age_seconds"), 16);
        assert_eq!(count("epoch_state"), 16 * 3);
        assert_eq!(count("label_registry_info"), 32);
        assert!(!text.contains("class=\"65536\"") && !text.contains("epoch=\"16\""));
    }

    #[test]
    fn epoch_state_is_one_hot_and_label_only_on_its_info_family() {
        let text = render(&demo());
        // The example: the current epoch (era 6) in slot 5, a closed one in slot 0, slot 9 unused.
        assert!(text.contains("temporal_slab_epoch_state{epoch=\"5\",state=\"ACTIVE\"} 1\n"));
        assert!(text.contains("temporal_slab_epoch_state{epoch=\"5\",state=\"CLOSING\"} 0\n"));
        assert!(text.contains("temporal_slab_epoch_state{epoch=\"0\",state=\"CLOSING\"} 1\n"));
        assert!(text.contains("temporal_slab_epoch_state{epoch=\"9\",state=\"UNUSED\"} 1\n"));
        assert!(text.contains("temporal_slab_epoch_era{epoch=\"5\"} 6\n"));
        // An epoch that domains of several labels joined.
        assert!(text.contains("temporal_slab_epoch_label_info{epoch=\"2\",label=\"(shared)\"} 1\n"));
        for line in text.lines().filter(|l| l.contains("label=\"")) {
            assert!(
                line.starts_with("temporal_slab_epoch_label_info{")
                    || line.starts_with("temporal_slab_label_registry_info{")
            );
        }
        // No yield before any scan: no sample, and no empty family either.
        let mut unscanned = demo();
        for e in &mut unscanned.epochs {
            e.reclamation_yield = None;
        }
        assert!(!render(&unscanned).contains("reclamation_yield"));
    }

    /// Labels as the allocator makes them from raw bytes (lossy UTF-8), with every character
    /// that needs escaping, render to text that promtool accepts.
    #[test]
    fn labels_from_arbitrary_bytes_render_to_text_promtool_accepts() {
        let nasty = String::from_utf8_lossy(b"q\"b\\s\nn\xff\xc3").into_owned();
        let mut s = demo();
        s.epochs[2].label = Some(nasty.clone());
        s.label_registry.insert(0, label_entry(1, &nasty));
        let text = render(&s);
        let escaped = "q\\\"b\\\\s\\nn\u{fffd}\u{fffd}";
        assert!(
            text.contains(&format!("temporal_slab_epoch_label_info{{epoch=\"2\",label=\"{escaped}\"}} 1\n")),
            "{text}"
        );
        assert!(text.contains(&format!("temporal_slab_label_registry_info{{label_id=\"1\",label=\"{escaped}\"}} 1\n")));

        let found = Command::new("promtool").arg("--version").output().is_ok_and(|o| o.status.success());
        if !found {
            assert!(std::env::var("TSLAB_REQUIRE_TOOLS").as_deref() != Ok("1"), "promtool is required but missing");
            eprintln!("skipped the promtool check: promtool not installed (apt-get install prometheus)");
            return;
        }
        let mut child = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let writer = std::thread::spawn(move || stdin.write_all(text.as_bytes()));
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap().unwrap();
        let findings = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success() && findings.is_empty(), "promtool: {findings}");
    }
}
