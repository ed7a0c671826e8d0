//! A [tower] [`Layer`](tower_layer::Layer) that runs every HTTP request inside a temporal-slab
//! epoch domain labelled by its route, from the first poll of the handler to the last frame of
//! the response body.
//!
//! ```ignore
//! use axum::{extract::MatchedPath, routing::get, Router};
//! let app = Router::new()
//!     .route("/users/{id}", get(user))
//!     .layer(temporal_slab_tower::DomainLayer::new(|req| {
//!         req.extensions().get::<MatchedPath>().map(MatchedPath::as_str)
//!     }));
//! ```
//!
//! Placed with `Router::layer` it runs after routing, so axum's `MatchedPath` is there, but
//! axum then wraps every route in its own adapters (on the example service that costs about
//! 1,100 of the layer's 2,450 instructions per request, 5.4% of the request). Placed outside the
//! router, with a route function that maps raw paths to the templates, it costs about 1,530
//! (3.4%; `examples/axum-service`, `Domains::Outer`; callgrind, `BENCHMARKS.md`).
//!
//! What it does per request:
//! - picks a label from the route template the given function returns (`/users/{id}`, never
//!   the raw path: a label per URL would overflow the allocator's 31-label registry); routes
//!   beyond [`DomainLayer::max_routes`] share [`DomainLayer::other_label`], requests with no
//!   route get [`UNMATCHED_LABEL`];
//! - opens an [`EpochDomain`] with it (shared with the requests of the same time bucket, see
//!   the allocator's docs); with [`DomainLayer::handler_access`] it is also reachable from the
//!   handler as a [`RequestDomain`] request extension (off by default: the extension costs an
//!   allocation, a reference count and a map insert per request);
//! - enters the domain around the inner service's `call`, every poll of its future (whichever
//!   worker thread polls it) and every poll of a streamed response body (one whose size is not
//!   known up front; a buffered body is already made), so what the request allocates is
//!   attributed to its label and grouped in its epoch;
//! - ends the domain when the body has ended (its last frame, an error, or the body dropped:
//!   hyper drops it once it is sent or the client goes away), not when the handler returns, so
//!   a streaming response stays in its domain until its last byte.
//!
//! A handler that keeps the [`RequestDomain`] (in a cache, a spawned task) keeps the domain
//! open: `stats_dump --doctor` then names its label as holding an ended epoch open. That is the
//! point of exposing it; clone it only to do request work.
//!
//! [tower]: https://docs.rs/tower

mod body;
mod future;
mod held;
mod layer;
mod routes;

pub use body::DomainBody;
pub use future::ResponseFuture;
pub use layer::{DomainLayer, DomainService, RequestDomain, RouteFn};
pub use routes::{DEFAULT_MAX_ROUTES, OTHER_LABEL, UNMATCHED_LABEL};
pub use temporal_slab::EpochDomain;
