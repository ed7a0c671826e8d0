//! epochs-big-phase: a batch job whose batches each build [`Params::batch_bytes`] of data and
//! drop all of it at the batch's end (a compiler's per-file arena, an ETL job's chunk): input
//! chunks of 4-32 KiB (log-uniform; one object in 100) are read into `Vec<u8>` buffers and parsed
//! into records whose key is a 64-256 B `String` (log-uniform), in a `Vec` that grows by
//! doubling. At the batch's end a one-line summary is kept (the only thing that outlives a
//! batch), then the records and the chunks are dropped, in the order they were made.
//!
//! With `epochs`, each batch is one epoch: `epoch::current()` at its start, `epoch::close(e)` at
//! its end ([`Phase`]), after everything of the batch is freed.
//!
//! Live bytes: the requested sizes of keys, chunks, both lists' buffers and the summaries. The
//! peak is counted at each batch's end, before the drop; at the end readings the program holds
//! only the summaries, so RSS against the peak live bytes is the figure that says how much of a
//! finished phase's memory the allocator keeps.

use std::hint::black_box;
use std::time::Duration;

use super::phase::{string_bytes, vec_bytes, End, Phase};
use super::{on_threads, Outcome, Rng};

/// Sizes of a run.
#[derive(Clone, Copy, Debug)]
pub struct Params {
    /// Batches.
    pub batches: usize,
    /// Bytes of keys and chunks each batch makes (not counting the lists' buffers).
    pub batch_bytes: usize,
}

/// The reported size: 30 batches of 100 MiB.
pub const FULL: Params = Params { batches: 30, batch_bytes: 100 << 20 };
/// The smoke-test size.
pub const QUICK: Params = Params { batches: 4, batch_bytes: 1 << 20 };

/// What keys are cut from (ASCII, 256 + 26 bytes).
const KEY_TEXT: &str = concat!(
    "abcdefghijklmnopqrstuvwxyz",
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
);

/// A parsed record.
#[derive(Debug)]
struct Record {
    key: String,
    chunk: u32,
    offset: u32,
}

/// Runs epochs-big-phase; `epochs`: an epoch per batch; `idle`: take the end readings.
///
/// # Errors
/// A failure reading `/proc` for the end readings.
pub fn run(p: &Params, epochs: bool, idle: Option<Duration>) -> Result<Outcome, String> {
    let (ns, mut results) = on_threads(1, |_, gate| {
        let mut rng = Rng::new(0xB16);
        let mut summaries: Vec<String> = Vec::with_capacity(p.batches);
        let mut live_peak = 0usize;
        let mut objects = 0u64;
        gate.start();
        for b in 0..p.batches {
            let phase = Phase::begin(epochs);
            let mut records: Vec<Record> = Vec::new();
            let mut chunks: Vec<Vec<u8>> = Vec::new();
            let mut bytes = 0usize;
            let mut check = 0u64;
            while bytes < p.batch_bytes {
                if rng.below(100) == 0 || chunks.is_empty() {
                    let n = rng.log_uniform(4 << 10, 32 << 10);
                    let chunk = vec![(b as u8) | 1; n];
                    bytes += vec_bytes(&chunk);
                    chunks.push(chunk);
                } else {
                    let n = rng.log_uniform(64, 256);
                    let mut key = String::with_capacity(n);
                    let at = records.len() % 26;
                    key.push_str(&KEY_TEXT[at..at + n]);
                    bytes += string_bytes(&key);
                    let chunk = (chunks.len() - 1) as u32;
                    records.push(Record { key, chunk, offset: rng.below(4096) as u32 });
                }
                objects += 1;
            }
            for r in records.iter().step_by(101) {
                check = check.wrapping_add(u64::from(r.key.as_bytes()[0]) + u64::from(r.chunk ^ r.offset));
            }
            let held = bytes
                + vec_bytes(&records)
                + vec_bytes(&chunks)
                + summaries.iter().map(string_bytes).sum::<usize>()
                + vec_bytes(&summaries);
            live_peak = live_peak.max(held);
            summaries.push(format!(
                "batch {b}: {} records, {} chunks, checksum {check:x}",
                records.len(),
                chunks.len()
            ));
            drop(records);
            drop(chunks);
            phase.end();
        }
        gate.end();
        let live_end = summaries.iter().map(string_bytes).sum::<usize>() + vec_bytes(&summaries);
        let end = idle.map(|d| End::read(d, live_peak as u64, live_end as u64)).transpose();
        black_box(&summaries);
        (end, objects)
    });
    let (end, objects) = results.pop().unwrap_or((Ok(None), 0));
    Ok(Outcome {
        elapsed_ns: ns,
        ops: objects,
        end: end?,
        extra: Some(serde_json::json!({
            "epochs": epochs,
            "batches": p.batches,
            "batch_bytes": p.batch_bytes,
        })),
        ..Outcome::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_its_size_and_only_summaries_outlive_it() {
        let o = run(&QUICK, true, Some(Duration::ZERO)).unwrap();
        let e = o.end.unwrap();
        assert!(e.live_peak_bytes >= QUICK.batch_bytes as u64);
        assert!(e.live_end_bytes > 0 && e.live_end_bytes < 4096);
        assert_eq!(run(&QUICK, false, Some(Duration::ZERO)).unwrap().end.unwrap().live_peak_bytes, e.live_peak_bytes);
    }
}
