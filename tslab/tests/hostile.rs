//! Hostile and careless clients and inputs: the tools must survive what they read and whom they
//! serve. Each case is one a user hit: a pipelining client that never reads, huge and slow
//! requests, endless input, a closed stdout, a small `ulimit -f`, a stopped target.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{tslab, Target};

fn example() -> String {
    format!("{}/../schemas/examples/demo-in-process.json", env!("CARGO_MANIFEST_DIR"))
}

/// `tslab serve` for `pid` on a free port, killed when dropped.
struct Server {
    child: Child,
    addr: String,
}

impl Server {
    fn start(pid: u32) -> Server {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let addr = format!("127.0.0.1:{port}");
        let child = tslab()
            .args(["serve", "--pid", &pid.to_string(), "--listen", &addr])
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut s = Server { child, addr };
        let start = Instant::now();
        while TcpStream::connect(&s.addr).is_err() {
            assert!(start.elapsed() < Duration::from_secs(20), "serve did not listen");
            assert!(s.child.try_wait().unwrap().is_none(), "serve exited early");
            std::thread::sleep(Duration::from_millis(50));
        }
        s
    }

    fn status_field(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with(field)).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A scrape: status line and how long it took.
fn scrape(addr: &str) -> (String, Duration) {
    let t = Instant::now();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(s, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    (resp.lines().next().unwrap_or_default().to_string(), t.elapsed())
}

#[test]
fn a_pipelining_client_that_never_reads_delays_no_one_else() {
    let t = Target::start(&[]);
    let server = Server::start(t.pid);
    let mut hog = TcpStream::connect(&server.addr).unwrap();
    for _ in 0..50 {
        // The server answers one request per connection and closes it: later writes may meet
        // a closed socket (EPIPE / reset) depending on timing, which is fine for this client.
        if hog.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").is_err() {
            break;
        }
    }
    std::thread::sleep(Duration::from_millis(200));
    let (status, took) = scrape(&server.addr);
    assert!(status.contains("200"), "{status}");
    // It used to wait 5-10 s for the hog; a scrape takes milliseconds (generous for CI).
    assert!(took < Duration::from_secs(2), "a scrape beside a non-reading client took {took:?}");
    drop(hog);
}

#[test]
fn huge_and_slow_requests_keep_memory_and_threads_bounded() {
    let t = Target::start(&[]);
    let server = Server::start(t.pid);
    // Four clients each send 32 MiB of a request line that never ends.
    let chunk = vec![b'a'; 1 << 20];
    let huge: Vec<_> = (0..4)
        .map(|_| {
            let addr = server.addr.clone();
            let chunk = chunk.clone();
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(addr).unwrap();
                s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
                let _ = s.write_all(b"GET /");
                let mut sent = 0;
                for _ in 0..32 {
                    match s.write_all(&chunk) {
                        Ok(()) => sent += 1,
                        Err(_) => break, // the server answered 431 and closed: expected
                    }
                }
                sent
            })
        })
        .collect();
    for h in huge {
        assert!(h.join().unwrap() < 32, "the server read a 32 MiB request head to the end");
    }
    // 300 connections that send nothing.
    let idle: Vec<_> = (0..300).filter_map(|_| TcpStream::connect(&server.addr).ok()).collect();
    std::thread::sleep(Duration::from_millis(300));
    let threads = server.status_field("Threads:");
    let peak_kib = server.status_field("VmHWM:");
    assert!(threads <= 16, "serve runs {threads} threads with 300 idle connections");
    assert!(peak_kib < 64 * 1024, "serve peaked at {peak_kib} KiB after four 32 MiB requests");
    drop(idle);
    // Once they are gone, scrapes are answered again.
    std::thread::sleep(Duration::from_millis(200));
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, _) = scrape(&server.addr);
        if status.contains("200") {
            break;
        }
        assert!(Instant::now() < deadline, "no scrape answered after the idle clients left: {status}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn endless_standard_input_is_refused_at_the_cap() {
    let out = tslab()
        .args(["stats", "-", "--max-input-mib", "8"])
        .stdin(std::fs::File::open("/dev/zero").unwrap())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("more than 8 MiB"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}

#[test]
fn a_closed_stdout_is_not_an_error() {
    for args in [vec!["stats", "--json"], vec!["stats"], vec!["export", "prometheus"]] {
        let mut child =
            tslab().args(&args).arg(example()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        // Hang up before it writes (as `| head` does once it has enough): every write fails with
        // EPIPE, whatever the pipe buffer's size.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "tslab {args:?} | head: {:?} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn a_small_file_size_limit_kills_nothing_and_leaves_no_temp_file() {
    let dir = std::env::temp_dir().join(format!("tslab-fsize-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let prom = dir.join("x.prom");
    let bin = env!("CARGO_BIN_EXE_tslab");
    // 4 blocks of 512 B: below the allocator's statistics region and below the textfile.
    let script = format!(
        "ulimit -f 4; {bin} workload --seconds 300ms --threads 1 >/dev/null; echo workload=$?; \
         {bin} export prometheus {} --textfile {}; echo export=$?",
        example(),
        prom.display()
    );
    let out = Command::new("sh").args(["-c", &script]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("workload=0"), "the program died under ulimit -f 4: {text} {err}");
    assert!(text.contains("export=2"), "{text} {err}");
    assert!(err.contains("ulimit -f"), "{err}");
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.is_empty(), "files left behind: {left:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn watch_and_top_on_a_stopped_target_say_so_and_end() {
    let t = Target::start(&[]);
    let pid = t.pid.to_string();
    assert!(Command::new("kill").args(["-STOP", &pid]).status().unwrap().success());
    let start = Instant::now();
    let out =
        tslab().args(["watch", "--pid", &pid, "--count", "2", "--plain", "--interval", "200ms"]).output().unwrap();
    let top = tslab().args(["top", "--pid", &pid, "--window", "300ms"]).output().unwrap();
    let _ = Command::new("kill").args(["-CONT", &pid]).status();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("is stopped"), "{err}");
    let top_err = String::from_utf8_lossy(&top.stderr);
    assert_eq!(top.status.code(), Some(2), "{top_err}");
    assert!(top_err.contains("is stopped") && !top_err.contains("longer"), "{top_err}");
    assert!(start.elapsed() < Duration::from_secs(20), "watch took {:?}", start.elapsed());
    assert!(Path::new(&format!("/proc/{pid}")).exists());
}

#[test]
fn seconds_options_refuse_nan_and_negative() {
    for bad in ["NaN", "-5", "inf"] {
        let out = tslab().args(["doctor", &example(), "--stuck-after", bad]).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "--stuck-after {bad} accepted");
    }
}

#[test]
fn listen_takes_a_host_name() {
    let t = Target::start(&[]);
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = tslab()
        .args(["serve", "--pid", &t.pid.to_string(), "--listen", &format!("localhost:{port}")])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() && TcpStream::connect(("::1", port)).is_err() {
        assert!(start.elapsed() < Duration::from_secs(20), "serve --listen localhost:{port} did not listen");
        assert!(child.try_wait().unwrap().is_none(), "serve --listen localhost:{port} exited");
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn forged_counters_in_a_file_are_rejected() {
    let text = std::fs::read_to_string(example()).unwrap();
    let mut doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    doc["classes"][3]["net_slabs"] = serde_json::json!(u64::MAX - 1);
    let path = std::env::temp_dir().join(format!("tslab-forged-{}.json", std::process::id()));
    std::fs::write(&path, serde_json::to_vec(&doc).unwrap()).unwrap();
    let out = tslab().args(["stats"]).arg(&path).output().unwrap();
    let _ = std::fs::remove_file(&path);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("net_slabs") && err.contains("forged or corrupted"), "{err}");
}
