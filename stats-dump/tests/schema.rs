//! Checks `schemas/snapshot.schema.json` (JSON Schema draft 2020-12) against the documents the
//! allocator really produces, and checks that the schema is not vacuous.
//!
//! - the schema compiles (boon also validates it against the 2020-12 metaschema);
//! - every object in it is closed and requires every key it lists, and every property says
//!   its unit and kind;
//! - every `schemas/examples/*.json` validates;
//! - a fresh in-process snapshot, taken after allocating inside a labelled epoch domain that
//!   is then closed, validates;
//! - broken copies of the example (wrong version, missing key, unknown key, bad enum value,
//!   negative counter, out-of-range figures) do not.
//!
//! The test binary runs on the temporal-slab allocator, so the snapshot describes real traffic.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

#[global_allocator]
static GLOBAL: temporal_slab::TemporalSlab = temporal_slab::TemporalSlab::new();

/// The schema's `$id`; the schema is registered under it, so no network access is needed.
const SCHEMA_ID: &str = "https://temporal-slab.invalid/schemas/snapshot.schema.json";

fn schemas_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("schemas")
}

fn read_json(path: &Path) -> Value {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not valid JSON: {e}", path.display()))
}

fn schema_json() -> Value {
    read_json(&schemas_dir().join("snapshot.schema.json"))
}

/// The compiled schema: the set of schemas and the index of the snapshot schema in it.
struct Compiled {
    schemas: boon::Schemas,
    index: boon::SchemaIndex,
}

impl Compiled {
    fn new() -> Compiled {
        let schema = schema_json();
        assert_eq!(
            schema["$schema"], "https://json-schema.org/draft/2020-12/schema",
            "the schema must declare draft 2020-12"
        );
        assert_eq!(schema["$id"], SCHEMA_ID, "the schema's $id changed; update SCHEMA_ID");
        let mut schemas = boon::Schemas::new();
        let mut compiler = boon::Compiler::new();
        compiler.add_resource(SCHEMA_ID, schema).unwrap_or_else(|e| panic!("adding the schema: {e:#}"));
        let index = compiler
            .compile(SCHEMA_ID, &mut schemas)
            .unwrap_or_else(|e| panic!("schemas/snapshot.schema.json does not compile: {e:#}"));
        Compiled { schemas, index }
    }

    /// Validates `doc`; on failure, the printed error and the instance locations (JSON
    /// pointers) of the innermost errors.
    fn check(&self, doc: &Value) -> Result<(), (String, Vec<String>)> {
        fn leaves(e: &boon::ValidationError<'_, '_>, out: &mut Vec<String>) {
            if e.causes.is_empty() {
                out.push(e.instance_location.to_string());
            }
            for c in &e.causes {
                leaves(c, out);
            }
        }
        self.schemas.validate(doc, self.index).map_err(|e| {
            let mut at = Vec::new();
            leaves(&e, &mut at);
            (format!("{e:#}"), at)
        })
    }

    fn assert_valid(&self, doc: &Value, what: &str) {
        if let Err((e, _)) = self.check(doc) {
            panic!("{what} does not validate against the snapshot schema:\n{e}");
        }
    }

    /// Asserts that `doc` fails, and that every error is reported at instance location `at`
    /// (a JSON pointer), so that the test fails for the reason it claims.
    fn assert_invalid(&self, doc: &Value, what: &str, at: &str) {
        match self.check(doc) {
            Ok(()) => panic!("{what}: validated, but the schema should reject it"),
            Err((e, locations)) => assert!(
                !locations.is_empty() && locations.iter().all(|l| l == at),
                "{what}: rejected, but at {locations:?} rather than {at:?}:\n{e}"
            ),
        }
    }
}

fn example() -> Value {
    read_json(&schemas_dir().join("examples").join("demo-in-process.json"))
}

fn example_files() -> Vec<PathBuf> {
    let dir = schemas_dir().join("examples");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()))
        .map(|entry| entry.expect("reading a directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
}

#[test]
fn schema_compiles() {
    let c = Compiled::new();
    assert!(c.schemas.contains(c.index));
}

/// The marker, in a property's description, of a key added within schema version 1: documents
/// written before it lack it (the allocator reads them with the value 0), so the schema does not
/// require it; a fresh snapshot must still have it (`fresh_snapshot_has_every_key`).
const OPTIONAL: &str = "Optional: added within schema version 1";

/// Every object schema is closed and requires exactly the keys it lists but those marked
/// [`OPTIONAL`]; every property has a description naming its unit and kind (counter, gauge,
/// constant).
#[test]
fn schema_objects_are_closed_and_documented() {
    fn walk(node: &Value, path: &str, objects: &mut usize) {
        match node {
            Value::Object(map) => {
                if let Some(Value::Object(props)) = map.get("properties") {
                    // `contains` sub-schemas only pin a few keys; every other object is closed.
                    if !path.ends_with("/contains") {
                        *objects += 1;
                        assert_eq!(
                            map.get("additionalProperties"),
                            Some(&Value::Bool(false)),
                            "{path}: additionalProperties must be false"
                        );
                        let mut required: Vec<&str> = map
                            .get("required")
                            .and_then(Value::as_array)
                            .unwrap_or_else(|| panic!("{path}: no `required`"))
                            .iter()
                            .map(|v| v.as_str().expect("required entries are strings"))
                            .collect();
                        let mut keys: Vec<&str> = props
                            .iter()
                            .filter(|(_, p)| !p["description"].as_str().unwrap_or("").contains(OPTIONAL))
                            .map(|(k, _)| k.as_str())
                            .collect();
                        required.sort_unstable();
                        keys.sort_unstable();
                        assert_eq!(required, keys, "{path}: `required` must list every property not marked optional");
                        for (key, prop) in props {
                            let desc = prop.get("description").and_then(Value::as_str).unwrap_or("");
                            assert!(
                                desc.contains("Unit: ") && desc.contains("Kind: "),
                                "{path}/properties/{key}: the description must state `Unit: ` and `Kind: `"
                            );
                        }
                    }
                }
                for (k, v) in map {
                    walk(v, &format!("{path}/{k}"), objects);
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    walk(v, &format!("{path}/{i}"), objects);
                }
            }
            _ => {}
        }
    }
    let mut objects = 0;
    walk(&schema_json(), "#", &mut objects);
    // The document, class, epoch, global and label entry.
    assert_eq!(objects, 5, "unexpected number of object schemas");
}

#[test]
fn examples_validate() {
    let c = Compiled::new();
    let files = example_files();
    assert!(!files.is_empty(), "no schemas/examples/*.json");
    for f in &files {
        c.assert_valid(&read_json(f), &f.display().to_string());
    }
}

#[test]
fn fresh_snapshot_validates() {
    let c = Compiled::new();

    // A domain on a fresh epoch of its own, so that the epoch carries its label (a domain opened
    // with `EpochDomain::new` joins the current epoch, shared with whatever else opens domains).
    let domain = temporal_slab::EpochDomain::on(temporal_slab::epoch::advance(), Some("schema-test"));
    let (kept, freed) = {
        let _in = domain.enter();
        let kept: Vec<Vec<u8>> = (0..2_000).map(|i| vec![i as u8; 1 + (i * 37) % 3_000]).collect();
        let freed: Vec<Box<[u64; 64]>> = (0..5_000).map(|i| Box::new([i as u64; 64])).collect();
        (kept, freed)
    };
    drop(freed);
    // Ending the domain and then the epoch closes it (CLOSING, with its label).
    domain.close();
    temporal_slab::epoch::advance();
    // Some allocations outside the domain too, and a large one.
    let outside: Vec<String> = (0..1_000).map(|i| format!("outside-{i}")).collect();
    let large = vec![7u8; 1 << 20];

    let value = serde_json::to_value(temporal_slab::snapshot()).expect("serializing the snapshot");
    c.assert_valid(&value, "a fresh in-process snapshot");
    // The same document after a text round trip (what stats_dump prints).
    let text = serde_json::to_string_pretty(&value).expect("printing the snapshot");
    let reparsed: Value = serde_json::from_str(&text).expect("re-reading the snapshot");
    c.assert_valid(&reparsed, "a fresh in-process snapshot, printed and re-read");

    // The snapshot shows what the schema must cover: the label, a CLOSING labelled epoch.
    let labels: Vec<&str> = value["label_registry"]
        .as_array()
        .expect("label_registry is an array")
        .iter()
        .filter_map(|e| e["label"].as_str())
        .collect();
    assert!(labels.contains(&"schema-test"), "label missing from the registry: {labels:?}");
    let epochs = value["epochs"].as_array().expect("epochs is an array");
    assert!(
        epochs.iter().any(|e| e["state"] == "CLOSING" && e["label"] == "schema-test"),
        "no CLOSING epoch labelled schema-test: {epochs:#?}"
    );
    assert!(epochs.iter().any(|e| e["state"] == "ACTIVE"), "no ACTIVE epoch");

    drop((kept, outside, large));
}

/// What the allocator writes now has every key the schema lists, the optional ones included (so a
/// key renamed or dropped in the allocator fails here even where old documents may lack it), and
/// nothing else (the objects are closed).
#[test]
fn fresh_snapshot_has_every_key() {
    let schema = schema_json();
    let domain = temporal_slab::EpochDomain::new(Some("schema-keys"));
    drop(domain);
    let doc = serde_json::to_value(temporal_slab::snapshot()).expect("serializing the snapshot");
    let props = |def: &Value| -> Vec<String> {
        let mut k: Vec<String> = def["properties"].as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    let keys = |v: &Value| -> Vec<String> {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    let defs = &schema["$defs"];
    assert_eq!(keys(&doc), props(&schema), "document keys");
    assert_eq!(keys(&doc["classes"][0]), props(&defs["class"]), "class keys");
    assert_eq!(keys(&doc["epochs"][0]), props(&defs["epoch"]), "epoch keys");
    assert_eq!(keys(&doc["global"]), props(&defs["global"]), "global keys");
    assert_eq!(keys(&doc["label_registry"][0]), props(&defs["label_entry"]), "label entry keys");
}

/// Applies `edit` to a copy of the example and asserts that the result is rejected at `at`.
fn rejects(c: &Compiled, what: &str, at: &str, edit: impl FnOnce(&mut Value)) {
    let mut doc = example();
    edit(&mut doc);
    c.assert_invalid(&doc, what, at);
}

#[test]
fn broken_documents_are_rejected() {
    let c = Compiled::new();
    // The unedited example is valid, so each failure below is caused by its edit.
    c.assert_valid(&example(), "the example");

    rejects(&c, "schema_version = 2", "/schema_version", |d| d["schema_version"] = json!(2));
    rejects(&c, "a class key removed", "/classes/0", |d| {
        d["classes"][0].as_object_mut().expect("class object").remove("cache_size");
    });
    rejects(&c, "a global key removed", "/global", |d| {
        d["global"].as_object_mut().expect("global object").remove("reclaimer_ticks");
    });
    rejects(&c, "an unknown top-level key", "", |d| {
        d.as_object_mut().expect("top-level object").insert("unexpected".into(), json!(0));
    });
    rejects(&c, "an unknown epoch key", "/epochs/3", |d| {
        d["epochs"][3].as_object_mut().expect("epoch object").insert("era".into(), json!(1));
    });
    rejects(&c, "state = OPEN", "/epochs/0/state", |d| d["epochs"][0]["state"] = json!("OPEN"));
    rejects(&c, "a negative counter", "/classes/0/allocations", |d| {
        d["classes"][0]["allocations"] = json!(-1);
    });
    rejects(&c, "a fractional counter", "/global/madvise_calls", |d| {
        d["global"]["madvise_calls"] = json!(1.5);
    });
    rejects(&c, "a counter as a string", "/total_madvise_bytes", |d| {
        d["total_madvise_bytes"] = json!("12");
    });
    rejects(&c, "40 classes", "/classes", |d| {
        d["classes"].as_array_mut().expect("classes array").truncate(40);
    });
    rejects(&c, "45 classes", "/classes", |d| {
        let classes = d["classes"].as_array_mut().expect("classes array");
        classes.resize(45, classes[0].clone());
    });
    rejects(&c, "17 epochs", "/epochs", |d| {
        let e = d["epochs"][15].clone();
        d["epochs"].as_array_mut().expect("epochs array").push(e);
    });
    rejects(&c, "current_epoch = 16", "/current_epoch", |d| d["current_epoch"] = json!(16));
    rejects(&c, "epoch_id = 16", "/epochs/15/epoch_id", |d| d["epochs"][15]["epoch_id"] = json!(16));
    rejects(&c, "epoch_count = 8", "/epoch_count", |d| d["epoch_count"] = json!(8));
    rejects(&c, "reclamation_yield = 1.5", "/epochs/0/reclamation_yield", |d| {
        d["epochs"][0]["reclamation_yield"] = json!(1.5);
    });
    rejects(&c, "fragmentation_ratio = -0.1", "/classes/1/fragmentation_ratio", |d| {
        d["classes"][1]["fragmentation_ratio"] = json!(-0.1);
    });
    rejects(&c, "recycle_rate_pct = 101", "/classes/2/recycle_rate_pct", |d| {
        d["classes"][2]["recycle_rate_pct"] = json!(101.0);
    });
    rejects(&c, "a label of 32 characters", "/epochs/0/label", |d| {
        d["epochs"][0]["label"] = json!("x".repeat(32));
    });
    rejects(&c, "a null label", "/epochs/0/label", |d| d["epochs"][0]["label"] = Value::Null);
    rejects(&c, "no overflow label", "/label_registry", |d| d["label_registry"] = json!([]));
}

/// Fields that may legitimately be at their extremes are accepted (guards against an
/// over-tight schema).
#[test]
fn edge_values_are_accepted() {
    let c = Compiled::new();
    let mut doc = example();
    doc["epochs"][0]["reclamation_yield"] = json!(1.0);
    doc["epochs"][1]["reclamation_yield"] = json!(0);
    doc["epochs"][2]["label"] = json!("x".repeat(31));
    // An epoch that domains of several labels joined.
    doc["epochs"][3]["label"] = json!("(shared)");
    doc["epochs"][3]["refcount"] = json!(10_000);
    doc["classes"][0]["fragmentation_ratio"] = json!(1.0);
    doc["classes"][0]["recycle_rate_pct"] = json!(100.0);
    doc["global"]["madvise_calls"] = json!(u64::MAX);
    doc["label_registry"] = json!([
        { "id": 1, "label": "a", "open_domains": 10_000, "domains_opened": u64::MAX, "allocated_bytes": u64::MAX },
        { "id": 0, "label": "(overflow)", "open_domains": 0, "domains_opened": 0, "allocated_bytes": 0 }
    ]);
    c.assert_valid(&doc, "the example with edge values");
}

/// Every example reads back into the in-process `Snapshot` type and writes out as the same JSON:
/// `tslab` reads snapshot files through this path, so nothing may be lost or renamed on the way.
#[test]
fn examples_round_trip_through_snapshot() {
    for path in example_files() {
        let original = read_json(&path);
        let snap: temporal_slab::Snapshot = serde_json::from_value(original.clone())
            .unwrap_or_else(|e| panic!("{} does not read as a Snapshot: {e}", path.display()));
        assert_eq!(snap.current().index() as u32, snap.current_epoch, "{}", path.display());
        let again = serde_json::to_value(&snap).unwrap();
        assert_eq!(again, original, "{} changed on a round trip", path.display());
    }
}
