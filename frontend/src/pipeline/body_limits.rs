//! Request-body time limits: an idle timeout (no bytes for a while, 400) and a total deadline
//! (408), so a client that trickles or stops its body cannot hold its connection for long.
//! It never holds an admission slot meanwhile: admission comes after the body is read (see
//! `pipeline/mod.rs`). The header read timeout and size limits are enforced by hyper (see
//! `server.rs`).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use tokio::time::Sleep;

use super::body_budget::{BodyBudget, BodyReservation};
use super::parse::{self, ParsedRequest};
use super::Endpoint;
use crate::config::HttpLimits;
use crate::error::ApiError;
use crate::http::{BoxError, RequestBody};

/// Reads and decodes the request within `limits`' body timeouts. Generic over the client's
/// body (hyper's `Incoming` on the product's own server, whatever an embedder's server or a
/// test passes): monomorphized, never boxed.
pub async fn parse_within<B: RequestBody>(
    limits: &HttpLimits,
    budget: &BodyBudget,
    headers: HeaderMap,
    body: B,
    endpoint: Endpoint,
) -> Result<ParsedRequest, ApiError> {
    let body = IdleTimeout::new(body, Duration::from_millis(limits.body_idle_timeout_ms));
    let total = Duration::from_millis(limits.body_timeout_ms);
    tokio::time::timeout(
        total,
        parse::parse(headers, body, endpoint, limits.max_body_bytes, budget),
    )
    .await
    .map_err(|_| {
        ApiError::request_timeout(format!(
            "The request body was not received within {} ms.",
            limits.body_timeout_ms
        ))
    })?
}

/// Reads the raw body within `limits` (size and timeouts), for callers that decode it
/// themselves (the agent APIs).
pub async fn read_within<B: RequestBody>(
    limits: &HttpLimits,
    budget: &BodyBudget,
    headers: &HeaderMap,
    body: B,
) -> Result<(bytes::Bytes, BodyReservation), ApiError> {
    let body = IdleTimeout::new(body, Duration::from_millis(limits.body_idle_timeout_ms));
    let total = Duration::from_millis(limits.body_timeout_ms);
    tokio::time::timeout(
        total,
        parse::read_body(headers, body, limits.max_body_bytes, budget),
    )
    .await
    .map_err(|_| {
        ApiError::request_timeout(format!(
            "The request body was not received within {} ms.",
            limits.body_timeout_ms
        ))
    })?
}

/// The body stopped sending.
#[derive(Debug)]
struct BodyIdle(Duration);

impl std::fmt::Display for BodyIdle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "no body data for {} ms", self.0.as_millis())
    }
}

impl std::error::Error for BodyIdle {}

pin_project_lite::pin_project! {
    /// A body that fails when no frame arrives for `idle`. The timer is held inline (no
    /// allocation per request).
    struct IdleTimeout<B> {
        #[pin]
        inner: B,
        idle: Duration,
        #[pin]
        timer: Sleep,
    }
}

impl<B> IdleTimeout<B> {
    fn new(inner: B, idle: Duration) -> Self {
        Self {
            inner,
            idle,
            timer: tokio::time::sleep(idle),
        }
    }
}

impl<B> Body for IdleTimeout<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    type Data = B::Data;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, BoxError>>> {
        let mut this = self.project();
        match this.inner.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let deadline = tokio::time::Instant::now() + *this.idle;
                this.timer.as_mut().reset(deadline);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match this.timer.poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyIdle(*this.idle))))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use futures_util::StreamExt;
    use http_body_util::{BodyExt, StreamBody};

    #[tokio::test(start_paused = true)]
    async fn a_body_that_stops_sending_fails_after_the_idle_timeout() {
        let first = Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from_static(b"{")));
        let stream = futures_util::stream::iter([first]).chain(futures_util::stream::pending());
        let body = IdleTimeout::new(StreamBody::new(stream), Duration::from_millis(100));
        let err = body.collect().await.err().map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("no body data for 100 ms"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_complete_body_passes_through() {
        let body = IdleTimeout::new(
            http_body_util::Full::new(Bytes::from_static(b"{}")),
            Duration::from_millis(100),
        );
        assert_eq!(body.collect().await.unwrap().to_bytes(), "{}");
    }
}
