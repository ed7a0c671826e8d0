//! What the `tslab` integration tests share: the binary, a live workload to attach to, and the
//! checks of a one-line error. (Each test binary uses part of it.)
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

/// Runs `tslab args` to completion.
pub fn run(args: &[&str]) -> Output {
    tslab().args(args).output().unwrap()
}

/// A path as an argument.
pub fn arg(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Exit 2, one line on stderr containing `needle`.
pub fn assert_one_line_error(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "status {:?}, stderr {stderr}", out.status);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains(needle), "expected {needle:?} in: {stderr}");
}

/// The `tslab` binary under test.
pub fn tslab() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tslab"))
}

/// A live `tslab workload` (2 threads, `extra` arguments), killed when dropped.
pub struct Target {
    child: Child,
    pub pid: u32,
}

impl Target {
    pub fn start(extra: &[&str]) -> Target {
        let mut child = tslab()
            .args(["workload", "--threads", "2", "--seconds", "120s"])
            .args(extra)
            .stdout(Stdio::piped())
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = lines.next().expect("workload printed nothing").unwrap();
        let pid =
            line.strip_prefix("ready pid=").unwrap_or_else(|| panic!("unexpected line {line:?}")).parse().unwrap();
        Target { child, pid }
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
