//! Thread exit: a thread's caches go back to the shared pool, the next thread adopts the parked
//! heap instead of making a new one, and objects freed after their thread exited still drain
//! its slabs back to the pool. One test per binary section, serialised (they read global counters).

use std::sync::Mutex;
use std::thread;

use temporal_slab::{snapshot, TemporalSlab};

#[global_allocator]
static GLOBAL: TemporalSlab = TemporalSlab::new();

static SERIAL: Mutex<()> = Mutex::new(());

fn cached_empty() -> u64 {
    snapshot().classes.iter().map(|c| c.cached_empty_slabs).sum()
}

#[test]
fn exiting_thread_returns_its_slabs() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let s0 = snapshot();
    let in_pool = |s: &temporal_slab::Snapshot| s.global.pooled_slabs + s.global.warm_slabs;
    let held = |s: &temporal_slab::Snapshot| s.classes.iter().map(|c| c.partial_slabs + c.full_slabs).sum::<u64>();
    let during = thread::spawn(move || {
        let v: Vec<Box<[u8; 128]>> = (0..80_000).map(|i| Box::new([i as u8; 128])).collect();
        assert!(v.iter().enumerate().all(|(i, b)| b[127] == i as u8));
        let during = in_pool(&snapshot());
        // Keep a few objects so the thread's bin and some partial slabs are live at exit.
        let keep: Vec<Box<[u8; 128]>> = v.into_iter().step_by(10_000).collect();
        assert!(cached_empty() > 0, "no empty slab went to the warm pool");
        drop(keep);
        during
    })
    .join()
    .unwrap();
    let s1 = snapshot();
    // ~10 MiB of 128 B objects = ~157 slabs, all back in the shared pool (warm or purged).
    assert!(in_pool(&s1) >= during + 150, "pool {during} while the thread held its objects, {} after", in_pool(&s1));
    // The test thread's own bins (for the snapshots' Vecs: one per size class they touch, about
    // ten) may add a few slabs; the exited thread's ~157 must not stay.
    let diff: Vec<String> = s0
        .classes
        .iter()
        .zip(&s1.classes)
        .filter(|(a, b)| a.partial_slabs + a.full_slabs != b.partial_slabs + b.full_slabs)
        .map(|(a, b)| {
            format!("{} B: {} -> {}", a.object_size, a.partial_slabs + a.full_slabs, b.partial_slabs + b.full_slabs)
        })
        .collect();
    assert!(held(&s1) <= held(&s0) + 12, "the exited thread still holds slabs: {diff:?}");
}

#[test]
fn new_threads_adopt_parked_heaps() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // Warm up: make sure one parked heap exists.
    thread::spawn(|| drop(vec![1u8; 100])).join().unwrap();
    let h0 = snapshot().global.heaps;
    for i in 0..50 {
        thread::spawn(move || {
            let s: String = (0..100).map(|j| char::from(b'a' + ((i + j) % 26) as u8)).collect();
            assert_eq!(s.len(), 100);
        })
        .join()
        .unwrap();
    }
    let h1 = snapshot().global.heaps;
    assert!(h1 - h0 <= 2, "50 sequential threads created {} heaps", h1 - h0);
}

#[test]
fn frees_after_the_owner_exited_drain_its_slabs() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let objs: Vec<Box<[u64; 32]>> = thread::spawn(|| (0..100_000).map(|i| Box::new([i; 32])).collect()).join().unwrap();
    let s0 = snapshot();
    for (i, o) in objs.iter().enumerate() {
        assert!(o.iter().all(|&x| x == i as u64));
    }
    drop(objs);
    let s1 = snapshot();
    // 100k x 256 B = ~25 MiB = ~390 slabs, freed remotely into a parked heap: back in the pool
    // (unpurged in the reserve as far as it has room, purged beyond it).
    let back = |s: &temporal_slab::Snapshot| s.global.pooled_slabs + s.global.warm_slabs;
    assert!(back(&s1) >= back(&s0) + 350, "pooled + reserve slabs {} -> {}", back(&s0), back(&s1));
    // Deterministic release: trim purges the reserve.
    temporal_slab::trim();
    let s2 = snapshot();
    assert!(
        s2.global.pooled_slabs >= s0.global.pooled_slabs + 350,
        "pooled slabs {} -> {}",
        s0.global.pooled_slabs,
        s2.global.pooled_slabs
    );
    assert!(s2.global.madvise_bytes >= s0.global.madvise_bytes + 350 * 65536);
}

#[test]
fn snapshot_serializes_with_the_reference_keys() {
    let v = serde_json::to_value(snapshot()).unwrap();
    assert_eq!(v["classes"].as_array().unwrap().len(), temporal_slab::size_class::NUM_CLASSES);
    assert_eq!(v["epochs"].as_array().unwrap().len(), 16);
    // The reference stats_dump's top-level keys.
    for key in [
        "schema_version",
        "timestamp_ns",
        "pid",
        "page_size",
        "epoch_count",
        "current_epoch",
        "active_epoch_count",
        "closing_epoch_count",
        "total_slabs_allocated",
        "total_slabs_recycled",
        "net_slabs",
        "rss_bytes_current",
        "estimated_slab_rss_bytes",
        "total_slow_path_hits",
        "total_cache_overflows",
        "total_slow_cache_miss",
        "total_slow_epoch_closed",
        "total_madvise_calls",
        "total_madvise_bytes",
        "total_madvise_failures",
    ] {
        assert!(v[key].is_u64(), "{key} missing");
    }
    assert!(v["version"].is_string() && v["label_registry"].is_array());
    // current_epoch is the ring index (the reference printed the raw counter); the era is apart.
    let (index, era) = (v["current_epoch"].as_u64().unwrap(), v["current_era"].as_u64().unwrap());
    assert!(index < 16);
    assert_eq!((era - 1) % 16, index);
    // classes[]: the reference's keys, then ours.
    for key in [
        "class_index",
        "object_size",
        "slow_path_hits",
        "new_slab_count",
        "empty_slab_recycled",
        "empty_slab_overflowed",
        "slow_path_cache_miss",
        "slow_path_epoch_closed",
        "madvise_calls",
        "madvise_bytes",
        "madvise_failures",
        "epoch_close_calls",
        "epoch_close_scanned_slabs",
        "epoch_close_recycled_slabs",
        "epoch_close_total_ns",
        "cache_size",
        "cache_capacity",
        "total_partial_slabs",
        "total_full_slabs",
        "net_slabs",
        "estimated_rss_bytes",
        "allocations",
        "frees",
        "live_objects",
        "live_bytes",
    ] {
        assert!(v["classes"][0][key].is_u64(), "classes[].{key} missing");
    }
    assert!(v["classes"][0]["recycle_rate_pct"].is_number() && v["classes"][0]["fragmentation_ratio"].is_number());
    // epochs[]: the reference's keys.
    for key in [
        "epoch_id",
        "epoch_era",
        "refcount",
        "total_partial_slabs",
        "total_full_slabs",
        "total_reclaimable_slabs",
        "estimated_rss_bytes",
    ] {
        assert!(v["epochs"][0][key].is_u64(), "epochs[].{key} missing");
    }
    assert!(v["epochs"][0]["age_sec"].is_number());
    assert!(["ACTIVE", "CLOSING", "UNUSED"].contains(&v["epochs"][0]["state"].as_str().unwrap()));
    assert!(v["epochs"][0]["label"].is_string());
}
