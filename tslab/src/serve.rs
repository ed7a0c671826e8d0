//! `tslab serve`: Prometheus `/metrics` over HTTP for one process, a fresh snapshot per scrape.
//!
//! The HTTP side is `tiny_http` (a small, synchronous server; one request at a time is plenty
//! for a scrape endpoint). Besides the allocator's families it exports its own health, the
//! convention of Prometheus exporters: `temporal_slab_exporter_up` is 0 when the target could not
//! be read (the message goes to stderr and the family's HELP), and
//! `temporal_slab_exporter_scrape_errors_total` counts such failures, so an alert can tell a
//! dead target from a quiet one.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Instant;

use anyhow::{anyhow, Result};

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
    /// Address to listen on: loopback unless you name another.
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:9877")]
    pub listen: SocketAddr,
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
    let server = tiny_http::Server::http(args.listen).map_err(|e| {
        let hint = if e.to_string().to_lowercase().contains("in use") {
            "pick a free port with --listen"
        } else {
            "check the address and your permission to bind it"
        };
        anyhow!("cannot listen on {}: {e}: {hint}", args.listen)
    })?;
    // Fail at start rather than at the first scrape when the target cannot be read at all.
    crate::input::from_pid(args.pid)?;
    eprintln!("tslab serve: exporting pid {} on http://{}/metrics", args.pid, args.listen);
    let mut errors = 0u64;
    let text_plain = tiny_http::Header::from_bytes("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        .map_err(|()| anyhow!("building the Content-Type header"))?;
    for request in server.incoming_requests() {
        let path = request.url().split('?').next().unwrap_or("").to_string();
        let response = match (request.method(), path.as_str()) {
            (tiny_http::Method::Get | tiny_http::Method::Head, "/metrics") => {
                let start = Instant::now();
                let body = match crate::input::from_pid(args.pid) {
                    Ok(snap) => {
                        let mut body = crate::prom::render(&snap);
                        body.push_str(&exporter_families(true, errors, start.elapsed().as_secs_f64()));
                        body
                    }
                    Err(e) => {
                        errors += 1;
                        eprintln!("tslab serve: scrape failed: {e:#}");
                        exporter_families(false, errors, start.elapsed().as_secs_f64())
                    }
                };
                tiny_http::Response::from_string(body).with_header(text_plain.clone())
            }
            (tiny_http::Method::Get, "/") => tiny_http::Response::from_string(format!(
                "tslab serve: temporal-slab metrics of pid {} at /metrics\n",
                args.pid
            )),
            (tiny_http::Method::Get | tiny_http::Method::Head, _) => {
                tiny_http::Response::from_string("not found: the metrics are at /metrics\n").with_status_code(404)
            }
            _ => tiny_http::Response::from_string("method not allowed: use GET\n").with_status_code(405),
        };
        // A client that hung up mid-response is its problem, not the server's.
        let _ = request.respond(response);
    }
    Ok(())
}
