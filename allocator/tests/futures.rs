//! `in_domain` futures: what a future allocates while polled goes to its domain, when it moves
//! between threads between polls and when a thousand of them interleave on one thread, with no
//! misuse counted. Polled by hand (a no-op waker): no runtime needed.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use temporal_slab::{epoch, snapshot, EpochDomain, FutureExt, Snapshot, TemporalSlab};

#[global_allocator]
static GLOBAL: TemporalSlab = TemporalSlab::new();

static SERIAL: Mutex<()> = Mutex::new(());

/// Yields `steps` times; at each poll allocates `bytes` (small objects: labels count the small
/// allocation path) and keeps it.
struct Steps {
    steps: usize,
    bytes: usize,
    kept: Vec<Vec<u8>>,
}

impl Future for Steps {
    type Output = Vec<Vec<u8>>;
    fn poll(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Self::Output> {
        let b = self.bytes;
        self.kept.push(vec![7u8; b]);
        if self.kept.len() >= self.steps {
            Poll::Ready(std::mem::take(&mut self.kept))
        } else {
            Poll::Pending
        }
    }
}

fn steps(steps: usize, bytes: usize) -> Steps {
    Steps { steps, bytes, kept: Vec::with_capacity(steps) }
}

fn poll_once<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
    Pin::new(f).poll(&mut Context::from_waker(&noop_waker()))
}

fn misuse(s: &Snapshot) -> u64 {
    let g = &s.global;
    g.domain_misuse_out_of_order + g.domain_misuse_wrong_thread + g.domain_misuse_passed_era + g.domain_misuse_too_deep
}

fn label_bytes(s: &Snapshot, label: &str) -> u64 {
    s.label_registry.iter().filter(|l| l.label == label).map(|l| l.allocated_bytes).sum()
}

#[test]
fn a_future_moved_between_threads_allocates_in_its_domain() {
    let _t = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let s0 = snapshot();
    let domain = Arc::new(EpochDomain::new(Some("migrating-future")));
    let mut fut = Box::pin(steps(4, 16 << 10).in_domain(Arc::clone(&domain)));
    // Two polls here, two on another thread, one back here: the task moves as a runtime's would.
    assert!(poll_once(&mut fut).is_pending());
    assert!(poll_once(&mut fut).is_pending());
    let mut fut = std::thread::spawn(move || {
        assert!(poll_once(&mut fut).is_pending());
        fut
    })
    .join()
    .unwrap();
    let Poll::Ready(kept) = poll_once(&mut fut) else { panic!("not done after 4 polls") };
    assert_eq!(kept.len(), 4);
    let s1 = snapshot();
    let in_label = label_bytes(&s1, "migrating-future") - label_bytes(&s0, "migrating-future");
    assert!(in_label >= 4 * (16 << 10), "only {in_label} B charged to the domain's label");
    assert_eq!(misuse(&s1), misuse(&s0), "moving a future between polls is not a misuse");
    // Outside the polls, the thread is outside the domain.
    let outside0 = label_bytes(&snapshot(), "migrating-future");
    let _plain: Vec<Vec<u8>> = (0..16).map(|_| vec![1u8; 16 << 10]).collect();
    assert_eq!(label_bytes(&snapshot(), "migrating-future"), outside0);
    drop(kept);
}

#[test]
fn a_thousand_interleaved_futures_on_one_thread_each_charge_their_own_label() {
    let _t = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let labels = ["route-a", "route-b", "route-c", "route-d"];
    let s0 = snapshot();
    let domains: Vec<EpochDomain> = (0..1000).map(|i| EpochDomain::new(Some(labels[i % 4]))).collect();
    let mut futs: Vec<_> =
        domains.iter().enumerate().map(|(i, d)| Box::pin(steps(3, 1024 * (1 + i % 4)).in_domain(d))).collect();
    let mut done = vec![None; futs.len()];
    // Round robin: every future is polled between every two polls of any other.
    for _round in 0..3 {
        for (i, f) in futs.iter_mut().enumerate() {
            if done[i].is_none() {
                if let Poll::Ready(v) = poll_once(f) {
                    done[i] = Some(v);
                }
            }
        }
    }
    assert!(done.iter().all(Option::is_some), "every future finishes in 3 polls");
    let s1 = snapshot();
    for (k, l) in labels.iter().enumerate() {
        let charged = label_bytes(&s1, l) - label_bytes(&s0, l);
        let asked = 250 * 3 * 1024 * (k as u64 + 1);
        assert!(charged >= asked, "{l}: {charged} B charged, {asked} B allocated in its polls");
    }
    assert_eq!(misuse(&s1), misuse(&s0));
    assert_eq!(s1.global.ring_overflows, s0.global.ring_overflows);
    drop((futs, done));
    drop(domains);
    let _ = epoch::current();
}

/// A waker that does nothing (the futures here are polled in a loop, never woken).
fn noop_waker() -> Waker {
    struct Noop;
    impl Wake for Noop {
        fn wake(self: std::sync::Arc<Self>) {}
    }
    Waker::from(std::sync::Arc::new(Noop))
}
