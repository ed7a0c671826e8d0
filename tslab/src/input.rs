//! Where a snapshot comes from: a live process (`--pid`), a file, or standard input (`-`).
//!
//! Every document read from a file or stdin is checked before use, in the order that gives the
//! most useful message: empty, not JSON (or cut off), not a snapshot at all, a `schema_version`
//! this tool does not know, then the full JSON Schema (`schemas/snapshot.schema.json`, compiled
//! into the binary), then the invariants every real snapshot satisfies (`plausible.rs` in the
//! allocator, the same check as for `--pid`) - so a `tslab` command never works on a document it
//! misreads.

use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;
use temporal_slab::stats::SCHEMA_VERSION;
use temporal_slab::Snapshot;

/// The snapshot schema, as shipped in `schemas/`.
const SCHEMA_TEXT: &str = include_str!("../../schemas/snapshot.schema.json");
const SCHEMA_URL: &str = "https://temporal-slab.invalid/schemas/snapshot.schema.json";

/// Default of `--max-input-mib`.
pub const DEFAULT_MAX_INPUT_MIB: u64 = 64;

static MAX_INPUT_MIB: AtomicU64 = AtomicU64::new(DEFAULT_MAX_INPUT_MIB);

/// Sets the cap on documents read from files and standard input (`--max-input-mib`).
pub fn set_max_input_mib(mib: u64) {
    MAX_INPUT_MIB.store(mib, Ordering::Relaxed);
}

/// Reads all of `r` (named `origin` in errors), refusing more than the cap.
fn read_capped(r: impl Read, origin: &str) -> Result<Vec<u8>> {
    let mib = MAX_INPUT_MIB.load(Ordering::Relaxed);
    let cap = mib.saturating_mul(1 << 20);
    let mut bytes = Vec::new();
    r.take(cap.saturating_add(1)).read_to_end(&mut bytes).with_context(|| format!("reading {origin}"))?;
    if bytes.len() as u64 > cap {
        bail!(
            "{origin}: more than {mib} MiB of input, far more than any snapshot: check that this is a \
             snapshot file (or raise the cap with --max-input-mib)"
        );
    }
    Ok(bytes)
}

/// Input options shared by the subcommands that read one snapshot.
#[derive(clap::Args, Debug, Clone)]
pub struct InputArgs {
    /// Attach to this process (it must use temporal-slab; same user or root).
    #[arg(long, value_name = "PID", conflicts_with = "input")]
    pub pid: Option<u32>,
    /// A snapshot file (JSON from `stats_dump --no-text`), or `-` for standard input.
    #[arg(value_name = "INPUT")]
    pub input: Option<String>,
}

impl InputArgs {
    /// Reads the snapshot these options name.
    pub fn load(&self) -> Result<Snapshot> {
        match (&self.pid, &self.input) {
            (Some(pid), _) => from_pid(*pid),
            (None, Some(path)) => from_path(path),
            (None, None) => {
                bail!("no input: give --pid PID to attach to a process, a snapshot file, or - to read standard input")
            }
        }
    }
}

/// Attaches to `pid` and reads its published snapshot.
pub fn from_pid(pid: u32) -> Result<Snapshot> {
    Ok(temporal_slab::attach::snapshot_of(pid)?)
}

/// Why a target's snapshot stopped changing, in one line with the fix.
pub fn not_publishing(pid: u32, for_how_long: std::time::Duration) -> String {
    // Field 3 of /proc/PID/stat, after the parenthesised command name: T = stopped, t = traced.
    let state = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").and_then(|(_, rest)| rest.chars().next()));
    let secs = for_how_long.as_secs_f64();
    match state {
        Some('T' | 't') => format!(
            "pid {pid} is stopped (SIGSTOP or a debugger) and has published nothing new for {secs:.1} s: \
             resume it (kill -CONT {pid}) and watch again"
        ),
        _ => format!(
            "pid {pid} has published no new snapshot for {secs:.1} s (it publishes every 100 ms): it is frozen \
             or its reclaimer thread is blocked; check it with ps -o stat= -p {pid}"
        ),
    }
}

/// Reads a snapshot from the file at `path`, or from standard input when `path` is `-`.
pub fn from_path(path: &str) -> Result<Snapshot> {
    if path == "-" {
        let bytes = read_capped(std::io::stdin().lock(), "standard input")?;
        parse(&bytes, "standard input")
    } else {
        let file = std::fs::File::open(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                anyhow!("{path}: no such file: give the path of a snapshot file (or - for standard input)")
            }
            std::io::ErrorKind::PermissionDenied => {
                anyhow!("{path}: permission denied: make the file readable for this user")
            }
            _ => anyhow!("{path}: cannot read: {e}"),
        })?;
        if file.metadata().is_ok_and(|m| m.is_dir()) {
            bail!("{path}: is a directory: give the path of a snapshot file (or - for standard input)");
        }
        let bytes = read_capped(file, path)?;
        parse(&bytes, path)
    }
}

/// Checks and decodes one snapshot document; `origin` names it in errors.
pub fn parse(bytes: &[u8], origin: &str) -> Result<Snapshot> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        bail!("{origin}: empty input: expected a snapshot JSON document (from `stats_dump --no-text` or `tslab stats --json`)");
    }
    let doc: Value = serde_json::from_slice(bytes).map_err(|e| {
        if e.is_eof() {
            anyhow!(
                "{origin}: truncated JSON (input ends at line {} column {}): the snapshot was cut off; take it again",
                e.line(),
                e.column()
            )
        } else {
            anyhow!("{origin}: not JSON ({e}): expected a snapshot from `stats_dump --no-text`")
        }
    })?;
    let Some(version) = doc.get("schema_version") else {
        bail!(
            "{origin}: JSON but not a temporal-slab snapshot (no schema_version key): \
             produce one with `stats_dump --pid PID --no-text` or `tslab stats --json`"
        );
    };
    match version.as_u64() {
        Some(v) if v == u64::from(SCHEMA_VERSION) => {}
        Some(v) if v > u64::from(SCHEMA_VERSION) => bail!(
            "{origin}: snapshot schema_version {v} is newer than this tslab understands ({SCHEMA_VERSION}): \
             upgrade tslab to read it"
        ),
        _ => bail!("{origin}: unknown snapshot schema_version {version}: this tslab reads version {SCHEMA_VERSION}"),
    }
    validate(&doc).map_err(|e| anyhow!("{origin}: not a valid temporal-slab snapshot: {e}"))?;
    let snap: Snapshot =
        serde_json::from_value(doc).map_err(|e| anyhow!("{origin}: not a valid temporal-slab snapshot: {e}"))?;
    temporal_slab::plausible::check(&snap, None)
        .map_err(|e| anyhow!("{origin}: not a valid temporal-slab snapshot: {e} (forged or corrupted)"))?;
    Ok(snap)
}

/// Validates `doc` against the snapshot schema; the error is the first innermost failure, on
/// one line (`at /classes/3/live_bytes: ...`).
fn validate(doc: &Value) -> Result<(), String> {
    static COMPILED: OnceLock<Result<(boon::Schemas, boon::SchemaIndex), String>> = OnceLock::new();
    let compiled = COMPILED.get_or_init(|| {
        let schema: Value = serde_json::from_str(SCHEMA_TEXT).map_err(|e| format!("built-in schema: {e}"))?;
        let mut schemas = boon::Schemas::new();
        let mut compiler = boon::Compiler::new();
        compiler.add_resource(SCHEMA_URL, schema).map_err(|e| format!("built-in schema: {e}"))?;
        let index = compiler.compile(SCHEMA_URL, &mut schemas).map_err(|e| format!("built-in schema: {e}"))?;
        Ok((schemas, index))
    });
    let (schemas, index) = compiled.as_ref().map_err(Clone::clone)?;
    schemas.validate(doc, *index).map_err(|e| {
        let mut leaf = &e;
        while let Some(c) = leaf.causes.first() {
            leaf = c;
        }
        let at = leaf.instance_location.to_string();
        let at = if at.is_empty() { "/".to_string() } else { at };
        format!("at {at}: {}", leaf.kind).replace('\n', " ")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../schemas/examples/demo-in-process.json");

    #[test]
    fn the_example_snapshot_loads() {
        assert!(parse(EXAMPLE.as_bytes(), "example").is_ok());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]
        /// The snapshot loader on damaged documents (bytes of the example overwritten, cut, or
        /// random): an error or a snapshot, never a panic.
        #[test]
        fn damaged_documents_never_panic(
            edits in proptest::collection::vec((0usize..EXAMPLE.len(), proptest::prelude::any::<u8>()), 0..16),
            cut in 0usize..=EXAMPLE.len(),
            noise in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256),
        ) {
            let mut bytes = EXAMPLE.as_bytes().to_vec();
            for (i, b) in edits {
                bytes[i] = b;
            }
            let _ = parse(&bytes, "damaged");
            let _ = parse(&bytes[..cut], "cut");
            let _ = parse(&noise, "noise");
        }

        /// Numbers changed to extremes in a well-formed document: checked, never trusted.
        #[test]
        fn extreme_numbers_never_panic(picks in proptest::collection::vec((0usize..400, 0u8..4), 1..8)) {
            let mut doc: Value = serde_json::from_str(EXAMPLE).unwrap();
            let mut leaves = Vec::new();
            collect_numbers(&doc, String::new(), &mut leaves);
            for (i, kind) in picks {
                let path = &leaves[i % leaves.len()];
                if let Some(v) = doc.pointer_mut(path) {
                    *v = match kind {
                        0 => serde_json::json!(u64::MAX),
                        1 => serde_json::json!(-1),
                        2 => serde_json::json!(1e308),
                        _ => serde_json::json!(0),
                    };
                }
            }
            let _ = parse(&serde_json::to_vec(&doc).unwrap(), "extreme");
        }
    }

    fn collect_numbers(v: &Value, at: String, out: &mut Vec<String>) {
        match v {
            Value::Number(_) => out.push(at),
            Value::Array(a) => a.iter().enumerate().for_each(|(i, x)| collect_numbers(x, format!("{at}/{i}"), out)),
            Value::Object(o) => o.iter().for_each(|(k, x)| collect_numbers(x, format!("{at}/{k}"), out)),
            _ => {}
        }
    }
}
