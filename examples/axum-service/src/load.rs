//! A bounded loopback load generator: `connections` keep-alive connections, one thread each,
//! sending a fixed mix of requests for a fixed time, recording each request's latency.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::wire::Connection;

/// Requests per connection kept for latency (about 160 s at 25k requests/s per connection);
/// later ones are counted but not timed.
const MAX_SAMPLES: usize = 4 << 20;

/// What to run.
#[derive(Clone, Debug)]
pub struct Load {
    /// The service.
    pub addr: SocketAddr,
    /// Concurrent connections (threads).
    pub connections: usize,
    /// How long to send.
    pub duration: Duration,
}

/// What happened.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Responses with a 2xx status.
    pub ok: u64,
    /// Responses with another status, and failed connections or reads.
    pub errors: u64,
    /// Wall time from the first request to the last response.
    pub elapsed: Duration,
    /// Latency of every timed request, ns, sorted.
    pub latencies_ns: Vec<u64>,
}

impl Report {
    /// Successful requests per second.
    pub fn throughput(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The `q` quantile (0..1) of the latencies, ns (0 with none).
    pub fn quantile_ns(&self, q: f64) -> u64 {
        if self.latencies_ns.is_empty() {
            return 0;
        }
        let i = ((self.latencies_ns.len() - 1) as f64 * q).round() as usize;
        self.latencies_ns[i]
    }
}

/// The body of the `POST /echo` requests: a name of eight words and 64 numbers.
pub fn echo_body(seed: u64) -> Vec<u8> {
    let values: Vec<String> =
        (0..64u64).map(|i| ((seed.wrapping_mul(31).wrapping_add(i * 7919)) % 100_000).to_string()).collect();
    format!("{{\"name\":\"alpha beta gamma delta epsilon zeta eta theta {seed}\",\"values\":[{}]}}", values.join(","))
        .into_bytes()
}

/// One request of the mix, by its index on a connection: 7 in 10 `POST /echo`, then one each of
/// `GET /stream/8`, `PUT /cache/{key}` (512 B) and `GET /cache/{key}` over 256 keys.
fn send(conn: &mut Connection, i: u64, echo: &[u8], value: &[u8], path: &mut String) -> std::io::Result<u16> {
    use std::fmt::Write as _;
    match i % 10 {
        7 => conn.request("GET", "/stream/8", &[], false),
        8 | 9 => {
            path.clear();
            let _ = write!(path, "/cache/k{}", (i / 10) % 256);
            if i % 10 == 8 {
                conn.request("PUT", path, value, false)
            } else {
                conn.request("GET", path, &[], false)
            }
        }
        _ => conn.request("POST", "/echo", echo, true),
    }
}

/// Runs the load; fails only if no connection could be opened at all.
pub fn run(load: &Load) -> std::io::Result<Report> {
    let start = Instant::now();
    let deadline = start + load.duration;
    let workers: Vec<_> = (0..load.connections.max(1))
        .map(|c| {
            let addr = load.addr;
            std::thread::spawn(move || {
                let echo = echo_body(c as u64);
                let value = vec![b'v'; 512];
                let mut path = String::with_capacity(32);
                let mut latencies = Vec::with_capacity(1 << 16);
                let (mut ok, mut errors, mut opened) = (0u64, 0u64, false);
                let mut conn = None;
                let mut i = c as u64;
                while Instant::now() < deadline {
                    let c = match conn.as_mut() {
                        Some(c) => c,
                        None => match Connection::open(addr) {
                            Ok(c) => {
                                opened = true;
                                conn.insert(c)
                            }
                            Err(_) => {
                                errors += 1;
                                std::thread::sleep(Duration::from_millis(10));
                                continue;
                            }
                        },
                    };
                    let t = Instant::now();
                    match send(c, i, &echo, &value, &mut path) {
                        Ok(status) if (200..300).contains(&status) => {
                            ok += 1;
                            if latencies.len() < MAX_SAMPLES {
                                latencies.push(t.elapsed().as_nanos() as u64);
                            }
                        }
                        Ok(_) => errors += 1,
                        Err(_) => {
                            errors += 1;
                            conn = None;
                        }
                    }
                    i += 1;
                }
                (ok, errors, opened, latencies)
            })
        })
        .collect();
    let mut report = Report::default();
    let mut any_opened = false;
    for w in workers {
        let (ok, errors, opened, latencies) = w.join().unwrap_or_default();
        report.ok += ok;
        report.errors += errors;
        any_opened |= opened;
        report.latencies_ns.extend(latencies);
    }
    report.elapsed = start.elapsed();
    if !any_opened {
        return Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            format!("could not connect to {}: is the service running?", load.addr),
        ));
    }
    report.latencies_ns.sort_unstable();
    Ok(report)
}
