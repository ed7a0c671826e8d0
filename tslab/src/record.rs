//! `tslab record`: a live process's snapshots over time, appended to a file as JSON Lines (one
//! snapshot document per line), for `tslab plot` or any JSON tool.
//!
//! Each line is written with one `write` and the file is cut back to its previous length if that
//! write fails (a full disk, a file size limit), so the file only ever holds whole lines.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use temporal_slab::attach::AttachError;

/// Options of `tslab record`.
#[derive(clap::Args, Debug)]
#[command(after_help = "EXAMPLES:
    tslab record --pid 1234 --out run.jsonl                       every second until it exits
    tslab record --pid 1234 --out run.jsonl --interval 200ms --duration 1m
    tslab plot run.jsonl --out run.svg                            then open run.svg in a browser

The file gets one snapshot per line (appended if it exists). Recording stops at --duration, when
the process exits, or on Ctrl-C; every line in the file is whole.")]
pub struct RecordArgs {
    /// The process to record (it must use temporal-slab).
    #[arg(long, value_name = "PID")]
    pub pid: u32,
    /// The JSON Lines file to append to.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Time between snapshots (the target publishes every 100 ms).
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = crate::parse_duration)]
    pub interval: Duration,
    /// Stop after this long (default: until the process exits).
    #[arg(long, value_name = "DURATION", value_parser = crate::parse_duration)]
    pub duration: Option<Duration>,
}

/// Appends `line` and a newline as one write; on failure cuts the file back to `len` (whole
/// lines only) and says why in one line.
fn append(file: &mut std::fs::File, path: &Path, len: u64, line: &[u8]) -> Result<u64> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if let Err(e) = file.write_all(line) {
        let cut = file.set_len(len);
        let kept = if cut.is_ok() { "the file keeps its whole lines" } else { "its last line may be cut" };
        bail!("cannot append to {}: {}; {kept}", path.display(), crate::export::cause_and_fix(&e, dir));
    }
    Ok(len + line.len() as u64)
}

/// `tslab record`.
pub fn run(args: &RecordArgs) -> Result<()> {
    if args.interval < Duration::from_millis(100) {
        bail!(
            "--interval {:?} is shorter than the target's 100 ms publishing period: use 100ms or more",
            args.interval
        );
    }
    let path = &args.out;
    let mut file = OpenOptions::new().create(true).append(true).open(path).map_err(|e| {
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        anyhow!("cannot open {} for appending: {}", path.display(), crate::export::cause_and_fix(&e, dir))
    })?;
    let mut len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let started = Instant::now();
    let (mut lines, mut last_ts, mut last_change) = (0u64, None, Instant::now());
    // The target publishes every 100 ms, so at short intervals two reads can see the same
    // snapshot; only a snapshot unchanged for this long means it stopped publishing.
    let stalled_after = (args.interval * 3).max(Duration::from_secs(1));
    loop {
        match crate::input::from_pid(args.pid) {
            Ok(s) => {
                // A snapshot that has not changed since the last line adds nothing.
                if last_ts != Some(s.timestamp_ns) {
                    let mut line = serde_json::to_vec(&s)?;
                    line.push(b'\n');
                    len = append(&mut file, path, len, &line)?;
                    lines += 1;
                    last_ts = Some(s.timestamp_ns);
                    last_change = Instant::now();
                } else if last_change.elapsed() > stalled_after {
                    bail!("{}", crate::input::not_publishing(args.pid, last_change.elapsed()));
                }
            }
            Err(e) if lines > 0 && e.downcast_ref::<AttachError>().is_some_and(exited) => {
                eprintln!("tslab record: pid {} exited; {lines} snapshot(s) in {}", args.pid, path.display());
                return Ok(());
            }
            Err(e) => return Err(e),
        }
        let done = args.duration.is_some_and(|d| started.elapsed() + args.interval > d);
        if done {
            eprintln!("tslab record: {lines} snapshot(s) of pid {} in {}", args.pid, path.display());
            return Ok(());
        }
        // Ctrl-C ends the process between or after writes: each line is one `write`, so the file
        // keeps whole lines.
        std::thread::sleep(args.interval);
    }
}

fn exited(e: &AttachError) -> bool {
    matches!(e, AttachError::NoSuchProcess(_) | AttachError::Exited(_))
}
