//! The heap profile in pprof's format (`profile.proto` of github.com/google/pprof, gzipped), as
//! `go tool pprof`, Pyroscope, Parca and Grafana read it.
//!
//! Sample types: `alloc_objects`/`alloc_space` (estimated, since the start) and
//! `inuse_objects`/`inuse_space` (estimated, live now; the default). Live samples are grouped by
//! stack, label and epoch, and carry `label` (string) and `epoch` (era number) labels; the
//! allocation totals are per stack. Stacks are trimmed as [`crate::symbolize::resolve_stack`]
//! says, so the innermost frame is the program's own function that allocated.
//!
//! The messages are declared here with prost's derive (no protoc, no build script): only the
//! fields this writer fills.

use std::collections::HashMap;
use std::io::Write;

use anyhow::{Context, Result};
use prost::Message;
use temporal_slab::profile_attach::Profile;

use crate::symbolize::{resolve_stack, Frame, Symbolizer};

/// `perftools.profiles.Profile`.
#[derive(Clone, PartialEq, Message)]
pub struct PProfile {
    #[prost(message, repeated, tag = "1")]
    pub sample_type: Vec<ValueType>,
    #[prost(message, repeated, tag = "2")]
    pub sample: Vec<Sample>,
    #[prost(message, repeated, tag = "3")]
    pub mapping: Vec<PMapping>,
    #[prost(message, repeated, tag = "4")]
    pub location: Vec<Location>,
    #[prost(message, repeated, tag = "5")]
    pub function: Vec<Function>,
    #[prost(string, repeated, tag = "6")]
    pub string_table: Vec<String>,
    #[prost(int64, tag = "9")]
    pub time_nanos: i64,
    #[prost(message, optional, tag = "11")]
    pub period_type: Option<ValueType>,
    #[prost(int64, tag = "12")]
    pub period: i64,
    #[prost(int64, repeated, tag = "13")]
    pub comment: Vec<i64>,
    #[prost(int64, tag = "14")]
    pub default_sample_type: i64,
}

/// `ValueType`: indices into the string table.
#[derive(Clone, PartialEq, Message)]
pub struct ValueType {
    #[prost(int64, tag = "1")]
    pub r#type: i64,
    #[prost(int64, tag = "2")]
    pub unit: i64,
}

/// `Sample`.
#[derive(Clone, PartialEq, Message)]
pub struct Sample {
    #[prost(uint64, repeated, tag = "1")]
    pub location_id: Vec<u64>,
    #[prost(int64, repeated, tag = "2")]
    pub value: Vec<i64>,
    #[prost(message, repeated, tag = "3")]
    pub label: Vec<Label>,
}

/// `Label`.
#[derive(Clone, PartialEq, Message)]
pub struct Label {
    #[prost(int64, tag = "1")]
    pub key: i64,
    #[prost(int64, tag = "2")]
    pub str: i64,
    #[prost(int64, tag = "3")]
    pub num: i64,
}

/// `Mapping`.
#[derive(Clone, PartialEq, Message)]
pub struct PMapping {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(uint64, tag = "2")]
    pub memory_start: u64,
    #[prost(uint64, tag = "3")]
    pub memory_limit: u64,
    #[prost(uint64, tag = "4")]
    pub file_offset: u64,
    #[prost(int64, tag = "5")]
    pub filename: i64,
    #[prost(bool, tag = "7")]
    pub has_functions: bool,
    #[prost(bool, tag = "8")]
    pub has_filenames: bool,
    #[prost(bool, tag = "9")]
    pub has_line_numbers: bool,
    #[prost(bool, tag = "10")]
    pub has_inline_frames: bool,
}

/// `Location`.
#[derive(Clone, PartialEq, Message)]
pub struct Location {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(uint64, tag = "2")]
    pub mapping_id: u64,
    #[prost(uint64, tag = "3")]
    pub address: u64,
    #[prost(message, repeated, tag = "4")]
    pub line: Vec<Line>,
}

/// `Line`.
#[derive(Clone, PartialEq, Message)]
pub struct Line {
    #[prost(uint64, tag = "1")]
    pub function_id: u64,
    #[prost(int64, tag = "2")]
    pub line: i64,
}

/// `Function`.
#[derive(Clone, PartialEq, Message)]
pub struct Function {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(int64, tag = "2")]
    pub name: i64,
    #[prost(int64, tag = "3")]
    pub system_name: i64,
    #[prost(int64, tag = "4")]
    pub filename: i64,
}

#[derive(Default)]
struct Builder {
    out: PProfile,
    strings: HashMap<String, i64>,
    functions: HashMap<(String, Option<String>), u64>,
    locations: HashMap<(u64, Vec<Frame>), u64>,
    mappings: HashMap<usize, u64>,
}

impl Builder {
    fn string(&mut self, s: &str) -> i64 {
        if let Some(&i) = self.strings.get(s) {
            return i;
        }
        let i = self.out.string_table.len() as i64;
        self.out.string_table.push(s.to_string());
        self.strings.insert(s.to_string(), i);
        i
    }

    fn value_type(&mut self, t: &str, unit: &str) -> ValueType {
        ValueType { r#type: self.string(t), unit: self.string(unit) }
    }

    fn function(&mut self, f: &Frame) -> u64 {
        let key = (f.function.clone(), f.file.clone());
        if let Some(&id) = self.functions.get(&key) {
            return id;
        }
        let id = self.out.function.len() as u64 + 1;
        let name = self.string(&f.function);
        let filename = self.string(f.file.as_deref().unwrap_or(""));
        self.out.function.push(Function { id, name, system_name: name, filename });
        self.functions.insert(key, id);
        id
    }

    fn mapping(&mut self, sym: &Symbolizer, pc: u64) -> u64 {
        let Some(i) = sym.mapping_of(pc) else { return 0 };
        if let Some(&id) = self.mappings.get(&i) {
            return id;
        }
        let m = &sym.mappings()[i];
        let id = self.out.mapping.len() as u64 + 1;
        let filename = self.string(&m.path);
        self.out.mapping.push(PMapping {
            id,
            memory_start: m.start,
            memory_limit: m.end,
            file_offset: m.offset,
            filename,
            has_functions: true,
            has_filenames: true,
            has_line_numbers: true,
            has_inline_frames: true,
        });
        self.mappings.insert(i, id);
        id
    }

    fn location(&mut self, sym: &Symbolizer, pc: u64, frames: &[Frame]) -> u64 {
        let key = (pc, frames.to_vec());
        if let Some(&id) = self.locations.get(&key) {
            return id;
        }
        let id = self.out.location.len() as u64 + 1;
        let mapping_id = self.mapping(sym, pc);
        let line = frames
            .iter()
            .map(|f| Line { function_id: self.function(f), line: i64::from(f.line.unwrap_or(0)) })
            .collect();
        self.out.location.push(Location { id, mapping_id, address: pc, line });
        self.locations.insert(key, id);
        id
    }
}

/// Builds the pprof profile of `p`. `labels`: label id -> name (from the snapshot's label
/// registry).
pub fn build(p: &Profile, sym: &mut Symbolizer, labels: &HashMap<u8, String>, time_nanos: i64) -> PProfile {
    let mut b = Builder::default();
    b.string("");
    b.out.sample_type = vec![
        b.value_type("alloc_objects", "count"),
        b.value_type("alloc_space", "bytes"),
        b.value_type("inuse_objects", "count"),
        b.value_type("inuse_space", "bytes"),
    ];
    b.out.default_sample_type = b.string("inuse_space");
    b.out.period_type = Some(b.value_type("space", "bytes"));
    b.out.period = p.sample_bytes as i64;
    b.out.time_nanos = time_nanos;
    let comment = b.string(&format!(
        "temporal-slab heap profile of pid {}: {} samples, mean interval {} bytes, {} not kept as live",
        p.pid, p.samples, p.sample_bytes, p.dropped
    ));
    b.out.comment = vec![comment];
    let unknown = [(0u64, vec![Frame { function: "(site table full)".into(), file: None, line: None }])];
    let stacks: Vec<Vec<u64>> = p
        .sites
        .iter()
        .map(|s| {
            let resolved = resolve_stack(sym, &s.frames);
            resolved.iter().map(|(pc, frames)| b.location(sym, *pc, frames)).collect()
        })
        .collect();
    let no_site: Vec<u64> = unknown.iter().map(|(pc, f)| b.location(sym, *pc, f)).collect();
    for (s, locs) in p.sites.iter().zip(&stacks) {
        b.out.sample.push(Sample {
            location_id: locs.clone(),
            value: vec![s.alloc_objects.round() as i64, s.alloc_bytes.round() as i64, 0, 0],
            label: Vec::new(),
        });
    }
    // Live samples by (site, label, era): estimated (objects, bytes).
    type Key = (Option<usize>, Option<u8>, u64);
    let mut live: HashMap<Key, (f64, f64)> = HashMap::new();
    for l in &p.live {
        let e = live.entry((l.site, l.label_id, l.era)).or_default();
        e.0 += l.objects;
        e.1 += l.bytes;
    }
    let mut live: Vec<_> = live.into_iter().collect();
    live.sort_by(|a, b| b.1 .1.total_cmp(&a.1 .1));
    let (label_key, epoch_key) = (b.string("label"), b.string("epoch"));
    for ((site, label, era), (objects, bytes)) in live {
        let mut label_list = vec![Label { key: epoch_key, str: 0, num: era as i64 }];
        if let Some(id) = label {
            let name = labels.get(&id).cloned().unwrap_or_else(|| format!("label {id}"));
            label_list.push(Label { key: label_key, str: b.string(&name), num: 0 });
        }
        let locs = site.map_or_else(|| no_site.clone(), |i| stacks[i].clone());
        b.out.sample.push(Sample {
            location_id: locs,
            value: vec![0, 0, objects.round() as i64, bytes.round() as i64],
            label: label_list,
        });
    }
    b.out
}

/// Writes `profile` gzipped to `path`, atomically: a temporary file beside it, renamed over it
/// once complete, so a full disk never leaves half a profile.
pub fn write_gz(profile: &PProfile, path: &std::path::Path) -> Result<()> {
    let bytes = profile.encode_to_vec();
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "profile".into());
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| -> std::io::Result<()> {
        let file = std::fs::File::create(&tmp)?;
        let mut gz = flate2::write::GzEncoder::new(file, flate2::Compression::default());
        gz.write_all(&bytes)?;
        gz.finish()?.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| {
            format!("writing the profile to {} (check the directory and free space)", path.display())
        });
    }
    Ok(())
}

/// Reads a gzipped (or plain) pprof file.
pub fn read(path: &std::path::Path) -> Result<PProfile> {
    let raw = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let bytes = if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&raw[..]), &mut out)
            .with_context(|| format!("{}: not a valid gzip file", path.display()))?;
        out
    } else {
        raw
    };
    PProfile::decode(&bytes[..])
        .with_context(|| format!("{}: not a pprof profile (protobuf decode failed)", path.display()))
}
