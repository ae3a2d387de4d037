//! The seam between the worker client and whatever carries its requests, for tests and
//! embedders: a scripted fake worker in a unit test, an in-process engine in an embedder.
//! The product does not go through it — [`super::WorkerClient`] calls hyper directly — so the
//! boxed future a trait object needs is paid only by a custom transport.

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;

use super::body::{BoxError, WorkerBody};

/// What [`Transport::send`] returns.
pub type TransportFuture =
    Pin<Box<dyn Future<Output = Result<Response<WorkerBody>, BoxError>> + Send>>;

/// Carries one request to a worker and returns its response head (the body streams after).
///
/// An error means no response arrived (the worker is unreachable, the connection broke before
/// the head): it is classified like a connection error — a local resource running out
/// (`EMFILE`, …, anywhere in its source chain) is not blamed on the worker, anything else is.
pub trait Transport: Send + Sync + 'static {
    fn send(&self, request: Request<Full<Bytes>>) -> TransportFuture;
}
