//! epochs-mixed: a program whose cycles (a frame, a batch of messages) make many short-lived
//! objects and a few that outlive the cycle: per cycle [`Params::objects`] objects of 24-600 B
//! (log-uniform, so most are small), a mix of text built up in 16-64 B pieces in a `String` (so
//! reallocated as it grows, 35%), byte buffers (`Vec<u8>`, 30%), small boxed records (20%) and
//! id lists (`Vec<u32>`, 15%). Objects die at different times: about one in eight is dropped
//! at a random point of its cycle, the rest when the cycle ends, except one in
//! [`Params::survive_every`] (2% at full scale), which joins the cycle's survivors; a queue keeps
//! the survivors of the last [`Params::survive_cycles`] cycles (a cache, a history) and frees
//! the oldest cycle's when a new cycle starts.
//!
//! With `epochs`, each cycle is one epoch: `epoch::current()` at its start, `epoch::close(e)` at
//! its end ([`Phase`]). The survivors are allocated inside the cycle's epoch, as a real program's
//! would be: they are the lifetime mix the API has to cope with.
//!
//! Live bytes: every object's requested size plus the buffers of the survivor lists, the queue
//! and the cycle's working list. The peak is counted at each cycle's end (the most the cycle
//! holds); the end readings are taken after the last cycle, with the working list dropped and the
//! survivors of the last cycles still held.

use std::collections::VecDeque;
use std::hint::black_box;
use std::time::Duration;

use super::phase::{deque_bytes, string_bytes, vec_bytes, End, Phase};
use super::{on_threads, Outcome, Rng};

/// Sizes of a run.
#[derive(Clone, Copy, Debug)]
pub struct Params {
    /// Cycles.
    pub cycles: usize,
    /// Objects made per cycle.
    pub objects: usize,
    /// One object in this many outlives its cycle.
    pub survive_every: usize,
    /// Cycles a survivor lives.
    pub survive_cycles: usize,
}

/// The reported size: 300 cycles x 40,000 objects, 2% living on for 30 cycles.
pub const FULL: Params = Params { cycles: 300, objects: 40_000, survive_every: 50, survive_cycles: 30 };
/// The smoke-test size.
pub const QUICK: Params = Params { cycles: 12, objects: 2_000, survive_every: 50, survive_cycles: 4 };

/// Smallest and largest object, bytes.
const MIN_SIZE: usize = 24;
const MAX_SIZE: usize = 600;

/// Text appended to the growing strings (ASCII, so any byte range of it is a `str`).
const TEXT: &str = "lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do ";

/// A small record, as a program boxes its entities.
#[derive(Debug)]
struct Record {
    id: u64,
    parent: u64,
    weight: f64,
    flags: u32,
}

/// One object of the mix.
#[derive(Debug)]
enum Obj {
    Text(String),
    Bytes(Vec<u8>),
    Record(Box<Record>),
    Ids(Vec<u32>),
}

impl Obj {
    /// A new object of the mix.
    fn make(rng: &mut Rng, id: u64) -> Obj {
        let size = rng.log_uniform(MIN_SIZE, MAX_SIZE);
        match rng.below(100) {
            0..=34 => {
                // Built up in pieces of 16-64 bytes: the String reallocates as it grows.
                let mut s = String::new();
                while s.len() < size {
                    let n = rng.range(16, TEXT.len()).min(size - s.len());
                    let at = rng.below(TEXT.len() - n + 1);
                    s.push_str(&TEXT[at..at + n]);
                }
                Obj::Text(s)
            }
            35..=64 => Obj::Bytes(vec![id as u8 | 1; size]),
            65..=84 => {
                Obj::Record(Box::new(Record { id, parent: id / 7, weight: id as f64 * 0.5, flags: (id & 0xff) as u32 }))
            }
            _ => Obj::Ids((0..size / 4).map(|j| (id as u32).wrapping_add(j as u32)).collect()),
        }
    }

    /// Bytes this object asked the allocator for.
    fn bytes(&self) -> usize {
        match self {
            Obj::Text(s) => string_bytes(s),
            Obj::Bytes(v) => vec_bytes(v),
            Obj::Record(_) => std::mem::size_of::<Record>(),
            Obj::Ids(v) => vec_bytes(v),
        }
    }

    /// A byte of the object, so its contents are read.
    fn probe(&self) -> u64 {
        match self {
            Obj::Text(s) => u64::from(s.as_bytes()[s.len() / 2]),
            Obj::Bytes(v) => u64::from(v[v.len() - 1]),
            Obj::Record(r) => r.id ^ r.parent ^ r.weight.to_bits() ^ u64::from(r.flags),
            Obj::Ids(v) => u64::from(v.first().copied().unwrap_or(0)),
        }
    }
}

/// Runs epochs-mixed; `epochs`: an epoch per cycle; `idle`: take the end readings.
///
/// # Errors
/// A failure reading `/proc` for the end readings.
pub fn run(p: &Params, epochs: bool, idle: Option<Duration>) -> Result<Outcome, String> {
    let (ns, mut results) = on_threads(1, |_, gate| {
        let mut rng = Rng::new(0xE90C);
        let mut work: Vec<Obj> = Vec::with_capacity(p.objects);
        let mut queue: VecDeque<(Vec<Obj>, usize)> = VecDeque::with_capacity(p.survive_cycles + 1);
        // Bytes held by the queue's survivors (their objects and their lists' buffers).
        let mut kept_bytes = 0usize;
        let mut live_peak = 0usize;
        let mut check = 0u64;
        gate.start();
        for c in 0..p.cycles {
            let phase = Phase::begin(epochs);
            if queue.len() == p.survive_cycles {
                if let Some((old, bytes)) = queue.pop_front() {
                    kept_bytes -= bytes;
                    drop(old);
                }
            }
            let mut survivors: Vec<Obj> = Vec::new();
            let mut survivor_bytes = 0usize;
            let mut work_bytes = 0usize;
            for i in 0..p.objects {
                let o = Obj::make(&mut rng, (c * p.objects + i) as u64);
                if rng.below(p.survive_every) == 0 {
                    survivor_bytes += o.bytes();
                    survivors.push(o);
                    continue;
                }
                work_bytes += o.bytes();
                work.push(o);
                // About one object in eight dies early, at a random point of the cycle.
                if rng.below(8) == 0 {
                    let k = rng.below(work.len());
                    let gone = work.swap_remove(k);
                    check = check.wrapping_add(gone.probe());
                    work_bytes -= gone.bytes();
                }
            }
            survivor_bytes += vec_bytes(&survivors);
            let held = kept_bytes + survivor_bytes + work_bytes + vec_bytes(&work) + deque_bytes(&queue);
            live_peak = live_peak.max(held);
            check = work.iter().step_by(97).map(Obj::probe).fold(check, u64::wrapping_add);
            work.clear();
            kept_bytes += survivor_bytes;
            queue.push_back((survivors, survivor_bytes));
            phase.end();
        }
        gate.end();
        black_box(check);
        drop(work);
        let live_end = kept_bytes + deque_bytes(&queue);
        let end = idle.map(|d| End::read(d, live_peak as u64, live_end as u64)).transpose();
        drop(queue);
        end
    });
    let end = results.pop().unwrap_or(Ok(None))?;
    Ok(Outcome {
        elapsed_ns: ns,
        ops: (p.cycles * p.objects) as u64,
        end,
        extra: Some(serde_json::json!({
            "epochs": epochs,
            "cycles": p.cycles,
            "objects_per_cycle": p.objects,
            "survive_every": p.survive_every,
            "survive_cycles": p.survive_cycles,
        })),
        ..Outcome::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_the_same_survivors_with_and_without_epochs() {
        let ends: Vec<End> = [false, true]
            .iter()
            .map(|&epochs| {
                let o = run(&QUICK, epochs, Some(Duration::ZERO)).unwrap();
                assert_eq!(o.ops, (QUICK.cycles * QUICK.objects) as u64);
                o.end.unwrap()
            })
            .collect();
        assert!(ends[0].live_end_bytes > 0 && ends[0].live_peak_bytes > ends[0].live_end_bytes);
        // The live bytes are counted from the workload's own data: the same on every run.
        assert_eq!(
            (ends[0].live_peak_bytes, ends[0].live_end_bytes),
            (ends[1].live_peak_bytes, ends[1].live_end_bytes)
        );
        assert!(run(&QUICK, false, None).unwrap().end.is_none());
    }
}
