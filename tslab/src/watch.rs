//! `tslab watch`: a live view of a process, refreshed every interval, with rates per second
//! computed from consecutive snapshots. On a terminal the view is redrawn in place; into a pipe
//! or a file it prints one plain `key=value` line per interval (easy to grep and to log).

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use temporal_slab::Snapshot;
use tslab_tools::fmt::{bytes, pct};

use crate::top::{self, Group};

/// Options of `tslab watch`.
#[derive(clap::Args, Debug)]
#[command(after_help = "EXAMPLES:
    tslab watch --pid 1234                         redraws every second until Ctrl-C
    tslab watch --pid 1234 --interval 500ms --count 20 > watch.log
    tslab watch --pid 1234 --interval 5s | grep slow_per_s

OUTPUT:
    On a terminal: a screen with memory, rates per second and the busiest size classes.
    Into a pipe: one line per interval, key=value pairs; rates are per second over the interval.")]
pub struct WatchArgs {
    /// Process to watch (it must use temporal-slab; same user or root).
    #[arg(long, value_name = "PID")]
    pub pid: u32,
    /// Time between refreshes (at least 100ms: the target publishes every 100 ms).
    #[arg(long, default_value = "1s", value_parser = crate::parse_duration)]
    pub interval: Duration,
    /// Stop after this many refreshes (default: until interrupted).
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// Always print plain lines, even on a terminal.
    #[arg(long)]
    pub plain: bool,
}

/// Rates per second between two snapshots of one process.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rates {
    /// Seconds between the two snapshots.
    pub seconds: f64,
    /// Small allocations per second.
    pub allocs: f64,
    /// Small frees per second.
    pub frees: f64,
    /// Slow-path allocations per second.
    pub slow: f64,
    /// Bytes purged (madvise) per second.
    pub purged_bytes: f64,
    /// Epoch closes per second.
    pub closes: f64,
    /// RSS change per second (bytes, may be negative).
    pub rss: f64,
}

/// The rates from `a` to `b`; `None` if `b` is not later than `a`.
pub fn rates(a: &Snapshot, b: &Snapshot) -> Option<Rates> {
    let dt = b.timestamp_ns.checked_sub(a.timestamp_ns).filter(|d| *d > 0)? as f64 / 1e9;
    let sum = |s: &Snapshot, f: fn(&temporal_slab::stats::ClassStats) -> u64| s.classes.iter().map(f).sum::<u64>();
    let per = |x: u64, y: u64| y.saturating_sub(x) as f64 / dt;
    Some(Rates {
        seconds: dt,
        allocs: per(sum(a, |c| c.allocations), sum(b, |c| c.allocations)),
        frees: per(sum(a, |c| c.frees), sum(b, |c| c.frees)),
        slow: per(a.total_slow_path_hits, b.total_slow_path_hits),
        purged_bytes: per(a.total_madvise_bytes, b.total_madvise_bytes),
        closes: per(a.global.epoch_close_calls, b.global.epoch_close_calls),
        rss: (b.rss_bytes_current as f64 - a.rss_bytes_current as f64) / dt,
    })
}

/// One plain line for a pipe.
pub fn line(s: &Snapshot, r: &Rates) -> String {
    let g = &s.global;
    format!(
        "time_ns={} pid={} rss_bytes={} resident_bytes={} live_bytes={} allocs_per_s={:.0} frees_per_s={:.0} \
         slow_per_s={:.0} purged_bytes_per_s={:.0} closes_per_s={:.1} rss_bytes_per_s={:.0} era={} \
         active_epochs={} closing_epochs={} madvise_failures={}",
        s.timestamp_ns,
        s.pid,
        s.rss_bytes_current,
        g.resident_bytes,
        g.small_live_bytes + g.large_bytes,
        r.allocs,
        r.frees,
        r.slow,
        r.purged_bytes,
        r.closes,
        r.rss,
        s.current_era,
        s.active_epoch_count,
        s.closing_epoch_count,
        s.total_madvise_failures,
    )
}

/// The full-screen view for a terminal.
fn screen(prev: &Snapshot, s: &Snapshot, r: &Rates, interval: Duration) -> Result<String> {
    let g = &s.global;
    let mut out = Vec::new();
    writeln!(out, "tslab watch: pid {}, every {:.1}s (Ctrl-C to stop)\n", s.pid, interval.as_secs_f64())?;
    let rss_sign = if r.rss < 0.0 { "-" } else { "+" };
    writeln!(
        out,
        "memory   RSS {} ({rss_sign}{}/s), allocator resident {}, live {}, mapped {}",
        bytes(s.rss_bytes_current),
        bytes(r.rss.abs() as u64),
        bytes(g.resident_bytes),
        bytes(g.small_live_bytes + g.large_bytes),
        bytes(g.mapped_bytes)
    )?;
    let slow_share = if r.allocs > 0.0 { pct((r.slow / r.allocs).min(1.0)) } else { "n/a".into() };
    writeln!(
        out,
        "rates    {:.0} allocs/s, {:.0} frees/s, slow path {:.0}/s ({slow_share}), purged {}/s, {:.1} closes/s",
        r.allocs,
        r.frees,
        r.slow,
        bytes(r.purged_bytes as u64),
        r.closes
    )?;
    writeln!(
        out,
        "epochs   current {} (era {}), {} active, {} closing; madvise failures {}\n",
        s.current_epoch, s.current_era, s.active_epoch_count, s.closing_epoch_count, s.total_madvise_failures
    )?;
    writeln!(out, "busiest size classes (allocations per second):")?;
    let ranked = top::rank(Some(prev), s, Group::Classes, "allocations")?;
    top::write_table(&mut out, &ranked, Group::Classes, "allocations", 8, Some(interval))?;
    writeln!(out, "\nepochs holding memory:")?;
    let epochs: Vec<_> =
        top::rank(None, s, Group::Epochs, "live_bytes")?.into_iter().filter(|r| r.value > 0.0).collect();
    top::write_table(&mut out, &epochs, Group::Epochs, "live_bytes", 8, None)?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// `tslab watch`.
pub fn run(args: &WatchArgs) -> Result<()> {
    if args.interval < Duration::from_millis(100) {
        bail!("--interval {:?} is shorter than the target's publishing period: use 100ms or more", args.interval);
    }
    let redraw = !args.plain && std::io::stdout().is_terminal();
    let mut prev = crate::input::from_pid(args.pid)?;
    let mut shown = 0u64;
    let mut next = Instant::now() + args.interval;
    // The target publishes every 100 ms: this long without a new snapshot means it has stopped.
    let stale_after = (args.interval * 3).max(Duration::from_secs(1));
    let mut fresh_at = Instant::now();
    while args.count.is_none_or(|n| shown < n) {
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        next += args.interval;
        let snap = crate::input::from_pid(args.pid)?;
        // An unchanged snapshot gives no rate yet.
        let Some(r) = rates(&prev, &snap) else {
            if fresh_at.elapsed() >= stale_after {
                bail!("{}", crate::input::not_publishing(args.pid, fresh_at.elapsed()));
            }
            continue;
        };
        fresh_at = Instant::now();
        let mut out = std::io::stdout().lock();
        if redraw {
            write!(out, "\x1b[H\x1b[2J{}", screen(&prev, &snap, &r, args.interval)?)?;
        } else {
            writeln!(out, "{}", line(&snap, &r))?;
        }
        out.flush()?;
        prev = snap;
        shown += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> Snapshot {
        serde_json::from_str(include_str!("../../schemas/examples/demo-in-process.json")).unwrap()
    }

    #[test]
    fn rates_are_deltas_per_second() {
        let a = example();
        let mut b = a.clone();
        b.timestamp_ns += 500_000_000;
        b.classes[2].allocations += 100;
        b.classes[2].frees += 50;
        b.total_slow_path_hits += 10;
        b.total_madvise_bytes += 4096;
        b.rss_bytes_current = a.rss_bytes_current - 1000;
        let r = rates(&a, &b).unwrap();
        assert_eq!((r.allocs, r.frees, r.slow, r.purged_bytes, r.rss), (200.0, 100.0, 20.0, 8192.0, -2000.0));
        assert!(rates(&b, &a).is_none(), "an older snapshot gives no rate");
        assert!(rates(&a, &a).is_none(), "the same snapshot gives no rate");
        let l = line(&b, &r);
        assert!(l.contains("allocs_per_s=200 ") && l.contains("rss_bytes_per_s=-2000 "), "{l}");
        let view = screen(&a, &b, &r, Duration::from_millis(500)).unwrap();
        assert!(view.contains("200 allocs/s") && view.contains("busiest size classes"), "{view}");
    }
}
