//! The response body wrapper: polls the body inside the request's domain and ends the domain
//! with the body.

use std::pin::Pin;
use std::task::{Context, Poll};

use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use crate::held::Held;

pin_project! {
    /// A response body that runs every poll of a streamed body (size not known up front) inside
    /// its request's domain and lets go of the domain at the end of the body (last frame or
    /// error) or when it is dropped, whichever comes first. Made by
    /// [`DomainService`](crate::DomainService).
    #[derive(Debug)]
    pub struct DomainBody<B> {
        #[pin]
        inner: B,
        domain: Option<Held>,
        // Whether the body is made as it is polled (see `poll_frame`); decided once.
        streamed: bool,
    }
}

impl<B: Body> DomainBody<B> {
    pub(crate) fn new(inner: B, domain: Option<Held>) -> DomainBody<B> {
        // A body whose exact size is known is already made (a `Full`, a buffered JSON reply):
        // polling it hands out its bytes and allocates nothing worth a label, so it is polled
        // without entering the domain (an enter and an exit saved per such response). A body of
        // unknown size (a stream) is made as it is polled: those polls run in the domain. Asked
        // here once, not at every poll (axum's body answers through a boxed, dynamic call).
        let streamed = inner.size_hint().exact().is_none();
        DomainBody { inner, domain, streamed }
    }
}

impl<B: Body> Body for DomainBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.project();
        let polled = match this.domain.as_deref() {
            Some(domain) if *this.streamed => {
                let _inside = domain.enter();
                this.inner.poll_frame(cx)
            }
            _ => this.inner.poll_frame(cx),
        };
        if matches!(polled, Poll::Ready(None | Some(Err(_)))) {
            // The body has ended: this request no longer holds its domain (it ends now unless
            // someone else still holds it: a handler that kept its `RequestDomain`).
            *this.domain = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
