//! `tslab flame` end to end: a hand-built pprof profile drawn as an SVG whose frames are as wide
//! as their bytes; a sample type with nothing in it, a file that is not a profile, and an output
//! directory that does not exist and a pid that is gone are one-line errors that leave no file;
//! and a live workload's planted leak (`cache_insert`) shows in its flame graph.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use tslab_tools::pprof::{write_gz, Function, Line, Location, PProfile, Sample, ValueType};

mod common;
use common::{arg, assert_one_line_error, run, Target};

const MIB: i64 = 1024 * 1024;

/// Parses an SVG; inferno's carry a DOCTYPE, which roxmltree refuses unless told.
fn parse(svg: &str) -> roxmltree::Document<'_> {
    let opt = roxmltree::ParsingOptions { allow_dtd: true, ..Default::default() };
    roxmltree::Document::parse_with_options(svg, opt).expect("the flame graph is well-formed XML")
}

/// A heap profile as `stats_dump --profile` writes it (the four sample types, the string table
/// starting with ""), with one sample per entry of `stacks`: function names root first, and the
/// values (alloc_objects, alloc_space, inuse_objects, inuse_space).
fn profile(stacks: &[(&[&str], [i64; 4])]) -> PProfile {
    let mut p = PProfile { string_table: vec![String::new()], ..Default::default() };
    fn string(p: &mut PProfile, s: &str) -> i64 {
        if let Some(i) = p.string_table.iter().position(|x| x == s) {
            return i as i64;
        }
        p.string_table.push(s.to_string());
        p.string_table.len() as i64 - 1
    }
    for (t, unit) in
        [("alloc_objects", "count"), ("alloc_space", "bytes"), ("inuse_objects", "count"), ("inuse_space", "bytes")]
    {
        let vt = ValueType { r#type: string(&mut p, t), unit: string(&mut p, unit) };
        p.sample_type.push(vt);
    }
    for (names, value) in stacks {
        let mut ids = Vec::new();
        for name in *names {
            // One function and one location per name, reused across stacks.
            let fid = match p.function.iter().find(|f| p.string_table[f.name as usize] == *name) {
                Some(f) => f.id,
                None => {
                    let id = p.function.len() as u64 + 1;
                    let n = string(&mut p, name);
                    p.function.push(Function { id, name: n, system_name: n, filename: 0 });
                    id
                }
            };
            let lid = match p.location.iter().find(|l| l.line[0].function_id == fid) {
                Some(l) => l.id,
                None => {
                    let id = p.location.len() as u64 + 1;
                    let line = vec![Line { function_id: fid, line: 10 }];
                    p.location.push(Location { id, mapping_id: 0, address: 0x1000 * id, line });
                    id
                }
            };
            ids.push(lid);
        }
        // pprof lists a sample's locations leaf first.
        ids.reverse();
        p.sample.push(Sample { location_id: ids, value: value.to_vec(), label: Vec::new() });
    }
    p
}

/// The two-stack profile: 3 MiB live under cache_insert, 1 MiB under scratch.
fn two_stacks(dir: &Path) -> PathBuf {
    let p = profile(&[
        (&["main", "serve", "cache_insert"], [48, 3 * MIB, 48, 3 * MIB]),
        (&["main", "serve", "scratch"], [16, MIB, 0, MIB]),
    ]);
    let file = dir.join("heap.pb.gz");
    write_gz(&p, &file).unwrap();
    file
}

/// The share of the total (percent) in the `<title>` of the frame named `name`.
fn share(doc: &roxmltree::Document, name: &str) -> f64 {
    let title = doc
        .descendants()
        .filter(|n| n.has_tag_name("title"))
        .filter_map(|n| n.text())
        .find(|t| t.starts_with(&format!("{name} (")))
        .unwrap_or_else(|| panic!("no frame titled {name}"));
    // "cache_insert (3,145,728 bytes, 75.00%)"
    let pct = title.rsplit(", ").next().and_then(|p| p.strip_suffix("%)")).unwrap_or_else(|| panic!("{title}"));
    pct.parse().unwrap_or_else(|_| panic!("{title}"))
}

#[test]
fn a_profile_draws_as_a_flame_graph_with_frames_as_wide_as_their_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let file = two_stacks(dir.path());
    let svg_path = dir.path().join("heap.svg");
    let out = run(&["flame", "--profile", arg(&file), "--out", arg(&svg_path)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.trim(), format!("wrote {} (2 stacks, total 4.0 MiB)", svg_path.display()));

    let svg = std::fs::read_to_string(&svg_path).unwrap();
    let doc = parse(&svg);
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let texts: Vec<&str> = doc.descendants().filter_map(|n| n.text()).collect();
    assert!(texts.iter().any(|t| t.contains("temporal-slab heap: inuse_space (heap.pb.gz)")), "{texts:?}");
    let (cache, scratch) = (share(&doc, "cache_insert"), share(&doc, "scratch"));
    assert!((cache - 75.0).abs() < 0.01 && (scratch - 25.0).abs() < 0.01, "cache_insert {cache}%, scratch {scratch}%");
    assert!((share(&doc, "serve") - 100.0).abs() < 0.01);
    // No temporary file is left beside the picture.
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 2, "{names:?}");

    // Objects: scratch has no live objects, so only cache_insert is drawn.
    let out = run(&["flame", "--profile", arg(&file), "--out", arg(&svg_path), "--sample-type", "inuse_objects"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("(1 stacks, total 48 objects)"));
    let svg = std::fs::read_to_string(&svg_path).unwrap();
    let doc = parse(&svg);
    assert!((share(&doc, "cache_insert") - 100.0).abs() < 0.01);
    assert!(!svg.contains("scratch"));
}

#[test]
fn a_sample_type_with_nothing_in_it_is_an_error_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let p = profile(&[(&["main", "cache_insert"], [4, 4096, 0, 0])]);
    let file = dir.path().join("heap.pb.gz");
    write_gz(&p, &file).unwrap();
    let svg = dir.path().join("flame.svg");
    let out = run(&["flame", "--profile", arg(&file), "--out", arg(&svg), "--sample-type", "inuse_objects"]);
    assert_one_line_error(&out, "no samples of inuse_objects");
    assert!(String::from_utf8_lossy(&out.stderr).contains("TSLAB_PROFILE_SAMPLE"));
    assert!(!svg.exists());
}

#[test]
fn a_file_that_is_not_a_profile_is_an_error_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("flame.svg");
    // Text, an empty file (protobuf decodes it as an empty message), and a broken gzip stream.
    for (name, content) in
        [("notes.txt", &b"this is not a heap profile\n"[..]), ("empty.pb", b""), ("cut.pb.gz", b"\x1f\x8b\x08\x00junk")]
    {
        let file = dir.path().join(name);
        std::fs::write(&file, content).unwrap();
        let out = run(&["flame", "--profile", arg(&file), "--out", arg(&svg)]);
        assert_one_line_error(&out, &format!("{} is not a pprof profile", file.display()));
        assert!(!svg.exists(), "{name}: an SVG was written");
    }
    let missing = dir.path().join("missing.pb.gz");
    let out = run(&["flame", "--profile", arg(&missing), "--out", arg(&svg)]);
    assert_one_line_error(&out, "no such file");
    assert!(!svg.exists());
}

#[test]
fn an_output_directory_that_does_not_exist_is_an_error_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = two_stacks(dir.path());
    let missing = dir.path().join("no-such-dir");
    let svg = missing.join("flame.svg");
    let out = run(&["flame", "--profile", arg(&file), "--out", arg(&svg)]);
    assert_one_line_error(&out, &format!("cannot write {}", svg.display()));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
    assert!(!missing.exists(), "something was created at {}", missing.display());
}

/// `tslab-workload` (stats-dump's binary, with the planted `cache_insert` leak behind `--pin`):
/// it sits beside `tslab` when the workspace is built.
fn workload() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_BIN_EXE_tslab")).with_file_name("tslab-workload");
    p.exists().then_some(p)
}

/// A `tslab-workload` process, killed on drop.
struct Workload(Child);

impl Drop for Workload {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_live_process_planted_leak_shows_in_its_flame_graph() {
    let Some(bin) = workload() else {
        eprintln!("skipped: tslab-workload is not built beside tslab (cargo build -p stats-dump --bins builds it)");
        return;
    };
    let mut child = Command::new(bin)
        .args(["--pin", "--threads", "1", "--seconds", "60"])
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let target = Workload(child);
    // Printed after the planted request ran.
    assert!(line.starts_with("ready pid="), "workload said {line:?}");
    let pid = target.0.id().to_string();

    let dir = tempfile::tempdir().unwrap();
    let svg_path = dir.path().join("live.svg");
    let out = run(&["flame", "--pid", &pid, "--out", arg(&svg_path)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let svg = std::fs::read_to_string(&svg_path).unwrap();
    let doc = parse(&svg);
    let titles: Vec<&str> = doc.descendants().filter(|n| n.has_tag_name("title")).filter_map(|n| n.text()).collect();
    let texts: Vec<&str> = doc.descendants().filter_map(|n| n.text()).collect();
    assert!(texts.iter().any(|t| t.contains(&format!("(pid {pid})"))), "no title naming the pid");
    assert!(titles.iter().any(|t| t.contains("cache_insert")), "cache_insert is not in the flame graph");
}

#[test]
fn a_pid_that_is_gone_is_an_error_and_writes_nothing() {
    let target = Target::start(&[]);
    let pid = target.pid.to_string();
    drop(target);
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("gone.svg");
    let out = run(&["flame", "--pid", &pid, "--out", arg(&svg)]);
    assert_one_line_error(&out, &pid);
    assert!(!svg.exists());
}
