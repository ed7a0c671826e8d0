//! `suite`'s command line: the commands, their options and how they are parsed.

use super::*;

/// Which command [`RunOptions`] are for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Mode {
    All,
    Quick,
    Epochs,
}

/// Options of `all` / `quick` / `epochs`.
pub(super) struct RunOptions {
    pub(super) quick: bool,
    pub(super) out: PathBuf,
    pub(super) reps: usize,
    /// Thread counts of the main group's threaded workloads.
    pub(super) threads: Vec<usize>,
    /// Thread counts of the epochs group's threaded workloads (`domain-cycle`: always 1 and 2).
    pub(super) epoch_threads: Vec<usize>,
    pub(super) workloads: Vec<Workload>,
    pub(super) allocators: Vec<String>,
    pub(super) latency: bool,
}

/// Options of `one`.
pub(super) struct OneOptions {
    pub(super) allocator: String,
    pub(super) workload: Workload,
    pub(super) threads: usize,
    pub(super) reps: usize,
    pub(super) quick: bool,
    pub(super) latency: bool,
}

/// Pulls the value of option `name` from `it`.
pub(super) fn value<'a>(name: &str, it: &mut impl Iterator<Item = &'a String>) -> Result<&'a String, String> {
    it.next().ok_or_else(|| format!("{name} needs a value"))
}

pub(super) fn number(name: &str, v: &str, range: std::ops::RangeInclusive<usize>) -> Result<usize, String> {
    let n: usize = v.parse().map_err(|_| format!("{name}: not a non-negative integer: {v:?}"))?;
    if !range.contains(&n) {
        return Err(format!("{name} must be in {}..={}, got {n}", range.start(), range.end()));
    }
    Ok(n)
}

pub(super) fn list(v: &str) -> Vec<String> {
    v.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect()
}

pub(super) fn known_allocator(a: &str) -> bool {
    ALLOCATORS.contains(&a) || a == TS_NOEPOCHS || a == TCMALLOC
}

pub(super) fn parse_run(args: &[String], mode: Mode) -> Result<RunOptions, String> {
    let quick = mode == Mode::Quick;
    let mut allocators: Vec<String> = ALLOCATORS.iter().map(|s| s.to_string()).collect();
    let mut workloads = WORKLOADS.to_vec();
    match mode {
        Mode::All => {}
        Mode::Quick => {
            allocators.push(TCMALLOC.into());
            workloads.extend(EPOCH_WORKLOADS);
        }
        Mode::Epochs => {
            allocators = epochs::ALLOCATORS.iter().map(|s| s.to_string()).collect();
            workloads = EPOCH_WORKLOADS.to_vec();
        }
    }
    let mut o = RunOptions {
        quick,
        out: PathBuf::from(match mode {
            Mode::All => "target/bench-results.json",
            Mode::Quick => "target/bench-quick.json",
            Mode::Epochs => "target/bench-epochs.json",
        }),
        reps: 0,
        threads: THREADS.to_vec(),
        epoch_threads: epochs::THREADS.to_vec(),
        workloads,
        allocators,
        latency: true,
    };
    let mut reps = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--out" => o.out = PathBuf::from(value(a, &mut it)?),
            "--reps" => reps = Some(number(a, value(a, &mut it)?, 1..=100)?),
            "--no-latency" if mode != Mode::Epochs => o.latency = false,
            "--quick" if mode == Mode::Epochs => o.quick = true,
            "--threads" => {
                o.threads = list(value(a, &mut it)?)
                    .iter()
                    .map(|t| number("--threads", t, 1..=256))
                    .collect::<Result<_, _>>()?;
                o.epoch_threads.clone_from(&o.threads);
            }
            "--workloads" => {
                o.workloads = list(value(a, &mut it)?)
                    .iter()
                    .map(|w| workloads::find(w).ok_or_else(|| format!("unknown workload {w:?}")))
                    .collect::<Result<_, _>>()?;
            }
            "--allocators" => {
                o.allocators = list(value(a, &mut it)?);
                if let Some(bad) = o.allocators.iter().find(|a| !known_allocator(a)) {
                    return Err(format!("unknown allocator {bad:?}"));
                }
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    o.reps = reps.unwrap_or(if o.quick { 1 } else { 3 });
    if o.threads.is_empty() || o.workloads.is_empty() || o.allocators.is_empty() {
        return Err("--threads, --workloads and --allocators need at least one entry".into());
    }
    if mode == Mode::All {
        if let Some(w) = o.workloads.iter().find(|w| workloads::in_epochs_group(w.name)) {
            return Err(format!("{} is in the epochs group: run it with `suite epochs`", w.name));
        }
    }
    Ok(o)
}

pub(super) fn parse_one(args: &[String]) -> Result<OneOptions, String> {
    let (Some(allocator), Some(workload)) = (args.first(), args.get(1)) else {
        return Err("one needs <allocator> <workload>".into());
    };
    if !known_allocator(allocator) {
        return Err(format!("unknown allocator {allocator:?}"));
    }
    let workload = workloads::find(workload).ok_or_else(|| format!("unknown workload {workload:?}"))?;
    let mut o = OneOptions { allocator: allocator.clone(), workload, threads: 1, reps: 3, quick: false, latency: true };
    let mut it = args[2..].iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--threads" => o.threads = number(a, value(a, &mut it)?, 1..=256)?,
            "--reps" => o.reps = number(a, value(a, &mut it)?, 1..=100)?,
            "--quick" => o.quick = true,
            "--no-latency" => o.latency = false,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(o)
}
