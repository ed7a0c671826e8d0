//! `http_load`: the example axum service (`examples/axum-service`) under a loopback load, once per
//! allocator, interleaved, in one run: temporal-slab with the domain layer (inside the router, as
//! `Router::layer`, and outside it, labelling by path) and without it, glibc,
//! mimalloc, jemalloc and tcmalloc (glibc's `malloc` with Debian's `libtcmalloc-minimal4`
//! preloaded). Reports throughput, latency quantiles, peak RSS and RSS some seconds after the
//! burst, medians over the repetitions, with ratios against the best peer.
//!
//! ```text
//! http_load [--connections 16] [--seconds 5] [--idle 5] [--reps 3] [--workers 2]
//! http_load drive ADDR [--connections 16] [--seconds 5]    load a service already running
//! ```
//!
//! Each measurement is a fresh child process (this binary, `serve` mode, with the allocator
//! chosen by `BENCH_ALLOCATOR`, see `benches::selected`), warmed up for half a second, then
//! driven for `--seconds` by `--connections` keep-alive connections (one client thread each,
//! the request mix of `axum_service::load`); peak RSS is the child's `VmHWM` right after the
//! burst, idle RSS its `VmRSS` `--idle` seconds later. Client and server share the machine's
//! CPUs, the same way for every allocator.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use axum_service::app::Domains;
use axum_service::load::{run, Load, Report};
use benches::procfs::read_proc;
use benches::selected::{choice, SelectedAllocator, ENV};

#[global_allocator]
static GLOBAL: SelectedAllocator = SelectedAllocator;

/// The library the tcmalloc child preloads (Debian's `libtcmalloc-minimal4`).
const TCMALLOC_LIB: &str = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4";

/// One row: an allocator, with or without the domain layer.
#[derive(Clone, Copy, Debug)]
struct Config {
    name: &'static str,
    allocator: &'static str,
    preload: Option<&'static str>,
    domains: bool,
    /// The layer outside the router (labels from the path) rather than `Router::layer`.
    outer: bool,
}

const CONFIGS: [Config; 7] = [
    Config { name: "temporal-slab + layer", allocator: "temporal-slab", preload: None, domains: true, outer: false },
    Config {
        name: "temporal-slab + outer layer",
        allocator: "temporal-slab",
        preload: None,
        domains: true,
        outer: true,
    },
    Config { name: "temporal-slab", allocator: "temporal-slab", preload: None, domains: false, outer: false },
    Config { name: "glibc", allocator: "glibc", preload: None, domains: false, outer: false },
    Config { name: "mimalloc", allocator: "mimalloc", preload: None, domains: false, outer: false },
    Config { name: "jemalloc", allocator: "jemalloc", preload: None, domains: false, outer: false },
    Config { name: "tcmalloc", allocator: "glibc", preload: Some(TCMALLOC_LIB), domains: false, outer: false },
];

/// The options of the parent.
struct Options {
    connections: usize,
    seconds: f64,
    idle: f64,
    reps: usize,
    workers: usize,
    /// Only these rows (by name), when given.
    only: Option<Vec<String>>,
    /// Server on CPU 0, load generator on CPU 1.
    pin: bool,
}

fn usage() -> ! {
    eprintln!(
        "usage: http_load [--connections N (16)] [--seconds S (5)] [--idle S (5)] [--reps N (3)] [--workers N (2)]
                 [--only NAME,NAME]   (rows: temporal-slab + layer, temporal-slab + outer layer, temporal-slab,
                                       glibc, mimalloc, jemalloc, tcmalloc)
                 [--pin]              server on CPU 0, load generator on CPU 1 (steadier figures)
       http_load drive ADDR [--connections N (16)] [--seconds S (5)]
Runs the example axum service under each allocator in turn and prints a markdown table; `drive`
loads an axum-service already listening on ADDR (host:port) and prints what it saw."
    );
    std::process::exit(2)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("serve") {
        serve(&args[1..]);
        return;
    }
    let drive = args.first().map(String::as_str) == Some("drive");
    let addr: Option<SocketAddr> =
        if drive { Some(args.get(1).and_then(|a| a.parse().ok()).unwrap_or_else(|| usage())) } else { None };
    let mut o = Options { connections: 16, seconds: 5.0, idle: 5.0, reps: 3, workers: 2, only: None, pin: false };
    let mut it = args.iter().skip(if drive { 2 } else { 0 });
    while let Some(flag) = it.next() {
        if flag == "--pin" {
            o.pin = true;
            continue;
        }
        if flag == "--only" {
            let names = it.next().unwrap_or_else(|| usage());
            o.only = Some(names.split(',').map(|n| n.trim().to_string()).collect());
            continue;
        }
        let mut value =
            || it.next().and_then(|v| v.parse::<f64>().ok()).filter(|v| *v > 0.0).unwrap_or_else(|| usage());
        match flag.as_str() {
            "--connections" => o.connections = value() as usize,
            "--seconds" => o.seconds = value(),
            "--idle" => o.idle = value(),
            "--reps" => o.reps = value() as usize,
            "--workers" => o.workers = value() as usize,
            _ => usage(),
        }
    }
    if let Some(addr) = addr {
        let load = Load { addr, connections: o.connections, duration: Duration::from_secs_f64(o.seconds) };
        match run(&load) {
            Ok(r) => println!(
                "{} ok, {} errors, {:.0} req/s, p50 {:.0} us, p99 {:.0} us, p99.9 {:.0} us",
                r.ok,
                r.errors,
                r.throughput(),
                r.quantile_ns(0.5) as f64 / 1e3,
                r.quantile_ns(0.99) as f64 / 1e3,
                r.quantile_ns(0.999) as f64 / 1e3
            ),
            Err(e) => {
                eprintln!("http_load: {e}");
                std::process::exit(1);
            }
        }
        return;
    }
    if let Err(e) = measure_all(&o) {
        eprintln!("http_load: {e}");
        std::process::exit(1);
    }
}

/// Child mode: `serve --domains|--no-domains --workers N --expect ALLOCATOR`.
fn serve(args: &[String]) {
    let domains = args.iter().any(|a| a == "--domains");
    let flag = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1));
    let workers = flag("--workers").and_then(|w| w.parse().ok()).unwrap_or(2);
    if let Some(cpu) = flag("--cpu").and_then(|c| c.parse().ok()) {
        // Before the runtime starts: its threads inherit the mask.
        if let Err(e) = pin_to(cpu) {
            eprintln!("http_load serve: {e}");
            std::process::exit(1);
        }
    }
    if let Some(expected) = flag("--expect") {
        assert_eq!(choice().name(), expected.as_str(), "{ENV} does not select the allocator asked for");
    }
    if let Some(lib) = flag("--preloaded") {
        let maps = read_proc("/proc/self/maps").unwrap_or_default();
        let name = Path::new(lib).file_name().and_then(|n| n.to_str()).unwrap_or(lib);
        assert!(maps.contains(name), "{lib} is not loaded: LD_PRELOAD did not take");
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(workers).enable_all().build().unwrap();
    let listen: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let outer = args.iter().any(|a| a == "--outer");
    let domains = match (domains, outer) {
        (true, true) => Domains::Outer,
        (true, false) => Domains::On,
        _ => Domains::Off,
    };
    if let Err(e) = rt.block_on(axum_service::serve(listen, domains)) {
        eprintln!("http_load serve: {e:#}");
        std::process::exit(1);
    }
}

/// Restricts this thread (and the threads it starts later) to CPU `cpu`.
fn pin_to(cpu: usize) -> Result<(), String> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET writes inside it (cpu is checked
    // against its capacity); sched_setaffinity reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if cpu >= 8 * std::mem::size_of::<libc::cpu_set_t>() {
            return Err(format!("no CPU {cpu}"));
        }
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(format!("cannot pin to CPU {cpu}: {}", std::io::Error::last_os_error()));
        }
    }
    Ok(())
}

/// One measurement.
#[derive(Clone, Debug)]
struct Sample {
    throughput: f64,
    p50_us: f64,
    p99_us: f64,
    p999_us: f64,
    peak_mib: f64,
    idle_mib: f64,
    /// The server's CPU time (user + system) per successful request, us.
    cpu_us: f64,
    errors: u64,
}

struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(c: &Config, workers: usize, pin: bool) -> Result<Server, String> {
    let exe = std::env::current_exe().map_err(|e| format!("finding this binary: {e}"))?;
    let mut cmd = Command::new(exe);
    cmd.args(["serve", if c.domains { "--domains" } else { "--no-domains" }, "--workers", &workers.to_string()])
        .args(if c.outer { &["--outer"][..] } else { &[][..] })
        .args(["--expect", c.allocator])
        .args(if pin { &["--cpu", "0"][..] } else { &[][..] })
        .env(ENV, c.allocator)
        .stdout(Stdio::piped());
    if let Some(lib) = c.preload {
        cmd.env("LD_PRELOAD", lib).args(["--preloaded", lib]);
    }
    let mut child = cmd.spawn().map_err(|e| format!("starting the {} server: {e}", c.name))?;
    let mut line = String::new();
    let stdout = child.stdout.take().ok_or("no stdout")?;
    BufReader::new(stdout).read_line(&mut line).map_err(|e| format!("reading the server's address: {e}"))?;
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| format!("the {} server did not start: {line:?}", c.name))?;
    Ok(Server { child, addr })
}

fn status_kib(pid: u32, field: &str) -> Result<f64, String> {
    let status = read_proc(&format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.trim().strip_suffix("kB")?.trim().parse::<f64>().ok())
        .ok_or_else(|| format!("no {field} in /proc/{pid}/status"))
}

/// User + system CPU seconds of process `pid` so far (`/proc/PID/stat`, fields 14 and 15).
fn cpu_seconds(pid: u32) -> Result<f64, String> {
    let stat = read_proc(&format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).ok_or("bad /proc/PID/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).ok_or("bad /proc/PID/stat");
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    // Fields 14 and 15 are the 12th and 13th after the command name.
    Ok((ticks(11)? + ticks(12)?) / hz)
}

fn measure(c: &Config, o: &Options) -> Result<Sample, String> {
    let server = start(c, o.workers, o.pin)?;
    let load = |secs: f64| -> Result<Report, String> {
        run(&Load { addr: server.addr, connections: o.connections, duration: Duration::from_secs_f64(secs) })
            .map_err(|e| e.to_string())
    };
    load(0.5)?;
    let pid = server.child.id();
    let cpu0 = cpu_seconds(pid)?;
    let r = load(o.seconds)?;
    let cpu = cpu_seconds(pid)? - cpu0;
    let peak = status_kib(pid, "VmHWM:")?;
    std::thread::sleep(Duration::from_secs_f64(o.idle));
    let idle = status_kib(pid, "VmRSS:")?;
    let us = |q: f64| r.quantile_ns(q) as f64 / 1e3;
    Ok(Sample {
        throughput: r.throughput(),
        p50_us: us(0.5),
        p99_us: us(0.99),
        p999_us: us(0.999),
        peak_mib: peak / 1024.0,
        idle_mib: idle / 1024.0,
        cpu_us: cpu * 1e6 / r.ok.max(1) as f64,
        errors: r.errors,
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn measure_all(o: &Options) -> Result<(), String> {
    if o.pin {
        // The load generator's threads (started later, from this thread) on CPU 1.
        pin_to(1)?;
    }
    let configs: Vec<Config> = CONFIGS
        .iter()
        .copied()
        .filter(|c| o.only.as_ref().is_none_or(|only| only.iter().any(|n| n == c.name)))
        .filter(|c| match c.preload {
            Some(lib) if !Path::new(lib).exists() => {
                eprintln!("http_load: {} skipped: {lib} not found (apt-get install libtcmalloc-minimal4)", c.name);
                false
            }
            _ => true,
        })
        .collect();
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); configs.len()];
    for rep in 0..o.reps {
        // Interleaved, starting one further along each repetition.
        for k in 0..configs.len() {
            let i = (k + rep) % configs.len();
            let s = measure(&configs[i], o)?;
            eprintln!(
                "rep {} {:<22} {:>9.0} req/s  p99 {:>7.0} us  cpu {:>5.1} us/req  peak {:>6.1} MiB  idle {:>6.1} MiB  errors {}",
                rep + 1,
                configs[i].name,
                s.throughput,
                s.p99_us,
                s.cpu_us,
                s.peak_mib,
                s.idle_mib,
                s.errors
            );
            samples[i].push(s);
        }
    }
    let med = |i: usize, f: fn(&Sample) -> f64| median(samples[i].iter().map(f).collect());
    let peers: Vec<usize> = (0..configs.len()).filter(|&i| !configs[i].name.starts_with("temporal-slab")).collect();
    // The best peer's median of each figure (None without peers: ratios are then not printed).
    let best = |f: fn(&Sample) -> f64, higher: bool| {
        let vals = peers.iter().map(|&i| med(i, f));
        let b = if higher { vals.fold(f64::MIN, f64::max) } else { vals.fold(f64::MAX, f64::min) };
        (!peers.is_empty()).then_some(b)
    };
    let ratio = |v: f64, best: Option<f64>| best.map_or_else(|| "-".to_string(), |b| format!("{:.3}", v / b));
    let (best_tp, best_p99, best_idle) =
        (best(|s| s.throughput, true), best(|s| s.p99_us, false), best(|s| s.idle_mib, false));
    let best_cpu = best(|s| s.cpu_us, false);
    println!(
        "http_load: {} connections, {} s bursts, RSS {} s after, {} worker threads{}, median of {} (the machine: {})\n",
        o.connections,
        o.seconds,
        o.idle,
        o.workers,
        if o.pin { ", server on CPU 0 and load on CPU 1" } else { "" },
        o.reps,
        benches::procfs::cpu_model().unwrap_or_else(|| "unknown CPU".into())
    );
    println!("| allocator | req/s | vs best peer | server CPU us/req | vs best | p50 us | p99 us | p99 vs best | p99.9 us | peak RSS MiB | RSS after idle MiB | idle vs best | errors |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (i, c) in configs.iter().enumerate() {
        let errors: u64 = samples[i].iter().map(|s| s.errors).sum();
        println!(
            "| {} | {:.0} | {} | {:.1} | {} | {:.0} | {:.0} | {} | {:.0} | {:.1} | {:.1} | {} | {errors} |",
            c.name,
            med(i, |s| s.throughput),
            ratio(med(i, |s| s.throughput), best_tp),
            med(i, |s| s.cpu_us),
            ratio(med(i, |s| s.cpu_us), best_cpu),
            med(i, |s| s.p50_us),
            med(i, |s| s.p99_us),
            ratio(med(i, |s| s.p99_us), best_p99),
            med(i, |s| s.p999_us),
            med(i, |s| s.peak_mib),
            med(i, |s| s.idle_mib),
            ratio(med(i, |s| s.idle_mib), best_idle),
        );
    }
    if let Some(without) = configs.iter().position(|c| c.name == "temporal-slab") {
        for name in ["temporal-slab + layer", "temporal-slab + outer layer"] {
            if let Some(with) = configs.iter().position(|c| c.name == name) {
                println!(
                    "\n{name} / temporal-slab: throughput {:.3}, server CPU per request {:.3} (medians)",
                    med(with, |s| s.throughput) / med(without, |s| s.throughput),
                    med(with, |s| s.cpu_us) / med(without, |s| s.cpu_us)
                );
            }
        }
    }
    Ok(())
}
