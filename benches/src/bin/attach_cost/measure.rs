//! Small measuring helpers: a seeded generator for object sizes, percentiles and summaries of
//! samples, and readings from the snapshot and from /proc.

use super::*;

/// xorshift64*: a fixed, cheap pseudo-random sequence.
pub(super) struct Rng(pub(super) u64);

impl Rng {
    pub(super) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform-ish in `0..n` (n > 0).
    pub(super) fn below(&mut self, n: usize) -> usize {
        (((self.next() >> 32) * n as u64) >> 32) as usize
    }

    pub(super) fn size(&mut self) -> usize {
        MIN_SIZE + self.below(MAX_SIZE - MIN_SIZE + 1)
    }
}

/// A live object of `size` bytes (exactly `size` bytes of capacity) with one byte written.
pub(super) fn object(size: usize, byte: u8) -> Vec<u8> {
    let mut v = Vec::with_capacity(size);
    v.push(byte);
    v
}

/// Nearest-rank percentile of sorted `v` (`p` in 0..=100).
pub(super) fn pct<T: Copy>(sorted: &[T], p: f64) -> T {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

pub(super) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Median, p99, min and max of durations, in ms.
pub(super) struct Summary {
    pub(super) n: usize,
    pub(super) p50: f64,
    pub(super) p99: f64,
    pub(super) min: f64,
    pub(super) max: f64,
}

pub(super) fn summarize(samples: &[Duration]) -> Summary {
    let mut s = samples.to_vec();
    s.sort();
    Summary { n: s.len(), p50: ms(pct(&s, 50.0)), p99: ms(pct(&s, 99.0)), min: ms(s[0]), max: ms(s[s.len() - 1]) }
}

pub(super) fn median_f64(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    pct(&s, 50.0)
}

/// Objects held by small-size classes, summed.
pub(super) fn live_objects(s: &Snapshot) -> u64 {
    s.classes.iter().map(|c| c.live_objects).sum()
}

/// Epoch slots whose slabs hold live bytes.
pub(super) fn epochs_holding(s: &Snapshot) -> usize {
    s.epochs.iter().filter(|e| e.live_bytes > 0).count()
}

/// CPU time (ns on CPU) of thread `tid` of this process.
pub(super) fn thread_cpu_ns(tid: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat")).ok()?;
    s.split_whitespace().next()?.parse().ok()
}

/// Threads of this process other than the main thread (the reclaimer, in the target).
pub(super) fn other_threads() -> Vec<String> {
    let me = std::process::id().to_string();
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else { return Vec::new() };
    dir.filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned())).filter(|t| *t != me).collect()
}
