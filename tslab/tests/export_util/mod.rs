//! What the `export` and `textfile` tests share: running `tslab` with input on stdin, the shape
//! of its errors, temporary directories.
// Each test file uses a part of these.
#![allow(dead_code)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

pub const TSLAB: &str = env!("CARGO_BIN_EXE_tslab");
pub const DEMO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../schemas/examples/demo-in-process.json");

/// Runs tslab with `args`, feeding `stdin` (empty when `None`).
pub fn tslab(args: &[&str], stdin: Option<&[u8]>) -> Output {
    run(Command::new(TSLAB).args(args), stdin)
}

pub fn run(cmd: &mut Command, stdin: Option<&[u8]>) -> Output {
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut pipe = child.stdin.take().unwrap();
    let input = stdin.unwrap_or_default().to_vec();
    let writer = std::thread::spawn(move || {
        // The child may exit before reading everything (an error case): that is not a failure.
        let _ = pipe.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

pub fn stdout_text(out: &Output) -> String {
    assert!(out.status.success(), "status {:?}, stderr: {}", out.status, String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout.clone()).expect("the exposition text is UTF-8")
}

/// The failure shape of every error: exit 2, one line `tslab: ...` on stderr naming the cause,
/// nothing on stdout.
pub fn assert_one_line_error(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "status {:?}, stderr {stderr}", out.status);
    assert_eq!(stderr.lines().count(), 1, "more than one line: {stderr}");
    assert!(stderr.starts_with("tslab: ") && stderr.contains(needle), "expected {needle:?} in: {stderr}");
    assert!(out.stdout.is_empty(), "stdout not empty on error");
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// Everything in `dir`, hidden files included, sorted.
pub fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

pub fn arg(p: &Path) -> &str {
    p.to_str().unwrap()
}

pub fn is_root() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
}
