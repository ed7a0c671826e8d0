//! Model test: proptest generates sequences of alloc (size + align), alloc_zeroed, free, realloc,
//! epoch advance, epoch close, snapshot, and domain operations (open a domain in the shared
//! current epoch, allocate inside it on this thread or on another thread at the same time as
//! this one, end it), runs them on the allocator and on a shadow model, and checks after every
//! step: no overlap, alignment honoured, contents preserved, in-place realloc where the class
//! does not change; an epoch's refcount is the number of the model's domains open in it, a
//! close of an epoch that holds open domains waits for them and one that holds none closes;
//! and at the end of each case, the per-class counters equal the model's.
//!
//! This binary does not install TemporalSlab as its global allocator, so the harness's own
//! allocations go to the system allocator and the counters see only the model's operations.

use std::alloc::{GlobalAlloc, Layout};
use std::collections::BTreeMap;

use proptest::prelude::*;
use temporal_slab::size_class::{class_for, NUM_CLASSES};
use temporal_slab::{epoch, snapshot, EpochDomain, EpochId, TemporalSlab};

static A: TemporalSlab = TemporalSlab::new();

#[derive(Debug, Clone)]
enum Op {
    Alloc {
        size: usize,
        align_log2: u32,
        zeroed: bool,
    },
    Free(usize),
    Realloc(usize, usize),
    Advance,
    Close(usize),
    Snapshot,
    /// Open a domain (labelled or not) in the current epoch.
    DomainOpen(bool),
    /// Enter domain i on this thread and allocate `n` blocks of `size`.
    DomainAlloc(usize, usize, usize),
    /// Enter domain i on another thread while this one is in domain j, both allocating.
    DomainConcurrent(usize, usize, usize),
    /// End domain i.
    DomainEnd(usize),
}

fn size() -> impl Strategy<Value = usize> {
    prop_oneof![
        6 => 0usize..=64,
        4 => 65usize..=2048,
        2 => 2049usize..=40_000,
        1 => 40_001usize..=300_000,
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (size(), prop_oneof![6 => 0u32..=4, 2 => 5u32..=13, 1 => 14u32..=21], any::<bool>())
            .prop_map(|(size, align_log2, zeroed)| Op::Alloc { size, align_log2, zeroed }),
        5 => any::<usize>().prop_map(Op::Free),
        3 => (any::<usize>(), size()).prop_map(|(i, s)| Op::Realloc(i, s)),
        1 => Just(Op::Advance),
        1 => any::<usize>().prop_map(Op::Close),
        1 => Just(Op::Snapshot),
        1 => any::<bool>().prop_map(Op::DomainOpen),
        2 => (any::<usize>(), 1usize..8, 1usize..3000).prop_map(|(i, n, s)| Op::DomainAlloc(i, n, s)),
        1 => (any::<usize>(), any::<usize>(), 1usize..3000).prop_map(|(i, j, s)| Op::DomainConcurrent(i, j, s)),
        1 => any::<usize>().prop_map(Op::DomainEnd),
    ]
}

struct Block {
    ptr: *mut u8,
    size: usize,
    align: usize,
    fill: u8,
}

struct Model {
    live: Vec<Block>,
    by_addr: BTreeMap<usize, usize>, // start -> end
    allocs: [u64; NUM_CLASSES],
    frees: [u64; NUM_CLASSES],
    large_live: i64,
    epochs: Vec<EpochId>,
    /// Domains opened by the case, with whether they are still open.
    domains: Vec<(EpochDomain, bool)>,
}

impl Model {
    fn open_domains_in(&self, e: EpochId) -> u64 {
        self.domains.iter().filter(|(d, open)| *open && d.epoch() == e).count() as u64
    }

    /// Allocates `n` blocks of `size` (on the calling thread) and returns them unrecorded.
    fn alloc_blocks(n: usize, size: usize, fill: u8) -> Vec<(usize, u8)> {
        (0..n)
            .map(|_| {
                // SAFETY: valid layout; the model frees it with the same size and alignment.
                let p = unsafe { A.alloc(Layout::from_size_align(size, 8).unwrap()) };
                assert!(!p.is_null());
                (p.addr(), fill)
            })
            .collect()
    }

    fn record(&mut self, blocks: Vec<(usize, u8)>, size: usize) -> Result<(), TestCaseError> {
        for (addr, fill) in blocks {
            self.count_alloc(size, 8);
            let ptr = std::ptr::with_exposed_provenance_mut(addr);
            self.insert(Block { ptr, size, align: 8, fill })?;
        }
        Ok(())
    }
}

impl Model {
    fn count_alloc(&mut self, size: usize, align: usize) {
        match class_for(size, align) {
            Some(c) => self.allocs[c.index()] += 1,
            None => self.large_live += 1,
        }
    }

    fn count_free(&mut self, size: usize, align: usize) {
        match class_for(size, align) {
            Some(c) => self.frees[c.index()] += 1,
            None => self.large_live -= 1,
        }
    }

    fn insert(&mut self, b: Block) -> Result<(), TestCaseError> {
        let start = b.ptr.addr();
        let end = start + b.size.max(1);
        prop_assert_eq!(start % b.align, 0, "pointer {:#x} not aligned to {}", start, b.align);
        if let Some((_, &prev_end)) = self.by_addr.range(..=start).next_back() {
            prop_assert!(prev_end <= start, "block at {:#x} overlaps the one ending at {:#x}", start, prev_end);
        }
        if let Some((&next, _)) = self.by_addr.range(start..).next() {
            prop_assert!(next >= end, "block [{:#x}, {:#x}) overlaps one at {:#x}", start, end, next);
        }
        self.by_addr.insert(start, end);
        // SAFETY: the block is live and at least `size` bytes long.
        unsafe { b.ptr.write_bytes(b.fill, b.size) };
        self.live.push(b);
        Ok(())
    }

    fn check_contents(b: &Block, len: usize) -> Result<(), TestCaseError> {
        // SAFETY: the block is live and at least `len` bytes long.
        let bytes = unsafe { std::slice::from_raw_parts(b.ptr, len) };
        prop_assert!(bytes.iter().all(|&x| x == b.fill), "contents of block at {:?} changed", b.ptr);
        Ok(())
    }

    fn remove(&mut self, i: usize) -> Block {
        let b = self.live.swap_remove(i);
        self.by_addr.remove(&b.ptr.addr());
        b
    }
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let before = snapshot();
    let mut m = Model {
        live: Vec::new(),
        by_addr: BTreeMap::new(),
        allocs: [0; NUM_CLASSES],
        frees: [0; NUM_CLASSES],
        large_live: 0,
        epochs: vec![epoch::current()],
        domains: Vec::new(),
    };
    let mut fill = 1u8;
    for op in ops {
        fill = fill.wrapping_add(37) | 1;
        match op {
            Op::Alloc { size, align_log2, zeroed } => {
                let align = 1usize << align_log2;
                let layout = Layout::from_size_align(size, align).unwrap();
                // SAFETY: valid layout; the model frees it with the same size and alignment.
                let p = unsafe {
                    if zeroed {
                        A.alloc_zeroed(layout)
                    } else {
                        A.alloc(layout)
                    }
                };
                prop_assert!(!p.is_null());
                if zeroed {
                    // SAFETY: fresh block of `size` bytes.
                    let bytes = unsafe { std::slice::from_raw_parts(p, size) };
                    prop_assert!(bytes.iter().all(|&x| x == 0), "alloc_zeroed returned dirty memory");
                }
                m.count_alloc(size, align);
                m.insert(Block { ptr: p, size, align, fill })?;
            }
            Op::Free(i) if !m.live.is_empty() => {
                let b = m.remove(i % m.live.len());
                Model::check_contents(&b, b.size)?;
                m.count_free(b.size, b.align);
                // SAFETY: a live block with its own layout.
                unsafe { A.dealloc(b.ptr, Layout::from_size_align(b.size, b.align).unwrap()) };
            }
            Op::Realloc(i, new_size) if !m.live.is_empty() => {
                let b = m.remove(i % m.live.len());
                Model::check_contents(&b, b.size)?;
                let old_class = class_for(b.size, b.align);
                let new_class = class_for(new_size, b.align);
                // SAFETY: a live block with its own layout; new_size is valid for the alignment.
                let q = unsafe { A.realloc(b.ptr, Layout::from_size_align(b.size, b.align).unwrap(), new_size) };
                prop_assert!(!q.is_null());
                if old_class.is_some() && old_class == new_class {
                    prop_assert_eq!(q, b.ptr, "realloc within a class moved the block");
                } else if old_class.is_some() || new_class.is_some() {
                    // Small <-> small of another class, or small <-> large: a move.
                    m.count_free(b.size, b.align);
                    m.count_alloc(new_size, b.align);
                }
                let moved = Block { ptr: q, size: b.size.min(new_size), align: b.align, fill: b.fill };
                Model::check_contents(&moved, moved.size)?;
                m.insert(Block { ptr: q, size: new_size, align: b.align, fill })?;
            }
            Op::Advance => m.epochs.push(epoch::advance()),
            Op::Close(k) => {
                let e = m.epochs[k % m.epochs.len()];
                epoch::close(e);
                if m.open_domains_in(e) == 0 {
                    prop_assert!(epoch::state(e) != Some(epoch::EpochState::Active));
                } else {
                    prop_assert_eq!(epoch::state(e), Some(epoch::EpochState::Active), "closed under open domains");
                }
            }
            Op::DomainOpen(labelled) => {
                let d = EpochDomain::new(labelled.then_some("model"));
                m.epochs.push(d.epoch());
                m.domains.push((d, true));
            }
            Op::DomainAlloc(i, n, size) if !m.domains.is_empty() => {
                let k = i % m.domains.len();
                let blocks = {
                    let _in = m.domains[k].0.enter();
                    Model::alloc_blocks(n, size, fill)
                };
                m.record(blocks, size)?;
            }
            Op::DomainConcurrent(i, j, size) if !m.domains.is_empty() => {
                let (a, b) = (&m.domains[i % m.domains.len()].0, &m.domains[j % m.domains.len()].0);
                let (mine, theirs) = std::thread::scope(|s| {
                    let other = s.spawn(|| {
                        let _in = a.enter();
                        Model::alloc_blocks(4, size, fill)
                    });
                    let _in = b.enter();
                    let mine = Model::alloc_blocks(4, size, fill);
                    (mine, other.join().unwrap())
                });
                m.record(mine, size)?;
                m.record(theirs, size)?;
            }
            Op::DomainEnd(i) if !m.domains.is_empty() => {
                let k = i % m.domains.len();
                m.domains[k].0.close();
                m.domains[k].1 = false;
            }
            Op::Snapshot => {
                for b in &m.live {
                    Model::check_contents(b, b.size)?;
                }
                let s = snapshot();
                prop_assert_eq!(s.classes.len(), NUM_CLASSES);
            }
            Op::Free(_) | Op::Realloc(..) | Op::DomainAlloc(..) | Op::DomainConcurrent(..) | Op::DomainEnd(_) => {}
        }
        // Every epoch's refcount is the number of the model's domains open in it (this binary's
        // only domains), and an epoch with open domains still takes allocations.
        if !m.domains.is_empty() {
            let s = snapshot();
            for e in &m.epochs {
                let open = m.open_domains_in(*e);
                if open > 0 {
                    prop_assert_eq!(s.epochs[e.index()].era, e.era(), "an epoch with open domains passed");
                    prop_assert_eq!(s.epochs[e.index()].refcount, open, "refcount of era {}", e.era());
                }
            }
        }
    }
    // Ending every domain lets their epochs close once time has moved on.
    for (d, open) in &mut m.domains {
        d.close();
        *open = false;
    }
    epoch::advance();
    for e in &m.epochs {
        prop_assert!(epoch::state(*e) != Some(epoch::EpochState::Active), "era {} outlived its domains", e.era());
    }
    // Counters while blocks are live, then after freeing everything.
    let mid = snapshot();
    for c in 0..NUM_CLASSES {
        let live_model = (m.allocs[c] - m.frees[c]) as i64;
        let live_counted = (mid.classes[c].allocations - before.classes[c].allocations) as i64
            - (mid.classes[c].frees - before.classes[c].frees) as i64;
        prop_assert_eq!(live_counted, live_model, "class {} live objects", c);
    }
    prop_assert_eq!(mid.global.large_objects as i64 - before.global.large_objects as i64, m.large_live);
    while !m.live.is_empty() {
        let b = m.remove(0);
        Model::check_contents(&b, b.size)?;
        m.count_free(b.size, b.align);
        // SAFETY: a live block with its own layout.
        unsafe { A.dealloc(b.ptr, Layout::from_size_align(b.size, b.align).unwrap()) };
    }
    let after = snapshot();
    for c in 0..NUM_CLASSES {
        prop_assert_eq!(
            after.classes[c].allocations - before.classes[c].allocations,
            m.allocs[c],
            "class {} allocations",
            c
        );
        prop_assert_eq!(after.classes[c].frees - before.classes[c].frees, m.frees[c], "class {} frees", c);
    }
    prop_assert_eq!(after.global.large_objects, before.global.large_objects);
    prop_assert_eq!(m.large_live, 0);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn allocator_matches_the_model(ops in proptest::collection::vec(op(), 1..120)) {
        run(ops)?;
    }
}
