//! The example service end to end, as CI runs it: start it, drive it briefly with the load
//! generator, attach to it the way `stats_dump` does, and check that every route shows up under
//! its own label with its domains ended, and that the doctor names the leaking route.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum_service::load::{run, Load};
use axum_service::wire::Connection;

/// The service, killed when dropped.
struct Service {
    child: Child,
    addr: SocketAddr,
}

impl Service {
    fn start() -> Service {
        let mut child = Command::new(env!("CARGO_BIN_EXE_axum-service"))
            .args(["--listen", "127.0.0.1:0", "--workers", "2"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting axum-service");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let addr = line.trim().strip_prefix("listening on http://").unwrap_or_else(|| panic!("{line:?}"));
        Service { addr: addr.parse().unwrap(), child }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn routes_are_labelled_and_the_doctor_names_the_leaking_one() {
    let service = Service::start();
    let report = run(&Load { addr: service.addr, connections: 4, duration: Duration::from_secs(1) }).unwrap();
    assert!(report.ok > 100 && report.errors == 0, "{} ok, {} errors", report.ok, report.errors);
    let mut conn = Connection::open(service.addr).unwrap();
    for _ in 0..3 {
        assert_eq!(conn.request("POST", "/leak", &[], false).unwrap(), 202);
    }
    drop(conn);

    // Wait until the leak's epoch has ended (domains share 100 ms time buckets) and is held open
    // by the leaked domains only.
    let pid = service.child.id();
    let stuck_after = 0.3;
    let deadline = Instant::now() + Duration::from_secs(20);
    let (snapshot, findings) = loop {
        let s = temporal_slab::attach::snapshot_of(pid).expect("attaching to the service");
        let findings = tslab_tools::doctor::diagnose(&s, stuck_after);
        if findings.iter().any(|f| f.what.contains("held open")) || Instant::now() > deadline {
            break (s, findings);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let label = |name: &str| {
        snapshot
            .label_registry
            .iter()
            .find(|l| l.label == name)
            .unwrap_or_else(|| panic!("no label {name:?} in {:?}", snapshot.label_registry))
    };
    for route in ["/echo", "/stream/{n}", "/cache/{key}"] {
        let l = label(route);
        assert!(l.domains_opened > 10 && l.allocated_bytes > 0, "{route}: {l:?}");
        assert_eq!(l.open_domains, 0, "{route}: every request's domain ended: {l:?}");
    }
    assert_eq!(label("/leak").open_domains, 3, "the leaked domains stay open");
    let named = findings.iter().find(|f| f.what.contains("held open")).unwrap_or_else(|| panic!("{findings:#?}"));
    assert!(named.fix.contains("\"/leak\""), "the doctor does not name the route: {named:#?}");
    assert!(!named.fix.contains("\"/echo\""), "{named:#?}");
    let g = &snapshot.global;
    assert_eq!(
        [
            g.domain_misuse_out_of_order,
            g.domain_misuse_wrong_thread,
            g.domain_misuse_passed_era,
            g.domain_misuse_too_deep
        ],
        [0; 4]
    );
}
