//! What the workloads of the `epochs` group share: the phase API calls made only when asked
//! ([`Phase`]), and the end readings ([`End`]) that let RSS be compared with what the program
//! really holds.
//!
//! The group measures the product promise: telling temporal-slab about phases (epochs, domains)
//! must make a program faster and smaller, never slower or bigger. So every workload of the group
//! does exactly the same work with and without the API; `epochs` only adds the calls.
//!
//! *Live bytes* are counted by the workload from its own data structures: the sizes it asked the
//! allocator for (`capacity()` of its `String`s and `Vec`s, `size_of` of its boxes and of its
//! containers' buffers), never from the allocator's counters, so the figure is the same on every
//! allocator. Hash tables are not counted (their buffer size is not public); the group's
//! workloads keep none alive at the reading points.

use std::time::Duration;

use temporal_slab::epoch::{self, EpochId};

use crate::procfs;

/// Idle time before the "RSS after idle" reading at full scale: enough for temporal-slab's
/// background reclaimer (0.5 s decay of warm slabs, 100 ms tick) and for the peers' own decay
/// where they have one that runs without allocator calls.
pub const IDLE: Duration = Duration::from_millis(1500);
/// Idle time at quick scale (the smoke test measures nothing).
pub const QUICK_IDLE: Duration = Duration::from_millis(50);

/// The readings a workload of the group takes at the end of a run, while it still holds its
/// long-lived data.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct End {
    /// The most bytes the workload held at once, at the points where it counts them (bytes).
    pub live_peak_bytes: u64,
    /// Bytes the workload holds at the two RSS readings below (bytes).
    pub live_end_bytes: u64,
    /// RSS right after the last timed step (bytes).
    pub rss_after_bytes: u64,
    /// RSS after [`End::idle_ms`] of sleep, nothing else running in the workload (bytes).
    pub rss_idle_bytes: u64,
    /// The idle time (ms).
    pub idle_ms: u64,
}

impl End {
    /// Reads RSS now, sleeps `idle`, reads it again.
    ///
    /// # Errors
    /// A failure reading `/proc/self/statm`.
    pub fn read(idle: Duration, live_peak_bytes: u64, live_end_bytes: u64) -> Result<End, String> {
        let rss_after_bytes = procfs::rss_bytes()?;
        std::thread::sleep(idle);
        let rss_idle_bytes = procfs::rss_bytes()?;
        Ok(End {
            live_peak_bytes,
            live_end_bytes,
            rss_after_bytes,
            rss_idle_bytes,
            idle_ms: u64::try_from(idle.as_millis()).unwrap_or(u64::MAX),
        })
    }

    /// As JSON (the keys are the field names).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "live_peak_bytes": self.live_peak_bytes,
            "live_end_bytes": self.live_end_bytes,
            "rss_after_bytes": self.rss_after_bytes,
            "rss_idle_bytes": self.rss_idle_bytes,
            "idle_ms": self.idle_ms,
        })
    }
}

/// One phase of a program (a cycle, a batch): with the API, the epoch current at its start,
/// closed at its end (`epoch::close` advances first when it is still current); without, nothing.
#[derive(Debug)]
#[must_use = "a phase ends with Phase::end"]
pub struct Phase(Option<EpochId>);

impl Phase {
    /// Starts a phase (`epoch::current()` when `epochs`).
    pub fn begin(epochs: bool) -> Phase {
        Phase(epochs.then(epoch::current))
    }

    /// Ends it (`epoch::close(e)` when it was begun with the API).
    pub fn end(self) {
        if let Some(e) = self.0 {
            epoch::close(e);
        }
    }
}

/// Requested bytes of a `String` (its capacity).
pub fn string_bytes(s: &String) -> usize {
    s.capacity()
}

/// Requested bytes of a `Vec<T>`'s buffer (not of what its elements own).
pub fn vec_bytes<T>(v: &Vec<T>) -> usize {
    v.capacity() * std::mem::size_of::<T>()
}

/// Requested bytes of a `VecDeque<T>`'s buffer.
pub fn deque_bytes<T>(q: &std::collections::VecDeque<T>) -> usize {
    q.capacity() * std::mem::size_of::<T>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requested_sizes() {
        let s = String::with_capacity(40);
        assert_eq!(string_bytes(&s), s.capacity());
        let v: Vec<u32> = Vec::with_capacity(10);
        assert_eq!(vec_bytes(&v), v.capacity() * 4);
        let e = End::read(Duration::ZERO, 2, 1).unwrap();
        assert!(e.rss_after_bytes > 0 && e.rss_idle_bytes > 0);
        assert_eq!(e.to_json()["live_end_bytes"], 1);
    }
}
