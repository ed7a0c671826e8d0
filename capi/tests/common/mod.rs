//! Shared by the integration tests: building `libtemporal_slab.so` (and `stats_dump`) with the
//! cargo that runs the tests, finding the Debian programs the tests drive, compiling C, and
//! running child processes with a deadline (a hang in the allocator must fail a test, not stall
//! it).
//!
//! A test that needs a program that is not installed prints `skipped: ...` and passes, unless
//! `TSLAB_REQUIRE_TOOLS=1`, in which case it fails (CI sets it).

#![allow(dead_code)] // each test binary uses a different part of this module

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Whether a missing program fails the test instead of skipping it.
pub fn tools_required() -> bool {
    std::env::var("TSLAB_REQUIRE_TOOLS").is_ok_and(|v| v == "1")
}

/// Reports a missing program: a panic under `TSLAB_REQUIRE_TOOLS=1`, else a `skipped:` line.
pub fn missing(what: &str) {
    if tools_required() {
        panic!("{what} is required (TSLAB_REQUIRE_TOOLS=1) but not installed");
    }
    eprintln!("skipped: {what} is not installed (set TSLAB_REQUIRE_TOOLS=1 to make this a failure)");
}

/// The first of `candidates` that exists: absolute paths as they are, bare names looked up in
/// `PATH`.
pub fn find_program(candidates: &[&str]) -> Option<PathBuf> {
    for c in candidates {
        let p = Path::new(c);
        if p.is_absolute() {
            if p.is_file() {
                return Some(p.to_path_buf());
            }
            continue;
        }
        let path = std::env::var_os("PATH").unwrap_or_default();
        if let Some(found) = std::env::split_paths(&path).map(|d| d.join(c)).find(|f| f.is_file()) {
            return Some(found);
        }
    }
    None
}

/// Builds `package` with the test profile (the cargo running the tests, same target
/// directory) and returns the paths of the artifacts it reported.
fn cargo_build(package: &str) -> Vec<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args(["build", "--profile", "test", "--message-format=json-render-diagnostics", "-p", package])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("running cargo build -p {package}: {e}"));
    assert!(out.status.success(), "cargo build -p {package} failed");
    let mut files = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<Value>(line) else { continue };
        if msg["reason"] == "compiler-artifact" {
            if let Some(exe) = msg["executable"].as_str() {
                files.push(PathBuf::from(exe));
            }
            for f in msg["filenames"].as_array().into_iter().flatten() {
                files.extend(f.as_str().map(PathBuf::from));
            }
        }
    }
    files
}

/// `libtemporal_slab.so`, built once per test binary.
pub fn cdylib() -> &'static Path {
    static SO: OnceLock<PathBuf> = OnceLock::new();
    SO.get_or_init(|| {
        cargo_build("temporal-slab-capi")
            .into_iter()
            .find(|f| f.file_name().is_some_and(|n| n == "libtemporal_slab.so"))
            .expect("cargo built no libtemporal_slab.so")
    })
}

/// The `stats_dump` binary, built once per test binary.
pub fn stats_dump() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        cargo_build("stats-dump")
            .into_iter()
            .find(|f| f.file_name().is_some_and(|n| n == "stats_dump"))
            .expect("cargo built no stats_dump")
    })
}

/// A fresh, empty scratch directory for one test.
pub fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("capi").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    dir
}

/// The C compiler (`cc`), or `None` after reporting it missing.
pub fn cc() -> Option<PathBuf> {
    let cc = find_program(&["cc", "gcc"]);
    if cc.is_none() {
        missing("a C compiler (cc, Debian package gcc)");
    }
    cc
}

/// Compiles C `sources` into `out` with the header directory on the include path.
pub fn compile(cc: &Path, sources: &[&Path], out: &Path, extra: &[&str]) {
    let include = Path::new(env!("CARGO_MANIFEST_DIR")).join("include");
    let status = Command::new(cc)
        .args(["-std=gnu11", "-O1", "-fno-builtin", "-Wall", "-Wextra", "-Werror", "-g"])
        .arg("-I")
        .arg(&include)
        .args(sources)
        .arg("-o")
        .arg(out)
        .args(extra)
        .status()
        .unwrap_or_else(|e| panic!("running {}: {e}", cc.display()));
    assert!(status.success(), "compiling {sources:?} failed");
}

/// The C test sources directory.
pub fn c_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("c")
}

/// Runs `cmd` to completion within `limit`, capturing its output; kills it and panics when it
/// takes longer (an allocator deadlock shows up as this panic).
pub fn run(cmd: &mut Command, limit: Duration) -> Output {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {what}: {e}"));
    // Drain the pipes on threads so a chatty child cannot block on a full pipe.
    let mut so = child.stdout.take().expect("stdout piped");
    let mut se = child.stderr.take().expect("stderr piped");
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = std::io::Read::read_to_end(&mut so, &mut v);
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = std::io::Read::read_to_end(&mut se, &mut v);
        v
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait().expect("waiting for the child") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {limit:?} (hang or deadlock)");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output { status, stdout: t_out.join().unwrap_or_default(), stderr: t_err.join().unwrap_or_default() }
}

/// Asserts success, printing the child's output otherwise.
pub fn assert_ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed with {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `cmd` with `LD_PRELOAD` set to the built library.
pub fn preloaded(program: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.env("LD_PRELOAD", cdylib());
    cmd
}
