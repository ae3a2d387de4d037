//! The body of a worker's response, whatever carried it: hyper's connection body in the
//! product, any other `http_body::Body` (in memory, a channel, an embedder's in-process
//! engine) behind a [`super::Transport`].
//!
//! An enum rather than a boxed body so the product's path stays a direct call: polling a
//! frame of hyper's body is one `match` away, not a virtual call and not an allocation.
//! Only a custom transport's body is boxed, once per response.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};

/// A boxed error from a worker's body or a custom transport.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A worker's response body; see the module doc.
pub struct WorkerBody(Kind);

enum Kind {
    Hyper(Incoming),
    Custom(BoxBody<Bytes, BoxError>),
}

impl std::fmt::Debug for WorkerBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.0 {
            Kind::Hyper(_) => "hyper",
            Kind::Custom(_) => "custom",
        };
        f.debug_tuple("WorkerBody").field(&kind).finish()
    }
}

impl WorkerBody {
    /// Any body, for a custom [`super::Transport`] (boxed once).
    pub fn new<B>(body: B) -> Self
    where
        B: Body<Data = Bytes> + Send + Sync + 'static,
        B::Error: Into<BoxError>,
    {
        Self(Kind::Custom(body.map_err(Into::into).boxed()))
    }

    /// A whole body in memory.
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        Self::new(Full::new(bytes.into()))
    }

    /// No body.
    pub fn empty() -> Self {
        Self::new(Empty::<Bytes>::new())
    }
}

impl From<Incoming> for WorkerBody {
    fn from(body: Incoming) -> Self {
        Self(Kind::Hyper(body))
    }
}

impl Body for WorkerBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut self.get_mut().0 {
            Kind::Hyper(body) => Pin::new(body)
                .poll_frame(cx)
                .map(|frame| frame.map(|r| r.map_err(Into::into))),
            Kind::Custom(body) => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            Kind::Hyper(body) => body.is_end_stream(),
            Kind::Custom(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            Kind::Hyper(body) => body.size_hint(),
            Kind::Custom(body) => body.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_body_in_memory_reads_back_whole() {
        let body = WorkerBody::full("hello");
        assert_eq!(body.size_hint().exact(), Some(5));
        let bytes = body.collect().await.unwrap().to_bytes();
        assert_eq!(&bytes[..], b"hello");
        assert!(WorkerBody::empty().is_end_stream());
    }
}
