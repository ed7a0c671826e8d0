//! The idle trim: the free pages inside the slabs of a thread that waits go back to the OS
//! while the thread holds survivors in them, and trims racing with busy threads lose nothing.
//! Tests take turns (they read process RSS).

#![allow(clippy::vec_box)] // each object must be its own allocation

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use temporal_slab::{snapshot, TemporalSlab};

mod common;
use common::{rss, turn};

#[global_allocator]
static GLOBAL: TemporalSlab = TemporalSlab::new();

/// Whether the kernel offers `membarrier` private expedited (without it nothing is trimmed).
fn barrier_available() -> bool {
    // SAFETY: MEMBARRIER_CMD_QUERY (0) takes no pointer and only reports the commands.
    let cmds = unsafe { libc::syscall(libc::SYS_membarrier, 0 as libc::c_long, 0 as libc::c_long) };
    cmds > 0 && cmds & (1 << 3) != 0
}

const MIB: u64 = 1 << 20;

/// An object whose bytes say where it is and which round made it.
type Obj = Box<[u64; 6]>;

fn make(tag: u64) -> Obj {
    let mut b = Box::new([0u64; 6]);
    let at = &*b as *const _ as u64;
    for (i, w) in b.iter_mut().enumerate() {
        *w = at ^ tag ^ i as u64;
    }
    b
}

fn check(b: &Obj, tag: u64) {
    let at = &**b as *const _ as u64;
    for (i, &w) in b.iter().enumerate() {
        assert_eq!(w, at ^ tag ^ i as u64, "object {at:#x} lost its contents (word {i})");
    }
}

/// A thread allocates 24 MiB of 48-byte objects, keeps one in 200 (about one a page), frees the
/// rest and waits. Its slabs cannot empty, so before the idle trim their pages stayed resident;
/// now the reclaimer purges the free pages around the survivors within about 1 s of the last
/// slow path, the survivors keep their bytes, and the thread allocates there again afterwards.
#[test]
fn a_waiting_thread_gives_back_the_pages_around_its_survivors() {
    let _t = turn();
    if !barrier_available() {
        eprintln!("skipped: the kernel offers no membarrier private expedited");
        return;
    }
    // SAFETY: sysconf has no preconditions.
    if unsafe { libc::sysconf(libc::_SC_PAGESIZE) } != 4096 {
        // With pages as large as a slab, a page of a slab in use always holds a survivor.
        eprintln!("skipped: the pages are not 4 KiB");
        return;
    }
    // What earlier tests left in the reserve goes first, so that only the trim moves RSS below.
    temporal_slab::trim();
    let (ready_tx, ready_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (done_tx, done_rx) = mpsc::channel();
    let worker = thread::spawn(move || {
        let n = (24 * MIB / 48) as usize;
        let all: Vec<Obj> = (0..n).map(|_| make(1)).collect();
        let mut kept = Vec::with_capacity(n / 200 + 1);
        for (i, b) in all.into_iter().enumerate() {
            if i.is_multiple_of(200) {
                kept.push(b);
            }
        }
        ready_tx.send(kept.len()).unwrap();
        // Waits without allocating, as an idle worker does.
        go_rx.recv().unwrap();
        for b in &kept {
            check(b, 1);
        }
        // The purged pages serve new objects again.
        let again: Vec<Obj> = (0..n / 2).map(|_| make(2)).collect();
        for b in &again {
            check(b, 2);
        }
        for b in &kept {
            check(b, 1);
        }
        done_tx.send(()).unwrap();
    });
    let kept = ready_rx.recv().unwrap();
    let before = rss();
    let s0 = snapshot().global;
    let (trims0, bytes0) = (s0.idle_trims, s0.idle_trim_bytes);
    let waited = Instant::now();
    // The trim needs 1 s with no slow path, then one 100 ms tick; it purges about 13 MiB here
    // (the pages without a survivor).
    while waited.elapsed() < Duration::from_secs(4) && snapshot().global.idle_trim_bytes - bytes0 < 10 * MIB {
        thread::sleep(Duration::from_millis(50));
    }
    let now = rss();
    let s = snapshot();
    eprintln!(
        "idle trim: RSS {} -> {} MiB in {:?}, {kept} survivors, {} heaps trimmed, {} MiB purged",
        before / MIB,
        now / MIB,
        waited.elapsed(),
        s.global.idle_trims - trims0,
        (s.global.idle_trim_bytes - bytes0) / MIB
    );
    assert!(
        s.global.idle_trim_bytes - bytes0 >= 10 * MIB && s.global.idle_trims > trims0,
        "4 s after the worker went idle, the trim purged {} KiB in {} heaps",
        (s.global.idle_trim_bytes - bytes0) / 1024,
        s.global.idle_trims - trims0
    );
    assert!(
        before.saturating_sub(now) >= 8 * MIB,
        "4 s after the worker went idle with {kept} survivors in 24 MiB of slabs, RSS fell by only {} MiB",
        before.saturating_sub(now) / MIB
    );
    // The resident estimate follows the purged holes.
    let estimate = s.global.resident_bytes;
    assert!(
        estimate < before - 8 * MIB,
        "the resident estimate ({} MiB) still counts the purged pages (RSS {} MiB before)",
        estimate / MIB,
        before / MIB
    );
    go_tx.send(()).unwrap();
    done_rx.recv().unwrap();
    worker.join().unwrap();
}

/// A thread that calls `trim()` until `stop`; joins with the number of calls.
fn spawn_trimmer(stop: Arc<AtomicBool>) -> thread::JoinHandle<u64> {
    thread::spawn(move || {
        let mut n = 0u64;
        while !stop.load(Ordering::Relaxed) {
            temporal_slab::trim();
            n += 1;
        }
        n
    })
}

/// Four threads allocate, check and free objects of many sizes in bursts with short waits, while
/// another thread calls `trim()` (which trims every heap not in a slow path) as fast as it can.
/// Every object keeps its bytes: no trim purges a page the owner is handing out.
#[test]
fn trims_racing_busy_threads_lose_no_data() {
    let _t = turn();
    let stop = Arc::new(AtomicBool::new(false));
    let trimmer = spawn_trimmer(stop.clone());
    let workers: Vec<_> = (0..4u64)
        .map(|t| {
            thread::spawn(move || {
                let sizes = [8usize, 24, 48, 100, 256, 700, 2000, 5000];
                let mut kept: Vec<(Vec<u8>, u8)> = Vec::new();
                let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ t;
                let t0 = Instant::now();
                let mut round = 0u64;
                while t0.elapsed() < Duration::from_millis(1500) {
                    round += 1;
                    let mut burst = Vec::with_capacity(2000);
                    for i in 0..2000usize {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        let len = sizes[(x % sizes.len() as u64) as usize];
                        let tag = (round as u8).wrapping_add(i as u8);
                        burst.push((vec![tag; len], tag));
                    }
                    for (i, (v, tag)) in burst.into_iter().enumerate() {
                        if let Some(at) = v.iter().position(|&b| b != tag) {
                            panic!(
                                "thread {t}: object {:p} ({} B, tag {tag}) holds {} at byte {at}",
                                v.as_ptr(),
                                v.len(),
                                v[at]
                            );
                        }
                        if i.is_multiple_of(50) {
                            kept.push((v, tag));
                        }
                    }
                    if kept.len() > 4000 {
                        for (v, tag) in kept.drain(..2000) {
                            assert!(v.iter().all(|&b| b == tag), "thread {t}: a survivor lost its bytes");
                        }
                    }
                    if round.is_multiple_of(8) {
                        thread::sleep(Duration::from_millis(2));
                    }
                }
                for (v, tag) in &kept {
                    assert!(v.iter().all(|&b| b == *tag), "thread {t}: a survivor lost its bytes");
                }
                round
            })
        })
        .collect();
    let rounds: u64 = workers.into_iter().map(|w| w.join().unwrap()).sum();
    stop.store(true, Ordering::Relaxed);
    let trims = trimmer.join().unwrap();
    eprintln!("{rounds} rounds against {trims} trims, {} heaps trimmed", snapshot().global.idle_trims);
    assert!(trims > 10, "the trimmer ran only {trims} times");
    if barrier_available() {
        assert!(snapshot().global.idle_trims > 0, "no heap was ever trimmed");
    }
}

/// Short-lived threads allocate, check and hand survivors to a long-lived thread, which checks
/// and frees them (remote frees into exited threads' parked heaps, adopted by the next threads),
/// while another thread calls `trim()` without pause. Every object keeps its bytes.
#[test]
fn trims_racing_thread_churn_lose_no_data() {
    let _t = turn();
    let stop = Arc::new(AtomicBool::new(false));
    let trimmer = spawn_trimmer(stop.clone());
    let (tx, rx) = mpsc::channel::<Vec<(Vec<u8>, u8)>>();
    let collector = thread::spawn(move || {
        let mut held: Vec<(Vec<u8>, u8)> = Vec::new();
        let mut checked = 0u64;
        for batch in rx {
            for (v, tag) in &batch {
                assert!(v.iter().all(|b| b == tag), "a survivor handed over lost its bytes");
            }
            checked += batch.len() as u64;
            held.extend(batch);
            if held.len() > 3000 {
                for (v, tag) in held.drain(..1500) {
                    assert!(v.iter().all(|&b| b == tag), "a held survivor lost its bytes");
                }
            }
        }
        checked
    });
    let t0 = Instant::now();
    let mut spawned = 0u64;
    while t0.elapsed() < Duration::from_millis(1500) {
        let workers: Vec<_> = (0..3u64)
            .map(|w| {
                let tx = tx.clone();
                thread::spawn(move || {
                    let sizes = [16usize, 40, 96, 320, 1000, 3000];
                    let mut kept = Vec::new();
                    for i in 0..1500usize {
                        let tag = (w as u8).wrapping_mul(31).wrapping_add(i as u8);
                        let v = vec![tag; sizes[i % sizes.len()]];
                        assert!(v.iter().all(|&b| b == tag), "a fresh object lost its bytes");
                        if i.is_multiple_of(20) {
                            kept.push((v, tag));
                        }
                    }
                    tx.send(kept).unwrap();
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        spawned += 3;
    }
    drop(tx);
    let checked = collector.join().unwrap();
    stop.store(true, Ordering::Relaxed);
    let trims = trimmer.join().unwrap();
    eprintln!("{spawned} threads, {checked} survivors checked, {trims} trims");
    assert!(trims > 10 && spawned > 10, "too little happened: {trims} trims, {spawned} threads");
}
