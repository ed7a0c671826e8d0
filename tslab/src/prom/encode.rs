//! Writing the 0.0.4 text format: family headers, samples, label escaping, number formatting.

use std::fmt::Write as _;

use temporal_slab::stats::{ClassStats, EpochStats};

use super::PREFIX;

/// The metric type written on the `# TYPE` line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum Kind {
    Counter,
    Gauge,
}

/// A sample value, formatted by [`push_value`].
#[derive(Clone, Copy, Debug)]
pub(super) enum Value {
    Int(u64),
    Float(f64),
    /// Nanoseconds, written as an exact decimal number of seconds.
    Nanos(u64),
}

pub(super) use Value::{Float, Int, Nanos};

/// Label names and raw (unescaped) values of one sample, in output order.
pub(super) type Labels = Vec<(&'static str, String)>;

/// The text being built, one family at a time.
pub(super) struct Exposition {
    pub(super) text: String,
}

impl Exposition {
    /// Writes one family: HELP, TYPE, then every sample. Nothing when `samples` is empty.
    pub(super) fn family(&mut self, name: &str, kind: Kind, help: &str, samples: &[(Labels, Value)]) {
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
}

pub(super) fn class_labels(c: &ClassStats) -> Labels {
    vec![("class", c.object_size.to_string())]
}

pub(super) fn epoch_labels(e: &EpochStats) -> Labels {
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
pub(super) fn push_value(out: &mut String, value: Value) {
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
pub(super) fn seconds_from_nanos(ns: u64) -> String {
    let (secs, frac) = (ns / 1_000_000_000, ns % 1_000_000_000);
    if frac == 0 {
        return secs.to_string();
    }
    let digits = format!("{frac:09}");
    format!("{secs}.{}", digits.trim_end_matches('0'))
}

/// The first `max` entries of `items` whose `key` was not seen before.
pub(super) fn unique_by<T, K: PartialEq>(items: &[T], max: usize, key: impl Fn(&T) -> K) -> Vec<&T> {
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
pub(super) fn fragmentation(live: u64, resident: u64) -> f64 {
    if resident == 0 {
        0.0
    } else {
        (1.0 - live as f64 / resident as f64).clamp(0.0, 1.0)
    }
}
