//! A double free of the most recently freed object is detected and stops the process with a
//! one-line message (SIGABRT), never silent corruption. The misuse runs in a child process: this
//! test binary re-runs itself. (A pointer the allocator never returned is undefined behaviour
//! for `GlobalAlloc`; detecting it needs a registry of our mappings, which the C ABI will add.)

use std::alloc::{GlobalAlloc, Layout};
use std::os::unix::process::ExitStatusExt;
use std::process::Command;

use temporal_slab::TemporalSlab;

#[global_allocator]
static GLOBAL: TemporalSlab = TemporalSlab::new();

const CHILD: &str = "TSLAB_MISUSE_CHILD";

fn misuse(kind: &str) {
    let layout = Layout::from_size_align(48, 8).unwrap();
    // SAFETY: deliberately wrong (that is the test); it must abort before any harm.
    unsafe {
        let p = GLOBAL.alloc(layout);
        GLOBAL.dealloc(p, layout);
        match kind {
            "double_free" => GLOBAL.dealloc(p, layout),
            "double_free_beside_the_head_run" => {
                std::thread::spawn(move || beside_the_head_run(layout)).join().unwrap()
            }
            _ => unreachable!(),
        }
    }
}

/// A double free of the cell just past a bin's head run, while that cell is already free in the
/// bitmap (the run ended at a bitmap word's last cell). In a fresh thread, so a fresh bin: cells
/// 0..=96, the free cache filled with 65..=96, cells 32..=64 freed into the bitmap, then
/// allocations until the bin takes the run 32..=63 as its head run; cell 64 is free beside it.
/// Freeing it again must abort, not widen the head run over a cell the bitmap also holds.
fn beside_the_head_run(layout: Layout) {
    // SAFETY: deliberately wrong at the end (that is the test).
    unsafe {
        let cells: Vec<*mut u8> = (0..97).map(|_| GLOBAL.alloc(layout)).collect();
        for &p in &cells[65..] {
            GLOBAL.dealloc(p, layout);
        }
        for &p in &cells[32..65] {
            GLOBAL.dealloc(p, layout);
        }
        // 32 from the cache, 31 from the rest of the head run, one from the run 32..=63.
        let again: Vec<*mut u8> = (0..64).map(|_| GLOBAL.alloc(layout)).collect();
        assert!(again.contains(&cells[32]), "the bin did not take the run 32..=63: the set-up is off");
        GLOBAL.dealloc(cells[64], layout);
    }
}

fn run_child(kind: &str) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_entry", "--nocapture", "--test-threads=1"])
        .env(CHILD, kind)
        // No sample point moves an allocation to the fallback heap (the set-up counts cells).
        .env("TSLAB_PROFILE_SAMPLE", "0")
        .output()
        .expect("re-running the test binary");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.signal(), Some(libc::SIGABRT), "{kind}: status {:?}, stderr {stderr}", out.status);
    assert!(stderr.contains("temporal-slab: free of a pointer this allocator did not return"), "{kind}: {stderr}");
}

#[test]
fn child_entry() {
    if let Ok(kind) = std::env::var(CHILD) {
        misuse(&kind);
        panic!("{kind} was not detected");
    }
}

#[test]
fn double_free_aborts() {
    run_child("double_free");
}

#[test]
fn double_free_beside_the_head_run_aborts() {
    run_child("double_free_beside_the_head_run");
}
