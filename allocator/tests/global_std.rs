//! TemporalSlab as the global allocator of this test binary, running ordinary std code from
//! many threads: collections, string churn, a Vec past 100 MiB, cross-thread frees, every
//! alignment from 1 B to 64 KiB, realloc across classes and into and out of the large path.

use std::alloc::{GlobalAlloc, Layout};
use std::collections::{BTreeMap, HashMap};
use std::sync::mpsc;
use std::thread;

use temporal_slab::TemporalSlab;

#[global_allocator]
static GLOBAL: TemporalSlab = TemporalSlab::new();

#[test]
fn hashmap_and_btreemap() {
    let mut h: HashMap<String, Vec<u64>> = HashMap::new();
    let mut b: BTreeMap<u64, String> = BTreeMap::new();
    for i in 0..50_000u64 {
        h.entry(format!("key-{}", i % 7_000)).or_default().push(i);
        b.insert(i.wrapping_mul(2_654_435_761) % 100_003, i.to_string());
    }
    assert_eq!(h.len(), 7_000);
    assert_eq!(h["key-42"].len(), (0..50_000).filter(|i| i % 7_000 == 42).count());
    for (k, v) in &b {
        assert!(*k < 100_003);
        assert_eq!(v.parse::<u64>().unwrap().wrapping_mul(2_654_435_761) % 100_003, *k);
    }
    h.retain(|k, _| k.ends_with('7'));
    assert!(h.keys().all(|k| k.ends_with('7')));
}

#[test]
fn string_churn() {
    let mut keep = Vec::new();
    for round in 0..200 {
        let mut v: Vec<String> = (0..500).map(|i| "x".repeat((i * 7 + round) % 300)).collect();
        for (i, s) in v.iter().enumerate() {
            assert_eq!(s.len(), (i * 7 + round) % 300);
            assert!(s.bytes().all(|c| c == b'x'));
        }
        keep.push(v.swap_remove(round % 500));
        v.truncate(10);
    }
    assert_eq!(keep.len(), 200);
}

#[test]
fn vec_grown_past_100_mib() {
    let mut v: Vec<u64> = Vec::new();
    let n = (110 << 20) / 8;
    for i in 0..n as u64 {
        v.push(i ^ 0xdead_beef);
    }
    assert!(v.capacity() * 8 >= 100 << 20);
    for (i, x) in v.iter().enumerate().step_by(4099) {
        assert_eq!(*x, i as u64 ^ 0xdead_beef);
    }
    v.truncate(1000);
    v.shrink_to_fit();
    assert_eq!(v[999], 999 ^ 0xdead_beef);
}

#[test]
fn eight_threads_with_cross_thread_frees() {
    let (tx, rx) = mpsc::channel::<Vec<Box<[u8]>>>();
    let producers: Vec<_> = (0..8u8)
        .map(|t| {
            let tx = tx.clone();
            thread::spawn(move || {
                for round in 0..200usize {
                    let batch: Vec<Box<[u8]>> =
                        (0..100).map(|i| vec![t ^ (i as u8); 1 + (i * 37 + round) % 2000].into_boxed_slice()).collect();
                    tx.send(batch).unwrap();
                }
            })
        })
        .collect();
    drop(tx);
    let consumer = thread::spawn(move || {
        let mut n = 0usize;
        for batch in rx {
            for b in batch {
                let first = b[0];
                assert!(b.iter().all(|&x| x == first), "corrupted block");
                n += 1;
            }
        }
        n
    });
    for p in producers {
        p.join().unwrap();
    }
    assert_eq!(consumer.join().unwrap(), 8 * 200 * 100);
}

#[test]
fn every_alignment_from_1_byte_to_64_kib() {
    let mut align = 1usize;
    while align <= 64 << 10 {
        for size in [1usize, 7, 8, 24, 100, 1000, 4096, 5000, 40_000, 200_000] {
            let layout = Layout::from_size_align(size, align).unwrap();
            // SAFETY: non-zero size layout; freed with the same layout below.
            unsafe {
                let p = GLOBAL.alloc(layout);
                assert!(!p.is_null());
                assert_eq!(p.addr() % align, 0, "size {size} align {align}");
                p.write_bytes(0xa5, size);
                let z = GLOBAL.alloc_zeroed(layout);
                assert_eq!(z.addr() % align, 0);
                assert!(std::slice::from_raw_parts(z, size).iter().all(|&b| b == 0));
                assert!(std::slice::from_raw_parts(p, size).iter().all(|&b| b == 0xa5));
                GLOBAL.dealloc(z, layout);
                GLOBAL.dealloc(p, layout);
            }
        }
        align *= 2;
    }
}

#[test]
fn alignments_beyond_a_segment() {
    for align in [1usize << 20, 4 << 20, 16 << 20] {
        let layout = Layout::from_size_align(100, align).unwrap();
        // SAFETY: valid layout; freed with the same layout.
        unsafe {
            let p = GLOBAL.alloc(layout);
            assert!(!p.is_null());
            assert_eq!(p.addr() % align, 0);
            p.write_bytes(1, 100);
            let q = GLOBAL.realloc(p, layout, 300_000);
            assert_eq!(q.addr() % align, 0);
            assert!(std::slice::from_raw_parts(q, 100).iter().all(|&b| b == 1));
            GLOBAL.dealloc(q, Layout::from_size_align(300_000, align).unwrap());
        }
    }
}

#[test]
fn realloc_up_and_down_across_classes_and_large() {
    let sizes = [1usize, 9, 64, 100, 1000, 4000, 32 << 10, 33 << 10, 1 << 20, 50 << 20, 200_000, 3000, 16, 70_000, 5];
    for align in [1usize, 16, 4096] {
        let mut layout = Layout::from_size_align(sizes[0], align).unwrap();
        // SAFETY: every realloc uses the layout of the previous allocation.
        unsafe {
            let mut p = GLOBAL.alloc(layout);
            p.write_bytes(0x3c, layout.size());
            for &s in &sizes[1..] {
                let q = GLOBAL.realloc(p, layout, s);
                assert!(!q.is_null());
                assert_eq!(q.addr() % align, 0);
                let keep = layout.size().min(s);
                assert!(std::slice::from_raw_parts(q, keep).iter().all(|&b| b == 0x3c), "realloc to {s} lost data");
                q.write_bytes(0x3c, s);
                layout = Layout::from_size_align(s, align).unwrap();
                p = q;
            }
            GLOBAL.dealloc(p, layout);
        }
    }
}

#[test]
fn realloc_in_same_class_keeps_the_pointer() {
    // SAFETY: layouts match their allocations.
    unsafe {
        let l = Layout::from_size_align(100, 8).unwrap();
        let p = GLOBAL.alloc(l);
        assert_eq!(GLOBAL.realloc(p, l, 110), p, "100 and 110 share the 112 B class");
        let l = Layout::from_size_align(110, 8).unwrap();
        GLOBAL.dealloc(p, l);
        let l = Layout::from_size_align(1 << 20, 8).unwrap();
        let p = GLOBAL.alloc(l);
        assert_eq!(GLOBAL.realloc(p, l, (1 << 20) - 4096), p, "a large shrink stays in place");
        GLOBAL.dealloc(p, Layout::from_size_align((1 << 20) - 4096, 8).unwrap());
    }
}

#[test]
fn allocation_in_thread_local_destructors_and_foreign_threads() {
    struct AllocOnDrop;
    impl Drop for AllocOnDrop {
        fn drop(&mut self) {
            let v: Vec<String> = (0..1000).map(|i| i.to_string()).collect();
            assert_eq!(v[999], "999");
        }
    }
    thread_local!(static D: AllocOnDrop = const { AllocOnDrop });
    thread::spawn(|| D.with(|_| ())).join().unwrap();

    // A thread not created by std.
    extern "C" fn body(_: *mut libc::c_void) -> *mut libc::c_void {
        let m: HashMap<u32, String> = (0..10_000).map(|i| (i, i.to_string())).collect();
        assert_eq!(m[&1234], "1234");
        std::ptr::null_mut()
    }
    let mut tid: libc::pthread_t = 0;
    // SAFETY: standard pthread create/join with a valid function and null argument.
    unsafe {
        assert_eq!(libc::pthread_create(&mut tid, std::ptr::null(), body, std::ptr::null_mut()), 0);
        assert_eq!(libc::pthread_join(tid, std::ptr::null_mut()), 0);
    }
}

#[test]
fn usable_size_covers_the_request() {
    for size in [1usize, 8, 13, 100, 5000, 32 << 10, 100_000] {
        let v: Vec<u8> = Vec::with_capacity(size);
        let p = v.as_ptr().cast_mut();
        // SAFETY: the Vec's buffer is a live allocation of ours.
        let usable = unsafe { temporal_slab::usable_size(p) };
        assert!(usable >= size, "{size} -> {usable}");
    }
}
