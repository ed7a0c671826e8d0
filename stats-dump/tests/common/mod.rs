//! What the stats_dump integration tests share: a live `tslab-workload` to attach to, and
//! running `stats_dump`. (Each test binary uses part of it.)
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};

pub const STATS_DUMP: &str = env!("CARGO_BIN_EXE_stats_dump");
pub const WORKLOAD: &str = env!("CARGO_BIN_EXE_tslab-workload");

/// A workload process, killed on drop.
pub struct Target(pub Child);

impl Target {
    pub fn pid(&self) -> String {
        self.0.id().to_string()
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the workload with `args` and `env` and waits for its ready line.
pub fn start(args: &[&str], env: &[(&str, &str)]) -> Target {
    let mut cmd = Command::new(WORKLOAD);
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("starting tslab-workload");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).expect("reading the ready line");
    assert!(line.starts_with("ready pid="), "workload said {line:?}");
    Target(child)
}

/// Runs `stats_dump args` to completion.
pub fn stats_dump(args: &[&str]) -> Output {
    Command::new(STATS_DUMP).args(args).output().expect("running stats_dump")
}
