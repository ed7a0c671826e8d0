//! `axum-service`: the example service with temporal-slab as its global allocator and a domain
//! per request, labelled by route. Attach to it with `stats_dump --pid PID --doctor` or
//! `tslab top --pid PID --labels`.

use std::net::SocketAddr;

use anyhow::Context;
use axum_service::app::Domains;
use clap::Parser;

#[global_allocator]
static GLOBAL: temporal_slab::TemporalSlab = temporal_slab::TemporalSlab::new();

/// An example axum service whose requests run in temporal-slab domains labelled by route.
///
/// Routes: POST /echo (JSON in and out), GET /stream/{n} (n chunks, streamed), PUT and GET
/// /cache/{key} (a cache that outlives requests), POST /leak (keeps its request's domain on
/// purpose: `stats_dump --doctor` names it), GET /health.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Address to listen on; port 0 picks a free port. The bound address is printed on stdout
    /// as `listening on http://ADDR`.
    #[arg(long, default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    /// Serve without the domain layer (for comparison).
    #[arg(long)]
    no_domains: bool,
    /// Tokio worker threads (default: one per CPU).
    #[arg(long)]
    workers: Option<usize>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = args.workers {
        rt.worker_threads(n.max(1));
    }
    let rt = rt.enable_all().build().context("starting the tokio runtime")?;
    let domains = if args.no_domains { Domains::Off } else { Domains::WithHandlerAccess };
    rt.block_on(axum_service::serve(args.listen, domains))
}
