//! An example axum service that runs each request in a temporal-slab domain labelled by its
//! route (`app`), and a loopback HTTP/1.1 load generator to drive it (`load`), shared by the
//! smoke test and the `http_load` benchmark.

pub mod app;
pub mod load;
pub mod wire;

use std::net::SocketAddr;

use anyhow::Context as _;

/// Serves the app on `listen` (with or without domains) until Ctrl-C or SIGTERM; prints
/// `listening on http://ADDR` on stdout once bound.
pub async fn serve(listen: SocketAddr, domains: app::Domains) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}: is the port in use? pick another with --listen"))?;
    let addr = listener.local_addr()?;
    println!("listening on http://{addr}");
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    // Nagle off: a streamed response is several small writes, which would otherwise wait for the
    // client's delayed ACK (40 ms) between chunks.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    if domains == app::Domains::Outer {
        use axum::body::Body;
        use tower_layer::Layer as _;
        let layered = temporal_slab_tower::DomainLayer::new(classify_route).layer(app::router(domains));
        // axum::serve wants its own body type back.
        let svc = tower::ServiceExt::map_response(
            layered,
            |r: axum::http::Response<temporal_slab_tower::DomainBody<Body>>| r.map(Body::new),
        );
        let make = axum::ServiceExt::<axum::extract::Request>::into_make_service(svc);
        return axum::serve(listener, make).with_graceful_shutdown(shutdown()).await.context("serving");
    }
    axum::serve(listener, app::router(domains)).with_graceful_shutdown(shutdown()).await.context("serving")
}

/// [`app::classify`] as the layer's route function.
fn classify_route(req: &axum::extract::Request) -> Option<&str> {
    app::classify(req)
}

/// Ctrl-C or SIGTERM.
async fn shutdown() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}
