//! The layer outside the router (`Domains::Outer`, labels from the path) attributes like the
//! layer inside it: the service runs in this test process, with temporal-slab as its global
//! allocator, and this process's own snapshot shows every route's label with its domains ended.

use std::net::SocketAddr;
use std::time::Duration;

use axum_service::app::Domains;
use axum_service::load::{run, Load};

#[global_allocator]
static GLOBAL: temporal_slab::TemporalSlab = temporal_slab::TemporalSlab::new();

#[test]
fn the_outer_layer_labels_every_route() {
    // A free port: bind, read it, let it go, serve on it.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let _ = rt.block_on(axum_service::serve(addr, Domains::Outer));
    });
    // Wait until it listens.
    let ready = (0..100).any(|_| {
        let up = axum_service::wire::Connection::open(addr).is_ok();
        if !up {
            std::thread::sleep(Duration::from_millis(20));
        }
        up
    });
    assert!(ready, "the service never listened on {addr}");
    let report = run(&Load { addr, connections: 4, duration: Duration::from_millis(700) }).unwrap();
    assert!(report.ok > 100 && report.errors == 0, "{} ok, {} errors", report.ok, report.errors);
    std::thread::sleep(Duration::from_millis(200));
    let s = temporal_slab::snapshot();
    for route in ["/echo", "/stream/{n}", "/cache/{key}"] {
        let l = s.label_registry.iter().find(|l| l.label == route).unwrap_or_else(|| panic!("no {route}"));
        assert!(l.domains_opened > 10 && l.allocated_bytes > 0, "{route}: {l:?}");
        assert_eq!(l.open_domains, 0, "{route}: {l:?}");
    }
    let g = &s.global;
    assert_eq!([g.domain_misuse_out_of_order, g.domain_misuse_wrong_thread, g.domain_misuse_passed_era], [0; 3]);
}
