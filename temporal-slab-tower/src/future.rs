//! The response future: polls the inner service's future inside the request's domain and hands
//! the domain on to the response body.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use http::Response;
use pin_project_lite::pin_project;
use temporal_slab::EpochDomain;

use crate::body::DomainBody;

pin_project! {
    /// The future of [`DomainService`](crate::DomainService): every poll of the inner future
    /// runs inside the request's domain, on whichever thread polls it.
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        domain: Arc<EpochDomain>,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(inner: F, domain: Arc<EpochDomain>) -> ResponseFuture<F> {
        ResponseFuture { inner, domain }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<DomainBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = {
            let _inside = this.domain.enter();
            ready!(this.inner.poll(cx))
        };
        // An error response holds the domain no longer: it ends when this future is dropped.
        Poll::Ready(result.map(|response| response.map(|body| DomainBody::new(body, this.domain.clone()))))
    }
}
