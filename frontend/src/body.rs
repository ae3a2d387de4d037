//! The response body type: a whole buffer, a live SSE relay, a relay whose chat events
//! are rewritten into another API's (the agent APIs), or frames from a task.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};

use crate::agent_api::stream::BridgedBody;
use crate::pipeline::native_relay::NativeRelay;
use crate::pipeline::relay::RelayBody;

pub enum Body {
    Full(Option<Bytes>),
    /// Frames produced by a task (the console's decision feed); ends when the task does.
    Channel(tokio::sync::mpsc::Receiver<Bytes>),
    Relay(Box<RelayBody>),
    Bridged(Box<BridgedBody>),
    /// A native agent-API stream relayed as the worker sent it.
    Native(Box<NativeRelay>),
}

impl Body {
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        Self::Full(Some(bytes.into()))
    }

    pub fn empty() -> Self {
        Self::Full(None)
    }
}

impl From<Box<RelayBody>> for Body {
    fn from(relay: Box<RelayBody>) -> Self {
        Self::Relay(relay)
    }
}

impl From<Box<NativeRelay>> for Body {
    fn from(native: Box<NativeRelay>) -> Self {
        Self::Native(native)
    }
}

impl From<Bytes> for Body {
    fn from(bytes: Bytes) -> Self {
        Self::full(bytes)
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            Self::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Self::Channel(rx) => rx.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b)))),
            Self::Relay(relay) => Pin::new(relay.as_mut()).poll_frame(cx),
            Self::Bridged(bridged) => Pin::new(bridged.as_mut()).poll_frame(cx),
            Self::Native(native) => Pin::new(native.as_mut()).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, Self::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Self::Full(None) => SizeHint::with_exact(0),
            Self::Relay(_) | Self::Bridged(_) | Self::Native(_) | Self::Channel(_) => {
                SizeHint::default()
            }
        }
    }
}
