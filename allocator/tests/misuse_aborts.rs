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
            _ => unreachable!(),
        }
    }
}

fn run_child(kind: &str) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_entry", "--nocapture", "--test-threads=1"])
        .env(CHILD, kind)
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
