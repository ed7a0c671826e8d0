//! Large mappings of 2 MiB and more are advised for transparent huge pages (`MADV_HUGEPAGE`,
//! `os::advise_huge`); smaller ones are not. Read back from the mapping's `VmFlags` in
//! `/proc/self/smaps` ("hg": advised). Skipped where the kernel has no THP support at all.

use std::alloc::{GlobalAlloc, Layout};

use temporal_slab::TemporalSlab;

#[global_allocator]
static GLOBAL: TemporalSlab = TemporalSlab::new();

const MIB: usize = 1 << 20;

/// The `VmFlags` of the mapping that holds `p`.
fn vm_flags_of(p: *mut u8) -> Vec<String> {
    let smaps = std::fs::read_to_string("/proc/self/smaps").expect("read /proc/self/smaps");
    let addr = p as usize;
    let mut inside = false;
    for line in smaps.lines() {
        if let Some((range, _)) = line.split_once(' ') {
            if let Some((lo, hi)) = range.split_once('-') {
                if let (Ok(lo), Ok(hi)) = (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16)) {
                    inside = lo <= addr && addr < hi;
                    continue;
                }
            }
        }
        if inside {
            if let Some(flags) = line.strip_prefix("VmFlags:") {
                return flags.split_whitespace().map(str::to_owned).collect();
            }
        }
    }
    panic!("no mapping holds {p:p}");
}

#[test]
fn large_mappings_of_2_mib_and_more_are_advised_for_huge_pages() {
    if !std::path::Path::new("/sys/kernel/mm/transparent_hugepage/enabled").exists() {
        eprintln!("skipped: this kernel has no transparent huge pages");
        return;
    }
    // Sizes the large cache has not seen in this process: fresh mappings.
    let big = Layout::from_size_align(8 * MIB, 8).unwrap();
    let small = Layout::from_size_align(MIB, 8).unwrap();
    // SAFETY: non-zero sizes; freed below with the same layouts.
    let (b, s) = unsafe { (GLOBAL.alloc(big), GLOBAL.alloc(small)) };
    assert!(!b.is_null() && !s.is_null());
    let (bf, sf) = (vm_flags_of(b), vm_flags_of(s));
    // SAFETY: allocated above with these layouts.
    unsafe {
        GLOBAL.dealloc(b, big);
        GLOBAL.dealloc(s, small);
    }
    assert!(bf.iter().any(|f| f == "hg"), "an 8 MiB mapping is not advised: VmFlags {bf:?}");
    assert!(!sf.iter().any(|f| f == "hg"), "a 1 MiB mapping was advised: VmFlags {sf:?}");
}
