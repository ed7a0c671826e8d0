//! What the `tslab` integration tests share: the binary, and a live workload to attach to.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

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
