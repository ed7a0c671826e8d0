//! `tslab flame`: a heap profile drawn as a flame graph (SVG), from a live process (`--pid`, the
//! same profile `stats_dump --profile` writes) or from a pprof file (`--profile`).
//!
//! The profile's samples become collapsed stacks, root first (`main;serve;cache_insert 3145728`),
//! identical stacks summed, and inferno draws them: a frame's width is the share of the chosen
//! sample type (live bytes by default) allocated under it. Samples whose value is zero or negative
//! for that type are left out (a flame graph has no negative widths). The picture is written
//! whole or not at all.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use inferno::flamegraph::{self, color::BasicPalette, Palette};
use tslab_tools::fmt::bytes;
use tslab_tools::pprof::{self, Location, PProfile};
use tslab_tools::symbolize::Symbolizer;

/// Options of `tslab flame`.
#[derive(clap::Args, Debug)]
#[command(
    group(clap::ArgGroup::new("source").required(true).args(["pid", "profile"])),
    after_help = "EXAMPLES:
    tslab flame --pid 1234                       writes flame.svg (live bytes)
    tslab flame --pid 1234 --sample-type alloc_space --out alloc.svg
    stats_dump --pid 1234 --no-json --profile heap.pb.gz
    tslab flame --profile heap.pb.gz --out heap.svg --title 'after the upload test'

READING IT:
    Each box is a function, as wide as the memory (or objects) sampled in calls through it; a
    function's callers are below it, the functions that allocated at the top. Open the SVG in a
    browser to click into a frame or search for a name.

NAMES:
    Function names come from the target's symbols and debug information (inlined functions from
    the debug information only): build the target with debug info (debug = 1 or more in its Cargo
    profile, -g in C) and do not strip it, or frames show as addresses (0x55d0c0a21000).

SAMPLING:
    The target samples one allocation per TSLAB_PROFILE_SAMPLE bytes allocated (default 2 MiB);
    a process that has allocated little shows few stacks, and TSLAB_PROFILE_SAMPLE=0 turns it off."
)]
pub struct FlameArgs {
    /// Attach to this process and read its heap profile (same user or root).
    #[arg(long, value_name = "PID")]
    pub pid: Option<u32>,
    /// A pprof heap profile (gzipped or plain), e.g. from `stats_dump --profile FILE`.
    #[arg(long, value_name = "FILE")]
    pub profile: Option<PathBuf>,
    /// Where to write the SVG.
    #[arg(long, value_name = "FILE.svg", default_value = "flame.svg")]
    pub out: PathBuf,
    /// What a frame's width measures: live bytes or objects now (inuse_*), or allocated since the
    /// start (alloc_*).
    #[arg(long, value_enum, value_name = "TYPE", default_value_t = SampleType::InuseSpace)]
    pub sample_type: SampleType,
    /// The title drawn above the graph (default: the sample type and the pid or file name).
    #[arg(long, value_name = "TEXT")]
    pub title: Option<String>,
}

/// A pprof sample type of the heap profile.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
#[value(rename_all = "snake_case")]
pub enum SampleType {
    /// Live bytes now.
    InuseSpace,
    /// Live objects now.
    InuseObjects,
    /// Bytes allocated since the start.
    AllocSpace,
    /// Objects allocated since the start.
    AllocObjects,
}

impl SampleType {
    /// The name in the profile's `sample_type` table.
    pub fn name(self) -> &'static str {
        match self {
            SampleType::InuseSpace => "inuse_space",
            SampleType::InuseObjects => "inuse_objects",
            SampleType::AllocSpace => "alloc_space",
            SampleType::AllocObjects => "alloc_objects",
        }
    }

    fn is_space(self) -> bool {
        matches!(self, SampleType::InuseSpace | SampleType::AllocSpace)
    }

    /// A total of this type for people: `3.0 MiB` or `1234 objects`.
    fn describe(self, total: i64) -> String {
        if self.is_space() {
            bytes(total.max(0) as u64)
        } else {
            format!("{total} objects")
        }
    }
}

/// Checks what the rest of this module indexes: the string table starts with "" (as pprof
/// requires) and every sample type, function name and sample column is in range. Protobuf decodes
/// almost any bytes into *some* message, so this is what tells a profile from garbage.
fn validate(p: &PProfile) -> Result<(), String> {
    let strings = p.string_table.len() as i64;
    if p.string_table.first().is_none_or(|s| !s.is_empty()) {
        return Err("its string table does not start with the empty string".into());
    }
    if p.sample_type.is_empty() {
        return Err("it has no sample types".into());
    }
    if p.sample_type.iter().any(|t| !(0..strings).contains(&t.r#type)) {
        return Err("a sample type names a string it does not have".into());
    }
    if p.function.iter().any(|f| !(0..strings).contains(&f.name)) {
        return Err("a function names a string it does not have".into());
    }
    if p.sample.iter().any(|s| s.value.len() != p.sample_type.len()) {
        return Err(format!("a sample does not have one value per sample type ({})", p.sample_type.len()));
    }
    Ok(())
}

/// The frame text of one function: its name, `0x<address>` when the profile has none, with `;`
/// (the collapsed format's separator) and line breaks replaced.
fn frame_name(name: &str, address: u64) -> String {
    if name.is_empty() || name == "??" {
        return format!("{address:#x}");
    }
    name.replace(';', ":").replace(['\n', '\r'], " ")
}

/// The frames of one location, outermost first (a location's lines are innermost first).
fn location_frames(p: &PProfile, loc: &Location, functions: &HashMap<u64, usize>) -> Vec<String> {
    if loc.line.is_empty() {
        return vec![frame_name("", loc.address)];
    }
    loc.line
        .iter()
        .rev()
        .map(|l| {
            let name =
                functions.get(&l.function_id).map_or("", |&i| p.string_table[p.function[i].name as usize].as_str());
            frame_name(name, loc.address)
        })
        .collect()
}

/// The collapsed stacks of `p` for `sample_type`: stack (root first, `;`-separated) -> summed
/// value, for the samples with a positive value. Sorted by stack, as inferno wants them.
pub fn collapse(p: &PProfile, sample_type: SampleType) -> Result<BTreeMap<String, i64>, String> {
    validate(p)?;
    let column = p
        .sample_type
        .iter()
        .position(|t| p.string_table[t.r#type as usize] == sample_type.name())
        .ok_or_else(|| {
            let have: Vec<&str> = p.sample_type.iter().map(|t| p.string_table[t.r#type as usize].as_str()).collect();
            format!("it has no {} sample type (it has {})", sample_type.name(), have.join(", "))
        })?;
    let functions: HashMap<u64, usize> = p.function.iter().enumerate().map(|(i, f)| (f.id, i)).collect();
    let locations: HashMap<u64, &Location> = p.location.iter().map(|l| (l.id, l)).collect();
    let mut frames_of: HashMap<u64, Vec<String>> = HashMap::new();
    let mut stacks: BTreeMap<String, i64> = BTreeMap::new();
    for s in &p.sample {
        let value = s.value[column];
        if value <= 0 {
            continue;
        }
        let mut stack: Vec<&str> = Vec::new();
        // location_id[0] is the leaf: walk from the root.
        for id in s.location_id.iter().rev() {
            if !frames_of.contains_key(id) {
                let loc = locations.get(id).ok_or_else(|| format!("a sample names location {id}, which it lacks"))?;
                frames_of.insert(*id, location_frames(p, loc, &functions));
            }
        }
        for id in s.location_id.iter().rev() {
            stack.extend(frames_of[id].iter().map(String::as_str));
        }
        if stack.is_empty() {
            stack.push("(no stack)");
        }
        let total = stacks.entry(stack.join(";")).or_default();
        *total = total.saturating_add(value);
    }
    Ok(stacks)
}

/// Reads the profile at `path`, or says in one line why it cannot be used.
fn read_profile(path: &Path) -> Result<PProfile> {
    let shown = path.display();
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "{shown}: no such file: give a pprof heap profile (stats_dump --pid PID --no-json --profile FILE writes one)"
        ),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            bail!("{shown}: permission denied: make the file readable for this user")
        }
        Err(e) => bail!("{shown}: cannot read: {e}"),
        Ok(m) if m.is_dir() => bail!("{shown} is a directory: give a pprof profile file"),
        Ok(_) => {}
    }
    let p = pprof::read(path).map_err(|e| anyhow!("{shown} is not a pprof profile: {}", e.root_cause()))?;
    validate(&p).map_err(|why| anyhow!("{shown} is not a pprof profile: {why}"))?;
    Ok(p)
}

/// The heap profile of live process `pid`, as `stats_dump --profile` builds it.
fn live_profile(pid: u32) -> Result<PProfile> {
    let snap = crate::input::from_pid(pid)?;
    let profile = temporal_slab::profile_attach::profile_of(pid).context("reading the heap profile")?;
    let mut sym = Symbolizer::for_pid(pid)?;
    let labels = tslab_tools::sites::label_names(&snap);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i64);
    Ok(pprof::build(&profile, &mut sym, &labels, now))
}

/// `tslab flame`.
pub fn run(args: &FlameArgs) -> Result<()> {
    // `source` goes into the default title, `whose` into messages.
    let (profile, source, whose) = match (args.pid, &args.profile) {
        (Some(pid), _) => (live_profile(pid)?, format!("pid {pid}"), format!("the heap profile of pid {pid}")),
        (None, Some(path)) => {
            let name = path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into());
            (read_profile(path)?, name, path.display().to_string())
        }
        (None, None) => bail!("give --pid PID or --profile FILE"),
    };
    let stacks = collapse(&profile, args.sample_type).map_err(|why| anyhow!("{whose} is not usable: {why}"))?;
    let kind = args.sample_type.name();
    if stacks.is_empty() {
        bail!(
            "no samples of {kind} in the profile: the target has sampled nothing yet (sampling is one per \
             TSLAB_PROFILE_SAMPLE bytes; default 2 MiB) or sampling is off"
        );
    }
    let total = stacks.values().fold(0i64, |a, v| a.saturating_add(*v));
    let lines: Vec<String> = stacks.iter().map(|(stack, value)| format!("{stack} {value}")).collect();

    let mut opt = flamegraph::Options::default();
    opt.title = args.title.clone().unwrap_or_else(|| format!("temporal-slab heap: {kind} ({source})"));
    opt.count_name = if args.sample_type.is_space() { "bytes" } else { "objects" }.to_string();
    // Memory's palette, coloured by name so the same function keeps its colour between runs.
    opt.colors = Palette::Basic(BasicPalette::Mem);
    opt.hash = true;
    let mut svg = Vec::new();
    flamegraph::from_lines(&mut opt, lines.iter().map(String::as_str), &mut svg).context("drawing the flame graph")?;
    crate::whole_file::write(&args.out, &svg)?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "wrote {} ({} stacks, total {})",
        args.out.display(),
        stacks.len(),
        args.sample_type.describe(total)
    )?;
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tslab_tools::pprof::{Function, Line, Sample, ValueType};

    /// A profile with the four heap sample types; `stacks` are (leaf-first locations, values),
    /// each location a list of function names, innermost first.
    fn profile(stacks: &[(&[&[&str]], [i64; 4])]) -> PProfile {
        let mut p = PProfile { string_table: vec![String::new()], ..Default::default() };
        let string = |p: &mut PProfile, s: &str| {
            let i = p.string_table.iter().position(|x| x == s).unwrap_or_else(|| {
                p.string_table.push(s.to_string());
                p.string_table.len() - 1
            });
            i as i64
        };
        for t in ["alloc_objects", "alloc_space", "inuse_objects", "inuse_space"] {
            let (r#type, unit) = (string(&mut p, t), string(&mut p, "x"));
            p.sample_type.push(ValueType { r#type, unit });
        }
        for (locations, value) in stacks {
            let mut ids = Vec::new();
            for names in *locations {
                let id = p.location.len() as u64 + 1;
                let mut line = Vec::new();
                for n in *names {
                    let fid = p.function.len() as u64 + 1;
                    let name = string(&mut p, n);
                    p.function.push(Function { id: fid, name, system_name: name, filename: 0 });
                    line.push(Line { function_id: fid, line: 1 });
                }
                p.location.push(Location { id, mapping_id: 0, address: 0x1000 + id, line });
                ids.push(id);
            }
            p.sample.push(Sample { location_id: ids, value: value.to_vec(), label: Vec::new() });
        }
        p
    }

    #[test]
    fn stacks_are_root_first_with_inlined_frames_in_call_order() {
        // Leaf location: cache_insert inlined into insert_entry; then serve; then main.
        let p = profile(&[(&[&["cache_insert", "insert_entry"], &["serve"], &["main"]], [1, 10, 1, 10])]);
        let s = collapse(&p, SampleType::InuseSpace).unwrap();
        assert_eq!(s.into_iter().collect::<Vec<_>>(), [("main;serve;insert_entry;cache_insert".to_string(), 10)]);
    }

    #[test]
    fn identical_stacks_are_summed_and_zero_values_skipped() {
        let p = profile(&[
            (&[&["a"], &["main"]], [0, 0, 1, 100]),
            (&[&["a"], &["main"]], [0, 0, 2, 50]),
            (&[&["b"], &["main"]], [0, 0, 0, 0]),
            (&[&["c"], &["main"]], [0, 0, 1, -5]),
        ]);
        let s = collapse(&p, SampleType::InuseSpace).unwrap();
        assert_eq!(s.into_iter().collect::<Vec<_>>(), [("main;a".to_string(), 150)]);
        assert!(collapse(&p, SampleType::AllocSpace).unwrap().is_empty());
    }

    #[test]
    fn separators_are_replaced_and_unnamed_frames_show_their_address() {
        let p = profile(&[(&[&["<[u8; 8] as Foo>::f"], &[""], &["??"]], [0, 0, 0, 1])]);
        let s = collapse(&p, SampleType::InuseSpace).unwrap();
        assert_eq!(s.keys().next().unwrap(), "0x1003;0x1002;<[u8: 8] as Foo>::f");
    }

    #[test]
    fn garbage_that_decodes_is_still_refused() {
        assert!(validate(&PProfile::default()).is_err());
        let mut p = profile(&[(&[&["a"]], [0, 0, 0, 1])]);
        p.sample[0].value.pop();
        assert!(collapse(&p, SampleType::InuseSpace).is_err());
        let mut p = profile(&[(&[&["a"]], [0, 0, 0, 1])]);
        p.sample[0].location_id = vec![99];
        assert!(collapse(&p, SampleType::InuseSpace).unwrap_err().contains("location 99"));
    }
}
