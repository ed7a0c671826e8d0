//! What `in_domain` costs per poll: a future that is ready after N polls (each poll does no
//! work), polled by hand, plain and wrapped, in turns; prints ns per poll (median of 11 rounds).
//!
//! `cargo run --release -p temporal-slab --example poll_cost`

use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Instant;

use temporal_slab::{EpochDomain, FutureExt, TemporalSlab};

#[global_allocator]
static GLOBAL: TemporalSlab = TemporalSlab::new();

struct Countdown(u64);

impl Future for Countdown {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        self.0 -= 1;
        if black_box(self.0) == 0 {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

fn run<F: Future>(f: F) -> f64 {
    let mut f = std::pin::pin!(f);
    let waker = noop_waker();
    let mut cx = Context::from_waker(&waker);
    let (t, mut polls) = (Instant::now(), 0u64);
    while f.as_mut().poll(&mut cx).is_pending() {
        polls += 1;
    }
    t.elapsed().as_nanos() as f64 / (polls + 1) as f64
}

fn main() {
    const POLLS: u64 = 2_000_000;
    let domain = EpochDomain::new(Some("poll-cost"));
    let (mut plain, mut wrapped) = (Vec::new(), Vec::new());
    for _ in 0..11 {
        plain.push(run(Countdown(POLLS)));
        wrapped.push(run(Countdown(POLLS).in_domain(&domain)));
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (p, w) = (median(&mut plain), median(&mut wrapped));
    println!("plain poll {p:.1} ns, in_domain poll {w:.1} ns, cost of the domain {:.1} ns per poll", w - p);
}

/// A waker that does nothing (the futures here are polled in a loop, never woken).
fn noop_waker() -> Waker {
    struct Noop;
    impl Wake for Noop {
        fn wake(self: std::sync::Arc<Self>) {}
    }
    Waker::from(std::sync::Arc::new(Noop))
}
