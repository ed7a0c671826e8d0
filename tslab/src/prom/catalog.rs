//! The list of families: the `x-prometheus` annotations of the snapshot schema
//! (`schemas/snapshot.schema.json`, embedded at build time), one on every property and a list
//! of derived families at the root. It is the one place that names a family, its type, unit,
//! HELP text and the JSON key it comes from; `families.rs` renders it in its order and
//! `docs/METRICS.md`'s family tables are generated from it (`metrics_tables`, test-only).

#[cfg(test)]
use std::fmt::Write as _;
use std::sync::OnceLock;

use serde::Deserialize;

use super::encode::Kind;

pub(super) const SCHEMA_TEXT: &str = include_str!("../../../schemas/snapshot.schema.json");

/// The list, as read from the schema's annotations: section order, families in output order,
/// JSON keys left out with the reason.
#[derive(Debug)]
#[cfg_attr(not(test), allow(dead_code))]
pub(super) struct Catalog {
    /// Section headings of `docs/METRICS.md`, in order.
    pub sections: Vec<String>,
    /// Every family, in output order (by section, then schema order, derived ones last).
    pub families: Vec<FamilySpec>,
    /// Schema keys that no family exports, and why (neighbours with the same reason merged).
    pub not_exported: Vec<NotExported>,
    /// Keys only derived families read, with those families' names.
    pub read_by: Vec<(String, Vec<String>)>,
}

/// One family.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(not(test), allow(dead_code))]
pub(super) struct FamilySpec {
    /// Section of `docs/METRICS.md` the family is listed in.
    pub section: String,
    /// Full metric name, `temporal_slab_...`.
    pub metric: String,
    /// `counter` or `gauge`.
    #[serde(rename = "type")]
    pub kind: Kind,
    /// Unit, in words (for the docs).
    pub unit: String,
    /// Labels of a derived family (a `from` family's labels follow from its path).
    #[serde(default)]
    pub labels: Vec<String>,
    /// Key path the value comes from (see the annotation's `$comment`).
    #[serde(default)]
    pub from: Option<String>,
    /// How to scale the value of `from`.
    #[serde(default)]
    pub scale: Option<Scale>,
    /// Keys a family computed by the renderer reads.
    pub derived: Option<Vec<String>>,
    /// How a derived family is computed, in words (for the docs).
    pub source: Option<String>,
    /// The HELP text.
    pub help: String,
}

/// A conversion of a `from` value.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(super) enum Scale {
    /// Nanoseconds, exported as seconds.
    Nanoseconds,
}

/// Keys that are not exported.
#[derive(Debug)]
#[cfg_attr(not(test), allow(dead_code))]
pub(super) struct NotExported {
    /// Key paths.
    pub keys: Vec<String>,
    /// Why not.
    pub why: String,
}

/// The root annotation.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Root {
    #[serde(rename = "$comment")]
    _comment: String,
    sections: Vec<String>,
    derived: Vec<FamilySpec>,
}

/// A property's annotation: exactly one of a family, `read_by` or `not_exported`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Annotation {
    family: Option<String>,
    #[serde(rename = "type")]
    kind: Option<Kind>,
    unit: Option<String>,
    section: Option<String>,
    scale: Option<Scale>,
    #[serde(default)]
    first_entry_only: bool,
    help: Option<String>,
    #[serde(default)]
    read_by: Vec<String>,
    not_exported: Option<String>,
}

/// The objects of the snapshot, with the path prefix of their keys, in schema order.
const OBJECTS: [(&str, &str); 5] = [
    ("", "#"),
    ("global.", "global"),
    ("classes[].", "class"),
    ("epochs[].", "epoch"),
    ("label_registry[].", "label_entry"),
];

/// Properties of the document that are objects or arrays of objects, not figures.
const CONTAINERS: [&str; 4] = ["classes", "epochs", "global", "label_registry"];

/// Reads the list from a schema's annotations (see the root annotation's `$comment`).
pub(super) fn build(schema: &serde_json::Value) -> Result<Catalog, String> {
    let root: Root =
        serde_json::from_value(schema["x-prometheus"].clone()).map_err(|e| format!("x-prometheus at the root: {e}"))?;
    let mut families = Vec::new();
    let mut not_exported: Vec<NotExported> = Vec::new();
    let mut read_by = Vec::new();
    for (prefix, def) in OBJECTS {
        let object = if def == "#" { schema } else { &schema["$defs"][def] };
        let props = object["properties"].as_object().ok_or_else(|| format!("no properties in {def}"))?;
        for (key, prop) in props.iter().filter(|(k, _)| !(def == "#" && CONTAINERS.contains(&k.as_str()))) {
            let path = format!("{prefix}{key}");
            let raw = prop.get("x-prometheus").ok_or_else(|| format!("{path}: no x-prometheus annotation"))?;
            let a: Annotation =
                serde_json::from_value(raw.clone()).map_err(|e| format!("{path}: x-prometheus: {e}"))?;
            match (a.family, a.read_by.is_empty(), a.not_exported) {
                (Some(metric), true, None) => {
                    let need =
                        |v: Option<String>, what: &str| v.ok_or_else(|| format!("{path}: family without {what}"));
                    let (section, unit, help) =
                        (need(a.section, "section")?, need(a.unit, "unit")?, need(a.help, "help")?);
                    let kind = a.kind.ok_or_else(|| format!("{path}: family without type"))?;
                    let from = if a.first_entry_only { path.replacen("classes[].", "classes[0].", 1) } else { path };
                    families.push(FamilySpec {
                        section,
                        kind,
                        unit,
                        help,
                        labels: Vec::new(),
                        scale: a.scale,
                        derived: None,
                        source: None,
                        from: Some(from),
                        metric,
                    });
                }
                (None, false, None) => read_by.push((path, a.read_by)),
                (None, true, Some(why)) => match not_exported.last_mut() {
                    Some(last) if last.why == why => last.keys.push(path),
                    _ => not_exported.push(NotExported { keys: vec![path], why }),
                },
                _ => return Err(format!("{path}: x-prometheus needs exactly one of family, read_by, not_exported")),
            }
        }
    }
    for f in &root.derived {
        if f.derived.is_none() || f.from.is_some() {
            return Err(format!("{}: a derived family lists `derived` keys and has no `from`", f.metric));
        }
    }
    families.extend(root.derived);
    let mut order = Vec::with_capacity(families.len());
    for f in families {
        let i = root.sections.iter().position(|s| *s == f.section);
        order.push((i.ok_or_else(|| format!("{}: unknown section {:?}", f.metric, f.section))?, f));
    }
    // Stable: within a section, schema order, then the derived families in their listed order.
    order.sort_by_key(|(i, _)| *i);
    Ok(Catalog {
        sections: root.sections,
        families: order.into_iter().map(|(_, f)| f).collect(),
        not_exported,
        read_by,
    })
}

/// Where a `from` path points.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum KeyPath<'a> {
    /// A key of the document itself.
    Top(&'a str),
    /// A key of `global`.
    Global(&'a str),
    /// A key of the first size class (a constant shared by all).
    FirstClass(&'a str),
    /// One series per size class, labelled `class`.
    PerClass(&'a str),
    /// One series per ring slot, labelled `epoch`.
    PerEpoch(&'a str),
    /// One series per registry label, labelled `label_id` and `label`.
    PerLabel(&'a str),
}

impl<'a> KeyPath<'a> {
    /// Parses `x`, `global.x`, `classes[0].x`, `classes[].x`, `epochs[].x`, `label_registry[].x`.
    pub(super) fn parse(path: &'a str) -> Option<KeyPath<'a>> {
        let key =
            |k: &str| !k.is_empty() && k.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        let parsed = if let Some(k) = path.strip_prefix("global.") {
            KeyPath::Global(k)
        } else if let Some(k) = path.strip_prefix("classes[0].") {
            KeyPath::FirstClass(k)
        } else if let Some(k) = path.strip_prefix("classes[].") {
            KeyPath::PerClass(k)
        } else if let Some(k) = path.strip_prefix("epochs[].") {
            KeyPath::PerEpoch(k)
        } else if let Some(k) = path.strip_prefix("label_registry[].") {
            KeyPath::PerLabel(k)
        } else {
            KeyPath::Top(path)
        };
        key(parsed.key()).then_some(parsed)
    }

    /// The key, without its object.
    pub(super) fn key(self) -> &'a str {
        match self {
            KeyPath::Top(k)
            | KeyPath::Global(k)
            | KeyPath::FirstClass(k)
            | KeyPath::PerClass(k)
            | KeyPath::PerEpoch(k)
            | KeyPath::PerLabel(k) => k,
        }
    }

    /// Labels every series of a family from this path carries.
    #[cfg(test)]
    pub(super) fn labels(self) -> &'static [&'static str] {
        match self {
            KeyPath::PerClass(_) => &["class"],
            KeyPath::PerEpoch(_) => &["epoch"],
            KeyPath::PerLabel(_) => &["label_id", "label"],
            _ => &[],
        }
    }
}

/// The catalog of the embedded schema, read once. The schema is part of this binary and the
/// tests read the same text, so a malformed annotation cannot ship: it fails them first.
pub(super) fn catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| {
        let schema: serde_json::Value =
            serde_json::from_str(SCHEMA_TEXT).expect("the embedded snapshot schema is JSON (checked by tests)");
        build(&schema).unwrap_or_else(|e| panic!("the embedded schema's x-prometheus annotations: {e}"))
    })
}

#[cfg(test)]
impl FamilySpec {
    /// All labels of the family's series, in output order.
    pub(super) fn all_labels(&self) -> Vec<&str> {
        match self.from.as_deref().and_then(KeyPath::parse) {
            Some(path) => path.labels().to_vec(),
            None => self.labels.iter().map(String::as_str).collect(),
        }
    }

    /// The "source JSON key" cell of the docs.
    fn source_cell(&self) -> String {
        match (&self.from, &self.source) {
            (Some(from), _) => match self.scale {
                Some(Scale::Nanoseconds) => format!("`{from}` / 1e9"),
                None => format!("`{from}`"),
            },
            (None, Some(source)) => format!("derived: {source}"),
            (None, None) => String::new(),
        }
    }
}

/// The `### <section>` family tables and the table of keys not exported, as they stand in
/// `docs/METRICS.md` between the generated-region markers.
#[cfg(test)]
pub(super) fn metrics_tables(c: &Catalog) -> String {
    let mut out = String::new();
    for section in &c.sections {
        let _ = write!(
            out,
            "### {section}\n\n| metric | type | labels | unit | source JSON key | meaning |\n|---|---|---|---|---|---|\n"
        );
        for f in c.families.iter().filter(|f| &f.section == section) {
            let labels: Vec<String> = f.all_labels().iter().map(|l| format!("`{l}`")).collect();
            let kind = match f.kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
            };
            let _ = writeln!(
                out,
                "| `{}` | {kind} | {} | {} | {} | {} |",
                f.metric,
                labels.join(", "),
                f.unit,
                f.source_cell().replace('|', "\\|"),
                f.help.replace('|', "\\|")
            );
        }
        out.push('\n');
    }
    out.push_str("### JSON keys not exported\n\n| JSON key | why |\n|---|---|\n");
    for n in &c.not_exported {
        let keys: Vec<String> = n.keys.iter().map(|k| format!("`{k}`")).collect();
        let _ = writeln!(out, "| {} | {} |", keys.join(", "), n.why.replace('|', "\\|"));
    }
    out
}
