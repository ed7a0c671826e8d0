//! The response future: polls the inner service's future inside the request's domain and hands
//! the domain on to the response body.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http::Response;
use pin_project_lite::pin_project;

use crate::body::DomainBody;
use crate::held::Held;

pin_project! {
    /// The future of [`DomainService`](crate::DomainService): every poll of the inner future
    /// runs inside the request's domain, on whichever thread polls it.
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        // Moved into the body when the response is ready.
        domain: Option<Held>,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(inner: F, domain: Held) -> ResponseFuture<F> {
        ResponseFuture { inner, domain: Some(domain) }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: http_body::Body,
{
    type Output = Result<Response<DomainBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = match this.domain.as_deref() {
            Some(domain) => {
                let _inside = domain.enter();
                ready!(this.inner.poll(cx))
            }
            // Polled again after it completed: the inner future decides what that means.
            None => ready!(this.inner.poll(cx)),
        };
        // The body takes the domain over; with an error there is no body and it ends here.
        let domain = this.domain.take();
        Poll::Ready(result.map(|response| response.map(|body| DomainBody::new(body, domain))))
    }
}
