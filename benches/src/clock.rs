//! A cheap clock for timing single allocator calls, and nearest-rank percentiles.
//!
//! On x86_64 a reading is `lfence; rdtsc`: the fence keeps the time-stamp read from starting
//! before the instructions ahead of it have finished (so the timed call is not cut short at the
//! front); it costs one fence, far less than a `clock_gettime` pair. Elsewhere it is
//! [`Instant`] in nanoseconds. Ticks become nanoseconds through [`ticks_per_ns`], calibrated once
//! against [`Instant`] over [`CALIBRATION`].
//!
//! A timed region always includes the clock's own cost: [`overhead_samples`] measures it (the
//! percentiles of an empty region), and the runners report it next to every latency figure
//! instead of subtracting it.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long [`ticks_per_ns`] spins to calibrate the tick rate.
pub const CALIBRATION: Duration = Duration::from_millis(20);

/// The current tick count (see the module docs).
#[inline(always)]
pub fn now() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: `lfence` (SSE2, part of the x86_64 baseline) and `rdtsc` read no memory and
        // have no preconditions; they only order and read the time-stamp counter.
        unsafe {
            core::arch::x86_64::_mm_lfence();
            core::arch::x86_64::_rdtsc()
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        static START: OnceLock<Instant> = OnceLock::new();
        u64::try_from(START.get_or_init(Instant::now).elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// Ticks per nanosecond (1 where [`now`] is in nanoseconds). The first call calibrates for
/// [`CALIBRATION`] (busy-waiting); later calls return the cached value.
pub fn ticks_per_ns() -> f64 {
    static RATE: OnceLock<f64> = OnceLock::new();
    *RATE.get_or_init(|| {
        if !cfg!(target_arch = "x86_64") {
            return 1.0;
        }
        let (t0, c0) = (Instant::now(), now());
        while t0.elapsed() < CALIBRATION {
            std::hint::spin_loop();
        }
        let (c1, dt) = (now(), t0.elapsed());
        (c1.wrapping_sub(c0)) as f64 / dt.as_nanos() as f64
    })
}

/// Ticks between two readings, saturated into a `u32` sample.
#[inline(always)]
pub fn span(t0: u64, t1: u64) -> u32 {
    u32::try_from(t1.wrapping_sub(t0)).unwrap_or(u32::MAX)
}

/// `n` samples of an empty timed region: the clock's own cost, in ticks.
pub fn overhead_samples(n: usize) -> Vec<u32> {
    (0..n)
        .map(|_| {
            let t0 = now();
            let t1 = now();
            span(t0, t1)
        })
        .collect()
}

/// Nearest-rank percentiles of a set of samples, in nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Percentiles {
    /// Number of samples.
    pub n: usize,
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// 99.99th percentile.
    pub p9999: f64,
    /// Largest sample.
    pub max: f64,
}

impl Percentiles {
    /// Percentiles of `samples` (ticks; sorted in place), converted with `ticks_per_ns`; `None`
    /// for no samples.
    pub fn of_ticks(samples: &mut [u32], ticks_per_ns: f64) -> Option<Percentiles> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        let ns = |per_10k: usize| samples[rank(samples.len(), per_10k)] as f64 / ticks_per_ns;
        Some(Percentiles {
            n: samples.len(),
            p50: ns(5000),
            p99: ns(9900),
            p999: ns(9990),
            p9999: ns(9999),
            max: samples[samples.len() - 1] as f64 / ticks_per_ns,
        })
    }

    /// As JSON: `{"n", "p50_ns", "p99_ns", "p999_ns", "p9999_ns", "max_ns"}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "n": self.n,
            "p50_ns": self.p50,
            "p99_ns": self.p99,
            "p999_ns": self.p999,
            "p9999_ns": self.p9999,
            "max_ns": self.max,
        })
    }
}

/// Zero-based index of the nearest-rank `per_10k / 10000` percentile of `n > 0` sorted samples.
pub fn rank(n: usize, per_10k: usize) -> usize {
    (n * per_10k).div_ceil(10_000).clamp(1, n) - 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        assert_eq!(rank(1, 5000), 0);
        assert_eq!(rank(100, 5000), 49);
        assert_eq!(rank(100, 9900), 98);
        assert_eq!(rank(100, 9999), 99);
        assert_eq!(rank(10_000, 9999), 9998);
        let mut s: Vec<u32> = (1..=1000).rev().collect();
        let p = Percentiles::of_ticks(&mut s, 1.0).unwrap();
        assert_eq!((p.p50, p.p99, p.p999, p.p9999, p.max), (500.0, 990.0, 999.0, 1000.0, 1000.0));
        assert!(Percentiles::of_ticks(&mut [], 1.0).is_none());
    }

    #[test]
    fn clock_moves_forward() {
        let t0 = now();
        std::thread::sleep(Duration::from_millis(1));
        assert!(now() > t0);
        assert!(ticks_per_ns() > 0.0);
    }
}
