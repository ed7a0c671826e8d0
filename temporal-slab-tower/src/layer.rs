//! The layer, its service, and the request extension that gives handlers their domain.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use temporal_slab::EpochDomain;
use tower_layer::Layer;
use tower_service::Service;

use crate::future::ResponseFuture;
use crate::held::Held;
use crate::routes::{Routes, DEFAULT_MAX_ROUTES, OTHER_LABEL};

/// Gives the route template of a request (`/users/{id}`), or `None` when it has none. With axum:
/// `|req| req.extensions().get::<MatchedPath>().map(MatchedPath::as_str)`.
pub type RouteFn<B> = for<'a> fn(&'a Request<B>) -> Option<&'a str>;

/// Opens a domain per request, labelled by route (see the crate docs).
pub struct DomainLayer<B> {
    route: RouteFn<B>,
    routes: Arc<Routes>,
    handler_access: bool,
}

impl<B> DomainLayer<B> {
    /// A layer that labels each request with the route `route` gives it.
    pub fn new(route: RouteFn<B>) -> DomainLayer<B> {
        DomainLayer { route, routes: Arc::new(Routes::new(DEFAULT_MAX_ROUTES, OTHER_LABEL)), handler_access: false }
    }

    /// At most `n` routes get a label of their own ([`DEFAULT_MAX_ROUTES`] by default); later
    /// ones share [`other_label`](Self::other_label).
    pub fn max_routes(self, n: usize) -> DomainLayer<B> {
        DomainLayer { routes: Arc::new(Routes::new(n, self.routes.other())), ..self }
    }

    /// With `true`, handlers find their request's domain as the [`RequestDomain`] request
    /// extension (off by default: it costs an allocation, a reference count and a map insert
    /// per request). A handler that keeps it keeps the domain open.
    pub fn handler_access(self, yes: bool) -> DomainLayer<B> {
        DomainLayer { handler_access: yes, ..self }
    }

    /// The label routes beyond the limit share ([`OTHER_LABEL`] by default).
    pub fn other_label(self, label: &'static str) -> DomainLayer<B> {
        DomainLayer { routes: Arc::new(Routes::new(self.routes.max(), label)), ..self }
    }
}

impl<B> Clone for DomainLayer<B> {
    fn clone(&self) -> Self {
        DomainLayer { route: self.route, routes: self.routes.clone(), handler_access: self.handler_access }
    }
}

impl<B> fmt::Debug for DomainLayer<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DomainLayer").field("routes", &self.routes).finish_non_exhaustive()
    }
}

impl<S, B> Layer<S> for DomainLayer<B> {
    type Service = DomainService<S, B>;

    fn layer(&self, inner: S) -> DomainService<S, B> {
        DomainService { inner, layer: self.clone() }
    }
}

/// The service of [`DomainLayer`].
pub struct DomainService<S, B> {
    inner: S,
    layer: DomainLayer<B>,
}

impl<S: Clone, B> Clone for DomainService<S, B> {
    fn clone(&self) -> Self {
        DomainService { inner: self.inner.clone(), layer: self.layer.clone() }
    }
}

impl<S: fmt::Debug, B> fmt::Debug for DomainService<S, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DomainService").field("inner", &self.inner).field("layer", &self.layer).finish()
    }
}

/// The request's domain, as a request extension (with [`DomainLayer::handler_access`]):
/// `req.extensions().get::<RequestDomain>()`, or axum's `Extension<RequestDomain>`. Keeping a
/// clone keeps the domain open.
#[derive(Clone, Debug)]
pub struct RequestDomain {
    domain: Arc<EpochDomain>,
    label: &'static str,
}

impl RequestDomain {
    /// The domain.
    pub fn domain(&self) -> &EpochDomain {
        &self.domain
    }

    /// The label it was opened with.
    pub fn label(&self) -> &'static str {
        self.label
    }
}

impl<S, B, RB> Service<Request<B>> for DomainService<S, B>
where
    S: Service<Request<B>, Response = Response<RB>>,
    RB: http_body::Body,
{
    type Response = Response<crate::DomainBody<RB>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> ResponseFuture<S::Future> {
        let (label, id) = self.layer.routes.label((self.layer.route)(&req));
        let domain = EpochDomain::labelled(id);
        let domain = if self.layer.handler_access {
            let shared = Arc::new(domain);
            req.extensions_mut().insert(RequestDomain { domain: shared.clone(), label });
            Held::Shared(shared)
        } else {
            Held::Owned(domain)
        };
        let future = {
            let _inside = domain.enter();
            self.inner.call(req)
        };
        ResponseFuture::new(future, domain)
    }
}
