//! Domains for async code: [`FutureExt::in_domain`] wraps a future so that every poll runs inside
//! an [`EpochDomain`].
//!
//! A request in an async service is a future that a runtime polls on whatever worker thread is
//! free, interleaved with thousands of others on each thread, so a guard held across `.await`
//! cannot follow it (guards are per-thread). The wrapper instead enters the domain at the start
//! of each `poll` and exits at its end, on the thread that polls: what the future allocates
//! while it runs goes to the domain's epoch and label, whichever thread runs it and whatever
//! runs between its polls. Entering a domain of the thread's current epoch is a few
//! thread-local writes (see [`EpochDomain::enter`]), so the cost is per poll, not per
//! allocation. Nothing here needs more than `core::future`.
//!
//! Not covered: what the future's own destructor frees or allocates when it is dropped without
//! finishing runs outside the domain (as does anything the runtime allocates to schedule it).

use core::future::Future;
use core::ops::Deref;
use core::pin::Pin;
use core::task::{Context, Poll};

use crate::domain::EpochDomain;

/// A future that runs each poll of `F` inside the domain `D` points to (see the module docs).
/// Made by [`FutureExt::in_domain`].
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct InDomain<D, F> {
    domain: D,
    future: F,
}

impl<D, F> Future for InDomain<D, F>
where
    D: Deref<Target = EpochDomain>,
    F: Future,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: pin projection by hand. `future` is pinned whenever `self` is: it is never
        // moved out of `self` or handed out unpinned, `InDomain` has no `Drop` of its own, and it
        // is `Unpin` only when `F` (and `D`) are. `domain` is only borrowed, never pinned.
        let this = unsafe { self.get_unchecked_mut() };
        let _inside = this.domain.enter();
        // SAFETY: see above; the guard drops after the poll, on this thread.
        unsafe { Pin::new_unchecked(&mut this.future) }.poll(cx)
    }
}

/// Adds [`in_domain`](FutureExt::in_domain) to every future.
pub trait FutureExt: Future + Sized {
    /// Runs every poll of this future inside `domain`: a `&EpochDomain`, or an
    /// `Arc<EpochDomain>` (any `Deref` to one) for a future that must be `'static` to be
    /// spawned. The domain's own lifetime is unchanged: it ends when it is closed or dropped
    /// (or, with `auto_close`, when its last guard exits, which here is at the end of a poll).
    ///
    /// ```
    /// use temporal_slab::{EpochDomain, FutureExt};
    /// let request = EpochDomain::new(Some("GET /users"));
    /// let work = async { vec![0u8; 4096].len() }.in_domain(&request);
    /// # let _ = work;
    /// ```
    fn in_domain<D: Deref<Target = EpochDomain>>(self, domain: D) -> InDomain<D, Self> {
        InDomain { domain, future: self }
    }
}

impl<F: Future> FutureExt for F {}
