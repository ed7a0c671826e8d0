//! `tslab serve`: Prometheus `/metrics` over HTTP for one process, a fresh snapshot per scrape.
//!
//! The HTTP side is `http.rs`: a bounded pool of workers, request heads capped in size and time,
//! one answer per connection, so no client can stall another's scrape or grow the exporter's
//! threads or memory. Besides the allocator's families it exports its own health, the
//! convention of Prometheus exporters: `temporal_slab_exporter_up` is 0 when the target could not
//! be read (the message goes to stderr and the family's HELP), and
//! `temporal_slab_exporter_scrape_errors_total` counts such failures, so an alert can tell a
//! dead target from a quiet one.

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};

use crate::http::{Limits, Request, Response};

/// The exporter's HTTP bounds: 8 workers (a scrape takes milliseconds), 128 waiting connections,
/// 8 KiB request heads, 3 s to send a request or take an answer.
const LIMITS: Limits = Limits { workers: 8, queue: 128, max_head_bytes: 8 * 1024, timeout: Duration::from_secs(3) };

/// Options of `tslab serve`.
#[derive(clap::Args, Debug)]
#[command(after_help = "EXAMPLES:
    tslab serve --pid 1234                          http://127.0.0.1:9877/metrics
    tslab serve --pid 1234 --listen 0.0.0.0:9877    all interfaces (mind who can reach it)
    curl -s 127.0.0.1:9877/metrics | grep temporal_slab_rss

PROMETHEUS:
    scrape_configs:
      - job_name: temporal-slab
        static_configs: [{ targets: ['127.0.0.1:9877'] }]")]
pub struct ServeArgs {
    /// Process to export (it must use temporal-slab; same user or root).
    #[arg(long, value_name = "PID")]
    pub pid: u32,
    /// Address to listen on (IP:PORT or HOST:PORT): loopback unless you name another.
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:9877", value_parser = parse_listen)]
    pub listen: SocketAddr,
}

/// `IP:PORT` or `HOST:PORT` (the first address the name resolves to).
fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    let mut addrs = text.to_socket_addrs().map_err(|e| {
        format!("{text:?} is not an address to listen on ({e}): use IP:PORT or HOST:PORT, e.g. 127.0.0.1:9877")
    })?;
    addrs.next().ok_or_else(|| format!("{text:?} resolves to no address: use IP:PORT, e.g. 127.0.0.1:9877"))
}

/// Exporter health families, appended to every scrape.
fn exporter_families(up: bool, errors: u64, seconds: f64) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# HELP temporal_slab_exporter_up Whether the last scrape read the target's snapshot (1) or not (0)."
    );
    let _ = writeln!(s, "# TYPE temporal_slab_exporter_up gauge");
    let _ = writeln!(s, "temporal_slab_exporter_up {}", u8::from(up));
    let _ = writeln!(
        s,
        "# HELP temporal_slab_exporter_scrape_errors_total Scrapes that could not read the target's snapshot."
    );
    let _ = writeln!(s, "# TYPE temporal_slab_exporter_scrape_errors_total counter");
    let _ = writeln!(s, "temporal_slab_exporter_scrape_errors_total {errors}");
    let _ = writeln!(
        s,
        "# HELP temporal_slab_exporter_scrape_duration_seconds Time taken to read and render the snapshot."
    );
    let _ = writeln!(s, "# TYPE temporal_slab_exporter_scrape_duration_seconds gauge");
    let _ = writeln!(s, "temporal_slab_exporter_scrape_duration_seconds {seconds:.6}");
    s
}

/// `tslab serve`: runs until killed.
pub fn run(args: &ServeArgs) -> Result<()> {
    let listener = TcpListener::bind(args.listen).map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::AddrInUse {
            "pick a free port with --listen"
        } else {
            "check the address and your permission to bind it"
        };
        anyhow!("cannot listen on {}: {e}: {hint}", args.listen)
    })?;
    // Fail at start rather than at the first scrape when the target cannot be read at all.
    crate::input::from_pid(args.pid)?;
    eprintln!("tslab serve: exporting pid {} on http://{}/metrics", args.pid, args.listen);
    let pid = args.pid;
    let errors = AtomicU64::new(0);
    crate::http::serve(listener, LIMITS, move |req: &Request| match (req.method.as_str(), req.path.as_str()) {
        ("GET" | "HEAD", "/metrics") => {
            let start = Instant::now();
            let body = match crate::input::from_pid(pid) {
                Ok(snap) => {
                    let mut body = crate::prom::render(&snap);
                    let n = errors.load(Ordering::Relaxed);
                    body.push_str(&exporter_families(true, n, start.elapsed().as_secs_f64()));
                    body
                }
                Err(e) => {
                    let n = errors.fetch_add(1, Ordering::Relaxed) + 1;
                    eprintln!("tslab serve: scrape failed: {e:#}");
                    exporter_families(false, n, start.elapsed().as_secs_f64())
                }
            };
            Response { status: 200, content_type: "text/plain; version=0.0.4; charset=utf-8", body }
        }
        ("GET" | "HEAD", "/") => {
            Response::text(200, format!("tslab serve: temporal-slab metrics of pid {pid} at /metrics\n"))
        }
        ("GET" | "HEAD", _) => Response::text(404, "not found: the metrics are at /metrics\n"),
        _ => Response::text(405, "method not allowed: use GET\n"),
    })
    .map_err(|e| anyhow!("serving on {}: {e}", args.listen))
}
