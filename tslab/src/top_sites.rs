//! `tslab top --sites`: the call sites whose sampled objects hold the most live memory, from a
//! live process's heap profile, with the labels and epochs that memory is in.

use std::io::Write;

use anyhow::{Context, Result};
use tslab_tools::fmt::bytes;
use tslab_tools::sites::{label_names, rank, SiteRow};
use tslab_tools::symbolize::Symbolizer;

/// Prints the top `n` sites of process `pid`.
pub fn run(pid: u32, n: usize) -> Result<()> {
    let snap = crate::input::from_pid(pid)?;
    let profile = temporal_slab::profile_attach::profile_of(pid).context("reading the heap profile")?;
    let mut sym = Symbolizer::for_pid(pid)?;
    let rows = rank(&profile, &mut sym, &label_names(&snap));
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "pid {pid}: call sites by live bytes (estimated from {} samples, one per {} allocated on average)",
        profile.samples,
        bytes(profile.sample_bytes)
    )?;
    write_table(&mut out, &rows, n)?;
    out.flush()?;
    Ok(())
}

/// The table: rank, live bytes, live objects, allocated bytes, site, where its bytes are.
pub fn write_table(out: &mut impl Write, rows: &[SiteRow], n: usize) -> Result<()> {
    writeln!(out, "{:>3}  {:>10}  {:>9}  {:>10}  site / in labels and eras", "#", "live", "objects", "allocated")?;
    for (i, r) in rows.iter().take(n).enumerate() {
        writeln!(
            out,
            "{:>3}  {:>10}  {:>9.0}  {:>10}  {}",
            i + 1,
            bytes(r.live_bytes as u64),
            r.live_objects,
            bytes(r.alloc_bytes as u64),
            r.frame.describe()
        )?;
        if r.live_bytes > 0.0 {
            let labels: Vec<String> =
                r.by_label.iter().take(3).map(|(l, b)| format!("{l} {}", bytes(*b as u64))).collect();
            let eras: Vec<String> =
                r.by_era.iter().take(3).map(|(e, b)| format!("era {e} {}", bytes(*b as u64))).collect();
            writeln!(out, "{:>40}  labels: {}; eras: {}", "", labels.join(", "), eras.join(", "))?;
        }
    }
    if rows.is_empty() {
        writeln!(out, "  (no samples yet)")?;
    }
    Ok(())
}
