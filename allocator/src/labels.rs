//! The label registry: up to [`MAX_LABELS`] distinct domain labels of up to [`LABEL_MAX`] bytes,
//! each with a small id that per-heap and per-slot counters index.
//!
//! Finding a label takes no lock. Labels are only ever added, never changed or removed, so the
//! table is published the way an append-only log is: a writer (under [`WRITER`]) fills entry `n`
//! and then stores the count `n + 1` with Release; a reader loads the count with Acquire and
//! compares only the entries below it. Each entry is the label packed into four words (its length
//! in the last byte, its bytes from the first, zero-padded), so a comparison is four word loads
//! with an early exit at the first that differs. Every thread that opens a domain looks its
//! label up here: an entry's line is written once and then only read, so it is shared clean
//! between cores. (A lock per lookup, the design before this one, let a thread preempted while
//! holding it stall every other thread opening a domain.)
//!
//! Label 0 is the fixed label `"(overflow)"`, returned (and counted) when the registry is full.
//! Labels are stored as given; printers escape them.

use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::counters::GLOBAL;
pub use crate::counters::MAX_LABELS;
use crate::sync::SpinLock;

/// Most bytes in a label.
pub const LABEL_MAX: usize = 31;
/// The label given when the registry is full.
pub const OVERFLOW_LABEL: &str = "(overflow)";

/// Words in a packed label: [`LABEL_MAX`] bytes and its length.
const WORDS: usize = (LABEL_MAX + 1) / 8;

/// A label packed into words: its bytes from byte 0, zero-padded, and its length in the last
/// byte (always padding, as a label has at most [`LABEL_MAX`] bytes).
type Packed = [u64; WORDS];

/// Packs `label` (at most [`LABEL_MAX`] bytes) with word loads straight from it: every whole
/// 8-byte chunk, then the tail as the last 8 bytes shifted down (they overlap the chunk before),
/// or byte by byte when the label is shorter than 8.
fn pack(label: &[u8]) -> Packed {
    let len = label.len().min(LABEL_MAX);
    let word_at = |i: usize| label.get(i..).and_then(<[u8]>::first_chunk::<8>).map_or(0, |b| u64::from_le_bytes(*b));
    let mut out = [0u64; WORDS];
    let mut i = 0;
    while i + 8 <= len {
        out[i / 8] = word_at(i);
        i += 8;
    }
    let tail = len - i;
    if tail != 0 {
        out[i / 8] = if len >= 8 {
            word_at(len - 8) >> (8 * (8 - tail))
        } else {
            label[..len].iter().rev().fold(0u64, |w, &b| w << 8 | u64::from(b))
        };
    }
    out[WORDS - 1] |= (len as u64) << 56;
    out
}

/// Calls `f` with the bytes of a packed label.
fn with_bytes<R>(p: &Packed, f: impl FnOnce(&[u8]) -> R) -> R {
    let mut bytes = [0u8; WORDS * 8];
    for (chunk, w) in bytes.chunks_exact_mut(8).zip(p) {
        chunk.copy_from_slice(&w.to_le_bytes());
    }
    let len = (bytes[WORDS * 8 - 1] as usize).min(LABEL_MAX);
    f(&bytes[..len])
}

/// The entries; entry `i` is written once, before [`COUNT`] passes `i`.
static TABLE: [[AtomicU64; WORDS]; MAX_LABELS] = [const { [const { AtomicU64::new(0) }; WORDS] }; MAX_LABELS];
/// Entries published so far (1 until a label is registered: entry 0 is the overflow label,
/// which `load` packs on the fly rather than storing).
static COUNT: AtomicUsize = AtomicUsize::new(1);
/// Held by the one thread adding an entry (and by the fork handlers).
pub(crate) static WRITER: SpinLock<()> = SpinLock::new(());

fn load(i: usize) -> Packed {
    if i == 0 {
        return pack(OVERFLOW_LABEL.as_bytes());
    }
    core::array::from_fn(|w| TABLE[i][w].load(Ordering::Relaxed))
}

/// The id of `key` among the first `n` entries (0 is never searched: it is not a user label).
fn find(key: &Packed, n: usize) -> Option<usize> {
    (1..n).find(|&i| {
        let e = &TABLE[i];
        // Relaxed: the entries below `n` were published by the Acquire load of COUNT.
        e[0].load(Ordering::Relaxed) == key[0] && (1..WORDS).all(|w| e[w].load(Ordering::Relaxed) == key[w])
    })
}

/// Cuts `s` to at most LABEL_MAX bytes at a character boundary.
fn cut(s: &str) -> &str {
    if s.len() <= LABEL_MAX {
        return s;
    }
    let mut end = LABEL_MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A label registered once, for domains opened many times with it (a route, a kind of job):
/// [`EpochDomain::labelled`](crate::EpochDomain::labelled) opens a domain with it without the
/// registry lookup that [`EpochDomain::new`](crate::EpochDomain::new) makes for a `&str` (about
/// 80 instructions for a short label among a few). A full registry gives the overflow label,
/// counted once, here.
///
/// ```
/// use temporal_slab::{EpochDomain, Label};
/// let upload = Label::new("upload");
/// for _ in 0..3 {
///     let request = EpochDomain::labelled(upload);
///     let _in = request.enter();
/// }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Label(u8);

impl Label {
    /// Registers `name` (or finds it), cut to [`LABEL_MAX`] bytes at a character boundary.
    pub fn new(name: &str) -> Label {
        Label(intern(name))
    }

    /// Whether this is the overflow label (the registry was full when it was made).
    pub fn is_overflow(self) -> bool {
        self.0 == 0
    }

    /// The registry id (what per-label counters index).
    pub(crate) fn id(self) -> u8 {
        self.0
    }
}

/// Registers `label` (or finds it) and returns its id; 0 when the registry is full. Takes no
/// lock unless the label is new and there is room for it.
pub(crate) fn intern(label: &str) -> u8 {
    let key = pack(cut(label).as_bytes());
    // Acquire: pairs with the Release store of COUNT in `add`, so the entries below it are whole.
    let n = COUNT.load(Ordering::Acquire);
    if let Some(i) = find(&key, n) {
        return i as u8;
    }
    if n == MAX_LABELS {
        return overflow();
    }
    add(&key)
}

/// The registry is full: counted, and the overflow label's id. (COUNT never falls, so a full
/// registry needs no lock to say so.)
fn overflow() -> u8 {
    GLOBAL.label_overflows.fetch_add(1, Ordering::Relaxed);
    0
}

#[cold]
fn add(key: &Packed) -> u8 {
    let _g = WRITER.lock();
    // Relaxed: only writers change COUNT, and we hold the writers' lock.
    let n = COUNT.load(Ordering::Relaxed);
    if let Some(i) = find(key, n) {
        return i as u8;
    }
    if n == MAX_LABELS {
        return overflow();
    }
    for (slot, &w) in TABLE[n].iter().zip(key) {
        slot.store(w, Ordering::Relaxed);
    }
    // Release: publishes the entry's words to every reader that loads the new count (Acquire).
    COUNT.store(n + 1, Ordering::Release);
    n as u8
}

/// Calls `f` with the id and bytes of every label (id 0, the overflow label, included), without
/// a lock and without allocating. Returns the number of registered labels (excluding the
/// overflow label).
pub(crate) fn for_each_label(mut f: impl FnMut(usize, &[u8])) -> usize {
    // Acquire: as in `intern`.
    let n = COUNT.load(Ordering::Acquire);
    for i in 0..n {
        with_bytes(&load(i), |b| f(i, b));
    }
    n - 1
}

/// Labels registered so far (excluding the overflow label).
pub fn label_count() -> usize {
    COUNT.load(Ordering::Acquire) - 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_cut_at_a_char_boundary() {
        assert_eq!(cut("short"), "short");
        let long = "é".repeat(20); // 40 bytes
        let c = cut(&long);
        assert!(c.len() <= LABEL_MAX && c.len() == 30);
    }

    #[test]
    fn packing_keeps_length_and_bytes() {
        for s in ["", "a", "GET /users", "GET /users/:id", &"x".repeat(LABEL_MAX)] {
            let p = pack(s.as_bytes());
            with_bytes(&p, |b| assert_eq!(b, s.as_bytes()));
        }
        // Every length, short and long, with a tail and without.
        let long: Vec<u8> = (1..=LABEL_MAX as u8).collect();
        for len in 0..=LABEL_MAX {
            with_bytes(&pack(&long[..len]), |b| assert_eq!(b, &long[..len]));
        }
        // A prefix differs from the longer label; a trailing NUL is not padding.
        assert_ne!(pack(b"GET /users"), pack(b"GET /users/:id"));
        assert_ne!(pack(b"ab"), pack(b"ab\0"));
    }

    #[test]
    fn the_same_label_gets_the_same_id_from_many_threads() {
        let names: Vec<String> = (0..6).map(|i| format!("labels-test-{i}")).collect();
        let ids: Vec<Vec<u8>> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..4).map(|_| s.spawn(|| names.iter().map(|n| intern(n)).collect::<Vec<u8>>())).collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(ids.iter().all(|v| v == &ids[0]), "{ids:?}");
        let mut seen = std::collections::HashSet::new();
        for (i, name) in names.iter().enumerate() {
            let id = ids[0][i];
            assert!(id != 0, "registry full in a unit test");
            assert!(seen.insert(id), "two labels share id {id}");
            let mut found = None;
            for_each_label(|j, b| {
                if j == id as usize {
                    found = Some(b.to_vec());
                }
            });
            assert_eq!(found.as_deref(), Some(name.as_bytes()));
        }
    }
}
