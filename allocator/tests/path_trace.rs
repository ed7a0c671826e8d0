//! Path tracing (`paths`): with the `path-trace` feature, each call's mask names the steps it
//! took; without it, nothing is ever marked. TemporalSlab is this binary's global allocator; the
//! calls are made on a fresh thread so that its first allocation finds no heap.
//! `cargo test -p temporal-slab --features path-trace --test path_trace` checks the traced build
//! (CI runs both).

use std::alloc::{alloc, dealloc, Layout};
use std::hint::black_box;

use temporal_slab::paths::{self, Step};
use temporal_slab::TemporalSlab;

#[global_allocator]
static GLOBAL: TemporalSlab = TemporalSlab::new();

fn has(mask: u32, step: Step) -> bool {
    mask & step.bit() != 0
}

#[test]
fn each_call_reports_the_steps_it_took() {
    std::thread::spawn(|| {
        // 3 KiB objects (a class of its own in this test): about 21 to a 64 KiB slab.
        let layout = Layout::from_size_align(3000, 8).unwrap();
        paths::take();
        // SAFETY: a non-zero-sized layout; every pointer is freed once below with it.
        let first = black_box(unsafe { alloc(layout) });
        let m_first = paths::take();
        let mut more = Vec::with_capacity(64);
        let mut masks = Vec::with_capacity(64);
        for _ in 0..64 {
            paths::take();
            // SAFETY: as above.
            more.push(black_box(unsafe { alloc(layout) }));
            masks.push(paths::take());
        }
        // SAFETY: each pointer came from `alloc` with this layout and is freed once.
        unsafe { dealloc(first, layout) };
        let m_free = paths::take();
        for p in more {
            // SAFETY: as above.
            unsafe { dealloc(p, layout) };
        }
        let m_rest = paths::take();
        let big = Layout::from_size_align(1 << 20, 8).unwrap();
        // SAFETY: as above.
        let l = black_box(unsafe { alloc(big) });
        let m_large = paths::take();
        // SAFETY: as above.
        unsafe { dealloc(l, big) };
        let m_large_free = paths::take();

        if !paths::ENABLED {
            let all = [m_first, m_free, m_rest, m_large, m_large_free].into_iter().chain(masks);
            assert!(all.into_iter().all(|m| m == 0), "a build without path-trace marked a step");
            return;
        }
        // The thread's first allocation: no heap, the slow path, a slab from the pool.
        assert!(
            has(m_first, Step::NoHeap) && has(m_first, Step::Slow) && has(m_first, Step::NewSlab),
            "{}",
            paths::describe(m_first)
        );
        // Most of the next ones bump the bin's head run; past a slab's worth, another slab.
        let fast = masks.iter().filter(|&&m| m == Step::FastBin.bit()).count();
        assert!(
            fast >= 40,
            "only {fast} of 64 from the bin's head run: {:?}",
            masks.iter().map(|&m| paths::describe(m)).collect::<Vec<_>>()
        );
        assert!(masks.iter().any(|&m| has(m, Step::NewSlab)), "64 objects of 3 KiB fit no single slab");
        // The first free goes into the free cache (its slab is the thread's current epoch's).
        assert_eq!(m_free, 0, "{}", paths::describe(m_free));
        // Freeing more than the cache holds returns cells to their slabs.
        assert!(has(m_rest, Step::FreeSlab), "{}", paths::describe(m_rest));
        assert!(has(m_large, Step::Large) && !has(m_large, Step::Slow), "{}", paths::describe(m_large));
        assert!(has(m_large_free, Step::FreeLarge), "{}", paths::describe(m_large_free));
    })
    .join()
    .unwrap();
}
