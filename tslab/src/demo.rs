//! `tslab demo`: the whole pipeline on a fresh machine. Starts the bundled workload as a child
//! process (this binary's `workload` subcommand: labelled request phases, one leaking domain),
//! attaches to it, shows `top` for a few intervals and the doctor's findings, writes a
//! Prometheus textfile into a temporary directory and says where, then stops the workload by
//! closing its standard input and waits for it to exit.
//!
//! Each step prints the command an operator would type for it.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use tslab_tools::doctor;

use crate::input::from_pid;
use crate::top::{self, Group};
use crate::DemoArgs;

/// How long the workload may take to publish its first snapshot.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the workload may take to stop once its stdin is closed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Kills the workload if the demo fails half-way, so it never outlives the demo.
struct Workload(Option<Child>);

impl Drop for Workload {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `tslab demo`.
pub fn run(args: &DemoArgs) -> Result<()> {
    let exe = std::env::current_exe().context("finding this executable to start the workload")?;
    let mut out = std::io::stdout().lock();
    let workload_args = ["workload", "--leak", "--threads", "2", "--stop-on-eof", "--seconds", "1h"];
    writeln!(out, "$ tslab {}", workload_args.join(" "))?;
    let mut child = Workload(Some(
        Command::new(&exe)
            .args(workload_args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting the demo workload")?,
    ));
    let proc = child.0.as_mut().ok_or_else(|| anyhow!("the workload did not start"))?;
    let stdout = proc.stdout.take().ok_or_else(|| anyhow!("no stdout from the workload"))?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let pid = loop {
        let line = rx
            .recv_timeout(READY_TIMEOUT)
            .map_err(|_| anyhow!("the demo workload did not become ready in {READY_TIMEOUT:?}"))?;
        if let Some(p) = line.strip_prefix("ready pid=") {
            break p.trim().parse::<u32>().context("reading the workload's pid")?;
        }
    };
    writeln!(
        out,
        "  workload pid {pid}: 2 threads of request-like phases in labelled domains \
         (http-request, batch-job, cache-refresh); one domain (background-worker-3) is never ended, on purpose\n"
    )?;

    let secs = args.interval.as_secs_f64();
    for i in 1..=args.intervals {
        let before = from_pid(pid)?;
        std::thread::sleep(args.interval);
        let after = from_pid(pid)?;
        writeln!(
            out,
            "[{i}/{}] $ tslab top --pid {pid} --classes --by allocations --window {secs}s --n 5",
            args.intervals
        )?;
        let ranked = top::rank(Some(&before), &after, Group::Classes, "allocations")?;
        top::write_table(&mut out, &ranked, Group::Classes, "allocations", 5, Some(args.interval))?;
        writeln!(out, "[{i}/{}] $ tslab top --pid {pid} --epochs --by live_bytes --n 5", args.intervals)?;
        let ranked: Vec<_> =
            top::rank(None, &after, Group::Epochs, "live_bytes")?.into_iter().filter(|r| r.value > 0.0).collect();
        top::write_table(&mut out, &ranked, Group::Epochs, "live_bytes", 5, None)?;
        writeln!(out)?;
    }

    let stuck_after = (secs * f64::from(args.intervals) / 2.0).max(0.1);
    writeln!(out, "$ tslab doctor --pid {pid} --stuck-after {stuck_after}")?;
    doctor::write(&mut out, &doctor::diagnose(&from_pid(pid)?, stuck_after))?;
    writeln!(out)?;

    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("tslab-demo-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path: PathBuf = dir.join("temporal_slab.prom");
    writeln!(out, "$ tslab export prometheus --pid {pid} --textfile {}", path.display())?;
    out.flush()?;
    let status = Command::new(&exe)
        .args(["export", "prometheus", "--pid", &pid.to_string(), "--textfile"])
        .arg(&path)
        .status()
        .context("running tslab export")?;
    if !status.success() {
        bail!("tslab export prometheus failed ({status}); its message is above");
    }
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading back {}", path.display()))?;
    let samples = text.lines().filter(|l| !l.is_empty() && !l.starts_with('#')).count();
    let families = text.lines().filter(|l| l.starts_with("# TYPE ")).count();
    writeln!(
        out,
        "  wrote {} ({families} metric families, {samples} samples)\n  \
         node_exporter --collector.textfile.directory={} would serve it; `tslab serve --pid PID` serves /metrics directly\n",
        path.display(),
        dir.display()
    )?;

    // Closing stdin asks the workload to stop; it joins its threads and exits 0.
    let mut proc = child.0.take().ok_or_else(|| anyhow!("the workload is gone"))?;
    drop(proc.stdin.take());
    let start = Instant::now();
    let status = loop {
        if let Some(st) = proc.try_wait().context("waiting for the workload")? {
            break st;
        }
        if start.elapsed() > STOP_TIMEOUT {
            let _ = proc.kill();
            let _ = proc.wait();
            bail!("the demo workload did not stop within {STOP_TIMEOUT:?} of its stdin closing; it was killed");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    if !status.success() {
        bail!("the demo workload exited with {status}");
    }
    writeln!(out, "workload pid {pid} stopped cleanly; the textfile stays in {}", dir.display())?;
    out.flush()?;
    Ok(())
}
