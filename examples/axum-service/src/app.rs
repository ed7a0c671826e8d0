//! The service: JSON in and out with per-request scratch (`POST /echo`), a streaming response
//! (`GET /stream/{n}`), a long-lived cache that outlives the requests that fill it
//! (`PUT`/`GET /cache/{key}`), and a deliberately leaking route (`POST /leak`) that keeps its
//! request's domain, for the doctor to find by its label.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Path, State};
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};
use temporal_slab_tower::{DomainLayer, RequestDomain};

/// Most entries the cache keeps; a new key beyond it replaces an arbitrary old one.
pub const CACHE_CAPACITY: usize = 1024;
/// Most chunks `GET /stream/{n}` sends.
pub const MAX_CHUNKS: usize = 1000;

/// What outlives requests.
#[derive(Default)]
pub struct AppState {
    cache: RwLock<HashMap<String, Bytes>>,
    /// The leak: request domains kept with a buffer each, never let go.
    leaked: Mutex<Vec<(RequestDomain, Vec<u8>)>>,
}

/// The route template of a request, set by axum's router before the layer runs (the layer
/// inside the router, `Router::layer`).
fn route(req: &Request<Body>) -> Option<&str> {
    req.extensions().get::<MatchedPath>().map(MatchedPath::as_str)
}

/// The route template of a request from its path, for the layer outside the router (which runs
/// before routing, so before `MatchedPath` exists): the same templates as [`router`].
pub fn classify(req: &Request<Body>) -> Option<&'static str> {
    let path = req.uri().path();
    match path {
        "/echo" => Some("/echo"),
        "/leak" => Some("/leak"),
        "/health" => Some("/health"),
        _ if path.strip_prefix("/stream/").is_some_and(|n| !n.is_empty() && !n.contains('/')) => Some("/stream/{n}"),
        _ if path.strip_prefix("/cache/").is_some_and(|k| !k.is_empty() && !k.contains('/')) => Some("/cache/{key}"),
        _ => None,
    }
}

/// Whether requests run in domains.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Domains {
    /// No layer.
    Off,
    /// The layer with its defaults, inside the router (`Router::layer`, labels from
    /// `MatchedPath`).
    On,
    /// The layer with its defaults, outside the router (labels from [`classify`]): no per-route
    /// wrapping by axum, so fewer allocations per request; see `serve`.
    Outer,
    /// The layer with handler access: handlers get the `RequestDomain` extension (the leaking
    /// route needs it; the `axum-service` binary serves this way).
    WithHandlerAccess,
}

/// The service's router; with domains, every request runs in a domain labelled by its route.
pub fn router(domains: Domains) -> Router {
    let app = Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/echo", post(echo))
        .route("/stream/{n}", get(stream))
        .route("/cache/{key}", put(cache_put).get(cache_get))
        .route("/leak", post(leak))
        .with_state(Arc::new(AppState::default()));
    match domains {
        Domains::Off | Domains::Outer => app,
        Domains::On => app.layer(DomainLayer::new(route)),
        Domains::WithHandlerAccess => app.layer(DomainLayer::new(route).handler_access(true)),
    }
}

/// The body of `POST /echo`.
#[derive(Debug, Deserialize, Serialize)]
pub struct EchoIn {
    /// Any text.
    pub name: String,
    /// Numbers to summarise.
    pub values: Vec<i64>,
}

#[derive(Debug, Serialize)]
struct EchoOut {
    name: String,
    count: usize,
    sum: i64,
    median: Option<i64>,
    words: Vec<String>,
}

/// Scratch work per request: a sorted copy, a word list, a reply built from them.
async fn echo(Json(input): Json<EchoIn>) -> Json<EchoOut> {
    let mut sorted = input.values.clone();
    sorted.sort_unstable();
    let words: Vec<String> = input.name.split_whitespace().map(str::to_uppercase).collect();
    Json(EchoOut {
        count: sorted.len(),
        sum: sorted.iter().fold(0i64, |a, v| a.wrapping_add(*v)),
        median: sorted.get(sorted.len() / 2).copied(),
        words,
        name: input.name,
    })
}

/// `n` JSON lines, each made as the body is sent (so in the body's polls).
async fn stream(Path(n): Path<usize>) -> Response {
    let n = n.min(MAX_CHUNKS);
    let chunks = futures_util::stream::unfold(0usize, move |i| async move {
        if i == n {
            return None;
        }
        tokio::task::yield_now().await;
        let line = format!("{{\"chunk\":{i},\"of\":{n},\"pad\":\"{}\"}}\n", "x".repeat(64 + i % 64));
        Some((Ok::<_, std::convert::Infallible>(Bytes::from(line)), i + 1))
    });
    Body::from_stream(chunks).into_response()
}

async fn cache_put(State(state): State<Arc<AppState>>, Path(key): Path<String>, value: Bytes) -> StatusCode {
    // A copy that outlives the request (the request's buffer is freed with it).
    let value = Bytes::copy_from_slice(&value);
    let mut cache = state.cache.write().unwrap_or_else(|e| e.into_inner());
    if cache.len() >= CACHE_CAPACITY && !cache.contains_key(&key) {
        if let Some(old) = cache.keys().next().cloned() {
            cache.remove(&old);
        }
    }
    cache.insert(key, value);
    StatusCode::NO_CONTENT
}

async fn cache_get(State(state): State<Arc<AppState>>, Path(key): Path<String>) -> Response {
    let cache = state.cache.read().unwrap_or_else(|e| e.into_inner());
    match cache.get(&key) {
        Some(v) => v.clone().into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// The bug on purpose: keeps the request's domain (and 16 KiB) forever. Needs the layer's
/// handler access (501 without it).
async fn leak(State(state): State<Arc<AppState>>, domain: Option<Extension<RequestDomain>>) -> StatusCode {
    let Some(Extension(domain)) = domain else { return StatusCode::NOT_IMPLEMENTED };
    state.leaked.lock().unwrap_or_else(|e| e.into_inner()).push((domain, vec![7u8; 16 * 1024]));
    StatusCode::ACCEPTED
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_classify_to_the_router_s_templates() {
        let class = |p: &str| classify(&Request::get(p).body(Body::empty()).unwrap());
        assert_eq!(class("/echo"), Some("/echo"));
        assert_eq!(class("/stream/8"), Some("/stream/{n}"));
        assert_eq!(class("/cache/k12"), Some("/cache/{key}"));
        assert_eq!(class("/leak"), Some("/leak"));
        assert_eq!(class("/health"), Some("/health"));
        for unrouted in ["/", "/echo/x", "/stream/", "/cache/a/b", "/nope"] {
            assert_eq!(class(unrouted), None, "{unrouted}");
        }
    }
}
