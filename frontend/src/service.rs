//! The frontend as a [`tower::Service`], for embedders: put [`Frontend`] in your own hyper or
//! axum server (`frontend/examples/embed.rs`), or drive it without a socket in a test
//! (`tower::ServiceExt::oneshot`).
//!
//! It routes through [`http_edge::handle`], the same function the product's own server calls,
//! so both answer every request alike: this type only adapts the edge to tower's trait.
//!
//! **Its future is boxed** — one allocation per request. `Service::Future` must be a type
//! that can be named, and the edge's future is an `async fn`'s, which has none. Naming it needs
//! `impl Trait` in an associated type or a type alias (ATPIT/TAIT) or return-type notation,
//! all unstable on Rust 1.95 (E0658, tracking issues #63063 and #109417); the unboxed
//! alternative would be writing the edge and every pipeline stage as hand-made futures. The
//! product's own server does not pay the box: `server.rs` hands hyper a `service_fn` over
//! [`http_edge::handle`], whose future hyper takes as a generic type.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};

use crate::app::App;
use crate::body::Body;
use crate::http::RequestBody;
use crate::http_edge;

/// The whole public listener's routes (`/v1/*`, `/health`, `/ready`, `/live`, `/metrics`) as
/// one service over an [`App`]. Cheap to clone (an `Arc`); always ready — admission, flow
/// control and load shedding happen inside, per request, and answer in OpenAI's shape.
#[derive(Clone)]
pub struct Frontend {
    app: Arc<App>,
}

impl std::fmt::Debug for Frontend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Frontend").finish_non_exhaustive()
    }
}

/// The future of [`Frontend`]'s `call` (boxed: see the module doc).
pub type ResponseFuture = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

impl Frontend {
    pub fn new(app: Arc<App>) -> Self {
        Self { app }
    }

    /// The state requests are served from (config, registry, metrics).
    pub fn app(&self) -> &Arc<App> {
        &self.app
    }
}

impl<B> tower::Service<Request<B>> for Frontend
where
    B: RequestBody + Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> ResponseFuture {
        let app = Arc::clone(&self.app);
        Box::pin(async move { Ok(http_edge::handle(app, request).await) })
    }
}

#[cfg(test)]
#[path = "service_tests.rs"]
mod tests;
