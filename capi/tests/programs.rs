//! Real programs from Debian packages under `LD_PRELOAD=libtemporal_slab.so`: a threaded
//! python3 workload, git on a scratch repository, an sqlite3 workload, gcc compiling and running
//! a C program, each checked against the same run on glibc's malloc; and `stats_dump --pid`
//! reading the statistics an LD_PRELOADed python3 publishes (JSON, schema-valid, real counts).
//!
//! Programs: python3 (Debian `python3`), git (`git`), sqlite3 (`sqlite3`), gcc (`gcc`). A missing
//! one skips its test unless `TSLAB_REQUIRE_TOOLS=1`.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::{assert_ok, cdylib, find_program, missing, preloaded, run, scratch, stats_dump};

const LIMIT: Duration = Duration::from_secs(180);

fn workloads() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("workloads")
}

/// `/usr/bin/python3` (Debian's) when present, else the first `python3` in `PATH`.
fn python3() -> Option<PathBuf> {
    let p = find_program(&["/usr/bin/python3", "python3"]);
    if p.is_none() {
        missing("python3 (Debian package python3)");
    }
    p
}

fn stdout_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn python3_threads_workload() {
    let Some(py) = python3() else { return };
    let script = workloads().join("threads.py");
    // Python serves objects up to 512 bytes from its own arenas (mmap) unless
    // PYTHONMALLOC=malloc sends every object through malloc: run both ways.
    for pymalloc in ["pymalloc", "malloc"] {
        let glibc = run(Command::new(&py).arg(&script).env("PYTHONMALLOC", pymalloc), LIMIT);
        assert_ok(&glibc, &format!("python3 threads.py (glibc, PYTHONMALLOC={pymalloc})"));
        let ours = run(preloaded(&py).arg(&script).env("PYTHONMALLOC", pymalloc), LIMIT);
        assert_ok(&ours, &format!("python3 threads.py (LD_PRELOAD, PYTHONMALLOC={pymalloc})"));
        assert_eq!(stdout_of(&ours), stdout_of(&glibc), "python3 output differs under temporal-slab ({pymalloc})");
        assert!(stdout_of(&ours).contains("\"4\""), "{}", stdout_of(&ours));
    }
}

/// Runs git with a private, fixed configuration in `repo`.
fn git(git: &Path, repo: &Path, preload: bool, args: &[&str]) -> String {
    let mut cmd = if preload { preloaded(git) } else { Command::new(git) };
    cmd.current_dir(repo)
        .args(args)
        .env("HOME", repo)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "temporal slab")
        .env("GIT_AUTHOR_EMAIL", "capi@temporal-slab.invalid")
        .env("GIT_COMMITTER_NAME", "temporal slab")
        .env("GIT_COMMITTER_EMAIL", "capi@temporal-slab.invalid")
        .env("GIT_AUTHOR_DATE", "2024-01-01T00:00:00Z")
        .env("GIT_COMMITTER_DATE", "2024-01-01T00:00:00Z");
    let out = run(&mut cmd, LIMIT);
    assert_ok(&out, &format!("git {args:?}"));
    stdout_of(&out)
}

/// init, add, commit (three times), log, status, fsck: returns what log and status printed.
fn git_session(git_bin: &Path, repo: &Path, preload: bool) -> String {
    git(git_bin, repo, preload, &["init", "-q", "-b", "main", "."]);
    let mut seen = String::new();
    for round in 0..3 {
        for f in 0..150 {
            let body: String = (0..(20 + f % 40)).map(|l| format!("file {f} line {l} round {round}\n")).collect();
            std::fs::write(repo.join(format!("f{f:03}.txt")), body).expect("writing a file");
        }
        git(git_bin, repo, preload, &["add", "."]);
        git(git_bin, repo, preload, &["commit", "-q", "-m", &format!("round {round}")]);
    }
    seen += &git(git_bin, repo, preload, &["log", "--format=%H %s", "--stat"]);
    seen += &git(git_bin, repo, preload, &["status", "--porcelain"]);
    git(git_bin, repo, preload, &["fsck", "--no-progress"]);
    seen
}

#[test]
fn git_on_a_scratch_repository() {
    let Some(git_bin) = find_program(&["git"]) else {
        missing("git (Debian package git)");
        return;
    };
    let glibc = git_session(&git_bin, &scratch("git_glibc"), false);
    let ours = git_session(&git_bin, &scratch("git_preload"), true);
    assert_eq!(ours, glibc, "git printed something else under temporal-slab");
    assert_eq!(ours.lines().filter(|l| l.contains(" round ")).count(), 3, "{ours}");
}

#[test]
fn sqlite3_workload() {
    let Some(sqlite) = find_program(&["sqlite3"]) else {
        missing("sqlite3 (Debian package sqlite3)");
        return;
    };
    let sql = std::fs::read_to_string(workloads().join("workload.sql")).expect("reading workload.sql");
    let dir = scratch("sqlite3");
    let script = dir.join("workload.sql");
    std::fs::write(&script, sql.replace("@ROWS@", "20000")).expect("writing the script");
    let go = |preload: bool, db: &str| {
        let mut cmd = if preload { preloaded(&sqlite) } else { Command::new(&sqlite) };
        cmd.arg(dir.join(db)).arg(format!(".read {}", script.display()));
        let out = run(&mut cmd, LIMIT);
        assert_ok(&out, "sqlite3");
        stdout_of(&out)
    };
    let glibc = go(false, "glibc.db");
    let ours = go(true, "ours.db");
    assert_eq!(ours, glibc, "sqlite3 printed something else under temporal-slab");
    assert!(ours.starts_with("18182|"), "{ours}");
}

#[test]
fn gcc_compiles_and_runs_a_program() {
    let Some(gcc) = find_program(&["gcc", "cc"]) else {
        missing("gcc (Debian package gcc)");
        return;
    };
    let dir = scratch("gcc");
    let exe = dir.join("compute");
    // The driver, cc1, as, collect2 and ld all inherit LD_PRELOAD.
    let out = run(preloaded(&gcc).args(["-O2", "-Wall", "-o"]).arg(&exe).arg(workloads().join("compute.c")), LIMIT);
    assert_ok(&out, "gcc under LD_PRELOAD");
    let ours = run(preloaded(&exe).arg("200000"), LIMIT);
    assert_ok(&ours, "compute under LD_PRELOAD");
    let glibc = run(Command::new(&exe).arg("200000"), LIMIT);
    assert_ok(&glibc, "compute");
    assert_eq!(stdout_of(&ours), stdout_of(&glibc));
    assert!(stdout_of(&ours).starts_with("compute: 200000 nodes"), "{}", stdout_of(&ours));
}

/// A python3 process under LD_PRELOAD, killed on drop.
struct Python(std::process::Child);

impl Drop for Python {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn stats_dump_attaches_to_a_preloaded_python3() {
    let Some(py) = python3() else { return };
    let stats_dump = stats_dump();
    // Keeps live objects, says "ready", then waits for its stdin to close.
    let script = "import sys\n\
                  kept = [str(i) * 20 for i in range(50000)]\n\
                  big = [bytearray(100000) for _ in range(5)]\n\
                  print('ready', flush=True)\n\
                  sys.stdin.read()\n\
                  print(len(kept) + len(big))\n";
    let child = Command::new(&py)
        .env("LD_PRELOAD", cdylib())
        .env("PYTHONMALLOC", "malloc") // every Python object through malloc
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting python3");
    let mut target = Python(child);
    let pid = target.0.id();
    let mut line = String::new();
    BufReader::new(target.0.stdout.as_mut().expect("stdout piped")).read_line(&mut line).expect("reading python3");
    assert_eq!(line.trim(), "ready", "python3 said {line:?}");

    // The reclaimer thread publishes at start and then every 100 ms, so a read right after
    // "ready" may show the first publish, made before python3 had allocated much: read until the
    // published counts include the kept objects.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (snap, allocations, live) = loop {
        let out = run(Command::new(stats_dump).args(["--pid", &pid.to_string(), "--no-text"]), LIMIT);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if out.status.success() {
            let snap: Value = serde_json::from_slice(&out.stdout).expect("stats_dump printed JSON");
            let classes = snap["classes"].as_array().expect("classes[]");
            let allocations: u64 = classes.iter().filter_map(|c| c["allocations"].as_u64()).sum();
            let live: u64 = classes.iter().filter_map(|c| c["live_objects"].as_u64()).sum();
            if live > 50_000 || Instant::now() > deadline {
                break (snap, allocations, live);
            }
        } else {
            assert!(Instant::now() < deadline, "stats_dump --pid {pid} failed: {stderr}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(snap["schema_version"], 1);
    assert_eq!(snap["pid"].as_u64(), Some(u64::from(pid)));
    assert!(allocations > 50_000 && live > 50_000, "allocations {allocations}, live {live}");
    assert!(snap["global"]["large_objects"].as_u64() >= Some(5), "{}", snap["global"]);

    // The full schema (the stats-dump tests validate it in depth).
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/snapshot.schema.json");
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("reading the schema")).expect("the schema is JSON");
    let url = "https://temporal-slab.invalid/capi/snapshot.schema.json";
    let mut schemas = boon::Schemas::new();
    let mut compiler = boon::Compiler::new();
    compiler.add_resource(url, schema).expect("adding the schema");
    let index = compiler.compile(url, &mut schemas).expect("the schema compiles");
    if let Err(e) = schemas.validate(&snap, index) {
        panic!("the snapshot of an LD_PRELOADed python3 does not match the schema: {e:#}");
    }

    drop(target.0.stdin.take()); // EOF: the script prints and exits
    let status = target.0.wait().expect("waiting for python3");
    assert!(status.success(), "python3 exited with {status}");
}
